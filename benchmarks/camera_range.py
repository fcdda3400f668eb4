"""How far from its training cameras the shipped model serves a rig: 8 robot validation scenes (validation seeds,
never trained on, apart from the evaluation bags) rendered again with one thing about the cameras changed, scored
by the rig protocol as `lrm4d evaluate` scores a bag. Training draws 40-75° vertical fields of view, 6 cameras and
12 frames (data.generator.ROBOT_CAPTURE, data.eval_scenes); the generator places a camera farther from the scene
the narrower its field of view (the scene fills the view), so a narrow rig's depth camera (8 m range,
data.depth_sensor) also measures less of it.

    python benchmarks/camera_range.py [--only NAME ...] [--threads 2]     (about 4 min on two CPU cores)

Prints and writes benchmarks/results/camera_range.txt: novel_view PSNR from RGB-D and from RGB inputs beside the
nearest input and the non-learned depth reference.
"""
from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from lrm4d_ros.data import eval_scenes as es
from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.generator import generate
from lrm4d_ros.evaluate import evaluate_views
from lrm4d_ros.reconstructor import Reconstructor

FIRST_SEED = es.ROBOT_PROTOCOL_VAL_FIRST_SEED + 40  # past the 16 benchmarks/validation.py scores
VARIANTS = {  # name: SceneConfig fields changed
    "as trained": {},
    "fov 20-30": {"fov_deg": (20.0, 30.0)},
    "fov 30-40": {"fov_deg": (30.0, 40.0)},
    "fov 85-100": {"fov_deg": (85.0, 100.0)},
    "4 cameras": {"cameras": 4},
    "10 cameras": {"cameras": 10},
    "6 frames": {"frames": 6},
    "24 frames": {"frames": 24},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to score (default: all)")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "camera_range.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = Reconstructor.from_checkpoint(device="cpu")
    recipe = es.robot_recipe(FIRST_SEED, args.scenes)
    lines = [f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads; the shipped checkpoint; "
             f"{args.scenes} robot validation scenes from seed {FIRST_SEED}",
             "# rig protocol, novel_view PSNR (dB), mean over scenes; `python benchmarks/camera_range.py`",
             f"{'cameras':12s} | {'RGB-D':>6s} {'RGB':>6s} | {'nearest':>7s} {'depth ref':>9s} | {'s':>4s}"]
    print("\n".join(lines), flush=True)
    for name in args.only or VARIANTS:
        t0 = time.perf_counter()
        sums = {"rgbd": 0.0, "rgb": 0.0, "nearest": 0.0, "depth_reference": 0.0}
        for seed, layout, rig in recipe:
            views = generate(seed, replace(es.robot_scene_config(layout, rig), **VARIANTS[name]))
            views = with_depth(views, "sensor", seed=seed)
            for key, depth in (("rgbd", True), ("rgb", False)):
                g = evaluate_views(rec, views, "rig", depth=depth)["groups"]["novel_view"]
                sums[key] += g["model"]["psnr"] / len(recipe)
                if depth:
                    for b in ("nearest", "depth_reference"):
                        sums[b] += g["baselines"][b]["psnr"] / len(recipe)
        line = (f"{name:12s} | {sums['rgbd']:6.2f} {sums['rgb']:6.2f} | {sums['nearest']:7.2f} "
                f"{sums['depth_reference']:9.2f} | {time.perf_counter() - t0:4.0f}")
        print(line, flush=True)
        lines.append(line)
    if not args.only:
        args.out.write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
