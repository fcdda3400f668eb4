"""The floor's plane work compiled for the CPU (floor.py, floor_fit.py); the torch versions are the reference and
the fallback (GPU tensors, or numba unable to compile):

- `sample`: a compiled `PlaneViews.sample`: a plane's points take their colour from the input views that show
  them. The same colours to float32 rounding, 3x sooner on one thread (4.5x on two: 49.7k floor points of 12
  views, 34 -> 10.7 / 7.5 ms). Where a 256² render sees floor, the torch version's V-batched grid_sample and the
  (V, N) weights around it were most of the render. Per point, every view: project it, read the view's colour
  and `shows` bilinearly (grid_sample's bilinear with border padding, align_corners=False), weigh the views that
  show it (floor.py's log-space weights), softmax over them. Each point's views are a loop, so nothing of size
  (V, N) is made.
- `sweep`: the plane sweep of `floor_from_photo` (an RGB-only rig's floor): each view's grey image matched to its
  partners' through horizontal planes by normalised cross-correlation over 5×5 pixels. One plane and view at a
  time, in float64, so nothing of size (planes, views, H, W) is made but the answer.
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor

from .cpu_kernels import compile_kernel, run_parts, spans
from .pixel_gaussians import z_rays

POWER, SHARPNESS, ANGLE = range(3)  # consts' entries: floor.py's SHOWS_POWER, VIEW_SHARPNESS, VIEW_ANGLE


@njit(inline="always")
def _bilinear(stack, v, y0, y1, x0, x1, ch, w00, w01, w10, w11):
    return (stack[v, y0, x0, ch] * w00 + stack[v, y0, x1, ch] * w01 + stack[v, y1, x0, ch] * w10
            + stack[v, y1, x1, ch] * w11)


@compile_kernel
def sample_plane_views(stack, project, centres, focal, normal, points, dirs, consts, colors, sure):
    """stack (V,H,W,4) float32: the views' RGB and `shows`; project (V,4,3): [x, 1] -> (u·w, v·w, w) in
    grid_sample's [-1, 1]; centres (V,3), focal (V,) fx·fy, normal (3,); points, dirs (N,3) the plane's points and
    the unit target rays; consts (3,) SHOWS_POWER, VIEW_SHARPNESS, VIEW_ANGLE -> colors (N,3), sure (N,) filled."""
    V, H, W = stack.shape[0], stack.shape[1], stack.shape[2]
    N = points.shape[0]
    power, sharpness, angle = consts[POWER], consts[SHARPNESS], consts[ANGLE]
    n0, n1, n2 = float(normal[0]), float(normal[1]), float(normal[2])
    log_w = np.empty(V)
    rgb = np.empty((V, 3))
    for i in range(N):
        px, py, pz = float(points[i, 0]), float(points[i, 1]), float(points[i, 2])
        dx, dy, dz = float(dirs[i, 0]), float(dirs[i, 1]), float(dirs[i, 2])
        top = -np.inf
        best = 0.0
        for v in range(V):
            log_w[v] = -np.inf
            u = project[v, 0, 0] * px + project[v, 1, 0] * py + project[v, 2, 0] * pz + project[v, 3, 0]
            t = project[v, 0, 1] * px + project[v, 1, 1] * py + project[v, 2, 1] * pz + project[v, 3, 1]
            w = project[v, 0, 2] * px + project[v, 1, 2] * py + project[v, 2, 2] * pz + project[v, 3, 2]
            gx, gy = u / max(w, 1e-9), t / max(w, 1e-9)
            if not (w > 1e-6 and abs(gx) <= 1.0 and abs(gy) <= 1.0):
                continue
            x = min(max(((gx + 1.0) * W - 1.0) / 2.0, 0.0), W - 1.0)
            y = min(max(((gy + 1.0) * H - 1.0) / 2.0, 0.0), H - 1.0)
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            x1, y1 = min(x0 + 1, W - 1), min(y0 + 1, H - 1)
            ax, ay = x - x0, y - y0
            w00, w01, w10, w11 = (1.0 - ax) * (1.0 - ay), ax * (1.0 - ay), (1.0 - ax) * ay, ax * ay
            shows = min(max(_bilinear(stack, v, y0, y1, x0, x1, 3, w00, w01, w10, w11), 0.0), 1.0)
            best = max(best, shows)
            if not shows > 0.0:
                continue
            cx, cy, cz = centres[v, 0], centres[v, 1], centres[v, 2]
            ex, ey, ez = px - cx, py - cy, pz - cz
            dist2 = max(ex * ex + ey * ey + ez * ez, 1e-18)
            inv = 1.0 / np.sqrt(dist2)
            incidence = abs(ex * n0 + ey * n1 + ez * n2) * inv
            log_area = np.log(dist2) - np.log(focal[v] * max(incidence, 1e-3))
            cos = (ex * dx + ey * dy + ez * dz) * inv
            log_w[v] = power * np.log(max(shows, 1e-30)) - sharpness * log_area + (cos - 1.0) / angle
            top = max(top, log_w[v])
            for ch in range(3):
                rgb[v, ch] = _bilinear(stack, v, y0, y1, x0, x1, ch, w00, w01, w10, w11)
        sure[i] = best
        colors[i, 0] = colors[i, 1] = colors[i, 2] = 0.0
        if top == -np.inf:
            continue
        total = 0.0
        r = g = b = 0.0
        for v in range(V):
            if log_w[v] == -np.inf:
                continue
            e = np.exp(log_w[v] - top)
            total += e
            r += e * rgb[v, 0]
            g += e * rgb[v, 1]
            b += e * rgb[v, 2]
        colors[i, 0], colors[i, 1], colors[i, 2] = r / total, g / total, b / total


MIN_PART = 4096  # points: fewer are not worth a thread
_STATE: list[bool] = []  # [usable] once the first call of `sample` has compiled (or failed to)
_SWEEP_STATE: list[bool] = []  # the same for `sweep`


def sample(stack: Tensor, project: Tensor, centres: Tensor, focal: Tensor, normal: Tensor, points: Tensor,
           dirs: Tensor, consts: tuple[float, float, float]) -> tuple[Tensor, Tensor] | None:
    """`PlaneViews.sample` compiled: CPU tensors as `sample_plane_views` takes them (stack (V,H,W,4)) -> (colours
    (N,3), sure (N,)) in points' dtype, or None where the kernel cannot run (numba failed to compile: one
    warning, and the caller's torch version from then on). With more than one torch thread, the points are
    shared among that many threads."""
    if _STATE and not _STATE[0]:
        return None
    dt = points.dtype
    arrays = [t.detach().to(torch.float32).contiguous().numpy() for t in (
        stack, project, centres, focal, normal, points, dirs)]
    colors = np.empty((points.shape[0], 3), np.float32)
    sure = np.empty(points.shape[0], np.float32)
    consts = np.asarray(consts, np.float64)
    parts = [(*arrays[:5], arrays[5][a:b], arrays[6][a:b], consts, colors[a:b], sure[a:b])
             for a, b in spans(points.shape[0], MIN_PART)]
    if not run_parts(sample_plane_views, parts, _STATE, "plane sampling",
                     "the floor's and walls' views are read with torch"):
        return None
    return torch.from_numpy(colors).to(dt), torch.from_numpy(sure).to(dt)


@compile_kernel
def sweep_ncc(gray, a_stats, inv_count, centre_z, hit, inv_dz, bases, steps, partners, heights, out):
    """The plane sweep's matches -> out (S,V,h,w) float32 filled: floor_fit.plane_matches, the mean NCC over the
    partners that see each pixel's point on the plane z = heights[s] (in front of them, inside their image, not the
    view itself), −1 where none does or the ray does not descend.

    gray (V,h,w) float32 grey images; a_stats (V,h,w,2) float64 their 5×5 box mean and variance; inv_count (h,w)
    1 / the pixels in each 5×5 window clipped at the border; centre_z (V,) the cameras' heights; hit (V,h,w) bool:
    the ray descends; inv_dz (V,h,w) 1 / the z-ray's world z step (−1e6 where it does not descend, as floor_fit.py's
    −1e-6 step); a pixel's point at z-depth t seen by partner j reads (u·w, v·w, w) = bases[v, j] +
    t·steps[v, j, y, x] (bases (V,P,3), steps (V,P,h,w,3)); partners (V,P) int64. The partner's image is read as
    grid_sample reads it (bilinear, border padding, align_corners=False); the NCC's windows are clipped at the
    border, as floor._box's."""
    S, V, h, w = heights.shape[0], gray.shape[0], gray.shape[1], gray.shape[2]
    P = partners.shape[1]
    pad = np.zeros((3, h + 4, w + 4))  # b, b², a·b of the partner's view b, zero around the image
    rows = np.zeros((3, h + 4, w))  # their sums over the 5 columns about each pixel
    us = np.empty(w)
    qs = np.empty(w)
    ok = np.empty((h, w))
    acc = np.empty((h, w))
    n = np.empty((h, w))
    for s in range(S):
        for v in range(V):
            rise = heights[s] - centre_z[v]
            acc[:] = 0.0
            n[:] = 0.0
            for j in range(P):
                p = partners[v, j]
                other = 1.0 if p != v else 0.0
                A0, A1, A2 = bases[v, j, 0], bases[v, j, 1], bases[v, j, 2]
                for y in range(h):
                    for x in range(w):  # branch-free: LLVM vectorises it
                        t = max(rise * inv_dz[v, y, x], 1e-3)
                        zw = A2 + t * steps[v, j, y, x, 2]
                        r = 1.0 / max(zw, 1e-6)
                        u = (A0 + t * steps[v, j, y, x, 0]) * r
                        q = (A1 + t * steps[v, j, y, x, 1]) * r
                        inside = (zw > 1e-3) & (u >= -0.5) & (u <= w - 0.5) & (q >= -0.5) & (q <= h - 0.5)
                        ok[y, x] = other if inside else 0.0
                        # grid_sample's border padding: the sample point clipped into the image
                        us[x] = min(max(u, 0.0), w - 1.0)
                        qs[x] = min(max(q, 0.0), h - 1.0)
                    for x in range(w):
                        x0, y0 = int(us[x]), int(qs[x])
                        x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                        ax, ay = us[x] - x0, qs[x] - y0
                        val = ((gray[p, y0, x0] * (1.0 - ax) + gray[p, y0, x1] * ax) * (1.0 - ay)
                               + (gray[p, y1, x0] * (1.0 - ax) + gray[p, y1, x1] * ax) * ay)
                        pad[0, y + 2, x + 2] = val
                        pad[1, y + 2, x + 2] = val * val
                        pad[2, y + 2, x + 2] = gray[v, y, x] * val
                for k in range(3):
                    for y in range(2, h + 2):
                        for x in range(w):
                            rows[k, y, x] = (pad[k, y, x] + pad[k, y, x + 1] + pad[k, y, x + 2] + pad[k, y, x + 3]
                                             + pad[k, y, x + 4])
                for y in range(h):
                    for x in range(w):
                        c = inv_count[y, x]
                        m = (rows[0, y, x] + rows[0, y + 1, x] + rows[0, y + 2, x] + rows[0, y + 3, x]
                             + rows[0, y + 4, x]) * c
                        sb = (rows[1, y, x] + rows[1, y + 1, x] + rows[1, y + 2, x] + rows[1, y + 3, x]
                              + rows[1, y + 4, x]) * c
                        sab = (rows[2, y, x] + rows[2, y + 1, x] + rows[2, y + 2, x] + rows[2, y + 3, x]
                               + rows[2, y + 4, x]) * c
                        vb = max(sb - m * m, 0.0)
                        ncc = (sab - a_stats[v, y, x, 0] * m) / np.sqrt(a_stats[v, y, x, 1] * vb + 1e-8)
                        acc[y, x] += ok[y, x] * ncc
                        n[y, x] += ok[y, x]
            for y in range(h):
                for x in range(w):
                    out[s, v, y, x] = acc[y, x] / n[y, x] if hit[v, y, x] and n[y, x] > 0.0 else -1.0


def sweep(gray: Tensor, box_mean: Tensor, box_var: Tensor, Ks: Tensor, camtoworlds: Tensor, partners: Tensor,
          heights: Tensor) -> Tensor | None:
    """`floor_from_photo`'s match compiled: grey images (V,h,w) with their 5×5 box mean and variance (V,h,w), their
    Ks (V,3,3) and canonical camtoworlds (V,4,4), partners (V,P), plane heights (S,) -> (S,V,h,w) float32 mean NCC
    (−1: no partner sees the point), or None where the kernel cannot run (one warning, and the caller's torch
    version from then on). The planes are shared among torch's threads."""
    if _SWEEP_STATE and not _SWEEP_STATE[0]:
        return None
    V, h, w = gray.shape
    _, d = z_rays(Ks.double(), camtoworlds.double(), h, w)
    c2w = camtoworlds.double()
    w2c = torch.linalg.inv(c2w)
    project = Ks.double()[partners] @ w2c[partners][..., :3, :]  # (V,P,3,4): world -> partner pixels
    bases = (project[..., :3] @ c2w[:, None, :3, 3:] + project[..., 3:])[..., 0]  # the view's centre, seen
    steps = torch.einsum("vpij,vhwj->vphwi", project[..., :3], d)
    dz = d[..., 2]
    hit = dz < -1e-6
    inv_dz = torch.where(hit, 1.0 / dz, torch.full_like(dz, -1e6))
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    inv_count = 1.0 / (25.0 * torch.nn.functional.avg_pool2d(ones, 5, 1, 2, count_include_pad=True)[0, 0])
    g = gray.detach().to(torch.float32).contiguous().numpy()
    a_stats = torch.stack([box_mean, box_var], -1).double().contiguous().numpy()
    hs = heights.detach().double().contiguous().numpy()
    out = np.empty((len(hs), V, h, w), np.float32)
    args = (g, a_stats, inv_count.contiguous().numpy(), c2w[:, 2, 3].contiguous().numpy(),
            hit.contiguous().numpy(), inv_dz.contiguous().numpy(), bases.contiguous().numpy(),
            steps.contiguous().numpy(), partners.detach().long().contiguous().numpy())
    parts = [(*args, hs[a:b], out[a:b]) for a, b in spans(len(hs))]
    if not run_parts(sweep_ncc, parts, _SWEEP_STATE, "plane sweep", "an RGB-only rig's floor is matched with torch"):
        return None
    return torch.from_numpy(out)

