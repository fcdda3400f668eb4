"""Procedural scene rendering speed: views/s for 6-primitive scenes (8 frames × 8 cameras per scene, one
vectorised cast per scene) at 64², 128², 256² on CPU, and on CUDA when available.

    python benchmarks/bench_generator.py [--seeds 4] [--repeats 2]

Prints a table and writes benchmarks/results/generator_<device>.txt. Wall-clock figures on a shared machine are
noisy; the load average at the start and the process CPU time are printed beside them. Threads are set here
for each row (render_views' own default is 1 thread).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from lrm4d_ros.data.generator import SceneConfig, all_views, sample_scene
from lrm4d_ros.data.raycast import render_views

SIZES = (64, 128, 256)


def bench(device: str, size: int, seeds: int, repeats: int) -> tuple[float, float]:
    """(views per wall second, views per process-CPU second), best of `repeats` per scene, over `seeds` scenes."""
    cfg = SceneConfig(frames=8, cameras=8, num_primitives=(6, 6), ground_prob=0.0, backdrop_prob=0.0)
    views = wall = cpu = 0.0
    for seed in range(seeds):
        scene = sample_scene(seed, cfg)
        cams, stamps = all_views(scene)
        render_views(scene, cams[:2], stamps[:2], size, size, device=device, threads=None)  # warm-up
        best_w = best_c = float("inf")
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            w0, c0 = time.perf_counter(), time.process_time()
            render_views(scene, cams, stamps, size, size, device=device, threads=None)
            if device == "cuda":
                torch.cuda.synchronize()
            best_w, best_c = min(best_w, time.perf_counter() - w0), min(best_c, time.process_time() - c0)
        views += len(cams)
        wall += best_w
        cpu += best_c
    return views / wall, views / cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    default_threads = torch.get_num_threads()
    for device in devices:
        load = os.getloadavg()[0]
        lines = [f"# bench_generator: 6-primitive scenes, 64 views each (8 frames x 8 cameras), {args.seeds} scenes,"
                 f" best of {args.repeats}",
                 f"# device {device}; torch {torch.__version__}; {os.cpu_count()} CPUs "
                 f"({platform.processor() or platform.machine()}); load average {load:.2f} at start"
                 + (" (shared machine: wall-clock figures are noisy)" if device == "cpu" else ""),
                 f"{'size':>8} {'threads':>8} {'views/s (wall)':>15} {'views per CPU-s':>16}"]
        print("\n".join(lines), flush=True)
        for size in SIZES:
            for threads in sorted({1, default_threads}) if device == "cpu" else [default_threads]:
                torch.set_num_threads(threads)
                wall, cpu = bench(device, size, args.seeds, args.repeats)
                cpu_txt = f"{cpu:16.0f}" if device == "cpu" else f"{'-':>16}"
                lines.append(f"{size:>4}x{size:<3} {threads:>8} {wall:15.0f} {cpu_txt}")
                print(lines[-1], flush=True)
        torch.set_num_threads(default_threads)
        lines.append(f"# load average {os.getloadavg()[0]:.2f} at the end")
        text = "\n".join(lines) + "\n"
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"generator_{device}.txt").write_text(text)
        print(lines[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
