"""Contract bags (docs/design.md §4) ⇄ ViewSet with rosbags (no rclpy).

Per camera `<cam>`: /<cam>/image_raw (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8; read also: Bayer, YUV 4:2:2,
16-bit; io/messages.COLOUR_ENCODINGS),
/<cam>/camera_info (sensor_msgs/CameraInfo) and /<cam>/pose (geometry_msgs/PoseStamped: the optical frame in
the world), all stamped with the capture time; optionally /<cam>/depth (sensor_msgs/Image, 32FC1 metres or 16UC1
millimetres, REP-118), registered to the colour image: same size, same stamp, same camera_info. MCAP or sqlite3.
Images recorded through image_transport's compressed plugins are read too (io/compressed.py): where a camera has
no /<cam>/image_raw, /<cam>/image_raw/compressed (sensor_msgs/CompressedImage, JPEG or PNG); where it has no
/<cam>/depth, /<cam>/depth/compressedDepth (PNG or RVL). `write_bag(compression=...)` writes those.

Reading pairs each image with the camera_info, pose and depth of the *same header stamp* on the same camera
(exact match, no interpolation): a contract bag stamps them with one capture time. Views come out sorted by
(stamp, camera name); cameras are ordered by name (`camera_ids` index the sorted names); stamps stay absolute.
Depth: `ViewSet.depths` is (V,H,W) float32 metres, 0 = no measurement, when any read camera has a depth topic
(None otherwise); cameras without one, and colour images whose depth frame was dropped, get zeros. A depth
image whose colour frame is missing is skipped with a warning (a camera none of whose depth images pairs is a
`BagError`); anything else that breaks the contract (a depth image of another size, an unknown encoding) raises
`BagError` naming the topic and stamp.
"""
from __future__ import annotations

import math
import re
import shutil
import warnings
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from ..views import ViewSet
from .compressed import (COMPRESSED_TYPE, DEPTH_MAX, compressed_depth, compressed_depth_msg, compressed_image_msg,
                         compressed_rgb)
from .messages import (DEPTH_ENCODINGS, TYPESTORE, MessageError, camera_info_K, camera_info_msg, depth_msg,
                       deserialize, image_depth, image_msg, image_rgb, pose_matrix, pose_msg, serialize, stamp_ns)

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
IMAGE_TYPE, INFO_TYPE, POSE_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", \
    "geometry_msgs/msg/PoseStamped"
_IMAGE_TOPIC = re.compile(r"^/(.+)/image_raw(/compressed)?$")
# image_transport's topic for a compressed image or depth: the raw topic + "/<transport>"
TRANSPORTS = {"image": "compressed", "depth": "compressedDepth"}
COMPRESSIONS = ("png", "jpeg")


class BagWarning(UserWarning):
    """Something in a bag was skipped, and the rest of it is usable (a depth image whose colour frame was dropped)."""


class BagError(ValueError):
    """A bag that is not a valid contract bag; the message names the topic and stamp at fault."""


def camera_topics(cam: str, compressed: bool = False) -> dict[str, str]:
    """The contract's topics of camera `cam`; compressed: its image and depth as image_transport's compressed
    plugins publish them."""
    t = {"image": f"/{cam}/image_raw", "info": f"/{cam}/camera_info", "pose": f"/{cam}/pose", "depth": f"/{cam}/depth"}
    if compressed:
        t.update({k: f"{t[k]}/{transport}" for k, transport in TRANSPORTS.items()})
    return t


def _bag_to_write(path, views: ViewSet, who: str) -> tuple[Path, ViewSet, np.ndarray]:
    """(bag directory, views on the CPU, their images as (N,H,W,3) uint8 round(255·x)) for a writer; FileExistsError
    where the directory exists, ValueError for no views."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; rosbags writes a new bag directory")
    if len(views) == 0:
        raise ValueError(f"{who}: the ViewSet has no views")
    v = views.to("cpu")
    return path, v, (v.images.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


@contextmanager
def new_bag(path: str | Path, storage: str = "mcap"):
    """A rosbags Writer on the new bag directory `path`, open. A write that fails or is interrupted (an error,
    Ctrl-C) removes the directory: no half bag is left to look finished or to stand in a rerun's way."""
    path = Path(path)
    writer = Writer(path, version=9, storage_plugin=STORAGES[storage])
    try:
        writer.open()
        yield writer
    except BaseException:
        try:
            writer.close()
        finally:
            shutil.rmtree(path, ignore_errors=True)
        raise
    writer.close()


def latched_qos() -> list:
    """The QoS tf2's static broadcaster offers /tf_static with (reliable, transient local, infinite durations, as
    rosbag2 records it): `ros2 bag play` offers a topic with its recorded QoS, and tf2 listeners and RViz ask for
    transient local, which a volatile offer never matches, so a /tf_static written without it never reaches them."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    forever = QosTime(2147483647, 4294967295)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, forever, forever,
                QosLiveliness.AUTOMATIC, forever, False)]


def write_entries(path: str | Path, entries, storage: str = "mcap") -> Path:
    """entries (log time ns, topic, rosbags message) -> a bag at directory `path`, in log-time order, each topic's
    connection typed by its first message; /tf_static offered latched (`latched_qos`)."""
    with new_bag(path, storage) as w:
        conns = {}
        for s, topic, msg in sorted(entries, key=lambda e: e[0]):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msg.__msgtype__, typestore=TYPESTORE,
                                                offered_qos_profiles=latched_qos() if topic == "/tf_static" else ())
            w.write(conns[topic], s, serialize(msg))
    return Path(path)


def write_bag(views: ViewSet, path: str | Path, storage: str = "mcap", world_frame: str = "world",
              encoding: str = "rgb8", depth_encoding: str | None = None, compression: str | None = None) -> Path:
    """Write `views` as a contract bag at directory `path` (must not exist). Images are quantised to 8 bits
    (round(255·x)); frame ids are "<cam>_optical_frame" (image, camera_info, depth) and `world_frame` (pose);
    the bag time of every message is its capture stamp. depth_encoding "32FC1" (metres, bit-exact) or "16UC1"
    (rounded millimetres, ≤ 65.535 m) also writes `views.depths` on /<cam>/depth (0 = no measurement); None
    writes no depth. compression "png" or "jpeg" writes the images as image_transport's compressed plugin does,
    on /<cam>/image_raw/compressed (`encoding` then does not apply), and the depth on /<cam>/depth/compressedDepth
    (PNG: 16UC1 millimetres as they are; 32FC1 as 16-bit inverse depth, io/compressed.py, its range raised from
    10 m to the farthest depth written). Returns the bag directory."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(f"compression must be None or one of {list(COMPRESSIONS)}, got {compression!r}")
    if depth_encoding is not None:
        if depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"depth_encoding must be None or one of {list(DEPTH_ENCODINGS)}, got {depth_encoding!r}")
        if views.depths is None:
            raise ValueError("write_bag: depth_encoding given but the ViewSet has no depths")
    path, v, images = _bag_to_write(path, views, "write_bag")
    depths = None if depth_encoding is None else v.depths.numpy()
    image_type = IMAGE_TYPE if compression is None else COMPRESSED_TYPE
    keys = [("image", image_type), ("info", INFO_TYPE), ("pose", POSE_TYPE)] + \
        ([("depth", image_type)] if depths is not None else [])
    Ks, c2w = v.Ks.numpy(), v.camtoworlds.numpy()
    stamps, cams = v.stamps_ns.tolist(), v.camera_ids.tolist()
    H, W = v.height, v.width
    if depth_encoding == "16UC1":  # check before writing: no half-written bag
        mm = np.rint(np.nan_to_num(depths, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64) * 1000.0)
        too_far = (mm > 65535).reshape(len(v), -1).any(1)
        if too_far.any():
            i = int(too_far.argmax())
            raise ValueError(f"write_bag: {camera_topics(v.camera_names[cams[i]])['depth']} at stamp {stamps[i]} ns:"
                             f" depth {float(depths[i].max()):.3f} m does not fit 16UC1 millimetres (max 65.535 m); "
                             f"use 32FC1")
    if depths is not None and compression is not None:  # the plugin drops depths beyond depth_max: keep them all
        finite = depths[np.isfinite(depths)]
        depth_max = max(DEPTH_MAX, float(finite.max(initial=0.0)) * 1.001 + 1e-3)
    with new_bag(path, storage) as writer:
        conns = {}
        for cid in sorted(set(cams)):
            name = v.camera_names[cid]
            t = camera_topics(name, compressed=compression is not None)
            conns[cid] = {k: writer.add_connection(t[k], typ, typestore=TYPESTORE) for k, typ in keys}
        for i in sorted(range(len(v)), key=lambda i: (stamps[i], v.camera_names[cams[i]])):
            s, cid = stamps[i], cams[i]
            frame = f"{v.camera_names[cid]}_optical_frame"
            msgs = {"image": image_msg(images[i], s, frame, encoding) if compression is None else
                    compressed_image_msg(images[i], s, frame, compression),
                    "info": camera_info_msg(Ks[i], W, H, s, frame), "pose": pose_msg(c2w[i], s, world_frame)}
            if depths is not None:
                msgs["depth"] = depth_msg(depths[i], s, frame, depth_encoding) if compression is None else \
                    compressed_depth_msg(depths[i], s, frame, depth_encoding, depth_max=depth_max)
            for key, msg in msgs.items():
                writer.write(conns[cid][key], s, serialize(msg))
    return path


def _robot_hint(by_topic: dict) -> str:
    """What to say where a bag is not a contract bag: a robot's own recording (TF poses, its own topic names) goes
    through `lrm4d convert-bag` first."""
    from .output_bag import GAUSSIANS_TOPIC

    if GAUSSIANS_TOPIC in by_topic:  # what `lrm4d reconstruct` wrote: rendered views, not a recording to read
        return ("; this is the output bag of `lrm4d reconstruct` (its renders and Gaussians on /lrm4d/...): "
                "`lrm4d view OUT` shows the reconstruction of its folder OUT (the one holding summary.json), and "
                "`lrm4d play` publishes the bag for RViz")
    tf = sorted(t for t in ("/tf", "/tf_static") if t in by_topic)
    if not tf and any(t.endswith("/pose") and c.msgtype == POSE_TYPE for t, c in by_topic.items()):
        return ""  # the contract's topic names: what is missing is named, nothing to convert
    return (f"; this looks like a robot's own recording ({' and '.join(tf) if tf else 'its own topic names'}, not "
            f"the contract's /<cam>/pose): `lrm4d convert-bag BAG --out OUT` lists its cameras and writes a contract "
            f"bag")


def _cameras(reader: Reader, cameras) -> tuple[list[str], dict, dict]:
    """Name-sorted camera names to read, {topic: connection}, and {camera: {key: topic}} of the topics to read
    (image and depth raw where the bag has them, else compressed); checks the topics and their types."""
    by_topic = {c.topic: c for c in reader.connections}
    found = sorted({m.group(1) for t in by_topic if (m := _IMAGE_TOPIC.match(t))})
    if not found:
        raise BagError(f"no /<camera>/image_raw (or image_raw/compressed) topic in the bag (topics: "
                       f"{sorted(by_topic)}){_robot_hint(by_topic)}")
    if cameras is None:  # a camera's other topics without its image: say so rather than drop it silently
        orphans = defaultdict(list)
        for t in sorted(by_topic):
            m = re.match(r"^/(.+)/(camera_info|pose|depth(/compressedDepth)?)$", t)
            if m and m.group(1) not in found and not any(m.group(1).startswith(f"{c}/") for c in found):
                orphans[m.group(1)].append(t)
        for cam, topics in orphans.items():
            warnings.warn(f"camera {cam!r} has {', '.join(topics)} but no /{cam}/image_raw (nor "
                          f"/{cam}/image_raw/compressed): skipped", BagWarning)
    if cameras is not None:
        missing = [c for c in cameras if c not in found]
        if missing:
            raise BagError(f"cameras {missing} not in the bag (cameras with /<cam>/image_raw: {found})")
        found = sorted(set(cameras))
    chosen = {}
    for cam in found:
        raw, packed = camera_topics(cam), camera_topics(cam, compressed=True)
        topics = {}
        for key in ("image", "info", "pose", "depth"):
            for topic, typ in ((raw[key], IMAGE_TYPE if key in TRANSPORTS else INFO_TYPE if key == "info"
                                else POSE_TYPE), (packed[key], COMPRESSED_TYPE)):
                if topic in by_topic:
                    if by_topic[topic].msgtype != typ:
                        raise BagError(f"{topic}: type {by_topic[topic].msgtype}, expected {typ}")
                    topics[key] = topic
                    break
                if key not in TRANSPORTS:
                    break  # camera_info and pose have no compressed form
            if key in ("info", "pose") and key not in topics:
                robot = "/tf" in by_topic or "/tf_static" in by_topic
                others = [c for c in found if c != cam and camera_topics(c)[key] in by_topic]
                raise BagError(f"{raw[key]}: topic missing (camera {cam!r} has {topics['image']})"
                               + (_robot_hint(by_topic) if robot or (key == "pose" and not others) else
                                  f"; the other cameras have theirs: read them alone (reconstruct --cameras "
                                  f"{','.join(others)})" if others else ""))
        chosen[cam] = topics
    return found, by_topic, chosen


def _open(path: Path) -> Reader:
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    if path.name == "metadata.yaml":  # a bag's metadata file names its folder
        path = path.parent
    try:
        reader = Reader(path)
        reader.open()
    except Exception as e:  # rosbags raises its own error types for unreadable or non-bag paths
        hint = ""
        entries = list(path.iterdir()) if path.is_dir() else []
        bags = sorted(p for p in entries if (p / "metadata.yaml").is_file())
        storage = [p for p in entries if p.suffix in (".mcap", ".db3")]
        if bags and not (path / "metadata.yaml").exists():  # e.g. make-bag's --out folder, which holds its bags
            listed = ", ".join(str(p) for p in bags[:5]) + (f" and {len(bags) - 5} more" if len(bags) > 5 else "")
            hint = f"; the folder holds bags, not a bag: pass one of them ({listed})"
        elif path.is_dir() and not (path / "metadata.yaml").exists():
            hint = ("; the folder has no metadata.yaml (a recording that did not end cleanly?): pass its .mcap or "
                    ".db3 file, or rebuild the metadata with `ros2 bag reindex`" if storage else
                    "; the folder has no metadata.yaml and no .mcap or .db3 file: not a bag")
        elif "magic" in str(e).lower() or "truncated" in str(e).lower():
            hint = "; the file ends early (a recording that did not end cleanly?): `mcap recover` may repair it"
        raise BagError(f"{path}: cannot open as a ROS 2 bag ({e}){hint}") from e
    return reader


def bag_size(path: str | Path, cameras: list[str] | None = None) -> dict:
    """From the bag's index and one camera_info per camera (no image is read): {"images": count, "seconds": the
    bag's span, "pixels": the largest camera's width x height, "depth": whether any camera has a depth topic}, to
    tell before reading whether a bag fits in memory."""
    reader = _open(Path(path))
    try:
        names, by_topic, chosen = _cameras(reader, cameras)
        images = sum(by_topic[chosen[n]["image"]].msgcount for n in names)
        pixels = 0
        for n in names:
            for conn, _, raw in reader.messages(connections=[by_topic[chosen[n]["info"]]]):
                _, w, h = camera_info_K(deserialize(raw, conn.msgtype))
                pixels = max(pixels, w * h)
                break
        return {"images": images, "seconds": reader.duration * 1e-9, "pixels": pixels,
                "depth": any("depth" in chosen[n] for n in names), "start_ns": reader.start_time,
                "end_ns": reader.end_time}
    except MessageError as e:
        raise BagError(f"{path}: {e}") from e
    finally:
        reader.close()


def pose_frame(path: str | Path, cameras: list[str] | None = None) -> str:
    """The frame the bag's camera poses are given in (their header.frame_id; the first camera's first pose, as
    `_cameras` orders them): the world frame its outputs are written in. "world" where the bag leaves it empty."""
    reader = _open(Path(path))
    try:
        names, by_topic, chosen = _cameras(reader, cameras)
        for conn, _, raw in reader.messages(connections=[by_topic[chosen[names[0]]["pose"]]]):
            return str(deserialize(raw, conn.msgtype).header.frame_id).strip() or "world"
        return "world"
    finally:
        reader.close()


def memory_needed(size: dict, start_s: float = 0.0, duration_s: float | None = None) -> float:
    """Bytes a bag's views take once read (bag_size): float32 RGB (and float32 depth), the part of the bag's
    span asked for (its images spread evenly over it), twice over (the views and their copy at the render size)."""
    span = max(size["seconds"], 1e-9)
    part = min(1.0, max(0.0, span - start_s) / span) if duration_s is None else min(1.0, duration_s / span)
    per_view = size["pixels"] * 4 * (3 + (1 if size["depth"] else 0))
    return 2.0 * size["images"] * part * per_view


def available_memory() -> float | None:
    """Bytes the kernel can give this process now (/proc/meminfo MemAvailable); None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(path: str | Path, cameras: list[str] | None = None, start_s: float = 0.0,
               duration_s: float | None = None, advice: str = "read a part of it (start_s / duration_s)") -> None:
    """BagError, before anything is read, where reading the bag (that part of it) would take more than 80 % of the
    memory available now: read_bag holds every view as float32."""
    need, free = memory_needed(bag_size(path, cameras), start_s, duration_s), available_memory()
    if free is not None and need > 0.8 * free:
        raise BagError(f"{path}: reading it needs about {need / 2**30:.1f} GiB and {free / 2**30:.1f} GiB are "
                       f"available: {advice}")


def check_bag(path: str | Path, cameras: list[str] | None = None) -> list[str]:
    """The camera names of a contract bag, from its index alone (no message is read): BagError where it cannot be
    opened or lacks a camera's topics, before anything long starts on it."""
    reader = _open(Path(path))
    try:
        return _cameras(reader, cameras)[0]
    finally:
        reader.close()


LOG_MARGIN_NS = 2 * 10**9  # a part by log time also reads this much around it for its images' depth, info, pose


def read_bag(path: str | Path, cameras: list[str] | None = None, start_s: float = 0.0,
             duration_s: float | None = None, log_span: tuple[int, int] | None = None) -> ViewSet:
    """Read a contract bag (a bag directory with metadata.yaml, MCAP or sqlite3, or a bare .mcap file) into a
    ViewSet (see module docstring for pairing, order and depth). `cameras` restricts to those camera names.
    start_s / duration_s: only the images stamped that many seconds after the bag's first image / within that
    span (with their depth), dropped as they are read, so a part of a long bag fits in memory.
    log_span (start, stop) ns of bag (log) time: only the images logged in [start, stop), the rest of the bag
    unread but LOG_MARGIN_NS around it (their depth, camera_info and pose), so that parts that tile the bag's time
    read each image once and the bag about once.
    Images become float32 RGB in [0,1] (mono8 as grey); depths float32 metres (0: none) or None; no alphas."""
    path = Path(path)
    if start_s < 0 or (duration_s is not None and not duration_s > 0):
        raise ValueError(f"start must be >= 0 and duration > 0 seconds, got {start_s} and {duration_s}")
    span = None  # [lo, hi] ns, from the first image read (bags are in arrival order, near stamp order)
    reader = _open(path)
    try:
        names, by_topic, chosen = _cameras(reader, cameras)
        topic_key = {topic: (ci, k) for ci, c in enumerate(names) for k, topic in chosen[c].items()}
        infos: dict = defaultdict(dict)
        poses: dict = defaultdict(dict)
        depth_msgs: dict = defaultdict(dict)
        distorted: set = set()  # cameras whose camera_info has distortion: warned once
        images: list = []
        depth_inside: dict = defaultdict(set)  # with log_span: the depth stamps it accounts for
        window = {} if log_span is None else {"start": max(0, log_span[0] - LOG_MARGIN_NS),
                                              "stop": log_span[1] + LOG_MARGIN_NS}
        for conn, t_log, raw in reader.messages(connections=[by_topic[t] for t in topic_key], **window):
            ci, key = topic_key[conn.topic]
            if log_span is not None and key == "image" and not log_span[0] <= t_log < log_span[1]:
                continue  # another part's image: not even deserialised
            msg = deserialize(raw, conn.msgtype)
            s = stamp_ns(msg.header)
            if span is None and key == "image" and (start_s or duration_s is not None):
                lo = s + int(round(start_s * 1e9))
                hi = math.inf if duration_s is None else lo + int(round(duration_s * 1e9))
                span = (lo if start_s else -math.inf, hi)
            # a depth image may come up to a second before its colour image; the exact span is applied below
            if span is not None and key in ("image", "depth") and not (
                    span[0] - (key == "depth") * 10**9 <= s <= span[1] + (key == "depth") * 10**9):
                continue
            try:
                if key == "image":
                    images.append((s, ci, conn.topic, msg))
                elif key == "depth":
                    if s in depth_msgs[ci]:
                        raise BagError(f"{conn.topic}: two depth images with stamp {s} ns")
                    depth_msgs[ci][s] = msg
                    # accounted for (paired, or told unpaired) by the part whose middle holds it: one near an edge
                    # may pair with the neighbouring part's image
                    if log_span is not None and log_span[0] + LOG_MARGIN_NS <= t_log < log_span[1] - LOG_MARGIN_NS:
                        depth_inside[ci].add(s)
                elif key == "info":
                    infos[ci][s] = camera_info_K(msg)
                    if ci not in distorted and np.abs(np.asarray(msg.d, np.float64)).max(initial=0.0) > 1e-12:
                        distorted.add(ci)
                        warnings.warn(f"{conn.topic}: camera_info has lens distortion ({msg.distortion_model}) but a "
                                      "contract bag's images are taken as pinholes with K: rectify them first "
                                      "(`lrm4d convert-bag --rectify auto`, or image_proc)", BagWarning, stacklevel=2)
                else:
                    poses[ci][s] = pose_matrix(msg)
            except MessageError as e:
                raise BagError(f"{conn.topic} at stamp {s} ns: {e}") from e
    finally:
        reader.close()
    if span is not None:
        for ci in depth_msgs:
            depth_msgs[ci] = {t: m for t, m in depth_msgs[ci].items() if span[0] <= t <= span[1]}
    if log_span is not None:  # depth logged around the part pairs with its images; only its own is accounted for
        depth_seen = Counter({ci: len(depth_inside[ci]) for ci in depth_msgs})
    else:
        depth_seen = Counter({ci: len(d) for ci, d in depth_msgs.items()})
    if not images:
        raise BagError(f"{path}: no images on {[chosen[c]['image'] for c in names]}"
                       + (f" from {start_s} s after the first" + ("" if duration_s is None else f" for {duration_s} s")
                          if span is not None else ""))
    images.sort(key=lambda x: (x[0], x[1]))
    rgb, depths, Ks, c2w, stamps, cids = [], [], [], [], [], []
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
        compressed = not hasattr(msg, "encoding")  # a CompressedImage says its size only once decoded
        if not compressed and (int(msg.width), int(msg.height)) != (w, h):
            raise BagError(f"{topic} at stamp {s} ns: image is {msg.width}x{msg.height} but "
                           f"{camera_topics(cam)['info']} says {w}x{h}")
        try:
            px = compressed_rgb(msg) if compressed else image_rgb(msg)
        except MessageError as e:
            raise BagError(f"{topic} at stamp {s} ns: {e}") from e
        if compressed and px.shape[:2] != (h, w):
            raise BagError(f"{topic} at stamp {s} ns: image decodes to {px.shape[1]}x{px.shape[0]} but "
                           f"{camera_topics(cam)['info']} says {w}x{h}")
        rgb.append(px)
        depths.append(_depth(depth_msgs[ci].pop(s, None), px.shape[:2], chosen[cam].get("depth"), s))
        Ks.append(K)
        c2w.append(poses[ci][s])
        stamps.append(s)
        cids.append(ci)
    for ci, left in depth_msgs.items():
        if log_span is not None:
            left = {t: m for t, m in left.items() if t in depth_inside[ci]}
        if not left:
            continue
        topic, s = chosen[names[ci]]["depth"], min(left)
        if len(left) == depth_seen[ci]:  # none of the camera's depth images pairs: not registered, refuse
            raise BagError(f"{topic} at stamp {s} ns: no {chosen[names[ci]]['image']} message with that stamp "
                           f"(depth must be registered to the colour image: same stamp)")
        # some do: the others' colour frames were dropped (a recorder under load); the bag is still usable
        warnings.warn(f"{topic}: {len(left)} of {depth_seen[ci]} depth images have no colour image with their stamp "
                      f"(first at {s} ns; dropped colour frames?): skipped", BagWarning, stacklevel=2)
    has_depth = any("depth" in chosen[c] for c in names)
    # A ViewSet has one resolution: cameras of other sizes are resized to the size most images have (the larger
    # where as many have each), their K scaled, as the node's window does.
    sizes = Counter(px.shape[:2] for px in rgb)
    H, W = max(sizes, key=lambda hw: (sizes[hw], hw[0] * hw[1]))
    if len(sizes) > 1:
        resized = sorted({names[cids[i]] for i, px in enumerate(rgb) if px.shape[:2] != (H, W)})
        warnings.warn(f"{path}: camera{'s' if len(resized) > 1 else ''} {', '.join(resized)} resized to {W}x{H}, "
                      "the size most images have (K scaled)", BagWarning, stacklevel=2)
    return ViewSet.stack(rgb, Ks, c2w, stamps, cids, list(names), depths if has_depth else None, (H, W))


def _depth(msg, shape: tuple[int, int], topic: str, s: int) -> np.ndarray | None:
    """(H,W) float32 metres of a depth message registered to a colour image of `shape`; None without one."""
    if msg is None:
        return None
    try:
        d = image_depth(msg) if hasattr(msg, "encoding") else compressed_depth(msg)
    except MessageError as e:
        raise BagError(f"{topic} at stamp {s} ns: {e}") from e
    if d.shape != tuple(shape):
        raise BagError(f"{topic} at stamp {s} ns: depth image is {d.shape[1]}x{d.shape[0]} but the colour image is "
                       f"{shape[1]}x{shape[0]} (depth must be registered to the colour image)")
    return d
