"""Which views a node's window gives the model (`selection.select_views`'s policies), scored on held-out cameras.

    python benchmarks/selection_policies.py --scenes 48 --bags /tmp/mj_val/s10*/*_floor
        # benchmarks/results/selection_policies.txt; the bags: the 15 MuJoCo validation bags
        # (`MUJOCO_GL=osmesa python scripts/make_mujoco_bags.py --preset robots --seed S --out /tmp/mj_val/sS`,
        # S = 100, 101, 102)

A synchronized rig streams into the node's buffer: every frame of the even-indexed cameras (the rig protocol's
input cameras) is a candidate, and each policy picks --max-views of them, as the node's window does (`select_inputs`,
depth-first rule included). The shipped model reconstructs them; the odd-indexed cameras are scored (PSNR, dB) at
  now     the newest frame, where the node's virtual cameras render (time_offset_s 0) and /render_view is asked most;
  window  every frame the inputs span (the newest and the in-between moments the window can be asked for).
Rig validation scenes (`train.protocol_scenes`' recipe, sensor depth seeded by scene as error_budget.py does) and
any contract bags given, RGB-D and RGB only, every policy in one run with the same scenes.
"""
from __future__ import annotations

import argparse
import platform
from dataclasses import replace
from pathlib import Path

import torch

from lrm4d_ros.data import eval_scenes as es
from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.generator import generate
from lrm4d_ros.data.protocols import frame_grid
from lrm4d_ros.io.bag import read_bag
from lrm4d_ros.metrics import psnr
from lrm4d_ros.reconstructor import Reconstructor
from lrm4d_ros.selection import POLICIES, select_inputs
from lrm4d_ros.views import ViewSet

RESULTS = Path(__file__).resolve().parent / "results"


def scores(model: Reconstructor, views: ViewSet, policy: str, max_views: int) -> tuple[float, float, int]:
    """(now, window, frames spanned): mean PSNR of the odd cameras at the newest frame and at every frame the
    inputs chosen by `policy` among the even cameras' views span."""
    grid = frame_grid(views)
    cands = grid[:, 0::2].reshape(-1)
    inputs = views.select(cands[select_inputs(views.select(cands), max_views, policy)])
    model.forget()  # unrelated scenes: no floor found in one is tried on the next
    rec = model.reconstruct(inputs)
    first = int(inputs.stamps_ns.min())
    frames = [k for k in range(grid.shape[0]) if int(views.stamps_ns[grid[k]].max()) >= first]
    out = []
    for idx in (grid[-1, 1::2], grid[frames][:, 1::2].reshape(-1)):
        t = views.select(idx)
        with torch.no_grad():
            r = rec.render(t.camtoworlds, t.Ks, t.width, t.height, t.stamps_ns)
        out.append(float(psnr(r.colors.clamp(0, 1), t.images).mean()))
    return out[0], out[1], len(frames)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=48, help="rig validation scenes (0: none)")
    p.add_argument("--bags", nargs="*", default=[], help="contract bags scored the same way")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated, of " + ", ".join(POLICIES))
    p.add_argument("--depth", default="on,off", help="model given the depth camera's measurements: on, off or both")
    p.add_argument("--max-views", type=int, default=12)
    p.add_argument("--cameras", type=int, default=es.ROBOT_CAMERAS,
                   help="cameras of each validation scene, half of them inputs (default: the rig protocol's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", type=Path, default=RESULTS / "selection_policies.txt")
    args = p.parse_args(argv)
    policies = [s.strip() for s in args.policies.split(",")]
    modes = [m.strip() for m in args.depth.split(",")]
    if any(q not in POLICIES for q in policies) or any(m not in ("on", "off") for m in modes):
        p.error(f"--policies must name some of {POLICIES} and --depth on and/or off")
    torch.set_num_threads(args.threads)
    args.output.parent.mkdir(parents=True, exist_ok=True)  # before minutes of work, not after
    model = Reconstructor.from_checkpoint(device="cpu")
    recipe = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED, args.scenes) if args.scenes else []
    print(f"rendering {len(recipe)} rig validation scenes ...", flush=True)
    scenes = [generate(seed, replace(es.robot_scene_config(layout, rig), cameras=args.cameras))
              for seed, layout, rig in recipe]
    sets = {"validation scenes": [(f"{s} {layout} {rig}", with_depth(v, "sensor", seed=i)) for i, ((s, layout, rig), v)
                                  in enumerate(zip(recipe, scenes))],
            "bags": [(Path(b).name, read_bag(b)) for b in args.bags]}
    head = " | ".join(f"{q:>15s}" for q in policies)
    lines = [f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads; the shipped checkpoint; "
             f"{args.max_views} inputs chosen among the even cameras' every frame, {args.cameras} cameras a scene",
             "# PSNR (dB) of the odd cameras: now (newest frame) / window (every frame the inputs span; frames)"]
    for mode in modes:
        for title, items in sets.items():
            if not items:
                continue
            lines += [f"## depth {mode}, {title}", f"{'scene':34s} | {head}"]
            print("\n".join(lines[-2:]), flush=True)
            sums = torch.zeros(len(policies), 2, dtype=torch.float64)
            for name, views in items:
                v = views if mode == "on" else replace(views, depths=None)
                row = [scores(model, v, q, args.max_views) for q in policies]
                sums += torch.tensor([r[:2] for r in row], dtype=torch.float64)
                lines.append(f"{name[:34]:34s} | " + " | ".join(f"{n:6.2f} {w:5.2f} {f:2d}" for n, w, f in row))
                print(lines[-1], flush=True)
            mean = sums / len(items)
            lines.append(f"{'mean of ' + str(len(items)):34s} | "
                         + " | ".join(f"{mean[k, 0]:6.2f} {mean[k, 1]:5.2f}   " for k in range(len(policies))))
            print(lines[-1], flush=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
