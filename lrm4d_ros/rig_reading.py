"""A depth rig's cameras read against each other: each moving camera's stamp offset (stamp_offset.py) and each
camera's focal length against those looking the same way (focal_scale.py), what check-bag, reconstruct and the node
tell. Each fault reads partly as the other (a focal length 5 % off as a 10-25 ms offset of a moving camera; that
camera's 20 ms as a focal length 1-2 % off), so the focal lengths are read first, the stamps with them applied, and,
where a stamp is off, the focal lengths again with it applied, then the stamps (ablation block 37)."""
from __future__ import annotations

from dataclasses import replace

import torch

from .focal_scale import focal_findings, focal_scales
from .stamp_offset import poses_at, stamp_findings, stamp_offsets
from .views import ViewSet


def with_offsets(views: ViewSet, offsets: dict[str, float]) -> ViewSet:
    """views with each named camera's poses re-read at its stamps + offset (s) along its own track."""
    c2w = views.camtoworlds.clone()
    for name, d in offsets.items():
        at = torch.where(views.camera_ids.cpu() == views.camera_names.index(name))[0]
        if not d or len(at) < 2:
            continue
        at = at[torch.argsort(views.stamps_ns.cpu()[at])]
        t = (views.stamps_ns.cpu()[at] - views.stamps_ns.cpu()[at][0]).double() * 1e-9
        c2w[at] = poses_at(views.camtoworlds.cpu()[at], t, t + d).to(c2w.dtype)
    return replace(views, camtoworlds=c2w)


def with_scales(views: ViewSet, scales: dict[str, float]) -> ViewSet:
    """views with each named camera's fx, fy times its factor."""
    Ks = views.Ks.clone()
    for name, s in scales.items():
        at = views.camera_ids == views.camera_names.index(name)
        Ks[at, 0, 0] *= s
        Ks[at, 1, 1] *= s
    return replace(views, Ks=Ks)


def read_rig(views: ViewSet) -> tuple[dict[str, float], dict[str, float]]:
    """(stamp offsets s, focal factors) per camera of views (depth required; the model's input size is enough):
    `stamp_offsets` and `focal_scales`, each read with the other's applied."""
    scales = focal_scales(views)
    offsets = stamp_offsets(with_scales(views, scales))
    if any(offsets.values()):
        scales = focal_scales(with_offsets(views, offsets))
        offsets = stamp_offsets(with_scales(views, scales))
    return offsets, scales


def rig_findings(offsets: dict[str, float], scales: dict[str, float]) -> list[tuple[str, str]]:
    """(kind, text) for each camera whose stamps or focal length are off the others'."""
    return stamp_findings(offsets) + focal_findings(scales)
