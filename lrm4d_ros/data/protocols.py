"""Input/target selection of the evaluation protocols (docs/design.md §5) on a full T×C ViewSet.

Frame k of camera c is that camera's k-th view in time order (cameras are not synchronised, so frames are
matched by rank, not by stamp); camera c is the c-th camera in name order (docs/design.md §4), whatever the order
of `camera_names`.

- "alternating": the input at frame k is camera k mod C; targets are all the other (camera, frame) views.
- "novel-camera": the input at frame k is camera 2·(k mod ⌈C/2⌉) (even-indexed cameras in turn); targets are
  the odd-indexed cameras at every frame.
- "rig": a synchronized rig as robots have it. Inputs are all even-indexed cameras at the input frames 0, s,
  2s, … < T with s = ⌈T·⌈C/2⌉/12⌉ (at most about 12 views); targets are the views within the input frames'
  span [0, last input frame], in groups (`RIG_GROUPS`): "novel_view" (odd cameras at input frames),
  "novel_view_time" (odd cameras at other frames), "time_interp" (even cameras at other frames) and "self"
  (the inputs themselves, re-rendered).

`protocol_groups` gives every protocol's targets by group (alternating and novel-camera have one, "all");
`protocol_indices` / `split_protocol` give the held-out targets together (for "rig": every group but "self").
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..views import ViewSet

PROTOCOLS = ("alternating", "novel-camera", "rig")
RIG_GROUPS = ("novel_view", "novel_view_time", "time_interp", "self")
RIG_MAX_INPUTS = 12


def frame_grid(views: ViewSet) -> Tensor:
    """(T,C) int64: the index into `views` of the c-th camera by name's k-th view in time. Every camera must
    have T views."""
    cams = views.camera_ids.cpu()
    C = len(views.camera_names)
    stamps = views.stamps_ns.cpu()
    columns = []
    for c in sorted(range(C), key=lambda i: views.camera_names[i]):
        idx = (cams == c).nonzero()[:, 0]
        columns.append(idx[torch.argsort(stamps[idx], stable=True)])
    counts = {c: len(col) for c, col in zip(views.camera_names, columns)}
    if len(set(counts.values())) != 1 or not columns or len(columns[0]) == 0:
        raise ValueError(f"protocols need the same number (> 0) of views for every camera, got {counts}")
    return torch.stack(columns, 1)


def rig_stride(frames: int, cameras: int, max_inputs: int = RIG_MAX_INPUTS) -> int:
    """The rig protocol's input-frame stride s = ⌈T·⌈C/2⌉/max_inputs⌉ (≥ 1)."""
    return max(1, math.ceil(frames * math.ceil(cameras / 2) / max_inputs))


def protocol_groups(views: ViewSet, protocol: str) -> tuple[Tensor, dict[str, Tensor]]:
    """(input_idx, {group: target_idx}) int64 indices into `views`, each in frame-major order (camera-minor).

    Groups: "all" for alternating and novel-camera; `RIG_GROUPS` for rig (a group may be empty, e.g.
    novel_view_time and time_interp when every frame is an input frame).
    """
    grid = frame_grid(views)
    T, C = grid.shape
    frames = torch.arange(T)
    if protocol == "alternating" and C < 2:
        raise ValueError(f"alternating needs at least 2 cameras (each frame's input from one, the others held out), "
                         f"got {C}")
    if protocol == "alternating":
        in_cam = frames % C
        is_input = torch.zeros(T, C, dtype=torch.bool)
        is_input[frames, in_cam] = True
        return grid[frames, in_cam], {"all": grid[~is_input]}
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if C < 2:
        raise ValueError(f"{protocol} needs at least 2 cameras (even ones for inputs, odd ones held out), got {C}")
    if protocol == "novel-camera":
        in_cam = 2 * (frames % ((C + 1) // 2))
        return grid[frames, in_cam], {"all": grid[:, 1::2].reshape(-1)}
    s = rig_stride(T, C)
    in_frames = torch.arange(0, T, s)
    others = torch.tensor([k for k in range(int(in_frames[-1]) + 1) if k % s], dtype=torch.long)
    even, odd = grid[:, 0::2], grid[:, 1::2]
    inputs = even[in_frames].reshape(-1)
    return inputs, {"novel_view": odd[in_frames].reshape(-1), "novel_view_time": odd[others].reshape(-1),
                    "time_interp": even[others].reshape(-1), "self": inputs.clone()}


def protocol_indices(views: ViewSet, protocol: str) -> tuple[Tensor, Tensor]:
    """(input_idx, target_idx) int64 indices into `views`: the held-out targets of every group but "self",
    each group in frame-major order, groups in `protocol_groups` order."""
    inputs, groups = protocol_groups(views, protocol)
    return inputs, torch.cat([idx for name, idx in groups.items() if name != "self"])


def split_protocol(views: ViewSet, protocol: str) -> tuple[ViewSet, ViewSet]:
    """(inputs, targets) ViewSets of `protocol` (see module docstring)."""
    inp, tgt = protocol_indices(views, protocol)
    return views.select(inp.to(views.device)), views.select(tgt.to(views.device))
