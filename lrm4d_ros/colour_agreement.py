"""How well two depth cameras' colours agree where one's pixels, carried with their depth, land on the other's:
what stamp_offset.py (a camera's stamps) and focal_scale.py (its focal length) search over, and how their
pairwise readings become one per camera.

For cameras a and b: each frame of a with depth and b's frame nearest it in time; a's textured pixels on one
surface carried into b's frame, and b's into a's; the mean absolute colour difference where they land on the same
surface (the depth there within SURFACE). A reading changes a's poses or intrinsics and keeps what agrees best.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .views import ViewSet

TEXTURE = 0.04  # a pixel is compared where its colour differs this much (0..1) from a neighbour's: flat colours agree
MAX_PIXELS = 1024  # textured pixels sampled per frame
SURFACE = 0.05  # a carried pixel lands on the same surface where the depth there is within 5 %
MIN_LANDED = 200  # pixels landing on the same surface a pair of cameras needs, as given
MARGIN = 1.1  # a reading is claimed where it agrees this many times better than the inputs as given
MAX_CARRIED = 1 << 21  # carried pixels × readings `colour_errors` holds at once (~50 MB per float64 coordinate)
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
    # what every reading carries (`carried_pixels`): the same pixels through other Ks or poses
    _carried: tuple | None = field(default=None, init=False, repr=False)

    def errors(self, Ks: Tensor | None = None, camtoworlds: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean absolute colour differences 0..1 (S,) float64 (nan where nothing lands) where the carried pixels land
        on the same surface, and how many (S,), with each of S readings' intrinsics (S,V,3,3) and / or poses
        (S,V,4,4) (default: as given) at once."""
        if self._carried is None:
            self._carried = carried_pixels(self.depths, self.sources, self.pairs)
        n = len(Ks) if Ks is not None else len(camtoworlds) if camtoworlds is not None else 1
        return colour_errors(self.images, self.depths, (self.Ks if Ks is None else Ks).expand(n, -1, -1, -1),
                             (self.camtoworlds if camtoworlds is None else camtoworlds).expand(n, -1, -1, -1),
                             self._carried)


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


def carried_pixels(depths: Tensor, sources: list, pairs: list) -> tuple[Tensor, ...]:
    """The sampled pixels `sources` (per view: (N,2) integer pixel coordinates, (N,3) colours) of every (i, j) in
    pairs, flattened pair by pair: their homogeneous pixels times their depth (u·d, v·d, d) (P,3) float64, colours
    (P,3), views j (P,) and how many each pair holds (Q,); the pairs' views i and j (Q,)."""
    src = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    dst = torch.tensor([j for _, j in pairs], dtype=torch.long)
    counts = torch.tensor([len(sources[i][0]) for i, _ in pairs], dtype=torch.long)
    if not int(counts.sum()):
        return torch.zeros(0, 3, dtype=torch.float64), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), counts, \
            src, dst
    uv = torch.cat([sources[i][0] for i, _ in pairs])
    d = depths[src.repeat_interleave(counts), uv[:, 1], uv[:, 0]].double()
    xyd = torch.cat([uv.double(), torch.ones(len(uv), 1, dtype=torch.float64)], 1) * d[:, None]
    return xyd, torch.cat([sources[i][1] for i, _ in pairs]), dst.repeat_interleave(counts), counts, src, dst


def colour_errors(images: Tensor, depths: Tensor, Ks: Tensor, c2w: Tensor, carried: tuple[Tensor, ...]
                  ) -> tuple[Tensor, Tensor]:
    """(mean absolute colour difference 0..1 (S,) float64, nan where none land; pixels (S,)) of the `carried_pixels`
    carried with their depth through each of S readings' intrinsics Ks (S,V,3,3) and poses c2w (S,V,4,4) from view i
    into view j of their pair, where they land on the same surface; images (V,H,W,3) and depths (V,H,W) of the views.
    Every pair and reading at once: a reading of a rig tries ~100 intrinsics or poses per pair of cameras."""
    xyd, colour, j, counts, src, dst = carried
    S = len(Ks)
    if not len(xyd):
        return torch.full((S,), float("nan"), dtype=torch.float64), torch.zeros(S, dtype=torch.long)
    if S > 1 and S * len(xyd) > MAX_CARRIED:  # memory bounded (a long window's every frame): readings in chunks
        step = max(1, MAX_CARRIED // len(xyd))
        parts = [colour_errors(images, depths, Ks[k:k + step], c2w[k:k + step], carried) for k in range(0, S, step)]
        return torch.cat([e for e, _ in parts]), torch.cat([n for _, n in parts])
    V, H, W = depths.shape
    Ks, c2w = Ks.double(), c2w.double()
    rel = torch.linalg.inv(c2w[:, dst]) @ c2w[:, src]  # (S,Q,4,4): view i's frame -> view j's
    # pixel·depth in view i -> pixel·z in view j, per pair: K_j R K_i^-1 and K_j t (K's last row is 0 0 1: the third
    # coordinate is z)
    M = Ks[:, dst] @ rel[..., :3, :3] @ torch.linalg.inv(Ks[:, src])
    t = (Ks[:, dst] @ rel[..., :3, 3:])[..., 0]
    p = torch.cat([x @ M[:, k].transpose(-1, -2) + t[:, k, None] for k, x in enumerate(xyd.split(counts.tolist()))],
                  1)  # (S,P,3)
    z = p[..., 2]
    u, v = p[..., 0] / z.clamp_min(1e-9), p[..., 1] / z.clamp_min(1e-9)  # pixel centres at integers (ROS)
    inside = (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
    # (what lands outside, or nowhere: z = 0 or a degenerate pose's NaN, is not counted)
    u, v = u.nan_to_num(0.0).clamp(0, W - 1), v.nan_to_num(0.0).clamp(0, H - 1)
    there = depths.reshape(-1)[(j * H + v.round().long()) * W + u.round().long()]
    same = inside & (there > 0) & ((there - z).abs() <= SURFACE * z)
    # bilinear, as grid_sample(align_corners=True) samples
    u0, v0 = u.floor().long().clamp(max=max(W - 2, 0)), v.floor().long().clamp(max=max(H - 2, 0))
    fu, fv = (u - u0).float()[..., None], (v - v0).float()[..., None]
    du, dv = int(W > 1), int(H > 1) * W
    flat = images.reshape(V * H * W, 3)
    at = (j * H + v0) * W + u0
    seen = (flat[at] * (1 - fu) + flat[at + du] * fu) * (1 - fv) \
        + (flat[at + dv] * (1 - fu) + flat[at + dv + du] * fu) * fv
    diff = torch.where(same, (seen - colour).abs().mean(-1), 0.0).double().sum(1)
    landed = same.sum(1)
    return torch.where(landed > 0, diff / landed.clamp_min(1), float("nan")), landed


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
