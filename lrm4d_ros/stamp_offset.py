"""How far each moving depth camera's stamps are from the other cameras' of its rig.

A camera whose driver stamps frames on arrival is late by its latency; on a moving rig its images are then posed
where the rig was that much later, and disagree with the other cameras' (6 moving head-rig validation scenes, all
inputs 10 / 40 ms off: RGB-D novel_view 32.07 -> 30.50 / 26.09 dB; one camera of three alone 31.65 / 29.77 dB;
ablation block 37).

Found by colour: for two cameras a and b, each frame of a and b's frame nearest it in time are carried into each
other with their depth, a's poses re-read at its stamps + d along its own track; the d at which the textured pixels
that land on the same surface agree best is a's stamp offset against b's (where the error as stamped is MARGIN
times that, else 0; colour_agreement.py). The pairs' offsets are made one per camera by least squares, relative to
the rig's median camera. What all cameras share (a rig-wide latency, a pose source that lags) cannot be seen this
way: a camera moving steadily moves between its own frames alike at any offset, and so does the rest of its rig.
Still cameras, and cameras without depth, tell nothing. A focal length off reads as a stamp offset: rig_reading.py
reads the focal lengths first.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .colour_agreement import MARGIN, MIN_LANDED, camera_pair, lowest, per_camera
from .geometry import quat_to_rotmat, rotmat_to_quat
from .views import ViewSet

SEARCH_S = 0.15  # offsets searched, +- (s): 10 ms steps, then 5 ms about the best
MIN_OFFSET_S = 0.005
MIN_MOTION = (0.005, 0.005)  # (m, rad) over the window: a camera moving less is still


def poses_at(camtoworlds: Tensor, stamps_s: Tensor, query_s: Tensor) -> Tensor:
    """(M,4,4) poses at query_s (M,) along a track camtoworlds (N,4,4) at increasing stamps_s (N,), N >= 2:
    slerp and lerp between neighbours, continued along the first / last step beyond them."""
    t, q = stamps_s.double(), query_s.double()
    k = (torch.searchsorted(t, q, right=True) - 1).clamp(0, len(t) - 2)
    a = ((q - t[k]) / (t[k + 1] - t[k]).clamp_min(1e-12))[:, None]
    c2w = camtoworlds.double()
    q0, q1 = rotmat_to_quat(c2w[k, :3, :3]), rotmat_to_quat(c2w[k + 1, :3, :3])
    q1 = torch.where((q0 * q1).sum(-1, keepdim=True) < 0, -q1, q1)  # the shorter arc
    angle = torch.arccos((q0 * q1).sum(-1, keepdim=True).clamp(-1, 1))
    s = torch.sin(angle)
    small = s < 1e-6
    s = torch.where(small, torch.ones_like(s), s)
    w0 = torch.where(small, 1 - a, torch.sin((1 - a) * angle) / s)
    w1 = torch.where(small, a, torch.sin(a * angle) / s)
    out = torch.eye(4, dtype=torch.float64).repeat(len(q), 1, 1)
    out[:, :3, :3] = quat_to_rotmat(F.normalize(w0 * q0 + w1 * q1, dim=-1))
    out[:, :3, 3] = c2w[k, :3, 3] + a * (c2w[k + 1, :3, 3] - c2w[k, :3, 3])
    return out


def _moving(c2w: Tensor) -> bool:
    moved = float((c2w[:, :3, 3] - c2w[0, :3, 3]).norm(dim=-1).max())
    turn = (c2w[0, :3, :3].T @ c2w[:, :3, :3]).diagonal(dim1=-2, dim2=-1).sum(-1)
    return moved >= MIN_MOTION[0] or float(torch.arccos(((turn - 1) / 2).clamp(-1, 1)).max()) >= MIN_MOTION[1]


def pair_offset(views: ViewSet, a: int, b: int) -> tuple | None:
    """(offset s, error as stamped / at the offset) of camera a's stamps against camera b's in views (depth
    required), offset 0.0 where it does not agree MARGIN times better; None where the two cannot tell (a still or
    single-frame camera a, too few pixels landing on a surface the other sees)."""
    pair = camera_pair(views, a, b, min_frames=2)
    if pair is None or not _moving(pair.camtoworlds[:pair.n_a]):
        return None
    track, t = pair.camtoworlds[:pair.n_a], pair.stamps_s[:pair.n_a]

    def errors_at(offsets: list[float]) -> tuple[Tensor, Tensor]:  # every offset at once
        poses = pair.camtoworlds.repeat(len(offsets), 1, 1, 1)
        query = (t[None] + torch.tensor(offsets, dtype=torch.float64)[:, None]).reshape(-1)
        poses[:, :pair.n_a] = poses_at(track, t, query).reshape(len(offsets), pair.n_a, 4, 4)
        return pair.errors(camtoworlds=poses)

    steps = round(SEARCH_S / 0.01)
    offsets = [0.0] + [round(0.01 * k, 3) for k in range(-steps, steps + 1) if k]
    found, landed = errors_at(offsets)
    if int(landed[0]) < MIN_LANDED:
        return None
    errors = {d: float(e) for d, e in zip(offsets, found)}
    as_stamped, coarse = errors[0.0], lowest(errors)
    finer = [d for d in (round(coarse - 0.005, 3), round(coarse + 0.005, 3)) if abs(d) <= SEARCH_S + 1e-9]
    if finer:
        errors.update({d: float(e) for d, e in zip(finer, errors_at(finer)[0])})
    best = lowest(errors)
    ratio = as_stamped / errors[best] if errors[best] > 0 else 1.0
    return (best if abs(best) >= MIN_OFFSET_S and ratio >= MARGIN else 0.0), ratio


def stamp_offsets(views: ViewSet) -> dict[str, float]:
    """{camera name: offset s to add to its stamps} for the cameras of views (depth required; the model's input size
    is enough) that some other camera tells against, relative to the rig's median camera (0.0: agrees as stamped).
    {} where none can tell (no depth, still cameras, one camera)."""
    if views.depths is None:
        return {}
    cams = views.camera_ids.unique().tolist()
    found = []
    for k, a in enumerate(cams):
        for b in cams[k + 1:]:  # one way: b's offset against a's is minus a's against b's
            r = pair_offset(views, a, b)
            if r is not None:
                found.append((a, b, r[0]))
            elif (r := pair_offset(views, b, a)) is not None:  # a still, or its frames too few
                found.append((b, a, r[0]))
    return per_camera(found, views.camera_names, MIN_OFFSET_S)


def stamp_findings(offsets: dict[str, float]) -> list[tuple[str, str]]:
    """(kind, text) for each camera of `stamp_offsets` whose stamps are off the rest of its rig's, with what to set."""
    return [(f"stamp offset {name}",
             f"camera {name}'s images agree with the other cameras' at its stamps {1e3 * x:+.0f} ms (its driver "
             f"stamps them {'late' if x < 0 else 'early'}, or the others' do): set cameras.{name}.time_offset_s: "
             f"{x:g} (convert-bag --time-offset {name}={x:g}). What all cameras share cannot be read this way")
            for name, x in offsets.items() if x != 0.0]
