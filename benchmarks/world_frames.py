"""Bags whose world frame is not z up: the shipped model's rig-protocol novel_view on evaluation bags as written
and with their world frame turned (poses only; images and depths as they were), unlevelled (world z taken as up,
as before the canonical frame could turn) against levelled (the cameras' up, `SceneNormalization.from_cameras`, and
the floor's measured normal, `reconstructor.level_by_depth`).

Turns: y up (a quarter turn about x: many renderers' frames, a SLAM map started at a camera's pose), 20° about x,
and 2° about x (a floor not quite level in odom: the cameras leave it alone, the depth levels it).

    python benchmarks/world_frames.py [BAG ...] [--threads 2]

Default bags: evaluation bags scene_1002000 and jaco_workcell_floor under /tmp/lrm4d_eval_bags (written by
scripts/eval_shipped.sh). Writes benchmarks/results/world_frames.txt.
"""
from __future__ import annotations

import argparse
import math
import platform
from dataclasses import replace
from pathlib import Path

import torch

import lrm4d_ros.cameras as cameras
import lrm4d_ros.reconstructor as reconstructor
from lrm4d_ros.evaluate import evaluate_views
from lrm4d_ros.io.bag import read_bag

BAGS = ["/tmp/lrm4d_eval_bags/robot/scene_1002000", "/tmp/lrm4d_eval_bags/mujoco/jaco_workcell_floor"]
TURNS = {"as written": 0.0, "y up": -90.0, "20 deg": 20.0, "2 deg": 2.0}  # about world x


def turned(views, degrees: float):
    a = math.radians(degrees)
    T = torch.eye(4, dtype=torch.float64)
    T[1, 1], T[1, 2], T[2, 1], T[2, 2] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
    return replace(views, camtoworlds=T.to(views.camtoworlds) @ views.camtoworlds)


def novel_view(rec, views, depth: bool, levelled: bool) -> float:
    saved = cameras.LEVEL_FROM_CAMERAS_DEG, reconstructor.LEVEL_FROM_DEPTH_DEG
    if not levelled:  # thresholds no turn reaches: world z stays canonical z
        cameras.LEVEL_FROM_CAMERAS_DEG = reconstructor.LEVEL_FROM_DEPTH_DEG = 180.0
    try:
        rec.forget()
        return evaluate_views(rec, views, "rig", depth=depth)["groups"]["novel_view"]["model"]["psnr"]
    finally:
        cameras.LEVEL_FROM_CAMERAS_DEG, reconstructor.LEVEL_FROM_DEPTH_DEG = saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bags", nargs="*", default=BAGS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "world_frames.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = reconstructor.Reconstructor.from_checkpoint(device="cpu")
    lines = [f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads; the shipped checkpoint",
             "# rig protocol, novel_view PSNR (dB); world frame turned about x, poses only",
             f"{'bag':28s} {'world':>10s} {'inputs':>6s} | {'unlevelled':>10s} {'levelled':>9s}"]
    print("\n".join(lines), flush=True)
    for bag in args.bags:
        views = read_bag(bag)
        for name, degrees in TURNS.items():
            v = turned(views, degrees)
            for depth in (True, False):
                if v.depths is None and depth:
                    continue
                before, after = (novel_view(rec, v, depth, levelled) for levelled in (False, True))
                inputs = "RGB-D" if depth else "RGB"
                line = f"{Path(bag).name:28s} {name:>10s} {inputs:>6s} | {before:10.2f} {after:9.2f}"
                print(line, flush=True)
                lines.append(line)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
