"""What the node does with each input message before the SpaceTimeWindow, ROS-free (messages are duck-typed as
messages.py decodes them, rosbags' or rclpy's): the ingest policy of the reconstruct node, testable without
rclpy.

- `Inbox`: per-camera bounded FIFOs the subscription callbacks only `put` into; one ingest thread `take`s.
- `Ingest`: that thread's work. An image or depth whose camera has had no CameraInfo yet is held for it (a driver
  publishes both together and the image may come first); images are decoded, checked against their CameraInfo,
  rectified and posed (by the pose topic through the window, or by TF, for which they wait as tf2_ros's
  MessageFilter does); poses in another frame are mapped by TF; depth in the depth camera's own frame is
  registered onto the colour image (held until its CameraInfo and TF come). What is refused goes to `refuse`
  with a reason; nothing here raises on bad input.

Threads: `handle` and `poll` run on the ingest thread only; `tf_arrived` on any (the TF callback); `info`,
`pending`, `arrival` and `image_times` on any (under the ingest's lock).
"""
from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from ..window import LIVE_S, RejectedInput, SpaceTimeWindow
from .compressed import compressed_depth, compressed_rgb
from .messages import MessageError, UnsupportedEncoding, image_depth, image_rgb, pose_matrix, time_ns
from .rectify import Rectification, info_key, rectified_topic
from .register import register_depth

# Images and depths of a camera whose first camera_info has not come yet are held (up to this many per camera,
# the oldest then refused): a driver publishes CameraInfo and Image together and the image's callback may run first
INFO_WAIT = 8
# With pose_source tf, images whose transform has not arrived yet wait (up to this many per camera, and up to
# pose_wait_s each): a robot's TF comes after the camera's image, as tf2_ros's MessageFilter waits for it. 16: half a
# second of a 30 Hz camera, the RealSense example's pose_wait_s (8 ended its waits at 0.27 s; a 1280x720 camera's 16
# decoded images hold 44 MB)
TF_WAIT = 16
STALLED = 3  # an image or depth held this many pose_wait_s in steady time is refused whatever the clock says
ARRIVALS_KEPT = 4096


class Inbox:
    """Per-camera bounded FIFOs of (sequence, camera, kind, message, arrival): the callbacks' only work is `put`. When a
    camera's queue is full its oldest entry is dropped (images dropped are counted per camera)."""

    def __init__(self, cameras: int, size: int):
        self.queues = [deque() for _ in range(cameras)]
        self.size = size
        self.dropped_images = [0] * cameras
        self.received_images = [0] * cameras
        self.last_image: list[float | None] = [None] * cameras  # time.monotonic() of each camera's latest image
        self.cond = threading.Condition()
        self._seq = itertools.count()
        self._woken = False

    def put(self, cam: int, kind: str, msg) -> None:
        item = (next(self._seq), cam, kind, msg, time.monotonic())
        with self.cond:
            q = self.queues[cam]
            if kind == "image":
                self.received_images[cam] += 1
                self.last_image[cam] = item[4]
            q.append(item)
            if len(q) > self.size:
                if q.popleft()[2] == "image":
                    self.dropped_images[cam] += 1
            self.cond.notify()

    def wake(self) -> None:
        """Return the ingest thread's `take` now (new TF: images waiting for it may go in)."""
        with self.cond:
            self._woken = True
            self.cond.notify()

    def take(self, timeout: float) -> list:
        """Everything queued, in arrival order (waits up to `timeout` s for something, or a `wake`)."""
        with self.cond:
            if not any(self.queues) and not self._woken:
                self.cond.wait(timeout)
            self._woken = False
            items = [x for q in self.queues for x in q]
            for q in self.queues:
                q.clear()
        return sorted(items, key=lambda x: x[0])

    def idle(self) -> bool:
        with self.cond:
            return not any(self.queues)


@dataclass(frozen=True)
class CameraTopics:
    """One input camera. Topic names are relative (resolved in the node's namespace, remappable); depth_topic
    empty = no depth."""

    name: str
    image_topic: str
    info_topic: str
    pose_topic: str
    depth_topic: str = ""
    frame_id: str = ""  # optical frame for TF lookups; "" = the image's header.frame_id
    depth_info_topic: str = ""  # the depth camera's CameraInfo, for depth in its own frame; "" = none
    # Added to the stamps of its images and depth (s): a camera that stamps frames on arrival is late by its latency
    # (-latency here), and a moving camera's images are otherwise posed where it was that much later
    time_offset_s: float = 0.0

    @property
    def time_offset_ns(self) -> int:
        return round(self.time_offset_s * 1e9)


class Transforms(Protocol):
    def lookup(self, target: str, source: str, stamp_ns: int, wait: bool = False) -> np.ndarray | None:
        """(4,4) pose of `source` in `target` at stamp_ns; None (wait=True) while TF still to come could serve it;
        RejectedInput (no_pose) where it cannot (io/tf_tree.TransformTree; ros/tf_listener.TfListener fills one
        from /tf)."""


class Ingest:
    """The ingest policy (module docstring) of `cameras` (CameraTopics, in camera id order) into `window`.

    pose_source: "topic" or "tf"; world_frame: the frame poses are wanted in; pose_wait_s: how long an image waits
    for its TF (also the clock of held depths); rectify: take lens distortion out (else only P's intrinsics).
    tf: a Transforms, or None where TF cannot be had. refuse(reason, text, cam=None, counted=False, camera=""): a
    refused input (cam: the camera id whose image it was; counted: the window counted it already); accepted(): a
    view or depth went in, worth a new reconstruction; topic(name): the resolved topic name for messages;
    info(text): a log line."""

    def __init__(self, window: SpaceTimeWindow, cameras, *, pose_source: str = "topic", world_frame: str = "world",
                 pose_wait_s: float = 0.5, rectify: bool = True, tf: Transforms | None = None,
                 refuse: Callable[..., None], accepted: Callable[[], None] = lambda: None,
                 topic: Callable[[str], str] = lambda name: name, info: Callable[[str], None] = lambda _: None):
        self.window, self.cameras = window, list(cameras)
        self.pose_source, self.world_frame, self.pose_wait_s = pose_source, world_frame, pose_wait_s
        self.undistort = rectify  # (its Rectification caches per camera are _rectify and _depth_rectify)
        self.tf, self._refuse, self._accepted, self._topic, self._info = tf, refuse, accepted, topic, info
        n = len(self.cameras)
        self._lock = threading.Lock()  # guards the fields read by other threads (below, to `_arrivals`)
        self._infos: dict[str, tuple[np.ndarray, int, int]] = {}  # camera -> (K, width, height) of its camera_info
        self._images_awaiting_info = [0] * n
        self._last_image_at = [-math.inf] * n  # monotonic s of each camera's last image taken in
        self._first_image_at: float | None = None  # monotonic s of the first image (after a silence) of any camera
        self._arrivals: OrderedDict[tuple[int, int], float] = OrderedDict()  # (camera id, stamp) -> monotonic s
        # ingest thread only:
        # per camera: (info_key of its last camera_info, its Rectification): maps are rebuilt only when it changes
        self._rectify: dict[str, tuple[tuple, Rectification]] = {}
        # depth in its own frame: per camera (info_key, Rectification) of the depth camera; the colour optical frame
        self._depth_rectify: dict[str, tuple[tuple, Rectification]] = {}
        self._colour_frame: dict[str, str] = {}
        self._awaiting_info: dict[int, deque] = {}  # camera id -> (kind, msg, arrival) held for its camera_info
        self._info_refused: dict[str, str] = {}  # camera -> why its last camera_info was refused
        # camera id -> depths held for their camera_info or TF. One deque per camera from the start: tf_arrived reads
        # it from the TF callback's thread, and a dict that grew meanwhile would end that iteration with an error
        self._depth_waiting: dict[int, deque] = {i: deque() for i in range(n)}
        self._tf_waiting = [deque() for _ in range(n)]  # pose_source tf: decoded images waiting for their TF
        self._tf_new = threading.Event()  # TF came while images or depths were held

    # -- what other threads read ---------------------------------------------------------------------------
    def info(self, camera: str) -> tuple[np.ndarray, int, int] | None:
        """(K, width, height) of the camera's last accepted camera_info (rectified intrinsics), or None."""
        with self._lock:
            return self._infos.get(camera)

    def pending(self) -> list[int]:
        """Per camera, images held here: for their camera_info or, with pose_source tf, for their transform."""
        with self._lock:
            held = list(self._images_awaiting_info)
        return [h + len(w) for h, w in zip(held, self._tf_waiting)]

    def arrival(self, cam_id: int, stamp_ns: int) -> float | None:
        """When (monotonic s) the image of that camera and stamp arrived, for the latency; None if not known."""
        with self._lock:
            return self._arrivals.get((cam_id, stamp_ns))

    def image_times(self) -> tuple[float | None, list[float]]:
        """(monotonic s of the first image after a silence of LIVE_S, or None; each camera's last image's)."""
        with self._lock:
            return self._first_image_at, list(self._last_image_at)

    def tf_arrived(self) -> bool:
        """A TF message was added (any thread): True where input waits for TF (then wake the ingest thread)."""
        if any(self._tf_waiting) or any(self._depth_waiting.values()):
            self._tf_new.set()
            return True
        return False

    # -- the ingest thread ---------------------------------------------------------------------------------
    def handle(self, cam_id: int, kind: str, msg, arrival: float) -> None:
        """One message of camera `cam_id` that arrived at `arrival` (monotonic s); kind: "image", "info", "pose",
        "depth" or "depth_info" (the depth camera's own CameraInfo)."""
        getattr(self, f"_on_{kind}")(cam_id, self.cameras[cam_id], msg, arrival)

    def poll(self) -> None:
        """After each batch (and when woken): images whose TF came go in, held depths are retried or expire."""
        if self.pose_source == "tf":
            self._release_tf_waiting()
        if self._tf_new.is_set():
            self._tf_new.clear()
            self._retry_depths()
        if any(self._depth_waiting.values()):
            self._expire_held_depths()

    def _rectification(self, cache: dict, cam, msg, topic: str, what: str) -> Rectification:
        """The camera's Rectification for camera_info `msg` (`what`: "camera_info", "depth camera_info") of images
        on `topic`, rebuilt only when the camera_info changes (drivers send one per frame); cache: {camera:
        (info_key, Rectification)}. MessageError if bad."""
        key = info_key(msg)
        known = cache.get(cam.name)
        if known is not None and known[0] == key:
            return known[1]
        rect = Rectification(msg, rectified=rectified_topic(topic), rectify=self.undistort)
        if rect.maps is not None and known is None:
            self._info(f"{cam.name}: {what} has lens distortion ({msg.distortion_model}): its images are rectified "
                       "onto P's intrinsics (rectify: auto)")
        cache[cam.name] = (key, rect)
        return rect

    def _on_info(self, cam_id: int, cam, msg, arrival: float) -> None:
        try:
            rect = self._rectification(self._rectify, cam, msg, cam.image_topic, "camera_info")
        except MessageError as exc:
            self._info_refused[cam.name] = str(exc)
            return self._refuse("bad_camera_info", f"{cam.name} camera_info: {exc}", camera=cam.name)
        with self._lock:
            self._infos[cam.name] = (rect.K, *rect.size)
        self._colour_frame[cam.name] = cam.frame_id or msg.header.frame_id
        held = self._awaiting_info.pop(cam_id, ())
        self._count_awaiting_info(cam_id)
        for kind, msg_, arrival_ in held:  # what came before it, in order
            self.handle(cam_id, kind, msg_, arrival_)

    def _on_pose(self, cam_id: int, cam, msg, arrival: float) -> None:
        frame, world, stamp = msg.header.frame_id, self.world_frame, time_ns(msg.header.stamp)
        try:
            T = pose_matrix(msg)
            if frame and frame != world:  # a pose in another frame (motion capture's): mapped by TF
                try:
                    T = self._lookup(world, frame, stamp) @ T
                except RejectedInput as exc:
                    return self._refuse("pose_frame", f"{cam.name} pose: frame {frame!r} is not world_frame {world!r}"
                                                      f" and TF does not map it: {exc}", camera=cam.name)
            if self.window.add_pose(cam.name, stamp, T):
                self._accepted()  # it completed images that waited for a pose
        except MessageError as exc:
            self._refuse("bad_pose", f"{cam.name} pose: {exc}", camera=cam.name)
        except RejectedInput as exc:
            self._refuse(exc.reason, str(exc), counted=True, camera=cam.name)

    def _camera_info(self, cam, size: tuple[int, int], what: str) -> tuple[np.ndarray, int, int]:
        """The camera's (K, width, height), checked against an image's size (width, height)."""
        info = self.info(cam.name)
        if info is None:
            raise RejectedInput(f"{cam.name} {what}: no camera_info received yet on {self._topic(cam.info_topic)}",
                                "no_camera_info")
        if tuple(size) != info[1:]:
            raise RejectedInput(f"{cam.name} {what}: image is {size[0]}x{size[1]} but camera_info says "
                                f"{info[1]}x{info[2]}", "size_mismatch" if what == "image" else "depth_size")
        return info

    def _count_awaiting_info(self, cam_id: int) -> None:
        n = sum(kind == "image" for kind, *_ in self._awaiting_info.get(cam_id, ()))
        with self._lock:
            self._images_awaiting_info[cam_id] = n

    def _hold_for_info(self, cam_id: int, cam, kind: str, msg, arrival: float) -> bool:
        """Hold an image or depth of a camera that has had no camera_info yet; True if held. Beyond INFO_WAIT held
        inputs the oldest is refused (no_camera_info)."""
        if self.info(cam.name) is not None:
            return False
        q = self._awaiting_info.setdefault(cam_id, deque())
        q.append((kind, msg, arrival))
        old_kind = q.popleft()[0] if len(q) > INFO_WAIT else None
        self._count_awaiting_info(cam_id)
        if old_kind:
            why = self._info_refused.get(cam.name)
            self._refuse("no_camera_info", f"{cam.name} {old_kind}: no camera_info received yet on "
                                           f"{self._topic(cam.info_topic)}"
                                           + (f" (the last one was refused: {why})" if why else ""),
                         cam_id if old_kind == "image" else None, camera=cam.name)
        return True

    def _on_image(self, cam_id: int, cam, msg, arrival: float) -> None:
        stamp = time_ns(msg.header.stamp) + cam.time_offset_ns
        if self._hold_for_info(cam_id, cam, "image", msg, arrival):
            return
        try:
            compressed = not hasattr(msg, "encoding")  # a CompressedImage: its size is known only once decoded
            if not compressed:
                K, _, _ = self._camera_info(cam, (int(msg.width), int(msg.height)), "image")
            try:
                rgb = compressed_rgb(msg) if compressed else image_rgb(msg)
            except UnsupportedEncoding as exc:
                raise RejectedInput(f"{cam.name} image: {exc}", "bad_encoding") from None
            except MessageError as exc:  # its layout (step, data size) or payload (a PNG that does not decode)
                raise RejectedInput(f"{cam.name} image: {exc}", "bad_image") from None
            if compressed:
                K, _, _ = self._camera_info(cam, rgb.shape[1::-1], "image")
            rgb = self._rectify[cam.name][1].colour(rgb)
            frame = cam.frame_id or msg.header.frame_id
            if self.pose_source == "tf":
                if not frame:
                    raise RejectedInput(f"{cam.name} image: pose_source is tf but the image has no header.frame_id "
                                        f"and the camera no frame_id parameter", "no_pose")
                try:  # a stamp far ahead would wait for TF forever
                    self.window.check_clock(stamp)
                except RejectedInput as exc:
                    raise RejectedInput(f"{cam.name}: {exc}", exc.reason) from None
        except RejectedInput as exc:
            self.window.image_refused(cam.name, stamp)  # (its depth then goes without a refusal of its own)
            return self._refuse(exc.reason, str(exc), cam_id)
        if self.pose_source != "tf":
            return self._admit(cam_id, cam, rgb, K, stamp, None, arrival)
        self._tf_waiting[cam_id].append((rgb, K, stamp, frame, arrival))  # behind any of its camera's still waiting
        self._release_tf_waiting()

    def _release_tf_waiting(self) -> None:
        """Pose the images waiting for TF, each camera's in order: those whose transform is now known go into the
        window; one that TF can no longer serve, or beyond TF_WAIT, or that waited pose_wait_s is refused. It has
        waited that long when both the node's clock (ROS time: a bag's with use_sim_time) has passed its stamp by
        pose_wait_s and pose_wait_s of steady time have passed since it came (a bag played 8x fast runs the clock
        ahead of when its TF can be taken), or STALLED times that in steady time alone (a clock that stands still:
        a bag played to its end)."""
        world = self.world_frame
        newest = self.window.now_ns()  # the clock; where it is unknown, the newest image's stamp
        if newest is None:
            newest = max([w[-1][2] for w in self._tf_waiting if w] + [self.window.newest_stamp_ns() or -1])
        for cam_id, waiting in enumerate(self._tf_waiting):
            while waiting:
                rgb, K, stamp, frame, arrival = waiting[0]
                on_clock, steady, limit = (newest - stamp) * 1e-9, time.monotonic() - arrival, self.pose_wait_s
                late = (f" ({len(waiting) - 1} newer images of this camera wait)" if len(waiting) > TF_WAIT else
                        f" (waited {max(on_clock, steady):.2f} s)" if (on_clock > limit and steady > limit)
                        or steady > STALLED * limit else "")
                try:  # waited long enough: the transform as it stands now (the newest held within pose_tolerance_s)
                    T = self._lookup(world, frame, stamp, wait=not late)
                except RejectedInput as exc:
                    waiting.popleft()
                    self.window.image_refused(self.cameras[cam_id].name, stamp)
                    self._refuse("no_pose", f"{self.cameras[cam_id].name} image: no TF {world} <- {frame} at "
                                            f"{stamp} ns{late}: {exc}", cam_id)
                    continue
                if T is None:
                    break
                waiting.popleft()
                self._admit(cam_id, self.cameras[cam_id], rgb, K, stamp, T, arrival)

    def _lookup(self, target: str, source: str, stamp: int, wait: bool = False) -> np.ndarray | None:
        """The TF lookup (the `tf` protocol's `lookup`); RejectedInput (no_pose) where the ingest has no TF."""
        if self.tf is None:
            raise RejectedInput("tf2_msgs is not installed (scripts/build_ros.sh builds it)", "no_pose")
        return self.tf.lookup(target, source, stamp, wait)

    def _admit(self, cam_id: int, cam, rgb: np.ndarray, K: np.ndarray, stamp: int, T: np.ndarray | None,
               arrival: float) -> None:
        """A decoded image into the window (posed by T, or by its pose topic where T is None)."""
        try:
            status = self.window.add_view(cam.name, rgb, K, stamp, camtoworld=T)
        except RejectedInput as exc:
            return self._refuse(exc.reason, str(exc), counted=True, camera=cam.name)
        with self._lock:
            if arrival - max(self._last_image_at) > LIVE_S:  # the first image, or the first after a silence
                self._first_image_at = arrival
            self._last_image_at[cam_id] = arrival
            self._arrivals[(cam_id, stamp)] = arrival
            while len(self._arrivals) > ARRIVALS_KEPT:
                self._arrivals.popitem(last=False)
        if status == "accepted":
            self._accepted()

    def _on_depth_info(self, cam_id: int, cam, msg, arrival: float) -> None:
        """The depth camera's own CameraInfo (used for depth in another frame than the colour image's)."""
        try:
            self._rectification(self._depth_rectify, cam, msg, cam.depth_topic, "depth camera_info")
        except MessageError as exc:
            return self._refuse("bad_camera_info", f"{cam.name} depth camera_info: {exc}", camera=cam.name)
        self._retry_depths(cam_id)

    def _retry_depths(self, cam_id: int | None = None) -> None:
        """Register again the depths held for their camera_info or TF (of camera `cam_id`, or of every camera)."""
        for i in [cam_id] if cam_id is not None else list(self._depth_waiting):
            held, self._depth_waiting[i] = self._depth_waiting[i], deque()
            for msg, arrival, _ in held:  # in order; one that still cannot be registered is held again
                self._on_depth(i, self.cameras[i], msg, arrival)

    def _on_depth(self, cam_id: int, cam, msg, arrival: float) -> None:
        if self._hold_for_info(cam_id, cam, "depth", msg, arrival):
            return
        stamp = time_ns(msg.header.stamp) + cam.time_offset_ns  # its colour image's offset: they pair by stamp
        colour = self._colour_frame.get(cam.name, "")
        own_frame = bool(msg.header.frame_id and colour and msg.header.frame_id != colour)
        try:
            compressed = not hasattr(msg, "encoding")  # its size is known only once decoded
            if not compressed and not own_frame:
                self._camera_info(cam, (int(msg.width), int(msg.height)), "depth")
            try:
                depth = compressed_depth(msg) if compressed else image_depth(msg)
            except MessageError as exc:
                raise RejectedInput(f"{cam.name} depth: {exc}", "depth_invalid") from None
            if own_frame:
                depth = self._register_depth(cam, depth, msg.header.frame_id, colour, stamp)
            else:
                if compressed:
                    self._camera_info(cam, depth.shape[::-1], "depth")
                depth = self._rectify[cam.name][1].depth(depth)
        except RejectedInput as exc:
            if exc.reason == "depth_frame":  # its camera_info or TF may still come (a node starting up)
                return self._hold_depth(cam_id, cam, msg, arrival, exc)
            return self._refuse(exc.reason, str(exc), camera=cam.name)
        try:
            if self.window.add_depth(cam.name, stamp, depth) == "attached":
                self._accepted()  # the window's depth changed: worth a new reconstruction
        except RejectedInput as exc:
            self._refuse(exc.reason, str(exc), counted=True, camera=cam.name)

    def _hold_depth(self, cam_id: int, cam, msg, arrival: float, exc: RejectedInput) -> None:
        """Hold a depth that cannot be registered yet (up to INFO_WAIT per camera; beyond, the oldest is refused
        with the reason): at start-up the depth camera's camera_info and /tf_static often come after its first
        images."""
        q = self._depth_waiting[cam_id]
        q.append((msg, arrival, str(exc)))
        if len(q) > INFO_WAIT:
            q.popleft()
            self._refuse(exc.reason, str(exc), camera=cam.name)

    def _expire_held_depths(self) -> None:
        """Refuse, with the reason they were held, depths held STALLED * pose_wait_s in steady time: a short stream
        whose camera_info or TF never comes would otherwise leave them held without a word."""
        now = time.monotonic()
        for cam_id, q in self._depth_waiting.items():
            while q and now - q[0][1] > STALLED * self.pose_wait_s:
                _, arrival, why = q.popleft()
                self._refuse("depth_frame", f"{why} (held {now - arrival:.1f} s)", camera=self.cameras[cam_id].name)

    def _register_depth(self, cam, depth: np.ndarray, frame: str, colour: str, stamp: int) -> np.ndarray:
        """Depth (h,w) metres of a depth camera in its own optical frame -> (H,W) z-depth in the colour camera (0 =
        none), registered as depth_image_proc does (register.py) with the depth camera's camera_info and the TF
        colour <- depth at the depth's stamp. RejectedInput (depth_frame, depth_size) saying what is missing."""
        where = f"{cam.name} depth in frame {frame!r}, not the colour image's {colour!r}"
        known = self._depth_rectify.get(cam.name)
        if known is None:
            raise RejectedInput(f"{where}: registering it needs the depth camera's camera_info, none yet on "
                                f"{self._topic(cam.depth_info_topic)} (cameras.{cam.name}.depth_info_topic)",
                                "depth_frame")
        rect = known[1]
        if depth.shape[::-1] != rect.size:
            raise RejectedInput(f"{where}: image is {depth.shape[1]}x{depth.shape[0]} but its camera_info says "
                                f"{rect.size[0]}x{rect.size[1]}", "depth_size")
        try:
            colour_from_depth = self._lookup(colour, frame, stamp)
        except RejectedInput as exc:
            raise RejectedInput(f"{where}: no TF {colour} <- {frame}: {exc}", "depth_frame") from None
        K, W, H = self.info(cam.name)
        return register_depth(rect.depth(depth), rect.K, colour_from_depth, K, (W, H))
