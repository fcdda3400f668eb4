#!/usr/bin/env python3
"""Render dm_control robot scenes into contract bags (docs/design.md §4) for `lrm4d evaluate`.

    MUJOCO_GL=osmesa python scripts/make_mujoco_bags.py --out DIR --scenes humanoid,quadruped,dog,jaco \
        --frames 12 --cameras 8 --resolution 128 [--rig ring|workcell] [--world] [--depth none|clean|sensor]

writes DIR/<scene>_<rig>[_floor] (a bag) and DIR/<scene>_<rig>[_floor].png (contact sheet: one row per frame,
one column per camera, then a row of frame-0 z-depth: as written, or the exact one without --depth). `--world` keeps the model's floor (a
checkered plane) and walls, which the robot-only default hides; `--depth` adds /<cam>/depth: the renderer's
exact z-depth (clean) or what a depth camera would measure (sensor: lrm4d_ros.data.depth_sensor, seeded).

`--preset robots` is the project's robot bag set, its stand-in for robots filmed by a synchronized rig: the
Jaco arm (alone, among bricks, with a moveable-base brick), the quadruped and the humanoid on their checkered
floors, six workcell cameras, sensor depth (32FC1), 12 frames at 10 fps (options given explicitly win).
Needs `pip install "mujoco==3.17.0" dm-control` and libosmesa6.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from lrm4d_ros.data.depth_sensor import SENSOR_MODES, with_depth
from lrm4d_ros.data.mujoco_scenes import SCENES, record_scene

DEFAULTS = {"scenes": "humanoid,quadruped,dog,jaco", "cameras": 8, "rig": "ring", "world": False, "depth": "none"}
PRESETS = {"robots": {"scenes": "jaco,jaco_bricks,jaco_base,quadruped,humanoid", "cameras": 6, "rig": "workcell",
                      "world": True, "depth": "sensor"}}


def contact_sheet(views, frames: int, cameras: int) -> np.ndarray:
    """(H·(T+1), W·C, 3) uint8: RGB of every view, frame-major, then frame 0's depth (turbo, near = red)."""
    H, W = views.height, views.width
    rgb = (views.images.numpy().reshape(frames, cameras, H, W, 3) * 255 + 0.5).astype(np.uint8)
    rows = [np.concatenate(list(r), axis=1) for r in rgb]
    d = views.depths[:cameras].numpy()
    valid = d > 0
    lo, hi = (d[valid].min(), d[valid].max()) if valid.any() else (0.0, 1.0)
    g = (255 * (1 - (d - lo) / max(hi - lo, 1e-9))).clip(0, 255).astype(np.uint8)
    turbo = np.stack([cv2.applyColorMap(x, cv2.COLORMAP_TURBO)[..., ::-1] for x in g])
    turbo[~valid] = 255
    rows.append(np.concatenate(list(turbo), axis=1))
    return np.concatenate(rows, axis=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory")
    ap.add_argument("--preset", choices=sorted(PRESETS), default=None, help="a bag set (see the module docstring)")
    ap.add_argument("--scenes", default=None,
                    help=f"comma-separated, from {','.join(sorted(SCENES))} (default: {DEFAULTS['scenes']})")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--cameras", type=int, default=None, help=f"default: {DEFAULTS['cameras']}")
    ap.add_argument("--resolution", type=int, default=128, help="square image side in pixels")
    ap.add_argument("--rig", default=None, help="ring (object-centric, the default) or workcell (or another "
                                                 "data.rigs kind)")
    ap.add_argument("--world", action="store_true", default=None, help="show the floor/walls (default: robot only)")
    ap.add_argument("--depth", choices=SENSOR_MODES, default=None, help="/<cam>/depth topics (default: none)")
    ap.add_argument("--depth-encoding", choices=("32FC1", "16UC1"), default="32FC1")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--jitter-ms", type=float, default=10.0, help="per-camera capture jitter, uniform [0, J) ms")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheets-only", action="store_true", help="write the contact sheets but no bags")
    ap.add_argument("--force", action="store_true", help="replace bags that already exist in --out")
    args = ap.parse_args(argv)
    for key, value in {**DEFAULTS, **PRESETS.get(args.preset, {})}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()]
    unknown = [s for s in scenes if s not in SCENES]
    if unknown:
        ap.error(f"unknown scenes {unknown}; choose from {sorted(SCENES)}")
    write_bag = None
    if not args.sheets_only:
        from lrm4d_ros.io.bag import write_bag
    args.out.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        t0 = time.perf_counter()
        rec = record_scene(scene, args.frames, args.cameras, args.resolution, args.rig, fps=args.fps,
                           jitter_s=args.jitter_ms * 1e-3, seed=args.seed, show_world=args.world)
        exact = rec.views.depths
        views = with_depth(rec.views, args.depth, seed=args.seed)
        name = f"{scene}_{args.rig}" + ("_floor" if args.world else "")
        secs = time.perf_counter() - t0
        sheet = args.out / f"{name}.png"
        shown = views if views.depths is not None else rec.views  # the depth written, else the exact one
        cv2.imwrite(str(sheet), contact_sheet(shown, args.frames, args.cameras)[..., ::-1])
        if write_bag is not None:
            bag = args.out / name
            if bag.exists() and args.force:
                shutil.rmtree(bag)
            elif bag.exists():
                raise SystemExit(f"{bag} exists (use --force to replace it)")
            write_bag(views, bag, depth_encoding=None if args.depth == "none" else args.depth_encoding)
        span_ms = (views.stamps_ns.max() - views.stamps_ns.min()).item() / 1e6
        print(f"{name}: {len(views)} views {views.height}x{views.width}, coverage {views.alphas.mean():.3f}, "
              f"depth {exact[exact > 0].min():.2f}-{exact.max():.2f} m"
              + ("" if views.depths is None else f" ({args.depth}: {float((views.depths > 0).float().mean()):.0%} "
                                                 f"of pixels measured)") + ", "
              f"span {span_ms:.0f} ms, rendered in {secs:.1f} s -> {sheet}"
              + ("" if write_bag is None else f", {args.out / name}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
