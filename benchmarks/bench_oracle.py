"""What perfect per-view geometry buys under each protocol: an oracle bound beside the nearest-input baseline.

For each evaluation scene (benchmarks/eval_scenes.py) the protocol's input views are turned into "oracle"
Gaussians: one per covered input pixel, placed on its ray at the generator's ground-truth depth, with the pixel's
exact colour and coverage as opacity, a footprint-sized isotropic splat, centred at its view's time with temporal
extent `st` (normalised window units; frames are 2/11 apart) and no motion. Rendered at every target (128², over
the same estimated background the model uses) this is the best a reconstruction of *static per-frame snapshots*
can do: it knows each input's geometry exactly but nothing about how content moves between frames. Optionally
the model checkpoint is scored on the same targets.

The gap between "oracle" and "nearest" says how much of a protocol can be won from geometry alone; the rest needs
the model to learn motion (each frame has a single input view in both protocols).

    python benchmarks/bench_oracle.py [--input-size 64] [--checkpoint PATH|shipped|none] [--threads 1]
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from eval_scenes import EVAL_SCENES, scene_config
from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.cameras import SceneNormalization, TimeWindow, pixel_rays
from lrm4d_ros.data.generator import generate
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.gaussians import Gaussians4D
from lrm4d_ros.metrics import psnr
from lrm4d_ros.reconstructor import Reconstructor, estimate_background, render_at_times

RESULTS = Path(__file__).resolve().parent / "results"
TEMPORAL_EXTENTS = (0.05, 0.1, 0.2, 0.5)


def oracle_gaussians(inputs, norm: SceneNormalization, window: TimeWindow, st: float) -> Gaussians4D:
    """Canonical-frame oracle Gaussians of `inputs` (a ViewSet with ground-truth depths and alphas)."""
    V, H, W = inputs.depths.shape
    c2w = norm.poses_to_canonical(inputs.camtoworlds.double())
    o, d = pixel_rays(inputs.Ks.double(), c2w, H, W)
    zdot = (d * c2w[:, None, None, :3, 2]).sum(-1)
    dist = inputs.depths.double() * norm.scale / zdot  # z-depth (m) -> distance along the ray (canonical)
    hit = (inputs.depths > 0).reshape(-1)
    f = (inputs.Ks[:, 0, 0] * inputs.Ks[:, 1, 1]).sqrt()[:, None, None]
    n = int(hit.sum())
    ident = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4)
    return Gaussians4D(
        means=(o + dist[..., None] * d).reshape(-1, 3)[hit].float(),
        times=window.normalize(inputs.stamps_ns).float()[:, None, None].expand(V, H, W).reshape(-1)[hit],
        scales=(0.7 * dist / f).reshape(-1)[hit].float()[:, None].expand(n, 3).clone(),
        scale_t=torch.full((n,), st), quats_l=ident.clone(), quats_r=ident.clone(),
        opacities=inputs.alphas.reshape(-1)[hit].clamp(max=0.99),
        colors=inputs.images.reshape(-1, 3)[hit])


def score_scene(views, protocol: str, input_size: int, reconstructor: Reconstructor | None) -> dict:
    inputs, targets = split_protocol(views, protocol)
    row = {"nearest": float(psnr(nearest_input(inputs, targets), targets.images).mean())}
    small = inputs.resized(input_size, input_size)
    norm = SceneNormalization.from_cameras(small.camtoworlds)
    window = TimeWindow.from_stamps(small.stamps_ns)
    bg = estimate_background(small.images)
    c2w = norm.poses_to_canonical(targets.camtoworlds.double()).float()
    times = window.normalize(targets.stamps_ns)
    for st in TEMPORAL_EXTENTS:
        with torch.no_grad():
            out = render_at_times(oracle_gaussians(small, norm, window, st), c2w, targets.Ks.float(),
                                  targets.width, targets.height, times, bg)
        row[f"oracle st={st}"] = float(psnr(out.colors.clamp(0, 1), targets.images).mean())
    if reconstructor is not None:
        rec = reconstructor.reconstruct(inputs)
        with torch.no_grad():
            out = rec.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
        row["model"] = float(psnr(out.colors.clamp(0, 1), targets.images).mean())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-size", type=int, default=64, help="inputs are resized to this (the model's 64 px)")
    p.add_argument("--checkpoint", default="shipped", help="also score this model ('shipped', a path, or 'none')")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "oracle_bounds.txt"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rec = None if args.checkpoint == "none" else Reconstructor.from_checkpoint(
        None if args.checkpoint == "shipped" else args.checkpoint, "cpu")
    rows = {proto: [] for proto in ("alternating", "novel-camera")}
    for seed, rig, motion in EVAL_SCENES:
        views = generate(seed, scene_config(rig, motion))
        for proto in rows:
            r = score_scene(views, proto, args.input_size, rec)
            rows[proto].append(r)
            print(f"{seed} {rig:9s} {motion:11s} {proto:12s} " + "  ".join(f"{k} {v:.2f}" for k, v in r.items()),
                  flush=True)
    keys = list(rows["alternating"][0])
    lines = [f"# bench_oracle: mean PSNR (dB) over {len(EVAL_SCENES)} eval scenes, targets 128², inputs "
             f"{args.input_size}², checkpoint {args.checkpoint}; torch {torch.__version__}, {platform.machine()}, "
             f"{args.threads} thread(s)",
             f"{'protocol':<14}" + "".join(f"{k:>16}" for k in keys)]
    for proto, rs in rows.items():
        lines.append(f"{proto:<14}" + "".join(f"{sum(r[k] for r in rs) / len(rs):>16.2f}" for k in keys))
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
