"""Procedural scene rendering speed, views/s, by scene set, caster, size and torch threads (every row renders all
8 frames × 8 cameras of each scene in one call, with depths and alphas):

- objects: 6-primitive object-centric scenes, no ground (the original benchmark);
- robot: the robot layouts of `robot_mix` in turn (tabletop, workcell, mobile: an infinite textured floor,
  tables, arms, mobile bases, objects, 1–3 walls, a far backdrop 30 % of the time) on poles / head / orbit rigs;
- sampler: `SceneSampler(robot_mix(12, 6, 128, 128), num_inputs=12, num_targets=4)`, scene drawing, input draw
  and rendering of the 16 views included (views/s counts those 16 per scene).

    python benchmarks/bench_generator.py [--seeds 6] [--repeats 2]

Prints a table and writes benchmarks/results/generator_<device>.txt. Wall-clock figures on a shared machine are
noisy; the load average at the start and the process CPU time are printed beside them. Threads are set here
for each row (render_views' own default is 1 thread; the numba caster is single-threaded).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from lrm4d_ros.data.generator import SceneConfig, all_views, robot_config, sample_scene
from lrm4d_ros.data.raycast import render_views
from lrm4d_ros.data.sampler import SceneSampler, robot_mix

ROBOT_SCENES = (("tabletop", "poles"), ("workcell", "head"), ("mobile", "orbit"))


def scene_config(kind: str, seed: int) -> SceneConfig:
    if kind == "objects":
        return SceneConfig(frames=8, cameras=8, num_primitives=(6, 6), ground_prob=0.0, backdrop_prob=0.0)
    layout, rig = ROBOT_SCENES[seed % len(ROBOT_SCENES)]
    return robot_config((layout,), (rig,), frames=8, cameras=8, walls=(1, 3))


def timed(fn, device: str, repeats: int) -> tuple[float, float]:
    """(best wall seconds, best process-CPU seconds) of `repeats` calls."""
    best_w = best_c = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best_w, best_c = min(best_w, time.perf_counter() - w0), min(best_c, time.process_time() - c0)
    return best_w, best_c


def bench(kind: str, caster: str, device: str, size: int, seeds: int, repeats: int) -> tuple[float, float]:
    """(views per wall second, views per process-CPU second), best of `repeats` per scene, over `seeds` scenes."""
    views = wall = cpu = 0.0
    for seed in range(seeds):
        scene = sample_scene(seed, scene_config(kind, seed))
        cams, stamps = all_views(scene)
        render_views(scene, cams[:2], stamps[:2], size, size, device=device, threads=None, caster=caster)  # warm-up
        w, c = timed(lambda: render_views(scene, cams, stamps, size, size, device=device, threads=None,
                                          caster=caster), device, repeats)
        views, wall, cpu = views + len(cams), wall + w, cpu + c
    return views / wall, views / cpu


def bench_sampler(seeds: int) -> tuple[float, float]:
    ds = SceneSampler(robot_mix(12, 6, 128, 128), num_inputs=12, num_targets=4)
    ds.sample(0)  # warm-up (and numba's cache)
    w, c = timed(lambda: [ds.sample(seed) for seed in range(1, 1 + 8 * seeds)], "cpu", 1)
    return 16 * 8 * seeds / w, 16 * 8 * seeds / c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    default_threads = torch.get_num_threads()
    for device in devices:
        load = os.getloadavg()[0]
        lines = [f"# bench_generator: 64 views per scene (8 frames x 8 cameras), {args.seeds} scenes per row, best of "
                 f"{args.repeats}; robot = {', '.join(f'{a} on {b}' for a, b in ROBOT_SCENES)} in turn",
                 f"# device {device}; torch {torch.__version__}; {os.cpu_count()} CPUs "
                 f"({platform.processor() or platform.machine()}); load average {load:.2f} at start"
                 + (" (shared machine: wall-clock figures are noisy)" if device == "cpu" else ""),
                 f"{'scenes':>8} {'caster':>7} {'size':>8} {'threads':>8} {'views/s (wall)':>15} {'views per CPU-s':>16}"]
        print("\n".join(lines), flush=True)
        rows = [("objects", "torch", s, t) for s in (64, 128, 256) for t in sorted({1, default_threads})]
        if device == "cpu":
            rows += [("objects", "numba", 128, 1), ("robot", "torch", 128, 1)]
            rows += [("robot", "numba", s, 1) for s in (64, 128, 256)]
        else:
            rows = [(k, c, s, default_threads) for k, c, s, _ in rows if c == "torch"]
            rows += [("robot", "torch", 128, default_threads)]
        for kind, caster, size, threads in rows:
            torch.set_num_threads(threads)
            wall, cpu = bench(kind, caster, device, size, args.seeds, args.repeats)
            cpu_txt = f"{cpu:16.0f}" if device == "cpu" else f"{'-':>16}"
            lines.append(f"{kind:>8} {caster:>7} {size:>4}x{size:<3} {threads:>8} {wall:15.0f} {cpu_txt}")
            print(lines[-1], flush=True)
        if device == "cpu":
            torch.set_num_threads(1)
            wall, cpu = bench_sampler(args.seeds)
            lines.append(f"{'sampler':>8} {'numba':>7} {'128x128':>8} {1:>8} {wall:15.0f} {cpu:16.0f}"
                         "   (robot_mix, 12 inputs + 4 targets per scene)")
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
