"""What an input camera captured, shown for its own in-between moments.

A target that looks from where an input camera stood, with its intrinsics, at a moment between two of that
camera's frames (temporal upsampling of a still camera: the rig protocol's time_interp) sees, wherever the two
frames agree, what both captured: nothing moved there between them. Rendered, those pixels come back through
the splats' blur and the other views' Gaussians at 35-40 dB; captured, they are exact. Where the frames differ,
something moved, and the render (whose pixel Gaussians move with the scene flow) draws it. 16 rig validation
scenes, time_interp RGB-D 35.01 -> 36.25, RGB 34.33 -> 35.65 (changed pixels not grown: 36.00; grown by 5 px or
a 0.03 tolerance: 36.25); nothing else moves (benchmarks/results/ablation.txt, block 14).

Only colours change; alpha and depth stay the render's. A target at a frame's own moment (`self`) is left as
rendered, so that figure keeps measuring the representation, as is any target whose pose or intrinsics differ
from the camera's at either frame (a moving camera). No learned parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

CHANGE_TOL = 2.0 / 255.0  # a pixel whose two frames differ by more than this in a channel changed
GROW = 3  # px box the changed pixels are grown by: a moving edge's blur reaches past the pixels that changed
POSE_TOL = 1e-4  # canonical units / rotation entries: a target this near an input's pose stands where it stood
K_RTOL = 1e-4  # relative: intrinsics this near an input's are its


@dataclass
class CapturedFrames:
    """Input views in the reconstruction's canonical frame: images (V,H,W,3) in [0,1], Ks (V,3,3), camtoworlds
    (V,4,4), normalised times (V,)."""

    images: Tensor
    Ks: Tensor
    camtoworlds: Tensor
    times: Tensor

    def to(self, device) -> "CapturedFrames":
        return CapturedFrames(*(t.to(device) for t in (self.images, self.Ks, self.camtoworlds, self.times)))

    def show(self, colors: Tensor, camtoworlds: Tensor, Ks: Tensor, times: Tensor) -> Tensor:
        """Rendered colours (C,H,W,3) of targets (camtoworlds (C,4,4), Ks (C,3,3), normalised times (C,)) with
        each in-between moment's unchanged pixels replaced by its camera's two frames, cross-faded by time."""
        V, H, W, _ = self.images.shape
        if colors.shape[1:3] != (H, W):
            return colors
        out = None
        for c in range(colors.shape[0]):
            pose = (self.camtoworlds[:, :3, :4] - camtoworlds[c, :3, :4].to(self.camtoworlds)).abs().amax((1, 2))
            same = (pose <= POSE_TOL) & torch.isclose(self.Ks, Ks[c].to(self.Ks), rtol=K_RTOL, atol=0).flatten(1).all(1)
            t = float(times[c])
            before = torch.nonzero(same & (self.times < t)).squeeze(1)
            after = torch.nonzero(same & (self.times > t)).squeeze(1)
            if len(before) == 0 or len(after) == 0 or bool((same & (self.times == t)).any()):
                continue  # not between two of its frames, or at one of them (self: left as rendered)
            a = int(before[self.times[before].argmax()])
            b = int(after[self.times[after].argmin()])
            t0, t1 = float(self.times[a]), float(self.times[b])
            w = (t - t0) / (t1 - t0)
            frame0, frame1 = self.images[a], self.images[b]
            changed = ((frame0 - frame1).abs().amax(-1) > CHANGE_TOL).to(colors.dtype)
            changed = F.max_pool2d(changed[None, None], GROW, stride=1, padding=GROW // 2)[0, 0] > 0
            if out is None:
                out = colors.clone()
            fade = ((1 - w) * frame0 + w * frame1).to(colors)
            out[c] = torch.where(changed[..., None], colors[c], fade)
        return colors if out is None else out
