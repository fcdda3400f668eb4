"""Matching an RGB-only rig's floor per sliding window: the full height sweep against checking the floor found in
the window before first (`floor_from_photo(near=...)`, what `Reconstructor` does for a moving rig's windows).

Each scene is a robot scene (mobile / tabletop layouts, a textured floor) seen by a moving rig of 3 cameras over
FRAMES frames at 128²; windows of 4 frames (12 views) slide by one frame. Both ways run on every window, one after
the other, and the table prints their seconds and the floor each found (world z, metres; the generator's floor is at
0). "checked" is `yes` where the last floor held and the full sweep was skipped.

    python benchmarks/bench_floor.py [--seeds 3] [--threads 2]

Writes benchmarks/results/floor_cpu.txt.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from lrm4d_ros.cameras import SceneNormalization, TimeWindow
from lrm4d_ros.data.generator import generate, robot_config
from lrm4d_ros.floor_fit import BAND, COARSE, floor_from_photo
import lrm4d_ros.floor_fit as floor_module

FRAMES, WINDOW = 8, 4


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="scenes (seeds 0..N-1, mobile and tabletop in turn)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "floor_cpu.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    heights = []  # the heights each call matches the views through: whether the check held
    match = floor_module.plane_matches

    def counting(gray, Ks, camtoworlds, partners, planes):
        heights.append(planes.shape[0])
        return match(gray, Ks, camtoworlds, partners, planes)

    floor_module.plane_matches = counting
    lines = [f"# bench_floor: torch {torch.__version__}, {args.threads} threads, {platform.machine()}; 12 views of "
             f"128² per window (3 moving cameras x {WINDOW} frames, sliding by one frame)",
             f"{'scene':>12} {'window':>6} | {'full s':>7} {'floor z':>8} | {'checked s':>9} {'floor z':>8} {'checked':>7}"]
    print("\n".join(lines), flush=True)
    full_s, near_s = [], []
    for seed in range(args.seeds):
        layout = ("mobile", "tabletop")[seed % 2]
        cfg = robot_config((layout,), ("moving",), frames=FRAMES, cameras=3, height=128, width=128, ground_prob=1.0)
        views = generate(seed, cfg)
        frame = torch.zeros_like(views.camera_ids)  # each view's frame: its rank among its camera's stamps
        for c in views.camera_ids.unique():
            mine = torch.nonzero(views.camera_ids == c)[:, 0]
            frame[mine[views.stamps_ns[mine].argsort()]] = torch.arange(len(mine))
        last = None  # world z of the floor the checked way found in the window before
        for w in range(FRAMES - WINDOW + 1):
            sub = views.select(torch.nonzero((frame >= w) & (frame < w + WINDOW))[:, 0])
            norm = SceneNormalization.from_cameras(sub.camtoworlds)
            c2w = norm.poses_to_canonical(sub.camtoworlds.double())
            times = TimeWindow.from_stamps(sub.stamps_ns).normalize(sub.stamps_ns)

            def world(found):
                return None if found is None else found[0] / norm.scale + float(norm.center[2])

            t0 = time.perf_counter()
            full = world(floor_from_photo(sub.images, sub.Ks, c2w, times))
            t1 = time.perf_counter()
            heights.clear()
            near = None if last is None else (last - float(norm.center[2])) * norm.scale
            checked = world(floor_from_photo(sub.images, sub.Ks, c2w, times, near=near))
            t2 = time.perf_counter()
            held = near is not None and sum(heights) == COARSE + BAND + 1
            last = checked if checked is not None else last
            full_s.append(t1 - t0)
            near_s.append(t2 - t1)
            fmt = (lambda z: "none" if z is None else f"{z:+.3f}")
            row = (f"{layout + str(seed):>12} {w:>6} | {t1 - t0:>7.3f} {fmt(full):>8} | {t2 - t1:>9.3f} "
                   f"{fmt(checked):>8} {'yes' if held else 'no':>7}")
            lines.append(row)
            print(row, flush=True)
    summary = (f"# median seconds per window: full {statistics.median(full_s):.3f}, checked first "
               f"{statistics.median(near_s):.3f} (mean {statistics.mean(full_s):.3f} / {statistics.mean(near_s):.3f})")
    lines.append(summary)
    print(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
