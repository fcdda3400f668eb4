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
  capture, a localiser) of frame CHILD. `--time-offset NAME=SECONDS` first moves a camera's image, depth and
  camera_info stamps (minus the latency of a driver that stamps frames on arrival), and they are written so;
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
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..argtypes import add_part_arguments
from ..window import RejectedInput
from .rectify import info_topic_for

TF_TOPICS = ("/tf", "/tf_static")
POSE_TYPES = ("nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ConvertError(ValueError):
    """The bag cannot be converted as asked (a topic missing or of another type, a frame not in the TF tree)."""


def _named(items: list[str] | None, what: str, value, expected: str) -> dict:
    """NAME=VALUE items (NAME a camera's) -> {name: value(VALUE)}; value returns None for a VALUE it refuses."""
    out = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        v = value(raw) if sep and _NAME.match(name) else None
        if v is None:
            raise ConvertError(f"{what} {item!r}: expected {expected}")
        if name in out:
            raise ConvertError(f"{what}: camera {name!r} given twice")
        out[name] = v
    return out


def _seconds(raw: str) -> float | None:
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if abs(seconds) <= 10.0 else None  # (nan too)


def _offsets(items: list[str] | None) -> dict[str, float]:
    """--time-offset NAME=SECONDS items -> {name: seconds}."""
    return _named(items, "--time-offset", _seconds, "NAME=SECONDS, SECONDS within +-10")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    """NAME=/topic items -> {name: topic}."""
    return _named(items, what, lambda topic: topic if topic.startswith("/") else None,
                  "NAME=/topic, NAME a letter then letters, digits or _")


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
    p.add_argument("--time-offset", action="append", metavar="NAME=SECONDS",
                   help="add SECONDS to camera NAME's image and depth stamps before they are posed: minus the "
                        "latency of a driver that stamps frames on arrival (repeatable)")
    add_part_arguments(p, "convert", in_memory=False)
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
                              time_offsets=_offsets(args.time_offset),
                              world_frame=args.world_frame, pose_topics=_pose_topics(args.pose_topic),
                              depth_tolerance_ns=int(args.depth_tolerance_ms * 1e6),
                              tf_tolerance_ns=int(args.tf_tolerance_ms * 1e6), tf_max_gap_ns=int(args.tf_max_gap * 1e9),
                              start_s=args.start, duration_s=args.duration, storage=args.storage,
                              rectify=args.rectify == "auto", progress=True)
    except (ConvertError, OSError) as exc:  # FileExistsError, PermissionError: an --out that cannot be written
        return refuse(str(exc))
    print(summary["text"])
    if summary["depth_missing"]:  # asked for and none written: the bag is not what was asked for
        print(f"lrm4d convert-bag: error: no depth image was written for {', '.join(summary['depth_missing'])} "
              f"(--depth): {args.out} holds their colour only", file=sys.stderr)
    return 0 if summary["views"] and not summary["depth_missing"] else 1


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
                storage: str = "mcap", rectify: bool = True, progress: bool = False,
                time_offsets: dict[str, float] | None = None) -> dict:
    """Convert bag `src` into the contract bag `out` (module docstring). cameras / infos / depths: {contract camera
    name: topic}. pose_topics: {topic: child frame ("" = the message's own child_frame_id)}. rectify: False takes
    every image as a pinhole with camera_info's K. time_offsets: {name: seconds} added to that camera's image,
    depth and camera_info stamps (before they are posed, paired and written). Returns {"views": written,
    "skipped": Counter of reasons, "world_frame", "text", "depth_missing": cameras given a depth topic that got no
    depth image}; raises ConvertError for what makes the bag unconvertible,
    FileExistsError if `out` exists.

    Two passes over the bag: the first (`_survey`) reads everything but the pixels (the TF tree, camera_infos, the
    stamps and frames of images and depth), which is checked (`_check_frames`) and pairs each colour image with a
    depth image (`_pair_depths`); the second (`_Writer`) converts and writes the images."""
    from ..outputs import check_writable
    from .bag import BagError, _open

    infos, depths, depth_infos = dict(infos or {}), dict(depths or {}), dict(depth_infos or {})
    time_offsets = dict(time_offsets or {})
    if not cameras:
        raise ConvertError("no --camera given")
    for what, d in (("--info", infos), ("--depth", depths), ("--depth-info", depth_infos),
                    ("--time-offset", time_offsets)):
        if set(d) - set(cameras):
            raise ConvertError(f"{what} names cameras {sorted(set(d) - set(cameras))} that no --camera defines")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new --out")
    check_writable(out, "--out")
    topics = _Topics(cameras, {n: infos.get(n, info_topic_for(t)) for n, t in cameras.items()}, depths,
                     {n: depth_infos.get(n, info_topic_for(t)) for n, t in depths.items()}, dict(pose_topics or {}),
                     {n: round(x * 1e9) for n, x in time_offsets.items()})
    try:
        reader = _open(Path(src))
    except BagError as exc:
        raise ConvertError(str(exc)) from None
    try:
        by_topic = {c.topic: c for c in reader.connections}
        tf_conns = _check_topics(by_topic, topics)
        survey = _survey(reader, by_topic, tf_conns, topics, tf_tolerance_ns, tf_max_gap_ns)
    finally:
        reader.close()
    world_frame = _check_frames(survey, topics, world_frame)

    first = min(min(v) for v in survey.image_stamps.values())
    lo = first + int(start_s * 1e9)
    hi = None if duration_s is None else lo + int(duration_s * 1e9)

    def inside(s):
        return s >= lo and (hi is None or s <= hi)

    if not any(inside(s) for v in survey.image_stamps.values() for s in v):
        last = max(max(v) for v in survey.image_stamps.values())
        raise ConvertError(f"no images from {start_s:g} s after the first" + ("" if duration_s is None else
                           f" for {duration_s:g} s") + f": the cameras' images span {(last - first) * 1e-9:.3f} s")
    pairing = _pair_depths(survey, depths, inside, depth_tolerance_ns)
    total = sum(1 for n in cameras for s in survey.image_stamps[n] if inside(s))
    w = _Writer(topics, survey, world_frame, pairing, rectify)
    reader = _open(Path(src))
    try:
        w.write_all(reader, by_topic, out, storage, inside, total, progress)
    finally:
        reader.close()
    if not w.written:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    lines = [f"wrote {out} ({storage}): {w.written} of {total} images from {len(cameras)} camera(s), poses in frame "
             f"{world_frame!r}" if w.written else f"wrote nothing: none of the {total} images could be converted"]
    for n, x in time_offsets.items():
        lines.append(f"  {n}: stamps moved by {x * 1e3:+g} ms (--time-offset)")
    for n in depths:
        lines.append(f"  {n}: depth with {w.depth_written[n]} of its images (nearest within "
                     f"{depth_tolerance_ns / 1e6:g} ms, restamped"
                     + (f"; registered from frame {survey.depth_frames[n]!r})" if n in survey.unregistered else ")"))
    for reason, count in w.skipped.most_common():
        lines.append(f"  skipped {count} ({reason}), e.g. {w.notes[reason]}")
    return {"views": w.written, "skipped": w.skipped, "world_frame": world_frame, "text": "\n".join(lines),
            "depth_missing": [n for n in depths if w.written and not w.depth_written[n]]}


@dataclass
class _Topics:
    """What convert_bag was asked for, by contract camera name: image, camera_info, depth and depth camera_info
    topics ({name: topic}), the pose topics ({topic: child frame, "" = the message's own}) and each camera's
    --time-offset (ns)."""

    images: dict[str, str]
    infos: dict[str, str]
    depths: dict[str, str]
    depth_infos: dict[str, str]
    poses: dict[str, str]
    offsets_ns: dict[str, int] = field(default_factory=dict)  # added to a camera's image, depth and info stamps


def _check_topics(by_topic: dict, topics: _Topics) -> list:
    """Every asked-for topic is in the bag with a type it can be; returns the connections poses come from (TF and
    the pose topics). ConvertError otherwise."""
    def need(topic, types, what):
        if topic not in by_topic:
            near = [t for t in sorted(by_topic) if t.rsplit("/", 1)[-1] in ("image_raw", "compressed",
                                                                             "camera_info", "compressedDepth")]
            raise ConvertError(f"{what} topic {topic} is not in the bag (image and camera_info topics there: "
                               f"{near})")
        if by_topic[topic].msgtype not in types:
            raise ConvertError(f"{what} topic {topic} is {by_topic[topic].msgtype}, expected {' or '.join(types)}")

    for n in topics.images:
        need(topics.images[n], IMAGE_TYPES, f"camera {n}'s image")
        need(topics.infos[n], ("sensor_msgs/msg/CameraInfo",), f"camera {n}'s camera_info")
        if n in topics.depths:
            need(topics.depths[n], IMAGE_TYPES, f"camera {n}'s depth")
    colour = {t: n for n, t in topics.images.items()}
    for n, t in topics.depths.items():  # one topic read as both: its messages would be only one of them
        if t in colour:
            raise ConvertError(f"camera {n}'s depth topic {t} is camera {colour[t]}'s colour image topic (--camera): "
                               "give its depth image topic")
    tf_conns = [by_topic[t] for t in TF_TOPICS if t in by_topic and by_topic[t].msgtype == "tf2_msgs/msg/TFMessage"]
    for topic, child in topics.poses.items():
        need(topic, POSE_TYPES, "pose")
        if not child and by_topic[topic].msgtype != "nav_msgs/msg/Odometry":
            raise ConvertError(f"pose topic {topic} is {by_topic[topic].msgtype}, which names no child frame: "
                               f"give it as {topic}=FRAME")
    tf_conns += [by_topic[t] for t in topics.poses]
    if not tf_conns:
        raise ConvertError("the bag has no /tf or /tf_static (tf2_msgs/TFMessage) and no --pose-topic was given: "
                           "no camera poses")
    return tf_conns


@dataclass
class _Survey:
    """The bag's first pass: everything but the pixels. Per camera name: camera_infos and the depth camera's by
    stamp, image and depth stamps, the images' and the depth's frame_id."""

    tree: object  # io.tf_tree.TransformTree
    info_msgs: dict = field(default_factory=lambda: defaultdict(dict))
    image_stamps: dict = field(default_factory=lambda: defaultdict(list))
    depth_stamps: dict = field(default_factory=lambda: defaultdict(list))
    frame_ids: dict = field(default_factory=dict)
    depth_frames: dict = field(default_factory=dict)
    depth_info_msgs: dict = field(default_factory=lambda: defaultdict(dict))

    @cached_property
    def unregistered(self) -> set:
        """The cameras whose depth is in a frame of its own, registered onto the colour camera (read once the
        survey is complete)."""
        return {n for n, f in self.depth_frames.items() if f and f != self.frame_ids.get(n)}


def _survey(reader, by_topic: dict, tf_conns: list, topics: _Topics, tf_tolerance_ns: int,
            tf_max_gap_ns: int) -> _Survey:
    from .messages import MessageError, deserialize, pose_matrix, stamp_ns
    from .tf_tree import TransformTree

    survey = _Survey(TransformTree(tolerance_ns=tf_tolerance_ns, max_gap_ns=tf_max_gap_ns))
    info_of = {t: n for n, t in topics.infos.items()}
    image_of = {t: n for n, t in topics.images.items()}
    depth_of = {t: n for n, t in topics.depths.items()}
    depth_info_of = {t: n for n, t in topics.depth_infos.items() if t in by_topic and t not in info_of}
    conns = tf_conns + [by_topic[t] for t in {*info_of, *image_of, *depth_of, *depth_info_of}]
    for conn, _, raw in reader.messages(connections=conns):
        msg = deserialize(raw, conn.msgtype)
        if conn.topic in topics.poses:
            child = topics.poses[conn.topic] or msg.child_frame_id
            try:
                survey.tree.add(msg.header.frame_id, child, stamp_ns(msg.header),
                                pose_matrix(getattr(msg.pose, "pose", msg.pose)))
            except (ValueError, MessageError) as exc:
                raise ConvertError(f"{conn.topic}: {exc}") from None
            continue
        if conn.topic in TF_TOPICS:
            for tr in msg.transforms:
                try:
                    survey.tree.add(tr.header.frame_id, tr.child_frame_id, stamp_ns(tr.header), pose_matrix(tr),
                                    static=conn.topic == "/tf_static")
                except (ValueError, MessageError) as exc:
                    raise ConvertError(f"{conn.topic}: {exc}") from None
            continue
        name = info_of.get(conn.topic) or image_of.get(conn.topic) or depth_of.get(conn.topic) \
            or depth_info_of.get(conn.topic)
        s = stamp_ns(msg.header) + topics.offsets_ns.get(name, 0)
        if conn.topic in info_of:
            survey.info_msgs[info_of[conn.topic]][s] = msg
        if conn.topic in image_of:
            survey.image_stamps[image_of[conn.topic]].append(s)
            survey.frame_ids.setdefault(image_of[conn.topic], msg.header.frame_id.lstrip("/"))
        if conn.topic in depth_of:
            survey.depth_stamps[depth_of[conn.topic]].append(s)
            survey.depth_frames.setdefault(depth_of[conn.topic], msg.header.frame_id.lstrip("/"))
        if conn.topic in depth_info_of:
            survey.depth_info_msgs[depth_info_of[conn.topic]][s] = msg
    return survey


def _check_frames(survey: _Survey, topics: _Topics, world_frame: str | None) -> str:
    """Every camera has images, camera_info and a frame in one TF tree with the world frame (and a depth camera
    in its own frame, that frame and its camera_info); returns the world frame (default: the tree's root).
    ConvertError otherwise."""
    tree, frame_ids, depth_frames = survey.tree, survey.frame_ids, survey.depth_frames
    for n in topics.images:
        if not survey.image_stamps[n]:
            raise ConvertError(f"camera {n}: no messages on {topics.images[n]}")
        if not frame_ids[n]:
            raise ConvertError(f"camera {n}: images on {topics.images[n]} have no header.frame_id (their optical "
                               f"frame)")
        if not survey.info_msgs[n]:
            raise ConvertError(f"camera {n}: no messages on {topics.infos[n]}")
        if frame_ids[n] not in tree.frames:
            raise ConvertError(f"camera {n}: its frame {frame_ids[n]!r} is not in the TF tree (frames: "
                               f"{sorted(tree.frames)})")
    for n in sorted(survey.unregistered):  # a depth camera's own image: registered to the colour camera
        if depth_frames[n] not in tree.frames:
            raise ConvertError(f"camera {n}: its depth frame {depth_frames[n]!r} is not in the TF tree, so its depth "
                               f"cannot be registered to the colour frame {frame_ids[n]!r}")
        if not survey.depth_info_msgs[n]:
            raise ConvertError(f"camera {n}: the depth on {topics.depths[n]} is in frame {depth_frames[n]!r}, not "
                               f"the colour image's {frame_ids[n]!r}: registering it needs the depth camera's "
                               f"camera_info, and {topics.depth_infos[n]} has none (--depth-info)")
    if world_frame is not None and world_frame.lstrip("/") not in tree.frames:
        raise ConvertError(f"--world-frame {world_frame!r} is not in the TF tree (frames: {sorted(tree.frames)})")
    # every camera's frame must hang under one root: a camera in another tree would have no pose (a bag recorded
    # without /tf leaves only /tf_static's per-camera trees, without the odom -> base_link edge that joins them)
    under = {n: tree.root(f) for n, f in frame_ids.items()}
    under.update({f"{n} (its depth)": tree.root(depth_frames[n]) for n in sorted(survey.unregistered)})
    world_frame = tree.root(frame_ids[next(iter(topics.images))]) if world_frame is None else world_frame.lstrip("/")
    world_root = tree.root(world_frame)
    apart = {n: r for n, r in under.items() if r != world_root}
    if apart:
        raise ConvertError(
            f"the cameras' frames are not all connected to the world frame {world_frame!r} in the bag's TF tree: "
            + ", ".join(f"camera {n} is under {r!r}" for n, r in apart.items())
            + f" (roots {sorted(set(under.values()) | {world_root})}). The transform that joins them "
            "(a robot's odom -> base_link on /tf) is not in the bag: record /tf with the images, add a pose topic "
            "for it (--pose-topic), or convert the cameras of one tree at a time (--camera)")
    return world_frame


def _pair_depths(survey: _Survey, depths: dict[str, str], inside, tolerance_ns: int) -> dict:
    """{(camera, depth stamp): colour stamp}: each colour image (stamped `inside` the part converted) with the
    nearest depth stamp within tolerance, each depth used once, nearest pairs first."""
    pairing = {}
    for n in depths:
        stamps = sorted(survey.depth_stamps[n])
        cands = sorted((abs(d - s), s, d) for s in survey.image_stamps[n] if inside(s)
                       for d in _near(stamps, s, tolerance_ns))
        used_s, used_d = set(), set()
        for _, s, d in cands:
            if s not in used_s and d not in used_d:
                pairing[n, d] = s
                used_s.add(s)
                used_d.add(d)
    return pairing


class _Writer:
    """The bag's second pass: each colour image rectified where it needs it and written with its camera_info and
    pose, each paired depth image (registered, rectified, restamped) after its colour image; what cannot be
    converted is skipped and counted per reason (`skipped`, with one example each in `notes`)."""

    def __init__(self, topics: _Topics, survey: _Survey, world_frame: str, pairing: dict, rectify: bool):
        self.topics, self.survey, self.world_frame, self.pairing, self.rectify = (topics, survey, world_frame,
                                                                                   pairing, rectify)
        self.written = 0
        self.depth_written: Counter = Counter()
        self.skipped: Counter = Counter()
        self.notes: dict = {}
        # camera_info messages by stamp (drivers publish one per frame, mostly the same): the one at an image's
        # stamp (_at), and its Rectification built once per distinct camera_info, as the node does
        self.infos_at = {n: (sorted(survey.info_msgs[n]), survey.info_msgs[n]) for n in topics.images}
        self.depth_infos_at = {n: (sorted(survey.depth_info_msgs[n]), survey.depth_info_msgs[n])
                               for n in survey.unregistered}
        self._rectifications: dict = {}  # (camera, its topic, info_key) -> Rectification
        self.decided: dict = {}  # (camera, colour stamp) -> written or not: its depth follows it
        self.pending: dict = {}  # depth read before its colour image was decided (bag order is arrival order)
        self._writer, self._conns = None, {}

    def write_all(self, reader, by_topic: dict, out: Path, storage: str, inside, total: int, progress: bool):
        from tqdm import tqdm

        from .bag import new_bag
        from .messages import deserialize, stamp_ns

        image_of = {t: n for n, t in self.topics.images.items()}
        depth_of = {t: n for n, t in self.topics.depths.items()}
        with new_bag(out, storage) as self._writer:
            # a bar only on a terminal (tqdm: disable=None), as the other commands
            bar = tqdm(total=total, desc="converting", unit="image", disable=None if progress else True, leave=False)
            for conn, _, raw in reader.messages(connections=[by_topic[t] for t in {*image_of, *depth_of}]):
                msg = deserialize(raw, conn.msgtype)
                n = image_of.get(conn.topic) or depth_of[conn.topic]
                s = stamp_ns(msg.header) + self.topics.offsets_ns.get(n, 0)
                if conn.topic in image_of:
                    if inside(s):
                        bar.update(1)
                        self.colour(n, conn.topic, msg, s)
                else:
                    self.depth(n, conn.topic, msg, s)
            bar.close()

    def _write(self, topic, msg, stamp):
        from .messages import TYPESTORE, serialize

        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(topic, msg.__msgtype__, typestore=TYPESTORE)
        self._writer.write(self._conns[topic], stamp, serialize(msg))

    def _skip(self, n, reason, message):
        self.skipped[reason] += 1
        self.notes.setdefault(reason, f"camera {n}: {message}")

    def _write_depth(self, n, s_img, topic, msg):
        self._write(topic, msg, s_img)
        self.depth_written[n] += 1

    def _rectification(self, n, info, topic):
        from .rectify import Rectification, info_key, rectified_topic

        key = (n, topic, info_key(info))
        if key not in self._rectifications:
            self._rectifications[key] = Rectification(info, rectified=rectified_topic(topic), rectify=self.rectify)
        return self._rectifications[key]

    def colour(self, n: str, topic: str, msg, s: int) -> None:
        from .bag import camera_topics
        from .compressed import compressed_image_msg, compressed_rgb
        from .messages import MessageError, camera_info_msg, image_msg, image_rgb, pose_msg, time_msg

        compressed = not hasattr(msg, "encoding")
        self.decided[n, s] = False
        out_topics = camera_topics(n, compressed=compressed)
        info = _at(self.infos_at[n], s)
        try:
            r = self._rectification(n, info, self.topics.images[n])
            rgb = compressed_rgb(msg) if compressed else image_rgb(msg)
            if rgb.shape[1::-1] != r.size:
                raise MessageError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but camera_info says "
                                   f"{r.size[0]}x{r.size[1]}")
            T = self.survey.tree.lookup(self.world_frame, self.survey.frame_ids[n], s)
            if r.maps is not None:
                rgb = r.colour(rgb)
                msg = image_msg(rgb, s, msg.header.frame_id) if not compressed else \
                    compressed_image_msg(rgb, s, msg.header.frame_id, "jpeg" if "jpeg" in msg.format.lower() else "png")
            else:
                msg.header.stamp = time_msg(s)  # (moved by --time-offset)
            # the camera_info of what is written: the pinhole the model assumes
            info = camera_info_msg(r.K, *r.size, s, info.header.frame_id)
        except MessageError as exc:
            self._skip(n, "bad_image", f"{topic} at stamp {s} ns: {exc}")
        except RejectedInput as exc:
            self._skip(n, exc.reason, f"{topic} at stamp {s} ns: {exc}")
        else:
            self._write(out_topics["info"], info, s)
            self._write(out_topics["pose"], pose_msg(T, s, self.world_frame), s)
            self._write(out_topics["image"], msg, s)
            self.decided[n, s] = True
            self.written += 1
        if (n, s) in self.pending and self.decided[n, s]:
            self._write_depth(n, s, *self.pending[n, s])
        self.pending.pop((n, s), None)

    def depth(self, n: str, topic: str, msg, s: int) -> None:
        from .bag import camera_topics
        from .compressed import compressed_depth
        from .messages import MessageError, depth_msg, image_depth, time_msg
        from .register import register_depth

        s_img = self.pairing.get((n, s))
        if s_img is None or self.decided.get((n, s_img)) is False:
            return
        compressed = not hasattr(msg, "encoding")
        unregistered = n in self.survey.unregistered
        try:
            r = self._rectification(n, _at(self.infos_at[n], s_img), self.topics.images[n])
            d = compressed_depth(msg) if compressed else image_depth(msg)
            if unregistered:
                rd = self._rectification(n, _at(self.depth_infos_at[n], s), self.topics.depths[n])
                if d.shape[::-1] != rd.size:
                    raise MessageError(f"depth image is {d.shape[1]}x{d.shape[0]} but its camera_info says "
                                       f"{rd.size[0]}x{rd.size[1]}")
                T = self.survey.tree.lookup(self.survey.frame_ids[n], self.survey.depth_frames[n], s)
                d = register_depth(rd.depth(d), rd.K, T, r.K, r.size)
            elif d.shape[::-1] != r.size:
                raise MessageError(f"depth image is {d.shape[1]}x{d.shape[0]} but camera_info says "
                                   f"{r.size[0]}x{r.size[1]} (depth must be registered to the colour image)")
        except MessageError as exc:
            return self._skip(n, "bad_depth", f"{topic} at stamp {s} ns: {exc}")
        except RejectedInput as exc:
            return self._skip(n, "depth_" + exc.reason, f"{topic} at stamp {s} ns: {exc}")
        if unregistered:  # registered here onto the colour camera's (rectified) pinhole
            msg, compressed = depth_msg(d, s_img, self.survey.frame_ids[n]), False
        elif r.maps is not None:
            msg, compressed = depth_msg(r.depth(d), s_img, msg.header.frame_id), False
        else:
            msg.header.stamp = time_msg(s_img)
        item = (camera_topics(n, compressed=compressed)["depth"], msg)
        if self.decided.get((n, s_img)):
            self._write_depth(n, s_img, *item)
        else:
            self.pending[n, s_img] = item


def _near(sorted_stamps: list[int], s: int, tol: int) -> list[int]:
    """The stamps within tol of s."""
    return sorted_stamps[bisect.bisect_left(sorted_stamps, s - tol):bisect.bisect_right(sorted_stamps, s + tol)]


def _at(series: tuple[list[int], dict], s: int):
    """Of (sorted stamps, {stamp: message}), the message stamped s, else the latest before it, else the earliest
    (intrinsics rarely change)."""
    stamps, msgs = series
    i = bisect.bisect_right(stamps, s)
    return msgs[stamps[i - 1] if i else stamps[0]]
