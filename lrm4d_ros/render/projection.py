"""EWA projection of 3D Gaussians to image-plane Gaussians, with gsplat 1.5's classic-mode conventions.

Constants and culling rules follow gsplat 1.5 (`gsplat/cuda/_torch_impl.py::_persp_proj` for the Jacobian
clamp, `gsplat/cuda/csrc/ProjectionEWA3DGSFused.cu` for the blur, the opacity-aware per-axis radii and the
culling). Pixel coordinates here are ROS/OpenCV ones (pixel (u, v) centred at integer (u, v)); gsplat's are
these + 0.5, which is why the clamp limits use `cx + 0.5`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

EPS2D = 0.3  # px², gsplat `eps2d` default: isotropic blur added to every 2D covariance
ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat ALPHA_THRESHOLD: dimmer contributions are skipped
MAX_EXTEND = 3.33  # gsplat: bounding box half-size in standard deviations, before the opacity bound
FOV_CLAMP_MARGIN = 0.3  # gsplat clamps x/z, y/z to the image edge + 0.3 × the half-FoV tangent


def test_scene(device: str | torch.device = "cpu") -> tuple:
    """Arguments of a backend's `rasterize` for two Gaussians in front of a 20×20 camera, which a working
    rasterizer draws with alpha > 0.5: the backends' first-use check (rasterize_numba, rasterize_gsplat)."""
    K = torch.tensor([[[20.0, 0.0, 9.5], [0.0, 20.0, 9.5], [0.0, 0.0, 1.0]]], device=device)
    return (torch.tensor([[0.0, 0.0, 2.0], [0.05, 0.0, 3.0]], device=device),
            torch.eye(3, device=device).expand(2, 3, 3) * 0.01, torch.tensor([0.9, 0.8], device=device),
            torch.ones(2, 3, device=device), torch.eye(4, device=device)[None], K, 20, 20,
            torch.zeros(1, 3, device=device), 0.01, 1e10)


class Projected(NamedTuple):
    """Per (camera, Gaussian) screen-space quantities; shapes (C,N,...)."""

    means2d: Tensor  # (C,N,2) px, ROS pixel convention
    conics: Tensor  # (C,N,3) inverse 2D covariance [a, b, c]: dᵀΣ⁻¹d = a dx² + 2b dx dy + c dy²
    depths: Tensor  # (C,N) camera z
    radii: Tensor  # (C,N,2) int64 half-size of the pixel box; 0 where culled


def world_to_camera(means: Tensor, covars: Tensor, viewmats: Tensor) -> tuple[Tensor, Tensor]:
    """means (N,3), covars (N,3,3), viewmats (C,4,4) -> camera-frame means (C,N,3), covars (C,N,3,3)."""
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]
    covars_c = R[:, None] @ covars[None] @ R.transpose(-1, -2)[:, None]
    return means_c, covars_c


def project(means: Tensor, covars: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor,
            width: int, height: int, near: float, far: float) -> Projected:
    """Project N Gaussians into C pinhole cameras (gsplat `fully_fused_projection`, classic mode).

    means (N,3), covars (N,3,3), opacities (N,), viewmats (C,4,4) world-to-camera, Ks (C,3,3) ROS convention.
    Differentiable w.r.t. means and covars (radii are not).
    """
    means_c, covars_c = world_to_camera(means, covars, viewmats)
    x, y, z = means_c.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    # A Gaussian far outside the view has a huge x/z, which would blow the affine approximation up.
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - (cx + 0.5)) / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_x_neg = (cx + 0.5) / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_y_pos = (height - (cy + 0.5)) / fy + FOV_CLAMP_MARGIN * tan_fovy
    lim_y_neg = (cy + 0.5) / fy + FOV_CLAMP_MARGIN * tan_fovy
    rz = 1.0 / z
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    zeros = torch.zeros_like(z)
    J = torch.stack([fx * rz, zeros, -fx * tx * rz * rz,
                     zeros, fy * rz, -fy * ty * rz * rz], dim=-1).reshape(*z.shape, 2, 3)
    cov2d = J @ covars_c @ J.transpose(-1, -2)
    a = cov2d[..., 0, 0] + EPS2D
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    c = cov2d[..., 1, 1] + EPS2D
    det = a * c - b * b
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    with torch.no_grad():
        opac = opacities.detach()[None].expand_as(z)
        # Opacity-aware box (gsplat 1.5, arXiv:2402.00525 §B.2): outside it alpha < 1/255 for sure.
        extend = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp(max=MAX_EXTEND)
        rx = torch.ceil(extend * torch.sqrt(a.detach().clamp(min=0)))
        ry = torch.ceil(extend * torch.sqrt(c.detach().clamp(min=0)))
        mx, my = means2d.detach().unbind(-1)
        valid = ((det.detach() > 0) & (z.detach() >= near) & (z.detach() <= far)
                 & (opac >= ALPHA_THRESHOLD) & ((rx > 0) | (ry > 0))
                 & (mx + 0.5 + rx > 0) & (mx + 0.5 - rx < width)
                 & (my + 0.5 + ry > 0) & (my + 0.5 - ry < height)
                 & torch.isfinite(mx) & torch.isfinite(my))
        radii = torch.stack([rx, ry], dim=-1).nan_to_num(0.0).clamp(max=1e6)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).long()
    return Projected(means2d, conics, z, radii)

