"""Scene flow between one camera's consecutive frames: the velocities of its pixel Gaussians.

A pixel Gaussian sits where its view saw its pixel, anchored at its view's time, and lives a temporal extent
around it. Between two frames of a camera, a moving robot arm is then two ghosts, each fading, where a camera
at that moment would see one arm half way. The 4D covariance carries a velocity (Gaussians4D.velocities); this
module measures it instead of leaving it to the model (a predicted velocity lost 1.7 dB, ablation.txt):
- optical flow between each pair of consecutive frames of the same camera (OpenCV's DIS, both directions) finds
  where each pixel went; pixels whose forward and backward flows disagree (occluded, disoccluded), or whose
  match lies on another surface (its depth differs by more than MAX_DEPTH_STEP), get none;
- the pixel's 3D displacement is its matched pixel's Gaussian centre minus its own (measured or predicted
  depth, in the canonical frame), so the camera's own motion drops out;
- a pixel's velocity is the central difference of its displacements to the previous and next frame (one-sided
  at the window's ends); pixels whose flow the cameras' own motion explains to within STILL_PX keep still, so
  depth noise does not jitter a static scene.
No learned parameters: the reconstructor (`predict`) applies it at inference.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from .cameras import project_points

# images are matched at this many times their size (DIS's 8-pixel patches then hold thin parts): 16 rig validation
# scenes, time_interp RGB-D 33.56 -> 33.79, RGB 32.69 -> 32.83; ~3.5 ms more per flow at 128²
UPSAMPLE = 2
STILL_PX = 0.5  # flow (pixels) below which a pixel is static
FB_TOL_PX = 1.0  # forward-backward flow disagreement (pixels) beyond which a match is an occlusion
MAX_DEPTH_STEP = 0.1  # relative depth change between a pixel and its match beyond which they are two surfaces


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow (H,W,2) in pixels (dx, dy) from image a to image b, both (H,W,3) uint8 RGB."""
    ga, gb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b))
    # DIS (Kroeger et al. 2016) at its medium preset: on the rig validation as good as at full resolution
    # (finest scale 0) and better than Farneback (time_interp 29.67 / 29.71 / 29.32 dB)
    H, W = ga.shape
    ga, gb = (cv2.resize(x, (W * UPSAMPLE, H * UPSAMPLE), interpolation=cv2.INTER_CUBIC) for x in (ga, gb))
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(ga, gb, None)
    return cv2.resize(flow, (W, H), interpolation=cv2.INTER_AREA) / UPSAMPLE


def _displacement(flow_ab: np.ndarray, flow_ba: np.ndarray, points_a: Tensor, points_b: Tensor, K_b: Tensor,
                  c2w_b: Tensor) -> tuple[Tensor, Tensor]:
    """(displacement (H,W,3) of each pixel of frame a to its match in frame b, valid (H,W) bool).

    A pixel whose flow the cameras' own motion explains (within STILL_PX) is static: displacement 0. Otherwise
    its match must agree with the flow back (FB_TOL_PX) and in depth: the point's depth seen from b within
    MAX_DEPTH_STEP of the depth b has at the match (a match across a depth edge would fly the Gaussian off)."""
    H, W, _ = flow_ab.shape
    dev = points_a.device
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    ub, vb = u + flow_ab[..., 0], v + flow_ab[..., 1]
    inside = (ub >= 0) & (ub <= W - 1) & (vb >= 0) & (vb <= H - 1)
    ui, vi = np.clip(np.rint(ub), 0, W - 1).astype(np.int64), np.clip(np.rint(vb), 0, H - 1).astype(np.int64)
    back = flow_ba[vi, ui]
    consistent = inside & (np.hypot(flow_ab[..., 0] + back[..., 0], flow_ab[..., 1] + back[..., 1]) < FB_TOL_PX)
    target = points_b[torch.from_numpy(vi).to(dev), torch.from_numpy(ui).to(dev)]
    K_b, c2w_b = K_b.to(points_a), c2w_b.to(points_a)
    uv_still, z_still = project_points(points_a, K_b, c2w_b)
    dest = torch.from_numpy(np.stack([ub, vb], -1)).to(points_a)
    still = (dest - uv_still).norm(dim=-1) < STILL_PX
    _, z_match = project_points(target, K_b, c2w_b)
    same_surface = (z_match - z_still).abs() < MAX_DEPTH_STEP * z_still.clamp_min(1e-9)
    valid = still | (torch.from_numpy(consistent).to(dev) & same_surface)
    disp = torch.where((~still)[..., None], target - points_a, torch.zeros_like(points_a))
    return disp, valid


def scene_velocities(images: Tensor, points: Tensor, times: Tensor, camera_ids: Tensor, Ks: Tensor,
                     camtoworlds: Tensor, flows: dict | None = None) -> Tensor:
    """Velocities (V,H,W,3) of V views' pixel Gaussians, in canonical units per normalised time unit.

    images (V,H,W,3) in [0,1]; points (V,H,W,3) the pixel Gaussians' centres (canonical frame); times (V,)
    normalised; camera_ids (V,) which camera took each view (a camera's views, ordered by time, are its
    frames); Ks (V,3,3), camtoworlds (V,4,4) canonical. Views of a camera with one frame, and pixels matched in
    neither neighbour, keep still. flows: receives the optical flows computed, (a, b) -> (H,W,2) px from view a
    to view b (captured.py interpolates a still camera's frames along them)."""
    velocities = torch.zeros_like(points)
    frames = (images.detach().clamp(0, 1) * 255).round().byte().cpu().numpy()
    ids = camera_ids.cpu()
    for cam in ids.unique().tolist():
        views = torch.nonzero(ids == cam).squeeze(1)
        views = views[torch.argsort(times.cpu()[views])].tolist()
        # each frame's displacement, validity and time step to the next frame and to the previous one
        forward: list = [None] * len(views)
        backward: list = [None] * len(views)
        for k in range(len(views) - 1):
            a, b = views[k], views[k + 1]
            dt = float(times[b] - times[a])
            if dt <= 0:
                continue
            f_ab, f_ba = optical_flow(frames[a], frames[b]), optical_flow(frames[b], frames[a])
            if flows is not None:
                flows[a, b], flows[b, a] = f_ab, f_ba
            forward[k] = (*_displacement(f_ab, f_ba, points[a], points[b], Ks[b], camtoworlds[b]), dt)
            backward[k + 1] = (*_displacement(f_ba, f_ab, points[b], points[a], Ks[a], camtoworlds[a]), dt)
        for k, view in enumerate(views):
            # central difference: (d_next - d_prev) / (dt_next + dt_prev) over the neighbours that matched
            num = torch.zeros_like(points[view])
            den = torch.zeros_like(points[view][..., 0])
            for step, sign in ((forward[k], 1.0), (backward[k], -1.0)):
                if step is not None:
                    disp, ok, dt = step
                    num = num + sign * torch.where(ok[..., None], disp, 0.0)
                    den = den + ok * dt
            velocities[view] = num / den.clamp_min(1e-9)[..., None]
    return velocities
