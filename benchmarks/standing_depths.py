"""What stands on the floor of an RGB-only rig: rig-protocol scores of the robot validation scenes (and of any bags
given) from colour alone, without and with `silhouettes.standing_depths` (the depth of what stands on a floor found
by matching, where the same moment's other views outline it), both in one run with the shipped checkpoint.

    python benchmarks/standing_depths.py --scenes 64 --bags /tmp/mj_val/s10*/*_floor
        # benchmarks/results/standing_depths.txt; the bags: the 15 MuJoCo validation bags,
        # `MUJOCO_GL=osmesa python scripts/make_mujoco_bags.py --preset robots --seed S --out /tmp/mj_val/sS`
        # for S = 100, 101, 102
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from lrm4d_ros import reconstructor
from lrm4d_ros.data import eval_scenes as es
from lrm4d_ros.evaluate import evaluate_views
from lrm4d_ros.io.bag import read_bag

GROUPS = ("novel_view", "novel_view_time", "time_interp")


def none_standing(images, *args):
    return torch.zeros(images.shape[:3], device=images.device)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=64, help="robot rig validation scenes (0: none)")
    ap.add_argument("--bags", nargs="*", default=[], help="contract bags scored the same way")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "standing_depths.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = reconstructor.Reconstructor.from_checkpoint(device="cpu")
    lines = [f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads; the shipped checkpoint; "
             "RGB only (depth off), rig protocol",
             "# PSNR (dB) without / with silhouettes.standing_depths: novel_view, novel_view_time, time_interp",
             f"{'scene':34s} | {'nv':>6s} {'nv':>6s} | {'nvt':>6s} {'nvt':>6s} | {'ti':>6s} {'ti':>6s}"]
    print("\n".join(lines), flush=True)

    def row_line(name: str, scores: torch.Tensor) -> None:  # scores (2, groups): without, with
        lines.append(f"{name[:34]:34s} | " + " | ".join(f"{scores[0, g]:6.2f} {scores[1, g]:6.2f}"
                                                        for g in range(len(GROUPS))))
        print(lines[-1], flush=True)
    recipe = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED, args.scenes) if args.scenes else []
    sets = {"validation scenes": ((f"{s} {layout} {rig}", v)
                                  for (s, layout, rig), v in zip(recipe, es.render_robot_scenes(recipe, 128))),
            "bags": ((Path(b).name, read_bag(b)) for b in args.bags)}
    real = reconstructor.standing_depths
    for title, items in sets.items():
        sums, n = torch.zeros(2, len(GROUPS), dtype=torch.float64), 0
        for name, views in items:
            row = torch.zeros(2, len(GROUPS), dtype=torch.float64)
            for k, fn in enumerate((none_standing, real)):
                reconstructor.standing_depths = fn
                rec.forget()
                try:
                    groups = evaluate_views(rec, views, "rig", depth=False)["groups"]
                finally:
                    reconstructor.standing_depths = real
                row[k] = torch.tensor([groups[g]["model"]["psnr"] for g in GROUPS])
            sums += row
            n += 1
            row_line(name, row)
        if n:
            row_line(f"mean of {n} {title}", sums / n)
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
