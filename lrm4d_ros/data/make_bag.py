"""`lrm4d make-bag`: render a procedural 4D scene and write it as a contract bag plus a contact sheet.

Writes OUT/scene_<seed>/ (the bag directory, docs/design.md §4) and OUT/scene_<seed>_sheet.png (rows: cameras,
columns: frames). `--depth clean` adds /<cam>/depth with the exact z-depth, `--depth sensor` with what a
depth camera would measure (data.depth_sensor: noise growing with z², dropouts at edges and grazing angles,
a working range), seeded by the scene seed.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..io.bag import COMPRESSIONS
from ..io.messages import DEPTH_ENCODINGS
from .depth_sensor import SENSOR_MODES, with_depth
from .generator import SceneConfig, all_views, sample_scene
from .motion import MOTION_KINDS
from .raycast import render_views
from .rigs import RIG_KINDS


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition(",")
    try:
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or LO,HI, got {text!r}") from None
    if not 1 <= lo_i <= hi_i:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI, got {text!r}")
    return lo_i, hi_i


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="scene seed (the same seed, the same bag)")
    parser.add_argument("--out", required=True, help="output folder (created); the bag goes in scene_<seed>/")
    parser.add_argument("--rig", choices=RIG_KINDS, default="orbit", help="camera rig kind (default: orbit)")
    parser.add_argument("--motion", choices=MOTION_KINDS, default=None, help="motion kind (default: random)")
    parser.add_argument("--frames", type=int, default=12, help="frames per camera (default: 12)")
    parser.add_argument("--cameras", type=int, default=8, help="number of cameras (default: 8)")
    parser.add_argument("--resolution", type=int, default=128, help="square image side in pixels (default: 128)")
    parser.add_argument("--primitives", type=_range, default=(2, 6), help="N or LO,HI primitives (default: 2,6)")
    parser.add_argument("--ground", type=float, default=0.3, help="probability of a ground plane (default: 0.3)")
    parser.add_argument("--backdrop", type=float, default=0.1, help="probability of a backdrop (default: 0.1)")
    parser.add_argument("--supersample", type=int, default=3,
                        help="odd s: s x s rays per pixel, anti-aliased images (default: 3; 1 = point samples)")
    parser.add_argument("--depth", choices=SENSOR_MODES, default="none",
                        help="/<cam>/depth topics: none, clean (exact z-depth) or sensor (a modelled RGB-D camera; "
                             "default: none)")
    parser.add_argument("--depth-encoding", choices=DEPTH_ENCODINGS, default=None,
                        help="32FC1 metres (bit-exact) or 16UC1 millimetres (default: 32FC1; --robot: 16UC1, as a "
                             "RealSense driver)")
    parser.add_argument("--compression", choices=("none",) + COMPRESSIONS, default="none",
                        help="images (and depth) as image_transport's compressed plugins record them: "
                             "/<cam>/image_raw/compressed (png lossless, jpeg) and /<cam>/depth/compressedDepth "
                             "(PNG) (default: none, raw sensor_msgs/Image)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default: mcap)")
    parser.add_argument("--robot", action="store_true",
                        help="record it as a robot's drivers do instead of as a contract bag: poses only on /tf and "
                             "/tf_static (world frame odom), RealSense topic names under /robot/<cam>/, depth as its "
                             "aligned_depth_to_color 16UC1 (--compression applies to colour only) (io/robot_bag.py); "
                             "what `lrm4d convert-bag` and the node's pose_source tf take")
    parser.add_argument("--device", default="cpu", help="torch device for rendering (default: cpu)")


def render_scene(args):
    """(Scene, its T·C views on the CPU with exact depths) for parsed make-bag arguments."""
    cfg = SceneConfig(num_primitives=tuple(args.primitives), rig_kinds=(args.rig,),
                      motion_kinds=(args.motion,) if args.motion else MOTION_KINDS, frames=args.frames,
                      cameras=args.cameras, height=args.resolution, width=args.resolution,
                      ground_prob=args.ground, backdrop_prob=args.backdrop, supersample=args.supersample)
    scene = sample_scene(args.seed, cfg)
    cams, stamps = all_views(scene)
    return scene, render_views(scene, cams, stamps, args.resolution, args.resolution, device=args.device,
                               supersample=args.supersample).to("cpu")


def run(args) -> int:
    from ..io.bag import write_bag
    from ..outputs import check_writable
    from ..video import contact_sheet, write_png

    def refuse(message: str) -> int:
        print(f"lrm4d make-bag: error: {message}", file=sys.stderr)
        return 2

    if min(args.frames, args.cameras, args.resolution) < 1:
        return refuse("--frames, --cameras and --resolution must be >= 1")
    if args.supersample < 1 or args.supersample % 2 == 0:
        return refuse(f"--supersample must be an odd integer >= 1, got {args.supersample}")
    if not (0.0 <= args.ground <= 1.0 and 0.0 <= args.backdrop <= 1.0):
        return refuse(f"--ground and --backdrop are probabilities in [0, 1], got {args.ground}, {args.backdrop}")
    if args.robot and args.depth_encoding not in (None, "16UC1"):
        return refuse(f"--robot records depth as a RealSense driver does (16UC1 millimetres): --depth-encoding "
                      f"{args.depth_encoding} does not apply")
    args.depth_encoding = args.depth_encoding or ("16UC1" if args.robot else "32FC1")
    out = Path(args.out)
    try:
        check_writable(out, "--out")
    except OSError as e:  # a file in the way, a read-only folder: before the scene is rendered
        return refuse(str(e))
    bag_dir = out / f"scene_{args.seed}"
    if bag_dir.exists():
        return refuse(f"{bag_dir} exists; remove it or choose another --out/--seed")
    scene, views = render_scene(args)
    views = with_depth(views, args.depth, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if args.robot:
            from ..io.robot_bag import write_robot_bag

            write_robot_bag(views if args.depth != "none" else replace(views, depths=None), bag_dir,
                            compression=None if args.compression == "none" else args.compression,
                            storage=args.storage)
        else:
            write_bag(views, bag_dir, storage=args.storage,
                      depth_encoding=None if args.depth == "none" else args.depth_encoding,
                      compression=None if args.compression == "none" else args.compression)
    except ValueError as e:
        return refuse(str(e))
    T, C = scene.stamps_ns.shape
    grid = views.images.reshape(T, C, args.resolution, args.resolution, 3)
    sheet = contact_sheet([(f"{name}  ({args.rig} rig, frames 0..{T - 1})", grid[:, c])
                           for c, name in enumerate(scene.rig.names)])
    sheet_path = write_png(out / f"scene_{args.seed}_sheet.png", sheet)
    span_ms = (int(scene.stamps_ns.max()) - int(scene.stamps_ns.min())) / 1e6
    print(f"scene {args.seed}: {len(scene.kinds)} primitives ({', '.join(scene.kinds)}), {scene.motion_kind} motion,"
          f" {args.rig} rig, ground={'yes' if scene.ground is not None else 'no'},"
          f" backdrop={'yes' if scene.backdrop is not None else 'no'}")
    print(f"wrote bag {bag_dir} ({args.storage}{'' if args.compression == 'none' else ', ' + args.compression}): "
          f"{C} cameras x {T} frames = {len(views)} views at "
          f"{args.resolution}x{args.resolution}, stamps {int(scene.stamps_ns.min())}..{int(scene.stamps_ns.max())} ns"
          f" ({span_ms:.1f} ms)")
    if views.depths is not None and bool((views.depths > 0).any()):
        encoding = "aligned_depth_to_color" if args.robot else args.depth_encoding
        print(f"depth ({args.depth}, {encoding}): {float((views.depths > 0).float().mean()):.1%} of pixels "
              f"measured, {float(views.depths[views.depths > 0].min()):.2f}-{float(views.depths.max()):.2f} m")
    print(f"wrote contact sheet {sheet_path} (rows: cameras, columns: frames)")
    if args.robot:
        from ..io.robot_bag import node_params, robot_topics

        first = robot_topics(scene.rig.names[0], compressed=args.compression != "none")
        params = out / f"scene_{args.seed}_node.yaml"
        params.write_text(node_params(list(scene.rig.names), compressed=args.compression != "none",
                                      depth=args.depth != "none",
                                      floor_z=float(scene.ground_z) if scene.ground is not None else None))
        print(f"recorded as a robot does (poses on /tf, {first['image']} ...): `lrm4d convert-bag {bag_dir} --out "
              f"OUT` suggests the command that writes its contract bag")
        print(f"wrote the node's parameters for it, {params} (pose_source tf, world_frame odom, "
              + (f"its ground at z = {float(scene.ground_z):.3f} m in odom" if scene.ground is not None else
                 "no ground") + f"): `python -m lrm4d_ros.ros.reconstruct_node --ros-args --params-file {params} -p "
              f"use_sim_time:=true`, then `lrm4d play {bag_dir} --clock`")
    return 0
