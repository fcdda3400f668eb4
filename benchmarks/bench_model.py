"""Reconstruct a window of 24 input views and render 24 frames at 256², per model size and device.

`small` uses the shipped checkpoint (its Gaussians decide the render cost); `base` and `large` are randomly
initialised and timed on CUDA only by default: on CPU (2 threads) their 256² inputs (24 576 tokens) and random
Gaussians over every view kept one run busy for over 30 minutes. `--models` picks presets on either device.
Input: a procedural validation scene, 24 frames of an 8-camera orbit rig, one view per frame (the alternating
protocol). Output: a table on stdout and in benchmarks/results/model_<device>.txt (or --out). Median of
--repeats runs after one warm-up.

    python benchmarks/bench_model.py [--device cpu|cuda] [--threads 1] [--repeats 3] [--models small,base]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from lrm4d_ros.checkpoint import load_model, shipped_checkpoint_path
from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.model import LRM4D, LRM4DConfig, PRESETS
from lrm4d_ros.reconstructor import Reconstructor

RESULTS = Path(__file__).resolve().parent / "results"


def build(name: str) -> LRM4D:
    if name == "small" and shipped_checkpoint_path().is_file():
        return load_model()
    return LRM4D(LRM4DConfig.preset(name))


def timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def bench(name: str, device: torch.device, repeats: int, frames: int, res: int) -> dict:
    cfg = SceneConfig(frames=frames, cameras=8, height=res, width=res, rig_kinds=("orbit",), ground_prob=0.0,
                      backdrop_prob=0.0)
    views = generate(1_000_200, cfg)
    inputs, _ = split_protocol(views, "alternating")
    rec_engine = Reconstructor(build(name), device)
    # Render each input camera at its own stamp: one frame per input time.
    cams, Ks, stamps = inputs.camtoworlds, inputs.Ks, inputs.stamps_ns
    rec_t, render_t, n_gauss = [], [], 0
    for i in range(repeats + 1):
        rec, t_rec = timed(lambda: rec_engine.reconstruct(inputs), device)
        with torch.no_grad():
            _, t_ren = timed(lambda: rec.render(cams, Ks, res, res, stamps), device)
        n_gauss = len(rec.gaussians)
        if i:  # the first run warms up kernels and allocators
            rec_t.append(t_rec)
            render_t.append(t_ren)
    return {"model": name, "params_M": rec_engine.model.num_params() / 1e6, "gaussians": n_gauss,
            "reconstruct_s": statistics.median(rec_t), "render_s": statistics.median(render_t)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--models", default=None,
                   help="comma-separated presets (default: small,base,large on CUDA, small on CPU)")
    p.add_argument("--out", default=None, help="results file (default: results/model_<device>.txt)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = args.models.split(",") if args.models else (["small", "base", "large"] if device.type == "cuda"
                                                          else ["small"])
    unknown = set(names) - set(PRESETS)
    if unknown:
        p.error(f"unknown model presets {sorted(unknown)}; choose from {sorted(PRESETS)}")
    rows = [bench(n, device, args.repeats, args.frames, args.resolution) for n in names]
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    lines = [f"# bench_model: reconstruct {args.frames} input views + render {args.frames} frames at "
             f"{args.resolution}x{args.resolution}; device {device} ({hw}); torch {torch.__version__}; "
             f"median of {args.repeats}",
             f"{'model':<8}{'params (M)':>11}{'gaussians':>11}{'reconstruct (s)':>17}{'render (s)':>12}"
             f"{'total (s)':>11}{'render/frame (s)':>18}"]
    for r in rows:
        lines.append(f"{r['model']:<8}{r['params_M']:>11.1f}{r['gaussians']:>11d}{r['reconstruct_s']:>17.3f}"
                     f"{r['render_s']:>12.3f}{r['reconstruct_s'] + r['render_s']:>11.3f}"
                     f"{r['render_s'] / args.frames:>18.3f}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"model_{device.type}.txt"
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
