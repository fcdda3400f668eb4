"""A depth camera's noise, measured in its own images, and brought down to what the model was trained on.

The model learned measured depth from a Kinect-like sensor (data.depth_sensor: ~2 mm at 1 m, ~14 mm at 3 m). A
stereo camera measures several times noisier (a RealSense D435's 2 % at 2 m is 0.01 /m in inverse depth, six times
the training sensor's), and the pixel Gaussians, placed at the measured depth, then scatter about every surface:
8 robot validation scenes with the sensor's axial noise x3 lost 0.9 dB of RGB-D novel_view, x8 2.3 dB (ablation
block 35). `noise_level` reads each view's noise from the measurements themselves (a plane's inverse depth is affine
in the pixel coordinates, so a pixel's departure from its neighbours' mean is noise there) in inverse depth, where
a camera's noise is about one number at every range (a stereo camera's disparity noise; the training sensor's
views all read 0.0015-0.0027 /m whatever their depths); `denoise` averages, in views noisier than
TRAINED_NOISE, each measured pixel's inverse depth with those of its 5x5 neighbours within a few noise widths (a
depth edge stays).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Inverse-depth noise (1/m; 1.4826·MAD of a pixel's departure from its 8 neighbours' mean, as one pixel's) above
# which a view is denoised: the training sensor's views read 0.0015-0.0027 (24 robot validation scenes and the 13
# RGB-D evaluation bags), x2 its noise 0.0030-0.0052.
TRAINED_NOISE = 0.003
# neighbours further than this share of the pixel's inverse depth are another surface (the estimate): 0.15 read
# 0.0155 /m for 0.02 of noise on a plane 2 m away (the gate cut its tails), 0.3 0.0196; the same on the bags
NOISE_GATE = 0.3
MIN_PIXELS = 100  # pixels with all 8 neighbours on their surface a view needs for an estimate
# The neighbourhood (pixels) and its tolerance in noise widths. 8 robot validation scenes, RGB-D novel_view at the
# sensor's noise x2 / x3 / x5 / x8: none 26.65 / 26.05 / 25.36 / 24.63, 5x5 within 4 widths 26.85 / 26.72 / 26.46 /
# 25.97, 3 widths 26.69 (x3), 7x7 25.90 (x8); 16 others (benchmarks/validation.py's) x3 / x5: 26.65 / 26.01 ->
# 27.10 / 26.92 (ablation block 35).
SIZE, WIDTHS = 5, 4.0


def _neighbours(inverse: Tensor, size: int) -> Tensor:
    """(V,size²,H,W) each pixel's size x size neighbourhood of inverse (V,H,W), 0 beyond the image."""
    V, H, W = inverse.shape
    return F.unfold(inverse[:, None], size, padding=size // 2).view(V, size * size, H, W)


def _inverse(depths: Tensor) -> Tensor:
    measured = torch.isfinite(depths) & (depths > 0)
    return torch.where(measured, 1.0 / torch.where(measured, depths, torch.ones_like(depths)), torch.zeros_like(depths))


def noise_level(depths: Tensor) -> Tensor:
    """(V,) each view's inverse-depth noise (1/unit) read from depths (V,H,W) (metres, 0 or NaN = none): robust σ
    of (mean of the 8 neighbours − pixel) over pixels whose 8 neighbours all lie within NOISE_GATE of it, as one
    pixel's noise (that mean carries an eighth of its variance); 0 where under MIN_PIXELS qualify."""
    inv = _inverse(depths.float())
    ring = _neighbours(inv, 3)
    ring = torch.cat([ring[:, :4], ring[:, 5:]], 1)
    full = (inv > 0) & ((ring - inv[:, None]).abs() <= NOISE_GATE * inv[:, None]).all(1)
    departure = (ring.mean(1) - inv).abs()
    out = torch.zeros(depths.shape[0], dtype=torch.float32, device=depths.device)
    for v in range(depths.shape[0]):
        x = departure[v][full[v]]
        if x.numel() >= MIN_PIXELS:
            out[v] = x.median() * 1.4826 / (1 + 1 / 8) ** 0.5
    return out


def denoise(depths: Tensor) -> Tensor:
    """depths (V,H,W) (metres, 0 = none) with each measured pixel of the views noisier than TRAINED_NOISE given
    the mean inverse depth of its SIZE x SIZE measured neighbours within WIDTHS of the view's noise; the other
    views, and every unmeasured pixel, as they were (the same tensor where no view is noisier)."""
    sigma = noise_level(depths)
    noisy = sigma > TRAINED_NOISE
    if not bool(noisy.any()):
        return depths
    inv = _inverse(depths[noisy].float())
    near = _neighbours(inv, SIZE)
    kept = (near > 0) & ((near - inv[:, None]).abs() <= (WIDTHS * sigma[noisy])[:, None, None, None])
    mean = (near * kept).sum(1) / kept.sum(1).clamp_min(1)
    out = depths.clone()
    out[noisy] = torch.where(inv > 0, 1.0 / mean.clamp_min(1e-12), depths[noisy].float()).to(depths.dtype)
    return out
