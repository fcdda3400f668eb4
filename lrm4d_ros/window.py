"""SpaceTimeWindow: the ROS-free sliding buffer of posed, timestamped views that the node fills.

Per camera it keeps a bounded buffer of images (oldest dropped and counted when full) and a bounded buffer of
poses; an image is posed by interpolating the camera's poses at the image stamp (lerp for the position, SLERP
for the rotation). `snapshot()` selects at most `max_views` views from the current window (by seconds and/or
frames) and returns them as one `ViewSet`. All methods are thread-safe (one lock).

Stamps are absolute int64 nanoseconds; poses are camera-to-world 4×4 in the optical frame (x right, y down,
z forward), metres; quaternions are wxyz.
"""
from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from .io.messages import MessageError, matrix_to_quat, quat_to_matrix, rigid_matrix
from .selection import POLICIES, select_views
from .views import ViewSet

class RejectedInput(ValueError):
    """An image or pose the window refused; `str(exc)` is the reason, meant for logs and service responses."""


@dataclass
class _View:
    stamp_ns: int
    image: np.ndarray  # (H,W,3) uint8 or float32 in [0,1]
    K: np.ndarray  # (3,3) float64
    camtoworld: np.ndarray  # (4,4) float64


@dataclass
class WindowStats:
    """Counters since construction. dropped: evicted from a full buffer; expired: fell out of the window."""

    received: int = 0
    dropped: int = 0
    expired: int = 0
    rejected: int = 0
    pending: int = 0
    per_camera: dict[str, int] = field(default_factory=dict)  # views currently buffered
    last_error: str = ""


def slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (4,) at fraction a in [0,1], along the shorter arc."""
    d = float(np.dot(q0, q1))
    if d < 0.0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly parallel: lerp is exact to float precision and avoids dividing by sin(~0)
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(d, 1.0))
    s = math.sin(theta)
    return (math.sin((1.0 - a) * theta) * q0 + math.sin(a * theta) * q1) / s


def pose_matrix(position, quat_wxyz) -> np.ndarray:
    """Camera-to-world (4,4) float64 from a position (3,) and a unit quaternion (4,) wxyz.

    Raises RejectedInput for non-finite values or a quaternion whose norm is off 1 by more than 1e-3.
    """
    try:
        return rigid_matrix(position, quat_wxyz)
    except MessageError as exc:
        raise RejectedInput(str(exc)) from None


class PoseBuffer:
    """Time-ordered poses of one camera; `lookup(stamp_ns)` interpolates between the two that bracket it.

    A stamp is served if it lies between two poses at most `max_gap_ns` apart, or within `tolerance_ns` of the
    first/last pose (that pose is held). Capacity is bounded; the oldest pose is dropped.
    """

    def __init__(self, capacity: int = 512, tolerance_ns: int = 20_000_000, max_gap_ns: int = 500_000_000):
        if capacity < 2:
            raise ValueError(f"pose buffer capacity must be >= 2, got {capacity}")
        self.capacity, self.tolerance_ns, self.max_gap_ns = int(capacity), int(tolerance_ns), int(max_gap_ns)
        self._stamps: list[int] = []
        self._positions: list[np.ndarray] = []
        self._quats: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def newest_ns(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def add(self, stamp_ns: int, camtoworld: np.ndarray) -> None:
        """Append a pose (4,4); stamps must increase strictly."""
        stamp_ns = int(stamp_ns)
        T = np.asarray(camtoworld, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise RejectedInput(f"pose must be a finite 4x4 matrix, got shape {T.shape}")
        if self._stamps and stamp_ns <= self._stamps[-1]:
            raise RejectedInput(f"pose out of order: stamp {stamp_ns} ns <= newest {self._stamps[-1]} ns")
        self._stamps.append(stamp_ns)
        self._positions.append(T[:3, 3].copy())
        self._quats.append(matrix_to_quat(T[:3, :3]))
        if len(self._stamps) > self.capacity:
            del self._stamps[0], self._positions[0], self._quats[0]

    def _matrix(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = quat_to_matrix(q)
        T[:3, 3] = p
        return T

    def lookup(self, stamp_ns: int) -> np.ndarray:
        """Camera-to-world (4,4) at `stamp_ns`; raises RejectedInput saying why no pose brackets it."""
        s = self._stamps
        stamp_ns = int(stamp_ns)
        if not s:
            raise RejectedInput("no pose received yet for this camera")
        if stamp_ns <= s[0]:
            if s[0] - stamp_ns <= self.tolerance_ns:
                return self._matrix(self._positions[0], self._quats[0])
            raise RejectedInput(f"stamp {stamp_ns} ns is {(s[0] - stamp_ns) * 1e-9:.3f} s older than the oldest "
                                f"buffered pose (tolerance {self.tolerance_ns * 1e-9:.3f} s)")
        if stamp_ns >= s[-1]:
            if stamp_ns - s[-1] <= self.tolerance_ns:
                return self._matrix(self._positions[-1], self._quats[-1])
            raise RejectedInput(f"stamp {stamp_ns} ns is {(stamp_ns - s[-1]) * 1e-9:.3f} s newer than the newest "
                                f"pose (tolerance {self.tolerance_ns * 1e-9:.3f} s)")
        i = bisect.bisect_right(s, stamp_ns)  # s[i-1] <= stamp < s[i]
        t0, t1 = s[i - 1], s[i]
        if t1 - t0 > self.max_gap_ns and min(stamp_ns - t0, t1 - stamp_ns) > self.tolerance_ns:
            raise RejectedInput(f"the poses bracketing stamp {stamp_ns} ns are {(t1 - t0) * 1e-9:.3f} s apart "
                                f"(max gap {self.max_gap_ns * 1e-9:.3f} s)")
        a = (stamp_ns - t0) / (t1 - t0)
        p = (1.0 - a) * self._positions[i - 1] + a * self._positions[i]
        return self._matrix(p, slerp(self._quats[i - 1], self._quats[i], a))


class SpaceTimeWindow:
    """Bounded per-camera buffers of posed views; `snapshot()` returns the selected window as a ViewSet.

    camera_names: the cameras, in the order of ViewSet.camera_ids (more can be added with `add_camera`).
    window_s / window_frames: keep views no older than window_s before the newest view of any camera, and/or
    the newest window_frames views per camera (None disables either bound). max_views: most views handed to
    the model. policy: "latest" (newest views, round-robin over cameras) or "uniform" (spread evenly over the
    window's time span). buffer_size: views buffered per camera (oldest dropped, counted in stats.dropped).
    image_size: (H, W) of the snapshot; None uses the newest view's size (other views are resized, K scaled).
    Pose lookups: pose_tolerance_s (hold the first/last pose this far), pose_max_gap_s (longest interpolated
    gap). Images newer than the newest pose wait (at most `pending_size` per camera) until a pose brackets them.
    """

    def __init__(self, camera_names=(), *, window_s: float | None = 2.0, window_frames: int | None = None,
                 max_views: int = 12, policy: str = "uniform", buffer_size: int = 64,
                 image_size: tuple[int, int] | None = None, pose_buffer_size: int = 512,
                 pose_tolerance_s: float = 0.02, pose_max_gap_s: float = 0.5, pending_size: int = 8):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if window_s is None and window_frames is None:
            raise ValueError("give window_s and/or window_frames")
        if window_s is not None and not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if window_frames is not None and window_frames < 1:
            raise ValueError(f"window_frames must be >= 1, got {window_frames}")
        if max_views < 1 or buffer_size < 1 or pending_size < 0:
            raise ValueError("max_views and buffer_size must be >= 1, pending_size >= 0")
        self.window_ns = None if window_s is None else int(round(window_s * 1e9))
        self.window_frames = window_frames
        self.max_views, self.policy, self.buffer_size = int(max_views), policy, int(buffer_size)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self._pose_args = (int(pose_buffer_size), int(round(pose_tolerance_s * 1e9)),
                           int(round(pose_max_gap_s * 1e9)))
        self.pending_size = int(pending_size)
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._views: dict[str, deque[_View]] = {}
        self._pending: dict[str, deque[tuple[int, np.ndarray, np.ndarray]]] = {}
        self._poses: dict[str, PoseBuffer] = {}
        self._stats = WindowStats()
        for name in camera_names:
            self.add_camera(name)

    # -- input -------------------------------------------------------------------------------------------
    def add_camera(self, name: str) -> int:
        """Register a camera (idempotent); returns its camera id."""
        with self._lock:
            return self._add_camera(name)

    def _add_camera(self, name: str) -> int:
        if name not in self._views:
            self._names.append(name)
            self._views[name] = deque()
            self._pending[name] = deque()
            self._poses[name] = PoseBuffer(*self._pose_args)
        return self._names.index(name)

    def add_pose(self, camera: str, stamp_ns: int, camtoworld=None, *, position=None, quat_wxyz=None) -> int:
        """Add a camera pose: a (4,4) camera-to-world, or position (3,) + quat_wxyz (4,).

        Returns how many waiting images this pose completed. Raises RejectedInput (also counted in stats).
        """
        with self._lock:
            try:
                self._known(camera)
                T = pose_matrix(position, quat_wxyz) if camtoworld is None else np.asarray(camtoworld, np.float64)
                self._poses[camera].add(stamp_ns, T)
            except RejectedInput as exc:
                self._reject(f"{camera}: {exc}")
            return self._resolve_pending(camera)

    def add_view(self, camera: str, image: np.ndarray, K, stamp_ns: int, camtoworld=None) -> str:
        """Add an image (H,W,3) uint8 or float32 in [0,1] with intrinsics K (3,3) at stamp_ns.

        camtoworld (4,4) given: used as is; None: interpolated from the camera's poses. Returns "accepted" or
        "pending" (newer than every pose so far; kept until a pose arrives). Raises RejectedInput with the
        reason (bad shape/dtype, non-finite K, out-of-order stamp, no pose bracketing the stamp).
        """
        with self._lock:
            try:
                self._known(camera)
                image, K = self._check_image(image, K)
                stamp_ns = int(stamp_ns)
                buf = self._views[camera]
                last = [buf[-1].stamp_ns] if buf else []
                last += [p[0] for p in list(self._pending[camera])[-1:]]
                newest = max(last, default=None)
                if newest is not None and stamp_ns <= newest:
                    raise RejectedInput(f"image out of order: stamp {stamp_ns} ns <= newest {newest} ns")
                if camtoworld is not None:
                    T = np.asarray(camtoworld, dtype=np.float64)
                    if T.shape != (4, 4) or not np.isfinite(T).all():
                        raise RejectedInput(f"camtoworld must be a finite 4x4 matrix, got shape {T.shape}")
                else:
                    poses = self._poses[camera]
                    if self.pending_size and (poses.newest_ns is None
                                              or stamp_ns > poses.newest_ns + poses.tolerance_ns):
                        self._park(camera, stamp_ns, image, K)
                        return "pending"
                    T = poses.lookup(stamp_ns)
            except RejectedInput as exc:
                self._reject(f"{camera}: {exc}")
            self._push(camera, _View(stamp_ns, image, K, T))
            return "accepted"

    def _known(self, camera: str) -> None:
        if camera not in self._views:
            raise RejectedInput(f"unknown camera {camera!r} (known: {self._names})")

    @staticmethod
    def _check_image(image, K) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise RejectedInput(f"image must be (H,W,3), got shape {image.shape}")
        if image.dtype == np.float32:
            if not np.isfinite(image).all():
                raise RejectedInput("image has non-finite values")
        elif image.dtype != np.uint8:
            raise RejectedInput(f"image dtype must be uint8 or float32, got {image.dtype}")
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise RejectedInput(f"K must be a finite 3x3 matrix with fx, fy > 0, got {K.tolist()}")
        return image, K

    def _reject(self, reason: str):
        self._stats.rejected += 1
        self._stats.last_error = reason
        raise RejectedInput(reason)

    def _park(self, camera, stamp_ns, image, K) -> None:
        q = self._pending[camera]
        q.append((stamp_ns, image, K))
        if len(q) > self.pending_size:
            old_stamp = q.popleft()[0]
            newest = self._poses[camera].newest_ns
            self._stats.rejected += 1
            self._stats.last_error = (f"{camera}: image at {old_stamp} ns never got a pose (newest pose: "
                                      f"{'none' if newest is None else f'{newest} ns'})")

    def _resolve_pending(self, camera: str) -> int:
        q, poses, done = self._pending[camera], self._poses[camera], 0
        while q and poses.newest_ns is not None and q[0][0] <= poses.newest_ns + poses.tolerance_ns:
            stamp_ns, image, K = q.popleft()
            try:
                T = poses.lookup(stamp_ns)
            except RejectedInput as exc:
                self._stats.rejected += 1
                self._stats.last_error = f"{camera}: {exc}"
                continue
            self._push(camera, _View(stamp_ns, image, K, T))
            done += 1
        return done

    def _push(self, camera: str, view: _View) -> None:
        buf = self._views[camera]
        buf.append(view)
        self._stats.received += 1
        while len(buf) > self.buffer_size:
            buf.popleft()
            self._stats.dropped += 1
        self._expire()

    def _expire(self) -> None:
        newest = self._newest_ns()
        for buf in self._views.values():
            while buf and ((self.window_ns is not None and buf[0].stamp_ns < newest - self.window_ns)
                           or (self.window_frames is not None and len(buf) > self.window_frames)):
                buf.popleft()
                self._stats.expired += 1

    def _newest_ns(self) -> int | None:
        stamps = [b[-1].stamp_ns for b in self._views.values() if b]
        return max(stamps) if stamps else None

    # -- output ------------------------------------------------------------------------------------------
    @property
    def camera_names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    @property
    def stats(self) -> WindowStats:
        with self._lock:
            s = self._stats
            return WindowStats(s.received, s.dropped, s.expired, s.rejected,
                               sum(len(q) for q in self._pending.values()),
                               {n: len(self._views[n]) for n in self._names}, s.last_error)

    def newest_stamp_ns(self) -> int | None:
        """Stamp of the newest buffered view of any camera (None when empty)."""
        with self._lock:
            return self._newest_ns()

    def lookup_pose(self, camera: str, stamp_ns: int) -> np.ndarray:
        """Interpolated camera-to-world (4,4) of a known camera at stamp_ns; raises RejectedInput."""
        with self._lock:
            self._known(camera)
            return self._poses[camera].lookup(stamp_ns)

    def snapshot(self) -> ViewSet | None:
        """The selected views of the current window as a ViewSet sorted by stamp (None when empty)."""
        with self._lock:
            cands = [(v.stamp_ns, cid, v) for cid, n in enumerate(self._names) for v in self._views[n]]
            names = list(self._names)
        if not cands:
            return None
        chosen = sorted(select_views([(s, c) for s, c, _ in cands], self.max_views, self.policy))
        picked = [cands[i] for i in chosen]
        picked.sort(key=lambda x: (x[0], x[1]))
        newest = max(picked, key=lambda x: x[0])[2]
        H, W = self.image_size or newest.image.shape[:2]
        # One ViewSet per input size, each resized by ViewSet.resized (K rescaled), then merged in stamp order.
        groups: dict[tuple[int, int], list[int]] = {}
        for k, (_, _, v) in enumerate(picked):
            groups.setdefault(v.image.shape[:2], []).append(k)
        parts, order = [], []
        for members in groups.values():
            views = [picked[k] for k in members]
            images = [torch.from_numpy(v.image).float() / 255.0 if v.image.dtype == np.uint8
                      else torch.from_numpy(v.image) for _, _, v in views]
            parts.append(ViewSet(
                images=torch.stack(images), Ks=torch.as_tensor(np.stack([v.K for _, _, v in views])),
                camtoworlds=torch.as_tensor(np.stack([v.camtoworld for _, _, v in views]), dtype=torch.float64),
                stamps_ns=torch.tensor([s for s, _, _ in views], dtype=torch.int64),
                camera_ids=torch.tensor([c for _, c, _ in views], dtype=torch.int64),
                camera_names=names).resized(H, W))
            order += members
        merged = parts[0] if len(parts) == 1 else ViewSet.cat(parts)
        return merged.select(torch.argsort(torch.tensor(order)))
