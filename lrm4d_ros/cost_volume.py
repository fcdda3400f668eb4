"""A multi-view depth prior for RGB-only views: a small plane-sweep cost volume in the manner of MVSplat
(Chen et al. 2024) and DepthSplat, sized for a CPU.

Per view: CNN features at 1/4 resolution; for each of `planes` depth hypotheses spaced evenly in log depth
between `near` and `far` (canonical z-depth), the view's pixels are lifted to that depth, projected into its
`neighbours` best partner views, and the partners' features sampled there; the cost is the dot product of the
two feature vectors / √C, averaged over partners that see the point. A 3×3 convolution over the cost volume,
a softmax over planes, and the expectation of log depth give a depth and a confidence (the winning plane's
probability) per pixel, upsampled to full resolution. (Log depth rather than MVSplat's inverse depth: an
undecided volume then means the middle of the range in ratio, about where a scene's centre is, not the
near plane.) Everything is differentiable, so the features
learn from the depth loss on the prior and from the renders.

Partners are the views that look most nearly the same way from another place at nearly the same time: a
synchronized rig's other cameras at that instant, or a moving camera's neighbouring frames.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .cameras import scale_K

STRIDE = 4
MIN_BASELINE = 0.05  # canonical units: partners closer than this cannot triangulate


def pick_partners(camtoworlds: Tensor, times: Tensor, k: int) -> Tensor:
    """(V,k) indices of each view's partners (itself when V ≤ k): smallest angle between optical axes
    + 2·|Δt| (normalised time), among views at least MIN_BASELINE away."""
    V = camtoworlds.shape[0]
    axes = camtoworlds[:, :3, 2]
    centres = camtoworlds[:, :3, 3]
    angle = torch.acos((axes @ axes.T).clamp(-1, 1))
    cost = angle + 2.0 * (times[:, None] - times[None, :]).abs()
    far_enough = (centres[:, None] - centres[None, :]).norm(dim=-1) >= MIN_BASELINE
    cost = torch.where(far_enough, cost, cost + 1e3)
    cost.fill_diagonal_(float("inf"))
    if V <= 1:
        return torch.zeros(V, k, dtype=torch.long, device=camtoworlds.device)
    kk = min(k, V - 1)
    idx = cost.topk(kk, dim=1, largest=False).indices
    return idx if kk == k else torch.cat([idx, idx[:, :1].expand(V, k - kk)], 1)


class PlaneSweep(nn.Module):
    def __init__(self, planes: int = 32, channels: int = 16, neighbours: int = 2, near: float = 0.3,
                 far: float = 20.0):
        super().__init__()
        self.planes, self.channels, self.neighbours, self.near, self.far = planes, channels, neighbours, near, far
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1))
        self.refine = nn.Conv2d(planes, planes, 3, padding=1)
        nn.init.zeros_(self.refine.weight)
        nn.init.zeros_(self.refine.bias)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(4.0)))

    def inverse_depths(self, device, dtype) -> Tensor:
        """(D,) plane inverse depths, evenly spaced in log depth from near to far."""
        return torch.exp(-torch.linspace(math.log(self.near), math.log(self.far), self.planes, device=device,
                                         dtype=dtype))

    def forward(self, images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor) -> tuple[Tensor, Tensor]:
        """images (V,H,W,3) in [0,1], Ks (V,3,3) at H×W, camtoworlds (V,4,4) canonical, times (V,) normalised
        -> (log z-depth (V,H,W), confidence (V,H,W) in [0,1])."""
        V, H, W, _ = images.shape
        feat = self.features(images.permute(0, 3, 1, 2) * 2 - 1)  # (V,C,h,w)
        h, w = feat.shape[-2:]
        K = scale_K(Ks.double(), w / W, h / H)
        c2w = camtoworlds.double()
        partners = pick_partners(c2w, times.double(), self.neighbours)  # (V,k)
        inv_d = self.inverse_depths(feat.device, torch.float64)  # (D,)
        v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=feat.device),
                              torch.arange(w, dtype=torch.float64, device=feat.device), indexing="ij")
        pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)  # (h·w,3)
        rays = torch.einsum("vij,nj->vni", torch.linalg.inv(K), pix)  # camera frame, z = 1 (V,hw,3)
        pts_cam = rays[:, None] / inv_d[None, :, None, None]  # (V,D,hw,3)
        pts = torch.einsum("vij,vdnj->vdni", c2w[:, :3, :3], pts_cam) + c2w[:, None, None, :3, 3]
        cost = feat.new_zeros(V, self.planes, h * w)
        count = feat.new_zeros(V, self.planes, h * w)
        w2c = torch.linalg.inv(c2w)
        for j in range(self.neighbours):
            p = partners[:, j]
            R, t = w2c[p, :3, :3], w2c[p, :3, 3]
            pc = torch.einsum("vij,vdnj->vdni", R, pts) + t[:, None, None]
            z = pc[..., 2]
            uv = torch.einsum("vij,vdnj->vdni", K[p], pc)[..., :2] / z.clamp_min(1e-6)[..., None]
            grid = torch.stack([(uv[..., 0] + 0.5) / w * 2 - 1, (uv[..., 1] + 0.5) / h * 2 - 1], -1)
            valid = (z > 1e-3) & (grid.abs() <= 1).all(-1) & (p != torch.arange(V, device=p.device))[:, None, None]
            sampled = F.grid_sample(feat[p], grid.to(feat.dtype).reshape(V, self.planes * h * w, 1, 2),
                                    mode="bilinear", padding_mode="zeros", align_corners=False)
            sampled = sampled.reshape(V, self.channels, self.planes, h * w)
            corr = (sampled * feat.reshape(V, self.channels, 1, h * w)).sum(1) / math.sqrt(self.channels)
            cost = cost + torch.where(valid, corr, torch.zeros_like(corr))
            count = count + valid.to(cost.dtype)
        cost = (cost / count.clamp_min(1.0)).reshape(V, self.planes, h, w)
        cost = cost + self.refine(cost)
        prob = torch.softmax(cost * self.log_temperature.exp(), dim=1)
        log_d = (prob * -torch.log(inv_d).to(prob.dtype)[None, :, None, None]).sum(1, keepdim=True)
        conf = prob.amax(1, keepdim=True) * (count.reshape(V, self.planes, h, w).amax(1, keepdim=True) > 0)
        up = F.interpolate(torch.cat([log_d, conf], 1), size=(H, W), mode="bilinear", align_corners=False)
        return up[:, 0], up[:, 1]
