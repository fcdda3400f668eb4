"""A depth image registered to a colour camera, as depth_image_proc's register node does it: for robots that record
their depth camera's own image (its frame, size and intrinsics) rather than the driver's aligned depth.

Each measured depth pixel is back-projected with the depth camera's intrinsics, moved into the colour camera's
optical frame and projected with the colour intrinsics; the colour pixels whose centres its footprint covers (the
projection of its pixel square, at least the one under its centre: depth_image_proc's fill_upsampling_holes) get its
z-depth there, the nearest surface winning where several land (a z-buffer). Colour pixels no depth pixel reaches
stay 0 (no measurement). No learned parameters.
"""
from __future__ import annotations

import numpy as np

MAX_FOOTPRINT = 8  # colour pixels per side a depth pixel may cover (colour at most this much finer than depth)


def register_depth(depth: np.ndarray, K_depth: np.ndarray, colour_from_depth: np.ndarray, K_colour: np.ndarray,
                   size: tuple[int, int]) -> np.ndarray:
    """depth (h,w) z-depth in metres of the depth camera (0 or non-finite: none); K_depth (3,3); colour_from_depth
    (4,4) the depth camera's optical frame in the colour camera's; K_colour (3,3); size (W,H) of the colour image
    -> (H,W) float32 z-depth in the colour camera, 0 = none."""
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
