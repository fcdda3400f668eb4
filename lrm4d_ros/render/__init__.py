"""The one rendering entry point: 3D Gaussians + posed pinhole cameras -> RGB, alpha and expected depth.

The backend is chosen by the device of `means`: gsplat (classic mode) on CUDA when it is importable, its kernels
build (`cuda_backend`; with one warning the PyTorch reference otherwise) and LRM4D_NO_GSPLAT is unset; on the CPU
the package's compiled tile rasterizer (numba, rasterize_numba.py), or, with one warning, its pure-PyTorch
reference (rasterize_torch.py) where numba cannot load or compile. All follow docs/design.md §3: `Ks` in ROS/OpenCV
convention (pixel centres at integer coordinates), camera-to-world poses in the optical frame.
"""
from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from ..cameras import invert_pose
from ..cpu_kernels import compile_note


class RenderOutput(NamedTuple):
    """colors (C,H,W,3) composited over the background, alphas (C,H,W,1) coverage Σwᵢ,
    depths (C,H,W,1) expected camera z-depth Σwᵢzᵢ/α in the units of `means` (0 where α = 0); rendered with depth
    weights dᵢ (`render(depth_weights=)`), Σwᵢdᵢzᵢ / Σwᵢdᵢ (0 where that is 0) and depth_alphas (C,H,W,1) Σwᵢdᵢ,
    the coverage of what the depth counts (None: every Gaussian counts fully, as alphas); the median depth
    instead with `render(depth_mode="median")`."""

    colors: Tensor
    alphas: Tensor
    depths: Tensor
    depth_alphas: Tensor | None = None


def _check(name: str, t: Tensor, shape: tuple, dtypes=(torch.float32, torch.float64)) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "(" + ",".join("?" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")


def _backgrounds(background: Tensor | None, C: int, like: Tensor) -> Tensor:
    if background is None:
        return torch.zeros(C, 3, dtype=like.dtype, device=like.device)
    if not isinstance(background, Tensor):
        background = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if background.shape == (3,):
        background = background.expand(C, 3)
    elif background.shape != (C, 3):
        raise ValueError(f"background must have shape (3,) or ({C},3), got {tuple(background.shape)}")
    return background.to(device=like.device, dtype=like.dtype)


def gsplat_available() -> bool:
    """True when the optional `gsplat` package (extra `cuda`) can be imported, LRM4D_NO_GSPLAT is not set, and its
    kernels have not failed to build here (`cuda_backend`)."""
    return (importlib.util.find_spec("gsplat") is not None and not os.environ.get("LRM4D_NO_GSPLAT")
            and _cuda[:1] != [("torch", None)])


_BACKEND_LOCK = threading.Lock()  # the backends below are chosen once, whichever thread renders first
_cuda: list[tuple[str, Callable | None]] = []  # the CUDA backend, chosen on first use


def cuda_backend() -> tuple[str, Callable]:
    """("gsplat", its rasterize) once gsplat's kernels build (or load) and draw a test scene; ("none", the reference
    rasterize) where gsplat is not installed (or LRM4D_NO_GSPLAT is set); ("torch", the reference rasterize) after
    one RuntimeWarning saying why where gsplat failed. gsplat ships no binaries: it compiles its CUDA kernels
    on first use, minutes, with whatever nvcc the machine has, and that build can fail; a GPU run then renders with
    the reference instead of stopping."""
    with _BACKEND_LOCK:
        if not _cuda:
            if not gsplat_available():
                _cuda.append(("none", None))
            else:
                try:
                    with compile_note("gsplat's CUDA kernels"):
                        from .rasterize_gsplat import rasterize, warm_up

                        warm_up()
                    _cuda.append(("gsplat", rasterize))
                except Exception as exc:  # a failed build, a missing nvcc, a driver mismatch
                    warnings.warn(f"gsplat unavailable ({type(exc).__name__}: {exc}); rendering on CUDA with the "
                                  "PyTorch reference rasterizer instead", RuntimeWarning, stacklevel=3)
                    _cuda.append(("torch", None))
        name, fn = _cuda[0]
    if fn is None:  # "none": gsplat is not here; "torch": it failed to build
        from .rasterize_torch import rasterize

        return name, rasterize
    return name, fn


POSE_TOLERANCE = 1e-3  # |RᵀR − I| and |det R − 1| a camera-to-world rotation may show (float32 round-off)
_cpu: list[tuple[str, Callable]] = []  # the CPU backend, chosen on first use


def cpu_backend() -> tuple[str, Callable]:
    """("numba", its rasterize) once the compiled kernels load, else ("torch", the reference rasterize) after
    one RuntimeWarning saying why. The first call compiles the kernels (under a minute; a note goes to stderr
    if it takes more than a few seconds) unless numba's on-disk cache has them (about a second)."""
    with _BACKEND_LOCK:
        if not _cpu:
            try:
                with compile_note("the CPU rasterizer"):
                    from . import rasterize_numba

                    rasterize_numba.warm_up()
                _cpu.append(("numba", rasterize_numba.rasterize))
            except Exception as exc:  # any failure to import, compile or run it: fall back to the reference
                from .rasterize_torch import rasterize

                warnings.warn(f"compiled CPU rasterizer unavailable ({type(exc).__name__}: {exc}); rendering on "
                              "the CPU with the pure-PyTorch rasterizer instead, 5-30x slower "
                              "(benchmarks/results/render_cpu.txt)", RuntimeWarning, stacklevel=3)
                _cpu.append(("torch", rasterize))
        return _cpu[0]


def render(means: Tensor, covars: Tensor, opacities: Tensor, colors: Tensor, camtoworlds: Tensor, Ks: Tensor,
           width: int, height: int, background: Tensor | None = None, near: float = 0.01,
           far: float = 1e10, depth_weights: Tensor | None = None, depth_mode: str = "expected") -> RenderOutput:
    """Render N Gaussians into C cameras, differentiably w.r.t. means, covars, opacities and colors.

    means (N,3), covars (N,3,3), opacities (N,) in [0,1], colors (N,3) RGB: float32 (or float64), one device.
    camtoworlds (C,4,4) camera-to-world (x right, y down, z forward), Ks (C,3,3) ROS/OpenCV intrinsics
    (float32 or float64; cast to that of `means`). width, height in pixels. background (3,) or (C,3), default
    black. Gaussians with camera z outside [near, far] are culled. Gradients also reach the background, and
    camtoworlds / Ks where they require one (on the CPU the reference rasterizer then renders: the compiled one
    has no camera gradients). depth_weights (N,) in [0,1]: how much each Gaussian counts in the depth (e.g. 0 for one
    placed where a sensor measured nothing; RenderOutput.depths and depth_alphas), drawn in the colours' pass where
    nothing needs a gradient; the depth then has none. depth_mode "expected" (Σwᵢdᵢzᵢ / Σwᵢdᵢ, gsplat's "ED") or
    "median": the z of the Gaussian that takes Σwᵢdᵢ to one half front to back (the surface a pixel mostly shows,
    where the expected depth averages a foreground and a background into a point between them), the expected depth
    where it never reaches one half; forward only, like depth_weights.
    """
    N = means.shape[0] if isinstance(means, Tensor) and means.dim() == 2 else None
    _check("means", means, (None, 3))
    _check("covars", covars, (N, 3, 3))
    _check("opacities", opacities, (N,))
    _check("colors", colors, (N, 3))
    _check("camtoworlds", camtoworlds, (None, 4, 4))
    C = camtoworlds.shape[0]
    _check("Ks", Ks, (C, 3, 3))
    for name, t in (("covars", covars), ("opacities", opacities), ("colors", colors)):
        if t.dtype != means.dtype:
            raise TypeError(f"{name} dtype {t.dtype} differs from means dtype {means.dtype}")
        if t.device != means.device:
            raise ValueError(f"{name} is on {t.device} but means is on {means.device}")
    if isinstance(width, bool) or isinstance(height, bool) or int(width) != width or int(height) != height \
            or width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive integers, got {width}x{height}")
    if C == 0:
        raise ValueError("camtoworlds must hold at least one camera")
    if depth_mode not in ("expected", "median"):
        raise ValueError(f"depth_mode must be 'expected' or 'median', got {depth_mode!r}")
    if not 0.0 <= near < far:
        raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
    width, height = int(width), int(height)

    # Pose inversion in float64: camera translations can be large in world units. invert_pose transposes the
    # rotation: a scaled or sheared one rendered silently wrong (a pose scaled by 2 gave the same image, depths x2)
    c2w64 = camtoworlds.detach().to(dtype=torch.float64)
    R = c2w64[:, :3, :3]
    orthonormal = (R.transpose(1, 2) @ R - torch.eye(3, dtype=torch.float64, device=R.device)).abs().amax()
    rigid = torch.isfinite(c2w64).all() & (orthonormal <= POSE_TOLERANCE) \
        & ((torch.linalg.det(R) - 1).abs().amax() <= POSE_TOLERANCE)
    pinhole = (Ks[:, 0, 0] > 0).all() & (Ks[:, 1, 1] > 0).all() & torch.isfinite(Ks).all()
    rigid, pinhole = torch.stack([rigid, pinhole.to(rigid.device)]).tolist()  # one device sync, not four
    if not rigid:
        raise ValueError("camtoworlds must be rigid camera-to-world transforms (a rotation and a translation)")
    if not pinhole:
        raise ValueError("Ks must be finite pinhole intrinsics with fx, fy > 0")
    viewmats = invert_pose(camtoworlds.to(device=means.device, dtype=torch.float64)).to(means.dtype)
    Ks = Ks.to(device=means.device, dtype=means.dtype)
    backgrounds = _backgrounds(background, C, means)
    extra = {}
    if depth_weights is not None:
        if not isinstance(depth_weights, Tensor) or tuple(depth_weights.shape) != (means.shape[0],):
            raise ValueError(f"depth_weights must be a ({means.shape[0]},) tensor, one weight per Gaussian, got "
                             f"{tuple(getattr(depth_weights, 'shape', ())) or type(depth_weights).__name__}")
        extra["depth_weights"] = depth_weights.to(device=means.device, dtype=means.dtype)
    if depth_mode == "median":
        extra["median"] = True

    if means.device.type == "cuda":
        rasterize = cuda_backend()[1]
    elif means.device.type == "cpu":
        rasterize = cpu_backend()[1]
    else:  # another accelerator: the torch reference runs on any device
        from .rasterize_torch import rasterize
    return RenderOutput(*rasterize(means, covars, opacities, colors, viewmats, Ks, width, height, backgrounds, near,
                                   far, **extra))


__all__ = ["RenderOutput", "render", "gsplat_available", "cpu_backend", "cuda_backend"]
