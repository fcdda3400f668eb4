"""Which views of a buffered space-time window go to the model: one rule shared by the ROS node's window, the
offline pipeline and the training sampler, so the model is trained on the inputs it is served.

Every policy spreads the views over the cameras first (every camera that has views gets a fair share, slow
cameras all of theirs) and always keeps the newest view, so a reconstruction reaches the newest input:

- ``uniform``: the views' stamps are spread evenly over the window's span [oldest, newest], and each camera's
  share is spread over that span too, interleaved with the other cameras': with a synchronized rig every view
  is at a different instant and the cameras take turns (as the alternating protocol and the training sampler's
  one-view-per-time-bin draw); with unsynchronized or mixed-rate rigs each camera's views are the ones nearest
  its share of evenly spaced target times.
- ``latest``: the newest view of each camera, then the second newest of each, ... (round-robin, newest first):
  with a synchronized rig, whole newest frames.
- ``frames`` (the default): every camera at the newest instant, and the rest of each camera's share at the same
  evenly spaced earlier instants over the window's span (MIN_INSTANTS or more in all; where the shares are fewer
  than the earlier instants, the cameras take them in turn): with a synchronized rig, whole frames at evenly spaced
  instants (the rig protocol's inputs and the training's rig draw). A synchronized rig's cameras all see the newest
  moment, which ``uniform`` gives to one camera: node-like windows of 12 frames of three input cameras, held-out
  cameras at the newest frame from RGB-D 25.45 -> 26.28 dB (48 rig validation scenes) and 22.68 -> 23.61 (15 MuJoCo
  bags), from RGB 20.93 -> 20.76 and 19.47 -> 19.68; at every frame of the window (fewer distinct instants) RGB-D
  25.72 -> 25.53 and 22.56 -> 22.47, RGB 20.83 -> 20.71 and 19.37 -> 19.56; six input cameras (16 scenes of 12
  cameras: the newest frame whole, two earlier instants of three cameras each) RGB-D now 26.25 -> 27.59, window
  26.67 -> 26.26, RGB 21.35 -> 21.35 and 21.27 -> 21.52 (benchmarks/selection_policies.py, ablation block 46).

A depth camera's views without depth are left out where its depth comes for every other frame or more
(`with_depth_first`).

Ties (a synchronized rig's newest instant, which one camera takes under ``uniform``; shares left over when
max_views is not a multiple of the cameras; more cameras than views) go to the camera of the newest view, then
to the cameras in an order that rotates every frame period of the window: by one camera when every camera gets
views (each camera takes the newest instant in turn), by max_views when there are more cameras than views (each
camera is used within ⌈C / max_views⌉ + 1 consecutive frames).
`docs/selection.png` (scripts/plot_selection.py) shows the picks for the three kinds of rig. Deterministic: a
function of the candidates alone.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .views import ViewSet

POLICIES = ("frames", "latest", "uniform")
DEFAULT_POLICY = "frames"
# `frames` gives a window at least this many instants: with 2 (a six-camera rig's 12 views as two whole frames) the
# moments between them lost 1.2 dB RGB-D against `uniform`; 3 (the newest frame whole, the earlier two shared) kept
# the newest frame's gain and gave back 0.8 of it (ablation block 46).
MIN_INSTANTS = 3
# A depth camera whose views have depth at least this often (every other frame or more) offers the model only those
# (`with_depth_first`): its views without depth (a dropped depth frame, depth at half the colour rate, depth still on
# its way) had cost held-out cameras 2.5 dB where they stood in for half of an RGB-D window's inputs, against 0.6 dB
# for the same cameras' neighbouring frames with depth, and 1.2 dB as extra inputs beside them (ablation block 43).
DEPTH_FIRST_SHARE = 0.5


def depth_first_cameras(camera_ids: list[int], has_depth: list[bool]) -> set[int]:
    """The cameras whose views (camera_ids, has_depth: one per view) have depth at least DEPTH_FIRST_SHARE of the
    time: those that offer the model only their views with depth (`with_depth_first`)."""
    per_cam: dict[int, list[bool]] = {}
    for c, d in zip(camera_ids, has_depth):
        per_cam.setdefault(int(c), []).append(bool(d))
    return {c for c, ds in per_cam.items() if sum(ds) >= DEPTH_FIRST_SHARE * len(ds)}


def with_depth_first(cands: list[tuple[int, int]], has_depth: list[bool]) -> list[int]:
    """Sorted indices of the candidates (stamp_ns, camera_id) to select among: a camera whose candidates have depth
    (has_depth) at least DEPTH_FIRST_SHARE of the time offers only those with depth, and the newest candidate stays
    whatever it holds (a reconstruction reaches the newest input; a camera whose depth stopped goes on being seen)."""
    depth_cams = depth_first_cameras([c for _, c in cands], has_depth)
    newest = max(range(len(cands)), key=lambda i: (int(cands[i][0]), -i)) if cands else -1
    return [i for i, ((_, c), d) in enumerate(zip(cands, has_depth))
            if d or i == newest or int(c) not in depth_cams]


def select_views(cands: list[tuple[int, int]], max_views: int, policy: str,
                 has_depth: list[bool] | None = None) -> list[int]:
    """Sorted indices of at most max_views candidates (stamp_ns, camera_id) chosen by `policy` (see module), among
    `with_depth_first`'s where has_depth (one bool per candidate: it carries depth) is given."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if max_views < 1:
        raise ValueError(f"max_views must be >= 1, got {max_views}")
    if has_depth is not None:
        if len(has_depth) != len(cands):
            raise ValueError(f"has_depth holds {len(has_depth)} flags for {len(cands)} candidates")
        pool = with_depth_first(cands, has_depth)
        return [pool[j] for j in select_views([cands[i] for i in pool], max_views, policy)]
    n = len(cands)
    if n <= max_views:
        return list(range(n))
    stamps = np.array([int(c[0]) for c in cands], dtype=np.int64)
    per_cam: dict[int, list[int]] = {}
    for i in sorted(range(n), key=lambda i: (stamps[i], i)):
        per_cam.setdefault(int(cands[i][1]), []).append(i)  # each camera's views, oldest first
    order = _camera_order(stamps, per_cam, max_views)
    if policy == "latest":
        rank = {c: r for r, c in enumerate(order)}
        by_age = [(k, -int(stamps[i]), rank[c], i) for c, idx in per_cam.items()
                  for k, i in enumerate(reversed(idx))]
        return sorted(i for *_, i in sorted(by_age)[:max_views])
    quotas = _quotas({c: len(per_cam[c]) for c in order}, max_views)
    oldest = min(per_cam, key=lambda c: (stamps[per_cam[c][0]], order.index(c)))  # the oldest view's camera
    if policy == "frames":
        return _frames(quotas, order, oldest, per_cam, stamps)
    slots = _interleave(quotas, order, newest_cam=order[0], oldest_cam=oldest)
    t0, t1 = int(stamps.min()), int(stamps.max())
    targets = np.array([t1] if max_views == 1 else
                       [t0 + (t1 - t0) * k / (max_views - 1) for k in range(max_views)], dtype=np.float64)
    chosen = []
    for c in order:
        mine = targets[[k for k, s in enumerate(slots) if s == c]]
        if len(mine):
            idx = per_cam[c]
            chosen += [idx[j] for j in _match(mine, stamps[idx].astype(np.float64))]
    return sorted(chosen)


def _frames(quotas: dict[int, int], order: list[int], oldest: int, per_cam: dict[int, list[int]],
            stamps: np.ndarray) -> list[int]:
    """The ``frames`` policy: every camera with a share at the newest instant, and the rest of its share at the
    earlier of K evenly spaced instants over [oldest, newest] (K: the largest share, at least MIN_INSTANTS); where a
    camera's share is smaller than K, the cameras take the earlier instants in turn, the oldest view's camera
    (`oldest`) first (so the window's both ends are kept, as `uniform` keeps them), then in `order`."""
    t0, t1 = float(stamps.min()), float(stamps.max())
    instants = np.linspace(t0, t1, max(max(quotas.values()), MIN_INSTANTS))[:-1]
    # each instant moved to the nearest stamp buffered, so that jittered cameras take views of one frame (half way
    # along a span of an odd number of frame periods, each camera's nearest could be either neighbour)
    every = np.unique(stamps).astype(np.float64)
    instants = every[np.abs(every[None] - instants[:, None]).argmin(1)]
    chosen, turn = [], 0
    for c in [oldest] + [c for c in order if c != oldest]:
        q = quotas[c]
        if q == 0:
            continue
        earlier = [instants[(turn + i) % len(instants)] for i in range(q - 1)]
        turn += q - 1
        idx = per_cam[c]
        want = np.array(sorted(earlier) + [t1], dtype=np.float64)
        chosen += [idx[j] for j in _match(want, stamps[idx].astype(np.float64))]
    return sorted(chosen)


def _camera_order(stamps: np.ndarray, per_cam: dict[int, list[int]], max_views: int) -> list[int]:
    """Cameras in tie-break order: the newest view's camera first, then by id rotated per frame of the window
    (newest stamp / mean frame period) by one camera, or by max_views where there are more cameras than views, so
    ties do not always favour the same cameras. (Rotating by max_views alone never rotated where max_views is a
    multiple of the cameras: a synchronized rig's newest instant then always went to camera 0.)"""
    cams = sorted(per_cam)
    distinct = np.unique(stamps)
    period = (int(distinct[-1]) - int(distinct[0])) / (len(distinct) - 1) if len(distinct) > 1 else 1.0
    step = max_views if max_views < len(cams) else 1
    shift = int(int(distinct[-1]) // max(period, 1.0)) * step % len(cams)
    rotated = cams[shift:] + cams[:shift]
    newest = max(rotated, key=lambda c: (stamps[per_cam[c][-1]], -rotated.index(c)))
    return [newest] + [c for c in rotated if c != newest]


def _quotas(counts: dict[int, int], total: int) -> dict[int, int]:
    """Views per camera: equal shares (water-filling: a camera with fewer views gives its spare share to the
    others), remainders to the first cameras in `counts`' order; sums to min(total, Σ counts)."""
    q = {c: 0 for c in counts}
    left = min(total, sum(counts.values()))
    while left > 0:
        open_ = [c for c in counts if q[c] < counts[c]]
        share = left // len(open_)
        if share == 0:
            for c in open_[:left]:
                q[c] += 1
            break
        for c in open_:
            add = min(share, counts[c] - q[c])
            q[c] += add
            left -= add
    return q


def _interleave(quotas: dict[int, int], order: list[int], newest_cam: int, oldest_cam: int) -> list[int]:
    """The camera of each of Σ quotas evenly spaced time slots: camera c's j-th slot sits at fraction
    (j + ½)/q_c of the span, except that the newest view's camera takes the last slot and the oldest view's
    camera the first; ties in order of `order`."""
    keys = []
    for c in order:
        q = quotas[c]
        for j in range(q):
            if c == newest_cam and c == oldest_cam:
                key = j / (q - 1) if q > 1 else 1.0
            elif c == newest_cam:
                key = (j + 1) / q
            elif c == oldest_cam:
                key = j / q
            else:
                key = (j + 0.5) / q
            keys.append((key, order.index(c), c))
    return [c for *_, c in sorted(keys)]


def _match(targets: np.ndarray, stamps: np.ndarray) -> list[int]:
    """Distinct indices into sorted `stamps` (n,) for sorted `targets` (q <= n), order kept, minimising the
    summed |target − stamp| (dynamic programme over (target, stamp); ties go to the newer stamp)."""
    q, n = len(targets), len(stamps)
    g = np.empty((q, n))  # g[i, j]: best cost with target i matched to stamp j
    f_prev = np.zeros(n + 1)  # f_prev[j]: best cost of the previous targets using stamps < j
    for i in range(q):
        g[i] = f_prev[:n] + np.abs(targets[i] - stamps)
        g[i, :i] = np.inf  # i earlier targets need i earlier stamps
        f_prev = np.concatenate([[np.inf], np.minimum.accumulate(g[i])])
    picks, limit = [], n
    for i in range(q - 1, -1, -1):
        row = g[i, :limit]
        j = int(len(row) - 1 - np.argmin(row[::-1]))  # last (newest) of the minima
        picks.append(j)
        limit = j
    return picks[::-1]


def select_inputs(views: ViewSet, max_views: int, policy: str = DEFAULT_POLICY) -> Tensor:
    """Indices of the model's input views among `views`, chosen as the ROS node chooses them (window.py)."""
    cands = list(zip(views.stamps_ns.tolist(), views.camera_ids.tolist()))
    return torch.as_tensor(select_views(cands, max_views, policy, depth_flags(views)), dtype=torch.int64)


def depth_flags(views: ViewSet) -> list[bool] | None:
    """Per view, whether it carries a depth measurement; None where no view does."""
    if views.depths is None:
        return None
    return (views.depths.flatten(1) > 0).any(1).tolist()
