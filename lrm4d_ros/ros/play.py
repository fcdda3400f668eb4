"""`lrm4d play BAG`: publish a bag's messages on their topics in their recorded rhythm, as `ros2 bag play` does,
for installs without ros2cli/rosbag2 (the PyPI wheels).

    lrm4d play scenes/scene_3 --clock          # then a node with use_sim_time: true follows the bag's time

Messages go out as they were recorded (the bag's serialized bytes, rclpy's raw publish), in bag-time order, paced
by the bag's timestamps divided by `--rate`. `--clock` also publishes /clock (rosgraph_msgs/Clock) at each message's
bag time before it, so a node on sim time sees the bag's own stamps as now (the reconstruct node refuses stamps far
from its clock: play with --clock and set use_sim_time). Topics whose message type is not installed here are
skipped with a note. Publishers are reliable with a depth of `--queue`, which best-effort subscribers (the node's
sensor_data QoS) also receive; /tf_static is also transient local, as static broadcasters latch it, so a node
started after the bag's first messages still gets the robot's fixed frames.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", help="a bag directory (metadata.yaml) or an .mcap file")
    p.add_argument("--clock", action="store_true", help="publish /clock at the bag's time (for use_sim_time nodes)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default: 1.0)")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics (default: all)")
    p.add_argument("--start", type=float, default=0.0, help="skip this many seconds of the bag (default: 0)")
    p.add_argument("--loop", action="store_true", help="play again from the start until interrupted")
    p.add_argument("--queue", type=int, default=100, help="publisher history depth (default: 100)")
    p.add_argument("--wait-subscribers", type=float, default=2.0,
                   help="seconds to wait for subscribers to be discovered before the first message (default: 2)")


def message_class(msgtype: str):
    """The rclpy class of a ROS 2 type name ('sensor_msgs/msg/Image'), None if that package is not installed."""
    pkg, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError):
        return None


def play_bag(path, node, rate: float = 1.0, clock: bool = False, topics: list[str] | None = None,
             start_s: float = 0.0, queue: int = 100, wait_subscribers_s: float = 2.0, should_stop=lambda: False,
             log=print, publishers: dict | None = None) -> dict:
    """Publish bag `path` from rclpy `node` (module docstring). Returns {"published": count, "skipped_topics":
    {topic: why}, "seconds": bag seconds played}. Raises ValueError for an unreadable bag or a bad argument.
    publishers: {topic: publisher} kept between calls (`--loop` plays again on the same ones)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from ..io.bag import BagError, _open
    from ..io.messages import time_msg

    if not rate > 0:
        raise ValueError(f"--rate must be > 0, got {rate}")
    if queue < 1:
        raise ValueError(f"--queue must be >= 1, got {queue}")
    try:
        reader = _open(Path(path))
    except BagError as exc:
        raise ValueError(str(exc)) from None
    try:
        conns, skipped = [], {}
        present = {c.topic for c in reader.connections}
        for missing in sorted(set(topics or ()) - present):
            skipped[missing] = "not in the bag"
        qos = QoSProfile(depth=queue, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=queue, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        pubs = {} if publishers is None else publishers
        for c in reader.connections:
            if topics and c.topic not in topics:
                continue
            cls = message_class(c.msgtype)
            if cls is None:
                skipped[c.topic] = f"{c.msgtype} is not installed here"
                continue
            if c.topic not in pubs:
                pubs[c.topic] = node.create_publisher(cls, c.topic, latched if c.topic == "/tf_static" else qos)
            conns.append(c)
        if not conns:
            why = "; ".join(f"{t}: {w}" for t, w in skipped.items()) or "no messages"
            raise ValueError(f"{path}: nothing to play ({why})")
        clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            if "/clock" not in pubs:
                pubs["/clock"] = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
            clock_pub = pubs["/clock"]
        for topic, why in skipped.items():
            log(f"lrm4d play: skipping {topic} ({why})")
        end = time.monotonic() + wait_subscribers_s  # let discovery match the subscribers before the first message
        while time.monotonic() < end and not all(pubs[c.topic].get_subscription_count() for c in conns):
            time.sleep(0.05)
        unheard = sorted({c.topic for c in conns if not pubs[c.topic].get_subscription_count()})
        if unheard and wait_subscribers_s > 0:
            log(f"lrm4d play: no subscriber on {', '.join(unheard)} after {wait_subscribers_s:g} s (a topic name the "
                f"node does not use, or another ROS_DOMAIN_ID?); playing anyway")
        first = reader.start_time + int(start_s * 1e9)
        t0, published, last_note, last = time.monotonic(), 0, time.monotonic(), first
        for conn, stamp, raw in reader.messages(connections=conns, start=first):
            if should_stop():
                break
            wait = t0 + (stamp - first) * 1e-9 / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if clock_pub is not None:
                clock_pub.publish(Clock(clock=time_msg(stamp, _rclpy_types())))
            pubs[conn.topic].publish(bytes(raw))
            published, last = published + 1, stamp
            if time.monotonic() - last_note > 5.0:
                last_note = time.monotonic()
                log(f"lrm4d play: {published} messages, bag time +{(stamp - first) * 1e-9:.1f} s")
    finally:
        reader.close()
    return {"published": published, "skipped_topics": skipped, "seconds": (last - first) * 1e-9}


def _rclpy_types():
    from .conversions import RCLPY

    return RCLPY


def run(args) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    # Ctrl-C raises KeyboardInterrupt here (rclpy's handler would shut the context down under a publish)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("lrm4d_play")
    publishers: dict = {}
    try:
        while True:
            try:
                result = play_bag(args.bag, node, rate=args.rate, clock=args.clock, topics=args.topics,
                                  start_s=args.start, queue=args.queue, wait_subscribers_s=args.wait_subscribers,
                                  publishers=publishers)
            except ValueError as exc:
                print(f"lrm4d play: error: {exc}", file=sys.stderr)
                return 2
            print(f"lrm4d play: published {result['published']} messages over {result['seconds']:.2f} s of bag time")
            if not args.loop:
                return 0
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
