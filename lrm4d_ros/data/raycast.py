"""Exact rendering of a procedural scene by analytic ray casting, all views of a batch in one vectorised pass.

Per pixel centre (ROS convention) one ray; the nearest surface among primitives, ground plane and backdrop
wins. Outputs per view: RGB (Lambertian-shaded procedural albedo, background colour where nothing is hit),
z-depth in metres (0 where nothing is hit) and alpha = 1 where the ray hits *any* surface — ground and backdrop
included — so that image = alpha·surface + (1 − alpha)·background holds exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..views import ViewSet
from .primitives import INTERSECT, bound_radius
from .textures import lambert


def _window_fraction(scene, stamps_ns: Tensor) -> Tensor:
    # Subtract in int64 first: absolute nanosecond stamps do not fit a float64 mantissa.
    return (stamps_ns.to(torch.int64).cpu() - scene.start_ns).to(torch.float64) / scene.duration_ns


class _Rays:
    """Per-pixel rays of V views, built lazily for the pixels that need them. A ray is o + t·R·(x, y, 1) with
    (x, y) = K⁻¹-normalised pixel coordinates, so its parameter t *is* the z-depth."""

    def __init__(self, Ks: Tensor, c2w: Tensor, height: int, width: int):
        self.H, self.W = height, width
        self.fx, self.fy = Ks[:, 0, 0], Ks[:, 1, 1]
        self.cx, self.cy = Ks[:, 0, 2], Ks[:, 1, 2]
        self.rot = c2w[:, :3, :3]
        self.origins = c2w[:, :3, 3]
        dev, dt = c2w.device, c2w.dtype
        self.u = torch.arange(width, device=dev, dtype=dt)
        self.v = torch.arange(height, device=dev, dtype=dt)
        self.intr = torch.stack([self.fx, self.fy, self.cx, self.cy], -1)  # (V,4)
        vv, uu = torch.meshgrid(self.v, self.u, indexing="ij")
        self.pix = torch.stack([uu.reshape(-1), vv.reshape(-1)], -1)  # (HW,2)

    def camera_dirs(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Flat ray indices (K,) into V·H·W -> view index (K,), camera-frame directions (x, y, 1) (K,3)."""
        HW = self.H * self.W
        vi = torch.div(idx, HW, rounding_mode="floor")
        uv = self.pix.index_select(0, idx - vi * HW)
        k = self.intr.index_select(0, vi)
        xy = (uv - k[:, 2:]) / k[:, :2]
        return vi, torch.cat([xy, torch.ones_like(xy[:, :1])], -1)

    def covered(self, centres: Tensor, radius: Tensor) -> Tensor:
        """Flat indices of the pixels whose rays may meet spheres at world `centres` (V,3) of radii (V,): the
        conservative image rectangle of each view's sphere (the whole image when it reaches the camera plane)."""
        pc = ((centres - self.origins)[:, None, :] @ self.rot)[:, 0]  # camera coordinates (V,3)
        x, y, z = pc.unbind(-1)
        behind = z + radius <= 0
        straddle = z - radius <= 1e-6
        zn, zf = (z - radius).clamp_min(1e-6), z + radius

        def span(c, f, pp):
            hi = torch.where(c + radius > 0, (c + radius) / zn, (c + radius) / zf)
            lo = torch.where(c - radius < 0, (c - radius) / zn, (c - radius) / zf)
            return f * lo + pp, f * hi + pp

        u0, u1 = span(x, self.fx, self.cx)
        v0, v1 = span(y, self.fy, self.cy)
        cols = ((self.u >= u0[:, None] - 1) & (self.u <= u1[:, None] + 1)) | straddle[:, None]
        rows = ((self.v >= v0[:, None] - 1) & (self.v <= v1[:, None] + 1)) | straddle[:, None]
        rows = rows & ~behind[:, None]
        return (rows[:, :, None] & cols[:, None, :]).reshape(-1).nonzero()[:, 0]


class _Canvas:
    """Nearest-hit buffers over N rays: z-depth (inf = nothing yet) and colour (background)."""

    def __init__(self, n: int, background: Tensor):
        self.t = torch.full((n,), float("inf"), device=background.device, dtype=background.dtype)
        self.rgb = background.expand(n, 3).clone()

    def commit(self, idx: Tensor, t: Tensor, color: Tensor):
        """Candidates at distinct ray indices idx (K,) with depths t (K,) (inf = miss) and colours (K,3)."""
        closer = (t < self.t.index_select(0, idx)).nonzero()[:, 0]
        idx = idx.index_select(0, closer)
        self.t.index_copy_(0, idx, t.index_select(0, closer))
        self.rgb.index_copy_(0, idx, color.index_select(0, closer))


def _cast_batch(scene, Ks: Tensor, c2w: Tensor, height: int, width: int, R: Tensor, c: Tensor, s: Tensor):
    """Ks (V,3,3), c2w (V,4,4), primitive poses R (V,P,3,3), c (V,P,3), s (V,P,3), all float32 on one device
    -> rgb (V,H,W,3), z-depth (V,H,W), alpha (V,H,W)."""
    V = Ks.shape[0]
    N = V * height * width
    rays = _Rays(Ks, c2w, height, width)
    canvas = _Canvas(N, scene.background.to(Ks))
    light = scene.light_dir.to(Ks)

    # A = S⁻¹ Rᵀ maps world offsets to object space, M = A·R_cam maps camera-frame directions there. Shading
    # needs only n_world·l = (n·A l) / |Aᵀ n| with |Aᵀ n|² = Σ (n_i / s_i)², since A Aᵀ = S⁻².
    A = R.transpose(-1, -2) / s[..., :, None]
    M = A @ rays.rot[:, None]
    o_loc = (A @ (rays.origins[:, None, :] - c)[..., None])[..., 0]
    A_l = A @ light
    table = torch.cat([M.flatten(-2), o_loc, A_l, 1.0 / s], -1)  # (V,P,18): one gather per ray
    for p, kind in enumerate(scene.kinds):
        idx = rays.covered(c[:, p], bound_radius(kind, scene.params[p], s[:, p]))
        if idx.numel() == 0:
            continue
        vi, d_cam = rays.camera_dirs(idx)
        g = table[:, p].index_select(0, vi)
        d_l = (g[:, :9].view(-1, 3, 3) @ d_cam[:, :, None])[..., 0]
        o_l = g[:, 9:12]
        t, n_l = INTERSECT[kind](o_l, d_l, scene.params[p])
        hit = torch.isfinite(t).nonzero()[:, 0]
        idx, t, n_l, o_l, d_l, g = (x.index_select(0, hit) for x in (idx, t, n_l, o_l, d_l, g))
        n_dot_l = (n_l * g[:, 12:15]).sum(-1) / (n_l * g[:, 15:18]).norm(dim=-1).clamp_min(1e-12)
        albedo = scene.textures[p](o_l + t[:, None] * d_l)
        canvas.commit(idx, t, lambert(albedo, n_dot_l, scene.ambient).clamp(0, 1))

    if scene.ground is not None or scene.backdrop is not None:
        vi, d_cam = rays.camera_dirs(torch.arange(N, device=Ks.device))
        d = (rays.rot.index_select(0, vi) @ d_cam[:, :, None])[..., 0]
        o = rays.origins.index_select(0, vi)
        # Ground and backdrop end at the backdrop's radius so that depths stay finite.
        r_max = scene.backdrop_radius
        if scene.ground is not None:
            dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], -1e-12), d[:, 2])
            t = (scene.ground_z - o[:, 2]) / dz
            p = o + t[:, None] * d
            ok = (t > 0) & (o[:, 2] > scene.ground_z) & ((p[:, :2] ** 2).sum(-1) < r_max ** 2)
            idx = ok.nonzero()[:, 0]
            shade = lambert(scene.ground(p[idx]), light[2].expand(idx.shape[0]), scene.ambient)
            canvas.commit(idx, t[idx], shade.clamp(0, 1))
        if scene.backdrop is not None:
            # Inward-facing vertical cylinder about the z axis; the cameras are inside it: take the far root.
            a = (d[:, 0] ** 2 + d[:, 1] ** 2).clamp_min(1e-12)
            bq = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
            cq = o[:, 0] ** 2 + o[:, 1] ** 2 - r_max ** 2
            t = (-bq + (bq * bq - a * cq).clamp_min(0).sqrt()) / a
            idx = (t > 0).nonzero()[:, 0]
            p = o[idx] + t[idx, None] * d[idx]
            n_dot_l = -(p[:, :2] @ light[:2]) / p[:, :2].norm(dim=-1).clamp_min(1e-12)
            canvas.commit(idx, t[idx], lambert(scene.backdrop(p), n_dot_l, scene.ambient).clamp(0, 1))

    hit = torch.isfinite(canvas.t)
    depth = torch.where(hit, canvas.t, torch.zeros_like(canvas.t))
    return (canvas.rgb.reshape(V, height, width, 3), depth.reshape(V, height, width),
            hit.to(Ks.dtype).reshape(V, height, width))


def render_views(scene, camera_ids: Tensor, stamps_ns: Tensor, height: int, width: int,
                 device: str | torch.device = "cpu", max_rays: int = 1 << 21) -> ViewSet:
    """Render views of `scene` seen by cameras `camera_ids` (V,) of its rig at absolute `stamps_ns` (V,) int64.

    Returns a ViewSet on `device`: images (V,H,W,3), z-depths, alphas (see module docstring), Ks of the rig at
    H×W, camera-to-world poses at each stamp (moving rigs move), the rig's camera names.
    Views are cast in chunks of at most `max_rays` rays to bound memory.
    """
    camera_ids = torch.as_tensor(camera_ids, dtype=torch.int64).cpu().reshape(-1)
    stamps_ns = torch.as_tensor(stamps_ns, dtype=torch.int64).cpu().reshape(-1)
    if camera_ids.shape != stamps_ns.shape:
        raise ValueError(f"camera_ids {tuple(camera_ids.shape)} and stamps_ns {tuple(stamps_ns.shape)} differ")
    if camera_ids.numel() and (camera_ids.min() < 0 or camera_ids.max() >= scene.rig.num):
        raise ValueError(f"camera_ids must be in [0, {scene.rig.num}), got {camera_ids.tolist()}")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    device = torch.device(device)
    u = _window_fraction(scene, stamps_ns)
    Ks = scene.rig.Ks(height, width)[camera_ids]
    c2w = scene.rig.poses(camera_ids, u)
    R, c, s = scene.motion.at(u)
    per_chunk = max(1, max_rays // (height * width))
    images, depths, alphas = [], [], []
    f32 = dict(device=device, dtype=torch.float32)
    for i in range(0, len(u), per_chunk):
        sl = slice(i, i + per_chunk)
        rgb, depth, alpha = _cast_batch(scene, Ks[sl].to(**f32), c2w[sl].to(**f32), height, width,
                                        R[sl].to(**f32), c[sl].to(**f32), s[sl].to(**f32))
        images.append(rgb.reshape(-1, height, width, 3))
        depths.append(depth.reshape(-1, height, width))
        alphas.append(alpha.reshape(-1, height, width))
    return ViewSet(images=torch.cat(images), Ks=Ks.to(device), camtoworlds=c2w.to(device),
                   stamps_ns=stamps_ns.to(device), camera_ids=camera_ids.to(device),
                   camera_names=list(scene.rig.names), depths=torch.cat(depths), alphas=torch.cat(alphas))
