"""Walls around a robot scene: vertical planes found in measured depth, and what the input views saw on them.

A novel view of a room sees wall that no input pixel Gaussian covers (the splats of a wall seen from across the
room leave gaps from nearer, a wall's far end beyond the inputs' frames), and the environment map, looked up by
direction alone, puts whatever that direction showed from the rig there: often the wall's top edge, sky or
another wall. A wall found in the depth a camera measured puts its texture where it stands, and the sky above it
stays the environment's.

Walls are found like the floor (floor.py), from an RGB-D rig's measured points only: every point on a near-vertical
surface above the floor (its normal from the smoothed depth map) votes for the vertical plane through it with
its normal's azimuth; the most voted planes holding MIN_SUPPORT of the measured points over MIN_WIDTH × MIN_HEIGHT
become walls, up to MAX_WALLS. A wall is a rectangle: its inliers' extent along it, from the floor (or its
lowest inlier) to its highest inlier. Its texture is a grid over the rectangle (push-pull filled), and points
are read at full resolution from the views that measured them on the plane (floor.PlaneViews). No learned
parameters; nothing is differentiated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .environment import push_pull
from .floor import ON_PLANE, PlaneViews
from .pixel_gaussians import SMOOTH, masked_box_mean, surface_normals, z_rays

MAX_WALLS = 4
VERTICAL = 0.2  # |normal z| below which a measured point may lie on a wall
AZIMUTH_BIN, OFFSET_BIN = math.radians(3.0), 0.04  # vote bins: normal azimuth (radians), offset (canonical units)
INLIER = 0.03  # canonical units from the plane (relative to the point's distance from its camera: × z)
MIN_SUPPORT = 0.03  # share of the measured points a wall must hold
MIN_WIDTH, MIN_HEIGHT = 1.0, 0.5  # canonical units (cameras sit ~2 from the scene centre): a box's side is no wall
ABOVE_FLOOR = 0.05  # canonical units: points this near the floor vote for nothing
GRID = (32, 64)  # texture bins: height × along the wall


@dataclass
class Wall:
    """A vertical rectangle facing the cameras: points x with normal·x = offset, along = (−n_y, n_x, 0)·x in
    `span`, z in `heights`; `colors` (3, GRID) its texture (bottom row first); `views` its colours from the inputs."""

    normal: Tensor
    offset: float
    span: tuple[float, float]
    heights: tuple[float, float]
    colors: Tensor
    views: PlaneViews | None = None

    def along(self, x: Tensor) -> Tensor:
        n = self.normal.to(x)
        return -n[1] * x[..., 0] + n[0] * x[..., 1]

    def hit(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """Ray parameter t (...) where rays (origins, unit dirs (...,3)) meet the wall from its front, inf elsewhere,
        and the points (...,3)."""
        n = self.normal.to(dirs)
        den = (dirs * n).sum(-1)
        t = (self.offset - (origins * n).sum(-1)) / torch.where(den < -1e-6, den, torch.full_like(den, -1e-6))
        x = origins + t.clamp_min(0)[..., None] * dirs
        s, z = self.along(x), x[..., 2]
        inside = (den < -1e-6) & (t > 0) & (s >= self.span[0]) & (s <= self.span[1]) \
            & (z >= self.heights[0]) & (z <= self.heights[1])
        return torch.where(inside, t, torch.full_like(t, math.inf)), x

    def _grid(self, x: Tensor) -> Tensor:
        s, z = self.along(x), x[..., 2]
        gx = (s - self.span[0]) / max(self.span[1] - self.span[0], 1e-9) * 2 - 1
        gy = (z - self.heights[0]) / max(self.heights[1] - self.heights[0], 1e-9) * 2 - 1
        return torch.stack([gx, gy], -1)

    def lookup(self, points: Tensor, dirs: Tensor) -> Tensor:
        """Colours (N,3) of wall points (N,3) seen along unit rays dirs (N,3)."""
        g = self._grid(points).to(self.colors)
        out = F.grid_sample(self.colors[None], g.reshape(1, -1, 1, 2), mode="bilinear", padding_mode="border",
                            align_corners=False)[0, :, :, 0].T
        return out if self.views is None else self.views.over(points, dirs, out)

    def to(self, device) -> "Wall":
        return Wall(self.normal.to(device), self.offset, self.span, self.heights, self.colors.to(device),
                    None if self.views is None else self.views.to(device))


def find_walls(images: Tensor, Ks: Tensor, camtoworlds: Tensor, depths: Tensor,
               floor_height: float | None) -> list[Wall]:
    """Walls seen in measured depth: images (V,H,W,3) in [0,1], Ks (V,3,3), camtoworlds (V,4,4) canonical, depths
    (V,H,W) measured z-depth in canonical units (0 = none); floor_height the floor's canonical z (None: none)."""
    V, H, W, _ = images.shape
    o, d = z_rays(Ks.double(), camtoworlds.double(), H, W)
    valid = depths > 0
    if int(valid.sum()) < 100:
        return []
    z = torch.where(valid, depths.double(), torch.ones_like(depths, dtype=torch.float64))
    # normals from the depth map smoothed over its measured pixels only: beside the sky or a dropout, a plain
    # smoothing would bend a wall's top rows towards whatever stands in for "nothing"
    near, _ = masked_box_mean(z.log(), valid, 2 * SMOOTH + 1)
    normals = surface_normals(o, d, torch.where(valid, z.log(), near))
    points = o + z[..., None] * d
    cand = valid & (normals[..., 2].abs() < VERTICAL)
    if floor_height is not None:
        cand &= points[..., 2] > floor_height + ABOVE_FLOOR
    centre = camtoworlds[:, :3, 3].double().mean(0)
    n_measured = int(valid.sum())
    p, nrm, zc = points[cand], normals[cand], z[cand]
    rgb = images[cand].double()
    walls: list[Wall] = []
    free = torch.ones(p.shape[0], dtype=torch.bool)
    for _ in range(MAX_WALLS):
        if int(free.sum()) < MIN_SUPPORT * n_measured:
            break
        az = torch.atan2(nrm[free, 1], nrm[free, 0]) % (2 * math.pi)  # normals all face their cameras
        n2 = torch.stack([az.cos(), az.sin()], -1)
        off = (p[free, :2] * n2).sum(-1)
        na = int(2 * math.pi / AZIMUTH_BIN)
        ia = (az / AZIMUTH_BIN).long().clamp(max=na - 1)
        io = ((off - off.min()) / OFFSET_BIN).long()
        no = int(io.max()) + 1
        votes = torch.bincount(ia * no + io, minlength=na * no).reshape(na, no).double()
        votes = votes + votes.roll(1, 0) + votes.roll(-1, 0)  # a plane near a bin edge splits its votes (azimuth wraps)
        votes = votes + F.pad(votes, (1, 0))[:, :-1] + F.pad(votes, (0, 1))[:, 1:]
        peak = int(votes.argmax())
        phi = (peak // no + 0.5) * AZIMUTH_BIN
        n = torch.tensor([math.cos(phi), math.sin(phi), 0.0], dtype=torch.float64)
        # inliers among all candidates, then the plane refitted to them (least squares on the offset and azimuth)
        dist = (p[:, :2] @ n[:2]) - (float(off.min()) + (peak % no + 0.5) * OFFSET_BIN)
        inl = free & (dist.abs() < INLIER * zc) & ((nrm[:, :2] @ n[:2]).abs() > 0.9)
        if int(inl.sum()) < MIN_SUPPORT * n_measured:
            break
        xy = p[inl, :2]
        mean = xy.mean(0)
        _, _, vh = torch.linalg.svd(xy - mean, full_matrices=False)
        n = torch.cat([vh[-1], vh.new_zeros(1)])
        if float((centre - torch.cat([mean, centre[2:]])) @ n) < 0:
            n = -n  # facing the cameras
        offset = float(mean @ n[:2])
        inl = free & (((p[:, :2] @ n[:2]) - offset).abs() < INLIER * zc) & ((nrm[:, :2] @ n[:2]).abs() > 0.9)
        if not bool(inl.any()):  # the refitted plane holds none of them (a handful of points in a sparse window)
            break
        free &= ~inl
        s = -n[1] * p[inl, 0] + n[0] * p[inl, 1]
        q = torch.tensor([0.01, 0.99], dtype=torch.float64)
        s_lo, s_hi = (float(x) for x in torch.quantile(s, q))
        z_lo, z_hi = (float(x) for x in torch.quantile(p[inl, 2], q))
        if floor_height is not None:
            z_lo = floor_height
        if s_hi - s_lo < MIN_WIDTH or z_hi - z_lo < MIN_HEIGHT:
            continue
        wall = Wall(n.float(), offset, (s_lo, s_hi), (z_lo, z_hi), torch.zeros(3, *GRID))
        g = wall._grid(p[inl])
        h, w = GRID
        gx = ((g[:, 0] + 1) / 2 * w).long().clamp(0, w - 1)
        gy = ((g[:, 1] + 1) / 2 * h).long().clamp(0, h - 1)
        acc = torch.zeros(h * w, 4, dtype=torch.float64)
        acc.index_add_(0, gy * w + gx, torch.cat([rgb[inl], torch.ones(int(inl.sum()), 1, dtype=torch.float64)], 1))
        colors = push_pull(acc.reshape(h, w, 4).permute(2, 0, 1), [(2, 2)] * int(math.log2(min(h, w)))
                           + [(1, 2)] * int(math.log2(max(h, w) // min(h, w))))
        wall.colors = colors.clamp(0, 1).to(images.dtype)
        # which pixels show this wall: measured on its plane
        nn = n.to(d)
        den = (d * nn).sum(-1)
        t_plane = (offset - (o * nn).sum(-1)) / torch.where(den.abs() > 1e-9, den, torch.full_like(den, 1e-9))
        shows = valid & (t_plane > 0) & ((depths.double() - t_plane).abs() < ON_PLANE * t_plane)
        wall.views = PlaneViews(images.detach(), Ks.detach(), camtoworlds.detach(), shows.to(images.dtype),
                                n.to(images.dtype))
        walls.append(wall)
    return walls


def wall_pixels(walls: list[Wall]) -> Tensor | None:
    """(V,H,W) bool: input pixels measured on any of the walls (None: no walls)."""
    if not walls:
        return None
    out = walls[0].views.shows > 0
    for w in walls[1:]:
        out = out | (w.views.shows > 0)
    return out
