"""`lrm4d play`: a bag's messages reach subscribers as recorded (bytes, order, topics), paced by its timestamps,
with /clock at each message's bag time; bad requests are one line. Real rclpy on its own DDS domain."""
import os
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from lrm4d_ros.cli import main
from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.io.bag import write_bag
from lrm4d_ros.io.messages import time_ns
from lrm4d_ros.ros.play import play_bag

DOMAIN_ID = 80


def test_play_publishes_the_bag_as_recorded(tmp_path):
    views = generate(2, SceneConfig(frames=3, cameras=2, height=16, width=24, num_primitives=(2, 2)))
    bag = write_bag(views, tmp_path / "bag")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    sub_node = rclpy.create_node("listener", context=context)
    pub_node = rclpy.create_node("player", context=context)
    got: list = []
    clocks: list = []
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)  # as the node's sensor_data QoS
    for name in views.camera_names:
        sub_node.create_subscription(Image, f"/{name}/image_raw", lambda m: got.append(("image", m)), qos)
        sub_node.create_subscription(CameraInfo, f"/{name}/camera_info", lambda m: got.append(("info", m)), qos)
    sub_node.create_subscription(Clock, "/clock", lambda m: clocks.append((time.monotonic(), time_ns(m.clock))), 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(sub_node)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.02) for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        t = time.monotonic()
        result = play_bag(bag, pub_node, rate=2.0, clock=True, topics=[f"/{n}/{k}" for n in views.camera_names
                                                                        for k in ("image_raw", "camera_info")] +
                          ["/nothing"], wait_subscribers_s=5.0, log=lambda _: None)
        elapsed = time.monotonic() - t
        assert result["published"] == 2 * len(views) and result["skipped_topics"] == {"/nothing": "not in the bag"}
        end = time.monotonic() + 10
        while len(got) < 2 * len(views) and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        stop.set()
        spinner.join()
        executor.shutdown()
        sub_node.destroy_node()
        pub_node.destroy_node()
        rclpy.try_shutdown(context=context)
    images = [m for k, m in got if k == "image"]
    assert len(images) == len(views) and len([1 for k, _ in got if k == "info"]) == len(views)
    # the bytes recorded: each image equals its view, each camera's in bag order (an executor may interleave topics)
    stamps = [time_ns(m.header.stamp) for m in images]
    assert set(stamps) == set(views.stamps_ns.tolist())
    for name in views.camera_names:
        own = [time_ns(m.header.stamp) for m in images if m.header.frame_id.startswith(name + "_")]
        assert own == sorted(own) and len(own) == len(views) // len(views.camera_names)
    by_stamp = {(int(s), int(c)): i for i, (s, c) in enumerate(zip(views.stamps_ns, views.camera_ids))}
    for m in images:
        i = by_stamp[(time_ns(m.header.stamp), views.camera_names.index(m.header.frame_id.split("_optical")[0]))]
        px = np.frombuffer(bytes(m.data), np.uint8).reshape(16, 24, 3)
        np.testing.assert_array_equal(px, (views.images[i].numpy() * 255).round().astype(np.uint8))
    assert serialize_message(images[0])  # a well-formed rclpy message, not just bytes
    # paced: the bag spans its stamps / rate; /clock carried the bag's time, never backwards
    span = (int(views.stamps_ns.max()) - int(views.stamps_ns.min())) * 1e-9
    assert elapsed >= 0.8 * span / 2.0
    ticks = [c for _, c in clocks]
    assert ticks == sorted(ticks) and ticks[0] == int(views.stamps_ns.min()) and ticks[-1] == int(views.stamps_ns.max())


def test_play_refuses_bad_requests_in_one_line(tmp_path, capsys):
    assert main(["play", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrm4d play: error:") and "no such bag" in err[0]
    with pytest.raises(ValueError, match="--rate must be > 0"):
        play_bag(tmp_path, None, rate=0)


def test_play_names_the_topics_nobody_subscribed_to(tmp_path):
    views = generate(2, SceneConfig(frames=2, cameras=1, height=8, width=8, num_primitives=(1, 1)))
    bag = write_bag(views, tmp_path / "bag")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=85)
    node = rclpy.create_node("player", context=context)
    said: list[str] = []
    try:
        topic = f"/{views.camera_names[0]}/pose"
        result = play_bag(bag, node, rate=100.0, topics=[topic], wait_subscribers_s=0.3, log=said.append)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    assert result["published"] == 2
    assert said == [f"lrm4d play: no subscriber on {topic} after 0.3 s (a topic name the node does not use, or another "
                    f"ROS_DOMAIN_ID?); playing anyway"]
