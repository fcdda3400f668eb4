"""Contract bags (DESIGN.md §4) ⇄ ViewSet with rosbags (no rclpy).

Per camera `<cam>`: /<cam>/image_raw (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8),
/<cam>/camera_info (sensor_msgs/CameraInfo) and /<cam>/pose (geometry_msgs/PoseStamped: the optical frame in
the world), all stamped with the capture time. MCAP or sqlite3 storage.

Reading pairs each image with the camera_info and pose of the *same header stamp* on the same camera (exact
match, no interpolation): a contract bag stamps all three with one capture time. Views come out sorted by
(stamp, camera name); cameras are ordered by name (`camera_ids` index the sorted names); stamps stay absolute.
Anything that breaks the contract raises `BagError` naming the topic and stamp.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from ..views import ViewSet
from .messages import (TYPESTORE, MessageError, camera_info_K, camera_info_msg, deserialize, image_msg, image_rgb,
                       pose_matrix, pose_msg, serialize, stamp_ns)

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE_TYPE, INFO_TYPE, POSE_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", \
    "geometry_msgs/msg/PoseStamped"
_IMAGE_TOPIC = re.compile(r"^/(.+)/image_raw$")


class BagError(ValueError):
    """A bag that is not a valid contract bag; the message names the topic and stamp at fault."""


def camera_topics(cam: str) -> dict[str, str]:
    return {"image": f"/{cam}/image_raw", "info": f"/{cam}/camera_info", "pose": f"/{cam}/pose"}


def write_bag(views: ViewSet, path: str | Path, storage: str = "mcap", world_frame: str = "world",
              encoding: str = "rgb8") -> Path:
    """Write `views` as a contract bag at directory `path` (must not exist). Images are quantised to 8 bits
    (round(255·x)); frame ids are "<cam>_optical_frame" (image, camera_info) and `world_frame` (pose); the bag
    time of every message is its capture stamp. Returns the bag directory."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; rosbags writes a new bag directory")
    if len(views) == 0:
        raise ValueError("write_bag: the ViewSet has no views")
    v = views.to("cpu")
    images = (v.images.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    Ks, c2w = v.Ks.numpy(), v.camtoworlds.numpy()
    stamps, cams = v.stamps_ns.tolist(), v.camera_ids.tolist()
    H, W = v.height, v.width
    with Writer(path, version=9, storage_plugin=STORAGES[storage]) as writer:
        conns = {}
        for cid in sorted(set(cams)):
            name = v.camera_names[cid]
            t = camera_topics(name)
            conns[cid] = {k: writer.add_connection(t[k], typ, typestore=TYPESTORE)
                          for k, typ in (("image", IMAGE_TYPE), ("info", INFO_TYPE), ("pose", POSE_TYPE))}
        for i in sorted(range(len(v)), key=lambda i: (stamps[i], v.camera_names[cams[i]])):
            s, cid = stamps[i], cams[i]
            frame = f"{v.camera_names[cid]}_optical_frame"
            msgs = {"image": image_msg(images[i], s, frame, encoding), "info": camera_info_msg(Ks[i], W, H, s, frame),
                    "pose": pose_msg(c2w[i], s, world_frame)}
            for key, msg in msgs.items():
                writer.write(conns[cid][key], s, serialize(msg))
    return path


def _cameras(reader: Reader, cameras) -> tuple[list[str], dict]:
    """Name-sorted camera names to read and {topic: connection}; checks the three topics and their types."""
    by_topic = {c.topic: c for c in reader.connections}
    found = sorted(m.group(1) for t in by_topic if (m := _IMAGE_TOPIC.match(t)))
    if not found:
        raise BagError(f"no /<camera>/image_raw topic in the bag (topics: {sorted(by_topic)})")
    if cameras is not None:
        missing = [c for c in cameras if c not in found]
        if missing:
            raise BagError(f"cameras {missing} not in the bag (cameras with /<cam>/image_raw: {found})")
        found = sorted(set(cameras))
    for cam in found:
        for key, typ in (("image", IMAGE_TYPE), ("info", INFO_TYPE), ("pose", POSE_TYPE)):
            topic = camera_topics(cam)[key]
            if topic not in by_topic:
                raise BagError(f"{topic}: topic missing (camera {cam!r} has /{cam}/image_raw)")
            if by_topic[topic].msgtype != typ:
                raise BagError(f"{topic}: type {by_topic[topic].msgtype}, expected {typ}")
    return found, by_topic


def read_bag(path: str | Path, cameras: list[str] | None = None) -> ViewSet:
    """Read a contract bag (a bag directory with metadata.yaml, MCAP or sqlite3, or a bare .mcap file) into a
    ViewSet (see module docstring for pairing and order). `cameras` restricts to those camera names. Images
    become float32 RGB in [0,1] (mono8 as grey); no depths or alphas."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as e:  # rosbags raises its own error types for unreadable or non-bag paths
        raise BagError(f"{path}: cannot open as a ROS 2 bag ({e})") from e
    try:
        names, by_topic = _cameras(reader, cameras)
        topic_key = {camera_topics(c)[k]: (ci, k) for ci, c in enumerate(names) for k in ("image", "info", "pose")}
        infos: dict = defaultdict(dict)
        poses: dict = defaultdict(dict)
        images: list = []
        for conn, _, raw in reader.messages(connections=[by_topic[t] for t in topic_key]):
            ci, key = topic_key[conn.topic]
            msg = deserialize(raw, conn.msgtype)
            s = stamp_ns(msg.header)
            try:
                if key == "image":
                    images.append((s, ci, conn.topic, msg))
                elif key == "info":
                    infos[ci][s] = camera_info_K(msg)
                else:
                    poses[ci][s] = pose_matrix(msg)
            except MessageError as e:
                raise BagError(f"{conn.topic} at stamp {s} ns: {e}") from e
    finally:
        reader.close()
    if not images:
        raise BagError(f"{path}: no images on {[camera_topics(c)['image'] for c in names]}")
    images.sort(key=lambda x: (x[0], x[1]))
    rgb, Ks, c2w, stamps, cids = [], [], [], [], []
    seen = set()
    for s, ci, topic, msg in images:
        cam = names[ci]
        if (s, ci) in seen:
            raise BagError(f"{topic}: two images with stamp {s} ns")
        seen.add((s, ci))
        if s not in infos[ci]:
            raise BagError(f"{topic} at stamp {s} ns: no {camera_topics(cam)['info']} message with that stamp")
        if s not in poses[ci]:
            raise BagError(f"{topic} at stamp {s} ns: no {camera_topics(cam)['pose']} message with that stamp")
        K, w, h = infos[ci][s]
        if (int(msg.width), int(msg.height)) != (w, h):
            raise BagError(f"{topic} at stamp {s} ns: image is {msg.width}x{msg.height} but "
                           f"{camera_topics(cam)['info']} says {w}x{h}")
        try:
            px = image_rgb(msg)
        except MessageError as e:
            raise BagError(f"{topic} at stamp {s} ns: {e}") from e
        if rgb and px.shape != rgb[0].shape:
            raise BagError(f"{topic} at stamp {s} ns: image is {px.shape[1]}x{px.shape[0]}, other images are "
                           f"{rgb[0].shape[1]}x{rgb[0].shape[0]} (a ViewSet has one resolution)")
        rgb.append(px)
        Ks.append(K)
        c2w.append(poses[ci][s])
        stamps.append(s)
        cids.append(ci)
    return ViewSet(images=torch.from_numpy(np.stack(rgb)).float().div_(255.0),
                   Ks=torch.from_numpy(np.stack(Ks)), camtoworlds=torch.from_numpy(np.stack(c2w)),
                   stamps_ns=torch.tensor(stamps, dtype=torch.int64), camera_ids=torch.tensor(cids, dtype=torch.int64),
                   camera_names=list(names))
