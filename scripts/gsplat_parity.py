"""Parity of the two render() backends: gsplat (CUDA) against the package's torch rasterizer.

    python scripts/gsplat_parity.py [--gaussians 20000] [--seeds 0 1 2] [--views 4] [--size 128]

Needs a CUDA machine with gsplat installed (`pip install -e .[cuda]`). For each random scene (seed) it renders
the same Gaussians and cameras with gsplat and with the torch rasterizer, both on the GPU, and prints per
scene and camera the max abs difference of colour, alpha and depth and the PSNR of gsplat's colour against
the torch one, and with depth weights (every other Gaussian 0: render(depth_weights=)) the max abs difference of
the weighted depth and its coverage, and what the median depth (render(depth_mode="median"), which on CUDA is the
reference's pass) adds to a warm call. gsplat compiles its CUDA code on first use (cached under
~/.cache/torch_extensions unless its wheel ships binaries): the first call's time, build included, and a warm call's
are reported apart. Writes the table to benchmarks/results/gsplat_parity.txt.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_render import make_scene, ring_cameras  # noqa: E402
from lrm4d_ros.render import gsplat_available  # noqa: E402
from lrm4d_ros.render import rasterize_gsplat, rasterize_torch  # noqa: E402
from lrm4d_ros.cameras import invert_pose  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--scenes", nargs="+", default=["random", "init"])
    args = ap.parse_args()
    if not (torch.cuda.is_available() and gsplat_available()):
        print("gsplat_parity needs CUDA and gsplat (pip install -e .[cuda])", file=sys.stderr)
        return 2

    import gsplat

    def gsplat_call(scene, viewmats, Ks, bg, **kw) -> tuple[list, float]:
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = rasterize_gsplat.rasterize(*(x.cuda() for x in scene), viewmats.cuda(), Ks.cuda(), args.size,
                                         args.size, bg.cuda(), 0.01, 1e10, **kw)
        torch.cuda.synchronize()
        return [x.cpu() for x in out], time.perf_counter() - t

    c2w, Ks = ring_cameras(args.views, args.size)
    viewmats, Ks = invert_pose(c2w).float(), Ks.float()
    first_scene, first_bg = make_scene(args.scenes[0], args.gaussians, args.seeds[0]), torch.zeros(args.views, 3)
    _, first_s = gsplat_call(first_scene, viewmats, Ks, first_bg)
    _, warm_s = gsplat_call(first_scene, viewmats, Ks, first_bg)
    halves = (torch.arange(len(first_scene[0])) % 2).float().cuda()
    for _ in range(2):  # the second call is timed: what render(depth_mode="median") costs on CUDA
        _, median_s = gsplat_call(first_scene, viewmats, Ks, first_bg, depth_weights=halves, median=True)
    lines = [f"# gsplat {gsplat.__version__} vs torch rasterizer; {args.gaussians} Gaussians, {args.views} views, "
             f"{args.size}x{args.size}; GPU {torch.cuda.get_device_name()}",
             f"# gsplat first call {first_s:.1f} s (CUDA build or load included), warm call {warm_s * 1e3:.2f} ms",
             f"# with the median depth (gsplat has none: the PyTorch reference's pass beside gsplat's colours, "
             f"Reconstruction.render's depth) warm call {median_s * 1e3:.2f} ms",
             f"{'scene':<7} {'seed':>4} {'cam':>3} {'max|dRGB|':>10} {'max|dA|':>9} {'max|dZ|':>9} {'PSNR dB':>8}"
             f" {'max|dZw|':>9} {'max|dAw|':>9}"]
    print("\n".join(lines), flush=True)
    worst = math.inf
    for kind in args.scenes:
        for seed in args.seeds:
            scene = make_scene(kind, args.gaussians, seed)
            bg = torch.rand(args.views, 3, generator=torch.Generator().manual_seed(seed))
            # the reference on the GPU too: on the CPU it took minutes of the lease (57 s a scene at 20k Gaussians)
            ref = [x.cpu() for x in rasterize_torch.rasterize(*(x.cuda() for x in scene), viewmats.cuda(), Ks.cuda(),
                                                               args.size, args.size, bg.cuda(), 0.01, 1e10)]
            got, _ = gsplat_call(scene, viewmats, Ks, bg)
            weights = (torch.arange(len(scene[0])) % 2).float()
            ref_w = [x.cpu() for x in rasterize_torch.rasterize(*(x.cuda() for x in scene), viewmats.cuda(),
                                                                 Ks.cuda(), args.size, args.size, bg.cuda(), 0.01, 1e10,
                                                                 depth_weights=weights.cuda())]
            got_w, _ = gsplat_call(scene, viewmats, Ks, bg, depth_weights=weights.cuda())
            for cam in range(args.views):
                d = [(g[cam] - r[cam]).abs().max().item() for g, r in zip(got, ref)]
                dw = [(g[cam] - r[cam]).abs().max().item() for g, r in zip(got_w[2:], ref_w[2:])]
                p = psnr(got[0][cam], ref[0][cam])
                worst = min(worst, p)
                line = (f"{kind:<7} {seed:>4} {cam:>3} {d[0]:>10.2e} {d[1]:>9.2e} {d[2]:>9.2e} {p:>8.2f}"
                        f" {dw[0]:>9.2e} {dw[1]:>9.2e}")
                lines.append(line)
                print(line, flush=True)
    lines.append(f"# worst PSNR {worst:.2f} dB")
    print(lines[-1])
    out = ROOT / "benchmarks" / "results" / "gsplat_parity.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
