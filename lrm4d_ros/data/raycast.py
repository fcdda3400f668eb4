"""Exact rendering of a procedural scene by analytic ray casting, all views of a batch in one vectorised pass.

Per pixel centre (ROS convention) one ray (or s×s with `supersample`); the nearest surface among primitives,
ground plane and backdrop wins. Outputs per view: RGB (Lambertian-shaded procedural albedo, background colour
where nothing is hit), z-depth in metres (0 where nothing is hit) and alpha = the fraction of the pixel's rays
that hit *any* surface — ground and backdrop included — so image = alpha·surface + (1 − alpha)·background.
The ground's texture is filtered over each pixel's footprint (ray differentials), so it fades to its mean colour
towards the horizon instead of aliasing.

Two casters (`caster`): "torch", the reference, vectorised per primitive over the pixels that may see it (any
device; the evaluation bags are rendered with it); "numba" (fastcast.py), a compiled per-ray loop on the CPU that
shades each pixel once — several times faster on scenes with many or large surfaces (robot scenes).
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import scale_K
from ..views import ViewSet
from .primitives import INTERSECT, local_extent
from .textures import lambert

CASTERS = ("torch", "numba")


def _window_fraction(scene, stamps_ns: Tensor) -> Tensor:
    # Subtract in int64 first: absolute nanosecond stamps do not fit a float64 mantissa.
    return (stamps_ns.to(torch.int64).cpu() - scene.start_ns).to(torch.float64) / scene.duration_ns


NO_PRIMITIVE = -1  # surface id of ground, backdrop and empty pixels

# The 8 corners of [-1,1]³.
_CORNERS = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])


class _Rays:
    """Per-pixel rays of V views, built only for the pixels that need them. The ray through pixel (u, v) is
    o + t·P·(u, v, 1) with P = R·K⁻¹, whose third camera coordinate is 1: its parameter t *is* the z-depth."""

    def __init__(self, Ks: Tensor, c2w: Tensor, height: int, width: int):
        self.H, self.W = height, width
        self.K = Ks
        self.rot = c2w[:, :3, :3]
        self.origins = c2w[:, :3, 3]
        self.P = self.rot @ torch.linalg.inv(Ks)  # (V,3,3) pixel (u, v, 1) -> world direction

    def _grid(self, vi: Tensor, i: Tensor, j: Tensor, v0: Tensor, u0: Tensor):
        v, u = v0.index_select(0, vi) + i, u0.index_select(0, vi) + j
        idx = (vi * self.H + v) * self.W + u
        return idx, vi, torch.stack([u, v, torch.ones_like(u)], -1).to(self.P.dtype)

    def all(self):
        """(flat ray indices (N,), view indices (N,), homogeneous pixels (N,3)) of every pixel of every view."""
        V = self.P.shape[0]
        nz = torch.ones(V, self.H, self.W, dtype=torch.bool, device=self.P.device).nonzero()
        zero = torch.zeros(V, dtype=torch.int64, device=self.P.device)
        return self._grid(nz[:, 0], nz[:, 1], nz[:, 2], zero, zero)

    def rects(self, corners: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(u0, nu, v0, nv) (V,...) int64: per view the pixel rectangle (first column, columns, first row, rows)
        whose rays may meet the convex hull of world `corners` (V,...,8,3): the image rectangle of the projected
        corners, grown by a pixel (the whole image when the corners reach the camera plane; empty behind it)."""
        lead = (corners.shape[0],) + (1,) * (corners.dim() - 3)  # broadcast the views over extra batch dims
        K = self.K.reshape(*lead, 3, 3)
        pc = (corners - self.origins.reshape(*lead, 1, 3)) @ self.rot.reshape(*lead, 3, 3)  # camera coordinates
        z = pc[..., 2]
        behind = (z <= 0).all(-1)
        straddle = (z <= 1e-6).any(-1)
        zs = z.clamp_min(1e-6)
        u = (pc[..., 0] / zs * K[..., 0, 0, None] + K[..., 0, 2, None]).clamp(-1e6, 1e6)
        v = (pc[..., 1] / zs * K[..., 1, 1, None] + K[..., 1, 2, None]).clamp(-1e6, 1e6)

        def span(lo, hi, n):
            a = torch.floor(lo - 1).clamp(0, n - 1).long()
            b = torch.ceil(hi + 1).clamp(0, n - 1).long()
            a = torch.where(straddle, torch.zeros_like(a), a)
            b = torch.where(straddle, torch.full_like(b, n - 1), b)
            count = torch.where(behind | (hi < -1) | (lo > n), torch.zeros_like(a), b - a + 1)
            return a, count

        u0, nu = span(u.min(-1).values, u.max(-1).values, self.W)
        v0, nv = span(v.min(-1).values, v.max(-1).values, self.H)
        return u0, nu, v0, nv

    def covered(self, corners: Tensor):
        """(flat ray indices, view indices, homogeneous pixels (K,3)) of the pixels in `rects(corners)`."""
        u0, nu, v0, nv = self.rects(corners)
        hmax, wmax = int(nv.max()), int(nu.max())
        dev = corners.device
        ii = torch.arange(hmax, device=dev)[None, :, None]
        jj = torch.arange(wmax, device=dev)[None, None, :]
        nz = ((ii < nv[:, None, None]) & (jj < nu[:, None, None])).nonzero()
        return self._grid(nz[:, 0], nz[:, 1], nz[:, 2], v0, u0)


class _Canvas:
    """Nearest-hit buffers over N rays: z-depth (inf = nothing yet), colour (background) and the id of the surface
    hit (NO_PRIMITIVE for nothing, ground or backdrop)."""

    def __init__(self, n: int, background: Tensor):
        self.t = torch.full((n,), float("inf"), device=background.device, dtype=background.dtype)
        self.rgb = background.expand(n, 3).clone()
        self.ids = torch.full((n,), NO_PRIMITIVE, device=background.device, dtype=torch.int64)

    def commit(self, idx: Tensor, t: Tensor, color: Tensor, surface: int = NO_PRIMITIVE):
        """Candidates at distinct ray indices idx (K,) with depths t (K,) (inf = miss) and colours (K,3), all on
        `surface` (a primitive index)."""
        closer = (t < self.t.index_select(0, idx)).nonzero()[:, 0]
        idx = idx.index_select(0, closer)
        self.t.index_copy_(0, idx, t.index_select(0, closer))
        self.rgb.index_copy_(0, idx, color.index_select(0, closer))
        self.ids.index_fill_(0, idx, surface)


def _object_space(rays: _Rays, R: Tensor, c: Tensor, s: Tensor, light: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per view and primitive (poses R (V,P,3,3), c (V,P,3), s (V,P,3)): M (V,P,3,3) mapping homogeneous pixels to
    object-space ray directions, the camera centre in object space (V,P,3), and the shading table (V,P,6)."""
    # A = S⁻¹ Rᵀ maps world offsets to object space, M = A·P maps homogeneous pixels to ray directions there. Shading
    # needs only n_world·l = (n·A l) / |Aᵀ n| with |Aᵀ n|² = Σ (n_i / s_i)², since A Aᵀ = S⁻².
    A = R.transpose(-1, -2) / s[..., :, None]
    M = A @ rays.P[:, None]  # (V,P,3,3) pixel (u, v, 1) -> object-space direction
    o_loc = (A @ (rays.origins[:, None, :] - c)[..., None])[..., 0]
    return M, o_loc, torch.cat([A @ light, 1.0 / s], -1)


def _world_corners(scene, R: Tensor, c: Tensor, s: Tensor) -> Tensor:
    """(V,P,8,3) corners of each primitive's oriented bounding box in each view's pose."""
    extent = torch.stack([local_extent(k, q) for k, q in zip(scene.kinds, scene.params)]).to(s)  # (P,3)
    box = s[:, :, None, :] * _CORNERS.to(s) * extent[:, None, :]  # (V,P,8,3)
    return (R[:, :, None] @ box[..., None])[..., 0] + c[:, :, None]


def _plane_differentials(P: Tensor, d: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Offsets (K,3) of rays' hits on a horizontal plane per pixel step in u and in v (ray differentials):
    P (K,3,3) maps pixels (u, v, 1) to the world directions d (K,3) of the rays, t (K,) their hit parameters."""
    cu, cv = P[:, :, 0], P[:, :, 1]
    dz = d[:, 2:3]
    return t[:, None] * (cu - d * cu[:, 2:3] / dz), t[:, None] * (cv - d * cv[:, 2:3] / dz)


def _ground_rgb(scene, P: Tensor, d: Tensor, t: Tensor, p: Tensor, light: Tensor) -> Tensor:
    """Shaded ground colours (K,3) at hits p (K,3), its texture averaged over each pixel's footprint."""
    ddx, ddy = _plane_differentials(P, d, t)
    # On the plane exactly: rounding noise in z would flip a 3D checker whose cell boundary is the plane.
    p = torch.cat([p[:, :2], torch.full_like(p[:, 2:], scene.ground_z)], -1)
    return lambert(scene.ground.filtered(p, ddx, ddy), light[2].expand(p.shape[0]), scene.ambient).clamp(0, 1)


def _backdrop_rgb(scene, p: Tensor, light: Tensor) -> Tensor:
    """Shaded colours (K,3) of the inward-facing backdrop cylinder at world hits p (K,3)."""
    n_dot_l = -(p[:, :2] @ light[:2]) / p[:, :2].norm(dim=-1).clamp_min(1e-12)
    return lambert(scene.backdrop(p), n_dot_l, scene.ambient).clamp(0, 1)


def _cast_batch(scene, Ks: Tensor, c2w: Tensor, height: int, width: int, R: Tensor, c: Tensor, s: Tensor):
    """Ks (V,3,3), c2w (V,4,4), primitive poses R (V,P,3,3), c (V,P,3), s (V,P,3), all float32 on one device
    -> rgb (V,H,W,3), z-depth (V,H,W), alpha (V,H,W), primitive id (V,H,W) int64 (see surface_ids)."""
    V = Ks.shape[0]
    N = V * height * width
    rays = _Rays(Ks, c2w, height, width)
    canvas = _Canvas(N, scene.background.to(Ks))
    light = scene.light_dir.to(Ks)

    M, o_loc, shade_table = _object_space(rays, R, c, s, light)
    ray_table = torch.cat([M.flatten(-2), o_loc], -1)  # (V,P,12): one gather per covered ray
    corners = _world_corners(scene, R, c, s)
    for p, kind in enumerate(scene.kinds):
        idx, vi, pix = rays.covered(corners[:, p])
        if idx.numel() == 0:
            continue
        g = ray_table[:, p].index_select(0, vi)
        d_l = (g[:, :9].view(-1, 3, 3) @ pix[:, :, None])[..., 0]
        o_l = g[:, 9:12]
        t, n_l = INTERSECT[kind](o_l, d_l, scene.params[p])
        hit = torch.isfinite(t).nonzero()[:, 0]
        p_l = torch.addcmul(o_l, t.clamp(max=1e6)[:, None], d_l)
        idx, vi, t, n_l, p_l = (x.index_select(0, hit) for x in (idx, vi, t, n_l, p_l))
        sh = shade_table[:, p].index_select(0, vi)
        n_dot_l = (n_l * sh[:, :3]).sum(-1) / (n_l * sh[:, 3:]).norm(dim=-1).clamp_min(1e-12)
        canvas.commit(idx, t, lambert(scene.textures[p](p_l), n_dot_l, scene.ambient).clamp(0, 1), p)

    if scene.ground is not None or scene.backdrop is not None:
        _, vi, pix = rays.all()
        P = rays.P.index_select(0, vi)
        d = (P @ pix[:, :, None])[..., 0]
        o = rays.origins.index_select(0, vi)
        # The backdrop (and a finite ground) end at the backdrop's radius so that depths stay finite.
        r_max = scene.backdrop_radius
        if scene.ground is not None:
            dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], -1e-12), d[:, 2])
            t = (scene.ground_z - o[:, 2]) / dz
            p = o + t[:, None] * d
            inside = d[:, 2] < -1e-12 if scene.ground_infinite else (p[:, :2] ** 2).sum(-1) < r_max ** 2
            idx = ((t > 0) & (o[:, 2] > scene.ground_z) & inside).nonzero()[:, 0]
            canvas.commit(idx, t[idx], _ground_rgb(scene, P[idx], d[idx], t[idx], p[idx], light))
        if scene.backdrop is not None:
            # Inward-facing vertical cylinder about the z axis; the cameras are inside it: take the far root.
            a = (d[:, 0] ** 2 + d[:, 1] ** 2).clamp_min(1e-12)
            bq = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
            cq = o[:, 0] ** 2 + o[:, 1] ** 2 - r_max ** 2
            t = (-bq + (bq * bq - a * cq).clamp_min(0).sqrt()) / a
            idx = (t > 0).nonzero()[:, 0]
            canvas.commit(idx, t[idx], _backdrop_rgb(scene, o[idx] + t[idx, None] * d[idx], light))

    hit = torch.isfinite(canvas.t)
    depth = torch.where(hit, canvas.t, torch.zeros_like(canvas.t))
    return (canvas.rgb.reshape(V, height, width, 3), depth.reshape(V, height, width),
            hit.to(Ks.dtype).reshape(V, height, width), canvas.ids.reshape(V, height, width))


def _cast_batch_numba(scene, Ks: Tensor, c2w: Tensor, height: int, width: int, R: Tensor, c: Tensor, s: Tensor):
    """`_cast_batch` by the compiled caster (fastcast.py): the same inputs in float64 on the CPU, the same outputs
    (float32 on the CPU; ids int32)."""
    from . import fastcast  # imports numba: only when this caster is used

    rays = _Rays(Ks, c2w, height, width)
    light = scene.light_dir.to(Ks)
    M, o_loc, shade_table = _object_space(rays, R, c, s, light)
    corners = _world_corners(scene, R, c, s)
    rects = torch.stack(rays.rects(corners), -1)  # (V,P,4)
    # Nearest z-depth of each bounding box (a corner's), less a rounding margin.
    zmin = ((corners - rays.origins[:, None, None, :]) @ rays.rot[:, None])[..., 2].min(-1).values - 1e-6
    ground = 0 if scene.ground is None else (2 if scene.ground_infinite else 1)
    tex = fastcast.pack_textures(list(scene.textures) + [scene.ground, scene.backdrop])
    rgb, depth, alpha, ids = fastcast.cast(
        M.contiguous().numpy(), o_loc.contiguous().numpy(), shade_table.contiguous().numpy(),
        zmin.contiguous().numpy(), fastcast.kind_ids(scene.kinds), np.asarray(scene.params, dtype=np.float64),
        rects.contiguous().numpy(),
        rays.P.contiguous().numpy(), rays.origins.contiguous().numpy(), height, width, float(scene.ground_z),
        ground, float(scene.backdrop_radius) ** 2, float(scene.backdrop_radius) if scene.backdrop is not None
        else 0.0, *tex, light.numpy(), float(scene.ambient), scene.background.double().numpy())
    return tuple(torch.from_numpy(x) for x in (rgb, depth, alpha, ids))


@contextmanager
def _cpu_threads(n: int | None):
    old = torch.get_num_threads()
    if n is not None and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def render_views(scene, camera_ids: Tensor, stamps_ns: Tensor, height: int, width: int,
                 device: str | torch.device = "cpu", max_rays: int = 1 << 21, threads: int | None = 1,
                 supersample: int = 1, caster: str = "torch") -> ViewSet:
    """Render views of `scene` seen by cameras `camera_ids` (V,) of its rig at absolute `stamps_ns` (V,) int64.

    Returns a ViewSet on `device`: images (V,H,W,3), z-depths, alphas (see module docstring), Ks of the rig at
    H×W, camera-to-world poses at each stamp (moving rigs move), the rig's camera names.
    Views are cast in chunks of at most `max_rays` rays to bound memory. `threads`: torch CPU threads while
    casting, restored afterwards (default 1: the cast is many medium-sized ops, and on a shared CPU the
    per-op thread barriers of two threads made it 10–30× slower in benchmarks/bench_generator.py); None keeps
    torch's setting. `supersample` (odd, ≥ 1): cast s×s rays per pixel and box-filter images and alphas
    (anti-aliasing, s² the cost); depths stay those of the ray through the pixel centre. `caster`: "torch"
    (reference) or "numba" (fast, on the CPU whatever `device`; see module docstring).
    """
    if supersample < 1 or supersample % 2 == 0:
        raise ValueError(f"supersample must be an odd integer >= 1 (its centre ray is the pixel's), got {supersample}")
    if caster not in CASTERS:
        raise ValueError(f"caster must be one of {CASTERS}, got {caster!r}")
    with _cpu_threads(threads if torch.device(device).type == "cpu" else None):
        return _render_views(scene, camera_ids, stamps_ns, height, width, device, max_rays, supersample, caster)


def _cast_chunks(scene, camera_ids, stamps_ns, height: int, width: int, device, max_rays: int, ss: int,
                 caster: str = "torch"):
    """Check the views, then cast them at ss× resolution in chunks of at most `max_rays` rays.

    Returns camera_ids and stamps_ns as (V,) int64 CPU tensors, the rig's Ks at H×W and camera-to-world poses
    (float64, CPU), and an iterator over the chunks' `_cast_batch` outputs (float32 on `device`, view order).
    """
    camera_ids = torch.as_tensor(camera_ids, dtype=torch.int64).cpu().reshape(-1)
    stamps_ns = torch.as_tensor(stamps_ns, dtype=torch.int64).cpu().reshape(-1)
    if camera_ids.shape != stamps_ns.shape:
        raise ValueError(f"camera_ids {tuple(camera_ids.shape)} and stamps_ns {tuple(stamps_ns.shape)} differ")
    if camera_ids.numel() and (camera_ids.min() < 0 or camera_ids.max() >= scene.rig.num):
        raise ValueError(f"camera_ids must be in [0, {scene.rig.num}), got {camera_ids.tolist()}")
    if camera_ids.numel() == 0:
        raise ValueError("render_views needs at least one view")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    u = _window_fraction(scene, stamps_ns)
    Ks = scene.rig.Ks(height, width)[camera_ids]
    # Sub-pixel (ss·u + ss//2) of the fine grid has its centre exactly on pixel u's centre (ROS convention).
    Ks_fine = scale_K(Ks, ss, ss)
    c2w = scene.rig.poses(camera_ids, u)
    R, c, s = scene.motion.at(u)
    Hf, Wf = height * ss, width * ss
    per_chunk = max(1, max_rays // (Hf * Wf))
    slices = [slice(i, i + per_chunk) for i in range(0, len(u), per_chunk)]
    if caster == "numba":
        chunks = (tuple(x.to(device) for x in _cast_batch_numba(scene, Ks_fine[sl], c2w[sl], Hf, Wf, R[sl], c[sl],
                                                                 s[sl])) for sl in slices)
    else:
        f32 = dict(device=torch.device(device), dtype=torch.float32)
        chunks = (_cast_batch(scene, Ks_fine[sl].to(**f32), c2w[sl].to(**f32), Hf, Wf, R[sl].to(**f32),
                              c[sl].to(**f32), s[sl].to(**f32)) for sl in slices)
    return camera_ids, stamps_ns, Ks, c2w, chunks


def _render_views(scene, camera_ids, stamps_ns, height, width, device, max_rays, ss, caster) -> ViewSet:
    device = torch.device(device)
    camera_ids, stamps_ns, Ks, c2w, chunks = _cast_chunks(scene, camera_ids, stamps_ns, height, width, device,
                                                          max_rays, ss, caster)
    images, depths, alphas = [], [], []
    for rgb, depth, alpha, _ in chunks:
        if ss > 1:
            rgb = F.avg_pool2d(rgb.permute(0, 3, 1, 2), ss).permute(0, 2, 3, 1).contiguous()
            alpha = F.avg_pool2d(alpha[:, None], ss)[:, 0]
            depth = depth[:, ss // 2::ss, ss // 2::ss].contiguous()
        images.append(rgb)
        depths.append(depth)
        alphas.append(alpha)

    def cat(xs):  # one chunk is the common case: skip the copy
        return xs[0] if len(xs) == 1 else torch.cat(xs)

    return ViewSet(images=cat(images), Ks=Ks.to(device), camtoworlds=c2w.to(device),
                   stamps_ns=stamps_ns.to(device), camera_ids=camera_ids.to(device),
                   camera_names=list(scene.rig.names), depths=cat(depths), alphas=cat(alphas))


def surface_ids(scene, camera_ids: Tensor, stamps_ns: Tensor, height: int, width: int,
                max_rays: int = 1 << 21, caster: str = "torch") -> Tensor:
    """(V,H,W) int64 index into scene.kinds of the primitive seen through each pixel centre, NO_PRIMITIVE where the
    ray meets the ground, the backdrop or nothing: instance ground truth for the views `render_views` draws with
    the same arguments (e.g. to look a pixel's motion up in scene.motion). On the CPU."""
    *_, chunks = _cast_chunks(scene, camera_ids, stamps_ns, height, width, "cpu", max_rays, 1, caster)
    return torch.cat([ids.long() for *_, ids in chunks])
