"""/tf and /tf_static into a TransformTree (io/tf_tree.py): what tf2_ros's TransformListener and Buffer do for the
node (pose_source tf, pose topics in another frame, depth in its own frame), without tf2_ros, which is not on PyPI.
The message type, tf2_msgs/msg/TFMessage, comes from a ROS install or, where there is none, from vendor/tf2_msgs
(built by scripts/build_ros.sh; the same definition, so the same type hash as a robot's tf2_msgs).

Callbacks (one exclusive group) add transforms under a lock; `lookup` may run on any thread.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..io.messages import MessageError, pose_matrix, time_ns
from ..io.tf_tree import TransformTree
from ..window import JUMP_BACK_NS
from .conversions import RCLPY

# As tf2_ros's listener: /tf reliable with a deep history, /tf_static also transient local (latched by broadcasters).
TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TfListener:
    """Subscribe `node` to /tf and /tf_static. tolerance_s / max_gap_s: as TransformTree's (the node passes its
    pose_tolerance_s / pose_max_gap_s); cache_s: history kept per moving edge. on_update(): called after each TF
    message was added; on_error(text): a transform that was refused (non-finite, a frame with two parents).
    clock(): the node's time (ns; None while unknown): where it goes back by more than JUMP_BACK_NS (a bag played
    again), the /tf history is dropped and on_jump(seconds back) called. Kept, it was the previous pass's: lookups
    mixed the two passes, and every transform of the new one came out of order, rebuilding the edge's series at
    each lookup (0.3 -> 92 ms a lookup)."""

    def __init__(self, node, tolerance_s: float = 0.02, max_gap_s: float = 0.5, cache_s: float = 10.0,
                 on_update: Callable[[], None] = lambda: None, on_error: Callable[[str], None] = lambda _: None,
                 clock: Callable[[], int | None] | None = None, on_jump: Callable[[float], None] = lambda _: None):
        if RCLPY.TFMessage is None:
            raise RuntimeError("pose_source 'tf' needs tf2_msgs: source a ROS install, or build the vendored one "
                               "with scripts/build_ros.sh and source install/setup.bash")
        self.tree = TransformTree(int(tolerance_s * 1e9), int(max_gap_s * 1e9), cache_s=cache_s)
        self._lock = threading.Lock()
        self._on_update, self._on_error, self._on_jump = on_update, on_error, on_jump
        self._clock, self._clock_seen = clock, None
        group = MutuallyExclusiveCallbackGroup()
        node.create_subscription(RCLPY.TFMessage, "/tf", lambda m: self._add(m, False), TF_QOS,
                                 callback_group=group)
        node.create_subscription(RCLPY.TFMessage, "/tf_static", lambda m: self._add(m, True), TF_STATIC_QOS,
                                 callback_group=group)

    def _add(self, msg, static: bool) -> None:
        errors, jumped = [], None
        now = self._clock() if self._clock is not None else None
        with self._lock:
            if now is not None:
                if self._clock_seen is not None and now < self._clock_seen - JUMP_BACK_NS:
                    self.tree.forget_moving()
                    jumped, self._clock_seen = (self._clock_seen - now) * 1e-9, now
                self._clock_seen = now if self._clock_seen is None else max(self._clock_seen, now)
            for t in msg.transforms:
                try:
                    self.tree.add(t.header.frame_id, t.child_frame_id, time_ns(t.header.stamp), pose_matrix(t),
                                  static=static)
                except (ValueError, MessageError) as exc:
                    errors.append(f"{'/tf_static' if static else '/tf'} {t.header.frame_id!r} -> "
                                  f"{t.child_frame_id!r}: {exc}")
        if jumped is not None:
            self._on_jump(jumped)
        for e in errors:
            self._on_error(e)
        self._on_update()

    def lookup(self, target: str, source: str, stamp_ns: int, wait: bool = False) -> np.ndarray | None:
        """(4,4) pose of `source` in `target` at stamp_ns, or RejectedInput (no_pose) saying why not. wait: return
        None instead while TF still to come could serve the stamp, or serve it between two transforms rather than
        by holding the newest one (TransformTree.can_wait), as tf2 waits for a transform instead of extrapolating."""
        with self._lock:
            return self.tree.lookup(target, source, stamp_ns, wait)
