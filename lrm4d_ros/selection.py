"""Which views of a buffered space-time window go to the model: one rule shared by the ROS node's window, the
offline pipeline and the training sampler, so the model is trained on the inputs it is served.
"""
from __future__ import annotations

import numpy as np

POLICIES = ("latest", "uniform")


def select_views(cands: list[tuple[int, int]], max_views: int, policy: str) -> list[int]:
    """Indices of at most max_views candidates (stamp_ns, camera_id) chosen by `policy`.

    latest: the newest view of each camera, then the second newest of each, ... (round-robin, newest first).
    uniform: for max_views target times evenly spaced over [oldest, newest], the nearest unused view (the
    newest and oldest views are always chosen when max_views >= 2).
    """
    n = len(cands)
    if n <= max_views:
        return list(range(n))
    if policy == "latest":
        per_cam: dict[int, list[int]] = {}
        for i in sorted(range(n), key=lambda i: -cands[i][0]):
            per_cam.setdefault(cands[i][1], []).append(i)
        rank = {i: r for lst in per_cam.values() for r, i in enumerate(lst)}
        order = sorted(range(n), key=lambda i: (rank[i], -cands[i][0], cands[i][1]))
        return order[:max_views]
    if policy == "uniform":
        stamps = np.array([c[0] for c in cands], dtype=np.int64)
        t0, t1 = int(stamps.min()), int(stamps.max())
        targets = [t1] if max_views == 1 else [t0 + (t1 - t0) * k / (max_views - 1) for k in range(max_views)]
        used: set[int] = set()
        for t in sorted(targets, key=lambda t: -t):  # newest target first so the newest view is always kept
            dist = np.abs(stamps - t).astype(np.float64)
            dist[list(used)] = np.inf
            used.add(int(np.argmin(dist)))
        return sorted(used)
    raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
