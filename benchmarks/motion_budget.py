"""Where the time_interp error lies: a rig bag's in-between moments split into what changed and what did not.

    python benchmarks/motion_budget.py BAG... [--group time_interp] [--depth on|off] [--output FILE]

For each bag (rig protocol, targets at 128² as `lrm4d evaluate` scores them), every pixel of every target of
`--group` is "changed" where the nearest input (the same camera's input frame nearest in time,
`baselines.nearest_input`) differs from the target by more than CHANGED in some channel, else "unchanged".
On a still camera the changed pixels are what moved between its frames (and what it uncovered); on a moving
camera nearly every pixel changes. Prints per bag and pooled over the bags: the changed pixels' share of the
pixels and of the model's squared error, and the model's and the nearest input's PSNR on each part (pooled
over the pixels of all targets, so it differs a little from `lrm4d evaluate`'s per-view mean).
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.data.protocols import protocol_groups
from lrm4d_ros.io.bag import read_bag
from lrm4d_ros.metrics import pooled_psnr
from lrm4d_ros.reconstructor import Reconstructor
from lrm4d_ros.views import short_side_size

CHANGED = 2.0 / 255.0  # a channel differing by more than this from the nearest input frame: the pixel changed


def bag_budget(rec: Reconstructor, path: str, group: str, depth: bool) -> dict[str, float]:
    """Squared-error sums and pixel counts of one bag's `group` targets: {model|nearest}_{changed|unchanged}, n_*."""
    views = read_bag(path)
    in_idx, groups = protocol_groups(views, "rig")
    if group not in groups or len(groups[group]) == 0:
        raise SystemExit(f"{path}: no {group} targets under the rig protocol")
    inputs = views.select(in_idx)
    targets = views.select(groups[group])
    targets = targets.resized(*short_side_size(targets.height, targets.width, 128))
    rec.forget()  # unrelated scenes: no floor found in one is tried on the next
    r = rec.reconstruct(inputs if depth else replace(inputs, depths=None))
    with torch.no_grad():
        pred = r.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns).colors
    gt = targets.images
    near = nearest_input(inputs, targets).to(gt)
    changed = (near - gt).abs().amax(-1) > CHANGED
    out = {}
    for name, img in (("model", pred.clamp(0, 1)), ("nearest", near)):
        se = ((img - gt) ** 2).mean(-1)
        out[f"{name}_changed"] = float(se[changed].sum())
        out[f"{name}_unchanged"] = float(se[~changed].sum())
    out["n_changed"], out["n_unchanged"] = float(changed.sum()), float((~changed).sum())
    return out


def line(name: str, b: dict[str, float]) -> str:
    n = b["n_changed"] + b["n_unchanged"]
    err = b["model_changed"] + b["model_unchanged"]
    return (f"{name:<34}{100 * b['n_changed'] / n:>8.1f}%{100 * b['model_changed'] / max(err, 1e-30):>8.1f}%"
            f"{pooled_psnr(b['model_changed'], b['n_changed']):>9.2f}"
            f"{pooled_psnr(b['nearest_changed'], b['n_changed']):>9.2f}"
            f"{pooled_psnr(b['model_unchanged'], b['n_unchanged']):>9.2f}"
            f"{pooled_psnr(b['nearest_unchanged'], b['n_unchanged']):>9.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="+", help="contract bags (docs/design.md §4)")
    p.add_argument("--group", default="time_interp", help="rig target group (default time_interp)")
    p.add_argument("--depth", choices=("on", "off"), default="on", help="give the model the bags' depth")
    p.add_argument("--checkpoint", default=None, help="model weights (default: the shipped checkpoint)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--output", default=None, help="also write the table here")
    args = p.parse_args(argv)
    lines: list[str] = []

    def emit(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    torch.set_num_threads(args.threads)
    rec = Reconstructor.from_checkpoint(args.checkpoint)
    emit(f"# {args.group} targets at 128², depth {args.depth}; changed = differs from the nearest input by more "
          f"than {CHANGED * 255:.0f}/255 in a channel; PSNR pooled over the pixels")
    emit(f"{'bag':<34}{'changed':>9}{'of error':>9}{'model':>9}{'nearest':>9}{'model':>9}{'nearest':>9}")
    emit(f"{'':<34}{'pixels':>9}{'(model)':>9}{'changed':>9}{'changed':>9}{'same':>9}{'same':>9}")
    total: dict[str, float] = {}
    for path in args.bags:
        b = bag_budget(rec, path, args.group, args.depth == "on")
        emit(line(path.rstrip("/").split("/")[-1], b))
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    if len(args.bags) > 1:
        emit(line("all", total))
    if args.output:
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
