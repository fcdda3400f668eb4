"""The reconstruct node and a client node in one process, on an isolated rclpy context and DDS domain with
loopback-only discovery, spun on one thread by the executor main() runs the node with (make_executor). The node
runs on sim time driven by the client's /clock (the views' own stamps), as with `ros2 bag play --clock`. Used by the
ROS tests."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import rclpy
import torch
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from ..io.messages import image_rgb, pose_msg, time_msg
from .conversions import RCLPY
from .interfaces import ReconstructionStatus, RenderView
from .reconstruct_node import NODE_NAME, SERVICE_QOS, ReconstructNode, make_executor, window_signature
from .replay import ViewSetPublisher


def wait_for(predicate, timeout: float, what: str):
    """Poll `predicate` every 20 ms until it returns a truthy value (returned) or `timeout` s pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_future(future, timeout: float, what: str):
    """The result of an rclpy Future, woken by its completion rather than polled (round trips are timed with
    this); AssertionError after `timeout` s."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not (future.done() or done.wait(timeout)):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
    return future.result()


class InProcessSession:
    """The node under test plus a client that publishes views (and /clock), records ~/status and ~/gaussians,
    and calls render_view. `params`: node parameter overrides {name: value}; compression: the client publishes
    compressed images and depth (ViewSetPublisher), for a node with image_transport "compressed"."""

    def __init__(self, domain_id: int, views, params: dict, topic_depth: int = 50, compression: str | None = None):
        # Discovery stays on this machine (read when the context initialises).
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        overrides = [Parameter(k, value=v) for k, v in {"use_sim_time": True, **params}.items()]
        self.node = ReconstructNode(context=self.context, parameter_overrides=overrides)
        self.client = rclpy.create_node("lrm4d_client", context=self.context)
        self.publisher = ViewSetPublisher(self.client, views, qos_depth=topic_depth, clock=True,
                                          depth=any(k.endswith(".depth_topic") and v for k, v in params.items()),
                                          compression=compression)
        self.statuses: list = []
        self.clouds: list = []
        self.cloud_times: list[float] = []
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.client.create_subscription(ReconstructionStatus, f"/{NODE_NAME}/status", self.statuses.append,
                                        reliable)
        self.client.create_subscription(PointCloud2, f"/{NODE_NAME}/gaussians", self._on_cloud, reliable)
        self.render = self.client.create_client(RenderView, params.get("render_service", f"/{NODE_NAME}/render_view"),
                                                qos_profile=SERVICE_QOS)
        self.executor = make_executor(self.context)  # as main() runs the node
        self.executor.add_node(self.node)
        self.executor.add_node(self.client)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        try:
            assert self.render.wait_for_service(timeout_sec=20.0), "render_view service never appeared"
            for info, pose, image in self.publisher.pubs.values():
                # with pose_source "tf" the node does not subscribe to the pose topics
                for pub in (info, image) if self.node.cfg.pose_source == "tf" else (info, pose, image):
                    wait_for(lambda p=pub: p.get_subscription_count() > 0, 20.0, f"a subscriber on {pub.topic_name}")
            first = int(views.stamps_ns.min())

            def clock_running():
                self.publisher.publish_clock(first)
                return self.node.get_clock().now().nanoseconds > 0

            wait_for(clock_running, 20.0, "the node's sim time to start from /clock")
        except BaseException:
            self.close()
            raise

    def _spin(self) -> None:
        # Our own loop (not executor.spin) so close() can stop it before shutting the executor's thread pool.
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_cloud(self, msg) -> None:
        self.cloud_times.append(time.monotonic())
        self.clouds.append(msg)

    def status(self):
        return self.statuses[-1] if self.statuses else None

    def wait_status(self, predicate, timeout: float = 20.0, what: str = "a status"):
        try:
            return wait_for(lambda: (s := self.status()) is not None and predicate(s) and s, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {self.status()}") from None

    def wait_settled(self, timeout: float = 20.0) -> None:
        """Wait until the node's latest reconstruction is of the views its window holds now. A status can come
        from a tick that ran before the last view arrived; after this, `node._latest` stays put until new input
        arrives."""
        def settled():
            views = self.node.window.snapshot()
            return views is not None and self.node._last_signature == window_signature(views)

        wait_for(settled, timeout, "a reconstruction of every view in the node's window")

    def publish_camera_infos(self, timeout: float = 20.0) -> None:
        """Send each camera's CameraInfo (of its first view) until the node holds them all, so that no image
        is rejected for arriving before its camera's first CameraInfo."""
        v = self.publisher.views
        first = {int(c): i for i, c in reversed(list(enumerate(v.camera_ids.tolist())))}

        def sent_and_held():
            for i in first.values():
                self.publisher.pubs[v.camera_names[int(v.camera_ids[i])]][0].publish(self.publisher.messages(i)[0])
            return all(self.node._ingest.info(v.camera_names[c]) is not None for c in first)

        end = time.monotonic() + timeout
        while not sent_and_held():
            if time.monotonic() > end:
                raise AssertionError("the node never received every camera's CameraInfo")
            time.sleep(0.1)

    def call(self, request, timeout: float = 30.0):
        return wait_future(self.render.call_async(request), timeout, "the render_view response")

    def render_views(self, targets) -> torch.Tensor:
        """Each view of `targets` (a ViewSet: pose, intrinsics, size, stamp) rendered by render_view -> (N,H,W,3)
        float32 colours in [0,1] (the response's rgb8)."""
        preds = []
        for i in range(len(targets)):
            K = targets.Ks[i].numpy()
            req = RenderView.Request()
            req.camera_pose = pose_msg(targets.camtoworlds[i].numpy(), 0, self.node.cfg.world_frame, RCLPY).pose
            req.fx, req.fy, req.cx, req.cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
            req.width, req.height = targets.width, targets.height
            req.stamp = time_msg(int(targets.stamps_ns[i]), RCLPY)
            req.return_color = True
            resp = self.call(req)
            assert resp.success, resp.message
            preds.append(torch.from_numpy(image_rgb(resp.color).astype(np.float32) / 255.0))
        return torch.stack(preds)

    def close(self) -> None:
        # Stop spinning before destroying nodes, so no callback runs on a destroyed entity.
        self._stop.set()
        self.thread.join(timeout=10.0)
        self.executor.shutdown(timeout_sec=10.0)
        self.node.destroy_node()
        self.client.destroy_node()
        rclpy.try_shutdown(context=self.context)
