"""CUDA backend: gsplat's `rasterization()` in classic mode (optional dependency, extra `cuda`: gsplat>=1.5).

Same signature and outputs as `rasterize_torch.rasterize`. gsplat puts pixel centres at +0.5, so the ROS
intrinsics get cx + 0.5, cy + 0.5 here and nowhere else (docs/design.md §3).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .projection import EPS2D, test_scene


def rasterize(means: Tensor, covars: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
              width: int, height: int, backgrounds: Tensor, near: float, far: float) -> tuple[Tensor, Tensor, Tensor]:
    """means (N,3), covars (N,3,3), opacities (N,), colors (N,3), viewmats (C,4,4), Ks (C,3,3) ROS convention,
    backgrounds (C,3) -> colors (C,H,W,3), alphas (C,H,W,1), expected z-depths (C,H,W,1)."""
    from gsplat import rasterization  # imported here: gsplat is optional and needs CUDA

    Ks_gsplat = Ks.clone()
    Ks_gsplat[:, 0, 2] += 0.5
    Ks_gsplat[:, 1, 2] += 0.5
    rendered, alphas, _ = rasterization(
        means, None, None, opacities, colors, viewmats, Ks_gsplat, width, height,
        near_plane=near, far_plane=far, eps2d=EPS2D, packed=False, backgrounds=backgrounds,
        render_mode="RGB+ED", rasterize_mode="classic", covars=covars)
    return rendered[..., :3], alphas, rendered[..., 3:4]


def warm_up() -> None:
    """Build (or load) gsplat's CUDA kernels and check them on a tiny scene: AssertionError if it draws nothing."""
    _, alphas, _ = rasterize(*test_scene("cuda"))
    torch.cuda.synchronize()
    assert float(alphas.max()) > 0.5, "gsplat drew its test scene wrongly"
