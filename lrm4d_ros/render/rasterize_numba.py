"""Compiled CPU backend: projection, tile binning and blending as numba kernels (numba_kernels.py), forward
and backward, in one autograd Function. Same signature and outputs as `rasterize_torch.rasterize`, and the same
pixels: that module is the reference this one is tested against (the projection here runs in float64 for either
input dtype, so on ill-conditioned float32 inputs this one is the closer to exact).

Gradients reach means, covars, opacities and colors (and the background, through the compositing in torch).
Camera poses and intrinsics get none: where viewmats or Ks require a gradient, the torch reference renders.
`depth_weights` (how much each Gaussian counts in the depth) need no pass of their own where nothing needs a
gradient: the blend's [1, z] columns become [d, d·z] after the entries are sorted by z, and the alpha is 1 − the
final transmittance (the same sum: each weight is the transmittance it takes away); with gradients, a second,
forward-only pass gives the depth.
Threads: `torch.get_num_threads()` (at most numba's NUMBA_NUM_THREADS; torch's count is kept when the first call
starts numba's threads). Calls are serialised by a lock: numba's workqueue threading layer (used where neither
OpenMP nor TBB is found) must not be entered from two threads, and the scratch arrays reused from call to call
(`_Scratch`) are shared.
The kernels compile on first use (tens of seconds) and numba caches them on disk, beside this package or,
where that is read-only, in ~/.cache/numba ($NUMBA_CACHE_DIR overrides both); `warm_up()` does it up front.
"""
from __future__ import annotations

import threading
import time
import weakref

import numba  # noqa: F401  (an ImportError here is how render() learns to fall back to torch)
import numpy as np
import torch
from torch import Tensor

from ..cpu_kernels import numba_threads
from . import numba_kernels as nk
from . import rasterize_torch
from .projection import ALPHA_THRESHOLD, EPS2D, FOV_CLAMP_MARGIN, MAX_EXTEND, test_scene

_LOCK = threading.Lock()
_CHUNKS_PER_THREAD = 8  # projection work items per thread
ONE_PASS_PAIRS = 1 << 22  # up to this many (camera, Gaussian) pairs the projection runs once (~84 B each)
KEPT_BYTES = 96 << 20  # scratch arrays up to this size are kept between calls


class _Scratch:
    """Arrays reused from call to call (the calls hold _LOCK): a fresh array of tens of megabytes per call can cost
    more in page faults than the kernel that fills it. Grown as needed; arrays over KEPT_BYTES are not kept."""

    def __init__(self):
        self.arrays: dict = {}
        self.entries: dict = {}  # dtype -> (the projection's C*N-row arrays, weak reference to the scene using them)

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        size = int(np.prod(shape))
        a = self.arrays.get((name, np.dtype(dtype)))
        if a is None or a.size < size:
            a = np.empty(size, dtype)
            if a.nbytes <= KEPT_BYTES:
                self.arrays[name, np.dtype(dtype)] = a
        return a[:size].reshape(shape)

    def entry_arrays(self, dtype) -> tuple:
        """The projection's (index, geo, feat, boxes) arrays kept from an earlier call, if the scene that used them
        is gone (a render's scene is gone once its forward returns; training holds several until their backward),
        else four empty arrays (the projection then makes new ones)."""
        held = self.entries.get(np.dtype(dtype))
        if held is not None and held[1]() is None:
            return held[0]
        return (np.empty(0, np.int64), np.empty((0, 6), dtype), np.empty((0, 5), dtype), np.empty((0, 4), np.int64))

    def keep_entry_arrays(self, arrays: tuple, scene) -> None:
        """Keep the projection's arrays (up to KEPT_BYTES together) for a later call once `scene` is gone."""
        if sum(a.nbytes for a in arrays) <= KEPT_BYTES:
            self.entries[arrays[1].dtype] = (arrays, weakref.ref(scene))


_SCRATCH = _Scratch()


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _cameras(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> np.ndarray:
    """(C, numba_kernels.CAM_COLUMNS) float64 rows: R, t, fx, fy, cx, cy and projection.py's clamp limits."""
    V, K = viewmats.detach().double().numpy(), Ks.detach().double().numpy()
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    return np.ascontiguousarray(np.concatenate([
        V[:, :3, :3].reshape(-1, 9), V[:, :3, 3], np.stack([
            fx, fy, cx, cy,
            (width - (cx + 0.5)) / fx + FOV_CLAMP_MARGIN * tan_x, (cx + 0.5) / fx + FOV_CLAMP_MARGIN * tan_x,
            (height - (cy + 0.5)) / fy + FOV_CLAMP_MARGIN * tan_y, (cy + 0.5) / fy + FOV_CLAMP_MARGIN * tan_y],
            axis=1)], axis=1))


class _Scene:
    """The numpy side of one call: inputs, visible entries binned to tiles, and the forward's per-pixel state."""

    def __init__(self, means, covars, opacities, colors, viewmats, Ks, width, height, near, far, depth_weights=None):
        self.arrays = [_np(t) for t in (means, covars, opacities, colors)]
        self.depth_weights = None if depth_weights is None else _np(depth_weights.to(means.dtype))
        self.cams = _cameras(viewmats, Ks, width, height)
        self.width, self.height, self.n_cams = width, height, viewmats.shape[0]
        self.tiles_x, self.tiles_y = -(-width // nk.TILE), -(-height // nk.TILE)
        self.n_pix = self.n_cams * width * height
        dtype = self.arrays[0].dtype
        self.coords = np.arange(max(self.tiles_x, self.tiles_y) * nk.TILE, dtype=dtype)
        self.consts = np.array([0.5, rasterize_torch.MAX_ALPHA, ALPHA_THRESHOLD, 0.0], dtype=dtype)
        self.params = np.array([EPS2D, MAX_EXTEND, ALPHA_THRESHOLD, near, far, rasterize_torch.T_MIN,
                                rasterize_torch.LAYER_GAP])

    def forward(self, n_threads: int, seconds: dict | None = None, median: bool = False) -> np.ndarray:
        """-> per-pixel sums (C*H*W,5) of w·[r,g,b,1,z] (w·[r,g,b,d,d·z] for a scene made with depth_weights d:
        forward only); median: a sixth column, the median layer's depth (numba_kernels.blend_forward).
        seconds: receives each stage's wall time (projection, binning, blending: benchmarks/bench_render.py
        --stages)."""
        means, covars, opacities, colors = self.arrays
        t0 = time.perf_counter()
        log_ratio = _SCRATCH.get("log_ratio", opacities.shape, np.float64)
        np.divide(opacities, self.params[nk.ALPHA_MIN64], out=log_ratio, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # opacity 0 or NaN: not visible, whatever the log
            np.log(log_ratio, out=log_ratio)
        one_pass = self.n_cams * means.shape[0] <= ONE_PASS_PAIRS
        *arrays, M = nk.project_entries(
            means, covars, opacities, colors, log_ratio, self.cams, self.width, self.height, self.params,
            n_threads * _CHUNKS_PER_THREAD, one_pass, *_SCRATCH.entry_arrays(means.dtype))
        if one_pass:
            _SCRATCH.keep_entry_arrays(tuple(arrays), self)
        self.index, self.geo, self.feat, self.boxes = (a[:M] for a in arrays)
        t1 = time.perf_counter()
        depth = np.ascontiguousarray(self.feat[:, 4])
        keys = depth.view(np.int32 if depth.dtype == np.float32 else np.int64).astype(np.int64)  # depths > 0
        self.tile_start, self.tile_entries, self.entry_start, self.slot = nk.bin_tiles(
            keys, self.boxes, self.index, means.shape[0], self.tiles_x, self.tiles_y, self.n_cams,
            n_threads * _CHUNKS_PER_THREAD)
        if self.depth_weights is not None:  # the entries are sorted: their z may now be weighted
            d = self.depth_weights[self.index % means.shape[0]]
            self.feat[:, 3] = d
            self.feat[:, 4] *= d
        t2 = time.perf_counter()
        out = np.zeros((self.n_pix, 6 if median else 5), self.geo.dtype)
        if median:
            out[:, 5] = -1.0
        self.t_final = np.ones(self.n_pix, np.float64)
        self.n_used = np.zeros(self.n_pix, np.int32)
        if len(self.index):
            nk.blend_forward(*self._layout(), n_threads, out, self.t_final, self.n_used)
        if seconds is not None:
            seconds.update(projection=t1 - t0, binning=t2 - t1, blending=time.perf_counter() - t2)
        return out

    def backward(self, grad_out: np.ndarray, n_threads: int) -> list[np.ndarray]:
        """grad_out (C*H*W,5) -> ∂L/∂ means, covars, opacities, colors."""
        means, covars = self.arrays[:2]
        if not len(self.index):
            return [np.zeros_like(a) for a in self.arrays]
        grads = [np.empty_like(a) for a in self.arrays]  # entries_backward writes every row
        isect_grad = _SCRATCH.get("isect_grad", (self.tile_entries.shape[0], 11), self.geo.dtype)  # all rows written
        nk.blend_backward(*self._layout(), n_threads, self.t_final, self.n_used, grad_out, self.slot, isect_grad)
        cam_start = np.searchsorted(self.index, np.arange(self.n_cams + 1) * means.shape[0])
        nk.entries_backward(means, covars, self.cams, self.params, self.index, cam_start, self.entry_start,
                            isect_grad, *grads)
        return grads

    def _layout(self) -> tuple:
        return (self.geo, self.feat, self.boxes, self.tile_start, self.tile_entries, self.width, self.height,
                self.tiles_x, self.tiles_y, self.coords, self.consts, self.params)


class _Rasterize(torch.autograd.Function):
    """(means, covars, opacities, colors) -> per-pixel sums (C*H*W,5) of w·[r,g,b,1,z]."""

    @staticmethod
    def forward(ctx, means, covars, opacities, colors, viewmats, Ks, width, height, near, far):
        scene = _Scene(means, covars, opacities, colors, viewmats, Ks, width, height, near, far)
        with _LOCK:
            out = scene.forward(numba_threads())
        ctx.scene, ctx.dtype = scene, means.dtype
        return torch.from_numpy(out)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        scene = ctx.scene
        with _LOCK:
            grads = scene.backward(_np(grad_out.to(ctx.dtype)), numba_threads())
        return (*(torch.from_numpy(g) for g in grads), None, None, None, None, None, None)


def rasterize(means: Tensor, covars: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
              width: int, height: int, backgrounds: Tensor, near: float, far: float,
              depth_weights: Tensor | None = None, median: bool = False) -> tuple[Tensor, ...]:
    """Render N Gaussians into C cameras on the CPU.

    means (N,3), covars (N,3,3), opacities (N,), colors (N,3), viewmats (C,4,4) world-to-camera, Ks (C,3,3)
    ROS convention, backgrounds (C,3) -> colors (C,H,W,3), alphas (C,H,W,1), expected z-depths (C,H,W,1); with
    depth_weights (N,) d, the depths are Σ w·d·z / Σ w·d, and Σ w·d (C,H,W,1) follows (neither with a gradient).
    median: the depths are those of the layer where Σ w·d (Σ w without depth_weights) reaches one half along the
    ray (rasterize_torch._median_depths), the expected depth where it never does (no gradient).
    """
    if viewmats.requires_grad or Ks.requires_grad:
        return rasterize_torch.rasterize(means, covars, opacities, colors, viewmats, Ks, width, height, backgrounds,
                                         near, far, depth_weights=depth_weights, median=median)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (means, covars, opacities, colors))
    if (depth_weights is None and not median) or grad:
        sums = _Rasterize.apply(means, covars, opacities, colors, viewmats, Ks, width, height, near, far)
        out = rasterize_torch.composite(sums, backgrounds, height, width)
        if depth_weights is None and not median:
            return out
        with torch.no_grad():
            _, _, depths, *depth_alphas = rasterize(means, covars, opacities, colors, viewmats, Ks, width, height,
                                                    backgrounds, near, far, depth_weights, median)
        return out[0], out[1], depths, *depth_alphas
    scene = _Scene(means, covars, opacities, colors, viewmats, Ks, width, height, near, far, depth_weights)
    with _LOCK:
        sums = torch.from_numpy(scene.forward(numba_threads(), median=median))
    out = rasterize_torch.composite_weighted_depth(sums[:, :5], torch.from_numpy(1.0 - scene.t_final), backgrounds,
                                                   height, width)
    depths = out[2]
    if median:
        mid = sums[:, 5].reshape(depths.shape)
        depths = torch.where(mid >= 0, mid, depths)
    return out[0], out[1], depths, None if depth_weights is None else out[3]


def warm_up() -> None:
    """Compile the float32 kernels (or load them from numba's cache) and check them on a tiny scene."""
    with torch.inference_mode(False), torch.enable_grad():
        means, *rest = test_scene()
        means.requires_grad_()
        out = rasterize(means, *rest)
        sum(o.sum() for o in out).backward()
    if not (out[1].max().item() > 0.5 and means.grad.abs().sum().item() > 0):
        raise RuntimeError("the compiled rasterizer drew its test scene wrongly")
