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
    -> (H,W) float32 z-depth in the colour camera, 0 = none. Compiled (numba; 848x480 onto 640x480 in ~15 ms against
    numpy's ~51, benchmarks/bench_register.py: a node registers every depth image of a camera);
    `register_depth_reference` where it cannot run (one warning)."""
    W, H = size
    if not (_STATE and not _STATE[0]):
        T = np.asarray(colour_from_depth, np.float64)
        out = np.full(H * W, np.inf)
        args = (np.ascontiguousarray(depth, np.float64), np.linalg.inv(np.asarray(K_depth, np.float64)),
                np.ascontiguousarray(T[:3, :3]), np.ascontiguousarray(T[:3, 3]),
                np.ascontiguousarray(K_colour, np.float64), int(W), int(H), MAX_FOOTPRINT, _OFFSETS, out)
        if run_parts(_register, [args], _STATE, "depth registration", "numpy's is used"):
            out[~np.isfinite(out)] = 0.0
            return out.reshape(H, W).astype(np.float32)
    return register_depth_reference(depth, K_depth, colour_from_depth, K_colour, size)


@compile_kernel
def _register(depth, Kinv, R, t, K, W, H, max_fp, offsets, out):
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
                rx = Kinv[0, 0] * a + Kinv[0, 1] * b + Kinv[0, 2]
                ry = Kinv[1, 0] * a + Kinv[1, 1] * b + Kinv[1, 2]
                rz = Kinv[2, 0] * a + Kinv[2, 1] * b + Kinv[2, 2]
                rx, ry, rz = rx * z, ry * z, rz * z
                px = R[0, 0] * rx + R[0, 1] * ry + R[0, 2] * rz + t[0]
                py = R[1, 0] * rx + R[1, 1] * ry + R[1, 2] * rz + t[1]
                pz = R[2, 0] * rx + R[2, 1] * ry + R[2, 2] * rz + t[2]
                xs[k] = (K[0, 0] * px + K[0, 1] * py) / pz + K[0, 2]
                ys[k] = K[1, 1] * py / pz + K[1, 2]
                zs[k] = pz
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
        Kinv = np.linalg.inv(np.asarray(K_depth, np.float64))
        R, t = np.asarray(colour_from_depth, np.float64)[:3, :3], np.asarray(colour_from_depth, np.float64)[:3, 3]
        K = np.asarray(K_colour, np.float64)
        corners = []
        for du, dv in ((0.0, 0.0), (-0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (0.5, -0.5)):  # centre, then the square
            rays = Kinv @ np.stack([u + du, v + dv, np.ones_like(z)])
            p = R @ (rays * z) + t[:, None]
            corners.append(((K[0, 0] * p[0] + K[0, 1] * p[1]) / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2], p[2]))
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
