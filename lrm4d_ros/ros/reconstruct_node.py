"""The lrm4d reconstruct node: posed camera streams in, 4D Gaussians, rendered views and a render service out.

    python -m lrm4d_ros.ros.reconstruct_node --ros-args --params-file config/reconstruct.yaml
    ros2 run lrm4d_ros reconstruct_node --ros-args --params-file ...          (after colcon build)

Inputs per camera (relative topics, remappable): colour Image, CameraInfo, PoseStamped (or TF) and optionally a
registered depth Image; images and depth may come compressed instead, as image_transport's plugins publish them
(`image_transport: compressed`, `depth_transport: compressedDepth`). Subscription callbacks only enqueue the message
(io/ingest.py's Inbox); one ingest thread decodes, checks, rectifies and poses it (its Ingest, ROS-free) and puts it
into a SpaceTimeWindow, whose stamps are bounded by the node's clock (ROS time: `use_sim_time` for bag playback). A
reconstruction thread wakes when new views arrive (at most `reconstruction_rate_hz`, waiting up to `gather_s` for
the other cameras' views of the same instant and a depth camera's depth), runs the model and publishes ~/gaussians
(PointCloud2, sliced at the window's newest stamp) and ~/status. Virtual cameras (~/<name>/image, depth,
camera_info, with a static TF of their frame) are rendered from each new reconstruction; the `render_view` service
renders the latest reconstruction from any camera at any time in its window.
Bad input is refused with a reason (counted per reason in ~/status, logged rate-limited per reason) and never
stops the node; under overload the oldest queued input is dropped and counted.
"""
from __future__ import annotations

import faulthandler
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import rclpy
import torch
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future as RclFuture
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ..cameras import SceneNormalization
from ..io.ingest import Inbox, Ingest
from ..io.messages import pointcloud2_msg, time_msg, transform_msg
from ..model import BF16_CHOICES
from ..reconstructor import Reconstructor
from ..rig_reading import read_rig, rig_findings
from ..window import LIVE_S, RejectedInput, SpaceTimeWindow
from .conversions import RCLPY
from .interfaces import ReconstructionStatus, RenderView
from .params import DYNAMIC, NodeConfig, check, check_together, declare_and_load, unknown_parameters
from .renders import answer_render_view, virtual_camera_messages
from .tf_listener import TfListener

NODE_NAME = "lrm4d_reconstruct"
LOG_THROTTLE_S = 2.0
SILENT_S, SILENT_REPEAT_S = 5.0, 30.0  # a camera with no image this long after start is warned of, then this often
RENDER_DRAIN_S = 10.0  # at shutdown, how long render requests being rendered are waited for, to be answered
ANSWER_GRACE_S = 0.5  # then how long the executor spins on, so that the answers reach their callers
# A burst of requests larger than the DDS history is silently dropped by the middleware; keep room for bursts.
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=64, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
STEADY = Clock(clock_type=ClockType.STEADY_TIME)  # timers that must run whatever ROS time does (sim time)


class ReconstructNode(Node):
    """See the module docstring. `reconstructor` overrides the one built from the checkpoint/device params."""

    def __init__(self, reconstructor: Reconstructor | None = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self._stop, self._wake = threading.Event(), threading.Event()
        self._threads: list[threading.Thread] = []
        self._told_guessed = False  # the log has said that ~/gaussians leaves the model's guesses out
        try:
            self._setup(reconstructor)
        except Exception:
            self.destroy_node()  # leave no half-built node in the graph
            raise

    def _setup(self, reconstructor: Reconstructor | None) -> None:
        self.cfg: NodeConfig = declare_and_load(self)
        cfg = self.cfg
        for line in unknown_parameters(self, cfg):
            self.get_logger().warning(line)
        self.window = SpaceTimeWindow(
            [c.name for c in cfg.cameras],
            window_s=cfg.window_seconds if cfg.window_seconds > 0 else None,
            window_frames=cfg.window_frames if cfg.window_frames > 0 else None,
            max_views=cfg.max_input_views, policy=cfg.selection_policy, buffer_size=cfg.buffer_size,
            image_size=(cfg.image_height, cfg.image_width) if cfg.image_height > 0 else None,
            pose_tolerance_s=cfg.pose_tolerance_s, pose_max_gap_s=cfg.pose_max_gap_s, pose_wait_s=cfg.pose_wait_s,
            clock=lambda: self.get_clock().now().nanoseconds, max_lead_s=cfg.max_stamp_lead_s or None,
            max_age_s=cfg.max_stamp_age_s or None, depth_tolerance_s=cfg.depth_tolerance_s,
            on_refusal=self._window_refusal)
        self.normalization = (None if cfg.normalization == "auto" else
                              SceneNormalization(torch.tensor(cfg.normalization_center, dtype=torch.float64),
                                                 cfg.normalization_scale))
        self.reconstructor = reconstructor or Reconstructor.from_checkpoint(
            cfg.checkpoint or None, cfg.device or None, cfg.refine_steps, cfg.floor_z if cfg.floor_known else None,
            BF16_CHOICES[cfg.bf16])
        self._viewer = None
        if cfg.viewer_port > 0:  # the browser 4D viewer (lrm4d_ros/viewer): slices and sends on its own thread
            from ..viewer.server import Viewer

            self._viewer = Viewer(port=cfg.viewer_port, host="0.0.0.0", label=NODE_NAME)

        self._lock = threading.Lock()  # guards the fields below; the window and the ingest have their own locks
        self._started = time.monotonic()
        self._silent_warned: dict[str, float] = {}  # camera -> when its silence was last warned of (steady s)
        self._publisher_seen: dict[str, float] = {}  # camera -> when a publisher of its image topic was first seen
        self._rejections: Counter = Counter()  # refused by the node itself (the window counts its own)
        self._rejected_images = [0] * len(cfg.cameras)
        self._last_error, self._last_error_at = "", 0.0  # and when (steady s): the status says how long ago
        # (reason, camera) -> (monotonic s, suppressed since): one camera's stream of bad input does not hide
        # another's
        self._last_logged: dict[tuple[str, str], tuple[float, int]] = {}
        self._latest = None  # (Reconstruction, ViewSet, serial)
        self._serial = 0
        self._last_signature = None
        self._reconstruction_time = 0.0
        self._latency = float("nan")
        self._n_gaussians = (0, 0)
        self._renders_served = 0
        self._renders_refused = 0
        self._failures = Counter()  # "reconstruction", "virtual": the model's failures, not refused inputs
        self._render_slots = threading.BoundedSemaphore(cfg.max_concurrent_renders)
        self._answers_owed = 0  # render requests accepted and not yet answered (under _lock)
        self._closing = threading.Event()  # shutting down: render requests are refused
        self._virtual_cache: dict[str, tuple[int, tuple | None]] = {}  # None: its render failed
        self._dirty_since: float | None = None  # monotonic time of the first view not yet reconstructed
        self._rig_read_at = -math.inf  # monotonic s of the last reading of the rig (reconstruction thread)
        self._rig_findings: tuple[str, ...] = ()  # its findings, kept until a reading tells otherwise

        # sensor_data = best effort, volatile (as qos_profile_sensor_data): also matches reliable publishers.
        reliability = (ReliabilityPolicy.BEST_EFFORT if cfg.input_qos == "sensor_data"
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.input_queue_depth, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        self._inbox = Inbox(len(cfg.cameras), cfg.ingest_queue_size)
        self._ingest: Ingest | None = None
        # TF: the cameras' poses (pose_source tf), pose topics in another frame, where a depth camera sits
        tf = None
        if cfg.pose_source == "tf" or RCLPY.TFMessage is not None:  # also maps poses and depth from other frames
            tf = TfListener(self, cfg.pose_tolerance_s, cfg.pose_max_gap_s, on_update=self._tf_arrived,
                            on_error=lambda text: self._refuse("bad_tf", text),
                            clock=lambda: self.get_clock().now().nanoseconds or None,
                            on_jump=lambda back: self.get_logger().info(
                                f"the clock went back {back:.3f} s (a bag played again): /tf history dropped"))
        self._ingest = Ingest(self.window, cfg.cameras, pose_source=cfg.pose_source, world_frame=cfg.world_frame,
                              pose_wait_s=cfg.pose_wait_s, rectify=cfg.rectify != "off", tf=tf, refuse=self._refuse,
                              accepted=self._dirty, topic=self.resolve_topic_name, info=self.get_logger().info)
        for i, cam in enumerate(cfg.cameras):
            # One exclusive group per camera keeps its messages in arrival order (a reentrant group may run two
            # callbacks of one subscription at once, and enqueue them swapped); cameras still run in parallel.
            inputs = MutuallyExclusiveCallbackGroup()
            # image_transport's convention: a compressed stream is the raw topic + "/<transport>"
            topics = [(Image, cam.image_topic, "image") if cfg.image_transport == "raw" else
                      (CompressedImage, f"{cam.image_topic}/{cfg.image_transport}", "image"),
                      (CameraInfo, cam.info_topic, "info")]
            if cfg.pose_source == "topic":
                topics.append((PoseStamped, cam.pose_topic, "pose"))
            if cam.depth_topic:
                topics.append((Image, cam.depth_topic, "depth") if cfg.depth_transport == "raw" else
                              (CompressedImage, f"{cam.depth_topic}/{cfg.depth_transport}", "depth"))
                if cam.depth_info_topic != cam.info_topic:
                    topics.append((CameraInfo, cam.depth_info_topic, "depth_info"))
            for msg_type, topic, kind in topics:
                self.create_subscription(msg_type, topic, lambda m, i=i, k=kind: self._inbox.put(i, k, m), qos,
                                         callback_group=inputs)

        self.gaussians_pub = self.create_publisher(PointCloud2, "~/gaussians", 1)
        self.status_pub = self.create_publisher(ReconstructionStatus, "~/status", 10)
        self.virtual_pubs = {
            v.name: (self.create_publisher(Image, f"~/{v.name}/image", LATCHED_QOS),
                     self.create_publisher(Image, f"~/{v.name}/depth", LATCHED_QOS),
                     self.create_publisher(CameraInfo, f"~/{v.name}/camera_info", LATCHED_QOS))
            for v in cfg.virtual_cameras}
        self._publish_static_tf()
        # Renders run on their own threads (render_view's callback awaits one), never on the executor's: the
        # executor takes every input message in turn. Requests beyond max_concurrent_renders are answered "busy".
        self._renderers = ThreadPoolExecutor(max_workers=cfg.max_concurrent_renders + 1,
                                             thread_name_prefix="lrm4d_render")
        self._virtual_busy = threading.Event()  # a virtual-camera render is on a render thread
        # the rig's reading (seconds for a 6-camera rig on a CPU) on its own thread: advice must not hold back the
        # next reconstruction
        self._rig_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lrm4d_rig")
        self._rig_reading = False  # a reading in flight (rig reader thread; under _lock)
        self._rig_next = None  # the newest views that came while it was: read after it (a stream that stops
        # would otherwise leave its last window unread, told by an older window's reading)
        self.render_srv = self.create_service(RenderView, cfg.render_service, self._on_render_view,
                                              qos_profile=SERVICE_QOS, callback_group=ReentrantCallbackGroup())
        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0, self._status_tick, callback_group=timers, clock=STEADY)
        if cfg.virtual_cameras:
            self.create_timer(1.0 / cfg.virtual_rate_hz, self._virtual_tick, callback_group=timers, clock=STEADY)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        for target, name in ((self._ingest_loop, "lrm4d_ingest"), (self._reconstruct_loop, "lrm4d_reconstruct")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.get_logger().info(
            f"reconstructing {[c.name for c in cfg.cameras]} on {self.reconstructor.device} at up to "
            f"{cfg.reconstruction_rate_hz} Hz; render service {self.resolve_service_name(cfg.render_service)}")

    def destroy_node(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=30.0)
        if getattr(self, "_renderers", None) is not None:  # absent where the constructor failed early
            self._renderers.shutdown(wait=True)
        if getattr(self, "_rig_reader", None) is not None:
            self._rig_reader.shutdown(wait=True, cancel_futures=True)
        if getattr(self, "_viewer", None) is not None:
            self._viewer.close()
            self._viewer = None
        super().destroy_node()

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Apply DYNAMIC parameters at run time (the others are read-only: rclpy refuses them)."""
        try:
            for p in params:
                if p.name in DYNAMIC:
                    check(p.name, p.value)
            new = {**self.cfg.values, **{p.name: p.value for p in params if p.name in DYNAMIC}}
            check_together(new)
            over = [f"{vc.name} ({vc.width}x{vc.height})" for vc in self.cfg.virtual_cameras
                    if vc.width * vc.height > new["max_render_pixels"]]
            if over:  # as at start-up: a virtual camera within the limit
                raise ValueError(f"max_render_pixels {new['max_render_pixels']} is below virtual camera "
                                 f"{', '.join(over)}")
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        for p in params:
            if p.name in DYNAMIC:
                self.cfg.values[p.name] = p.value
                if p.name == "max_input_views":
                    self.window.max_views = int(p.value)
                elif p.name == "selection_policy":
                    self.window.policy = p.value
                self._wake.set()
        return SetParametersResult(successful=True)

    # -- inputs (ingest thread) --------------------------------------------------------------------------
    def _refuse(self, reason: str, text: str, cam: int | None = None, counted: bool = False,
                camera: str = "") -> None:
        """Count a refused input (unless the window already did) and log it, rate-limited per reason and camera
        (`camera`, or camera id `cam`, whose refused images are counted)."""
        now = time.monotonic()
        key = (reason, camera or (self.cfg.cameras[cam].name if cam is not None else ""))
        with self._lock:
            if not counted:
                self._rejections[reason] += 1
                if cam is not None:
                    self._rejected_images[cam] += 1
            self._last_error, self._last_error_at = text, now
            last, suppressed = self._last_logged.get(key, (-1e9, 0))
            log = now - last >= LOG_THROTTLE_S
            self._last_logged[key] = (now, 0) if log else (last, suppressed + 1)
        if log:
            more = f" (+{suppressed} more since the last such warning)" if suppressed else ""
            self.get_logger().warning(f"[{reason}] {text}{more}")

    def _window_refusal(self, camera: str, exc: RejectedInput) -> None:
        """What the window dropped after storing it (an image whose pose never came, a view found ahead of the
        clock or of the other cameras): counted there, logged here. Called under the window's lock."""
        self._refuse(exc.reason, f"{camera}: {exc}", counted=True, camera=camera)

    def _tf_arrived(self) -> None:
        """A TF message was added (executor thread): wake the ingest thread if images or depths wait for TF."""
        if self._ingest is not None and self._ingest.tf_arrived():
            self._inbox.wake()

    def _ingest_loop(self) -> None:
        while not self._stop.is_set():
            for _, cam_id, kind, msg, arrival in self._inbox.take(timeout=0.2):
                try:
                    self._ingest.handle(cam_id, kind, msg, arrival)
                except Exception as exc:  # a bug must not end the ingest thread: report it and go on
                    self._refuse("internal_error", f"{kind}: {type(exc).__name__}: {exc}")
            try:
                self._ingest.poll()
            except Exception as exc:
                self._refuse("internal_error", f"TF: {type(exc).__name__}: {exc}")

    # -- reconstruction (its own thread) -----------------------------------------------------------------
    def _dirty(self) -> None:
        with self._lock:
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
        self._wake.set()

    def _frame_complete(self) -> bool:
        """Every camera with buffered views, and every live camera (one that sent an image in the last LIVE_S
        seconds; in the first LIVE_S seconds after the node's first image, or the first after every camera was
        silent for LIVE_S, every configured camera), has a view
        within gather_s of the newest view (a synchronized frame is in, or an unsynchronized rig has caught up).
        The live cameras count too: at start-up or after a pause longer than the window, the first cameras' views
        of an instant are the only ones buffered, and the frame looked complete without the rest. A depth camera's
        newest view waits for its depth where its depth has been coming (SpaceTimeWindow.awaiting_depth): depth
        published after its colour image had the newest frame, the one a robot acts on, reconstructed without it."""
        newest = self.window.newest_per_camera()
        if not newest:
            return True
        now = time.monotonic()
        first, last = self._ingest.image_times()
        starting = first is not None and now - first <= LIVE_S
        live = {c.name for c, t in zip(self.cfg.cameras, last) if now - t <= LIVE_S or (starting and t == -math.inf)}
        if not live <= newest.keys() or self.window.awaiting_depth():
            return False
        return min(newest.values()) >= max(newest.values()) - int(self.cfg.gather_s * 1e9)

    def _reconstruct_loop(self) -> None:
        last_start = -1e9
        while not self._stop.is_set():
            with self._lock:
                dirty_since = self._dirty_since
            if dirty_since is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            now = time.monotonic()
            wait = max(last_start + 1.0 / self.cfg.reconstruction_rate_hz - now,
                       0.0 if self._frame_complete() else dirty_since + self.cfg.gather_s - now)
            if wait > 0:
                self._wake.wait(wait)  # a new view may complete the frame sooner
                self._wake.clear()
                continue
            with self._lock:
                self._dirty_since = None
            last_start = now
            try:
                self._reconstruct_window()
            except Exception as exc:  # e.g. publishing while the context shuts down: end quietly then
                if self._stop.is_set() or not self.context.ok():
                    return
                self._refuse("internal_error", f"reconstruction loop: {type(exc).__name__}: {exc}")

    def _reconstruct_window(self) -> None:
        views = self.window.snapshot()
        if views is not None and len(views) >= self.cfg.min_views:
            signature = window_signature(views)
            if signature != self._last_signature:
                if self._reconstruct(views):
                    self._last_signature = signature
                else:
                    self._dirty()  # retry the failed window after 1 / reconstruction_rate_hz
        self.status_pub.publish(self._status())

    def _reconstruct(self, views) -> bool:
        """Reconstruct `views` and publish the Gaussians; False (reported, node unharmed) if the model failed."""
        t0 = time.perf_counter()
        try:
            rec = self.reconstructor.reconstruct(views, self.normalization)
        except Exception as exc:  # a model failure must not stop the node; report it and keep serving
            with self._lock:
                self._failures["reconstruction"] += 1
            self._refuse("reconstruction_failed", f"reconstruction failed: {type(exc).__name__}: {exc}",
                         counted=True)
            return False
        elapsed = time.perf_counter() - t0
        n4d, n3d, cloud = len(rec.gaussians), 0, None
        if self.cfg.publish_gaussians:
            # a depth camera's measured pixels at their measurement, and the model's guesses left out (unless
            # asked for): a cloud is for metric use
            sliced = rec.slice(rec.window.end_ns, measured=True, guessed=self.cfg.gaussians_guessed)
            if not (self.cfg.gaussians_guessed or self._told_guessed) and rec.guessed is not None \
                    and bool(rec.guessed.any()):  # said once: an RGB rig's cloud can hold few points, or none
                self._told_guessed = True
                self.get_logger().info(
                    f"~/gaussians leaves out the Gaussians whose depth the model guessed ({int(rec.guessed.sum())} "
                    f"of this window's {len(rec.gaussians)}: a depth camera's pixels that measured nothing, a colour "
                    "camera's that nothing located); gaussians_guessed: true publishes them too")
            g = cloud_gaussians(sliced, views.camtoworlds[:, :3, 3], self.cfg.gaussians_min_opacity,
                                self.cfg.gaussians_max_range)
            cloud = pointcloud2_msg(g, rec.window.end_ns, self.cfg.world_frame, RCLPY)
            n3d = len(g)
        newest = int(torch.argmax(views.stamps_ns))
        key = (int(views.camera_ids[newest]), int(views.stamps_ns[newest]))
        self._store(rec, views, elapsed, (n4d, n3d))
        if cloud is not None:
            self.gaussians_pub.publish(cloud)
        with self._lock:
            arrival = self._ingest.arrival(*key)
            self._latency = (time.monotonic() - arrival) if arrival is not None else float("nan")
        self._read_rig(views)  # (on its own thread, every rig_check_s)
        return True

    def _read_rig(self, views) -> None:
        """Every rig_check_s, the depth cameras' stamps and focal lengths of `views` read against each other's
        (rig_reading.py, at the model's input size) on the rig reader's thread; a camera off the others is logged
        once and named in ~/status until a reading says otherwise (a reading that tells nothing, of a rig that
        stopped, keeps them)."""
        now = time.monotonic()
        if not self.cfg.rig_check_s or views.depths is None or now - self._rig_read_at < self.cfg.rig_check_s:
            return
        self._rig_read_at = now
        views = views.resized(*self.reconstructor.input_size(views.height, views.width))
        with self._lock:
            if self._rig_reading:  # the reading in flight reads these next
                self._rig_next = views
                return
            self._rig_reading = True
        try:
            self._rig_reader.submit(self._read_rig_now, views)
        except RuntimeError:  # shutting down
            with self._lock:
                self._rig_reading = False

    def _read_rig_now(self, views) -> None:
        while views is not None:
            self._read_rig_views(views)
            with self._lock:
                views, self._rig_next = self._rig_next, None
                self._rig_reading = views is not None

    def _read_rig_views(self, views) -> None:
        try:
            offsets, scales = read_rig(views)
        except Exception as exc:  # a reading is advice: it must not cost the node anything
            return self._refuse("internal_error", f"reading the rig: {type(exc).__name__}: {exc}")
        if not offsets and not scales:
            return
        texts = tuple(text for _, text in rig_findings(offsets, scales))
        for text in set(texts) - set(self._rig_findings):
            self.get_logger().warning(text)
        with self._lock:
            self._rig_findings = texts

    def _store(self, rec, views, elapsed: float, counts: tuple[int, int]) -> None:
        """Make `rec` (of `views`) the reconstruction that render_view and the virtual cameras serve."""
        with self._lock:
            self._serial += 1
            self._latest = (rec, views, self._serial)
            if self._viewer is not None:
                self._viewer.update(rec, views)  # returns at once
            self._reconstruction_time = elapsed
            self._n_gaussians = counts

    def _status_tick(self) -> None:
        if self._inbox.idle():  # images waiting for a pose that stopped expire without new input (never while behind)
            self.window.expire()
        self._warn_silent_cameras()
        self.status_pub.publish(self._status())

    def _warn_silent_cameras(self) -> None:
        """A camera that has sent no image SILENT_S after start, or none for SILENT_S while another still sends, is
        named in a warning (every SILENT_REPEAT_S), with its topic and how many publishers it has: a wrong topic
        name or a driver that stopped otherwise shows only as a smaller rig."""
        now = time.monotonic()
        if now - self._started < SILENT_S:
            return
        with self._inbox.cond:
            received, last = list(self._inbox.received_images), list(self._inbox.last_image)
        live = [t for t in last if t is not None and now - t < SILENT_S]
        for i, cam in enumerate(self.cfg.cameras):
            if now - self._silent_warned.get(cam.name, -math.inf) < SILENT_REPEAT_S:
                continue
            suffix = "" if self.cfg.image_transport == "raw" else f"/{self.cfg.image_transport}"
            topic = self.resolve_topic_name(cam.image_topic + suffix)
            if received[i]:
                if live and now - last[i] >= SILENT_S:  # it sent, then stopped while another camera goes on
                    self._silent_warned[cam.name] = now
                    self.get_logger().warning(
                        f"{cam.name}: no image for {now - last[i]:.0f} s on {topic} while other cameras still send "
                        f"({self.count_publishers(topic)} publisher(s)): its driver stopped or its link dropped? The "
                        "window goes on without it")
                continue
            n = self.count_publishers(topic)
            if n and now - self._publisher_seen.setdefault(cam.name, now) < SILENT_S:
                continue  # a publisher just came (a bag started): give its images time to arrive
            self._silent_warned[cam.name] = now
            self.get_logger().warning(
                f"{cam.name}: no image since the node started {now - self._started:.0f} s ago on {topic} ("
                + ("no publisher yet; if one should be there, check the topic name or remap it)" if n == 0 else
                   f"{n} publisher(s), none received: a QoS or message type mismatch?)"))

    def _status(self) -> ReconstructionStatus:
        st = self.window.stats
        msg = ReconstructionStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg.world_frame
        names = [c.name for c in self.cfg.cameras]
        msg.camera_names = names
        with self._lock:
            latest = self._latest
            if latest is not None:
                rec, views, _ = latest
                msg.window_start = time_msg(rec.window.start_ns, RCLPY)
                msg.window_end = time_msg(rec.window.end_ns, RCLPY)
                msg.views_used = len(views)
                msg.input_findings = list(rec.findings) + list(self._rig_findings)
                msg.views_per_camera = torch.bincount(views.camera_ids, minlength=len(names)).tolist()
                has_depth = (views.depths.flatten(1) > 0).any(1) if views.depths is not None else \
                    torch.zeros(len(views), dtype=torch.bool)
                msg.depth_views_per_camera = torch.bincount(views.camera_ids[has_depth],
                                                            minlength=len(names)).tolist()
            else:
                msg.views_per_camera = msg.depth_views_per_camera = [0] * len(names)
            msg.num_gaussians_4d, msg.num_gaussians_published = self._n_gaussians
            msg.reconstruction_time = float(self._reconstruction_time)
            msg.latency = float(self._latency)
            rejected_here = list(self._rejected_images)
            reasons = Counter(st.rejections) + self._rejections
            msg.reconstructions = self._serial
            msg.renders_served = self._renders_served
            msg.renders_refused = self._renders_refused
            msg.reconstructions_failed = self._failures["reconstruction"]
            msg.virtual_renders_failed = self._failures["virtual"]
            msg.last_error = (f"{self._last_error} ({time.monotonic() - self._last_error_at:.0f} s ago)"
                              if self._last_error else st.last_error)
        with self._inbox.cond:
            received, overload = list(self._inbox.received_images), list(self._inbox.dropped_images)
        cams = [st.per_camera[n] for n in names]
        msg.received_per_camera = received
        msg.kept_per_camera = [c.kept for c in cams]
        msg.dropped_per_camera = [c.dropped + o for c, o in zip(cams, overload)]
        msg.rejected_per_camera = [c.rejected + r for c, r in zip(cams, rejected_here)]
        msg.pending_per_camera = [c.pending + h for c, h in zip(cams, self._ingest.pending())]
        msg.views_received, msg.views_kept = sum(received), sum(msg.kept_per_camera)
        msg.views_dropped, msg.views_rejected = sum(msg.dropped_per_camera), sum(msg.rejected_per_camera)
        msg.rejection_reasons = sorted(reasons)
        msg.rejection_counts = [reasons[r] for r in msg.rejection_reasons]
        return msg

    # -- rendering ---------------------------------------------------------------------------------------
    async def _on_render_view(self, request, response):
        """render_view: the render runs on a render thread while the executor goes on taking input; the executor
        is woken when it is done (a done callback on the future it awaits)."""
        if self._closing.is_set():
            return self._refuse_render(response, "the node is shutting down", "shutting_down")
        if not self._render_slots.acquire(blocking=False):
            return self._refuse_render(response, f"busy: {self.cfg.max_concurrent_renders} render request(s) "
                                                 "already in progress (max_concurrent_renders); retry later", "busy")
        with self._lock:
            self._answers_owed += 1
        done = RclFuture(executor=self.executor)
        done.add_done_callback(lambda _: None)  # its completion is then scheduled on the executor, which wakes it

        def render():
            try:
                result = self._render_view(request, response)
            except ValueError as exc:
                result = self._refuse_render(response, str(exc))
            except Exception as exc:  # never let one request take the node down
                result = self._refuse_render(response, f"render failed: {type(exc).__name__}: {exc}", "failed")
            finally:
                self._render_slots.release()
            done.set_result(result)

        self._renderers.submit(render)
        try:
            return await done
        finally:  # (the executor sends the response in the same step, before finish_renders looks again)
            with self._lock:
                self._answers_owed -= 1

    def finish_renders(self, executor, timeout_s: float = RENDER_DRAIN_S) -> None:
        """At shutdown, before the executor stops: refuse new render requests and spin until those being rendered
        are answered (at most timeout_s), so that no caller waits for a reply that would never come."""
        self._closing.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            owed = self._answers_owed
        while owed and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            with self._lock:
                owed = self._answers_owed
        if owed:  # (a render bounded by max_render_pixels takes seconds at most on a CPU)
            self.get_logger().error(f"shutting down with {owed} render_view request(s) still rendering after "
                                    f"{timeout_s:g} s: their callers get no answer")
        # a response just sent is lost if the node's participant goes at once (1 of 3 tries here): the middleware
        # gets a moment to deliver it, and a request arriving meanwhile is refused rather than left unanswered
        end = time.monotonic() + ANSWER_GRACE_S
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)

    def _refuse_render(self, response, reason: str, kind: str = "request"):
        """Answer a refused render_view request; logged rate-limited per kind (busy, shutting_down, failed, request:
        what was asked), so that a burst of one kind does not hide another."""
        with self._lock:
            self._renders_refused += 1
        self._refuse("render_refused", f"render_view refused: {reason}", counted=True, camera=kind)
        response.success, response.message = False, reason
        return response

    def _render_view(self, req, resp):
        with self._lock:
            latest = self._latest
        if latest is None:
            raise ValueError(f"no reconstruction yet ({sum(c.buffered for c in self.window.stats.per_camera.values())}"
                             f" views buffered, min_views {self.cfg.min_views})")
        answer_render_view(latest[0], req, resp, self.cfg.max_render_pixels, self.cfg.render_frame_id)
        with self._lock:
            self._renders_served += 1
        return resp

    def _publish_static_tf(self) -> None:
        """world -> <virtual>_optical_frame on /tf_static, so the virtual cameras' images resolve in RViz."""
        if not self.cfg.virtual_cameras:
            return
        if RCLPY.TFMessage is None:
            self.get_logger().info("tf2_msgs is not installed (scripts/build_ros.sh builds it): the virtual "
                                   "cameras' frames are not on /tf_static")
            return
        now = self.get_clock().now().nanoseconds
        self.tf_static_pub = self.create_publisher(RCLPY.TFMessage, "/tf_static", LATCHED_QOS)
        self.tf_static_pub.publish(RCLPY.TFMessage(transforms=[
            transform_msg(v.camtoworld, now, self.cfg.world_frame, f"{v.name}_optical_frame", RCLPY)
            for v in self.cfg.virtual_cameras]))

    def _virtual_tick(self) -> None:
        """Timer: render the virtual cameras of a new reconstruction on a render thread (one at a time)."""
        if self._virtual_busy.is_set() or self._latest is None:
            return
        self._virtual_busy.set()

        def render():
            try:
                self._render_virtual()
            finally:
                self._virtual_busy.clear()

        self._renderers.submit(render)

    def _render_virtual(self) -> None:
        with self._lock:
            latest = self._latest
        if latest is None:
            return
        rec, _, serial = latest
        for vc in self.cfg.virtual_cameras:
            cached = self._virtual_cache.get(vc.name)
            if cached is None or cached[0] != serial:  # re-render only for a new reconstruction
                try:
                    msgs = virtual_camera_messages(rec, vc, self.cfg.max_render_pixels)
                except Exception as exc:  # keep the other cameras going; this one is tried again next reconstruction
                    with self._lock:  # once per reconstruction: the failure is kept until the next one
                        self._failures["virtual"] += 1
                    self._refuse("virtual_camera_failed", f"virtual camera {vc.name}: {type(exc).__name__}: {exc}",
                                 counted=True, camera=vc.name)
                    self._virtual_cache[vc.name] = (serial, None)
                    continue
                self._virtual_cache[vc.name] = (serial, msgs)
                # published once per reconstruction, latched (transient local) for late subscribers: republishing
                # the same frame at the timer's rate filled bags and Foxglove with duplicates of one stamp
                for pub, msg in zip(self.virtual_pubs[vc.name], msgs):
                    pub.publish(msg)


def cloud_gaussians(g, camera_centers: torch.Tensor, min_opacity: float, max_range: float):
    """The sliced Gaussians (world, metres) that ~/gaussians publishes: opacity >= min_opacity and, where max_range
    > 0, within max_range metres of some input camera (camera_centers (C,3))."""
    keep = g.opacities >= min_opacity if min_opacity > 0 else None
    if max_range > 0 and len(g):
        near = torch.cdist(g.means.double(), camera_centers.to(g.means.device).double()).amin(1) <= max_range
        keep = near if keep is None else keep & near
    return g if keep is None else g.select(keep)


def window_signature(views) -> tuple:
    """What identifies a window's views (stamps, cameras, which have depth): reconstruct only when it changes."""
    has_depth = () if views.depths is None else tuple((views.depths.flatten(1) > 0).any(1).tolist())
    return tuple(views.stamps_ns.tolist()), tuple(views.camera_ids.tolist()), has_depth


class StopOnSignal:
    """SIGINT/SIGTERM ask the spin loop to stop instead of raising KeyboardInterrupt wherever the main thread is.

    An exception raised inside rclpy's own constructors (the executor's SIGINT guard condition, a half-built
    node) leaves half-made native objects whose finalizers can crash the process on exit (seen in CI: a
    segfault in SignalHandlerGuardCondition.__del__). A second signal raises KeyboardInterrupt, for a stuck
    start-up; once the node is shutting down (`shutting_down`), it ends the process at once (exit 128 + signal)
    instead: raised there, it would cut the shutdown short while a reconstruction thread is still inside torch,
    and the interpreter's exit then aborts (seen: SIGINT twice, or SIGINT then ros2 launch's SIGTERM, rc 134)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.shutting_down = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested.is_set():
            if self.shutting_down:
                print(f"[{NODE_NAME}] {signal.Signals(signum).name} again while shutting down: exiting now",
                      file=sys.stderr, flush=True)
                os._exit(128 + signum)
            raise KeyboardInterrupt
        self.requested.set()


def log_warnings(logger) -> None:
    """Send Python warnings (the library's: a floor_z the depth contradicts, a rasterizer fallback) to the node's
    log instead of bare stderr lines, process-wide: for main(), which owns its process."""
    warnings.showwarning = lambda message, category, *_, **__: logger.warning(f"{category.__name__}: {message}")


def make_executor(context=None) -> SingleThreadedExecutor:
    """The node's executor. Single-threaded: every callback only queues its message (renders have their own
    threads), and rclpy's MultiThreadedExecutor takes messages far more slowly: with it, a robot bag of three 28 Hz
    cameras, /tf and /clock played into the node reached it with 29 of each camera's 48 images (the rest lost in the
    subscriptions' queues), against all 48 with this one."""
    return SingleThreadedExecutor(context=context)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ros2 run lrm4d_ros reconstruct_node` and `python -m lrm4d_ros.ros.reconstruct_node`."""
    # a crash in native code (DDS, torch, numba) prints every thread's Python stack to stderr instead of nothing
    faulthandler.enable()
    stop = StopOnSignal()
    rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = None
    try:
        try:
            node = ReconstructNode()
        except (ValueError, RuntimeError, FileNotFoundError, rclpy.exceptions.NameValidationException) as exc:
            print(f"[{NODE_NAME}] cannot start: {exc}", file=sys.stderr)
            return 1
        log_warnings(node.get_logger())
        executor = make_executor()
        executor.add_node(node)
        while rclpy.ok() and not stop.requested.is_set():  # a signal is seen within one timeout
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        stop.shutting_down = True  # (until the process exits: atexit handlers run after main returns)
        if executor is not None and node is not None:
            try:
                node.finish_renders(executor)
            except Exception as exc:  # an executor a signal cut mid-step: shut down all the same
                print(f"[{NODE_NAME}] render requests not answered at shutdown: {exc}", file=sys.stderr)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
