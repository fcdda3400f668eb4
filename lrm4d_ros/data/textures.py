"""3D procedural textures: albedo as a function of an object-space point, so colours move with the surface and
agree across views and times. Lambertian shading from a fixed light keeps appearance view-independent.

`Texture.filtered` averages the pattern over each pixel's footprint (ray differentials), so that a ground plane
running to the horizon fades to its mean colour instead of aliasing into noise."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

TEXTURE_KINDS = ("solid", "stripes", "checkers", "noise")


@dataclass
class Texture:
    """kind in TEXTURE_KINDS; colors (2,3) RGB in [0,1]; freq in cycles per object unit; axis (3,) unit;
    waves (3,3) and phases (3,) for the smooth-noise kind (a sum of three random plane waves)."""

    kind: str
    colors: Tensor
    freq: float
    axis: Tensor
    waves: Tensor
    phases: Tensor

    def __call__(self, p: Tensor) -> Tensor:
        """Albedo (K,3) at object-space points p (K,3)."""
        c0, c1 = (c.to(p) for c in self.colors)
        if self.kind == "solid":
            return c0.expand(p.shape[0], 3)
        if self.kind == "stripes":
            w = (torch.sin(2 * math.pi * self.freq * (p @ self.axis.to(p)) + float(self.phases[0])) > 0).to(p)
        elif self.kind == "checkers":
            cell = torch.floor(p * self.freq).sum(-1)
            w = torch.remainder(cell, 2.0)
        elif self.kind == "noise":
            s = torch.sin(2 * math.pi * self.freq * (p @ self.waves.to(p).T) + self.phases.to(p)).mean(-1)
            w = 0.5 + 0.5 * torch.tanh(2.0 * s)
        else:
            raise ValueError(f"unknown texture kind {self.kind!r}; expected one of {TEXTURE_KINDS}")
        return c0 + w[:, None] * (c1 - c0)

    def filtered(self, p: Tensor, ddx: Tensor, ddy: Tensor) -> Tensor:
        """Albedo (K,3) at points p (K,3) averaged over their pixel footprints: ddx, ddy (K,3) are the offsets of p
        for one pixel step along u and v (same units as p). Checkers and stripes are box-filtered exactly per
        axis; the noise waves are attenuated as by a Gaussian of the box's variance. A zero footprint gives the
        point sample `self(p)` (up to rounding exactly on a stripe edge). Computed in float64: a box average is a
        difference of two nearby values of the pattern's integral."""
        out_dtype = p.dtype
        p, ddx, ddy = p.double(), ddx.double(), ddy.double()
        c0, c1 = (c.to(p) for c in self.colors)
        if self.kind == "solid":
            return c0.expand(p.shape[0], 3).to(out_dtype)

        def width(k: Tensor) -> Tensor:  # footprint extent along direction(s) k (3,) or (3,n), in cycles
            return self.freq * torch.sqrt((ddx @ k) ** 2 + (ddy @ k) ** 2)

        if self.kind == "checkers":
            cells = torch.eye(3, dtype=p.dtype, device=p.device)
            w = 0.5 - 0.5 * _box_square(p * self.freq, width(cells)).prod(-1)
        elif self.kind == "stripes":
            axis = self.axis.to(p)
            s = self.freq * (p @ axis) + float(self.phases[0]) / (2 * math.pi)
            # sin(2πs) > 0 ⇔ the ±1 square wave of period 2 at 2s is +1.
            w = 0.5 + 0.5 * _box_square(2 * s, 2 * width(axis))
        elif self.kind == "noise":
            waves = self.waves.to(p)
            damp = torch.exp(-(math.pi * width(waves.T)) ** 2 / 6)  # Gaussian with the box's variance w²/12
            s = (torch.sin(2 * math.pi * self.freq * (p @ waves.T) + self.phases.to(p)) * damp).mean(-1)
            w = 0.5 + 0.5 * torch.tanh(2.0 * s)
        else:
            raise ValueError(f"unknown texture kind {self.kind!r}; expected one of {TEXTURE_KINDS}")
        return (c0 + w[:, None] * (c1 - c0)).to(out_dtype)


def _box_square(x: Tensor, w: Tensor) -> Tensor:
    """Mean of the ±1 square wave (−1)^⌊x⌋ over [x − w/2, x + w/2] (w ≥ 0, same shape as x); the point value
    where w is too small to divide by."""

    def integral(y):  # ∫₀^y of the square wave: a triangle wave of period 2
        return 1.0 - (1.0 - torch.remainder(y, 2.0)).abs()

    wide = w > 1e-4
    ws = torch.where(wide, w, torch.ones_like(w))
    box = (integral(x + 0.5 * ws) - integral(x - 0.5 * ws)) / ws
    return torch.where(wide, box, 1.0 - 2.0 * torch.remainder(torch.floor(x), 2.0))


def random_texture(g: torch.Generator, kinds=TEXTURE_KINDS) -> Texture:
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
    colors = torch.rand(2, 3, generator=g, dtype=torch.float64) * 0.85 + 0.1
    axis = torch.nn.functional.normalize(torch.randn(3, generator=g, dtype=torch.float64), dim=0)
    waves = torch.nn.functional.normalize(torch.randn(3, 3, generator=g, dtype=torch.float64), dim=1)
    phases = torch.rand(3, generator=g, dtype=torch.float64) * 2 * math.pi
    freq = float(0.75 + 2.0 * torch.rand(1, generator=g, dtype=torch.float64))
    return Texture(kind, colors.float(), freq, axis.float(), waves.float(), phases.float())


def lambert(albedo: Tensor, n_dot_l: Tensor, ambient: float) -> Tensor:
    """Shaded RGB (K,3) = albedo · (ambient + (1 − ambient) · max(0, n·l)), n·l (K,) between unit normal and
    the unit direction towards the light."""
    return albedo * (ambient + (1.0 - ambient) * n_dot_l.clamp_min(0.0))[:, None]
