"""The lrm4d reconstruct node: posed camera streams in, 4D Gaussians, rendered views and a render service out.

    python -m lrm4d_ros.ros.reconstruct_node --ros-args --params-file config/reconstruct.yaml
    ros2 run lrm4d_ros reconstruct_node --ros-args --params-file ...          (after colcon build)

Inputs per camera (config/reconstruct.yaml): Image, CameraInfo and PoseStamped (or TF) topics. Each image is
paired with its camera's latest CameraInfo and the camera pose interpolated at the image stamp, then buffered
in a SpaceTimeWindow. A timer in its own callback group reconstructs the window at `reconstruction_rate_hz`
(so subscriptions and the service never wait on the model) and publishes ~/gaussians (PointCloud2, sliced at
the window's newest stamp), ~/status, and the virtual cameras' ~/<name>/image, depth and camera_info. The
`render_view` service renders the latest reconstruction from any camera at any time in its window.
Bad input is rejected with a reason (logged, throttled, counted in ~/status) and never stops the node.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict

import numpy as np
import rclpy
import torch
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time as RosTime
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..cameras import SceneNormalization
from ..reconstructor import Reconstructor
from ..window import RejectedInput, SpaceTimeWindow, pose_matrix
from .conversions import (K_to_camera_info, camera_info_to_K, gaussians_to_pointcloud2, image_to_rgb8,
                          ns_to_stamp, numpy_to_image, pose_to_matrix, stamp_to_ns)
from .interfaces import ReconstructionStatus, RenderView
from .params import NodeConfig, declare_and_load

try:  # TF poses where the user's ROS install has tf2_ros (it is not on PyPI)
    import tf2_ros
except ImportError:  # pragma: no cover - depends on the environment
    tf2_ros = None

NODE_NAME = "lrm4d_reconstruct"
LOG_THROTTLE_S = 2.0
ARRIVALS_KEPT = 4096
# A burst of requests larger than the DDS history is silently dropped by the middleware; keep room for bursts.
SERVICE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=64, reliability=ReliabilityPolicy.RELIABLE)


class ReconstructNode(Node):
    """See the module docstring. `reconstructor` overrides the one built from the checkpoint/device params."""

    def __init__(self, reconstructor: Reconstructor | None = None, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self._setup(reconstructor)
        except Exception:
            self.destroy_node()  # leave no half-built node in the graph
            raise

    def _setup(self, reconstructor: Reconstructor | None) -> None:
        self.cfg: NodeConfig = declare_and_load(self)
        cfg = self.cfg
        self.window = SpaceTimeWindow(
            [c.name for c in cfg.cameras],
            window_s=cfg.window_seconds if cfg.window_seconds > 0 else None,
            window_frames=cfg.window_frames if cfg.window_frames > 0 else None,
            max_views=cfg.max_input_views, policy=cfg.selection_policy, buffer_size=cfg.buffer_size,
            image_size=(cfg.image_height, cfg.image_width) if cfg.image_height > 0 else None,
            pose_tolerance_s=cfg.pose_tolerance_s, pose_max_gap_s=cfg.pose_max_gap_s)
        self.normalization = (None if cfg.normalization == "auto" else
                              SceneNormalization(torch.tensor(cfg.normalization_center, dtype=torch.float64),
                                                 cfg.normalization_scale))
        self.reconstructor = reconstructor or Reconstructor.from_checkpoint(cfg.checkpoint or None,
                                                                            cfg.device or None)
        self._viewer = None
        if cfg.viewer_port > 0:  # the browser 4D viewer (lrm4d_ros/viewer): slices and sends on its own thread
            from ..viewer.server import Viewer

            self._viewer = Viewer(port=cfg.viewer_port, host="0.0.0.0", label=NODE_NAME)

        self._lock = threading.Lock()  # guards the fields below; the window has its own lock
        self._infos: dict[str, tuple[np.ndarray, int, int]] = {}
        self._arrivals: OrderedDict[tuple[int, int], float] = OrderedDict()  # (camera id, stamp) -> monotonic s
        self._rejected = 0  # rejected by the node itself (the window counts its own)
        self._last_error = ""
        self._latest = None  # (Reconstruction, ViewSet, serial)
        self._serial = 0
        self._last_signature = None
        self._reconstruction_time = 0.0
        self._latency = 0.0
        self._n_gaussians = (0, 0)
        self._renders_served = 0
        self._renders_refused = 0
        self._render_slots = threading.BoundedSemaphore(cfg.max_concurrent_renders)
        self._virtual_cache: dict[str, tuple[int, tuple]] = {}

        self._tf_buffer = None
        if cfg.pose_source == "tf":
            if tf2_ros is None:
                raise RuntimeError("pose_source 'tf' needs tf2_ros, which is not installed here; "
                                   "use pose_source 'topic' (PoseStamped per camera)")
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)

        # sensor_data = best effort, volatile (as qos_profile_sensor_data): also matches reliable publishers.
        reliability = (ReliabilityPolicy.BEST_EFFORT if cfg.input_qos == "sensor_data"
                       else ReliabilityPolicy.RELIABLE)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.input_queue_depth, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        for cam_id, cam in enumerate(cfg.cameras):
            # One exclusive group per camera keeps each topic's messages in order (a reentrant group may run
            # two callbacks of one subscription at once); cameras still run in parallel with each other and
            # with the timers and the service.
            inputs = MutuallyExclusiveCallbackGroup()
            self.create_subscription(Image, cam.image_topic, lambda m, c=cam, i=cam_id: self._on_image(c, i, m),
                                     qos, callback_group=inputs)
            self.create_subscription(CameraInfo, cam.info_topic, lambda m, c=cam: self._on_info(c, m), qos,
                                     callback_group=inputs)
            if cfg.pose_source == "topic":
                self.create_subscription(PoseStamped, cam.pose_topic, lambda m, c=cam: self._on_pose(c, m), qos,
                                         callback_group=inputs)

        self.gaussians_pub = self.create_publisher(PointCloud2, "~/gaussians", 1)
        self.status_pub = self.create_publisher(ReconstructionStatus, "~/status", 10)
        self.virtual_pubs = {
            v.name: (self.create_publisher(Image, f"~/{v.name}/image", 1),
                     self.create_publisher(Image, f"~/{v.name}/depth", 1),
                     self.create_publisher(CameraInfo, f"~/{v.name}/camera_info", 1))
            for v in cfg.virtual_cameras}
        # Reentrant: requests beyond max_concurrent_renders are answered "busy" at once instead of queueing.
        self.render_srv = self.create_service(RenderView, cfg.render_service, self._on_render_view,
                                              qos_profile=SERVICE_QOS, callback_group=ReentrantCallbackGroup())
        # The model runs in this timer's own group: one reconstruction at a time, off the input threads.
        self.create_timer(1.0 / cfg.reconstruction_rate_hz, self._reconstruct_tick,
                          callback_group=MutuallyExclusiveCallbackGroup())
        if cfg.virtual_cameras:
            self.create_timer(1.0 / cfg.virtual_rate_hz, self._render_virtual,
                              callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"reconstructing {[c.name for c in cfg.cameras]} on {self.reconstructor.device} at "
            f"{cfg.reconstruction_rate_hz} Hz; render service {self.resolve_service_name(cfg.render_service)}")

    def destroy_node(self) -> None:
        if getattr(self, "_viewer", None) is not None:
            self._viewer.close()
            self._viewer = None
        super().destroy_node()

    # -- inputs ------------------------------------------------------------------------------------------
    def _reject(self, reason: str, counted: bool = False) -> None:
        """Log a rejected input (throttled) and count it; `counted`: the window already counted it."""
        with self._lock:
            if not counted:
                self._rejected += 1
        self._error(reason)

    def _error(self, reason: str) -> None:
        """Report a failure in ~/status (last_error) and the log, throttled."""
        with self._lock:
            self._last_error = reason
        self.get_logger().warning(reason, throttle_duration_sec=LOG_THROTTLE_S)

    def _on_info(self, cam, msg: CameraInfo) -> None:
        try:
            info = camera_info_to_K(msg)
        except ValueError as exc:
            self._reject(f"{cam.name} camera_info: {exc}")
            return
        with self._lock:
            self._infos[cam.name] = info

    def _on_pose(self, cam, msg: PoseStamped) -> None:
        try:
            if msg.header.frame_id and msg.header.frame_id != self.cfg.world_frame:
                raise ValueError(f"pose frame {msg.header.frame_id!r} is not world_frame {self.cfg.world_frame!r}")
            T = pose_to_matrix(msg.pose)
        except ValueError as exc:
            self._reject(f"{cam.name} pose: {exc}")
            return
        try:
            self.window.add_pose(cam.name, stamp_to_ns(msg.header.stamp), T)
        except RejectedInput as exc:
            self._reject(f"pose: {exc}", counted=True)

    def _on_image(self, cam, cam_id: int, msg: Image) -> None:
        arrival = time.monotonic()
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            with self._lock:
                info = self._infos.get(cam.name)
            if info is None:
                raise ValueError(f"no camera_info received yet on {cam.info_topic}")
            K, w, h = info
            if (msg.width, msg.height) != (w, h):
                raise ValueError(f"image is {msg.width}x{msg.height} but camera_info says {w}x{h}")
            rgb = image_to_rgb8(msg)
            T = self._tf_pose(cam, msg, stamp) if self._tf_buffer is not None else None
        except ValueError as exc:
            self._reject(f"{cam.name} image: {exc}")
            return
        try:
            self.window.add_view(cam.name, rgb, K, stamp, camtoworld=T)
        except RejectedInput as exc:
            self._reject(f"image: {exc}", counted=True)
            return
        with self._lock:
            self._arrivals[(cam_id, stamp)] = arrival
            while len(self._arrivals) > ARRIVALS_KEPT:
                self._arrivals.popitem(last=False)

    def _tf_pose(self, cam, msg: Image, stamp: int) -> np.ndarray:
        frame = cam.frame_id or msg.header.frame_id
        if not frame:
            raise ValueError("pose_source is tf but the image has no header.frame_id and no frame_id parameter")
        try:
            tf = self._tf_buffer.lookup_transform(self.cfg.world_frame, frame, RosTime(nanoseconds=stamp))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException) as exc:
            raise ValueError(f"no TF {self.cfg.world_frame} <- {frame} at {stamp} ns: {exc}") from None
        t, q = tf.transform.translation, tf.transform.rotation
        return pose_matrix((t.x, t.y, t.z), (q.w, q.x, q.y, q.z))

    # -- reconstruction ----------------------------------------------------------------------------------
    def _reconstruct_tick(self) -> None:
        views = self.window.snapshot()
        if views is not None and len(views) >= self.cfg.min_views:
            signature = window_signature(views)
            if signature != self._last_signature and self._reconstruct(views):
                self._last_signature = signature  # a failed window is retried on the next tick
        self.status_pub.publish(self._status())

    def _reconstruct(self, views) -> bool:
        """Reconstruct `views` and publish the Gaussians; False (reported, node unharmed) if the model failed."""
        t0 = time.perf_counter()
        try:
            rec = self.reconstructor.reconstruct(views, self.normalization)
        except Exception as exc:  # a model failure must not stop the node; report it and keep serving
            self._error(f"reconstruction failed: {type(exc).__name__}: {exc}")
            return False
        elapsed = time.perf_counter() - t0
        n4d, n3d = len(rec.gaussians), 0
        if self.cfg.publish_gaussians:
            g = rec.slice(rec.window.end_ns)
            if self.cfg.gaussians_min_opacity > 0:
                g = g.select(g.opacities >= self.cfg.gaussians_min_opacity)
            cloud = gaussians_to_pointcloud2(g, ns_to_stamp(rec.window.end_ns), self.cfg.world_frame)
            n3d = len(g)
        newest = int(torch.argmax(views.stamps_ns))
        key = (int(views.camera_ids[newest]), int(views.stamps_ns[newest]))
        with self._lock:
            self._serial += 1
            self._latest = (rec, views, self._serial)
            if self._viewer is not None:
                self._viewer.update(rec, views)  # returns at once
            self._reconstruction_time = elapsed
            self._n_gaussians = (n4d, n3d)
            arrival = self._arrivals.get(key)
        if self.cfg.publish_gaussians:
            self.gaussians_pub.publish(cloud)
        with self._lock:
            self._latency = (time.monotonic() - arrival) if arrival is not None else float("nan")
        return True

    def _status(self) -> ReconstructionStatus:
        st = self.window.stats
        msg = ReconstructionStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg.world_frame
        with self._lock:
            latest = self._latest
            msg.camera_names = [c.name for c in self.cfg.cameras]
            if latest is not None:
                rec, views, _ = latest
                msg.window_start = ns_to_stamp(rec.window.start_ns)
                msg.window_end = ns_to_stamp(rec.window.end_ns)
                msg.views_used = len(views)
                counts = torch.bincount(views.camera_ids, minlength=len(msg.camera_names))
                msg.views_per_camera = [int(c) for c in counts]
            else:
                msg.views_per_camera = [0] * len(msg.camera_names)
            msg.num_gaussians_4d, msg.num_gaussians_published = self._n_gaussians
            msg.reconstruction_time = float(self._reconstruction_time)
            msg.latency = float(self._latency)
            msg.views_received = st.received
            msg.views_dropped = st.dropped
            msg.views_rejected = st.rejected + self._rejected
            msg.reconstructions = self._serial
            msg.renders_served = self._renders_served
            msg.renders_refused = self._renders_refused
            msg.last_error = self._last_error or st.last_error
        return msg

    # -- rendering ---------------------------------------------------------------------------------------
    def _on_render_view(self, request, response):
        if not self._render_slots.acquire(blocking=False):
            return self._refuse(response, f"busy: {self.cfg.max_concurrent_renders} render request(s) already "
                                          "in progress (max_concurrent_renders); retry later")
        try:
            return self._render_view(request, response)
        except ValueError as exc:
            return self._refuse(response, str(exc))
        except Exception as exc:  # never let one request take the node down
            return self._refuse(response, f"render failed: {type(exc).__name__}: {exc}")
        finally:
            self._render_slots.release()

    def _refuse(self, response, reason: str):
        with self._lock:
            self._renders_refused += 1
        self.get_logger().warning(f"render_view refused: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
        response.success, response.message = False, reason
        return response

    def _render_view(self, req, resp):
        with self._lock:
            latest = self._latest
        if latest is None:
            raise ValueError(f"no reconstruction yet ({len(self.window.snapshot() or [])} views buffered, "
                             f"min_views {self.cfg.min_views})")
        rec = latest[0]
        T = pose_to_matrix(req.camera_pose)
        if req.camera_info.width > 0:
            K, w, h = camera_info_to_K(req.camera_info)
        else:
            w, h = int(req.width), int(req.height)
            K = np.array([[req.fx, 0, req.cx], [0, req.fy, req.cy], [0, 0, 1.0]])
            if w < 1 or h < 1 or not np.isfinite(K).all() or req.fx <= 0 or req.fy <= 0:
                raise ValueError(f"intrinsics need width, height >= 1 and finite fx, fy > 0 "
                                 f"(got {w}x{h}, fx {req.fx}, fy {req.fy}, cx {req.cx}, cy {req.cy})")
        if w * h > self.cfg.max_render_pixels:
            raise ValueError(f"{w}x{h} exceeds max_render_pixels {self.cfg.max_render_pixels}")
        stamp = stamp_to_ns(req.stamp) or rec.window.end_ns
        out = rec.render(torch.as_tensor(T)[None], torch.as_tensor(K)[None], w, h,
                         torch.tensor([stamp], dtype=torch.int64))
        header_stamp = ns_to_stamp(stamp)
        want_color = req.return_color or not (req.return_depth or req.return_alpha)
        if want_color:
            resp.color = numpy_to_image(out.colors[0].cpu().numpy(), "rgb8", header_stamp)
        if req.return_depth:
            resp.depth = numpy_to_image(out.depths[0, ..., 0].cpu().numpy().astype(np.float32), "32FC1",
                                        header_stamp)
        if req.return_alpha:
            resp.alpha = numpy_to_image(out.alphas[0, ..., 0].cpu().numpy().astype(np.float32), "32FC1",
                                        header_stamp)
        resp.success, resp.message, resp.stamp_rendered = True, "", header_stamp
        with self._lock:
            self._renders_served += 1
        return resp

    def _render_virtual(self) -> None:
        with self._lock:
            latest = self._latest
        if latest is None:
            return
        rec, _, serial = latest
        for vc in self.cfg.virtual_cameras:
            cached = self._virtual_cache.get(vc.name)
            if cached is None or cached[0] != serial:  # re-render only for a new reconstruction
                stamp = rec.window.end_ns + int(round(vc.time_offset_s * 1e9))
                try:
                    out = rec.render(torch.as_tensor(vc.camtoworld)[None], torch.as_tensor(vc.K)[None],
                                     vc.width, vc.height, torch.tensor([stamp], dtype=torch.int64))
                except Exception as exc:  # e.g. the offset leaves the window; keep the other cameras going
                    self._error(f"virtual camera {vc.name}: {type(exc).__name__}: {exc}")
                    continue
                s, frame = ns_to_stamp(stamp), f"{vc.name}_optical_frame"
                msgs = (numpy_to_image(out.colors[0].cpu().numpy(), "rgb8", s, frame),
                        numpy_to_image(out.depths[0, ..., 0].cpu().numpy().astype(np.float32), "32FC1", s, frame),
                        K_to_camera_info(vc.K, vc.width, vc.height, s, frame))
                cached = (serial, msgs)
                self._virtual_cache[vc.name] = cached
            for pub, msg in zip(self.virtual_pubs[vc.name], cached[1]):
                pub.publish(msg)


def window_signature(views) -> tuple:
    """What identifies a window's views (stamps and cameras): a tick reconstructs only when it changes."""
    return tuple(views.stamps_ns.tolist()), tuple(views.camera_ids.tolist())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ros2 run lrm4d_ros reconstruct_node` and `python -m lrm4d_ros.ros.reconstruct_node`."""
    rclpy.init(args=sys.argv if argv is None else argv)
    node = executor = None
    try:  # Ctrl-C may arrive at any point, also before spinning starts
        try:
            node = ReconstructNode()
        except (ValueError, RuntimeError, FileNotFoundError) as exc:
            print(f"[{NODE_NAME}] cannot start: {exc}", file=sys.stderr)
            return 1
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
