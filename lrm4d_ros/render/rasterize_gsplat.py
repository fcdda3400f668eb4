"""CUDA backend: gsplat's `rasterization()` in classic mode (optional dependency, extra `cuda`: gsplat>=1.5).

Same signature and outputs as `rasterize_torch.rasterize`. gsplat puts pixel centres at +0.5, so the ROS
intrinsics get cx + 0.5, cy + 0.5 here and nowhere else (docs/design.md §3).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .projection import EPS2D, test_scene


def rasterize(means: Tensor, covars: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
              width: int, height: int, backgrounds: Tensor, near: float, far: float,
              depth_weights: Tensor | None = None, median: bool = False) -> tuple[Tensor, ...]:
    """means (N,3), covars (N,3,3), opacities (N,), colors (N,3), viewmats (C,4,4), Ks (C,3,3) ROS convention,
    backgrounds (C,3) -> colors (C,H,W,3), alphas (C,H,W,1), expected z-depths (C,H,W,1); with depth_weights (N,)
    d, the depths are Σ w·d·z / Σ w·d, and Σ w·d (C,H,W,1) follows (neither with a gradient: [d, d·z] blended as
    two colour channels, a camera at a time, as z is each camera's). median: the median depths, which gsplat's classic
    mode does not render: the PyTorch reference's (rasterize_torch.median_depths, no colours' pass)."""
    from gsplat import rasterization  # imported here: gsplat is optional and needs CUDA

    Ks_gsplat = Ks.clone()
    Ks_gsplat[:, 0, 2] += 0.5
    Ks_gsplat[:, 1, 2] += 0.5

    def draw(colors, viewmats, Ks, backgrounds, mode):
        return rasterization(means, None, None, opacities, colors, viewmats, Ks, width, height, near_plane=near,
                             far_plane=far, eps2d=EPS2D, packed=False, backgrounds=backgrounds, render_mode=mode,
                             rasterize_mode="classic", covars=covars)[:2]

    rendered, alphas = draw(colors, viewmats, Ks_gsplat, backgrounds, "RGB+ED")
    if median:
        from .rasterize_torch import median_depths

        depths, cover = median_depths(means.detach(), covars.detach(), opacities.detach(), viewmats, Ks, width,
                                      height, near, far, depth_weights)
        return rendered[..., :3], alphas, depths, *([] if depth_weights is None else [cover])
    if depth_weights is None:
        return rendered[..., :3], alphas, rendered[..., 3:4]
    with torch.no_grad():
        d = depth_weights.to(colors)
        sums = []
        for c in range(len(viewmats)):
            z = means.detach() @ viewmats[c, 2, :3] + viewmats[c, 2, 3]
            sums.append(draw(torch.stack([d, d * z], 1), viewmats[c:c + 1], Ks_gsplat[c:c + 1],
                             backgrounds.new_zeros(1, 2), "RGB")[0])
        sums = torch.cat(sums)
        acc_d = sums[..., :1]
        depths = torch.where(acc_d > 0, sums[..., 1:] / acc_d.clamp(min=1e-10), torch.zeros_like(acc_d))
    return rendered[..., :3], alphas, depths, acc_d


def warm_up() -> None:
    """Build (or load) gsplat's CUDA kernels and check them on a tiny scene: AssertionError if it draws nothing."""
    _, alphas, _ = rasterize(*test_scene("cuda"))
    torch.cuda.synchronize()
    assert float(alphas.max()) > 0.5, "gsplat drew its test scene wrongly"
