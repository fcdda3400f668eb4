"""Rendering speed on the CPU: the compiled (numba) rasterizer against the PyTorch reference, side by side.

    python benchmarks/bench_render.py [--threads 1 2] [--sizes 128 256] [--gaussians 50000 400000]
                                      [--scenes random real] [--repeats 5] [--torch-repeats 2]

For every thread count, image size, Gaussian count and scene: forward and forward+backward seconds (best of
--repeats after one warm-up; the reference gets --torch-repeats and no warm-up where a call takes over 2 s),
and the speed-up. One camera. Writes the table to benchmarks/results/render_cpu.txt (or --output). With a GPU,
`--gsplat` times gsplat on CUDA instead (scripts/gpu_checks.sh writes that to render_cuda.txt). `--stages` splits
the compiled rasterizer's forward into its stages instead (projection, binning, blending, and the compositing in
PyTorch; milliseconds, best of --repeats) beside the visible entries and tile intersections
(benchmarks/results/render_cpu_stages.txt).
Scenes (canonical units, camera at distance 2.5 looking at the origin, vertical FoV 50°):
  random — means uniform in [-1,1]³, scales log-uniform in [0.005, 0.05], random rotations, opacity U(0.1, 0.9);
  real   — the shipped model's Gaussians: a procedural validation scene (24 frames of an 8-camera orbit, one
           view per frame) reconstructed by `Reconstructor.from_checkpoint()` and sliced at its middle time
           without the marginal threshold (every Gaussian, opacity × its temporal marginal), subsampled to the
           Gaussian count (at most all 393 216: the count column says how many);
  slice  — the same slice with the default threshold (marginal ≥ 0.05), all of it: what `Reconstruction.render`
           draws for one view (the Gaussian count does not apply).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import torch

from lrm4d_ros.cameras import fov_to_K, invert_pose
from lrm4d_ros.gaussians import quat_to_rotmat
from lrm4d_ros.render import cpu_backend, gsplat_available, rasterize_torch

RESULTS = Path(__file__).resolve().parent / "results"
SLOW_S = 2.0  # reference calls slower than this skip the warm-up


def make_scene(kind: str, n: int, seed: int = 0):
    """(means, covars, opacities, colors) float32 on CPU. kind: random | init (an untrained head's Gaussians)."""
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


def model_gaussians(seed: int = 1_000_200):
    """The shipped model's 4D Gaussians for a procedural validation scene, sliced at the middle of the window:
    (default slice (marginal ≥ 0.05), slice without the threshold)."""
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.data.protocols import split_protocol
    from lrm4d_ros.reconstructor import Reconstructor

    cfg = SceneConfig(frames=24, cameras=8, rig_kinds=("orbit",), ground_prob=0.0, backdrop_prob=0.0)
    inputs, _ = split_protocol(generate(seed, cfg), "alternating")
    with torch.no_grad():
        g4 = Reconstructor.from_checkpoint(device="cpu").reconstruct(inputs).gaussians
        return g4.slice(0.0), g4.slice(0.0, min_marginal=0.0)


def real_scene(gaussians, n: int | None = None, seed: int = 0):
    """(means, covars, opacities, colors) float32 of Gaussians3D, a random subset of n of them if n is given."""
    idx = torch.randperm(len(gaussians.means), generator=torch.Generator().manual_seed(seed))[:n]
    return tuple(t[idx].float().contiguous() for t in (gaussians.means, gaussians.covars, gaussians.opacities,
                                                       gaussians.colors))


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


def _best_time(fn, repeats: int, sync, warm_up: bool = True) -> float:
    """Fastest of `repeats` calls: on a CPU shared with other jobs the minimum is the steadiest estimate."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(rasterize, scene, size: int, device: str, repeats: int, slow_repeats: int | None = None):
    """(forward s, forward+backward s, mean alpha) of one backend's rasterize() for one scene, one camera.
    slow_repeats: repeats (and no warm-up) once a forward call turns out to take over SLOW_S."""
    c2w, Ks = ring_cameras(1, size)
    params = [t.to(device) for t in scene]
    viewmats, Ks = invert_pose(c2w).float().to(device), Ks.float().to(device)
    bg = torch.ones(1, 3, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def forward():
        with torch.no_grad():
            return rasterize(*params, viewmats, Ks, size, size, bg, 0.01, 1e10)

    def forward_backward():
        leaves = [p.detach().requires_grad_() for p in params]  # fresh leaves on the same storage: no copy timed
        rgb, alpha, depth = rasterize(*leaves, viewmats, Ks, size, size, bg, 0.01, 1e10)
        (rgb.sum() + depth.sum() + alpha.sum()).backward()

    t0 = time.perf_counter()
    coverage = forward()[1].mean().item()  # also the warm-up
    first = time.perf_counter() - t0
    if slow_repeats is not None and first > SLOW_S:
        return (_best_time(forward, slow_repeats, sync, warm_up=False),
                _best_time(forward_backward, slow_repeats, sync, warm_up=False), coverage)
    return (_best_time(forward, repeats, sync, warm_up=False), _best_time(forward_backward, repeats, sync),
            coverage)


def stage_times(scene, size: int, repeats: int) -> tuple[dict, int, int]:
    """The compiled forward's stages for one scene and camera: ({stage: best seconds}, entries, intersections)."""
    from lrm4d_ros.cpu_kernels import numba_threads
    from lrm4d_ros.render import rasterize_numba, rasterize_torch

    c2w, Ks = ring_cameras(1, size)
    viewmats, Ks = invert_pose(c2w).float(), Ks.float()
    best: dict = {}
    for k in range(repeats + 1):  # the first call warms up
        seconds = {}
        t0 = time.perf_counter()
        state = rasterize_numba._Scene(*scene, viewmats, Ks, size, size, 0.01, 1e10)
        seconds["setup"] = time.perf_counter() - t0
        with rasterize_numba._LOCK:
            sums = state.forward(numba_threads(), seconds)
        t0 = time.perf_counter()
        rasterize_torch.composite(torch.from_numpy(sums), torch.ones(1, 3), size, size)
        seconds["composite"] = time.perf_counter() - t0
        if k and (not best or sum(seconds.values()) < sum(best.values())):
            best = seconds
    return best, len(state.index), len(state.tile_entries)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch (and numba) thread counts")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="square image sizes (px)")
    ap.add_argument("--gaussians", type=int, nargs="+", default=[50_000, 400_000])
    ap.add_argument("--scenes", nargs="+", default=["random", "real", "slice"],
                    choices=["random", "init", "real", "slice"])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls of the compiled rasterizer (best of)")
    ap.add_argument("--torch-repeats", type=int, default=2, help="timed calls of the reference (best of)")
    ap.add_argument("--gsplat", action="store_true", help="time gsplat on CUDA instead (needs CUDA and gsplat)")
    ap.add_argument("--stages", action="store_true", help="split the compiled forward into its stages instead")
    ap.add_argument("--output", type=Path, default=None,
                    help="results file (default: benchmarks/results/render_cpu.txt, or render_cpu_stages.txt)")
    args = ap.parse_args()

    if args.output is None:
        args.output = RESULTS / ("render_cpu_stages.txt" if args.stages else "render_cpu.txt")
    if args.gsplat and not (torch.cuda.is_available() and gsplat_available()):
        raise SystemExit("--gsplat needs CUDA and the gsplat package")
    t0 = time.perf_counter()
    name, compiled = cpu_backend() if not args.gsplat else ("none", None)  # no numba compile on a GPU's lease
    first_call = time.perf_counter() - t0
    if name != "numba" and not args.gsplat:
        raise SystemExit("the compiled rasterizer is unavailable here (see the warning above): nothing to compare")
    scenes = {}
    if {"real", "slice"} & set(args.scenes):
        print("reconstructing the real scene with the shipped model ...", flush=True)
        default_slice, full_slice = model_gaussians()
    for kind in args.scenes:
        if kind == "slice":
            scenes[kind, 0] = real_scene(default_slice)
        for n in args.gaussians if kind != "slice" else ():
            scenes[kind, n] = real_scene(full_slice, n) if kind == "real" else make_scene(kind, n)
    lines = [f"# torch {torch.__version__}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
             f"load average before {os.getloadavg()[0]:.2f}"]
    if args.gsplat:
        from lrm4d_ros.render import rasterize_gsplat

        lines[0] += f", GPU {torch.cuda.get_device_name()}"
        lines += [f"# bench_render --gsplat: gsplat on CUDA, 1 camera, best of {args.repeats}",
                  f"{'size':>4} {'scene':<6} {'gaussians':>9} {'coverage':>8} {'forward s':>10} {'fwd+bwd s':>10}"]
        print("\n".join(lines), flush=True)
        for size in args.sizes:
            for (kind, _), scene in scenes.items():
                fwd, fwd_bwd, cov = bench(rasterize_gsplat.rasterize, scene, size, "cuda", args.repeats)
                lines.append(f"{size:>4} {kind:<6} {len(scene[0]):>9} {cov:>8.2f} {fwd:>10.4f} {fwd_bwd:>10.4f}")
                print(lines[-1], flush=True)
    elif args.stages:
        names = ("setup", "projection", "binning", "blending", "composite")
        lines += [f"# bench_render --stages: the compiled forward's stages, 1 camera, ms, best of {args.repeats} calls",
                  f"{'threads':>7} {'size':>4} {'scene':<6} {'gaussians':>9} {'entries':>8} {'isects':>8} | "
                  + " ".join(f"{n:>10}" for n in names) + f" {'total':>8}"]
        print("\n".join(lines), flush=True)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for size in args.sizes:
                for (kind, _), scene in scenes.items():
                    sec, entries, isects = stage_times(scene, size, args.repeats)
                    lines.append(f"{threads:>7} {size:>4} {kind:<6} {len(scene[0]):>9} {entries:>8} {isects:>8} | "
                                 + " ".join(f"{1e3 * sec[n]:>10.2f}" for n in names)
                                 + f" {1e3 * sum(sec.values()):>8.2f}")
                    print(lines[-1], flush=True)
    else:
        lines[0] += f"; compiled kernels ready {first_call:.1f} s after the first call (numba cache)"
        lines += [f"# bench_render: compiled (numba) vs PyTorch reference rasterizer, 1 camera; seconds, best of "
                  f"{args.repeats} (compiled) and {args.torch_repeats} (reference) calls",
                  f"{'threads':>7} {'size':>4} {'scene':<6} {'gaussians':>9} {'coverage':>8} | {'fwd numba':>9} "
                  f"{'fwd torch':>9} {'speed-up':>8} | {'f+b numba':>9} {'f+b torch':>9} {'speed-up':>8}"]
        print("\n".join(lines), flush=True)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for size in args.sizes:
                for (kind, _), scene in scenes.items():
                    fast = bench(compiled, scene, size, "cpu", args.repeats)
                    ref = bench(rasterize_torch.rasterize, scene, size, "cpu", args.torch_repeats,
                                slow_repeats=max(1, args.torch_repeats // 2))
                    line = (f"{threads:>7} {size:>4} {kind:<6} {len(scene[0]):>9} {fast[2]:>8.2f} | "
                            f"{fast[0]:>9.4f} {ref[0]:>9.3f} {ref[0] / fast[0]:>7.1f}x | {fast[1]:>9.4f} "
                            f"{ref[1]:>9.3f} {ref[1] / fast[1]:>7.1f}x")
                    lines.append(line)
                    print(line, flush=True)
    lines.append(f"# load average after {os.getloadavg()[0]:.2f} (CPU shared with other jobs: timings are noisy)")
    print(lines[-1])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
