"""How far each moving depth camera's stamps are from the other cameras' of its rig.

A camera whose driver stamps frames on arrival is late by its latency; on a moving rig its images are then posed
where the rig was that much later, and disagree with the other cameras' (6 moving head-rig validation scenes, all
inputs 10 / 40 ms off: RGB-D novel_view 32.07 -> 30.50 / 26.09 dB; one camera of three alone 31.65 / 29.77 dB;
ablation block 37).

Found by colour: for two cameras a and b, each frame of a and b's frame nearest it in time are carried into each
other with their depth, a's poses re-read at its stamps + d along its own track; the d at which the textured pixels
that land on the same surface agree best is a's stamp offset against b's (where the error as stamped is STAMP_MARGIN
times that, else 0). The pairs' offsets are made one per camera by least squares, relative to the rig's median
camera. What all cameras share (a rig-wide latency, a pose source that lags) cannot be seen this way: a camera
moving steadily moves between its own frames alike at any offset, and so does the rest of its rig. Still cameras,
and cameras without depth, tell nothing.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import quat_to_rotmat, rotmat_to_quat
from .views import ViewSet

SEARCH_S = 0.15  # offsets searched, +- (s): 10 ms steps, then 5 ms about the best
STAMP_MARGIN = 1.1  # a pair's best offset must agree this many times better than its stamps as they are
MIN_OFFSET_S = 0.005
TEXTURE = 0.04  # a pixel is compared where its colour differs this much (0..1) from a neighbour's: flat colours agree
MAX_PIXELS = 1024  # textured pixels sampled per frame
SURFACE = 0.05  # a carried pixel lands on the same surface where the depth there is within 5 %
MIN_LANDED = 200  # pixels landing on the same surface a pair of cameras needs, as stamped
MIN_MOTION = (0.005, 0.005)  # (m, rad) over the window: a camera moving less is still
# A camera's offset is its own, not a window's: commands over a bag read it on this many windows spread over it
READ_WINDOWS = 3


def windows_to_read(n: int) -> set[int]:
    """Indices of the READ_WINDOWS of n windows (first, last and between) whose stamps a bag's commands read."""
    if n <= READ_WINDOWS:
        return set(range(n))
    return {round(k * (n - 1) / (READ_WINDOWS - 1)) for k in range(READ_WINDOWS)}


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


def _textured(images: Tensor, depths: Tensor) -> Tensor:
    """(V,H,W) bool: measured pixels on one surface (their 3x3 depths within SURFACE) whose colour differs from a
    4-neighbour's by TEXTURE or more."""
    x = images.permute(0, 3, 1, 2)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1) >= TEXTURE
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1) >= TEXTURE
    g = torch.zeros(depths.shape, dtype=torch.bool)
    g[:, :, 1:] |= dx
    g[:, :, :-1] |= dx
    g[:, 1:, :] |= dy
    g[:, :-1, :] |= dy
    pad = F.pad(depths[:, None], (1, 1, 1, 1), mode="replicate")
    near, far = -F.max_pool2d(-pad, 3, 1)[:, 0], F.max_pool2d(pad, 3, 1)[:, 0]
    return g & (near > 0) & (far <= near * (1 + SURFACE))


def _colour_error(images: Tensor, depths: Tensor, Ks: Tensor, c2w: Tensor, sources: list, pairs: list) -> tuple:
    """(mean absolute colour difference 0..1, pixels) of the sampled pixels `sources` (per view: (N,2) integer pixel
    coordinates, (N,3) colours) carried with their depth through c2w (V,4,4) from view i into view j for (i, j) in
    pairs, where they land on the same surface."""
    _, H, W = depths.shape
    total, count = 0.0, 0
    w2c = torch.linalg.inv(c2w)
    for i, j in pairs:
        uv, colour = sources[i]
        if len(uv) == 0:
            continue
        d = depths[i][uv[:, 1], uv[:, 0]].double()
        cam = torch.cat([uv.double(), torch.ones(len(uv), 1, dtype=torch.float64)], 1) \
            @ torch.linalg.inv(Ks[i].double()).T * d[:, None]
        rel = w2c[j] @ c2w[i]
        x = cam @ rel[:3, :3].T + rel[:3, 3]
        z = x[:, 2]
        p = x @ Ks[j].double().T
        u, v = p[:, 0] / z.clamp_min(1e-9), p[:, 1] / z.clamp_min(1e-9)  # pixel centres at integers (ROS)
        inside = (z > 0) & (u >= 0) & (u <= W - 1) & (v >= 0) & (v <= H - 1)
        there = depths[j][v.round().long().clamp(0, H - 1), u.round().long().clamp(0, W - 1)].double()
        same = inside & (there > 0) & ((there - z).abs() <= SURFACE * z)
        if not bool(same.any()):
            continue
        grid = torch.stack([u[same] / max(W - 1, 1) * 2 - 1, v[same] / max(H - 1, 1) * 2 - 1], -1).float()
        seen = F.grid_sample(images[j].permute(2, 0, 1)[None], grid[None, None], align_corners=True)[0, :, 0].T
        total += float((seen - colour[same]).abs().mean(-1).sum())
        count += int(same.sum())
    return (total / count if count else float("nan")), count


def _moving(c2w: Tensor) -> bool:
    moved = float((c2w[:, :3, 3] - c2w[0, :3, 3]).norm(dim=-1).max())
    turn = (c2w[0, :3, :3].T @ c2w[:, :3, :3]).diagonal(dim1=-2, dim2=-1).sum(-1)
    return moved >= MIN_MOTION[0] or float(torch.arccos(((turn - 1) / 2).clamp(-1, 1)).max()) >= MIN_MOTION[1]


def pair_offset(views: ViewSet, a: int, b: int, generator: torch.Generator | None = None) -> tuple | None:
    """(offset s, error as stamped / at the offset) of camera a's stamps against camera b's in views (depth
    required), offset 0.0 where it does not agree STAMP_MARGIN times better; None where the two cannot tell (a
    still or single-frame camera a, too few pixels landing on a surface the other sees)."""
    ids, stamps = views.camera_ids.cpu(), views.stamps_ns.cpu()
    has = (views.depths.cpu().flatten(1) > 0).any(1)
    ia, ib = torch.where((ids == a) & has)[0], torch.where((ids == b) & has)[0]
    if len(ia) < 2 or len(ib) == 0:
        return None
    ia = ia[torch.argsort(stamps[ia])]
    t = (stamps[ia] - stamps[ia][0]).double() * 1e-9
    c2w = views.camtoworlds.cpu().double()
    if bool((t[1:] <= t[:-1]).any()) or not _moving(c2w[ia]):
        return None
    nearest = ib[(stamps[ib][None, :] - stamps[ia][:, None]).abs().argmin(1)]
    idx = torch.cat([ia, nearest.unique()])
    images, depths = views.images.cpu()[idx].float(), views.depths.cpu()[idx].float()
    Ks = views.Ks.cpu()[idx].double()
    local = {int(v): k for k, v in enumerate(idx)}
    pairs = [(k, local[int(j)]) for k, j in enumerate(nearest)]
    pairs += [(j, i) for i, j in pairs]
    gen = generator or torch.Generator().manual_seed(0)
    textured = _textured(images, depths)
    sources = []
    for k in range(len(idx)):
        rows, cols = torch.where(textured[k])
        if len(rows) > MAX_PIXELS:
            keep = torch.randperm(len(rows), generator=gen)[:MAX_PIXELS]
            rows, cols = rows[keep], cols[keep]
        sources.append((torch.stack([cols, rows], -1), images[k][rows, cols]))

    def error(d: float) -> tuple:
        poses = c2w[idx].clone()
        poses[:len(ia)] = poses_at(c2w[ia], t, t + d)
        return _colour_error(images, depths, Ks, poses, sources, pairs)

    as_stamped, landed = error(0.0)
    if landed < MIN_LANDED:
        return None
    errors = {0.0: as_stamped}

    def lowest() -> float:
        return min(errors, key=lambda d: math.inf if math.isnan(errors[d]) else errors[d])

    steps = round(SEARCH_S / 0.01)
    errors.update({round(0.01 * k, 3): error(round(0.01 * k, 3))[0] for k in range(-steps, steps + 1) if k})
    coarse = lowest()
    for d in (round(coarse - 0.005, 3), round(coarse + 0.005, 3)):
        if abs(d) <= SEARCH_S + 1e-9:
            errors[d] = error(d)[0]
    best = lowest()
    ratio = as_stamped / errors[best] if errors[best] > 0 else 1.0
    return (best if abs(best) >= MIN_OFFSET_S and ratio >= STAMP_MARGIN else 0.0), ratio


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
    told = sorted({c for a, b, _ in found for c in (a, b)})
    if not found or len(told) < 2:
        return {}
    # o_a - o_b = d_ab over the pairs, and sum o = 0 (the pairs fix only differences)
    col = {c: k for k, c in enumerate(told)}
    A = torch.zeros(len(found) + 1, len(told), dtype=torch.float64)
    y = torch.zeros(len(found) + 1, 1, dtype=torch.float64)
    for r, (a, b, d) in enumerate(found):
        A[r, col[a]], A[r, col[b]], y[r] = 1.0, -1.0, d
    A[-1] = 1.0
    o = torch.linalg.lstsq(A, y).solution[:, 0]
    o = ((o - o.median()) / MIN_OFFSET_S).round() * MIN_OFFSET_S  # to the search's 5 ms
    names = views.camera_names
    return {names[c]: round(float(o[col[c]]), 3) + 0.0 for c in told}  # (+ 0.0: no -0.0)


def stamp_findings(offsets: dict[str, float]) -> list[tuple[str, str]]:
    """(kind, text) for each camera of `stamp_offsets` whose stamps are off the rest of its rig's, with what to set."""
    return [(f"stamp offset {name}",
             f"camera {name}'s images agree with the other cameras' at its stamps {1e3 * x:+.0f} ms (its driver "
             f"stamps them {'late' if x < 0 else 'early'}, or the others' do): set cameras.{name}.time_offset_s: "
             f"{x:g} (convert-bag --time-offset {name}={x:g}). What all cameras share cannot be read this way")
            for name, x in offsets.items() if x != 0.0]
