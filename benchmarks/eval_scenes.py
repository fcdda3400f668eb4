"""Writes the evaluation scenes as bags (recipes: lrm4d_ros/data/eval_scenes.py; validation seeds, never used in
training):

- default: the model card's 8 object-centric scenes (seeds 1000100–1000107; rigs and motions in turn, 12 frames
  × 8 cameras at 128², 3×3 supersampled, 2–6 primitives, white background), through `lrm4d make-bag`;
- --robot: the 8 procedural robot scenes for the rig protocol (seeds 1002000–1002007; tabletop / workcell / mobile
  layouts on poles / head / orbit rigs, 12 frames × 6 synchronized cameras at 128², 3×3 supersampled), each
  with a contact sheet. --depth-encoding 32FC1|16UC1 also writes their exact depths on /<cam>/depth, once
  io/bag.write_bag takes `depth_encoding` (the depth contract, DESIGN.md §4).

    python benchmarks/eval_scenes.py --out /tmp/lrm4d_eval_bags      # then: lrm4d evaluate /tmp/lrm4d_eval_bags/scene_*
    python benchmarks/eval_scenes.py --robot --out /tmp/lrm4d_robot_bags
"""
from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from lrm4d_ros.data.eval_scenes import (CAMERAS, EVAL_SCENES, FRAMES, RESOLUTION, ROBOT_EVAL_SCENES,
                                        render_robot_scenes)


def write_robot_bags(out: Path, depth_encoding: str | None = None, storage: str = "mcap") -> list[Path]:
    """Render ROBOT_EVAL_SCENES and write out/scene_<seed>/ bags and out/scene_<seed>_sheet.png."""
    from lrm4d_ros.io.bag import write_bag
    from lrm4d_ros.video import contact_sheet, write_png

    extra = {}
    if depth_encoding is not None:
        if "depth_encoding" not in inspect.signature(write_bag).parameters:
            raise SystemExit("eval_scenes.py: this lrm4d_ros.io.bag.write_bag writes no depth yet "
                             "(its depth_encoding argument comes with the depth contract); use --depth-encoding none")
        extra["depth_encoding"] = depth_encoding
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for (seed, layout, rig), views in zip(ROBOT_EVAL_SCENES, _progress(ROBOT_EVAL_SCENES)):
        bag = out / f"scene_{seed}"
        if bag.exists():
            raise SystemExit(f"eval_scenes.py: {bag} exists; remove it or choose another --out")
        paths.append(write_bag(views, bag, storage=storage, **extra))
        T, C = len(views) // len(views.camera_names), len(views.camera_names)
        grid = views.images.reshape(T, C, *views.images.shape[1:])
        write_png(out / f"scene_{seed}_sheet.png", contact_sheet(
            [(f"{name}  ({layout}, {rig} rig, frames 0..{T - 1})", grid[:, c]) for c, name in
             enumerate(views.camera_names)]))
        print(f"wrote {bag}: {layout} on a {rig} rig, {C} cameras x {T} frames", flush=True)
    return paths


def _progress(scenes):
    for scene in scenes:
        yield render_robot_scenes([scene])[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for scene_<seed>/ bags")
    p.add_argument("--robot", action="store_true", help="write the robot scenes (rig protocol) instead")
    p.add_argument("--depth-encoding", choices=("none", "32FC1", "16UC1"), default="none",
                   help="robot scenes: also write depth in this encoding (default: none)")
    args = p.parse_args(argv)
    if args.robot:
        write_robot_bags(Path(args.out), None if args.depth_encoding == "none" else args.depth_encoding)
        return 0
    if args.depth_encoding != "none":
        p.error("--depth-encoding applies to --robot scenes only")
    from lrm4d_ros.cli import main as lrm4d

    for seed, rig, motion in EVAL_SCENES:
        code = lrm4d(["make-bag", "--seed", str(seed), "--rig", rig, "--motion", motion, "--ground", "0",
                      "--backdrop", "0", "--frames", str(FRAMES), "--cameras", str(CAMERAS),
                      "--resolution", str(RESOLUTION), "--out", args.out])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
