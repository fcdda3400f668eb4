"""What a checkpoint's Gaussians look like in time: a diagnostic for training runs.

On the evaluation scenes (lrm4d_ros.data.eval_scenes, alternating inputs, colour only) it reports, over the pixel-
aligned Gaussians of covered input pixels (ground-truth coverage > 0.5): opacity, temporal extent σ_t = sqrt(Σ_tt)
and |μ_t − t_view| (how far from its own view's time a pixel's Gaussian sits), all in normalised window units
(frames are 2/11 apart), and the fraction of all Gaussians alive (p(t) ≥ MIN_MARGINAL) at a target time. A model
whose σ_t is far below the frame spacing while |μ_t − t_view| is about a frame has scattered its Gaussians over time
instead of keeping per-view snapshots; see docs/model_card.md.

    python benchmarks/gaussian_stats.py [--checkpoint PATH] [--scenes 8] [--out FILE]
"""
from __future__ import annotations

import argparse
import platform
from dataclasses import replace
from pathlib import Path

import torch

from lrm4d_ros.data.eval_scenes import EVAL_SCENES, scene_config
from lrm4d_ros.data.generator import generate
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.gaussians import MIN_MARGINAL
from lrm4d_ros.reconstructor import Reconstructor

QUANTILES = (0.1, 0.5, 0.9)


def scene_stats(reconstructor: Reconstructor, views) -> dict[str, list[float]]:
    """Quantiles (QUANTILES) of opacity, σ_t and |μ_t − t_view| on covered input pixels, and the alive fraction."""
    inputs, targets = split_protocol(views, "alternating")
    inputs = replace(inputs, depths=None)  # colour only, as the evaluation bags hold these scenes
    small = inputs.resized(*reconstructor.input_size(inputs.height, inputs.width))
    reconstructor.forget()  # unrelated scenes: no floor found in one is tried on the next
    rec = reconstructor.reconstruct(inputs)
    g = rec.gaussians.to("cpu")
    V, H, W = small.alphas.shape
    # Pixel-aligned Gaussians come first, view-major (reconstructor.Prediction); keep those of covered pixels.
    covered = torch.zeros(len(g), dtype=torch.bool)
    covered[:V * H * W] = (small.alphas > 0.5).reshape(-1).cpu()
    t_view = torch.zeros(len(g))
    t_view[:V * H * W] = rec.window.normalize(small.stamps_ns)[:, None, None].expand(V, H, W).reshape(-1)
    sigma_t = g.covariance()[:, 3, 3].clamp_min(0).sqrt()
    q = torch.tensor(QUANTILES)
    alive = torch.stack([g.marginal(float(t)) >= MIN_MARGINAL for t in rec.window.normalize(targets.stamps_ns)])
    return {"opacity": torch.quantile(g.opacities[covered], q).tolist(),
            "sigma_t": torch.quantile(sigma_t[covered], q).tolist(),
            "|mu_t - t_view|": torch.quantile((g.times - t_view)[covered].abs(), q).tolist(),
            "alive": [float(alive.float().mean())]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="weights (default: the shipped checkpoint)")
    p.add_argument("--scenes", type=int, default=len(EVAL_SCENES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rec = Reconstructor.from_checkpoint(args.checkpoint, "cpu")
    rows = []
    for seed, rig, motion in EVAL_SCENES[:args.scenes]:
        rows.append(scene_stats(rec, generate(seed, scene_config(rig, motion))))
        print(f"{seed} " + "  ".join(f"{k} {[round(x, 4) for x in v]}" for k, v in rows[-1].items()), flush=True)
    lines = [f"# gaussian_stats: checkpoint {args.checkpoint or 'shipped'}, {len(rows)} eval scenes, alternating "
             f"inputs (colour only, as their bags); mean over scenes of per-scene quantiles {QUANTILES} (normalised "
             "time; frames 0.18 apart); "
             f"torch {torch.__version__}, {platform.machine()}",
             f"{'quantity':<18}" + "".join(f"{f'q{q}':>10}" for q in QUANTILES)]
    for key in rows[0]:
        vals = [sum(r[key][i] for r in rows) / len(rows) for i in range(len(rows[0][key]))]
        lines.append(f"{key:<18}" + "".join(f"{v:>10.4f}" for v in vals))
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
