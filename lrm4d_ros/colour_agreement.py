"""How well two depth cameras' colours agree where one's pixels, carried with their depth, land on the other's:
what stamp_offset.py (a camera's stamps) and focal_scale.py (its focal length) search over, and how their
pairwise readings become one per camera.

For cameras a and b: each frame of a with depth and b's frame nearest it in time; a's textured pixels on one
surface carried into b's frame, and b's into a's; the mean absolute colour difference where they land on the same
surface (the depth there within SURFACE). A reading changes a's poses or intrinsics and keeps what agrees best.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .views import ViewSet

TEXTURE = 0.04  # a pixel is compared where its colour differs this much (0..1) from a neighbour's: flat colours agree
MAX_PIXELS = 1024  # textured pixels sampled per frame
SURFACE = 0.05  # a carried pixel lands on the same surface where the depth there is within 5 %
MIN_LANDED = 200  # pixels landing on the same surface a pair of cameras needs, as given
MARGIN = 1.1  # a reading is claimed where it agrees this many times better than the inputs as given
# A camera's stamps and focal length are its own, not a window's: a bag's commands read them on this many windows
READ_WINDOWS = 3


def windows_to_read(n: int) -> set[int]:
    """Indices of the READ_WINDOWS of n windows (first, last and between) that a bag's commands read the rig on."""
    if n <= READ_WINDOWS:
        return set(range(n))
    return {round(k * (n - 1) / (READ_WINDOWS - 1)) for k in range(READ_WINDOWS)}


def textured(images: Tensor, depths: Tensor) -> Tensor:
    """(V,H,W) bool: measured pixels on one surface (their 3x3 depths within SURFACE) whose colour differs from a
    4-neighbour's by TEXTURE or more. images (V,H,W,3) in [0, 1], depths (V,H,W) (0 = none)."""
    x = images.permute(0, 3, 1, 2)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1) >= TEXTURE
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1) >= TEXTURE
    g = torch.zeros(depths.shape, dtype=torch.bool)
    g[:, :, 1:] |= dx
    g[:, :, :-1] |= dx
    g[:, 1:, :] |= dy
    g[:, :-1, :] |= dy
    pad = F.pad(depths[:, None], (1, 1, 1, 1), mode="replicate")
    near, far = -F.max_pool2d(-pad, 3, 1)[:, 0], F.max_pool2d(pad, 3, 1)[:, 0]
    return g & (near > 0) & (far <= near * (1 + SURFACE))


@dataclass
class CameraPair:
    """Camera a's frames with depth (the first `n_a` of the views here, by stamp) and camera b's nearest each."""
    images: Tensor  # (V,H,W,3)
    depths: Tensor  # (V,H,W)
    Ks: Tensor  # (V,3,3) float64
    camtoworlds: Tensor  # (V,4,4) float64
    stamps_s: Tensor  # (V,) float64, from a's first frame
    n_a: int
    pairs: list  # (i, j): view i's pixels carried into view j, both ways
    sources: list  # per view: ((N,2) integer pixel coordinates, (N,3) colours) of its sampled textured pixels

    def error(self, Ks: Tensor | None = None, camtoworlds: Tensor | None = None) -> tuple[float, int]:
        """(mean absolute colour difference 0..1, pixels compared) with these intrinsics / poses (default: as
        given) where the carried pixels land on the same surface."""
        return colour_error(self.images, self.depths, self.Ks if Ks is None else Ks,
                            self.camtoworlds if camtoworlds is None else camtoworlds, self.sources, self.pairs)


def camera_pair(views: ViewSet, a: int, b: int, min_frames: int = 1) -> CameraPair | None:
    """Cameras a and b of views (depth required) as a CameraPair, or None where a has fewer than min_frames frames
    with depth (or two at one stamp) or b none."""
    ids, stamps = views.camera_ids.cpu(), views.stamps_ns.cpu()
    has = (views.depths.cpu().flatten(1) > 0).any(1)
    ia, ib = torch.where((ids == a) & has)[0], torch.where((ids == b) & has)[0]
    if len(ia) < min_frames or len(ib) == 0:
        return None
    ia = ia[torch.argsort(stamps[ia])]
    if bool((stamps[ia][1:] <= stamps[ia][:-1]).any()):
        return None
    nearest = ib[(stamps[ib][None, :] - stamps[ia][:, None]).abs().argmin(1)]
    idx = torch.cat([ia, nearest.unique()])
    local = {int(v): k for k, v in enumerate(idx)}
    pairs = [(k, local[int(j)]) for k, j in enumerate(nearest)]
    images, depths = views.images.cpu()[idx].float(), views.depths.cpu()[idx].float()
    gen = torch.Generator().manual_seed(0)
    sources = []
    for mask, image in zip(textured(images, depths), images):
        rows, cols = torch.where(mask)
        if len(rows) > MAX_PIXELS:
            keep = torch.randperm(len(rows), generator=gen)[:MAX_PIXELS]
            rows, cols = rows[keep], cols[keep]
        sources.append((torch.stack([cols, rows], -1), image[rows, cols]))
    return CameraPair(images, depths, views.Ks.cpu()[idx].double(), views.camtoworlds.cpu()[idx].double(),
                      (stamps[idx] - stamps[ia][0]).double() * 1e-9, len(ia), pairs + [(j, i) for i, j in pairs],
                      sources)


def colour_error(images: Tensor, depths: Tensor, Ks: Tensor, c2w: Tensor, sources: list, pairs: list) -> tuple:
    """(mean absolute colour difference 0..1, pixels) of the sampled pixels `sources` (per view: (N,2) integer pixel
    coordinates, (N,3) colours) carried with their depth through intrinsics Ks (V,3,3) and poses c2w (V,4,4) from
    view i into view j for (i, j) in pairs, where they land on the same surface."""
    _, H, W = depths.shape
    total, count = 0.0, 0
    w2c = torch.linalg.inv(c2w)
    for i, j in pairs:
        uv, colour = sources[i]
        if len(uv) == 0:
            continue
        d = depths[i][uv[:, 1], uv[:, 0]].double()
        cam = torch.cat([uv.double(), torch.ones(len(uv), 1, dtype=torch.float64)], 1) \
            @ torch.linalg.inv(Ks[i].double()).T * d[:, None]
        rel = w2c[j] @ c2w[i]
        x = cam @ rel[:3, :3].T + rel[:3, 3]
        z = x[:, 2]
        p = x @ Ks[j].double().T
        u, v = p[:, 0] / z.clamp_min(1e-9), p[:, 1] / z.clamp_min(1e-9)  # pixel centres at integers (ROS)
        inside = (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        there = depths[j][v.round().long().clamp(0, H - 1), u.round().long().clamp(0, W - 1)].double()
        same = inside & (there > 0) & ((there - z).abs() <= SURFACE * z)
        if not bool(same.any()):
            continue
        grid = torch.stack([u[same] / max(W - 1, 1) * 2 - 1, v[same] / max(H - 1, 1) * 2 - 1], -1).float()
        seen = F.grid_sample(images[j].permute(2, 0, 1)[None], grid[None, None], align_corners=True)[0, :, 0].T
        total += float((seen - colour[same]).abs().mean(-1).sum())
        count += int(same.sum())
    return (total / count if count else float("nan")), count


def lowest(errors: dict) -> float:
    """The key of the lowest error (nan: none)."""
    return min(errors, key=lambda k: math.inf if math.isnan(errors[k]) else errors[k])


def per_camera(found: list[tuple[int, int, float]], names: list[str], step: float) -> dict[str, float]:
    """Pairwise readings (a, b, x_a - x_b) solved for one x per camera by least squares, relative to the median
    camera (the pairs fix only differences), to `step`: {camera name: x} for the cameras in some pair."""
    told = sorted({c for a, b, _ in found for c in (a, b)})
    if len(told) < 2:
        return {}
    col = {c: k for k, c in enumerate(told)}
    A = torch.zeros(len(found) + 1, len(told), dtype=torch.float64)
    y = torch.zeros(len(found) + 1, 1, dtype=torch.float64)
    for r, (a, b, d) in enumerate(found):
        A[r, col[a]], A[r, col[b]], y[r] = 1.0, -1.0, d
    A[-1] = 1.0  # sum 0, then the median camera's 0
    x = torch.linalg.lstsq(A, y).solution[:, 0]
    x = ((x - x.median()) / step).round() * step
    return {names[c]: round(float(x[col[c]]), 6) + 0.0 for c in told}  # (+ 0.0: no -0.0)
