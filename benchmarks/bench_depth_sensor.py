"""Cost of the depth-camera model (lrm4d_ros.data.depth_sensor.sensor_depth) on a training batch's views: V views
of exact z-depth rendered by the generator (workcell rig with a ground plane), median of repeated calls.

    python benchmarks/bench_depth_sensor.py [--views 12] [--resolution 128] [--threads 1] [--repeats 50]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from lrm4d_ros.data.depth_sensor import sensor_depth
from lrm4d_ros.data.generator import SceneConfig, generate

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--views", type=int, default=12)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = SceneConfig(frames=1, cameras=args.views, height=args.resolution, width=args.resolution,
                      rig_kinds=("workcell",), ground_prob=1.0)
    views = generate(1_000_900, cfg)
    g = torch.Generator().manual_seed(0)
    load = os.getloadavg()[0]
    times = []
    for _ in range(args.repeats + 3):
        t = time.perf_counter()
        out = sensor_depth(views.depths, views.Ks, g)
        times.append(time.perf_counter() - t)
    ms = statistics.median(times[3:]) * 1e3
    kept = float((out > 0).sum()) / max(1, int((views.depths > 0).sum()))
    lines = [f"# bench_depth_sensor: torch {torch.__version__}, {args.threads} thread(s), load average before {load:.2f}",
             f"views {args.views} x {args.resolution}x{args.resolution}: sensor_depth median {ms:.2f} ms "
             f"({args.repeats} calls), {kept:.1%} of the exact depths measured",
             f"# load average after {os.getloadavg()[0]:.2f} (CPU shared with other jobs: timings are noisy)"]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "depth_sensor_cpu.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
