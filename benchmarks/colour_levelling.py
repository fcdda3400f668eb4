"""RGB-only head rigs in a world whose z is not up: rig-protocol novel_view of the robot validation scenes whose
cameras all face one way ("head" rigs: every fourth of the recipe), each world as written, turned y up and as a
SLAM map started at the first camera's pose (its optical frame) has it, without levelling by colour
(reconstructor.COLOUR_UP_TRIES 0: world z taken as up) and with it (Reconstructor._level_by_colour), and the up
found against the truth. Evaluation bags in such worlds are in foreign_bags.py.

    python benchmarks/colour_levelling.py --scenes 64      # benchmarks/results/colour_levelling.txt
"""
from __future__ import annotations

import argparse
import math
import platform
from dataclasses import replace
from pathlib import Path

import torch

from lrm4d_ros import reconstructor
from lrm4d_ros.data import eval_scenes as es
from lrm4d_ros.evaluate import evaluate_views


def y_up(views):
    T = torch.eye(4, dtype=torch.float64)
    T[1:3, 1:3] = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)  # world z -> -y
    return T


def slam(views):
    return torch.linalg.inv(views.camtoworlds[0].double())


WORLDS = {"as written": lambda views: torch.eye(4, dtype=torch.float64), "y up": y_up, "slam": slam}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=64, help="validation scenes drawn (a quarter are head rigs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "colour_levelling.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = [r for r in es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED, args.scenes) if r[2] == "head"]
    rec = reconstructor.Reconstructor.from_checkpoint(device="cpu")
    tries = reconstructor.COLOUR_UP_TRIES
    lines = [f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads; the shipped checkpoint; "
             f"{len(recipe)} RGB-only head rigs of the first {args.scenes} rig validation scenes",
             "# rig protocol novel_view PSNR (dB) without / with levelling by colour; the up found, degrees off the "
             "world's ('-': none looked for or found)",
             f"{'scene':18s} {'world':>10s} | {'before':>7s} {'now':>6s} {'up off':>7s}"]
    print("\n".join(lines), flush=True)
    sums = {w: [0.0, 0.0, 0] for w in WORLDS}
    for (seed, layout, rig), views in zip(recipe, es.render_robot_scenes(recipe, 128)):
        for world, transform in WORLDS.items():
            T = transform(views)
            turned = replace(views, camtoworlds=T.to(views.camtoworlds) @ views.camtoworlds)
            scores = []
            for n in (0, tries):
                reconstructor.COLOUR_UP_TRIES = n
                rec.forget()
                try:
                    row = evaluate_views(rec, turned, "rig", depth=False)
                    scores.append(row["groups"]["novel_view"]["model"]["psnr"])
                finally:
                    reconstructor.COLOUR_UP_TRIES = tries
            off = "-"
            if rec._colour_up is not None:
                truth = T[:3, 2].to(rec._colour_up)
                off = f"{math.degrees(math.acos(min(1.0, float(rec._colour_up @ truth)))):.2f}"
                sums[world][2] += 1
            sums[world][0] += scores[0]
            sums[world][1] += scores[1]
            line = f"{seed} {layout:9s}  {world:>10s} | {scores[0]:7.2f} {scores[1]:6.2f} {off:>7s}"
            print(line, flush=True)
            lines.append(line)
    for world, (before, now, found) in sums.items():
        line = f"{'mean':18s} {world:>10s} | {before / len(recipe):7.2f} {now / len(recipe):6.2f}  found {found}"
        print(line)
        lines.append(line)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
