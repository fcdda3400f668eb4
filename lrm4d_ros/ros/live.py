"""The reconstruct node as its own process, and an rclpy client in this process that streams a ViewSet to it
in real time (stamps = the wall clock at publication, the node's default ROS time), records ~/status and
~/gaussians with arrival times, and calls render_view. Used by the black-box test and benchmarks/bench_node.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2

from ..io.messages import time_ns
from .inprocess import wait_for, wait_future
from .interfaces import ReconstructionStatus, RenderView
from .reconstruct_node import NODE_NAME, SERVICE_QOS
from .replay import ViewSetPublisher


def start_node(params: dict, domain_id: int, workdir: Path, log_name: str = "node.log") -> subprocess.Popen:
    """`python -m lrm4d_ros.ros.reconstruct_node` with `params` (written to workdir/params.yaml) on its own DDS
    domain, loopback discovery; stdout and stderr go to workdir/log_name."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump({NODE_NAME: {"ros__parameters": params}}))
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PYTHONUNBUFFERED": "1"}
    with open(workdir / log_name, "w") as log:  # the child keeps its own copy of the file descriptor
        return subprocess.Popen([sys.executable, "-m", "lrm4d_ros.ros.reconstruct_node", "--ros-args",
                                 "--params-file", str(workdir / "params.yaml")], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=os.getcwd(),
                                # stop_node's SIGINT must reach it also when this process runs as a background
                                # job of a non-interactive shell, which starts with SIGINT ignored
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


class StreamClient:
    """A client node on `domain_id` publishing `views` (contract topics) and recording the node's outputs."""

    def __init__(self, domain_id: int, views, render_service: str = "/render_view"):
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("lrm4d_stream_client", context=self.context)
        self.publisher = ViewSetPublisher(self.node, views, qos_depth=50)
        self.statuses: list = []
        self.clouds: list[tuple[float, int, int]] = []  # (arrival monotonic s, stamp ns, points)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(ReconstructionStatus, f"/{NODE_NAME}/status", self.statuses.append, reliable)
        self.node.create_subscription(PointCloud2, f"/{NODE_NAME}/gaussians", self._on_cloud, reliable)
        self.render = self.node.create_client(RenderView, render_service, qos_profile=SERVICE_QOS)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_cloud(self, msg) -> None:
        self.clouds.append((time.monotonic(), time_ns(msg.header.stamp), msg.width * msg.height))

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the node subscribes to every camera topic and serves render_view."""
        assert self.render.wait_for_service(timeout_sec=timeout), "render_view never appeared"
        for pubs in self.publisher.pubs.values():
            for pub in pubs:
                wait_for(lambda p=pub: p.get_subscription_count() > 0, timeout, f"a subscriber on {pub.topic_name}")

    def status(self):
        return self.statuses[-1] if self.statuses else None

    def wait_status(self, predicate, timeout: float, what: str):
        try:
            return wait_for(lambda: (s := self.status()) is not None and predicate(s) and s, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status: {self.status()}") from None

    def publish_frame(self, indices, stamp_ns: int | None = None) -> int:
        """Publish views `indices` (one frame of a synchronized rig) at `stamp_ns` (default: now); returns it."""
        stamp = time.time_ns() if stamp_ns is None else stamp_ns
        for i in indices:
            self.publisher.publish(int(i), stamp)
        return stamp

    def call(self, request, timeout: float = 30.0):
        return wait_future(self.render.call_async(request), timeout, "the render_view response")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10.0)
        self.executor.shutdown(timeout_sec=10.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def stop_node(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    """SIGINT, then wait; kills it if it does not exit. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9
    return proc.returncode
