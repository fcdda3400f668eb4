"""Image metrics: PSNR and SSIM (Wang et al. 2004; Gaussian window 11, σ 1.5, data range 1), and rendered depth
against measured depth (AbsRel and δ < 1.25, as monocular-depth benchmarks report them, with the share of measured
pixels the render covers)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
DEPTH_MIN_ALPHA = 0.5  # a rendered pixel's depth counts where its Gaussians cover at least this much of it
DELTA1 = 1.25  # δ₁: max(ẑ/z, z/ẑ) below this
_C1, _C2 = 0.01 ** 2, 0.03 ** 2


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both be (...,H,W,3); got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB for RGB in [0,1]: (...,H,W,3) -> (...). An exact match gives +inf."""
    _check_pair(pred, target)
    mse = ((pred.float() - target.float()) ** 2).mean(dim=(-3, -2, -1))
    return -10.0 * torch.log10(mse)


def pooled_psnr(sse: float, n: float) -> float:
    """PSNR in dB of n pooled values (pixels) in [0,1] whose squared errors sum to sse; +inf where sse is 0."""
    return 10 * math.log10(n / sse) if sse > 0 else float("inf")


def _gaussian_window(device, dtype) -> Tensor:
    x = torch.arange(SSIM_WINDOW, device=device, dtype=dtype) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return g / g.sum()


def ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM map (B,3,H-10,W-10) of images (B,H,W,3) in [0,1] (valid convolution, separable Gaussian)."""
    _check_pair(pred, target)
    x = pred.float().permute(0, 3, 1, 2)
    y = target.float().permute(0, 3, 1, 2)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    g = _gaussian_window(x.device, x.dtype)
    gx = g.view(1, 1, 1, -1).expand(3, 1, 1, -1)
    gy = g.view(1, 1, -1, 1).expand(3, 1, -1, 1)

    def blur(z):
        return F.conv2d(F.conv2d(z, gx, groups=3), gy, groups=3)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)) / ((mu_x ** 2 + mu_y ** 2 + _C1) * (sxx + syy + _C2))


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean SSIM: (...,H,W,3) -> (...)."""
    _check_pair(pred, target)
    lead = pred.shape[:-3]
    m = ssim_map(pred.reshape(-1, *pred.shape[-3:]), target.reshape(-1, *target.shape[-3:]))
    return m.mean(dim=(1, 2, 3)).reshape(lead)


def depth_sums(pred: Tensor, alpha: Tensor, true: Tensor, min_alpha: float = DEPTH_MIN_ALPHA) -> Tensor:
    """Per-view sums (M,4) float64 of a rendered depth against a measured one: [measured pixels, covered pixels,
    Σ |ẑ − z| / z over the covered, covered pixels with max(ẑ/z, z/ẑ) < DELTA1]. pred, alpha, true (M,H,W):
    rendered z-depth and coverage, measured z-depth (> 0 and finite where measured), one unit. Covered: measured
    and alpha ≥ min_alpha (a faint pixel's depth is that of whatever little covers it). Sums, so that groups of
    views pool their pixels (`depth_scores`)."""
    if not pred.shape == alpha.shape == true.shape or pred.ndim != 3:
        raise ValueError(f"pred, alpha and true must all be (M,H,W); got {tuple(pred.shape)}, {tuple(alpha.shape)} "
                         f"and {tuple(true.shape)}")
    z, zt = pred.double(), true.double()
    measured = torch.isfinite(zt) & (zt > 0)
    covered = measured & (alpha.double() >= min_alpha) & (z > 0)
    zt = torch.where(measured, zt, torch.ones_like(zt))
    zc = torch.where(covered, z, zt)
    rel = torch.where(covered, (zc - zt).abs() / zt, torch.zeros_like(zt))
    good = covered & (torch.maximum(zc / zt, zt / zc) < DELTA1)
    return torch.stack([measured.sum((1, 2)), covered.sum((1, 2)), rel.sum((1, 2)), good.sum((1, 2))], 1).double()


def depth_scores(sums: Tensor) -> dict:
    """{"abs_rel", "delta1", "coverage", "pixels"} of `depth_sums` rows pooled: AbsRel and δ₁ over the covered
    pixels, coverage = covered / measured; None for a figure with no pixel to say it (nothing measured, or
    nothing covered)."""
    n, c, rel, good = sums.reshape(-1, 4).sum(0).tolist()
    return {"abs_rel": rel / c if c else None, "delta1": good / c if c else None,
            "coverage": c / n if n else None, "pixels": int(n)}
