"""Writes the evaluation scenes as bags (recipes: lrm4d_ros/data/eval_scenes.py; validation seeds, never used in
training):

- default: the model card's 8 object-centric scenes (seeds 1000100–1000107; rigs and motions in turn, 12 frames
  × 8 cameras at 128², 3×3 supersampled, 2–6 primitives, white background), through `lrm4d make-bag`;
- --robot: the 8 procedural robot scenes for the rig protocol (seeds 1002000–1002007; tabletop / workcell / mobile
  layouts on poles / head / orbit rigs, 12 frames × 6 synchronized cameras at 128², 3×3 supersampled), each
  with a contact sheet, and with what a depth camera measures of them on /<cam>/depth (`--depth sensor`, the
  default: data.depth_sensor, seeded per scene; `clean` writes the exact depths, `none` none).

    python benchmarks/eval_scenes.py --out /tmp/lrm4d_eval_bags      # then: lrm4d evaluate /tmp/lrm4d_eval_bags/scene_*
    python benchmarks/eval_scenes.py --robot --out /tmp/lrm4d_robot_bags   # lrm4d evaluate ... --protocol rig
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lrm4d_ros.data.eval_scenes import (CAMERAS, EVAL_SCENES, FRAMES, RESOLUTION, ROBOT_EVAL_SCENES,
                                        render_robot_scenes)


def write_robot_bags(out: Path, depth: str = "sensor", depth_encoding: str = "32FC1",
                     storage: str = "mcap") -> list[Path]:
    """Render ROBOT_EVAL_SCENES and write out/scene_<seed>/ bags (depth: none | clean | sensor, see
    data.depth_sensor.with_depth, seeded by the scene's seed) and out/scene_<seed>_sheet.png."""
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.io.bag import write_bag
    from lrm4d_ros.video import contact_sheet, write_png

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for (seed, layout, rig), views in zip(ROBOT_EVAL_SCENES, _progress(ROBOT_EVAL_SCENES)):
        bag = out / f"scene_{seed}"
        if bag.exists():
            raise SystemExit(f"eval_scenes.py: {bag} exists; remove it or choose another --out")
        views = with_depth(views, depth, seed=seed)
        paths.append(write_bag(views, bag, storage=storage,
                               depth_encoding=None if views.depths is None else depth_encoding))
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
    p.add_argument("--depth", choices=("none", "clean", "sensor"), default="sensor",
                   help="robot scenes: depth on /<cam>/depth as a depth camera measures it (default), exact, or none")
    p.add_argument("--depth-encoding", choices=("32FC1", "16UC1"), default="32FC1",
                   help="robot scenes: the depth images' encoding (default: 32FC1 metres)")
    args = p.parse_args(argv)
    if args.robot:
        write_robot_bags(Path(args.out), args.depth, args.depth_encoding)
        return 0
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
