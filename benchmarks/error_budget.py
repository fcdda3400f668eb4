"""Where a held-out view's error lies: the model's squared error split by what its inputs saw of each pixel.

    python benchmarks/error_budget.py [--scenes 16] [--depth on,off] [--group novel_view] [--checkpoint PATH]

On the rig validation scenes (`train.protocol_scenes`: robot scenes of validation seeds with a depth camera's
measurements, never trained on and apart from the evaluation bags), every pixel of every target of `--group` is
put in one class:
  unseen        no input saw the target pixel's surface (`evaluate.seen_by_inputs`): its exact depth,
                reprojected into each input view, lands outside it or more than 5 % in front of or behind what
                that view's exact depth holds there (out of every input's frustum, or hidden from all of them), or
                nothing was hit there (sky);
  seen, empty   an input saw it, but the model's Gaussians cover less than COVERED of the pixel (alpha), so the
                render-time floor, walls and environment draw it;
  seen, off     covered, but the rendered depth is more than DEPTH_TOLERANCE (relative) from the exact one;
  seen, right   covered at about the right depth.
The unseen pixels are also split into floor (the truth's surface within FLOOR_BAND of the scene's lowest), sky
(nothing hit) and the rest (walls and objects).
For each class: its share of the pixels and of the squared error, its PSNR, and the group's PSNR were that class's
error zero: the most that fixing it can give. For the unseen pixels, two guesses that read the truth are scored
for reference: each target's mean colour there, and a 9x9 box blur of it (its local mean). PSNR here is over
the pooled pixels of all targets (`lrm4d evaluate` averages per view, so its figure differs a little).
Writes benchmarks/results/error_budget.txt (or --output).
"""
from __future__ import annotations

import argparse
import platform
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from lrm4d_ros.data import eval_scenes as es
from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.protocols import RIG_GROUPS, protocol_groups
from lrm4d_ros.evaluate import SEEN_TOLERANCE, seen_by_inputs
from lrm4d_ros.metrics import pooled_psnr
from lrm4d_ros.pixel_gaussians import z_rays
from lrm4d_ros.reconstructor import Reconstructor

RESULTS = Path(__file__).resolve().parent / "results"
COVERED = 0.5  # rendered alpha from which the model's Gaussians, not the render-time layers, draw a pixel
DEPTH_TOLERANCE = 0.10  # relative: a covered pixel's rendered depth this near the exact one is "right"
BLUR = 9  # pixels: the box of the truth's local mean, a reference for the unseen pixels
FLOOR_BAND = 0.02  # metres: a surface point this near the scene's lowest one is floor
CLASSES = ("unseen", "seen, empty", "seen, off", "seen, right")
UNSEEN = ("  floor", "  sky", "  rest")  # the unseen pixels split: floor, nothing hit, walls and objects


def scene_budget(reconstructor: Reconstructor, exact, sensed, group: str, depth: bool) -> dict[str, list[float]]:
    """{class: [pixels, summed squared error]} over one scene's `group` targets. exact / sensed: the scene's
    full ViewSet with exact and with sensor depths (the model is given the sensor's where depth is on)."""
    in_idx, groups = protocol_groups(sensed, "rig")
    inputs = sensed.select(in_idx)
    reconstructor.forget()  # unrelated scenes: no floor found in one is tried on the next
    rec = reconstructor.reconstruct(inputs if depth else replace(inputs, depths=None))
    targets = exact.select(groups[group])
    with torch.no_grad():
        out = rec.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
    se = ((out.colors.clamp(0, 1) - targets.images) ** 2).mean(-1)
    seen = seen_by_inputs(targets, exact.select(in_idx))
    covered = out.alphas[..., 0] >= COVERED
    right = (out.depths[..., 0] - targets.depths).abs() <= DEPTH_TOLERANCE * targets.depths
    o, d = z_rays(targets.Ks.double(), targets.camtoworlds.double(), targets.height, targets.width)
    height = (o + targets.depths.double()[..., None] * d)[..., 2]
    hit = targets.depths > 0
    floor = hit & (height <= height[hit].min() + FLOOR_BAND)
    masks = (~seen, seen & ~covered, seen & covered & ~right, seen & covered & right,
             ~seen & floor, ~hit, ~seen & hit & ~floor)
    out = {name: [float(m.sum()), float(se[m].sum())] for name, m in zip(CLASSES + UNSEEN, masks)}
    # what guesses that read the truth would score on the unseen pixels: its mean colour there, and its local mean
    truth = targets.images
    blur = F.avg_pool2d(truth.permute(0, 3, 1, 2), BLUR, 1, BLUR // 2, count_include_pad=False).permute(0, 2, 3, 1)
    flat = sum(float(((truth[k][m] - truth[k][m].mean(0)) ** 2).mean(-1).sum()) for k, m in enumerate(~seen) if m.any())
    out["unseen: truth's mean"] = [out["unseen"][0], flat]
    out[f"unseen: truth {BLUR}x{BLUR} blur"] = [out["unseen"][0], float(((truth - blur) ** 2).mean(-1)[~seen].sum())]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=16, help="rig validation scenes")
    p.add_argument("--depth", default="on,off", help="model given the depth camera's measurements: on, off or both")
    p.add_argument("--group", default="novel_view", choices=[g for g in RIG_GROUPS if g != "self"])
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", type=Path, default=RESULTS / "error_budget.txt")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.depth.split(",")]
    if args.scenes < 1 or any(m not in ("on", "off") for m in modes):
        p.error("--scenes must be >= 1 and --depth name on and/or off")
    args.output.parent.mkdir(parents=True, exist_ok=True)  # before minutes of work, not after
    print(f"rendering {args.scenes} rig validation scenes ...", flush=True)
    recipe = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED, args.scenes)
    exact = es.render_robot_scenes(recipe, 128)
    # as train.protocol_scenes draws them: the same sensor seeds, so the model sees what validation gives it
    sensed = [with_depth(v, "sensor", seed=i) for i, v in enumerate(exact)]
    reconstructor = Reconstructor.from_checkpoint(args.checkpoint)
    lines = [f"# error_budget: {args.group} targets of {args.scenes} rig validation scenes at 128², checkpoint "
             f"{args.checkpoint or 'shipped'}; torch {torch.__version__}, {platform.machine()}",
             f"# classes: unseen = no input saw the surface (exact depths, {SEEN_TOLERANCE:.0%} tolerance); empty = "
             f"alpha < {COVERED}; off = rendered depth more than {DEPTH_TOLERANCE:.0%} from the exact one",
             "# PSNR pooled over all target pixels; 'if zero' = the group's PSNR were that class's error zero; "
             "the indented rows split the unseen pixels"]
    for mode in modes:
        totals: dict[str, list[float]] = {}
        for k, (e, s) in enumerate(zip(exact, sensed)):
            for c, (n, sse) in scene_budget(reconstructor, e, s, args.group, mode == "on").items():
                totals.setdefault(c, [0.0, 0.0])
                totals[c][0] += n
                totals[c][1] += sse
            print(f"  depth {mode}: scene {k + 1}/{args.scenes}", flush=True)
        n_all = sum(totals[c][0] for c in CLASSES)
        sse_all = sum(totals[c][1] for c in CLASSES)
        lines += [f"depth {mode}: {args.group} {pooled_psnr(sse_all, n_all):.2f} dB pooled",
                  f"  {'class':<14}{'pixels':>8}{'error':>8}{'PSNR':>8}{'if zero':>9}"]
        for c in CLASSES + UNSEEN:
            n, sse = totals[c]
            lines.append(f"  {c:<14}{n / n_all:>8.1%}{sse / sse_all:>8.1%}{pooled_psnr(sse, n):>8.2f}"
                         f"{pooled_psnr(sse_all - sse, n_all):>9.2f}")
        lines += [f"  {c} {pooled_psnr(sse, n):.2f} dB" for c, (n, sse) in totals.items() if c not in CLASSES + UNSEEN]
        print("\n".join(lines[-11:]), flush=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output} ({len(modes)} input modes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
