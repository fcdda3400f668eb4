"""Differentiable CPU rasterizer for 3D Gaussians in pure PyTorch (autograd), gsplat classic-mode semantics.

Compositing rules are those of gsplat 1.5 `gsplat/cuda/csrc/RasterizeToPixels3DGSFwd.cu`:
`alpha = min(0.999, o·exp(-σ))`, skip `σ < 0` or `alpha < 1/255`, front to back by camera z, and a pixel stops
*before* the Gaussian that would bring its transmittance to ≤ 1e-4. Output alpha = Σ wᵢ = 1 − T_final.

Work is proportional to the pixels each Gaussian can reach: every Gaussian enumerates the pixels of its
opacity-aware box (gsplat's own radii, outside which alpha < 1/255, so nothing gsplat would blend is missed);
the (pixel, Gaussian) pairs are sorted by pixel with depth order kept, and per-pixel transmittance is an
exclusive segmented sum of log(1 − α) in float64. Gaussians are processed front to back in blocks of at most
`max_pairs` pairs, carrying each pixel's transmittance, which bounds memory and lets finished pixels be skipped.
This is the 16×16-tile scheme of gsplat with the tile shrunk to one pixel: same result, fewer evaluations.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .projection import ALPHA_THRESHOLD, project

MAX_ALPHA = 0.999  # gsplat: min(0.999f, opac * __expf(-sigma))
LOG_T_MIN = math.log(1e-4)  # gsplat: `if (next_T <= 1e-4f) done`
DEFAULT_MAX_PAIRS = 1 << 22


def _pixel_boxes(means2d: Tensor, radii: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inclusive integer pixel ranges x0..x1, y0..y1 (C,N) of each box, clipped to the image."""
    mx, my = means2d.detach().unbind(-1)
    rx, ry = radii.unbind(-1)
    x0 = torch.ceil(mx - rx).clamp(0, width).long()
    x1 = torch.floor(mx + rx).clamp(-1, width - 1).long()
    y0 = torch.ceil(my - ry).clamp(0, height).long()
    y1 = torch.floor(my + ry).clamp(-1, height - 1).long()
    return x0, x1, y0, y1


def _block_pairs(start: int, stop: int, done_before: int, counts: Tensor, ends: Tensor, box_w: Tensor,
                 x0: Tensor, y0: Tensor, cam_offset: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Every (entry, pixel) pair of entries start..stop-1: entry index (P,) and flat pixel index (P,)."""
    local = torch.repeat_interleave(torch.arange(start, stop, device=counts.device), counts[start:stop])
    k = torch.arange(done_before, done_before + local.shape[0], device=counts.device)
    k = k - (ends - counts).index_select(0, local)
    bw = box_w.index_select(0, local)
    row = k.div(bw, rounding_mode="floor")
    pix = cam_offset.index_select(0, local) + (y0.index_select(0, local) + row) * width \
        + x0.index_select(0, local) + (k - row * bw)
    return local, pix


def rasterize(means: Tensor, covars: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
              width: int, height: int, backgrounds: Tensor, near: float, far: float,
              max_pairs: int = DEFAULT_MAX_PAIRS) -> tuple[Tensor, Tensor, Tensor]:
    """Render N Gaussians into C cameras.

    means (N,3), covars (N,3,3), opacities (N,), colors (N,3), viewmats (C,4,4) world-to-camera, Ks (C,3,3)
    ROS convention, backgrounds (C,3) -> colors (C,H,W,3), alphas (C,H,W,1), expected z-depths (C,H,W,1).
    """
    C, N = viewmats.shape[0], means.shape[0]
    HW = height * width
    dtype, device = means.dtype, means.device
    proj = project(means, covars, opacities, viewmats, Ks, width, height, near, far)

    with torch.no_grad():
        x0, x1, y0, y1 = _pixel_boxes(proj.means2d, proj.radii, width, height)
        box_w = (x1 - x0 + 1).clamp(min=0)
        counts = box_w * (y1 - y0 + 1).clamp(min=0)
        counts = torch.where((proj.radii > 0).any(-1), counts, torch.zeros_like(counts)).reshape(-1)
        entries = torch.nonzero(counts > 0).squeeze(1)  # flattened camera * N + gaussian
        entries = entries[torch.argsort(proj.depths.detach().reshape(-1)[entries], stable=True)]
        counts, box_w = counts[entries], box_w.reshape(-1)[entries]
        x0, y0 = x0.reshape(-1)[entries], y0.reshape(-1)[entries]
        cam_offset = (entries // N) * HW
        ends = torch.cumsum(counts, 0)

    gauss = entries % N
    # One contiguous 1D array per per-entry quantity: index_select on 1D tensors is the fast gather path.
    e_mx, e_my = proj.means2d.reshape(-1, 2).index_select(0, entries).unbind(-1)
    e_ca, e_cb, e_cc = proj.conics.reshape(-1, 3).index_select(0, entries).unbind(-1)
    e_depths = proj.depths.reshape(-1).index_select(0, entries)
    e_opac = opacities.index_select(0, gauss)
    e_colors = colors.index_select(0, gauss)
    e_mx, e_my, e_ca, e_cb, e_cc = (t.contiguous() for t in (e_mx, e_my, e_ca, e_cb, e_cc))

    acc_rgb = torch.zeros(C * HW, 3, dtype=dtype, device=device)
    acc_w = torch.zeros(C * HW, dtype=dtype, device=device)
    acc_z = torch.zeros(C * HW, dtype=dtype, device=device)
    log_t = torch.zeros(C * HW, dtype=torch.float64, device=device)  # Σ log(1-α) of earlier blocks

    start, M = 0, entries.shape[0]
    while True:
        done_before = int(ends[start - 1]) if start > 0 else 0
        if start < M:
            stop = int(torch.searchsorted(ends, done_before + max_pairs, right=True))
            stop = max(stop, start + 1)
        else:
            stop = start  # still run once on no pairs, so the outputs stay attached to the inputs
        with torch.no_grad():
            local, pix = _block_pairs(start, stop, done_before, counts, ends, box_w, x0, y0, cam_offset, width)
            if start > 0:  # pixels already opaque take nothing more
                live = log_t.index_select(0, pix) > LOG_T_MIN
                local, pix = local[live], pix[live]
            pix, order = torch.sort(pix, stable=True)
            local = local.index_select(0, order)
            in_image = pix % HW
            px = (in_image % width).to(dtype)
            py = (in_image // width).to(dtype)
            is_start = torch.ones_like(pix, dtype=torch.bool)
            is_start[1:] = pix[1:] != pix[:-1]
            segment = torch.cumsum(is_start, 0) - 1
            seg_first = torch.nonzero(is_start).squeeze(1)

        def g(t: Tensor) -> Tensor:
            return t.index_select(0, local)

        dx = px - g(e_mx)
        dy = py - g(e_my)
        sigma = 0.5 * (g(e_ca) * dx * dx + g(e_cc) * dy * dy) + g(e_cb) * dx * dy
        alpha = (g(e_opac) * torch.exp(-sigma)).clamp(max=MAX_ALPHA)
        valid = (sigma.detach() >= 0) & (alpha.detach() >= ALPHA_THRESHOLD)
        alpha = torch.where(valid, alpha, torch.zeros_like(alpha))
        lt = torch.log1p(-alpha.to(torch.float64))
        exclusive = torch.cumsum(lt, 0) - lt
        exclusive = exclusive - exclusive.index_select(0, seg_first).index_select(0, segment)
        if start > 0:
            exclusive = exclusive + log_t.index_select(0, pix)
        included = valid & ((exclusive + lt).detach() > LOG_T_MIN)
        w = torch.where(included, alpha * torch.exp(exclusive).to(dtype), torch.zeros_like(alpha))

        acc_rgb = acc_rgb.index_add(0, pix, w[:, None] * g(e_colors))
        acc_w = acc_w.index_add(0, pix, w)
        acc_z = acc_z.index_add(0, pix, w * g(e_depths))
        if stop >= M:
            break
        log_t = log_t.index_add(0, pix, lt)
        start = stop

    pixel_bg = backgrounds.to(dtype).repeat_interleave(HW, dim=0)  # (C*HW,3)
    out_rgb = acc_rgb + (1.0 - acc_w)[:, None] * pixel_bg
    out_z = acc_z / acc_w.clamp(min=1e-10)  # gsplat "ED": expected depth, 0 where nothing was blended
    return (out_rgb.reshape(C, height, width, 3), acc_w.reshape(C, height, width, 1),
            out_z.reshape(C, height, width, 1))
