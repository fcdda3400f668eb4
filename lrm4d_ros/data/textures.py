"""3D procedural textures: albedo as a function of an object-space point, so colours move with the surface and
agree across views and times. Lambertian shading from a fixed light keeps appearance view-independent."""
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
