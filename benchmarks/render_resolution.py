"""Renders at other resolutions than the model's input: the footprint fill for finer ones (reconstruction.
fill_footprints, FILL_FROM) and supersampling for coarser ones (Reconstruction.supersampling, SUPERSAMPLE_FROM).

The rig protocol validation scenes are generated at a high resolution (default 384²); the reconstructor resizes
the inputs to the model's 128², and the held-out targets are scored against their own ground truth at 64, 96, 128,
256 and 384 (`lrm4d evaluate`'s --resolution): renders at 0.5x to 3x the inputs' resolution. Each row is scored
with the shipped footprints (the fill, and supersampling) and without them (every Gaussian drawn as predicted,
point-sampled), RGB-D and RGB, in one run.

    python benchmarks/render_resolution.py --scenes 8      # benchmarks/results/render_resolution.txt (~40 min)
"""
from __future__ import annotations

import argparse
import sys
import time
import types
from dataclasses import replace

import torch

from lrm4d_ros.evaluate import evaluate_views
from lrm4d_ros.reconstruction import FILL_FROM, SUPERSAMPLE_FROM
from lrm4d_ros.reconstructor import Reconstructor
from lrm4d_ros.train import protocol_scenes

GROUPS = ("novel_view", "novel_view_time", "time_interp", "self")


class Unfilled(Reconstructor):
    """The same reconstructions, rendered without footprints: every Gaussian as the model predicted it, at the
    target's own pixels."""

    def reconstruct(self, views, normalization=None):
        return replace(super().reconstruct(views, normalization), footprints=None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=8, help="rig protocol validation scenes")
    p.add_argument("--resolution", type=int, default=384, help="the scenes' (and the finest targets') short side")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.scenes < 1 or args.threads < 1 or args.resolution < 128:
        p.error("--scenes and --threads must be >= 1, --resolution >= 128")
    torch.set_num_threads(args.threads)
    filled = Reconstructor.from_checkpoint(args.checkpoint)
    unfilled = Unfilled(filled.model, filled.device)
    t0 = time.perf_counter()
    print(f"rendering {args.scenes} rig validation scenes at {args.resolution}² ...", flush=True)
    scenes = protocol_scenes(types.SimpleNamespace(val_protocol="rig", val_protocol_scenes=args.scenes,
                                                   resolution=args.resolution))
    sizes = sorted({s for s in (64, 96, 128, 256, args.resolution) if s <= args.resolution})
    print(f"mean PSNR (dB) over {args.scenes} scenes; inputs at the model's 128²; FILL_FROM {FILL_FROM}, "
          f"SUPERSAMPLE_FROM {SUPERSAMPLE_FROM}")
    print(f"{'inputs':<7}{'targets':>8}  {'footprints':<11}" + "".join(f"{g:>17}" for g in GROUPS))
    for depth in (True, False):
        for size in sizes:
            for name, rec in (("none", unfilled), ("footprints", filled)):
                rows = [evaluate_views(rec, v if depth else replace(v, depths=None), "rig", size, depth=depth,
                                       baselines={}) for v in scenes]
                means = [sum(r["groups"][g]["model"]["psnr"] for r in rows) / len(rows) for g in GROUPS]
                print(f"{'RGB-D' if depth else 'RGB':<7}{size:>8}  {name:<11}" + "".join(f"{m:>17.2f}" for m in means),
                      flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
