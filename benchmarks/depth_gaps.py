"""What an RGB-D window loses when some of its input views come without depth (a dropped depth frame, depth at half
the colour rate, depth still on its way), and what serves better: the reason `selection.with_depth_first` gives the
model a depth camera's views with depth (ablation block 43).

    python benchmarks/depth_gaps.py [--scenes 8]

Rig validation scenes (`train.protocol_scenes`, with a depth camera's measurements), the rig protocol's inputs
(even cameras at the input frames) and its novel_view targets (odd cameras at those frames), the shipped model:
  all depth       every input with its depth;
  half without    every other input view (alternating by frame and camera) without its depth;
  neighbours      those views replaced by the same camera's next frame, with its depth;
  extra without   every input with depth, plus those next frames without depth.
Prints each scene's running figures and a table: PSNR (dB) as `lrm4d evaluate` averages it over targets, and pooled
over all target pixels.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace
from types import SimpleNamespace

import torch

from lrm4d_ros.data.protocols import frame_grid, rig_stride
from lrm4d_ros.reconstructor import load_reconstructor
from lrm4d_ros.train import protocol_scenes

VARIANTS = ("all depth", "half without", "neighbours", "extra without")


def inputs_of(v, variant: str):
    """The model's inputs of scene v (T×C ViewSet) under `variant`, and its novel_view targets."""
    grid = frame_grid(v)
    T, C = grid.shape
    frames = list(range(0, T, rig_stride(T, C)))
    inputs = [(f, c) for f in frames for c in range(0, C, 2)]
    gaps = [(f, c) for f, c in inputs if (frames.index(f) + c // 2) % 2 == 1]
    idx = torch.tensor([int(grid[f, c]) for f, c in inputs])
    after = torch.tensor([int(grid[min(f + 1, T - 1), c]) for f, c in gaps])
    targets = v.select(grid[frames][:, 1::2].reshape(-1))
    if variant == "all depth":
        return v.select(idx), targets
    if variant == "half without":
        views = v.select(idx)
        depths = views.depths.clone()
        depths[[k for k, fc in enumerate(inputs) if fc in gaps]] = 0
        return replace(views, depths=depths), targets
    if variant == "neighbours":
        return v.select(torch.tensor([int(grid[min(f + 1, T - 1), c]) if (f, c) in gaps else int(grid[f, c])
                                      for f, c in inputs])), targets
    views = v.select(torch.cat([idx, after]))
    depths = views.depths.clone()
    depths[len(idx):] = 0
    return replace(views, depths=depths), targets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    scenes = protocol_scenes(SimpleNamespace(val_protocol="rig", val_protocol_scenes=args.scenes, resolution=128))
    rec = load_reconstructor(None, None, "cpu")
    sse, pixels, per = dict.fromkeys(VARIANTS, 0.0), 0, {k: [] for k in VARIANTS}
    for s, v in enumerate(scenes):
        for variant in VARIANTS:
            inputs, targets = inputs_of(v, variant)
            rec.forget()
            out = rec.reconstruct(inputs).render(targets.camtoworlds, targets.Ks, targets.width, targets.height,
                                                 targets.stamps_ns)
            err = (out.colors.clamp(0, 1) - targets.images) ** 2
            sse[variant] += float(err.sum())
            per[variant] += (-10 * torch.log10(err.flatten(1).mean(1))).tolist()
        pixels += targets.images.numel()
        print(f"scene {s}: " + ", ".join(f"{k} {sum(per[k]) / len(per[k]):.2f}" for k in VARIANTS), flush=True)
    print(f"{'inputs':<15} {'novel_view PSNR':>16} {'pooled':>8}")
    for k in VARIANTS:
        print(f"{k:<15} {sum(per[k]) / len(per[k]):>16.2f} {-10 * math.log10(sse[k] / pixels):>8.2f}")


if __name__ == "__main__":
    main()
