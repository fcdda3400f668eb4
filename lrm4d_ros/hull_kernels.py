"""The visual hull's sweep compiled for the CPU (silhouettes.hull_depths); the torch version is the reference and the
fallback (GPU tensors, or numba unable to compile).

`entry`: where each foreground pixel's ray enters the hull of the other views' foregrounds, on the sweep's depths.
A pixel's depths are walked nearest first, each through the carving views, and the walk stops once the answer is
sure: the first depth that every view which sees it sees on foreground, seen by enough views whatever the rest of
the ray holds (MIN_SEEN of all the carving views), before which no depth can still qualify. In torch the sweep
is (pixels, depths, 3) points through every view, most of an object-centric RGB reconstruction. Each view's
foreground is read as silhouettes._carve reads it: grid_sample's nearest pixel (the sample point through float32,
as grid_sample takes it), nothing outside the image.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .cpu_kernels import compile_kernel, run_parts, spans

MIN_PART = 512  # pixels: fewer are not worth a thread
_STATE: list[bool] = []  # [usable] once the first call has compiled (or failed to)


@compile_kernel
def hull_entry(origin, rays, zs, masks, Ks, w2c, views, min_seen, out):
    """origin (3,) the camera's centre and rays (N,3) its pixels' z-rays (float64; the point at z-depth z is
    origin + rays·z); zs (D,) float64 the sweep's z-depths, ascending; masks (V,H,W) bool foregrounds; Ks (V,3,3),
    w2c (V,4,4) float64; views (U,) int64 the carving views; min_seen: silhouettes.MIN_SEEN -> out (N,) float32
    filled with the first z where the ray is in the hull (every view that sees the point sees it on foreground, at
    least 2 and MIN_SEEN of the most that see any point of the ray do), 0 where it never is."""
    H, W = masks.shape[1], masks.shape[2]
    U, D = views.shape[0], zs.shape[0]
    f1, f2 = np.float32(1.0), np.float32(2.0)
    fw, fh = np.float32(W), np.float32(H)
    cand = np.empty(D, np.int64)  # depths where every view that sees the point sees foreground, by ≥ 2 views
    cand_seen = np.empty(D)
    sure = min_seen * U  # a candidate seen by this many qualifies whatever the ray's most
    for i in range(rays.shape[0]):
        most = 0.0
        nc = 0
        found = -1
        for k in range(D):
            x = origin[0] + rays[i, 0] * zs[k]
            y = origin[1] + rays[i, 1] * zs[k]
            z = origin[2] + rays[i, 2] * zs[k]
            n_fg = n_in = 0.0
            for j in range(U):
                u = views[j]
                R, K = w2c[u], Ks[u]
                cx = x * R[0, 0] + y * R[0, 1] + z * R[0, 2] + R[0, 3]  # in silhouettes._carve's order
                cy = x * R[1, 0] + y * R[1, 1] + z * R[1, 2] + R[1, 3]
                pz = x * R[2, 0] + y * R[2, 1] + z * R[2, 2] + R[2, 3]
                r = max(pz, 1e-6)
                px = (cx * K[0, 0] + cy * K[0, 1] + pz * K[0, 2]) / r
                py = (cx * K[1, 0] + cy * K[1, 1] + pz * K[1, 2]) / r
                if not ((pz > 1e-3) & (px > -0.5) & (px < W - 0.5) & (py > -0.5) & (py < H - 0.5)):
                    continue
                n_in += 1.0
                # grid_sample (nearest, align_corners=False): the grid in float32, back to pixels, half to even
                gx = np.float32((px + 0.5) / W * 2.0 - 1.0)
                gy = np.float32((py + 0.5) / H * 2.0 - 1.0)
                ix = np.rint(((gx + f1) * fw - f1) / f2)
                iy = np.rint(((gy + f1) * fh - f1) / f2)
                if 0 <= ix < W and 0 <= iy < H and masks[u, int(iy), int(ix)]:
                    n_fg += 1.0
            most = max(most, n_in)
            if n_fg >= n_in and n_in >= 2:
                cand[nc], cand_seen[nc] = k, n_in
                nc += 1
                if n_in >= sure:  # this one qualifies: the first candidate that still may is the answer if it is sure
                    for c in range(nc):
                        if cand_seen[c] >= min_seen * most:
                            found = cand[c] if cand_seen[c] >= sure else -1
                            break
                    if found >= 0:
                        break
        if found < 0:  # the whole ray walked: the first candidate seen by MIN_SEEN of its most
            for c in range(nc):
                if cand_seen[c] >= min_seen * most:
                    found = cand[c]
                    break
        out[i] = np.float32(zs[found]) if found >= 0 else np.float32(0.0)


def entry(origin: Tensor, rays: Tensor, zs: Tensor, masks: Tensor, Ks: Tensor, w2c: Tensor, views: list[int],
          min_seen: float) -> Tensor | None:
    """silhouettes' hull entry compiled: a camera's centre (3,), its foreground pixels' z-rays (N,3), the sweep's
    z-depths (D,), foreground masks (V,1,H,W) float (> 0.5), Ks (V,3,3), w2c (V,4,4), the carving views, MIN_SEEN
    -> the hull's entry z-depth (N,) float32 (0: none), or None where the kernel cannot run (one warning, and the
    caller's torch version from then on). The pixels are shared among torch's threads."""
    if _STATE and not _STATE[0]:
        return None
    r = rays.detach().double().contiguous().numpy()
    out = np.empty(len(r), np.float32)
    args = (origin.detach().double().contiguous().numpy(), zs.detach().double().contiguous().numpy(),
            (masks.detach()[:, 0] > 0.5).contiguous().numpy(), Ks.double().contiguous().numpy(),
            w2c.double().contiguous().numpy(), np.asarray(views, np.int64), float(min_seen))
    parts = [(args[0], r[a:b], *args[1:], out[a:b]) for a, b in spans(len(r), MIN_PART)]
    if not run_parts(hull_entry, parts, _STATE, "hull sweep", "silhouettes are carved with torch"):
        return None
    return torch.from_numpy(out)
