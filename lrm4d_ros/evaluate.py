"""`lrm4d evaluate BAG... --protocol alternating|novel-camera --json OUT`: DESIGN.md §5 on contract bags.

Per bag: split the views by the protocol (lrm4d_ros.data.protocols), reconstruct from the inputs, render every
target at its camera and stamp at the evaluation resolution, and score PSNR / SSIM against the target images,
beside the baselines (lrm4d_ros.baselines: nearest input, background only) and, with `--per-scene SECONDS`, a
per-scene optimisation of 4D Gaussians on the same inputs with the same renderer (lrm4d_ros.optimize; from an
uninformed start, or from the model's prediction with `--per-scene-init model`). Metrics are averaged over targets
within a bag, then over bags. Timings are wall-clock on the machine that runs it.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from .baselines import BASELINES
from .metrics import psnr, ssim
from .reconstructor import Reconstructor
from .views import ViewSet, short_side_size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bags", nargs="+", help="contract bags (DESIGN §4)")
    p.add_argument("--protocol", required=True, choices=("alternating", "novel-camera"))
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--resolution", type=int, default=128,
                   help="targets are scored at this short-side resolution (resized from the bag if needed)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--per-scene", type=float, default=0.0, metavar="SECONDS",
                   help="also fit 4D Gaussians per scene for this many seconds (0: off)")
    p.add_argument("--per-scene-steps", type=int, default=None, help="stop the per-scene fit after N steps")
    p.add_argument("--per-scene-init", choices=("rays", "model"), default="rays",
                   help="per-scene start: uninformed Gaussians on the input rays, or the model's prediction")


def _score(pred: torch.Tensor, target: torch.Tensor) -> dict:
    return {"psnr": float(psnr(pred, target).mean()), "ssim": float(ssim(pred, target).mean())}


def evaluate_views(reconstructor: Reconstructor, views: ViewSet, protocol: str, resolution: int = 128,
                   per_scene=None, per_scene_init: str = "rays") -> dict:
    """Scores of one scene's full T×C ViewSet under `protocol` (see module docstring).

    per_scene: an optimize.FitConfig to also score a per-scene fit (started from `per_scene_init`).
    """
    from .data.protocols import split_protocol

    inputs, targets = split_protocol(views, protocol)
    targets = targets.resized(*short_side_size(targets.height, targets.width, resolution))
    sync = torch.cuda.synchronize if reconstructor.device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    rec = reconstructor.reconstruct(inputs)
    sync()
    t1 = time.perf_counter()
    with torch.no_grad():
        out = rec.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
    sync()
    t2 = time.perf_counter()
    gt = targets.images.to(out.colors.device)
    row = {"num_inputs": len(inputs), "num_targets": len(targets), "resolution": [targets.height, targets.width],
           "num_gaussians": len(rec.gaussians), "model": _score(out.colors.clamp(0, 1), gt),
           "baselines": {name: _score(fn(inputs, targets).to(gt.device), gt) for name, fn in BASELINES.items()},
           "reconstruct_s": round(t1 - t0, 4), "render_s_per_view": round((t2 - t1) / len(targets), 4)}
    if per_scene is not None:
        from .optimize import fit

        res = fit(inputs, per_scene, init=rec if per_scene_init == "model" else None)
        with torch.no_grad():
            fo = res.reconstruction.render(targets.camtoworlds, targets.Ks, targets.width, targets.height,
                                           targets.stamps_ns)
        row["baselines"]["per_scene"] = {**_score(fo.colors.clamp(0, 1), gt), "init": per_scene_init,
                                         "fit_s": round(res.seconds, 2), "steps": res.steps,
                                         "input_psnr": round(res.input_psnr, 3)}
    return row


def summarize(rows: list[dict], protocol: str) -> dict:
    """Mean over bags of each method's per-bag mean PSNR/SSIM, plus the per-bag rows."""
    def mean(get):
        return sum(get(r) for r in rows) / len(rows)

    names = list(rows[0]["baselines"])
    keys = {n: [k for k in ("psnr", "ssim", "fit_s", "steps") if k in rows[0]["baselines"][n]] for n in names}
    return {
        "protocol": protocol,
        "model": {k: mean(lambda r: r["model"][k]) for k in ("psnr", "ssim")},
        "baselines": {n: {k: mean(lambda r: r["baselines"][n][k]) for k in keys[n]} for n in names},
        "timing": {"reconstruct_s": mean(lambda r: r["reconstruct_s"]),
                   "render_s_per_view": mean(lambda r: r["render_s_per_view"])},
        "per_bag": rows,
    }


def format_table(result: dict) -> str:
    lines = [f"protocol: {result['protocol']}  ({len(result['per_bag'])} bags)",
             f"{'method':<14}{'PSNR (dB)':>10}{'SSIM':>8}"]
    lines.append(f"{'lrm4d':<14}{result['model']['psnr']:>10.2f}{result['model']['ssim']:>8.4f}")
    for name, m in result["baselines"].items():
        lines.append(f"{name:<14}{m['psnr']:>10.2f}{m['ssim']:>8.4f}")
    t = result["timing"]
    lines.append(f"reconstruct {t['reconstruct_s']:.3f} s/window, render {t['render_s_per_view']:.3f} s/view")
    return "\n".join(lines)


def run(args) -> int:
    from .io.bag import BagError, read_bag

    if args.threads:
        torch.set_num_threads(args.threads)
    reconstructor = Reconstructor.from_checkpoint(args.checkpoint, args.device)
    per_scene = None
    if args.per_scene > 0 or args.per_scene_steps:
        from .optimize import FitConfig

        per_scene = FitConfig(steps=args.per_scene_steps, seconds=args.per_scene if args.per_scene > 0 else None)
    rows = []
    for bag in args.bags:
        try:
            views = read_bag(bag)
        except BagError as e:
            print(f"lrm4d evaluate: {e}", file=sys.stderr)
            return 1
        row = evaluate_views(reconstructor, views, args.protocol, args.resolution, per_scene, args.per_scene_init)
        row["bag"] = str(bag)
        print(f"{bag}: lrm4d {row['model']['psnr']:.2f} dB, "
              + ", ".join(f"{n} {m['psnr']:.2f} dB" for n, m in row["baselines"].items()), flush=True)
        rows.append(row)
    result = summarize(rows, args.protocol)
    result["checkpoint"] = str(args.checkpoint or "shipped")
    result["device"] = str(reconstructor.device)
    result["host"] = {"cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
                      "torch": torch.__version__}
    print(format_table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
