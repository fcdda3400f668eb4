"""How long reading a depth rig takes (rig_reading.read_rig: each moving camera's stamp offset and each camera's focal
length against the others'), what the node does every `rig_check_s` in its reconstruction thread and `lrm4d
check-bag` / `reconstruct` / `evaluate` do on three windows of a bag.

    python benchmarks/bench_rig_reading.py [--repeats 3]

A moving head rig of the robot validation scenes (6 depth cameras, 12 frames at 128²) with camera cam0 posed 20 ms
behind its images and cam2's fx, fy 5 % long; the node's 24 input views (`select_views`, uniform), and the same rig
with 3 of its cameras (12 views). Prints the median seconds and what was read.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from lrm4d_ros.data.eval_scenes import moving_head_rig
from lrm4d_ros.rig_reading import read_rig, with_offsets, with_scales
from lrm4d_ros.selection import select_inputs


def head_rig():
    """The moving head rig, camera cam0 posed 20 ms behind its images, cam2's fx, fy 5 % long."""
    return with_scales(with_offsets(moving_head_rig(), {"cam0": -0.02}), {"cam2": 1.05})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rig = head_rig()
    three = rig.select(torch.nonzero(rig.camera_ids < 3)[:, 0])
    print(f"{'rig':<22} {'views':>5} {'read s':>7}  read")
    for name, views, n in (("head rig, 6 cameras", rig, 24), ("head rig, 3 cameras", three, 12)):
        views = views.select(select_inputs(views, n)).resized(128, 128)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            offsets, scales = read_rig(views)
            times.append(time.perf_counter() - t)
        told = {**{f"{c} stamps": f"{x * 1e3:+.0f} ms" for c, x in offsets.items() if x},
                **{f"{c} fx": f"x{s:.3f}" for c, s in scales.items() if s != 1.0}}
        print(f"{name:<22} {len(views):>5} {statistics.median(times):>7.2f}  {told}", flush=True)


if __name__ == "__main__":
    main()
