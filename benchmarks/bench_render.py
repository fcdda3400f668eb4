"""Rendering speed: render() forward and forward+backward, 1 and 4 views, median of a few runs.

    python benchmarks/bench_render.py [--gaussians 50000] [--size 128] [--repeats 5]

Runs the CPU rasterizer, and gsplat too when CUDA and gsplat are available. Writes the table to
benchmarks/results/render_cpu.txt (render_cuda.txt when a GPU was used). Scenes (canonical units, cameras on a
ring of radius 2.5 looking at the origin, vertical FoV 50°):
  random  — means uniform in [-1,1]³, scales log-uniform in [0.005, 0.05], random rotations, opacity U(0.1, 0.9);
  init    — what an untrained 4D-LRM head emits: scale exp(0 − 2.3) ≈ 0.1, opacity sigmoid(0 − 2) ≈ 0.12.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from lrm4d_ros.cameras import fov_to_K
from lrm4d_ros.gaussians import quat_to_rotmat
from lrm4d_ros.render import gsplat_available, render

RESULTS = Path(__file__).resolve().parent / "results"


def make_scene(kind: str, n: int, seed: int = 0):
    """(means, covars, opacities, colors) float32 on CPU."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * 2 - 1
    if kind == "random":
        scales = torch.exp(torch.empty(n, 3).uniform_(math.log(0.005), math.log(0.05), generator=g))
        opacities = torch.rand(n, generator=g) * 0.8 + 0.1
    elif kind == "init":
        scales = torch.full((n, 3), math.exp(-2.3))
        opacities = torch.full((n,), 1 / (1 + math.exp(2.0)))
    else:
        raise ValueError(f"unknown scene {kind!r}")
    R = quat_to_rotmat(torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1))
    M = R * scales[:, None, :]
    return means, M @ M.transpose(1, 2), opacities, torch.rand(n, 3, generator=g)


def ring_cameras(n_views: int, size: int):
    """camtoworlds (V,4,4) float64 looking at the origin from radius 2.5, Ks (V,3,3)."""
    poses = []
    for i in range(n_views):
        a = 2 * math.pi * i / n_views
        eye = torch.tensor([2.5 * math.cos(a), 2.5 * math.sin(a), 0.5], dtype=torch.float64)
        fwd = -eye / eye.norm()
        right = torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        right = right / right.norm()
        T = torch.eye(4, dtype=torch.float64)
        T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = right, torch.linalg.cross(fwd, right), fwd, eye
        poses.append(T)
    return torch.stack(poses), fov_to_K(math.radians(50), size, size).expand(n_views, 3, 3)


def _median_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(scene, c2w, Ks, size: int, device: str, repeats: int) -> tuple[float, float, float]:
    """(forward s, forward+backward s, mean alpha) for one scene and camera set."""
    params = [t.to(device) for t in scene]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            return render(*params, c2w, Ks, size, size)

    def forward_backward():
        leaves = [p.clone().requires_grad_() for p in params]
        out = render(*leaves, c2w, Ks, size, size)
        (out.colors.sum() + out.depths.sum()).backward()

    coverage = forward().alphas.mean().item()
    return _median_time(forward, repeats, sync), _median_time(forward_backward, repeats, sync), coverage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--views", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--scenes", nargs="+", default=["random", "init"])
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                    help="torch intra-op thread counts to try on CPU")
    ap.add_argument("--output", type=Path, default=None,
                    help="table file (default benchmarks/results/render_cpu.txt, render_cuda.txt with a GPU)")
    args = ap.parse_args()

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and gsplat_available() else [])
    lines = [f"# bench_render: {args.gaussians} Gaussians, {args.size}x{args.size}, median of {args.repeats}",
             f"# torch {torch.__version__}, {os.cpu_count()} CPUs, {platform.processor() or 'cpu'}, "
             f"load average before {os.getloadavg()[0]:.2f}"
             + (f", GPU {torch.cuda.get_device_name()}" if "cuda" in devices else ""),
             f"{'backend':<8} {'threads':>7} {'scene':<7} {'views':>5} {'forward s':>10} {'fwd+bwd s':>10} "
             f"{'coverage':>9}"]
    print("\n".join(lines), flush=True)
    runs = [("cpu", t) for t in args.threads] + [("cuda", torch.get_num_threads())] * ("cuda" in devices)
    for device, threads in runs:
        torch.set_num_threads(threads)
        backend = "gsplat" if device == "cuda" else "torch"
        for kind in args.scenes:
            scene = make_scene(kind, args.gaussians)
            for n_views in args.views:
                c2w, Ks = ring_cameras(n_views, args.size)
                fwd, fwd_bwd, cov = bench(scene, c2w, Ks, args.size, device, args.repeats)
                line = (f"{backend:<8} {threads:>7} {kind:<7} {n_views:>5} {fwd:>10.3f} {fwd_bwd:>10.3f} "
                        f"{cov:>9.2f}")
                lines.append(line)
                print(line, flush=True)
    lines.append(f"# load average after {os.getloadavg()[0]:.2f} (CPU shared with other jobs: timings are noisy)")
    print(lines[-1])
    out = args.output or RESULTS / ("render_cuda.txt" if "cuda" in devices else "render_cpu.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
