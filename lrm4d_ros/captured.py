"""What an input camera captured, shown for its own in-between moments: frame interpolation for a still camera.

A target that looks from where an input camera stood, with its intrinsics, at a moment between two of that
camera's frames (temporal upsampling of a still camera: the rig protocol's time_interp) is served from those
two frames, not from the Gaussians:
- where the frames agree (no channel differs by more than CHANGE_TOL), nothing moved: the two frames
  cross-faded by time, exact where a render brings them back through the splats' blur at 35-40 dB;
- where they differ (grown by GROW px: a moving edge's blur reaches past the pixels that changed), each frame is
  warped to the target's moment along the optical flow between them (scene_flow.optical_flow, both ways), with
  the intermediate flows linear in time (Jiang et al. 2018, "Super SloMo", eq. 4, without its learned
  refinement), and the two are blended by time.
The Gaussians' own in-between moments (their pixels moved by the scene flow) lose to both: 16 rig validation
scenes, time_interp RGB-D 35.01 rendered, 36.25 with the unchanged pixels as captured, 37.75 with the changed ones
interpolated too (RGB 34.33, 35.65, 36.52); MuJoCo bags 25.27, 25.38, 26.14 (benchmarks/results/ablation.txt,
block 14). Only colours change; alpha and depth stay the render's. A target at a frame's own moment (`self`) is left
as rendered, so that figure keeps measuring the representation, as is any target whose pose or intrinsics differ
from the camera's at either frame (a moving camera). A target at the views' own resolution and intrinsics, where
the model saw them resized (a 640x480 bag re-rendered at its size), or at any other size with those intrinsics
rescaled, is served from the frames as captured, resampled to it, along the flows found at the model's size, scaled.
No learned parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import scale_K
from .scene_flow import optical_flow
from .views import ViewSet

CHANGE_TOL = 2.0 / 255.0  # a pixel whose two frames differ by more than this in a channel changed
# px box the changed pixels are grown by (16 rig validation scenes, time_interp RGB-D: 1 37.10, 3 37.69, 5 37.75,
# 9 37.74)
GROW = 5
POSE_TOL = 1e-4  # canonical units / rotation entries: a target this near an input's pose stands where it stood
K_RTOL = 1e-4  # relative: intrinsics this near an input's are its


def interpolate_frames(frame0: np.ndarray, frame1: np.ndarray, flow01: np.ndarray, flow10: np.ndarray,
                       w: float) -> np.ndarray:
    """The moment w in (0,1) between two frames (H,W,3) float32, given the flows (H,W,2) px between them both
    ways: each frame backward-warped along the intermediate flow to it, blended (1 − w, w)."""
    flow_t0 = -(1 - w) * w * flow01 + w * w * flow10
    flow_t1 = (1 - w) ** 2 * flow01 - w * (1 - w) * flow10
    H, W = flow01.shape[:2]
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)

    def warp(img, flow):
        return cv2.remap(img, u + flow[..., 0], v + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    return (1 - w) * warp(frame0, flow_t0.astype(np.float32)) + w * warp(frame1, flow_t1.astype(np.float32))


@dataclass
class CapturedFrames:
    """Input views in the reconstruction's canonical frame: images (V,H,W,3) in [0,1] at the model's resolution,
    Ks (V,3,3), camtoworlds (V,4,4), normalised times (V,); flows: optical flows between two of them, (a, b) ->
    (H,W,2) px from view a to view b, those scene flow computed at reconstruction (scene_velocities) and those
    computed here since, so that no pair's flow is computed twice. native: the same views as captured, (images
    (V,Hn,Wn,3), Ks (V,3,3)), where the model saw them resized: a target at another size than the model's, with
    those intrinsics rescaled to it (a bag re-rendered at its own resolution), is served from them, resampled."""

    images: Tensor
    Ks: Tensor
    camtoworlds: Tensor
    times: Tensor
    flows: dict = field(default_factory=dict)
    native: tuple[Tensor, Tensor] | None = None

    def frames_around(self, camtoworld: Tensor, K: Tensor, t: float, Ks: Tensor | None = None,
                      centre_tol: float = 0.0) -> tuple[int, int] | None:
        """(earlier, later) input views of the camera at pose camtoworld (4,4) with intrinsics K (3,3) strictly
        around normalised time t, or None: not an input camera's pose, not between two of its frames, or at one.
        Ks: the inputs' intrinsics to match K against (default `Ks`, the model's resolution); centre_tol: px the
        principal point may differ by beyond K_RTOL (a resize's half-pixel convention)."""
        Ks = self.Ks if Ks is None else Ks
        K = K.to(Ks)
        pose = (self.camtoworlds[:, :3, :4] - camtoworld[:3, :4].to(self.camtoworlds)).abs().amax((1, 2))
        close = torch.isclose(Ks, K, rtol=K_RTOL, atol=0)
        centre = ((Ks[:, :2, 2] - K[:2, 2]).abs() <= centre_tol + K_RTOL * Ks[:, :2, 2].abs()).all(1)
        same = (pose <= POSE_TOL) & close[:, :2, :2].flatten(1).all(1) & centre & close[:, 2].all(1)
        before = torch.nonzero(same & (self.times < t)).squeeze(1)
        after = torch.nonzero(same & (self.times > t)).squeeze(1)
        if len(before) == 0 or len(after) == 0 or bool((same & (self.times == t)).any()):
            return None
        return int(before[self.times[before].argmax()]), int(after[self.times[after].argmin()])

    def show(self, colors: Tensor, camtoworlds: Tensor, Ks: Tensor, times: Tensor) -> Tensor:
        """Rendered colours (C,H,W,3) of targets (camtoworlds (C,4,4), Ks (C,3,3), normalised times (C,)), each
        in-between moment of a still input camera replaced by its two frames interpolated (module docstring), at
        the model's resolution or, with `native`, the views' own."""
        size = tuple(colors.shape[1:3])
        resize, centre_tol = False, 0.0
        if size == tuple(self.images.shape[1:3]):
            images, input_Ks = self.images, self.Ks
        else:  # the frames as captured (or the model's, without them), resampled to the target's size
            images, input_Ks = self.native if self.native is not None else (self.images, self.Ks)
            resize = size != tuple(images.shape[1:3])
            if resize:
                sx, sy = size[1] / images.shape[2], size[0] / images.shape[1]
                input_Ks = scale_K(input_Ks.to(self.Ks), sx, sy)
                # the principal point scaled as c·s (image_proc) instead of (c + ½)·s − ½ (scale_K) matches too
                centre_tol = 0.5 * max(abs(1 - sx), abs(1 - sy)) + 1e-3
        out = None
        for c in range(colors.shape[0]):
            t = float(times[c])
            pair = self.frames_around(camtoworlds[c], Ks[c], t, input_Ks, centre_tol)
            if pair is None:
                continue
            a, b = pair
            w = (t - float(self.times[a])) / (float(self.times[b]) - float(self.times[a]))
            frame0, frame1 = (ViewSet.resample_images(images[[a, b]], *size) if resize else images[[a, b]]).to(colors)
            shown = (1 - w) * frame0 + w * frame1
            changed = ((frame0 - frame1).abs().amax(-1) > CHANGE_TOL).to(frame0.dtype)
            changed = F.max_pool2d(changed[None, None], GROW, stride=1, padding=GROW // 2)[0, 0] > 0
            if bool(changed.any()):
                if (a, b) not in self.flows or (b, a) not in self.flows:  # at the model's resolution
                    u0, u1 = ((np.clip(self.images[i].detach().float().cpu().numpy(), 0, 1) * 255).round()
                              .astype(np.uint8) for i in (a, b))
                    self.flows[a, b], self.flows[b, a] = optical_flow(u0, u1), optical_flow(u1, u0)
                f0, f1 = (x.detach().float().cpu().numpy() for x in (frame0, frame1))
                flow01, flow10 = (_resized_flow(self.flows[k], size) for k in ((a, b), (b, a)))
                moved = torch.from_numpy(interpolate_frames(f0, f1, flow01, flow10, w)).to(shown)
                shown = torch.where(changed[..., None], moved, shown)
            if out is None:
                out = colors.clone()
            out[c] = shown.to(colors)
        return colors if out is None else out


def _resized_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flow field (H,W,2) px resampled to size (H', W') and its vectors scaled to that size's pixels."""
    h, w = flow.shape[:2]
    if (h, w) == tuple(size):
        return flow
    out = cv2.resize(flow, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out * np.array([size[1] / w, size[0] / h], dtype=out.dtype)
