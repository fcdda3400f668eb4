"""Quality against time: per-scene optimisation (lrm4d_ros.optimize) at several budgets beside the feed-forward model.

On evaluation scenes (lrm4d_ros.data.eval_scenes, rendered by the generator exactly as the bags: colour only, as
their bags hold them), for each protocol:
the model's target PSNR and its reconstruct time; then per-scene fits of 4D Gaussians to the same inputs for each
budget, from an uninformed start ("rays") and from the model's prediction ("model", i.e. feed-forward + test-time
refinement). Targets at 128². Output: a table on stdout and in benchmarks/results/per_scene_<device>.txt.

    python benchmarks/bench_per_scene.py [--scenes 3] [--budgets 10,30,90] [--threads 1]
"""
from __future__ import annotations

import argparse
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.data.eval_scenes import EVAL_SCENES, scene_config
from lrm4d_ros.data.generator import generate
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.metrics import psnr
from lrm4d_ros.optimize import FitConfig, fit
from lrm4d_ros.reconstructor import Reconstructor

RESULTS = Path(__file__).resolve().parent / "results"


def target_psnr(rec, targets) -> float:
    with torch.no_grad():
        out = rec.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
    return float(psnr(out.colors.clamp(0, 1), targets.images.to(out.colors.device)).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=3, help="first N evaluation scenes")
    p.add_argument("--budgets", default="10,30,90", help="per-scene budgets in seconds")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [float(b) for b in args.budgets.split(",")]
    recon = Reconstructor.from_checkpoint(args.checkpoint, args.device)
    dev = recon.device
    table: dict[tuple[str, str], list[float]] = {}

    def add(proto, method, value):
        table.setdefault((proto, method), []).append(value)

    for seed, rig, motion in EVAL_SCENES[:args.scenes]:
        views = replace(generate(seed, scene_config(rig, motion)), depths=None)  # (the generator's exact depth)
        for proto in ("alternating", "novel-camera"):
            inputs, targets = split_protocol(views, proto)
            add(proto, "nearest input", float(psnr(nearest_input(inputs, targets), targets.images).mean()))
            inputs = inputs.to(dev)
            recon.forget()  # unrelated scenes: no floor found in one is tried on the next
            t = time.perf_counter()
            rec = recon.reconstruct(inputs)
            add(proto, "model (feed-forward)", target_psnr(rec, targets))
            add(proto, "model time s", time.perf_counter() - t)
            for b in budgets:
                for init in ("rays", "model"):
                    res = fit(inputs, FitConfig(steps=None, seconds=b), init=rec if init == "model" else None)
                    add(proto, f"fit {init} {b:g}s", target_psnr(res.reconstruction, targets))
                    add(proto, f"fit {init} {b:g}s steps", res.steps)
            print(f"{seed} {proto}: " + ", ".join(f"{m} {v[-1]:.2f}" for (pr, m), v in table.items() if pr == proto),
                  flush=True)
    lines = [f"# bench_per_scene: mean over {args.scenes} eval scenes, targets 128², device {dev}, "
             f"{args.threads} thread(s), torch {torch.__version__}, {platform.machine()}",
             "# target PSNR (dB); 'fit rays' = per-scene optimisation from an uninformed start, 'fit model' = from "
             "the model's prediction", f"{'method':<28}{'alternating':>14}{'novel-camera':>14}"]
    methods = [m for (pr, m) in table if pr == "alternating"]
    for m in methods:
        vals = [sum(table[(pr, m)]) / len(table[(pr, m)]) for pr in ("alternating", "novel-camera")]
        fmt = "{:>14.0f}" if m.endswith("steps") else "{:>14.2f}"
        lines.append(f"{m:<28}" + "".join(fmt.format(v) for v in vals))
    text = "\n".join(lines)
    print(text)
    out = RESULTS / f"per_scene_{dev.type}.txt"
    out.write_text(text + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
