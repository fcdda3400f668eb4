"""Input/target selection of the evaluation protocols (DESIGN.md §5) on a full T×C ViewSet.

Frame k of camera c is that camera's k-th view in time order (cameras are not synchronised, so frames are
matched by rank, not by stamp); camera c is `camera_ids` = the index into the name-sorted `camera_names`.

- "alternating": the input at frame k is camera k mod C; targets are all the other (camera, frame) views.
- "novel-camera": the input at frame k is camera 2·(k mod ⌈C/2⌉) (even-indexed cameras in turn); targets are
  the odd-indexed cameras at every frame.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..views import ViewSet

PROTOCOLS = ("alternating", "novel-camera")


def frame_grid(views: ViewSet) -> Tensor:
    """(T,C) int64: the index into `views` of camera c's k-th view in time. Every camera must have T views."""
    cams = views.camera_ids.cpu()
    C = len(views.camera_names)
    stamps = views.stamps_ns.cpu()
    columns = []
    for c in range(C):
        idx = (cams == c).nonzero()[:, 0]
        columns.append(idx[torch.argsort(stamps[idx], stable=True)])
    counts = {c: len(col) for c, col in zip(views.camera_names, columns)}
    if len(set(counts.values())) != 1 or not columns or len(columns[0]) == 0:
        raise ValueError(f"protocols need the same number (> 0) of views for every camera, got {counts}")
    return torch.stack(columns, 1)


def protocol_indices(views: ViewSet, protocol: str) -> tuple[Tensor, Tensor]:
    """(input_idx (T,), target_idx) int64 indices into `views`, each in frame-major order."""
    grid = frame_grid(views)
    T, C = grid.shape
    frames = torch.arange(T)
    if protocol == "alternating":
        in_cam = frames % C
        is_input = torch.zeros(T, C, dtype=torch.bool)
        is_input[frames, in_cam] = True
        targets = grid[~is_input]
    elif protocol == "novel-camera":
        if C < 2:
            raise ValueError(f"novel-camera needs at least 2 cameras, got {C}")
        in_cam = 2 * (frames % ((C + 1) // 2))
        targets = grid[:, 1::2].reshape(-1)
    else:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return grid[frames, in_cam], targets


def split_protocol(views: ViewSet, protocol: str) -> tuple[ViewSet, ViewSet]:
    """(inputs, targets) ViewSets of `protocol` (see module docstring)."""
    inp, tgt = protocol_indices(views, protocol)
    return views.select(inp.to(views.device)), views.select(tgt.to(views.device))
