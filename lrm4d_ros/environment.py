"""What lies beyond the Gaussians: a per-window environment map over ray directions, built from the input
pixels, that renders are composited over instead of one background colour.

Robot scenes have floors to the horizon, walls and sky; a target camera sees parts of them that no input
camera saw from close enough (the floor at its own feet, the horizon behind the workcell). Those pixels would
otherwise get the one estimated background colour. The map is an equirectangular grid of directions (world
frame: only rotation matters, so canonical and world agree); each input pixel adds its colour to the bin of
its ray direction, weighted by how far or transparent it is (near, opaque content such as the robot itself
adds little: from another viewpoint it would be in the wrong place), and empty bins are filled from coarser
levels (push-pull), coarsened along azimuth first: what lies beyond a scene (sky, a floor to the horizon, walls)
changes with elevation far more than around it, so a direction no input looked into takes the colour its own
elevation showed elsewhere before any other elevation's (on 6 rig validation scenes, novel views +0.8 dB from
RGB-D and +0.4 from RGB over filling from all neighbours alike; benchmarks/results/ablation.txt). The horizon
parts the two hemispheres' fills: an elevation above it that no input looked into takes what was seen above it
(a band of sky over a workcell's floor), not the floor's colour pulled up across it (the MuJoCo bags' novel views
+0.26 dB from RGB-D, +0.17 from RGB; validation unchanged: block 10), and lookups read each direction from its own
hemisphere's bins: a bilinear sample across the horizon had drawn a grey band between the sky and the floor's far
edge in every open scene's novel views (16 rig validation scenes, novel_view +0.51 dB from RGB-D, +0.15 from RGB;
block 19). Where no input looked above the horizon at all (cameras pitched down at a workcell), the directions
above the highest elevation any input looked into take that elevation's colours: what lay past the floor's far edge
at the top of the views (the MuJoCo bags' white sky) goes on upwards, where the whole map's fill had put the
floor's colour (16 rig validation scenes, RGB-D novel_view 27.34 -> 27.40, RGB 20.85 -> 20.86; 15 MuJoCo validation
bags 23.20 -> 23.24 / 19.37 -> 19.39; block 28). Elevation is taken about the canonical z axis (world up:
cameras.SceneNormalization).
Where a floor was found (floor.py), rays that meet it take the floor's colour at the point they meet it instead, as
far as the views saw floor there (not something in front of it). No learned parameters; nothing is differentiated
through the map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from .floor import Floor
    from .walls import Wall

# elevation × azimuth bins. Rig validation, novel_view RGB-D / RGB, with scene flow and colour refinement (the
# model was trained with 16×32): 6 scenes 16×32 26.86 / 20.28, 32×64 27.02 / 20.31, 64×128 27.05 / 20.29;
# 16 scenes 16×32 25.49 / 19.89, 32×64 25.79 / 20.15. With lookups kept to their hemisphere (ablation block 19),
# 16 scenes RGB-D novel_view: 16×64 27.21, 32×64 27.39, 64×32 27.48, 64×64 27.47 (RGB 20.40 against 20.34),
# 64×128 27.45, 128×64 27.49; but 64×64 did not carry over to the evaluation bags (RGB-D 25.62 against 25.63, RGB
# 21.66 against 21.69) and cost the demo's scene 1.3 dB (novel_view 19.26 against 20.54): 32×64 kept.
SIZE = (32, 64)
NEAR_CONTENT, FAR_CONTENT = 3.0, 6.0  # canonical z-depths: nearer content adds ~nothing, farther adds fully
MIN_WEIGHT = 0.05


def _grid(dirs: Tensor, rows: int | None = None) -> Tensor:
    """Unit directions (...,3) -> grid_sample coordinates (...,2): azimuth → x, elevation (z up) → y.

    rows: the map's elevation bins (even); a direction then samples only its own hemisphere's rows, so that
    bilinear lookups do not blend the sky's or walls' colour above the horizon with the floor's below it."""
    az = torch.atan2(dirs[..., 1], dirs[..., 0]) / math.pi
    y = -torch.asin(dirs[..., 2].clamp(-1, 1)) / (math.pi / 2)
    if rows is not None and rows >= 2:
        # the rows' centres nearest the horizon lie half a bin (1 / rows in grid units) above and below it
        y = torch.where(y < 0, y.clamp(max=-1.0 / rows), y.clamp(min=1.0 / rows))
    return torch.stack([az, y], -1)


def push_pull(acc: Tensor, pools: list[tuple[int, int]]) -> Tensor:
    """acc (4,h,w) weighted colour sums and weights -> (3,h,w), empty bins filled from coarser levels: the grid is
    average-pooled by each kernel of `pools` in turn, the last level's cells summed into one colour, and each finer
    level leans on the coarser one where its bins have little weight."""
    levels = [acc[None]]
    for kernel in pools:
        levels.append(F.avg_pool2d(levels[-1], kernel))
    top = levels[-1]
    filled = top[:, :3].sum((-2, -1), keepdim=True) / top[:, 3:].sum((-2, -1), keepdim=True).clamp_min(1e-12)
    for lv in reversed(levels[:-1]):
        up = F.interpolate(filled, size=lv.shape[-2:], mode="bilinear", align_corners=False)
        w = lv[:, 3:]
        a = (w / (w + 1e-2 * w.mean().clamp_min(1e-12))).clamp(0, 1)  # bins with little weight lean on coarser
        filled = a * lv[:, :3] / w.clamp_min(1e-12) + (1 - a) * up
    return filled[0]


def _azimuth_first(h: int, w: int) -> list[tuple[int, int]]:
    """Pooling kernels that take an h × w map to one bin: azimuth first (h × w/2, ..., h × 1), then elevation."""
    return [(1, 2)] * int(math.log2(w)) + [(2, 1)] * int(math.log2(h))


def content_weights(depths: Tensor, opacities: Tensor) -> Tensor:
    """Per-pixel weights (V,H,W) in [MIN_WEIGHT, 1]: transparent or far pixels count, near opaque ones not.

    depths: z-depths (V,H,W) in canonical units; opacities (V,H,W) in [0,1]."""
    far = ((depths - NEAR_CONTENT) / (FAR_CONTENT - NEAR_CONTENT)).clamp(MIN_WEIGHT, 1.0)
    return ((1 - opacities) + opacities * far).clamp(MIN_WEIGHT, 1.0)


@dataclass
class Environment:
    """An environment map `colors` (3,h,w) over directions, and the floor under it (None: none found); `lookup`
    gives the colour seen along any ray."""

    colors: Tensor
    floor: Floor | None = None
    walls: list[Wall] = field(default_factory=list)

    @classmethod
    def build(cls, images: Tensor, dirs: Tensor, weights: Tensor, size: tuple[int, int] = SIZE,
              floor: Floor | None = None, walls: list[Wall] | None = None) -> "Environment":
        """images (V,H,W,3) in [0,1], dirs (V,H,W,3) ray directions, weights (V,H,W) >= 0; floor: the ground
        plane rays meet before the map (None: directions only)."""
        h, w = size
        g = _grid(F.normalize(dirs.double(), dim=-1))
        x = ((g[..., 0] + 1) / 2 * w).long().clamp(0, w - 1)
        y = ((g[..., 1] + 1) / 2 * h).long().clamp(0, h - 1)
        wt = weights.reshape(-1, 1).to(images.dtype)
        acc = torch.zeros(h * w, 4, dtype=images.dtype, device=images.device)
        acc.index_add_(0, (y * w + x).reshape(-1), torch.cat([images.reshape(-1, 3) * wt, wt], 1))
        acc = acc.reshape(h, w, 4).permute(2, 0, 1)
        # The horizon parts what lies beyond a scene (sky or walls above, floor below): each hemisphere's unseen
        # bins are filled from what was seen in it, and from the whole map only where nothing was
        halves = [acc[:, :h // 2], acc[:, h // 2:]]
        seen = [bool((half[3] > 0).any()) for half in halves]
        if seen[1] and not seen[0]:
            # nobody looked above the horizon (cameras pitched down at a workcell): every direction above the
            # highest elevation seen takes that elevation's colours, azimuth by azimuth; what lies past the floor's
            # far edge (the sky, a far wall) goes on upwards, where the whole map's fill put the floor's colour
            lower = push_pull(halves[1], _azimuth_first(h - h // 2, w))
            top = int(torch.nonzero(halves[1][3].sum(1) > 0)[0])
            colors = torch.cat([lower[:, top:top + 1].expand(3, h // 2 + top, w), lower[:, top:]], 1)
        else:
            whole = None if all(seen) else push_pull(acc, _azimuth_first(h, w)).split([h // 2, h - h // 2], 1)
            colors = torch.cat([push_pull(half, _azimuth_first(half.shape[1], w)) if ok else whole[k]
                                for k, (half, ok) in enumerate(zip(halves, seen))], 1)
        return cls(colors.clamp(0, 1), floor, list(walls or []))

    @classmethod
    def constant(cls, color: Tensor) -> "Environment":
        """The same colour (3,) in every direction."""
        return cls(torch.as_tensor(color).reshape(3, 1, 1).expand(3, 1, 2).clone())

    def lookup(self, dirs: Tensor, origins: Tensor | None = None, spread: Tensor | float = 0.0) -> Tensor:
        """Colours (...,3) along ray directions (...,3); with the rays' origins (...,3), the floor's colour where
        a ray meets it. spread: the rays' pixel width in radians (float or (...)), for the floor (Floor.lookup)."""
        g = _grid(F.normalize(dirs.to(self.colors.dtype), dim=-1), self.colors.shape[1])
        out = F.grid_sample(self.colors[None], g.reshape(1, -1, 1, 2), mode="bilinear", padding_mode="border",
                            align_corners=False)
        out = out[0, :, :, 0].T.reshape(*dirs.shape[:-1], 3)
        if origins is None:
            return out
        unit = F.normalize(dirs.double(), dim=-1)
        t_floor = torch.full(dirs.shape[:-1], math.inf, dtype=torch.float64, device=dirs.device)
        if self.floor is not None:
            on_floor, p = self.floor.lookup(origins, unit, spread)
            out = p[..., None].to(out) * on_floor.to(out) + (1 - p[..., None].to(out)) * out
            t, _ = self.floor.hit(origins, unit)
            t_floor = torch.where(p > 0, t, t_floor)
        if self.walls:
            hits = [w.hit(origins.double(), unit) for w in self.walls]
            t_wall, which = torch.stack([t for t, _ in hits]).min(0)
            front = t_wall < t_floor  # a wall stands before the floor the ray would meet
            if bool(front.any()):
                out = out.clone()
                for k, (wall, (_, x)) in enumerate(zip(self.walls, hits)):
                    sel = front & (which == k)
                    if bool(sel.any()):
                        out[sel] = wall.lookup(x[sel], unit[sel]).to(out)
        return out

    def to(self, device) -> "Environment":
        return Environment(self.colors.to(device), None if self.floor is None else self.floor.to(device),
                           [w.to(device) for w in self.walls])
