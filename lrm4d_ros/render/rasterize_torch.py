"""Differentiable CPU rasterizer for 3D Gaussians in pure PyTorch, gsplat classic-mode semantics.

Compositing rules are those of gsplat 1.5 `gsplat/cuda/csrc/RasterizeToPixels3DGSFwd.cu`:
`alpha = min(0.999, o·exp(-σ))`, skip `σ < 0` or `alpha < 1/255`, front to back by camera z, and a pixel stops
*before* the Gaussian that would bring its transmittance to ≤ 1e-4. Output alpha = Σ wᵢ = 1 − T_final.

Work is proportional to the pixels each Gaussian can reach. gsplat evaluates every Gaussian at every pixel of
the 16×16 tiles its opacity-aware box touches, and blends only where alpha ≥ 1/255; here each Gaussian
enumerates, row by row, just the pixels of its box inside the ellipse σ ≤ log(255·o), the only ones that can
pass that test (a 1-pixel "tile"): same result, far fewer evaluations. Pairs failing the exact alpha test are
dropped, the rest sorted by pixel with depth order kept, and per-pixel transmittance is an exclusive segmented
sum of log(1 − α) in float64. Gaussians go front to back in blocks of at most `max_pairs` pairs, carrying each
pixel's transmittance: memory stays bounded and pixels already done are skipped. The blending has a
hand-written backward (`_Blend`) that recomputes the pairs' alphas instead of storing autograd intermediates.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .projection import ALPHA_THRESHOLD, project

MAX_ALPHA = 0.999  # gsplat: min(0.999f, opac * __expf(-sigma))
T_MIN = 1e-4  # gsplat: `if (next_T <= 1e-4f) done`
LOG_T_MIN = math.log(T_MIN)
DEFAULT_MAX_PAIRS = 1 << 18  # small blocks let saturated pixels skip the Gaussians behind them
SPAN_MARGIN = 0.01  # px
# median depth: a Gaussian deeper than the one before it along the ray by more than this fraction starts a new
# layer (a depth edge); chosen on validation (benchmarks/results/ablation.txt, block 42)
LAYER_GAP = 0.1

# Per-entry columns handed to _Blend. geo: mean x, mean y (px), conic a, b, c, opacity; feat: r, g, b, 1, depth


def _pixel_boxes(means2d: Tensor, radii: Tensor, width: int, height: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inclusive integer pixel ranges x0..x1, y0..y1 (C,N) of each box, clipped to the image."""
    mx, my = means2d.detach().unbind(-1)
    rx, ry = radii.unbind(-1)
    x0 = torch.ceil(mx - rx).clamp(0, width).long()
    x1 = torch.floor(mx + rx).clamp(-1, width - 1).long()
    y0 = torch.ceil(my - ry).clamp(0, height).long()
    y1 = torch.floor(my + ry).clamp(-1, height - 1).long()
    return x0, x1, y0, y1


class _Plan:
    """Depth-sorted visible (camera, Gaussian) entries and the pixels each can reach, cut into blocks.

    Pixels are enumerated per image row: in row y an entry covers the span where σ ≤ log(255·o) (the only
    pixels where alpha can reach 1/255), intersected with gsplat's box. Spans are computed in float64 and
    widened by `SPAN_MARGIN` px; the exact per-pixel alpha test is done later, so the span need only contain
    every pixel that passes it.
    """

    def __init__(self, means2d: Tensor, conics: Tensor, opacities: Tensor, x0: Tensor, x1: Tensor, y0: Tensor,
                 y1: Tensor, cam: Tensor, width: int, height: int, n_cams: int, max_pairs: int):
        self.width, self.height, self.n_pix = width, height, n_cams * width * height
        M, device = means2d.shape[0], means2d.device
        rows_per_entry = (y1 - y0 + 1).clamp(min=0)
        self.row_entry = torch.repeat_interleave(torch.arange(M, device=device), rows_per_entry)
        row_first = torch.cumsum(rows_per_entry, 0) - rows_per_entry
        self.entry_rows = torch.cat([row_first, row_first.new_tensor([self.row_entry.shape[0]])])
        e = self.row_entry
        sigma_max = torch.log(255.0 * opacities.double().clamp(min=ALPHA_THRESHOLD))
        per_entry = torch.cat([means2d.double(), conics.double(), 2.0 * sigma_max[:, None]], 1).index_select(0, e)
        mx, my, a, b, c, two_sigma_max = per_entry.unbind(-1)
        ints = torch.stack([y0 - row_first, x0, x1, cam * (width * height)], 1).index_select(0, e)
        y = ints[:, 0] + torch.arange(e.shape[0], device=device)
        dy = y.double() - my
        disc = (b * dy) ** 2 - a * (c * dy * dy - two_sigma_max)
        half = torch.sqrt(disc.clamp(min=0)) / a
        centre = mx - b * dy / a
        xl = torch.maximum(torch.ceil(centre - half - SPAN_MARGIN).long(), ints[:, 1])
        xr = torch.minimum(torch.floor(centre + half + SPAN_MARGIN).long(), ints[:, 2])
        count = torch.where(disc >= 0, (xr - xl + 1).clamp(min=0), torch.zeros_like(xl))
        self.row_count = count
        self.row_pix0 = ints[:, 3] + y * width + xl  # flat index of each span's first pixel
        entry_pairs = torch.zeros(M, dtype=torch.long, device=device).index_add_(0, e, count)
        entry_end = torch.cumsum(entry_pairs, 0)
        self.blocks: list[tuple[int, int]] = []
        start = 0
        while start < M:
            before = int(entry_end[start - 1]) if start > 0 else 0
            stop = max(int(torch.searchsorted(entry_end, before + max_pairs, right=True)), start + 1)
            self.blocks.append((start, stop))
            start = stop

    def pairs(self, block: int, carry: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(entry index (P,), flat pixel index (P,)) of the reachable pixels of one block's entries.

        With `carry` (per-pixel log-transmittance so far), pixels already done are left out; spans with no
        live pixel are dropped before any pair is made, which is what keeps saturated regions cheap.
        """
        start, stop = self.blocks[block]
        r0, r1 = int(self.entry_rows[start]), int(self.entry_rows[stop])
        rows = torch.nonzero(self.row_count[r0:r1]).squeeze(1) + r0
        count, pix0 = self.row_count.index_select(0, rows), self.row_pix0.index_select(0, rows)
        if carry is not None:
            live = (carry > LOG_T_MIN).view(-1, self.width)
            prefix = torch.zeros(live.shape[0], self.width + 1, dtype=torch.int32, device=live.device)
            prefix[:, 1:] = torch.cumsum(live, 1)
            # pix0 = image row * width + x, and the prefix table has width + 1 columns per image row
            at = pix0 + pix0.div(self.width, rounding_mode="floor")
            flat = prefix.view(-1)
            alive = torch.nonzero(flat.index_select(0, at + count) > flat.index_select(0, at)).squeeze(1)
            rows, count, pix0 = (t.index_select(0, alive) for t in (rows, count, pix0))
        first = torch.cumsum(count, 0) - count
        row = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device), count)
        pix = torch.arange(row.shape[0], device=row.device) + (pix0 - first).index_select(0, row)
        local = self.row_entry.index_select(0, rows.index_select(0, row))
        if carry is not None:
            keep = torch.nonzero(carry.index_select(0, pix) > LOG_T_MIN).squeeze(1)
            local, pix = local.index_select(0, keep), pix.index_select(0, keep)
        return local, pix


def _pair_alpha(geo: Tensor, local: Tensor, pix: Tensor, width: int, height: int):
    """Per pair: offsets dx, dy (px), conic, opacity, unclamped o·exp(−σ), σ."""
    g = geo.index_select(0, local)
    in_image = pix % (width * height)
    dx = (in_image % width).to(geo.dtype) - g[:, 0]
    dy = (in_image // width).to(geo.dtype) - g[:, 1]
    ca, cb, cc, opac = g[:, 2], g[:, 3], g[:, 4], g[:, 5]
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    return dx, dy, ca, cb, cc, opac, opac * torch.exp(-sigma), sigma


def _segments(pix: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For pairs sorted by pixel: segment id of each pair, first and last pair index of each segment."""
    is_first = torch.ones_like(pix, dtype=torch.bool)
    is_first[1:] = pix[1:] != pix[:-1]
    segment = torch.cumsum(is_first, 0) - 1
    first = torch.nonzero(is_first).squeeze(1)
    last = torch.cat([first[1:] - 1, first.new_tensor([pix.shape[0] - 1])]) if first.numel() else first
    return segment, first, last


def _transmittance(alpha: Tensor, pix: Tensor, segment: Tensor, first: Tensor, carry: Tensor):
    """Exclusive per-pixel log-transmittance before each pair (float64), log(1−α), and the blend mask."""
    lt = torch.log1p(-alpha.to(torch.float64))
    excl = torch.cumsum(lt, 0) - lt
    excl = excl - excl.index_select(0, first).index_select(0, segment) + carry.index_select(0, pix)
    included = (excl + lt) > LOG_T_MIN
    return excl, lt, included


def _block_weights(geo: Tensor, plan: _Plan):
    """Per block, front to back: its pairs' entries (P,) and pixels (P,) (sorted by pixel, depth order kept), the
    per-pixel log-transmittance before the block (n_pix,) float64, the pairs' blend weights w (P,), and each pair's
    pixel segment (P,) and the segments' first pairs."""
    carry = torch.zeros(plan.n_pix, dtype=torch.float64, device=geo.device)
    for b in range(len(plan.blocks)):
        local, pix = plan.pairs(b, carry if b > 0 else None)  # pixels already done take nothing more
        *_, raw, sigma = _pair_alpha(geo, local, pix, plan.width, plan.height)
        alpha = raw.clamp(max=MAX_ALPHA)
        keep = torch.nonzero((sigma >= 0) & (alpha >= ALPHA_THRESHOLD)).squeeze(1)
        pix, order = torch.sort(pix.index_select(0, keep), stable=True)
        keep = keep.index_select(0, order)
        local, alpha = local.index_select(0, keep), alpha.index_select(0, keep)
        segment, first, _ = _segments(pix)
        excl, lt, included = _transmittance(alpha, pix, segment, first, carry)
        w = torch.where(included, alpha * torch.exp(excl).to(alpha.dtype), torch.zeros_like(alpha))
        yield local, pix, carry, w, segment, first
        if b + 1 < len(plan.blocks):
            carry = carry.index_add(0, pix, lt)


def _median_depths(geo: Tensor, weights: Tensor, depths: Tensor, plan: _Plan) -> tuple[Tensor, Tensor]:
    """Per pixel (n_pix,) the depth of the layer where its Σ w·d reaches one half front to back, Σ w·d·z / Σ w·d over
    that layer's Gaussians, or the expected depth Σ w·d·z / Σ w·d where it never does (0 where Σ w·d is 0), and Σ w·d
    (no gradient). A layer is a run of Gaussians along the ray (those with d > 0), each within a factor
    1 + LAYER_GAP of the depth of the one before: the surface the pixel mostly shows, without the surfaces before
    and behind it that the expected depth averages in. weights (M,) d and depths (M,) z per depth-sorted entry.
    Block by block as the blend goes (bounded memory): each pixel carries its current layer's Σ w·d, Σ w·d·z and last
    z, whether its Σ w·d reached one half in that layer, and its depth once that layer has ended."""
    f64 = {"dtype": torch.float64, "device": geo.device}
    cover, cover_z = torch.zeros(plan.n_pix, **f64), torch.zeros(plan.n_pix, **f64)
    layer_w, layer_wz, layer_z = (torch.zeros(plan.n_pix, **f64) for _ in range(3))
    half_in = torch.zeros(plan.n_pix, dtype=torch.bool, device=geo.device)  # Σ w·d reached 1/2 in the current layer
    out = torch.full((plan.n_pix,), -1.0, **f64)  # the median layer's depth once that layer has ended
    for local, pix, _, w, _, _ in _block_weights(geo, plan):
        wd = (w * weights.index_select(0, local)).to(torch.float64)
        kept = torch.nonzero(wd > 0).squeeze(1)
        pix, wd = pix.index_select(0, kept), wd.index_select(0, kept)
        z = depths.index_select(0, local.index_select(0, kept)).to(torch.float64)
        segment, first, _ = _segments(pix)
        before = torch.cumsum(wd, 0) - wd
        before = before - before.index_select(0, first).index_select(0, segment) + cover.index_select(0, pix)
        cover.index_add_(0, pix, wd)
        cover_z.index_add_(0, pix, wd * z)
        kept = torch.nonzero(out.index_select(0, pix) < 0).squeeze(1)  # pixels whose median layer goes on
        if not len(kept):
            continue
        pix, wd, z, before = (t.index_select(0, kept) for t in (pix, wd, z, before))
        segment, first, last = _segments(pix)
        at = pix.index_select(0, first)  # each segment's pixel
        prev = torch.roll(z, 1)
        prev[first] = layer_z.index_select(0, at)
        carried = torch.ones_like(pix, dtype=torch.bool)  # a Gaussian before this one on the ray (d > 0)
        carried[first] = layer_w.index_select(0, at) > 0
        starts = carried & (z > prev * (1.0 + LAYER_GAP))
        layer = torch.cumsum(starts.index_fill(0, first, True), 0) - 1
        sums_w = torch.zeros(int(layer[-1]) + 1, **f64).index_add_(0, layer, wd)
        sums_wz = torch.zeros_like(sums_w).index_add_(0, layer, wd * z)
        first_layer, last_layer = layer.index_select(0, first), layer.index_select(0, last)
        goes_on = ~starts.index_select(0, first)  # the block's first layer continues the pixel's carried one
        sums_w.index_add_(0, first_layer[goes_on], layer_w.index_select(0, at[goes_on]))
        sums_wz.index_add_(0, first_layer[goes_on], layer_wz.index_select(0, at[goes_on]))
        ended = ~goes_on & half_in.index_select(0, at)  # the carried layer held the median and ends here
        out[at[ended]] = layer_wz.index_select(0, at[ended]) / layer_w.index_select(0, at[ended])
        mine = torch.full_like(first, -1)  # per segment: the layer holding the median, −1 while none does
        cross = torch.nonzero((before < 0.5) & (before + wd >= 0.5)).squeeze(1)  # at most one pair per pixel
        mine[segment.index_select(0, cross)] = layer.index_select(0, cross)
        held = goes_on & half_in.index_select(0, at)  # the carried layer held it and goes on
        mine[held] = first_layer[held]
        done = (mine >= 0) & (mine < last_layer)  # the median's layer ended within this block
        out[at[done]] = sums_wz.index_select(0, mine[done]) / sums_w.index_select(0, mine[done])
        go = ~done & ~ended
        at, ll = at[go], last_layer[go]
        layer_w[at], layer_wz[at], layer_z[at] = sums_w[ll], sums_wz[ll], z[last[go]]
        half_in[at] = mine[go] >= 0
    out = torch.where((out < 0) & half_in, layer_wz / layer_w.clamp(min=1e-300), out)
    out = torch.where(out >= 0, out, cover_z / cover.clamp(min=1e-300))  # never half: the expected depth (0: none)
    return out.to(depths), cover.to(depths)


def _entries(means: Tensor, covars: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor, width: int,
             height: int, near: float, far: float, max_pairs: int) -> tuple[Tensor, Tensor, Tensor, _Plan]:
    """The visible (camera, Gaussian) entries sorted by depth: geo (M,6) (mean x, y px, conic a, b, c, opacity),
    their Gaussians (M,), camera z-depths (M,1), and the blending plan."""
    C, N = viewmats.shape[0], means.shape[0]
    proj = project(means, covars, opacities, viewmats, Ks, width, height, near, far)

    with torch.no_grad():
        x0, x1, y0, y1 = _pixel_boxes(proj.means2d, proj.radii, width, height)
        counts = (x1 - x0 + 1).clamp(min=0) * (y1 - y0 + 1).clamp(min=0)
        counts = torch.where((proj.radii > 0).any(-1), counts, torch.zeros_like(counts)).reshape(-1)
        entries = torch.nonzero(counts > 0).squeeze(1)  # flattened camera * N + gaussian
        entries = entries[torch.argsort(proj.depths.detach().reshape(-1)[entries], stable=True)]
        cam = entries // N
        plan = _Plan(proj.means2d.detach().reshape(-1, 2)[entries], proj.conics.detach().reshape(-1, 3)[entries],
                     opacities.detach()[entries % N], x0.reshape(-1)[entries], x1.reshape(-1)[entries],
                     y0.reshape(-1)[entries], y1.reshape(-1)[entries], cam, width, height, C, max_pairs)

    gauss = entries % N
    geo = torch.cat([proj.means2d.reshape(-1, 2)[entries], proj.conics.reshape(-1, 3)[entries],
                     opacities[gauss, None]], dim=1)
    return geo, gauss, proj.depths.reshape(-1)[entries, None], plan


@torch.no_grad()
def median_depths(means: Tensor, covars: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor, width: int,
                  height: int, near: float, far: float, depth_weights: Tensor | None = None,
                  max_pairs: int = DEFAULT_MAX_PAIRS) -> tuple[Tensor, Tensor]:
    """The median layer's depths (C,H,W,1) (`rasterize(median=True)`'s) and Σ w·d (C,H,W,1), without the colours'
    pass (what the CUDA backend takes from here: gsplat's classic mode has no median depth)."""
    geo, gauss, depths, plan = _entries(means, covars, opacities, viewmats, Ks, width, height, near, far, max_pairs)
    return _median_of_entries(geo, gauss, depths, plan, depth_weights, (viewmats.shape[0], height, width, 1))


@torch.no_grad()
def _median_of_entries(geo: Tensor, gauss: Tensor, depths: Tensor, plan: _Plan, depth_weights: Tensor | None,
                       shape: tuple) -> tuple[Tensor, Tensor]:
    """`_median_depths` of `_entries`' output, with each entry's depth weight (1 without depth_weights), as `shape`."""
    d = torch.ones_like(depths[:, 0]) if depth_weights is None else depth_weights.to(depths)[gauss]
    z, cover = _median_depths(geo.detach(), d, depths.detach()[:, 0], plan)
    return z.reshape(shape), cover.reshape(shape)


class _Blend(torch.autograd.Function):
    """geo (M,6), feat (M,5) per depth-sorted entry -> per-pixel sums (n_pix,5) of w·feat, feat = [r,g,b,1,z]."""

    @staticmethod
    def forward(ctx, geo: Tensor, feat: Tensor, plan: _Plan):
        out = geo.new_zeros(plan.n_pix, feat.shape[1])
        saved = []
        for local, pix, carry, w, _, _ in _block_weights(geo, plan):
            saved.append((local, pix, carry))
            out.index_add_(0, pix, w[:, None] * feat.index_select(0, local))
        ctx.plan, ctx.saved_blocks = plan, saved
        ctx.save_for_backward(geo, feat)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        geo, feat = ctx.saved_tensors
        plan = ctx.plan
        grad_geo = torch.zeros_like(geo)
        grad_feat = torch.zeros_like(feat)
        # Per pixel, Σ over later blocks of q_j = (∂L/∂out · feat_j) w_j: what the factor (1 − α) of an
        # earlier pair scales.
        later = torch.zeros(plan.n_pix, dtype=torch.float64, device=geo.device)
        for local, pix, carry in reversed(ctx.saved_blocks):
            dx, dy, ca, cb, cc, _, raw, sigma = _pair_alpha(geo, local, pix, plan.width, plan.height)
            alpha = raw.clamp(max=MAX_ALPHA)
            segment, first, last = _segments(pix)
            excl, _, included = _transmittance(alpha, pix, segment, first, carry)
            T = torch.where(included, torch.exp(excl).to(alpha.dtype), torch.zeros_like(alpha))
            w = alpha * T
            G = grad_out.index_select(0, pix)
            gf = (G * feat.index_select(0, local)).sum(1)
            q = (gf * w).to(torch.float64)
            cq = torch.cumsum(q, 0)
            after = cq.index_select(0, last).index_select(0, segment) - cq + later.index_select(0, pix)
            d_alpha = gf * T - torch.where(included, after / (1.0 - alpha.to(torch.float64)),
                                           torch.zeros_like(after)).to(alpha.dtype)
            d_raw = torch.where(raw < MAX_ALPHA, d_alpha, torch.zeros_like(d_alpha))
            d_sigma = -d_raw * raw
            pair_geo = torch.stack([
                -d_sigma * (ca * dx + cb * dy), -d_sigma * (cc * dy + cb * dx),
                0.5 * d_sigma * dx * dx, d_sigma * dx * dy, 0.5 * d_sigma * dy * dy,
                d_raw * torch.exp(-sigma)], dim=1)
            grad_geo.index_add_(0, local, pair_geo)
            grad_feat.index_add_(0, local, w[:, None] * G)
            later = later.index_add(0, pix, q)
        return grad_geo, grad_feat, None


def rasterize(means: Tensor, covars: Tensor, opacities: Tensor, colors: Tensor, viewmats: Tensor, Ks: Tensor,
              width: int, height: int, backgrounds: Tensor, near: float, far: float,
              max_pairs: int = DEFAULT_MAX_PAIRS, depth_weights: Tensor | None = None,
              median: bool = False) -> tuple[Tensor, ...]:
    """Render N Gaussians into C cameras.

    means (N,3), covars (N,3,3), opacities (N,), colors (N,3), viewmats (C,4,4) world-to-camera, Ks (C,3,3)
    ROS convention, backgrounds (C,3) -> colors (C,H,W,3), alphas (C,H,W,1), expected z-depths (C,H,W,1); with
    depth_weights (N,) d, the depths are Σ w·d·z / Σ w·d, and Σ w·d (C,H,W,1) follows (neither with a gradient).
    median: the depths are those of the layer where Σ w·d (Σ w without depth_weights) reaches one half along the
    ray (`_median_depths`), the expected depth where it never does (no gradient).
    """
    geo, gauss, depths, plan = _entries(means, covars, opacities, viewmats, Ks, width, height, near, far, max_pairs)
    feat = torch.cat([colors[gauss], torch.ones_like(depths), depths], dim=1)
    if depth_weights is None and not median:
        return composite(_Blend.apply(geo, feat, plan), backgrounds, height, width)
    if median:
        out = composite(_Blend.apply(geo, feat, plan), backgrounds, height, width)
        z, cover = _median_of_entries(geo, gauss, depths, plan, depth_weights, out[1].shape)
        return out[0], out[1], z, None if depth_weights is None else cover
    d = depth_weights.detach().to(feat)[gauss, None]
    sums = _Blend.apply(geo, torch.cat([feat, d, d * depths.detach()], dim=1), plan)
    out = composite(sums[:, :5], backgrounds, height, width)
    weighted = composite_weighted_depth(torch.cat([sums[:, :3], sums[:, 5:].detach()], 1), sums[:, 3].detach(),
                                        backgrounds, height, width)
    return out[0], out[1], weighted[2], weighted[3]


def composite(sums: Tensor, backgrounds: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pixel sums (C*H*W,5) of w·[r,g,b,1,z] and backgrounds (C,3) -> colors (C,H,W,3) over the background,
    alphas (C,H,W,1), expected z-depths (C,H,W,1)."""
    C = backgrounds.shape[0]
    per_camera = sums.reshape(C, height * width, 5)
    rgb, acc_w, acc_z = per_camera[..., :3], per_camera[..., 3:4], per_camera[..., 4:5]
    out_rgb = rgb + (1.0 - acc_w) * backgrounds.to(sums.dtype)[:, None, :]  # broadcast, not a (C*H*W,3) copy
    out_z = acc_z / acc_w.clamp(min=1e-10)  # gsplat "ED": expected depth, 0 where nothing was blended
    return (out_rgb.reshape(C, height, width, 3), acc_w.reshape(C, height, width, 1),
            out_z.reshape(C, height, width, 1))


def composite_weighted_depth(sums: Tensor, alphas: Tensor, backgrounds: Tensor, height: int, width: int
                             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-pixel sums (C*H*W,5) of w·[r,g,b,d,d·z] (depth weights d), alphas (C*H*W,) Σ w and backgrounds (C,3) ->
    colors (C,H,W,3) over the background, alphas (C,H,W,1), depths Σ w·d·z / Σ w·d (C,H,W,1) (0 where Σ w·d is
    0) and Σ w·d (C,H,W,1)."""
    C = backgrounds.shape[0]
    per_camera = sums.reshape(C, height * width, 5)
    acc_w = alphas.to(sums).reshape(C, height * width, 1)
    rgb = per_camera[..., :3] + (1.0 - acc_w) * backgrounds.to(sums.dtype)[:, None, :]
    acc_d, acc_dz = per_camera[..., 3:4], per_camera[..., 4:5]
    depths = torch.where(acc_d > 0, acc_dz / acc_d.clamp(min=1e-10), torch.zeros_like(acc_d))
    return tuple(x.reshape(C, height, width, -1) for x in (rgb, acc_w, depths, acc_d))
