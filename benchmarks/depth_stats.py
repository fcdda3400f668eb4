"""Where a checkpoint puts its pixel Gaussians: predicted depth against the measured depth.

On evaluation bags (rig protocol inputs, as `lrm4d evaluate` gives them to the model), per bag and input mode
(RGB-D: the bag's depth as input; RGB: colour only), over pixels the bag measured: the median of the true z-depth,
of the pixel Gaussians' z-depth, and the median |log(pred / true)| (0.1 is about 10 %). A model that cannot
triangulate from colour hedges by putting everything far away, where a wrong depth moves a splat least between
nearby views: a median ratio pred/true far above 1 in RGB mode is that.

    python benchmarks/depth_stats.py BAG... [--checkpoint PATH] [--threads 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from lrm4d_ros.cameras import SceneNormalization, TimeWindow
from lrm4d_ros.data.protocols import protocol_groups
from lrm4d_ros.io.bag import read_bag
from lrm4d_ros.reconstructor import MEASURED_OFFSET, Reconstructor, predict


@torch.no_grad()
def bag_stats(reconstructor: Reconstructor, path: str) -> list[dict]:
    """Rows {bag, mode, true, pred, err_pred} for RGB-D and RGB inputs of one bag."""
    views = read_bag(path)
    if views.depths is None:
        raise SystemExit(f"{path}: no depth topics; depth_stats needs measured depth to compare against")
    in_idx, _ = protocol_groups(views, "rig")
    v = views.select(in_idx)
    v = v.resized(*reconstructor.input_size(v.height, v.width)).to(reconstructor.device)
    # The Reconstructor's normalisation, spelled out: predict() returns the pixel depths, reconstruct() does not.
    norm = SceneNormalization.from_cameras(v.camtoworlds)
    c2w = norm.poses_to_canonical(v.camtoworlds.double())
    times = TimeWindow.from_stamps(v.stamps_ns).normalize(v.stamps_ns).to(reconstructor.device)
    true = v.depths.float() * norm.scale
    hit = true > 0
    rows = []
    for mode, depths in (("RGB-D", true), ("RGB", None)):
        pred = predict(reconstructor.model, v.images, v.Ks, c2w, times, depths, measured_offset=MEASURED_OFFSET)
        row = {"bag": Path(path).name, "mode": mode, "true": float(true[hit].median()),
               "pred": float(pred.pixel_depths[hit].median()),
               "err_pred": float((pred.pixel_depths[hit].log() - true[hit].log()).abs().median())}
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bags", nargs="+", help="bag directories with depth topics (e.g. scripts/eval_shipped.sh's)")
    ap.add_argument("--checkpoint", default=None, help="weights (default: the shipped checkpoint)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the table here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rec = Reconstructor.from_checkpoint(args.checkpoint)
    lines = [f"# depth_stats: checkpoint {args.checkpoint or 'shipped'}, rig inputs, medians over measured pixels "
             f"(canonical units); err = median |log(pred/true)|; torch {torch.__version__}, {platform.machine()}",
             f"{'bag':32s} {'mode':6s} {'true':>6s} {'pred':>6s} {'err pred':>9s}"]
    print(lines[0] + "\n" + lines[1], flush=True)
    for bag in args.bags:
        for r in bag_stats(rec, bag):
            line = f"{r['bag'][:32]:32s} {r['mode']:6s} {r['true']:6.2f} {r['pred']:6.2f} {r['err_pred']:9.3f}"
            lines.append(line)
            print(line, flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
