"""Scores a checkpoint on the protocol validation scenes (`train.protocol_scenes`: validation seeds, never trained
on and apart from the evaluation bags), the scenes render-time choices are made on (ablation.txt, blocks 7-9).

    python benchmarks/validation.py --protocol rig --scenes 16                      # robot scenes, RGB-D and RGB
    python benchmarks/validation.py --protocol alternating,novel-camera --scenes 8  # object-centric, RGB only
    python benchmarks/validation.py --protocol rig --scenes 16 --depth off --floor-z 0  # the floor's height given
    python benchmarks/validation.py --protocol rig --scenes 16 --untrained   # what the learned part adds

Prints, per protocol and input mode, the model's PSNR / SSIM for each target group beside the nearest input's,
as `lrm4d evaluate` scores a bag. Robot scenes carry a depth camera's measurements (scored with and without
them, `--depth`); the object-centric scenes are scored from colour alone, as their evaluation bags hold it.
"""
from __future__ import annotations

import argparse
import sys
import time
import types
from dataclasses import replace

import torch

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.data.protocols import PROTOCOLS
from lrm4d_ros.evaluate import evaluate_views, summarize
from lrm4d_ros.model import LRM4D
from lrm4d_ros.reconstructor import Reconstructor
from lrm4d_ros.train import protocol_scenes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--protocol", default="rig", help=f"comma-separated, of {PROTOCOLS}")
    p.add_argument("--scenes", type=int, default=16, help="validation scenes per protocol")
    p.add_argument("--depth", default=None, help="rig: 'on', 'off' or 'on,off' (default both); objects: off")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--untrained", action="store_true",
                   help="the checkpoint's configuration at its initialisation (seed 0) instead of its weights: the "
                        "render-time layers and the head's non-learned splat without what training added")
    p.add_argument("--floor-z", type=float, default=None, metavar="METRES",
                   help="tell the reconstructor the floor's world height (the robot scenes': 0; Reconstructor floor_z)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    protocols = [s.strip() for s in args.protocol.split(",")]
    if any(s not in PROTOCOLS for s in protocols) or args.scenes < 1:
        p.error(f"--protocol must name protocols of {PROTOCOLS} and --scenes be >= 1")
    rec = Reconstructor.from_checkpoint(args.checkpoint, floor_z=args.floor_z)
    if args.untrained:
        torch.manual_seed(0)
        rec = Reconstructor(LRM4D(rec.model.cfg).to(rec.device), rec.device, floor_z=args.floor_z)
        print(f"untrained: the {rec.model.cfg.n_layer}-layer configuration at its initialisation (seed 0)")
    scenes = {}
    for protocol in protocols:
        kind = "rig" if protocol == "rig" else "objects"
        if kind not in scenes:
            print(f"rendering {args.scenes} {kind} validation scenes ...", flush=True)
            scenes[kind] = protocol_scenes(types.SimpleNamespace(val_protocol=protocol,
                                                                 val_protocol_scenes=args.scenes, resolution=128))
        modes = (args.depth or "on,off").split(",") if kind == "rig" else ["off"]
        for mode in modes:
            t0 = time.perf_counter()
            rows = []
            for views in scenes[kind]:
                views = views if mode == "on" else replace(views, depths=None)
                rows.append(evaluate_views(rec, views, protocol, views.height, depth=mode == "on",
                                           baselines={"nearest": nearest_input}))
            s = summarize(rows, protocol)
            groups = s.get("groups") or {"all": {"model": s["model"], "baselines": s["baselines"]}}
            print(f"{protocol} ({len(rows)} scenes, depth {mode}, {time.perf_counter() - t0:.0f} s)")
            print(f"  {'group':<16}{'lrm4d PSNR':>11}{'SSIM':>8}{'nearest':>9}")
            for name, g in groups.items():
                if "model" not in g:
                    continue
                near = g.get("baselines", {}).get("nearest", {}).get("psnr")
                print(f"  {name:<16}{g['model']['psnr']:>11.2f}{g['model']['ssim']:>8.4f}"
                      f"{'-' if near is None else f'{near:.2f}':>9}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
