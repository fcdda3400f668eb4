"""Whether each depth camera's focal length (camera_info K's fx, fy) agrees with the other cameras' that look the
same way.

A camera_info of another resolution mode, an uncalibrated default or a stale calibration puts a camera's pixels
off their rays by a share of their distance from the principal point; one camera of three with fx, fy 5 / 15 % long
cost the 8 robot validation scenes 26.94 -> 25.20 / 23.02 dB RGB-D novel_view (RGB 20.82 -> 20.05 / 19.22;
ablation block 37).

Found by colour (colour_agreement.py): for two cameras a and b looking the same way (optical axes within
MAX_ANGLE_DEG, apart by at most MAX_BASELINE of a's median depth: a head or stereo rig), a's fx, fy scaled by s
before its pixels are carried into b's frames and b's into a's; the s at which they agree best is a's focal length
against b's (where MARGIN times better than as given). The pairs' scales are made one per camera (in log) relative
to the median camera. Cameras looking at the scene from different sides are not read: at 128² their colours also
agree best with a scaled focal length on 4 of 18 such windows as written (ablation block 37).
"""
from __future__ import annotations

import math

import torch


from .colour_agreement import MARGIN, MIN_LANDED, camera_pair, lowest, per_camera
from .views import ViewSet

MAX_ANGLE_DEG, MAX_BASELINE = 45.0, 0.5
LOG_STEP = 0.01  # scales searched: exp(k * 1 %) for |k| <= 22, 0.80..1.25
MIN_CHANGE = 0.02  # |log s| below this (2 %) is not claimed


def pair_scale(views: ViewSet, a: int, b: int) -> tuple | None:
    """(log s, error as given / at s): the factor s on camera a's fx, fy at which its colours agree best with camera
    b's (log 0.0 where not MARGIN times better); None where they do not look the same way or too few of their
    pixels land on a surface the other sees."""
    pair = camera_pair(views, a, b)
    if pair is None:
        return None
    za, zb = pair.camtoworlds[0, :3, 2], pair.camtoworlds[pair.n_a, :3, 2]
    baseline = float((pair.camtoworlds[0, :3, 3] - pair.camtoworlds[pair.n_a, :3, 3]).norm())
    depth = pair.depths[0][pair.depths[0] > 0]
    if math.degrees(math.acos(max(-1.0, min(1.0, float(za @ zb))))) > MAX_ANGLE_DEG or not len(depth) \
            or baseline > MAX_BASELINE * float(depth.median()):
        return None

    steps = [0] + [k for k in range(-22, 23) if k]
    Ks = pair.Ks.repeat(len(steps), 1, 1, 1)
    factor = torch.exp(LOG_STEP * torch.tensor(steps, dtype=torch.float64))[:, None]
    Ks[:, :pair.n_a, 0, 0] *= factor
    Ks[:, :pair.n_a, 1, 1] *= factor
    found, landed = pair.errors(Ks=Ks)  # every scale at once
    if int(landed[0]) < MIN_LANDED:
        return None
    errors = {round(LOG_STEP * k, 4): float(e) for k, e in zip(steps, found)}
    as_given = errors[0.0]
    best = lowest(errors)
    ratio = as_given / errors[best] if errors[best] > 0 else 1.0
    return (best if abs(best) >= MIN_CHANGE and ratio >= MARGIN else 0.0), ratio


def focal_scales(views: ViewSet) -> dict[str, float]:
    """{camera name: factor on its fx, fy at which it agrees with the others} for the depth cameras of views that
    some other camera looking the same way tells against (the model's input size is enough), relative to the rig's
    median camera (1.0: agrees as given). {} where none can tell."""
    if views.depths is None:
        return {}
    cams = views.camera_ids.unique().tolist()
    found = []
    for k, a in enumerate(cams):
        for b in cams[k + 1:]:  # one way: b's scale against a's is a's inverted
            r = pair_scale(views, a, b)
            if r is not None:
                found.append((a, b, r[0]))
    return {name: round(math.exp(x), 3) for name, x in per_camera(found, views.camera_names, LOG_STEP).items()}


def focal_findings(scales: dict[str, float]) -> list[tuple[str, str]]:
    """(kind, text) for each camera of `focal_scales` whose focal length is off the others', with what to check."""
    return [(f"focal length {name}",
             f"camera {name}'s images agree with the other cameras' with its camera_info fx, fy x{s:g} "
             f"({'long' if s < 1 else 'short'} by {abs(1 / s - 1):.0%}): check its calibration (a camera_info of "
             "another resolution, or an uncalibrated default)")
            for name, s in scales.items() if s != 1.0]
