"""A depth image registered to a colour camera, as depth_image_proc's register node does it: for robots that record
their depth camera's own image (its frame, size and intrinsics) rather than the driver's aligned depth.

Each measured depth pixel is back-projected with the depth camera's intrinsics, moved into the colour camera's
optical frame and projected with the colour intrinsics; the colour pixels whose centres its footprint covers (the
projection of its pixel square, at least the one under its centre: depth_image_proc's fill_upsampling_holes) get its
z-depth there, the nearest surface winning where several land (a z-buffer). Colour pixels no depth pixel reaches
stay 0 (no measurement). No learned parameters.
"""
from __future__ import annotations

import math

import numpy as np

from ..cpu_kernels import compile_kernel, run_parts

MAX_FOOTPRINT = 8  # colour pixels per side a depth pixel may cover (colour at most this much finer than depth)
_STATE: list[bool] = []  # [usable] once the kernel has compiled (or failed to)
# the pixel's centre, then its square's corners (the order the reference projects them in)
_OFFSETS = np.array([(0.0, 0.0), (-0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (0.5, -0.5)])


def register_depth(depth: np.ndarray, K_depth: np.ndarray, colour_from_depth: np.ndarray, K_colour: np.ndarray,
                   size: tuple[int, int]) -> np.ndarray:
    """depth (h,w) z-depth in metres of the depth camera (0 or non-finite: none); K_depth (3,3); colour_from_depth
    (4,4) the depth camera's optical frame in the colour camera's; K_colour (3,3); size (W,H) of the colour image
    -> (H,W) float32 z-depth in the colour camera, 0 = none. Compiled (numba; 848x480 onto 640x480 in ~9 ms against
    numpy's ~39, benchmarks/bench_register.py: a node registers every depth image of a camera);
    `register_depth_reference` where it cannot run (one warning)."""
    W, H = size
    if not (_STATE and not _STATE[0]):
        A, Kt = _pixel_map(K_depth, colour_from_depth, K_colour)
        out = np.full(H * W, np.inf)
        args = (np.ascontiguousarray(depth, np.float64), A, Kt, int(W), int(H), MAX_FOOTPRINT, _OFFSETS, out)
        if run_parts(_register, [args], _STATE, "depth registration", "numpy's is used"):
            out[~np.isfinite(out)] = 0.0
            return out.reshape(H, W).astype(np.float32)
    return register_depth_reference(depth, K_depth, colour_from_depth, K_colour, size)


def _pixel_map(K_depth, colour_from_depth, K_colour) -> tuple[np.ndarray, np.ndarray]:
    """(A (3,3), Kt (3,)) with K_colour · (point in the colour frame) = z · A · [u, v, 1] + Kt for the depth pixel
    (u, v) at z-depth z: A = K_colour R K_depth⁻¹, Kt = K_colour t (R, t: colour_from_depth). The last entry is the
    colour camera's z-depth (K_colour's last row is [0, 0, 1])."""
    T = np.asarray(colour_from_depth, np.float64)
    Kc = np.asarray(K_colour, np.float64)
    A = Kc @ T[:3, :3] @ np.linalg.inv(np.asarray(K_depth, np.float64))
    return np.ascontiguousarray(A), np.ascontiguousarray(Kc @ T[:3, 3])


@compile_kernel
def _register(depth, A, Kt, W, H, max_fp, offsets, out):
    """register_depth_reference's arithmetic per depth pixel, each footprint z-buffered into out (H*W,) (inf =
    none)."""
    h, w = depth.shape
    xs = np.empty(5)
    ys = np.empty(5)
    zs = np.empty(5)
    for v in range(h):
        for u in range(w):
            z = depth[v, u]
            if not (math.isfinite(z) and z > 0):
                continue
            for k in range(5):
                a, b = u + offsets[k, 0], v + offsets[k, 1]
                q2 = (A[2, 0] * a + A[2, 1] * b + A[2, 2]) * z + Kt[2]
                xs[k] = ((A[0, 0] * a + A[0, 1] * b + A[0, 2]) * z + Kt[0]) / q2
                ys[k] = ((A[1, 0] * a + A[1, 1] * b + A[1, 2]) * z + Kt[1]) / q2
                zs[k] = q2
            zc = zs[0]
            if not (zc > 0 and math.isfinite(xs[0]) and math.isfinite(ys[0])):
                continue
            if not (zs[1] > 0 and zs[2] > 0 and zs[3] > 0 and zs[4] > 0):
                continue
            cx, cy = np.rint(xs[0]), np.rint(ys[0])
            x0 = min(math.ceil(min(xs[1], xs[2], xs[3], xs[4])), cx)
            x1 = max(math.floor(max(xs[1], xs[2], xs[3], xs[4])), cx)
            y0 = min(math.ceil(min(ys[1], ys[2], ys[3], ys[4])), cy)
            y1 = max(math.floor(max(ys[1], ys[2], ys[3], ys[4])), cy)
            x1, y1 = min(x1, x0 + max_fp - 1), min(y1, y0 + max_fp - 1)
            for qy in range(max(int(y0), 0), min(int(y1), H - 1) + 1):
                for qx in range(max(int(x0), 0), min(int(x1), W - 1) + 1):
                    i = qy * W + qx
                    if zc < out[i]:
                        out[i] = zc


def register_depth_reference(depth: np.ndarray, K_depth: np.ndarray, colour_from_depth: np.ndarray,
                             K_colour: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """register_depth in numpy: the reference the kernel is tested against, and its fallback."""
    W, H = size
    h, w = depth.shape
    d = np.asarray(depth, np.float64)
    v, u = np.nonzero(np.isfinite(d) & (d > 0))
    z = d[v, u]
    out = np.full(H * W, np.inf)
    if z.size:
        A, Kt = _pixel_map(K_depth, colour_from_depth, K_colour)
        corners = []
        for du, dv in ((0.0, 0.0), (-0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (0.5, -0.5)):  # centre, then the square
            a, b = u + du, v + dv
            q = [(A[i, 0] * a + A[i, 1] * b + A[i, 2]) * z + Kt[i] for i in range(3)]  # the kernel's order
            corners.append((q[0] / q[2], q[1] / q[2], q[2]))
        xc, yc, zc = corners[0]
        xs, ys = np.stack([c[0] for c in corners[1:]]), np.stack([c[1] for c in corners[1:]])
        ok = (zc > 0) & np.isfinite(xc) & np.isfinite(yc) & (np.stack([c[2] for c in corners[1:]]) > 0).all(0)
        cx, cy = np.rint(xc), np.rint(yc)
        x0 = np.minimum(np.ceil(xs.min(0)), cx)
        x1 = np.maximum(np.floor(xs.max(0)), cx)
        y0 = np.minimum(np.ceil(ys.min(0)), cy)
        y1 = np.maximum(np.floor(ys.max(0)), cy)
        x1, y1 = np.minimum(x1, x0 + MAX_FOOTPRINT - 1), np.minimum(y1, y0 + MAX_FOOTPRINT - 1)
        span_x = int(np.max(x1 - x0, initial=0.0, where=ok)) + 1
        span_y = int(np.max(y1 - y0, initial=0.0, where=ok)) + 1
        for dy in range(span_y):
            for dx in range(span_x):
                px, py = x0 + dx, y0 + dy
                m = ok & (px <= x1) & (py <= y1) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
                if not m.any():
                    continue
                np.minimum.at(out, (py[m] * W + px[m]).astype(np.int64), zc[m])
    out[~np.isfinite(out)] = 0.0
    return out.reshape(H, W).astype(np.float32)
