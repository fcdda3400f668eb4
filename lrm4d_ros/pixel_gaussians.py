"""Pixel-aligned 4D Gaussians from the model's per-pixel outputs: the activations (docs/design.md §1 and the surfel
head that replaces it here).

`surfel_gaussians` — every input pixel becomes a surfel that reproduces it:
- depth: a residual on a base z-depth — the measured depth where the camera gave one (bounded to ±5 %), else a
  constant (DROPOUT_DEPTH for a depth camera's unmeasured pixels, RGB_DEPTH for a colour camera's), moved in
  logit space between NEAR and FAR, so far content (floors to the horizon) has room and nothing is clipped to a
  cube;
- shape: the pixel's own footprint on the surface: its fronto-parallel footprint axes slid along the ray onto the
  plane of the surface normal (estimated from the depth map smoothed over SMOOTH² pixels: measured or predicted
  depths are as noisy as a pixel's spacing), capped at MAX_STRETCH fronto-parallel pixels at grazing angles,
  scaled by a predicted factor around 0.3, plus a thin normal extent. A surfel thus covers the same surface patch
  from any viewpoint instead of a camera-facing disc;
- colour: a residual on the pixel's own colour, σ(r + logit(pixel));
- time: anchored at the view's time with a predicted temporal extent σ_t, so a pixel's Gaussian stays where and
  when its view saw it. Nothing moves: a predicted velocity (Gaussians4D carries one) was tried and removed — on
  the rig validation, zeroing the trained velocities raised PSNR by 1.7 dB (benchmarks/results/ablation.txt).
At zero outputs this is the non-learned splat of the inputs at their depth; the transformer learns residuals.

`paper_gaussians` — the paper's 20-channel activations (with the time-offset and pixel-footprint floor of the
previously shipped model), kept for the ablation's "plain transformer" row.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .gaussians import Gaussians4D

SURFEL_CHANNELS = 8  # [depth 1, opacity 1, footprint 2, rgb 3, log σ_t 1]
PAPER_CHANNELS = 20  # [xyz 3, t 1, rgb 3, scale_xyz 3, scale_t 1, q_left 4, q_right 4, opacity 1]
NEAR, FAR = 0.05, 50.0  # canonical z-depth range of pixel Gaussians (cameras sit ~2 from the scene centre)
MID_DEPTH = 2.0  # the model's measured-depth input channel is log(depth / MID_DEPTH)
# Base z-depths where nothing is measured. A learned plane-sweep prior (MVSplat-style, removed) had collapsed to
# ~18 everywhere; constants train better and a step 1.5x faster (benchmarks/results/ablation.txt, block 11). A depth
# camera's unmeasured pixels (object edges, dark or distant surfaces) are best far; a colour camera's nearer.
DROPOUT_DEPTH = 18.0
RGB_DEPTH = 6.0
MEASURED_RESIDUAL = 0.05  # |log-depth residual| allowed on a measured depth
OPACITY_OFFSET = 2.0  # opacity σ(r + 2) ≈ 0.88 at zero output
FOOTPRINT, MAX_STRETCH, THICKNESS = 0.3, 4.0, 0.2  # surfel extents in fronto-parallel pixel footprints
SMOOTH = 5  # pixels: the depth map's smoothing for surface normals
SIGMA_T0, SIGMA_T_RANGE = 0.2, (0.02, 4.0)  # temporal extent (normalised time) at zero output, and its bounds
_LOG_NEAR, _LOG_FAR = math.log(NEAR), math.log(FAR)


def z_rays(Ks: Tensor, camtoworlds: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Origins (V,H,W,3) and directions (V,H,W,3) scaled to unit camera z: a point at z-depth d is o + d·r."""
    dtype, device = camtoworlds.dtype, camtoworlds.device
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)
    d_cam = torch.einsum("vij,hwj->vhwi", torch.linalg.inv(Ks.to(dtype)), pix)
    d = torch.einsum("vij,vhwj->vhwi", camtoworlds[:, :3, :3], d_cam)
    return camtoworlds[:, None, None, :3, 3].expand_as(d), d


def base_log_depth(measured: Tensor | None, depth_views: Tensor | None, shape, device=None) -> tuple[Tensor, Tensor]:
    """(base log z-depth (V,H,W), measured mask (V,H,W) bool) from measured z-depth (V,H,W) (0 = none) or None;
    depth_views (V,) bool: the views a depth camera took (their unmeasured pixels start at DROPOUT_DEPTH, the
    others' at RGB_DEPTH), None: none."""
    base = torch.full(shape, math.log(RGB_DEPTH), device=measured.device if measured is not None else device)
    if depth_views is not None:
        base[depth_views] = math.log(DROPOUT_DEPTH)
    if measured is None:
        return base, torch.zeros(shape, dtype=torch.bool, device=base.device)
    valid = measured > 0
    # beyond FAR a measurement is as good as FAR (a splat there is pixel-sized anyway) and keeps footprints bounded
    return torch.where(valid, measured.clamp(NEAR, FAR).log(), base), valid


def masked_box_mean(x: Tensor, mask: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Mean of x (V,H,W) or (V,H,W,C) over the pixels of mask (V,H,W) in each k×k box (k odd, clipped at the image
    border), and the share (V,H,W) of each box that lies in the mask (0: no pixel, the mean is meaningless there)."""
    m = mask.to(x.dtype)[:, None]
    share = F.avg_pool2d(m, k, stride=1, padding=k // 2, count_include_pad=False)
    channels = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    mean = F.avg_pool2d(channels * m, k, stride=1, padding=k // 2, count_include_pad=False) / share.clamp_min(1e-9)
    return (mean[:, 0] if x.ndim == 3 else mean.permute(0, 2, 3, 1)), share[:, 0]


def surface_normals(o: Tensor, d: Tensor, log_z: Tensor) -> Tensor:
    """Unit normals (V,H,W,3) of the surface seen in each view, from its depth map smoothed over SMOOTH×SMOOTH
    pixels (a depth camera's noise, or a predicted depth's, is as large as a pixel's spacing: normals from
    neighbouring raw depths point anywhere). o, d (V,H,W,3) as from z_rays, log_z (V,H,W)."""
    z = F.avg_pool2d(log_z[:, None], SMOOTH, stride=1, padding=SMOOTH // 2, count_include_pad=False)[:, 0].exp()
    p = (o + z[..., None] * d).permute(0, 3, 1, 2)  # (V,3,H,W)
    pad = F.pad(p, (1, 1, 1, 1), mode="replicate")
    du = (pad[..., 1:-1, 2:] - pad[..., 1:-1, :-2]).permute(0, 2, 3, 1)
    dv = (pad[..., 2:, 1:-1] - pad[..., :-2, 1:-1]).permute(0, 2, 3, 1)
    return F.normalize(torch.linalg.cross(du, dv), dim=-1, eps=1e-12)


def _on_surface(axis: Tensor, ray: Tensor, normal: Tensor, cap: Tensor) -> Tensor:
    """A pixel's fronto-parallel footprint axis (V,H,W,3) slid along its unit ray onto the plane with `normal`:
    what the pixel covers on a tilted surface, at most `cap` (V,H,W) long (grazing views)."""
    a_n, r_n = (axis * normal).sum(-1), (ray * normal).sum(-1)
    t = axis - (a_n / torch.where(r_n.abs() < 1e-6, torch.full_like(r_n, 1e-6), r_n))[..., None] * ray
    return t * (cap / t.norm(dim=-1).clamp_min(1e-12)).clamp(max=1.0)[..., None]


def sum_of_outer(vectors: tuple[Tensor, ...], ridge: Tensor) -> Tensor:
    """Σₖ vₖ vₖᵀ + ridge·I (…,3,3) of vectors (…,3) and ridge (…). Built from the six distinct entries, each a
    product of whole component planes: broadcast (…,3,1)·(…,1,3) products run 2.5x slower forward and
    backward on the CPU (12 views of 128², two threads: 16 against 40 ms), a tenth of a training step."""
    planes = [v.movedim(-1, 0) for v in vectors]

    def entry(i: int, j: int) -> Tensor:
        out = planes[0][i] * planes[0][j]
        for p in planes[1:]:
            out = out + p[i] * p[j]
        return out

    xx, yy, zz = entry(0, 0) + ridge, entry(1, 1) + ridge, entry(2, 2) + ridge
    xy, xz, yz = entry(0, 1), entry(0, 2), entry(1, 2)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], -1).unflatten(-1, (3, 3))


def surfel_gaussians(raw: Tensor, images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
                     base: Tensor, measured: Tensor, far: Tensor | None = None) -> tuple[Gaussians4D, Tensor]:
    """raw (V,H,W,8), images (V,H,W,3) in [0,1], Ks (V,3,3), camtoworlds (V,4,4) canonical, times (V,)
    normalised, base log z-depth (V,H,W), measured (V,H,W) bool, far (V,H,W): a log z-depth no unmeasured pixel
    lies beyond (the floor's, along rays that meet it; None: FAR) -> (Gaussians4D of V·H·W, z-depth (V,H,W))."""
    V, H, W, _ = raw.shape
    r_depth, r_opa, r_foot, r_rgb, r_st = raw.split([1, 1, 2, 3, 1], dim=-1)
    # depth: bounded residual on a measurement, else a logit-space residual on the base inside [NEAR, FAR]
    span = _LOG_FAR - _LOG_NEAR
    frac = ((base - _LOG_NEAR) / span).clamp(1e-4, 1 - 1e-4)
    free = _LOG_NEAR + span * torch.sigmoid(torch.logit(frac) + r_depth[..., 0])
    if far is not None:
        free = torch.minimum(free, far.to(free))
    log_z = torch.where(measured, base + MEASURED_RESIDUAL * torch.tanh(r_depth[..., 0]), free)
    z = log_z.exp()
    o, d = z_rays(Ks.float(), camtoworlds.float(), H, W)
    points = o + z[..., None] * d
    # footprint: a pixel at z-depth z spans z/f canonical units fronto-parallel
    f = (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt().float()[:, None, None]
    foot = z / f
    normal = surface_normals(o, d, log_z)
    ray = F.normalize(d, dim=-1)
    cap = MAX_STRETCH * foot
    tu = _on_surface(foot[..., None] * camtoworlds[:, None, None, :3, 0].float(), ray, normal, cap)
    tv = _on_surface(foot[..., None] * camtoworlds[:, None, None, :3, 1].float(), ray, normal, cap)
    k = FOOTPRINT * torch.exp(1.5 * torch.tanh(r_foot))
    ku, kv = (k[..., 0:1] * tu), (k[..., 1:2] * tv)
    th = (THICKNESS * foot)[..., None] * normal
    # a surfel seen edge-on has no extent along its normal: the ridge keeps the covariance well conditioned
    cov = sum_of_outer((ku, kv, th), (1e-3 * foot) ** 2)
    colors = torch.sigmoid(r_rgb + torch.logit(images.float().clamp(1e-3, 1 - 1e-3)))
    lo, hi = SIGMA_T_RANGE
    scale_t = (math.log(SIGMA_T0) + r_st[..., 0]).exp().clamp(lo, hi)
    t_view = times.float()[:, None, None].expand(V, H, W)
    g = Gaussians4D(means=points.reshape(-1, 3), times=t_view.reshape(-1),
                    velocities=torch.zeros_like(points).reshape(-1, 3),
                    covars=cov.reshape(-1, 3, 3), scale_t=scale_t.reshape(-1),
                    opacities=torch.sigmoid(r_opa[..., 0] + OPACITY_OFFSET).reshape(-1),
                    colors=colors.reshape(-1, 3))
    return g, z


# --- the paper's head (ablation) -----------------------------------------------------------------------------
PAPER_SCALE_BIAS, PAPER_MAX_SCALE_XYZ, PAPER_MAX_SCALE_T = 2.3, 0.3, 1.0
PAPER_OPACITY_BIAS = 2.0
PAPER_NEAR, PAPER_FAR = 0.1, 4.5
PAPER_INIT = {"scale_xyz": -2.0, "scale_t": 2.0, "opacity": -2.0}  # raw head biases: small, long-lived, faint
_IDENTITY_QUAT = torch.tensor([1.0, 0.0, 0.0, 0.0])


def paper_gaussians(raw: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
                    scale_floor_px: float = 0.5) -> tuple[Gaussians4D, Tensor]:
    """raw (V,H,W,20) with the paper's activations (docs/design.md §1): depth δ = (1−w)·0.1 + w·4.5 along the ray,
    w = σ(mean xyz), means clipped to [-1,1]³, scales exp(g − 2.3) ≤ 0.3 with a `scale_floor_px`-pixel floor,
    time centre = view time + raw offset, scale_t exp(g − 2.3) ≤ 1, opacity σ(g − 2), quaternions normalised
    after adding the identity -> (Gaussians4D, z-depth (V,H,W))."""
    V, H, W, _ = raw.shape
    xyz, t, rgb, s_xyz, s_t, q_l, q_r, opa = raw.reshape(-1, PAPER_CHANNELS).split([3, 1, 3, 3, 1, 4, 4, 1], -1)
    o, d = z_rays(Ks.float(), camtoworlds.float(), H, W)
    unit = F.normalize(d, dim=-1).reshape(-1, 3)
    w = torch.sigmoid(xyz.mean(-1, keepdim=True))
    depth = (1 - w) * PAPER_NEAR + w * PAPER_FAR
    means = (o.reshape(-1, 3) + depth * unit).clamp(-1.0, 1.0)
    f = (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt().float()[:, None, None].expand(V, H, W).reshape(-1, 1)
    scales = torch.exp(s_xyz - PAPER_SCALE_BIAS).clamp(max=PAPER_MAX_SCALE_XYZ)
    scales = (scales ** 2 + (scale_floor_px * depth / f) ** 2).sqrt()
    t_view = times.float()[:, None, None].expand(V, H, W).reshape(-1)
    g = Gaussians4D.from_rotations(
        means=means, times=t_view + t[:, 0], scales=scales,
        scale_t=torch.exp(s_t[:, 0] - PAPER_SCALE_BIAS).clamp(max=PAPER_MAX_SCALE_T),
        quats_l=F.normalize(q_l + _IDENTITY_QUAT.to(q_l), dim=-1, eps=1e-8),
        quats_r=F.normalize(q_r + _IDENTITY_QUAT.to(q_r), dim=-1, eps=1e-8),
        opacities=torch.sigmoid(opa[:, 0] - PAPER_OPACITY_BIAS), colors=torch.sigmoid(rgb))
    axis = camtoworlds[:, None, None, :3, 2].float()
    z = ((g.means.view(V, H, W, 3) - o) * axis).sum(-1)
    return g, z
