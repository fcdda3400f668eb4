"""CPU training throughput, before against after, side by side in one run: the same model, initial weights,
scenes, depth dropout and learning rate, stepped in turn so both see the same machine load.

    python benchmarks/bench_train.py [--steps 200] [--threads 2] [--configs before,after]

Configurations (the training loop of `lrm4d train`: scene_loss, AdamW, clipping, warmup + cosine):
  before  the pure-PyTorch rasterizer and float32 everywhere (the recipe before the compiled rasterizer)
  after   the compiled (numba) rasterizer, bf16 autocast for the model's forward where the CPU has native BF16, and
          AdamW's fused kernel (as `lrm4d train`)
  after-fp32   the compiled rasterizer, float32 (what bf16 adds on its own)
  after-loop   `after` with AdamW's per-parameter loop (what the fused kernel adds on its own)
  patch8  `after` with the small preset's former 8×8 patches (4× the tokens)
  views   `after` compositing over the floor read from the views and the walls, as inference does (training skips
          these render-time layers)
Prints per configuration: median model step (forward + backward + optimizer) and scene generation time, steps
per minute, the loss curve's agreement with the first configuration (mean |Δloss| over all steps and over the
last 50, same data and lr), and the updates skipped for a non-finite gradient (as `lrm4d train` skips them).
Writes benchmarks/results/train_cpu.txt.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lrm4d_ros import render as render_module
from lrm4d_ros.data.depth_sensor import sensor_depth
from lrm4d_ros.data.sampler import SceneSampler, robot_mix
from lrm4d_ros.model import LRM4D, LRM4DConfig, bf16_native
from lrm4d_ros.render.rasterize_torch import rasterize as torch_rasterize
from lrm4d_ros.train import drop_depth, lr_at, scene_loss
from lrm4d_ros.views import ViewSet

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = {  # name: (rasterizer, bf16, patch size, read_views, fused AdamW)
    "before": ("torch", False, 16, False, False),
    "after": ("numba", True, 16, False, True),
    "after-fp32": ("numba", False, 16, False, True),
    "after-loop": ("numba", True, 16, False, False),
    "patch8": ("numba", True, 8, False, True),
    "views": ("numba", True, 16, True, True),
}


@dataclass
class Run:
    name: str
    model: LRM4D
    opt: torch.optim.Optimizer
    raster: str
    bf16: bool
    read_views: bool
    skipped: int = 0
    step_s: list = field(default_factory=list)
    losses: list = field(default_factory=list)


def use_rasterizer(kind: str) -> None:
    """Point render()'s CPU backend at the compiled or the reference rasterizer."""
    render_module.cpu_backend()  # load (and compile) the compiled one first
    if kind == "torch":
        render_module._cpu[:] = [("torch", torch_rasterize)]
    else:
        from lrm4d_ros.render import rasterize_numba

        render_module._cpu[:] = [("numba", rasterize_numba.rasterize)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--configs", default="before,after")
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--output", type=Path, default=RESULTS / "train_cpu.txt")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [c.strip() for c in args.configs.split(",")]
    bad = [c for c in names if c not in CONFIGS]
    if bad:
        p.error(f"unknown configs {bad}; choose from {list(CONFIGS)}")
    runs = []
    for name in names:
        raster, bf16, patch, read_views, fused = CONFIGS[name]
        torch.manual_seed(0)
        model = LRM4D(LRM4DConfig.preset("small", patch_size=patch))
        decay = [q for q in model.parameters() if q.ndim >= 2]
        no_decay = [q for q in model.parameters() if q.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=args.lr, betas=(0.9, 0.95), fused=fused or None)
        runs.append(Run(name, model, opt, raster, bf16 and bf16_native("cpu"), read_views))
    mix = robot_mix(12, 6, 128, 128)
    samplers = {n: SceneSampler(mix, num_inputs=n, num_targets=4) for n in range(6, 13)}
    rng = torch.Generator().manual_seed(0)

    class Sched:
        lr, warmup, min_lr_ratio = args.lr, args.warmup, 0.1

    gen_s = []
    for step in range(args.steps):
        t0 = time.perf_counter()
        n = 6 + step % 7
        item = samplers[n].sample(step)
        targets = ViewSet.cat([item["targets"], item["inputs"].select([0, 1])])
        depths = sensor_depth(item["inputs"].depths, item["inputs"].Ks.float(), rng) \
            if item["inputs"].depths is not None else None
        depths = drop_depth(depths, rng, 0.5, 0.2)
        gen_s.append(time.perf_counter() - t0)
        lr = lr_at(step / args.steps, step, Sched)
        for run in runs:
            use_rasterizer(run.raster)
            for g in run.opt.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            loss, _ = scene_loss(run.model, item["inputs"], targets, 0.2, run.bf16, depths, run.read_views)
            loss.backward()
            if torch.isfinite(torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)):
                run.opt.step()
            else:  # as `lrm4d train` does: a non-finite gradient's update is skipped, not applied
                run.skipped += 1
            run.opt.zero_grad(set_to_none=True)
            run.step_s.append(time.perf_counter() - t0)
            run.losses.append(float(loss))
        if step % 10 == 0:
            print(f"step {step}: " + ", ".join(f"{r.name} {r.step_s[-1]:.2f} s loss {r.losses[-1]:.4f}" for r in runs),
                  flush=True)
    gen = statistics.median(gen_s)
    lines = [f"# bench_train: {args.steps} steps of the small model on the robot mix at 128² (6-12 inputs, 4 targets + "
             f"2 self), {args.threads} threads, same seeds/data/lr, configurations stepped in turn",
             f"# torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, native BF16: {bf16_native('cpu')}; "
             f"load average after: {os.getloadavg()[0]:.2f}; scene generation median {gen:.3f} s/step",
             f"{'config':<12}{'model step s (median)':>22}{'steps/min':>11}{'speed-up':>10}{'mean |Δloss|':>14}"
             f"{'last 50':>10}{'skipped':>9}"]
    base = runs[0]
    for run in runs:
        med = statistics.median(run.step_s)
        spm = 60.0 / (med + gen)
        d = [abs(a - b) for a, b in zip(run.losses, base.losses)]
        lines.append(f"{run.name:<12}{med:>22.3f}{spm:>11.1f}{statistics.median(base.step_s) / med:>9.1f}x"
                     f"{statistics.mean(d):>14.4f}{statistics.mean(d[-50:]):>10.4f}{run.skipped:>9}")
    lines.append("# mean loss over all steps: " + ", ".join(f"{r.name} {statistics.mean(r.losses):.4f}" for r in runs))
    text = "\n".join(lines)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
