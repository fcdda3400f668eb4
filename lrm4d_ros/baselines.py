"""Reference predictions for evaluation (DESIGN.md §5): what a target view looks like without the model.

- `nearest_input`: copy an input image — the same camera's input nearest in time if that camera has inputs,
  else the input nearest in time, ties (within `same_time_ns`) broken by the nearest camera centre.
- `background_only`: a constant image of the background colour estimated from the inputs' borders (the colour
  the model's renders are composited over), so a model has to beat "draw nothing".
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .reconstructor import estimate_background
from .views import ViewSet

SAME_TIME_NS = 1_000_000  # stamps closer than 1 ms count as the same instant


def _resize(images: Tensor, height: int, width: int) -> Tensor:
    if images.shape[1:3] == (height, width):
        return images
    mode = "area" if images.shape[1] >= height and images.shape[2] >= width else "bilinear"
    kw = {"align_corners": False} if mode == "bilinear" else {}
    x = F.interpolate(images.permute(0, 3, 1, 2), size=(height, width), mode=mode, **kw)
    return x.permute(0, 2, 3, 1).clamp(0, 1)


def nearest_input_index(inputs: ViewSet, targets: ViewSet, same_time_ns: int = SAME_TIME_NS) -> Tensor:
    """(M,) index into `inputs` of the view copied for each target (see module docstring).

    Cameras are matched by name, so inputs and targets may come from different ViewSets of one rig.
    """
    if len(inputs) == 0:
        raise ValueError("nearest_input needs at least one input view")
    in_names = [inputs.camera_names[int(i)] for i in inputs.camera_ids]
    in_stamps = inputs.stamps_ns.cpu()
    in_centres = inputs.camera_centers.cpu().double()
    out = []
    for m in range(len(targets)):
        name = targets.camera_names[int(targets.camera_ids[m])]
        stamp = int(targets.stamps_ns[m])
        dt = (in_stamps - stamp).abs()
        same_cam = torch.tensor([n == name for n in in_names])
        if same_cam.any():
            dt_cam = torch.where(same_cam, dt, torch.full_like(dt, torch.iinfo(torch.int64).max))
            out.append(int(dt_cam.argmin()))
            continue
        nearest_t = dt <= dt.min() + same_time_ns
        dist = (in_centres - targets.camera_centers[m].cpu().double()).norm(dim=-1)
        dist = torch.where(nearest_t, dist, torch.full_like(dist, float("inf")))
        out.append(int(dist.argmin()))
    return torch.tensor(out, dtype=torch.long)


def nearest_input(inputs: ViewSet, targets: ViewSet) -> Tensor:
    """Predictions (M,H,W,3) at the targets' resolution: the nearest input's image, resized if needed."""
    idx = nearest_input_index(inputs, targets)
    return _resize(inputs.images[idx.to(inputs.images.device)], targets.height, targets.width)


def background_only(inputs: ViewSet, targets: ViewSet) -> Tensor:
    """Predictions (M,H,W,3): the inputs' estimated background colour everywhere."""
    bg = estimate_background(inputs.images).to(targets.images)
    return bg.expand(len(targets), targets.height, targets.width, 3).clone()


BASELINES = {"nearest": nearest_input, "background": background_only}
