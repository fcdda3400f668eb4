"""Windows of few synchronized instants: how a reconstruction renders between them (reconstructor.SPARSE_GAP).

The inputs are the rig protocol validation scenes' even cameras, with their depth, at 2 or 3 frames; the targets
are the odd cameras at those frames (novel_view), the odd cameras between them (novel_view_time) and the even
cameras between them (time_interp). Each row is scored twice in one run: with the shipped SPARSE_GAP and without
it (math.inf: every Gaussian keeps the model's σ_t). Nothing else is shown because nothing else can change: an
RGB-only rig's pixels keep their σ_t, and so does every pixel of a window whose instants lie no more than
SPARSE_GAP apart (the rig protocol's 4: 2/3).

    python benchmarks/sparse_instants.py --scenes 16      # benchmarks/results/sparse_instants.txt
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import types

import torch

from lrm4d_ros import reconstructor
from lrm4d_ros.data.protocols import frame_grid
from lrm4d_ros.metrics import psnr
from lrm4d_ros.train import protocol_scenes

SETUPS = {"2 instants {0,9}": [0, 9], "3 instants {0,5,10}": [0, 5, 10]}
GROUPS = ("novel_view", "novel_view_time", "time_interp")


def score(rec: reconstructor.Reconstructor, views, frames: list[int]) -> dict[str, float]:
    """Mean PSNR of each target group of one scene, reconstructed from the even cameras at `frames` (RGB-D)."""
    grid = frame_grid(views)
    between = [k for k in range(frames[0], frames[-1] + 1) if k not in frames]
    inputs = views.select(grid[frames][:, 0::2].reshape(-1))
    rec.forget()
    r = rec.reconstruct(inputs)
    targets = {"novel_view": grid[frames][:, 1::2], "novel_view_time": grid[between][:, 1::2],
               "time_interp": grid[between][:, 0::2]}
    out = {}
    for name, idx in targets.items():
        t = views.select(idx.reshape(-1))
        shown = r.render(t.camtoworlds, t.Ks, t.width, t.height, t.stamps_ns).colors.clamp(0, 1)
        out[name] = float(psnr(shown, t.images).mean())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=16, help="rig protocol validation scenes")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.scenes < 1 or args.threads < 1:
        p.error("--scenes and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    rec = reconstructor.Reconstructor.from_checkpoint(args.checkpoint)
    print(f"rendering {args.scenes} rig validation scenes ...", flush=True)
    scenes = protocol_scenes(types.SimpleNamespace(val_protocol="rig", val_protocol_scenes=args.scenes,
                                                   resolution=128))
    shipped = reconstructor.SPARSE_GAP
    print(f"mean PSNR (dB) over {args.scenes} scenes; SPARSE_GAP {shipped} against off (inf)")
    print(f"{'inputs':<7}{'instants':<24}{'SPARSE_GAP':>11}" + "".join(f"{g:>17}" for g in GROUPS))
    t0 = time.perf_counter()
    try:
        for name, frames in SETUPS.items():
            for gap in (math.inf, shipped):
                reconstructor.SPARSE_GAP = gap
                rows = [score(rec, views, frames) for views in scenes]
                print(f"{'RGB-D':<7}{name:<24}{gap:>11}"
                      + "".join(f"{sum(r[g] for r in rows) / len(rows):>17.2f}" for g in GROUPS), flush=True)
    finally:
        reconstructor.SPARSE_GAP = shipped
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
