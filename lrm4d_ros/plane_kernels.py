"""A compiled `PlaneViews.sample` for the CPU (floor.py): a plane's points take their colour from the input views
that show them. The torch version is the reference and the fallback (GPU tensors, or numba unable to compile);
this one gives the same colours to float32 rounding, 3x sooner on one thread (4.5x on two: 49.7k floor points of
12 views, 34 -> 10.7 / 7.5 ms). Where a 256² render sees floor, the torch version's V-batched grid_sample and the
(V, N) weights around it were most of the render.

Per point, every view: project it, read the view's colour and `shows` bilinearly (grid_sample's bilinear with
border padding, align_corners=False), weigh the views that show it (floor.py's log-space weights), softmax over
them. Each point's views are a loop, so nothing of size (V, N) is made.
"""
from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit
from torch import Tensor

POWER, SHARPNESS, ANGLE = range(3)  # consts' entries: floor.py's SHOWS_POWER, VIEW_SHARPNESS, VIEW_ANGLE


def _compile(fn):
    # one thread, the GIL released: no numba threading layer to share with the rasterizer's kernels, which a
    # node's threads may run at the same time. numba's on-disk cache where a directory is writable.
    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:
        return njit(nogil=True, error_model="numpy")(fn)


@njit(inline="always")
def _bilinear(stack, v, y0, y1, x0, x1, ch, w00, w01, w10, w11):
    return (stack[v, y0, x0, ch] * w00 + stack[v, y0, x1, ch] * w01 + stack[v, y1, x0, ch] * w10
            + stack[v, y1, x1, ch] * w11)


@_compile
def sample_plane_views(stack, project, centres, focal, normal, points, dirs, consts, colors, sure):
    """stack (V,H,W,4) float32: the views' RGB and `shows`; project (V,4,3): [x, 1] -> (u·w, v·w, w) in
    grid_sample's [-1, 1]; centres (V,3), focal (V,) fx·fy, normal (3,); points, dirs (N,3) the plane's points and
    the unit target rays; consts (3,) SHOWS_POWER, VIEW_SHARPNESS, VIEW_ANGLE -> colors (N,3), sure (N,) filled."""
    V, H, W = stack.shape[0], stack.shape[1], stack.shape[2]
    N = points.shape[0]
    power, sharpness, angle = consts[POWER], consts[SHARPNESS], consts[ANGLE]
    n0, n1, n2 = float(normal[0]), float(normal[1]), float(normal[2])
    log_w = np.empty(V)
    rgb = np.empty((V, 3))
    for i in range(N):
        px, py, pz = float(points[i, 0]), float(points[i, 1]), float(points[i, 2])
        dx, dy, dz = float(dirs[i, 0]), float(dirs[i, 1]), float(dirs[i, 2])
        top = -np.inf
        best = 0.0
        for v in range(V):
            log_w[v] = -np.inf
            u = project[v, 0, 0] * px + project[v, 1, 0] * py + project[v, 2, 0] * pz + project[v, 3, 0]
            t = project[v, 0, 1] * px + project[v, 1, 1] * py + project[v, 2, 1] * pz + project[v, 3, 1]
            w = project[v, 0, 2] * px + project[v, 1, 2] * py + project[v, 2, 2] * pz + project[v, 3, 2]
            gx, gy = u / max(w, 1e-9), t / max(w, 1e-9)
            if not (w > 1e-6 and abs(gx) <= 1.0 and abs(gy) <= 1.0):
                continue
            x = min(max(((gx + 1.0) * W - 1.0) / 2.0, 0.0), W - 1.0)
            y = min(max(((gy + 1.0) * H - 1.0) / 2.0, 0.0), H - 1.0)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            x1, y1 = min(x0 + 1, W - 1), min(y0 + 1, H - 1)
            ax, ay = x - x0, y - y0
            w00, w01, w10, w11 = (1.0 - ax) * (1.0 - ay), ax * (1.0 - ay), (1.0 - ax) * ay, ax * ay
            shows = min(max(_bilinear(stack, v, y0, y1, x0, x1, 3, w00, w01, w10, w11), 0.0), 1.0)
            best = max(best, shows)
            if not shows > 0.0:
                continue
            cx, cy, cz = centres[v, 0], centres[v, 1], centres[v, 2]
            ex, ey, ez = px - cx, py - cy, pz - cz
            dist2 = max(ex * ex + ey * ey + ez * ez, 1e-18)
            inv = 1.0 / np.sqrt(dist2)
            incidence = abs(ex * n0 + ey * n1 + ez * n2) * inv
            log_area = np.log(dist2) - np.log(focal[v] * max(incidence, 1e-3))
            cos = (ex * dx + ey * dy + ez * dz) * inv
            log_w[v] = power * np.log(max(shows, 1e-30)) - sharpness * log_area + (cos - 1.0) / angle
            top = max(top, log_w[v])
            for ch in range(3):
                rgb[v, ch] = _bilinear(stack, v, y0, y1, x0, x1, ch, w00, w01, w10, w11)
        sure[i] = best
        colors[i, 0] = colors[i, 1] = colors[i, 2] = 0.0
        if top == -np.inf:
            continue
        total = 0.0
        r = g = b = 0.0
        for v in range(V):
            if log_w[v] == -np.inf:
                continue
            e = np.exp(log_w[v] - top)
            total += e
            r += e * rgb[v, 0]
            g += e * rgb[v, 1]
            b += e * rgb[v, 2]
        colors[i, 0], colors[i, 1], colors[i, 2] = r / total, g / total, b / total


MIN_PART = 4096  # points: fewer are not worth a thread
_STATE: list[bool] = []  # [usable] once the first call has compiled (or failed to)
_POOL: list[ThreadPoolExecutor] = []  # made on first use


_POOL_LOCK = threading.Lock()  # a node renders from more than one thread


def _pool() -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()),
                                            thread_name_prefix="plane_kernels"))
        return _POOL[0]


def sample(stack: Tensor, project: Tensor, centres: Tensor, focal: Tensor, normal: Tensor, points: Tensor,
           dirs: Tensor, consts: tuple[float, float, float]) -> tuple[Tensor, Tensor] | None:
    """`PlaneViews.sample` compiled: CPU tensors as `sample_plane_views` takes them (stack (V,H,W,4)) -> (colours
    (N,3), sure (N,)) in points' dtype, or None where the kernel cannot run (numba failed to compile: one
    warning, and the caller's torch version from then on). With more than one torch thread, the points are
    shared among that many threads."""
    if _STATE and not _STATE[0]:
        return None
    dt = points.dtype
    arrays = [t.detach().to(torch.float32).contiguous().numpy() for t in (
        stack, project, centres, focal, normal, points, dirs)]
    colors = np.empty((points.shape[0], 3), np.float32)
    sure = np.empty(points.shape[0], np.float32)
    try:
        consts = np.asarray(consts, np.float64)
        parts = max(1, min(torch.get_num_threads(), points.shape[0] // MIN_PART))
        if parts == 1:
            sample_plane_views(*arrays, consts, colors, sure)
        else:  # the kernel releases the GIL: threads share the points
            cut = np.linspace(0, points.shape[0], parts + 1).astype(int)
            futures = [_pool().submit(sample_plane_views, *arrays[:5], arrays[5][a:b], arrays[6][a:b], consts,
                                      colors[a:b], sure[a:b]) for a, b in zip(cut[:-1], cut[1:])]
            for f in futures:
                f.result()
        if not _STATE:
            _STATE.append(True)
    except Exception as exc:  # compiling or running it failed: the torch version from now on
        if not _STATE:
            _STATE.append(False)
        warnings.warn(f"compiled plane sampling unavailable ({type(exc).__name__}: {exc}); the floor's and walls' "
                      "views are read with torch instead", RuntimeWarning, stacklevel=3)
        return None
    return torch.from_numpy(colors).to(dt), torch.from_numpy(sure).to(dt)
