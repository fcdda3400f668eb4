"""SpaceTimeWindow: the ROS-free sliding buffer of posed, timestamped views that the node fills.

Per camera it keeps a bounded buffer of images (oldest dropped and counted when full) and a bounded buffer of
poses; an image is posed by interpolating the camera's poses at the image stamp (lerp for the position, SLERP
for the rotation). Depth images (optional, registered to the colour image) are paired with their view by stamp,
before or after it arrives. `snapshot()` selects at most `max_views` views from the current window (by seconds
and/or frames) and returns them as one `ViewSet`. All methods are thread-safe (one lock).

Stamps are bounded: against a clock (the node's ROS time; `clock` returns None while unknown) no more than
`max_lead_s` ahead or `max_age_s` behind, and against the other cameras never older than the window. Without
the clock's lead bound (no clock yet, or max_lead_s None), a stamp more than the window ahead of the latest image
stamp of every other camera that sent one in the last LIVE_S seconds is refused too, and what a camera stored
that far ahead is dropped: one camera's jumped stamp cannot push every other camera's views out of the window,
while a jump all cameras make goes through (from the second camera that makes it). A refused input is never
stored, so one bad stamp cannot disable a camera. Every refusal raises `RejectedInput` with a reason key
(`REASONS`) counted in `stats.rejections`; refusals of inputs that were stored first (an image that never got
its pose, a view that turned out ahead of the clock) are also passed to `on_refusal(camera, exc)` where one is
given.

Stamps are absolute int64 nanoseconds; poses are camera-to-world 4×4 in the optical frame (x right, y down,
z forward), metres; depths (H,W) float32 metres, 0 = no measurement; quaternions are wxyz.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .geometry import matrix_to_quat, quat_to_matrix, rigid_matrix, slerp
from .selection import DEFAULT_POLICY, POLICIES, select_views
from .views import ViewSet

LIVE_S = 5.0  # wall-clock seconds: a camera that sent an image this recently bounds the others' stamps
# the share of a camera's buffered views with depth from which its newest view's missing depth is awaited
DEPTH_STEADY = 0.9
REFUSED_KEPT = 64  # refused image stamps remembered per camera (their depths, up to depth_buffer, come later)
SKEW_S = 2.0  # how far ahead of the other cameras a stamp may lie where the window has no span (window_frames)

# Why an input was refused (the keys of WindowStats.rejections; the ROS node adds its own decoding reasons).
REASONS = {
    "unknown_camera": "a camera that is not configured",
    "bad_image": "image shape, dtype or values",
    "bad_intrinsics": "K not a finite pinhole matrix",
    "bad_pose": "non-finite pose or non-unit quaternion",
    "future_stamp": "stamp beyond the clock + max_lead_s, or a window ahead of the other cameras",
    "stale_stamp": "stamp older than the clock - max_age_s or than the window",
    "duplicate_stamp": "stamp equal to the camera's newest",
    "out_of_order": "stamp older than the camera's newest",
    "no_pose": "no pose brackets the image stamp (or it waited longer than pose_wait_s)",
    "depth_invalid": "depth image not (H,W) float32, or without any measurement",
    "depth_size": "depth size differs from its colour image",
    "depth_unmatched": "no colour view with the depth's stamp",
}


class RejectedInput(ValueError):
    """An image, pose or depth the window refused; `str(exc)` is the reason for logs and service responses,
    `reason` its key in REASONS (or the node's own keys)."""

    def __init__(self, message: str, reason: str = "bad_image"):
        super().__init__(message)
        self.reason = reason


@dataclass
class _View:
    stamp_ns: int
    image: np.ndarray  # (H,W,3) uint8 or float32 in [0,1]
    K: np.ndarray  # (3,3) float64
    camtoworld: np.ndarray | None  # (4,4) float64; None while waiting for a pose
    depth: np.ndarray | None = None  # (H,W) float32 metres, 0 = none


@dataclass
class CameraStats:
    """Counters of one camera since construction (images only; poses and depths count in `rejections`).
    received: images offered; kept: entered the buffer; dropped: evicted from a full buffer before they
    expired; rejected: refused; buffered / pending / with_depth: now in the buffer, waiting for a pose, with
    depth."""

    received: int = 0
    kept: int = 0
    dropped: int = 0
    rejected: int = 0
    buffered: int = 0
    pending: int = 0
    with_depth: int = 0


@dataclass
class WindowStats:
    """Totals since construction (images), per camera, and refusals by reason (images, poses and depths).
    expired: fell out of the window."""

    received: int = 0
    kept: int = 0
    dropped: int = 0
    expired: int = 0
    rejected: int = 0
    pending: int = 0
    per_camera: dict[str, CameraStats] = field(default_factory=dict)
    rejections: dict[str, int] = field(default_factory=dict)
    last_error: str = ""


def _int_or_none(x) -> int | None:
    try:
        return int(x)
    except (TypeError, ValueError, OverflowError):
        return None


def checked_pose(position, quat_wxyz) -> np.ndarray:
    """Camera-to-world (4,4) float64 from a position (3,) and a unit quaternion (4,) wxyz.

    Raises RejectedInput for non-finite values or a quaternion whose squared norm is off 1 by more than 0.01 (as
    tf2 allows).
    """
    try:
        return rigid_matrix(position, quat_wxyz)
    except ValueError as exc:
        raise RejectedInput(str(exc), "bad_pose") from None


CLOCK_MISMATCH_NS = 3600 * 10**9  # stamps this far from the clock: the node and its input are on different clocks
JUMP_BACK_NS = 50_000_000  # the clock going back by more than this starts the window afresh (a bag played again)


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
            raise RejectedInput(f"pose must be a finite 4x4 matrix, got shape {T.shape}", "bad_pose")
        if self._stamps and stamp_ns <= self._stamps[-1]:
            raise RejectedInput(f"pose out of order: stamp {stamp_ns} ns <= newest {self._stamps[-1]} ns",
                                "duplicate_stamp" if stamp_ns == self._stamps[-1] else "out_of_order")
        self._stamps.append(stamp_ns)
        self._positions.append(T[:3, 3].copy())
        self._quats.append(matrix_to_quat(T[:3, :3]))
        if len(self._stamps) > self.capacity:
            del self._stamps[0], self._positions[0], self._quats[0]

    def drop_newer_than(self, stamp_ns: int) -> int:
        """Remove poses stamped after `stamp_ns`; returns how many."""
        k = bisect.bisect_right(self._stamps, int(stamp_ns))
        n = len(self._stamps) - k
        del self._stamps[k:], self._positions[k:], self._quats[k:]
        return n

    def drop_older_than(self, stamp_ns: int) -> int:
        """Remove poses stamped before `stamp_ns`; returns how many."""
        k = bisect.bisect_left(self._stamps, int(stamp_ns))
        del self._stamps[:k], self._positions[:k], self._quats[:k]
        return k

    def _matrix(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = quat_to_matrix(q)
        T[:3, 3] = p
        return T

    def lookup(self, stamp_ns: int) -> np.ndarray:
        """Camera-to-world (4,4) at `stamp_ns`; raises RejectedInput (reason no_pose) saying why none fits."""
        s = self._stamps
        stamp_ns = int(stamp_ns)
        if not s:
            raise RejectedInput("no pose received yet for this camera", "no_pose")
        if stamp_ns <= s[0]:
            if s[0] - stamp_ns <= self.tolerance_ns:
                return self._matrix(self._positions[0], self._quats[0])
            raise RejectedInput(f"stamp {stamp_ns} ns is {(s[0] - stamp_ns) * 1e-9:.3f} s older than the oldest "
                                f"buffered pose (tolerance {self.tolerance_ns * 1e-9:.3f} s)", "no_pose")
        if stamp_ns >= s[-1]:
            if stamp_ns - s[-1] <= self.tolerance_ns:
                return self._matrix(self._positions[-1], self._quats[-1])
            raise RejectedInput(f"stamp {stamp_ns} ns is {(stamp_ns - s[-1]) * 1e-9:.3f} s newer than the newest "
                                f"pose (tolerance {self.tolerance_ns * 1e-9:.3f} s)", "no_pose")
        i = bisect.bisect_right(s, stamp_ns)  # s[i-1] <= stamp < s[i]
        t0, t1 = s[i - 1], s[i]
        if t1 - t0 > self.max_gap_ns and min(stamp_ns - t0, t1 - stamp_ns) > self.tolerance_ns:
            raise RejectedInput(f"the poses bracketing stamp {stamp_ns} ns are {(t1 - t0) * 1e-9:.3f} s apart "
                                f"(max gap {self.max_gap_ns * 1e-9:.3f} s)", "no_pose")
        a = (stamp_ns - t0) / (t1 - t0)
        p = (1.0 - a) * self._positions[i - 1] + a * self._positions[i]
        return self._matrix(p, slerp(self._quats[i - 1], self._quats[i], a))


class SpaceTimeWindow:
    """Bounded per-camera buffers of posed views; `snapshot()` returns the selected window as a ViewSet.

    camera_names: the cameras, in the order of ViewSet.camera_ids (more can be added with `add_camera`).
    window_s / window_frames: keep views no older than window_s before the newest view of any camera, and/or
    the newest window_frames views per camera (None disables either bound). max_views / policy: how many views
    go to the model and which (lrm4d_ros.selection). buffer_size: views buffered per camera (oldest dropped,
    counted). image_size: (H, W) of the snapshot; None uses the newest view's size (others resized, K scaled).
    Pose lookups: pose_tolerance_s (hold the first/last pose this far), pose_max_gap_s (longest interpolated
    gap). Images newer than the newest pose wait (at most `pending_size` per camera, at most `pose_wait_s`)
    until a pose brackets them. clock: () -> now in ns, or None while unknown; max_lead_s / max_age_s bound
    stamps against it (None disables). depth_tolerance_s: how far a depth stamp may be from its colour view's;
    depth_buffer: depths per camera kept while their colour view has not arrived.
    """

    def __init__(self, camera_names=(), *, window_s: float | None = 2.0, window_frames: int | None = None,
                 max_views: int = 12, policy: str = DEFAULT_POLICY, buffer_size: int = 64,
                 image_size: tuple[int, int] | None = None, pose_buffer_size: int = 512,
                 pose_tolerance_s: float = 0.02, pose_max_gap_s: float = 0.5, pending_size: int = 8,
                 pose_wait_s: float = 1.0, clock: Callable[[], int | None] | None = None,
                 max_lead_s: float | None = 1.0, max_age_s: float | None = 10.0,
                 depth_tolerance_s: float = 0.001, depth_buffer: int = 16,
                 on_refusal: Callable[[str, "RejectedInput"], None] | None = None):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if window_s is None and window_frames is None:
            raise ValueError("give window_s and/or window_frames")
        if window_s is not None and not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if window_frames is not None and window_frames < 1:
            raise ValueError(f"window_frames must be >= 1, got {window_frames}")
        if max_views < 1 or buffer_size < 1 or pending_size < 0 or depth_buffer < 0:
            raise ValueError("max_views and buffer_size must be >= 1, pending_size and depth_buffer >= 0")
        ns = lambda s: None if s is None else int(round(s * 1e9))  # noqa: E731
        self.window_ns, self.window_frames = ns(window_s), window_frames
        self.max_views, self.policy, self.buffer_size = int(max_views), policy, int(buffer_size)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self._pose_args = (int(pose_buffer_size), ns(pose_tolerance_s), ns(pose_max_gap_s))
        self.pending_size, self.pose_wait_ns = int(pending_size), ns(pose_wait_s)
        self.clock, self.max_lead_ns, self.max_age_ns = clock, ns(max_lead_s), ns(max_age_s)
        self.depth_tolerance_ns, self.depth_buffer = ns(depth_tolerance_s), int(depth_buffer)
        self.max_skew_ns = self.window_ns if self.window_ns is not None else ns(SKEW_S)
        self.on_refusal = on_refusal
        self._wall = time.monotonic  # liveness of the cameras' offers (tests replace it)
        self._offered: dict[str, tuple[int, float]] = {}  # camera -> (latest image stamp offered, wall time)
        # camera -> stamps of its latest refused images: their depths go without a second refusal of their own
        self._refused: dict[str, deque] = {}
        self._clock_seen: int | None = None  # the latest clock reading: a jump back starts the window afresh
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._views: dict[str, deque[_View]] = {}
        self._pending: dict[str, deque[_View]] = {}
        self._depths: dict[str, deque[tuple[int, np.ndarray]]] = {}  # depths waiting for their colour view
        self._poses: dict[str, PoseBuffer] = {}
        self._cam: dict[str, CameraStats] = {}
        self._rejections: Counter = Counter()
        self._stats = WindowStats()
        for name in camera_names:
            self.add_camera(name)

    # -- input -------------------------------------------------------------------------------------------
    def add_camera(self, name: str) -> int:
        """Register a camera (idempotent); returns its camera id."""
        with self._lock:
            if name not in self._views:
                self._names.append(name)
                self._views[name], self._pending[name], self._depths[name] = deque(), deque(), deque()
                self._poses[name] = PoseBuffer(*self._pose_args)
                self._cam[name] = CameraStats()
            return self._names.index(name)

    def add_pose(self, camera: str, stamp_ns: int, camtoworld=None, *, position=None, quat_wxyz=None) -> int:
        """Add a camera pose: a (4,4) camera-to-world, or position (3,) + quat_wxyz (4,).

        Returns how many waiting images this pose completed. Raises RejectedInput (also counted in stats).
        """
        with self._lock:
            try:
                self._known(camera)
                stamp_ns = int(stamp_ns)
                self._check_stamp(stamp_ns, "pose", camera)
                T = checked_pose(position, quat_wxyz) if camtoworld is None else np.asarray(camtoworld, np.float64)
                self._poses[camera].add(stamp_ns, T)
            except RejectedInput as exc:
                self._reject(camera, exc, image=False)
            done = self._resolve_pending(camera)
            self._expire()
            return done

    def add_view(self, camera: str, image: np.ndarray, K, stamp_ns: int, camtoworld=None, depth=None) -> str:
        """Add an image (H,W,3) uint8 or float32 in [0,1] with intrinsics K (3,3) at stamp_ns.

        camtoworld (4,4) given: used as is; None: interpolated from the camera's poses. depth: optional (H,W)
        float32 metres (0 = none) registered to the image; a bad depth is counted and dropped, the view still
        goes in. Returns "accepted" or "pending" (newer than every pose so far; kept until a pose arrives).
        Raises RejectedInput with the reason (bad shape/dtype, non-finite K, stamp out of bounds or out of order,
        no pose bracketing the stamp).
        """
        with self._lock:
            if camera in self._cam:
                self._cam[camera].received += 1
            self._stats.received += 1
            try:
                self._known(camera)
                image, K = self._check_image(image, K)
                stamp_ns = int(stamp_ns)
                self._check_stamp(stamp_ns, "image", camera)
                newest = max([q[-1].stamp_ns for q in (self._views[camera], self._pending[camera]) if q],
                             default=None)
                if newest is not None and stamp_ns <= newest:
                    raise RejectedInput(f"image out of order: stamp {stamp_ns} ns <= newest {newest} ns",
                                        "duplicate_stamp" if stamp_ns == newest else "out_of_order")
                view = _View(stamp_ns, image, K, None)
                if camtoworld is not None:
                    T = np.asarray(camtoworld, dtype=np.float64)
                    if T.shape != (4, 4) or not np.isfinite(T).all():
                        raise RejectedInput(f"camtoworld must be a finite 4x4 matrix, got shape {T.shape}",
                                            "bad_pose")
                    view.camtoworld = T
                else:
                    poses = self._poses[camera]
                    if not self.pending_size or (poses.newest_ns is not None
                                                 and stamp_ns <= poses.newest_ns + poses.tolerance_ns):
                        view.camtoworld = poses.lookup(stamp_ns)
            except RejectedInput as exc:
                self._reject(camera, exc, stamp=_int_or_none(stamp_ns))
            self._pair_early_depth(camera, view)
            if depth is not None:
                try:
                    self._attach(camera, view, self._check_depth(depth))
                except RejectedInput as exc:
                    self._drop(camera, exc, image=False)
            if view.camtoworld is None:  # newer than every pose so far: wait for one
                self._park(camera, view)
            else:
                self._push(camera, view)
            self._expire()
            return "pending" if view.camtoworld is None else "accepted"

    def add_depth(self, camera: str, stamp_ns: int, depth) -> str:
        """Pair a depth image (H,W) float32 metres (0 = none) with the colour view of the same stamp (within
        depth_tolerance_s), whether that view is already buffered, waiting for its pose, or still to come.
        Returns "attached" or "waiting"; raises RejectedInput (counted) for a bad or unmatched depth."""
        with self._lock:
            try:
                self._known(camera)
                stamp_ns = int(stamp_ns)
                self._check_stamp(stamp_ns, "depth", camera)
                d = self._check_depth(depth)
                view = self._find_view(camera, stamp_ns)
                if view is not None:
                    self._attach(camera, view, d)
                    return "attached"
                if self._image_refused(camera, stamp_ns):  # refused, and counted, as its image
                    return "unmatched"
                newest = [q[-1].stamp_ns for q in (self._views[camera], self._pending[camera]) if q]
                if newest and stamp_ns < max(newest):
                    raise RejectedInput(f"no colour view at {stamp_ns} ns for this depth (its image was refused "
                                        "or dropped)", "depth_unmatched")
                q = self._depths[camera]
                q.append((stamp_ns, d))
                if len(q) > self.depth_buffer:
                    old = q.popleft()[0]
                    if not self._image_refused(camera, old):
                        self._drop(camera, RejectedInput(f"depth at {old} ns never got its colour view",
                                                         "depth_unmatched"), image=False)
                return "waiting"
            except RejectedInput as exc:
                self._reject(camera, exc, image=False)

    def image_refused(self, camera: str, stamp_ns: int) -> None:
        """An image of `camera` refused before it reached the window (it did not decode, TF could not pose it): its
        depth is then dropped without a refusal of its own, which would hide the image's reason in last_error."""
        with self._lock:
            self._note_refused(camera, int(stamp_ns))

    def _note_refused(self, camera: str, stamp_ns: int | None) -> None:
        if stamp_ns is not None:
            self._refused.setdefault(camera, deque(maxlen=REFUSED_KEPT)).append(stamp_ns)

    def _image_refused(self, camera: str, stamp_ns: int) -> bool:
        return any(abs(s - stamp_ns) <= self.depth_tolerance_ns for s in self._refused.get(camera, ()))

    def _known(self, camera: str) -> None:
        if camera not in self._views:
            raise RejectedInput(f"unknown camera {camera!r} (known: {self._names})", "unknown_camera")

    def now_ns(self) -> int | None:
        """The clock's time in ns, or None without a clock or while it is unknown (0)."""
        t = self.clock() if self.clock is not None else None
        return int(t) if t else None

    def _others_latest(self, camera: str) -> int | None:
        """The newest of the latest image stamps the other cameras offered within LIVE_S of wall time (accepted
        or refused as ahead of the others: a jump every camera makes goes through), or None where none did."""
        wall = self._wall()
        return max((s for n, (s, t) in self._offered.items() if n != camera and wall - t <= LIVE_S), default=None)

    def _lead_unbounded(self, now: int | None) -> bool:
        return now is None or self.max_lead_ns is None

    def check_clock(self, stamp_ns: int, what: str = "image") -> None:
        """RejectedInput (future_stamp, stale_stamp) where stamp_ns lies beyond the clock's max_lead_s / max_age_s:
        the first thing add_view refuses, for input held before it gets there (an image waiting for its TF, which a
        stamp far ahead would otherwise hold forever). Nothing is counted or changed."""
        now = self.now_ns()
        if now is None:
            return
        if self.max_lead_ns is not None and stamp_ns > now + self.max_lead_ns:
            hint = ("; the node on a bag's time (use_sim_time) with live input, or a camera's clock not synchronised?"
                    if stamp_ns - now > CLOCK_MISMATCH_NS else "")
            raise RejectedInput(f"{what} stamp {stamp_ns} ns is {(stamp_ns - now) * 1e-9:.3f} s ahead of the "
                                f"clock (max lead {self.max_lead_ns * 1e-9:.3f} s){hint}", "future_stamp")
        if self.max_age_ns is not None and stamp_ns < now - self.max_age_ns:
            hint = ("; a stamp of 0: does the driver stamp its messages?" if stamp_ns == 0 else
                    "; a bag's stamps against a live clock? run the node with use_sim_time and play the bag with "
                    "--clock" if now - stamp_ns > CLOCK_MISMATCH_NS else "")
            raise RejectedInput(f"{what} stamp {stamp_ns} ns is {(now - stamp_ns) * 1e-9:.3f} s behind the "
                                f"clock (max age {self.max_age_ns * 1e-9:.3f} s){hint}", "stale_stamp")

    def _check_stamp(self, stamp_ns: int, what: str, camera: str) -> None:
        now = self.now_ns()
        if now is not None:
            self._purge_future(now)
            self.check_clock(stamp_ns, what)
        if self._lead_unbounded(now):  # the other cameras bound how far ahead a stamp may lie
            if what == "image":
                self._offered[camera] = (stamp_ns, self._wall())
            self._purge_ahead()
            ref = self._others_latest(camera)
            if ref is not None and stamp_ns > ref + self.max_skew_ns:
                raise RejectedInput(f"{what} stamp {stamp_ns} ns is {(stamp_ns - ref) * 1e-9:.3f} s ahead of every "
                                    f"other camera's latest image (at most {self.max_skew_ns * 1e-9:.3f} s)",
                                    "future_stamp")
        newest = self._newest_ns()
        if what == "image" and self.window_ns is not None and newest is not None \
                and stamp_ns < newest - self.window_ns:
            raise RejectedInput(f"image stamp {stamp_ns} ns is {(newest - stamp_ns) * 1e-9:.3f} s older than the "
                                f"newest view (window {self.window_ns * 1e-9:.3f} s)", "stale_stamp")

    @staticmethod
    def _check_image(image, K) -> tuple[np.ndarray, np.ndarray]:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise RejectedInput(f"image must be (H,W,3), got shape {image.shape}", "bad_image")
        if image.dtype == np.float32:
            if not np.isfinite(image).all():
                raise RejectedInput("image has non-finite values", "bad_image")
        elif image.dtype != np.uint8:
            raise RejectedInput(f"image dtype must be uint8 or float32, got {image.dtype}", "bad_image")
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise RejectedInput(f"K must be a finite 3x3 matrix with fx, fy > 0, got {K.tolist()}",
                                "bad_intrinsics")
        return image, K

    @staticmethod
    def _check_depth(depth) -> np.ndarray:
        d = np.asarray(depth)
        if d.ndim != 2 or d.dtype != np.float32:
            raise RejectedInput(f"depth must be (H,W) float32 metres, got {d.dtype} {d.shape}", "depth_invalid")
        if not (np.isfinite(d) & (d > 0)).any():
            raise RejectedInput("depth image has no measurement (all 0, NaN or inf)", "depth_invalid")
        return np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0))

    def _find_view(self, camera: str, stamp_ns: int) -> _View | None:
        for q in (self._views[camera], self._pending[camera]):
            for v in reversed(q):
                if abs(v.stamp_ns - stamp_ns) <= self.depth_tolerance_ns:
                    return v
                if v.stamp_ns < stamp_ns - self.depth_tolerance_ns:
                    break
        return None

    def _attach(self, camera: str, view: _View, depth: np.ndarray) -> None:
        if depth.shape != view.image.shape[:2]:
            raise RejectedInput(f"depth is {depth.shape[1]}x{depth.shape[0]} but its image is "
                                f"{view.image.shape[1]}x{view.image.shape[0]}", "depth_size")
        view.depth = depth

    def _pair_early_depth(self, camera: str, view: _View) -> None:
        """Attach a depth that came before `view`; depths older than it will never find theirs (counted)."""
        q = self._depths[camera]
        while q and q[0][0] <= view.stamp_ns + self.depth_tolerance_ns:
            stamp, d = q.popleft()
            try:
                if abs(stamp - view.stamp_ns) > self.depth_tolerance_ns:
                    if self._image_refused(camera, stamp):
                        continue
                    raise RejectedInput(f"depth at {stamp} ns never got its colour view", "depth_unmatched")
                self._attach(camera, view, d)
            except RejectedInput as exc:
                self._drop(camera, exc, image=False)

    def _count(self, camera: str, exc: RejectedInput, image: bool = True) -> None:
        self._rejections[exc.reason] += 1
        self._stats.last_error = f"{camera}: {exc}"
        if image:
            self._stats.rejected += 1
            if camera in self._cam:
                self._cam[camera].rejected += 1

    def _drop(self, camera: str, exc: RejectedInput, image: bool = True, stamp: int | None = None) -> None:
        """Count a refusal of something already stored (no caller to raise to) and report it to on_refusal; an
        image's `stamp` is remembered (its depth goes without a refusal of its own)."""
        self._count(camera, exc, image)
        if image:
            self._note_refused(camera, stamp)
        if self.on_refusal is not None:
            self.on_refusal(camera, exc)

    def _reject(self, camera: str, exc: RejectedInput, image: bool = True, stamp: int | None = None):
        self._count(camera, exc, image)
        if image:
            self._note_refused(camera, stamp)
        raise RejectedInput(f"{camera}: {exc}", exc.reason) from None

    def _park(self, camera: str, view: _View) -> None:
        q = self._pending[camera]
        q.append(view)
        if len(q) > self.pending_size:
            old = q.popleft().stamp_ns
            newest = self._poses[camera].newest_ns
            self._drop(camera, RejectedInput(f"image at {old} ns never got a pose (newest pose: "
                                             f"{'none' if newest is None else f'{newest} ns'})", "no_pose"),
                       stamp=old)

    def _resolve_pending(self, camera: str) -> int:
        q, poses, done = self._pending[camera], self._poses[camera], 0
        while q and poses.newest_ns is not None and q[0].stamp_ns <= poses.newest_ns + poses.tolerance_ns:
            view = q.popleft()
            try:
                view.camtoworld = poses.lookup(view.stamp_ns)
            except RejectedInput as exc:
                self._drop(camera, exc, stamp=view.stamp_ns)
                continue
            self._push(camera, view)
            done += 1
        return done

    def _push(self, camera: str, view: _View) -> None:
        buf = self._views[camera]
        buf.append(view)
        self._stats.kept += 1
        self._cam[camera].kept += 1
        while len(buf) > self.buffer_size:
            buf.popleft()
            self._stats.dropped += 1
            self._cam[camera].dropped += 1

    def _expire(self, now: int | None = None) -> None:
        """Drop views outside the window, images that waited longer than pose_wait_s for a pose, and (once the
        clock is known) anything stored before it was that lies beyond its lead. How long an image waited is
        measured in stamps (`now`, or else the newest image or pose stamp), so input that is processed late
        (a busy CPU) does not expire images whose pose is right behind them."""
        clock = self.now_ns()
        if clock is not None:
            self._purge_future(clock)
        if self._lead_unbounded(clock):
            self._purge_ahead()
        newest = self._newest_ns()
        for buf in self._views.values():
            while buf and ((self.window_ns is not None and buf[0].stamp_ns < newest - self.window_ns)
                           or (self.window_frames is not None and len(buf) > self.window_frames)):
                buf.popleft()
                self._stats.expired += 1
        ref = now if now is not None else max([newest or -1] + [p.newest_ns or -1 for p in self._poses.values()])
        if ref >= 0 and self.pose_wait_ns is not None:
            for name, q in self._pending.items():
                while q and q[0].stamp_ns < ref - self.pose_wait_ns:
                    newest_pose = self._poses[name].newest_ns
                    stamp = q.popleft().stamp_ns
                    self._drop(name, RejectedInput(
                        f"image at {stamp} ns waited more than {self.pose_wait_ns * 1e-9:.3f} s "
                        f"for a pose (newest pose: {'none' if newest_pose is None else f'{newest_pose} ns'})",
                        "no_pose"), stamp=stamp)

    def _purge_future(self, now: int) -> None:
        """Drop what lies beyond the clock's lead: stored while the clock was unknown, or the clock jumped back
        (a replayed bag started over), so the cameras start afresh instead of refusing everything as old. Where the
        clock went back by more than JUMP_BACK_NS (`lrm4d play --loop --clock` starting over), everything stamped
        from it on expires (_restart), not only what lies beyond the lead: the new pass would be out of order."""
        seen, self._clock_seen = self._clock_seen, max(self._clock_seen or now, now)
        if seen is not None and now < seen - JUMP_BACK_NS:
            self._clock_seen = now
            self._restart(now)
            return
        if self.max_lead_ns is None:
            return
        for name in self._names:
            self._drop_after(name, now + self.max_lead_ns, f"is ahead of the clock ({now} ns)")

    def _purge_ahead(self) -> None:
        """Drop what a camera stored more than max_skew ahead of every other live camera's latest image (a jumped
        stamp stored before any other camera was live), so that its views do not push the others' out."""
        for name in self._names:
            ref = self._others_latest(name)
            if ref is not None:
                self._drop_after(name, ref + self.max_skew_ns, f"is more than {self.max_skew_ns * 1e-9:.3f} s "
                                                                "ahead of every other camera's latest image")

    def _restart(self, now: int) -> None:
        """The clock went back (a bag played again): what was stored at or after `now` is from before; it expires
        (counted as expired, not refused: it was good input) and the cameras start afresh."""
        for name in self._names:
            self._drop_after(name, now - 1)
        self._offered.clear()

    def _drop_after(self, name: str, limit: int, why: str | None = None) -> None:
        """Drop camera `name`'s images, depths and poses stamped after `limit`: the images reported (future_stamp,
        saying `why`), or, with `why` None, counted as expired."""
        for q in (self._views[name], self._pending[name]):
            while q and q[-1].stamp_ns > limit:
                stamp = q.pop().stamp_ns
                if why is None:
                    self._stats.expired += 1
                else:
                    self._drop(name, RejectedInput(f"image at {stamp} ns {why}: dropped", "future_stamp"),
                               stamp=stamp)
        while self._depths[name] and self._depths[name][-1][0] > limit:
            self._depths[name].pop()
        self._poses[name].drop_newer_than(limit)

    def _newest_ns(self) -> int | None:
        stamps = [b[-1].stamp_ns for b in self._views.values() if b]
        return max(stamps) if stamps else None

    def expire(self) -> None:
        """Apply the bounds at the clock's time (the node calls this periodically while it has no input queued,
        so images waiting for a pose that stopped expire even when no input arrives)."""
        with self._lock:
            self._expire(self.now_ns())

    # -- output ------------------------------------------------------------------------------------------
    @property
    def camera_names(self) -> list[str]:
        with self._lock:
            return list(self._names)

    @property
    def stats(self) -> WindowStats:
        with self._lock:
            s = self._stats
            per = {}
            for n in self._names:
                c = self._cam[n]
                per[n] = CameraStats(c.received, c.kept, c.dropped, c.rejected, len(self._views[n]),
                                     len(self._pending[n]), sum(v.depth is not None for v in self._views[n]))
            return WindowStats(s.received, s.kept, s.dropped, s.expired, s.rejected,
                               sum(len(q) for q in self._pending.values()), per,
                               dict(self._rejections), s.last_error)

    def newest_stamp_ns(self) -> int | None:
        """Stamp of the newest buffered view of any camera (None when empty)."""
        with self._lock:
            return self._newest_ns()

    def newest_per_camera(self) -> dict[str, int]:
        """Newest buffered stamp of each camera that has views."""
        with self._lock:
            return {n: b[-1].stamp_ns for n, b in self._views.items() if b}

    def awaiting_depth(self) -> list[str]:
        """Cameras whose newest buffered view has no depth yet while DEPTH_STEADY of their older buffered views
        have theirs: a depth camera whose depth comes after its colour (an aligning or stereo node downstream of the
        driver), its newest depth still on its way. A camera whose depth comes for every other frame, or has
        stopped, is not waited for."""
        with self._lock:
            out = []
            for n, b in self._views.items():
                if len(b) < 2 or b[-1].depth is not None:
                    continue
                older = [v.depth is not None for v in list(b)[:-1]]
                if sum(older) >= DEPTH_STEADY * len(older):
                    out.append(n)
            return out

    def snapshot(self) -> ViewSet | None:
        """The selected views of the current window as a ViewSet sorted by stamp (None when empty). Where any
        selected view has depth, `depths` holds them (all-zero maps for views without)."""
        with self._lock:
            cands = [(v.stamp_ns, cid, v, v.depth) for cid, n in enumerate(self._names) for v in self._views[n]]
            names = list(self._names)
        if not cands:
            return None
        chosen = select_views([(s, c) for s, c, _, _ in cands], self.max_views, self.policy,
                              [d is not None for *_, d in cands])
        picked = sorted((cands[i] for i in chosen), key=lambda x: (x[0], x[1]))
        with_depth = any(d is not None for *_, d in picked)
        newest = max(picked, key=lambda x: x[0])[2]
        H, W = self.image_size or newest.image.shape[:2]
        return ViewSet.stack([v.image for _, _, v, _ in picked], [v.K for _, _, v, _ in picked],
                             [v.camtoworld for _, _, v, _ in picked], [s for s, *_ in picked],
                             [c for _, c, _, _ in picked], names, [d for *_, d in picked] if with_depth else None,
                             (H, W))
