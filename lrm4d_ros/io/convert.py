"""`lrm4d convert-bag IN --out OUT --camera NAME=IMAGE_TOPIC ...`: a robot's own bag in, a contract bag
(docs/design.md §4) out, for `lrm4d reconstruct`, `evaluate` and `view`.

A robot records its cameras under its own topic names, poses as TF (/tf, /tf_static) and depth on a topic of its
own, stamped by the depth camera; the contract wants /<cam>/image_raw, /<cam>/camera_info, /<cam>/pose and
/<cam>/depth stamped alike. Per `--camera NAME=IMAGE_TOPIC` (sensor_msgs/Image, or CompressedImage as
image_transport records it):
- camera_info: `--info NAME=TOPIC`, else image_transport's sibling of the image topic (…/image_raw[/compressed] ->
  …/camera_info); the one with the image's stamp, else the latest before it (intrinsics rarely change);
- pose: the image's header.frame_id (its optical frame) in `--world-frame` from the bag's TF tree at the image's
  stamp (io/tf_tree.py: interpolated, `--tf-tolerance-ms` at its ends, gaps up to `--tf-max-gap`); default world
  frame: the root of that tree. `--pose-topic TOPIC[=CHILD]` adds pose topics to the tree as moving edges: odometry
  (nav_msgs/Odometry, header.frame_id -> child_frame_id) or a PoseStamped / PoseWithCovarianceStamped (motion
  capture, a localiser) of frame CHILD;
- depth (`--depth NAME=TOPIC`): the depth image nearest in stamp within `--depth-tolerance-ms` of each colour
  image, restamped with the colour image's stamp, each depth image used once. An aligned depth (the colour image's
  frame_id and size) is copied; a depth camera's own image (another frame_id) is registered to the colour camera as
  depth_image_proc does (io/register.py), with its camera_info (`--depth-info`, else the depth topic's sibling) and
  the TF between the two optical frames;
- distortion (io/rectify.py): a raw image whose camera_info has distortion (or P unlike K) is rectified as
  image_proc does, onto P's intrinsics (depth by nearest neighbour), and the camera_info written is that pinhole;
  image_proc's image_rect topics are taken with P's intrinsics as they are; `--rectify off` takes every image as
  a pinhole with K. Images that need no rectification are copied byte for byte.
Images that cannot be converted (no pose at their stamp, no camera_info yet, undecodable) are skipped, counted
per reason and summarised; a bag that cannot be converted at all is refused in one line.
"""
from __future__ import annotations

import bisect
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from ..window import RejectedInput
from .rectify import info_topic_for

TF_TOPICS = ("/tf", "/tf_static")
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ConvertError(ValueError):
    """The bag cannot be converted as asked (a topic missing or of another type, a frame not in the TF tree)."""


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, topic = item.partition("=")
        if not sep or not _NAME.match(name) or not topic.startswith("/"):
            raise ConvertError(f"{what} {item!r}: expected NAME=/topic, NAME a letter then letters, digits or _")
        if name in out:
            raise ConvertError(f"{what}: camera {name!r} given twice")
        out[name] = topic
    return out


def _pose_topics(items: list[str] | None) -> dict[str, str]:
    """--pose-topic TOPIC[=CHILD] values -> {topic: child frame or ""}."""
    out = {}
    for item in items or []:
        topic, _, child = item.partition("=")
        if not topic.startswith("/"):
            raise ConvertError(f"--pose-topic {item!r}: expected /topic or /topic=FRAME")
        out[topic] = child.lstrip("/")
    return out


def add_arguments(p) -> None:
    p.add_argument("bag", help="input bag (a directory with metadata.yaml, or an .mcap file)")
    p.add_argument("--out", required=True, help="output contract bag directory (must not exist)")
    p.add_argument("--camera", action="append", metavar="NAME=TOPIC",
                   help="a camera: its name in the contract bag and its colour image topic (Image or "
                        "CompressedImage); repeat for each camera. Without any, the bag's image, depth and TF topics "
                        "are listed with a suggested command")
    p.add_argument("--info", action="append", metavar="NAME=TOPIC",
                   help="camera_info topic of camera NAME (default: the image topic's sibling .../camera_info)")
    p.add_argument("--depth", action="append", metavar="NAME=TOPIC",
                   help="depth topic of camera NAME, registered to its colour image (e.g. a RealSense's "
                        "aligned_depth_to_color/image_raw; Image 16UC1/32FC1 or compressedDepth)")
    p.add_argument("--depth-info", action="append", metavar="NAME=TOPIC",
                   help="camera_info of camera NAME's depth camera, for a depth image in its own frame (default: "
                        "the depth topic's sibling .../camera_info)")
    p.add_argument("--pose-topic", action="append", metavar="TOPIC[=CHILD]",
                   help="a pose topic to add to the TF tree: nav_msgs/Odometry (header.frame_id -> child_frame_id, "
                        "or CHILD), or PoseStamped / PoseWithCovarianceStamped of frame CHILD; repeatable")
    p.add_argument("--world-frame", default=None,
                   help="frame the poses are written in (default: the root of the TF tree above the cameras)")
    p.add_argument("--depth-tolerance-ms", type=float, default=20.0,
                   help="a depth image pairs with the colour image nearest in stamp within this (default: 20)")
    p.add_argument("--tf-tolerance-ms", type=float, default=20.0,
                   help="a transform is held this long past the first / last one on its edge (default: 20)")
    p.add_argument("--tf-max-gap", type=float, default=0.5,
                   help="longest gap between two transforms of an edge that is interpolated, s (default: 0.5)")
    p.add_argument("--rectify", choices=("auto", "off"), default="auto",
                   help="auto: rectify raw images whose camera_info has distortion, take image_rect topics with P's "
                        "intrinsics; off: every image is a pinhole with camera_info's K (default: auto)")
    p.add_argument("--start", type=float, default=0.0, help="skip this many seconds after the first image")
    p.add_argument("--duration", type=float, default=None, help="convert this many seconds (default: all)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="output storage (default: mcap)")


def run(args) -> int:
    def refuse(message: str) -> int:
        print(f"lrm4d convert-bag: error: {message}", file=sys.stderr)
        return 2

    if not args.camera:
        try:
            print(describe_bag(args.bag, args.out))
        except ConvertError as exc:
            return refuse(str(exc))
        return 2
    try:
        summary = convert_bag(args.bag, args.out, _pairs(args.camera, "--camera"), infos=_pairs(args.info, "--info"),
                              depths=_pairs(args.depth, "--depth"), depth_infos=_pairs(args.depth_info, "--depth-info"),
                              world_frame=args.world_frame, pose_topics=_pose_topics(args.pose_topic),
                              depth_tolerance_ns=int(args.depth_tolerance_ms * 1e6),
                              tf_tolerance_ns=int(args.tf_tolerance_ms * 1e6), tf_max_gap_ns=int(args.tf_max_gap * 1e9),
                              start_s=args.start, duration_s=args.duration, storage=args.storage,
                              rectify=args.rectify == "auto", progress=True)
    except (ConvertError, OSError) as exc:  # FileExistsError, PermissionError: an --out that cannot be written
        return refuse(str(exc))
    print(summary["text"])
    return 0 if summary["views"] else 1


IMAGE_PARTS = ("image_raw", "image_rect", "image_rect_color", "image_rect_raw", "image", "compressed",
               "compressedDepth")  # a topic's trailing image_transport parts
GENERIC = {*IMAGE_PARTS, "color", "colour", "rgb"}  # parts that name no camera


def _namespace(topic: str) -> list[str]:
    """A topic's path without its trailing image_transport parts: /robot/front/color/image_raw/compressed ->
    [robot, front, color]."""
    parts = topic.strip("/").split("/")
    while len(parts) > 1 and parts[-1] in IMAGE_PARTS:
        parts.pop()
    return parts


def _common(*paths: list[str]) -> int:
    """How many leading path components the paths share."""
    n = 0
    while all(len(p) > n for p in paths) and len({p[n] for p in paths}) == 1:
        n += 1
    return n


def describe_bag(src, out="OUT") -> str:
    """What a robot's bag holds for convert-bag (colour and depth image topics, with their encoding, frame and
    count; the TF tree's frames and roots) and a suggested command: each colour topic a camera named after its
    first path component, raw preferred over compressed, the depth topic in the same namespace beside it."""
    from .bag import BagError, _open
    from .messages import DEPTH_ENCODINGS, deserialize

    try:
        reader = _open(Path(src))
    except BagError as exc:
        raise ConvertError(str(exc)) from None
    colour, depth, frames, roots, poses = {}, {}, set(), {}, {}
    try:
        for conn in reader.connections:
            if conn.msgtype in POSE_TYPES:
                msg = next((deserialize(raw, conn.msgtype) for _, _, raw in reader.messages(connections=[conn])), None)
                if msg is not None:
                    poses[conn.topic] = (conn.msgtype.rsplit("/", 1)[-1], msg.header.frame_id,
                                         getattr(msg, "child_frame_id", ""), conn.msgcount)
            elif conn.msgtype in IMAGE_TYPES:
                msg = next((deserialize(raw, conn.msgtype) for _, _, raw in reader.messages(connections=[conn])), None)
                if msg is None:
                    continue
                kind = getattr(msg, "encoding", None) or msg.format
                is_depth = kind in DEPTH_ENCODINGS or "compressedDepth" in kind
                (depth if is_depth else colour)[conn.topic] = (conn.msgtype.rsplit("/", 1)[-1], kind,
                                                               msg.header.frame_id, conn.msgcount)
            elif conn.topic in TF_TOPICS and conn.msgtype == "tf2_msgs/msg/TFMessage":
                for _, _, raw in reader.messages(connections=[conn]):
                    for tr in deserialize(raw, conn.msgtype).transforms:
                        parent, child = tr.header.frame_id.lstrip("/"), tr.child_frame_id.lstrip("/")
                        frames |= {parent, child}
                        roots[child] = parent
    finally:
        reader.close()
    if not colour:
        raise ConvertError(f"{src}: no colour image topics (sensor_msgs/Image or CompressedImage) in the bag")
    top = sorted(f for f in frames if f not in roots)
    from .bag import camera_topics

    contract = sorted(t[1:-len("/image_raw")] for t in colour if t.endswith("/image_raw")
                      and poses.get(camera_topics(t[1:-len("/image_raw")])["pose"], ("",))[0] == "PoseStamped")
    if contract and len(contract) == len({t for t in colour if not t.endswith("/compressed")}):
        return (f"{src} is a contract bag already (cameras {contract}, each with its /<cam>/pose): lrm4d "
                f"reconstruct and evaluate read it as it is; convert-bag is for a robot's own recording")
    lines = [f"{src} holds:"]
    lines += [f"  colour  {t}  ({typ} {kind}, frame {frame!r}, {n} messages)" for t, (typ, kind, frame, n) in
              sorted(colour.items())]
    lines += [f"  depth   {t}  ({typ} {kind}, frame {frame!r}, {n} messages)" for t, (typ, kind, frame, n) in
              sorted(depth.items())]
    lines += [f"  pose    {t}  ({typ}, frame {frame!r}{f' -> {child!r}' if child else ''}, {n} messages)"
              for t, (typ, frame, child, n) in sorted(poses.items())]
    lines.append(f"  TF      {len(frames)} frames, root(s) {top}" if frames else
                 "  TF      none: convert-bag needs /tf or /tf_static, or a pose topic, for the camera poses")
    if len(top) > 1:
        lines.append("  note    the TF tree falls apart into several trees: cameras in different ones cannot share a "
                     "world frame (is /tf, with the transform that joins them, missing from the bag?)")
    # one topic per camera: raw over its compressed twin; a camera is named by what tells its namespace from the
    # others' (/robot/front/color/image_raw -> front), its depth is the one in its frame or nearest namespace
    chosen = [t for t in sorted(colour) if not (t.endswith("/compressed") and t[:-len("/compressed")] in colour)]
    spaces = {t: _namespace(t) for t in [*chosen, *depth]}
    shared = _common(*(spaces[t] for t in chosen)) if len(chosen) > 1 else 0
    names: dict[str, str] = {}
    for t in chosen:
        parts = [p for p in spaces[t][shared:] if p not in GENERIC] or spaces[t][shared:] or ["cam"]
        base = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts))
        base = base if base[:1].isalpha() else f"cam_{base}"
        name, k = base, 1
        while name in names.values():
            k += 1
            name = f"{base}{k}"
        names[t] = name
    command = [f"lrm4d convert-bag {src} --out {out}"]
    free = [d for d in sorted(depth) if not (d.endswith("/compressedDepth") and d[:-len("/compressedDepth")] in depth)]
    for t in chosen:
        command.append(f"--camera {names[t]}={t}")
        score = {d: (depth[d][2] == colour[t][2], _common(spaces[d], spaces[t])) for d in free}
        best = max(free, key=lambda d: score[d], default=None)
        if best is not None and (score[best][0] or score[best][1] > shared):
            command.append(f"--depth {names[t]}={best}")
            free.remove(best)
    # pose topics that place the TF tree's root (odometry of base_link) or, without TF, the cameras themselves (a
    # PoseStamped in one camera's namespace is of its optical frame)
    for p, (typ, _, child, _) in sorted(poses.items()):
        if child and (not frames or child in top):
            command.append(f"--pose-topic {p}")
        elif not child and not frames:
            mine = [t for t in chosen if _common(_namespace(p), spaces[t]) > shared]
            if len(mine) == 1:
                command.append(f"--pose-topic {p}={colour[mine[0]][2]}")
    lines += ["no --camera given; a command for this bag (check the names and the depth pairing):",
              "  " + " \\\n      ".join(command)]
    return "\n".join(lines)


def convert_bag(src, out, cameras: dict[str, str], infos: dict[str, str] | None = None,
                depths: dict[str, str] | None = None, depth_infos: dict[str, str] | None = None,
                world_frame: str | None = None, pose_topics: dict[str, str] | None = None,
                depth_tolerance_ns: int = 20_000_000, tf_tolerance_ns: int = 20_000_000,
                tf_max_gap_ns: int = 500_000_000, start_s: float = 0.0, duration_s: float | None = None,
                storage: str = "mcap", rectify: bool = True, progress: bool = False) -> dict:
    """Convert bag `src` into the contract bag `out` (module docstring). cameras / infos / depths: {contract camera
    name: topic}. pose_topics: {topic: child frame ("" = the message's own child_frame_id)}. rectify: False takes
    every image as a pinhole with camera_info's K. Returns {"views": written,
    "skipped": Counter of reasons, "world_frame", "text"}; raises ConvertError for what makes the bag unconvertible,
    FileExistsError if `out` exists."""
    from tqdm import tqdm

    from ..outputs import check_writable
    from .bag import BagError, _open, camera_topics, new_bag
    from .compressed import compressed_depth, compressed_image_msg, compressed_rgb
    from .messages import (TYPESTORE, MessageError, camera_info_msg, depth_msg, deserialize,
                           image_depth, image_msg, image_rgb, pose_matrix, pose_msg, serialize, stamp_ns, time_msg)
    from .rectify import Rectification, info_key, rectified_topic
    from .register import register_depth
    from .tf_tree import TransformTree

    infos, depths, depth_infos = dict(infos or {}), dict(depths or {}), dict(depth_infos or {})
    if not cameras:
        raise ConvertError("no --camera given")
    for what, d in (("--info", infos), ("--depth", depths), ("--depth-info", depth_infos)):
        if set(d) - set(cameras):
            raise ConvertError(f"{what} names cameras {sorted(set(d) - set(cameras))} that no --camera defines")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new --out")
    check_writable(out, "--out")
    try:
        reader = _open(Path(src))
    except BagError as exc:
        raise ConvertError(str(exc)) from None
    try:
        by_topic = {c.topic: c for c in reader.connections}
        info_topics = {n: infos.get(n, info_topic_for(t)) for n, t in cameras.items()}
        depth_info_topics = {n: depth_infos.get(n, info_topic_for(t)) for n, t in depths.items()}

        def need(topic, types, what):
            if topic not in by_topic:
                near = [t for t in sorted(by_topic) if t.rsplit("/", 1)[-1] in ("image_raw", "compressed",
                                                                                 "camera_info", "compressedDepth")]
                raise ConvertError(f"{what} topic {topic} is not in the bag (image and camera_info topics there: "
                                   f"{near})")
            if by_topic[topic].msgtype not in types:
                raise ConvertError(f"{what} topic {topic} is {by_topic[topic].msgtype}, expected {' or '.join(types)}")

        for n in cameras:
            need(cameras[n], IMAGE_TYPES, f"camera {n}'s image")
            need(info_topics[n], ("sensor_msgs/msg/CameraInfo",), f"camera {n}'s camera_info")
            if n in depths:
                need(depths[n], IMAGE_TYPES, f"camera {n}'s depth")
        tf_conns = [by_topic[t] for t in TF_TOPICS if t in by_topic and by_topic[t].msgtype == "tf2_msgs/msg/TFMessage"]
        pose_topics = dict(pose_topics or {})
        for topic, child in pose_topics.items():
            need(topic, POSE_TYPES, "pose")
            if not child and by_topic[topic].msgtype != "nav_msgs/msg/Odometry":
                raise ConvertError(f"pose topic {topic} is {by_topic[topic].msgtype}, which names no child frame: "
                                   f"give it as {topic}=FRAME")
        tf_conns += [by_topic[t] for t in pose_topics]
        if not tf_conns:
            raise ConvertError("the bag has no /tf or /tf_static (tf2_msgs/TFMessage) and no --pose-topic was given: "
                               "no camera poses")

        # pass 1: the TF tree, camera_infos, image and depth stamps (small: no pixels kept)
        tree = TransformTree(tolerance_ns=tf_tolerance_ns, max_gap_ns=tf_max_gap_ns)
        info_msgs: dict = defaultdict(dict)
        image_stamps: dict = defaultdict(list)
        depth_stamps: dict = defaultdict(list)
        frame_ids: dict = {}
        info_of = {t: n for n, t in info_topics.items()}
        image_of = {t: n for n, t in cameras.items()}
        depth_of = {t: n for n, t in depths.items()}
        depth_info_of = {t: n for n, t in depth_info_topics.items() if t in by_topic and t not in info_of}
        depth_frames: dict = {}
        depth_info_msgs: dict = defaultdict(dict)
        conns = tf_conns + [by_topic[t] for t in {*info_of, *image_of, *depth_of, *depth_info_of}]
        for conn, _, raw in reader.messages(connections=conns):
            msg = deserialize(raw, conn.msgtype)
            if conn.topic in pose_topics:
                child = pose_topics[conn.topic] or msg.child_frame_id
                try:
                    tree.add(msg.header.frame_id, child, stamp_ns(msg.header), pose_matrix(getattr(msg.pose, "pose",
                                                                                                   msg.pose)))
                except (ValueError, MessageError) as exc:
                    raise ConvertError(f"{conn.topic}: {exc}") from None
                continue
            if conn.topic in TF_TOPICS:
                for tr in msg.transforms:
                    try:
                        tree.add(tr.header.frame_id, tr.child_frame_id, stamp_ns(tr.header), pose_matrix(tr),
                                 static=conn.topic == "/tf_static")
                    except (ValueError, MessageError) as exc:
                        raise ConvertError(f"{conn.topic}: {exc}") from None
                continue
            s = stamp_ns(msg.header)
            if conn.topic in info_of:
                info_msgs[info_of[conn.topic]][s] = msg
            if conn.topic in image_of:
                image_stamps[image_of[conn.topic]].append(s)
                frame_ids.setdefault(image_of[conn.topic], msg.header.frame_id.lstrip("/"))
            if conn.topic in depth_of:
                depth_stamps[depth_of[conn.topic]].append(s)
                depth_frames.setdefault(depth_of[conn.topic], msg.header.frame_id.lstrip("/"))
            if conn.topic in depth_info_of:
                depth_info_msgs[depth_info_of[conn.topic]][s] = msg
    finally:
        reader.close()
    for n in cameras:
        if not image_stamps[n]:
            raise ConvertError(f"camera {n}: no messages on {cameras[n]}")
        if not frame_ids[n]:
            raise ConvertError(f"camera {n}: images on {cameras[n]} have no header.frame_id (their optical frame)")
        if not info_msgs[n]:
            raise ConvertError(f"camera {n}: no messages on {info_topics[n]}")
        if frame_ids[n] not in tree.frames:
            raise ConvertError(f"camera {n}: its frame {frame_ids[n]!r} is not in the TF tree (frames: "
                               f"{sorted(tree.frames)})")
    unregistered = {n for n in depths if depth_frames.get(n) and depth_frames[n] != frame_ids[n]}
    for n in sorted(unregistered):  # a depth camera's own image: registered to the colour camera
        if depth_frames[n] not in tree.frames:
            raise ConvertError(f"camera {n}: its depth frame {depth_frames[n]!r} is not in the TF tree, so its depth "
                               f"cannot be registered to the colour frame {frame_ids[n]!r}")
        if not depth_info_msgs[n]:
            raise ConvertError(f"camera {n}: the depth on {depths[n]} is in frame {depth_frames[n]!r}, not the colour "
                               f"image's {frame_ids[n]!r}: registering it needs the depth camera's camera_info, and "
                               f"{depth_info_topics[n]} has none (--depth-info)")
    if world_frame is not None and world_frame.lstrip("/") not in tree.frames:
        raise ConvertError(f"--world-frame {world_frame!r} is not in the TF tree (frames: {sorted(tree.frames)})")
    # every camera's frame must hang under one root: a camera in another tree would have no pose (a bag recorded
    # without /tf leaves only /tf_static's per-camera trees, without the odom -> base_link edge that joins them)
    under = {n: tree.root(f) for n, f in frame_ids.items()}
    under.update({f"{n} (its depth)": tree.root(depth_frames[n]) for n in sorted(unregistered)})
    world_frame = tree.root(frame_ids[next(iter(cameras))]) if world_frame is None else world_frame.lstrip("/")
    world_root = tree.root(world_frame)
    apart = {n: r for n, r in under.items() if r != world_root}
    if apart:
        raise ConvertError(
            f"the cameras' frames are not all connected to the world frame {world_frame!r} in the bag's TF tree: "
            + ", ".join(f"camera {n} is under {r!r}" for n, r in apart.items())
            + f" (roots {sorted(set(under.values()) | {world_root})}). The transform that joins them "
            "(a robot's odom -> base_link on /tf) is not in the bag: record /tf with the images, add a pose topic "
            "for it (--pose-topic), or convert the cameras of one tree at a time (--camera)")

    first = min(min(v) for v in image_stamps.values())
    lo = first + int(start_s * 1e9)
    hi = None if duration_s is None else lo + int(duration_s * 1e9)

    def inside(s):
        return s >= lo and (hi is None or s <= hi)

    if not any(inside(s) for v in image_stamps.values() for s in v):
        last = max(max(v) for v in image_stamps.values())
        raise ConvertError(f"no images from {start_s:g} s after the first" + ("" if duration_s is None else
                           f" for {duration_s:g} s") + f": the cameras' images span {(last - first) * 1e-9:.3f} s")

    # each colour image's depth: the nearest depth stamp within tolerance, each depth used once (nearest first)
    pairing: dict = {}  # (camera, depth stamp) -> colour stamp
    for n in depths:
        stamps = sorted(depth_stamps[n])
        cands = sorted((abs(d - s), s, d) for s in image_stamps[n] if inside(s)
                       for d in _near(stamps, s, depth_tolerance_ns))
        used_s, used_d = set(), set()
        for _, s, d in cands:
            if s not in used_s and d not in used_d:
                pairing[n, d] = s
                used_s.add(s)
                used_d.add(d)

    skipped: Counter = Counter()
    notes: dict = {}
    # camera_info messages by stamp (drivers publish one per frame, mostly the same): the one at an image's stamp
    # (_at), and its Rectification built once per distinct camera_info, as the node does
    infos_at = {n: (sorted(info_msgs[n]), info_msgs[n]) for n in cameras}
    depth_infos_at = {n: (sorted(depth_info_msgs[n]), depth_info_msgs[n]) for n in unregistered}
    rectifications: dict = {}  # (camera, its topic, info_key) -> Rectification

    def rectification(n, info, topic):
        key = (n, topic, info_key(info))
        if key not in rectifications:
            rectifications[key] = Rectification(info, rectified=rectified_topic(topic), rectify=rectify)
        return rectifications[key]
    written = 0
    depth_written: Counter = Counter()
    decided: dict = {}  # (camera, colour stamp) -> written or not: its depth follows it
    pending: dict = {}  # depth read before its colour image was decided (bag order is arrival order)
    total = sum(1 for n in cameras for s in image_stamps[n] if inside(s))
    reader = _open(Path(src))
    try:
        with new_bag(out, storage) as writer:
            conns_out: dict = {}

            def write(topic, msg, stamp):
                if topic not in conns_out:
                    conns_out[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=TYPESTORE)
                writer.write(conns_out[topic], stamp, serialize(msg))

            def skip(n, reason, message):
                skipped[reason] += 1
                notes.setdefault(reason, f"camera {n}: {message}")

            def write_depth(n, s_img, topic, msg):
                write(topic, msg, s_img)
                depth_written[n] += 1

            # a bar only on a terminal (tqdm: disable=None), as the other commands
            bar = tqdm(total=total, desc="converting", unit="image", disable=None if progress else True, leave=False)
            for conn, _, raw in reader.messages(connections=[by_topic[t] for t in {*image_of, *depth_of}]):
                msg = deserialize(raw, conn.msgtype)
                s = stamp_ns(msg.header)
                compressed = not hasattr(msg, "encoding")
                if conn.topic in image_of:
                    n = image_of[conn.topic]
                    if not inside(s):
                        continue
                    bar.update(1)
                    decided[n, s] = False
                    topics = camera_topics(n, compressed=compressed)
                    info = _at(infos_at[n], s)
                    try:
                        r = rectification(n, info, cameras[n])
                        rgb = compressed_rgb(msg) if compressed else image_rgb(msg)
                        if rgb.shape[1::-1] != r.size:
                            raise MessageError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info says "
                                               f"{r.size[0]}x{r.size[1]}")
                        T = tree.lookup(world_frame, frame_ids[n], s)
                        if r.maps is not None:
                            rgb = r.colour(rgb)
                            msg = image_msg(rgb, s, msg.header.frame_id) if not compressed else \
                                compressed_image_msg(rgb, s, msg.header.frame_id,
                                                     "jpeg" if "jpeg" in msg.format.lower() else "png")
                        # the camera_info of what is written: the pinhole the model assumes
                        info = camera_info_msg(r.K, *r.size, s, info.header.frame_id)
                    except MessageError as exc:
                        skip(n, "bad_image", f"{conn.topic} at stamp {s} ns: {exc}")
                    except RejectedInput as exc:
                        skip(n, exc.reason, f"{conn.topic} at stamp {s} ns: {exc}")
                    else:
                        write(topics["info"], info, s)
                        write(topics["pose"], pose_msg(T, s, world_frame), s)
                        write(topics["image"], msg, s)
                        decided[n, s] = True
                        written += 1
                    if (n, s) in pending and decided[n, s]:
                        write_depth(n, s, *pending[n, s])
                    pending.pop((n, s), None)
                    continue
                n = depth_of[conn.topic]
                s_img = pairing.get((n, s))
                if s_img is None or decided.get((n, s_img)) is False:
                    continue
                try:
                    r = rectification(n, _at(infos_at[n], s_img), cameras[n])
                    d = compressed_depth(msg) if compressed else image_depth(msg)
                    if n in unregistered:
                        rd = rectification(n, _at(depth_infos_at[n], s), depths[n])
                        if d.shape[::-1] != rd.size:
                            raise MessageError(f"depth image is {d.shape[1]}x{d.shape[0]} but its camera_info says "
                                               f"{rd.size[0]}x{rd.size[1]}")
                        T = tree.lookup(frame_ids[n], depth_frames[n], s)
                        d = register_depth(rd.depth(d), rd.K, T, r.K, r.size)
                    elif d.shape[::-1] != r.size:
                        raise MessageError(f"depth image is {d.shape[1]}x{d.shape[0]} but camera_info says "
                                           f"{r.size[0]}x{r.size[1]} (depth must be registered to the colour image)")
                except MessageError as exc:
                    skip(n, "bad_depth", f"{conn.topic} at stamp {s} ns: {exc}")
                    continue
                except RejectedInput as exc:
                    skip(n, "depth_" + exc.reason, f"{conn.topic} at stamp {s} ns: {exc}")
                    continue
                if n in unregistered:  # registered here onto the colour camera's (rectified) pinhole
                    msg = depth_msg(d, s_img, frame_ids[n])
                    compressed = False
                elif r.maps is not None:
                    msg = depth_msg(r.depth(d), s_img, msg.header.frame_id)
                    compressed = False
                else:
                    msg.header.stamp = time_msg(s_img)
                item = (camera_topics(n, compressed=compressed)["depth"], msg)
                if decided.get((n, s_img)):
                    write_depth(n, s_img, *item)
                else:
                    pending[n, s_img] = item
            bar.close()
    finally:
        reader.close()
    if not written:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    lines = [f"wrote {out} ({storage}): {written} of {total} images from {len(cameras)} camera(s), poses in frame "
             f"{world_frame!r}" if written else f"wrote nothing: none of the {total} images could be converted"]
    for n in depths:
        lines.append(f"  {n}: depth with {depth_written[n]} of its images (nearest within "
                     f"{depth_tolerance_ns / 1e6:g} ms, restamped"
                     + (f"; registered from frame {depth_frames[n]!r})" if n in unregistered else ")"))
    for reason, count in skipped.most_common():
        lines.append(f"  skipped {count} ({reason}), e.g. {notes[reason]}")
    return {"views": written, "skipped": skipped, "world_frame": world_frame, "text": "\n".join(lines)}


def _near(sorted_stamps: list[int], s: int, tol: int) -> list[int]:
    """The stamps within tol of s."""
    return sorted_stamps[bisect.bisect_left(sorted_stamps, s - tol):bisect.bisect_right(sorted_stamps, s + tol)]


def _at(series: tuple[list[int], dict], s: int):
    """Of (sorted stamps, {stamp: message}), the message stamped s, else the latest before it, else the earliest
    (intrinsics rarely change)."""
    stamps, msgs = series
    i = bisect.bisect_right(stamps, s)
    return msgs[stamps[i - 1] if i else stamps[0]]
