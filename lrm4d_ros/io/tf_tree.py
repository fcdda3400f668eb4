"""A TF tree (/tf and /tf_static) looked up as tf2 does, for a bag read offline (lrm4d convert-bag) and for the
node's live pose_source tf (tf2 is not on PyPI).

Every frame has one parent. A /tf_static edge holds for all time; a /tf edge is a time series, interpolated between
the two transforms that bracket a stamp (position linearly, rotation by SLERP: window.PoseBuffer, as the node
interpolates pose topics), served within `tolerance_ns` of its ends and across gaps of at most `max_gap_ns`.
`lookup(target, source, stamp)` composes the edges from `source` up to the frames' common ancestor and down to
`target`: the pose of `source` in `target` (tf2's lookupTransform(target, source, time)). Failures raise
RejectedInput (reason "no_pose") naming the frames and, for a time series, why the stamp is not served;
`can_wait` tells whether later transforms could still serve it. A live tree keeps `cache_s` of history per edge.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..window import PoseBuffer, RejectedInput


class TransformTree:
    """Collect transforms with `add` (any order), then `lookup`. cache_s: seconds of history kept per moving edge
    behind its newest transform (tf2's buffer keeps 10 s); None keeps everything (a bag read whole)."""

    def __init__(self, tolerance_ns: int = 20_000_000, max_gap_ns: int = 500_000_000, cache_s: float | None = None):
        self.tolerance_ns, self.max_gap_ns = int(tolerance_ns), int(max_gap_ns)
        self.cache_ns = None if cache_s is None else int(cache_s * 1e9)
        self._parent: dict[str, str] = {}
        self._static: dict[str, np.ndarray] = {}
        self._samples: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        self._newest: dict[str, int] = {}  # moving edge -> stamp of its newest transform
        self._series: dict[str, PoseBuffer] = {}

    def add(self, parent: str, child: str, stamp_ns: int, T: np.ndarray, static: bool = False) -> None:
        """The pose T (4,4) of `child` in `parent` at stamp_ns (ignored for a static transform). A child that
        changes parent raises ValueError (a tree, as tf2 requires); a repeated stamp keeps the last transform."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise ValueError(f"transform {parent!r} -> {child!r}: frames must be named and differ")
        if self._parent.setdefault(child, parent) != parent:
            raise ValueError(f"frame {child!r} has two parents, {self._parent[child]!r} and {parent!r} (TF is a tree)")
        if static:
            self._static[child] = np.asarray(T, np.float64)
            return
        stamp_ns, T = int(stamp_ns), np.asarray(T, np.float64)
        samples, buf = self._samples[child], self._series.get(child)
        samples[stamp_ns] = T
        newest = self._newest.get(child)
        if buf is not None and stamp_ns > newest:  # in order, as a live stream arrives: append
            buf.add(stamp_ns, T)
        else:  # out of order or repeated: re-sorted at the next lookup
            self._series.pop(child, None)
        self._newest[child] = newest = stamp_ns if newest is None else max(newest, stamp_ns)
        if self.cache_ns is not None:
            cutoff = newest - self.cache_ns
            while next(iter(samples)) < cutoff:  # insertion order: the oldest first for a stream in order
                del samples[next(iter(samples))]
            if child in self._series:
                self._series[child].drop_older_than(cutoff)

    def forget_moving(self) -> None:
        """Drop every /tf transform, keeping /tf_static's and the tree's shape: the clock went back (a bag played
        again), and what was buffered is from the pass before (tf2 clears its buffer so)."""
        self._samples.clear()
        self._newest.clear()
        self._series.clear()

    @property
    def frames(self) -> set[str]:
        return set(self._parent) | set(self._parent.values())

    def _edge(self, child: str, stamp_ns: int) -> np.ndarray:
        """Pose of `child` in its parent at stamp_ns."""
        if child in self._static:
            return self._static[child]
        buf = self._series.get(child)
        if buf is None:  # sorted once, after every add of this edge
            samples = self._samples[child]
            buf = PoseBuffer(capacity=2**62, tolerance_ns=self.tolerance_ns, max_gap_ns=self.max_gap_ns)
            for s in sorted(samples):
                buf.add(s, samples[s])
            self._series[child] = buf
        try:
            return buf.lookup(stamp_ns)
        except RejectedInput as exc:
            raise RejectedInput(f"transform {self._parent[child]!r} -> {child!r}: {exc}", "no_pose") from None

    def root(self, frame: str) -> str:
        """The topmost ancestor of `frame` (a robot's TF tree: map or odom)."""
        return self._chain(frame.lstrip("/"))[-1]

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > len(self._parent) + 1:
                raise ValueError(f"the TF tree has a cycle through {frame!r}")
        return chain

    def can_wait(self, target: str, source: str, stamp_ns: int) -> bool:
        """Whether transforms still to come could serve lookup(target, source, stamp_ns), or serve it better: a frame
        not yet in the tree, frames not yet connected, or a stamp newer than a moving edge's newest transform (the
        camera's image came before its TF, as on a live robot; lookup may hold that transform within tolerance_ns,
        a later one brackets the stamp). False where only transforms already past could have served it."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if not {target, source} <= self.frames:
            return True
        up, down = self._chain(source), self._chain(target)
        common = next((f for f in up if f in set(down)), None)
        if common is None:
            return True
        for child in up[:up.index(common)] + down[:down.index(common)]:
            if child not in self._static and int(stamp_ns) > self._newest.get(child, -1):  # (none since a restart)
                return True
        return False

    def lookup(self, target: str, source: str, stamp_ns: int, wait: bool = False) -> np.ndarray | None:
        """(4,4) pose of frame `source` in frame `target` at stamp_ns; RejectedInput (no_pose) where it cannot be had.
        wait: None instead while transforms still to come could serve it, or serve it better (`can_wait`), as tf2
        waits for a transform rather than extrapolating."""
        if wait and self.can_wait(target, source, stamp_ns):
            return None
        target, source = target.lstrip("/"), source.lstrip("/")
        for f in (target, source):
            if f not in self.frames:
                raise RejectedInput(f"frame {f!r} is not in the TF tree (frames: {sorted(self.frames)})", "no_pose")
        up, down = self._chain(source), self._chain(target)
        common = next((f for f in up if f in set(down)), None)
        if common is None:
            raise RejectedInput(f"frames {source!r} and {target!r} are not connected (roots {up[-1]!r} and "
                                f"{down[-1]!r})", "no_pose")
        source_in_common = np.eye(4)
        for child in up[:up.index(common)]:
            source_in_common = self._edge(child, stamp_ns) @ source_in_common
        target_in_common = np.eye(4)
        for child in down[:down.index(common)]:
            target_in_common = self._edge(child, stamp_ns) @ target_in_common
        return np.linalg.inv(target_in_common) @ source_in_common
