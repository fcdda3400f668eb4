"""The non-learned RGB-D reference (lrm4d_ros.baselines.depth_reference) alone on RGB-D contract bags: the rig
protocol's groups (docs/design.md §5) scored beside nearest input and background only, and what the reference costs
(no model is loaded). `--footprints` compares splat sizes (σ in pixels at the splat's depth); `--far-fill F`
adds the variant that also splats the pixels without a measurement (sky, beyond range) at F × the farthest depth.

    python benchmarks/bench_depth_reference.py BAG... [--protocol rig] [--footprints 0.3] [--far-fill 3] \
        [--resolution 128] [--threads 1] [--out benchmarks/results/depth_reference_cpu.txt]

Bags with depth come from `lrm4d make-bag --depth sensor ...` or `scripts/make_mujoco_bags.py --preset robots`.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from lrm4d_ros.baselines import background_only, depth_reference, nearest_input
from lrm4d_ros.data.protocols import PROTOCOLS, protocol_groups
from lrm4d_ros.views import frame_indices
from lrm4d_ros.io.bag import read_bag
from lrm4d_ros.metrics import psnr, ssim
from lrm4d_ros.views import short_side_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="+", help="contract bags with /<cam>/depth")
    p.add_argument("--protocol", default="rig", choices=PROTOCOLS)
    p.add_argument("--footprints", default="0.3", help="comma-separated splat σ in pixels")
    p.add_argument("--far-fill", type=float, default=None, metavar="F",
                   help="add a column: the first footprint with unmeasured pixels splatted at F × the farthest depth")
    p.add_argument("--resolution", type=int, default=128, help="short side of the scored targets")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    footprints = [float(f) for f in args.footprints.split(",")]
    variants = [(f"ref σ={f:g}px", {"footprint": f}) for f in footprints]
    if args.far_fill is not None:
        variants.append((f"far-fill x{args.far_fill:g}", {"footprint": footprints[0], "far_fill": args.far_fill}))
    load = os.getloadavg()[0]
    header = (f"{'bag':<24}{'group':<17}{'targets':>8}" + "".join(f"{name:>16}" for name, _ in variants)
              + f"{'nearest':>16}{'background':>16}{'ref s/view':>11}{'splats/frame':>13}")
    lines = [f"# bench_depth_reference: {args.protocol} protocol, targets at {args.resolution}px short side, "
             f"cells: PSNR dB / SSIM",
             f"# torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}, load average before "
             f"{load:.2f}", header]
    print("\n".join(lines), flush=True)
    totals: dict[str, list[float]] = {}
    for bag in args.bags:
        views = read_bag(bag)
        if views.depths is None:
            raise SystemExit(f"{bag}: no /<cam>/depth topics")
        in_idx, groups = protocol_groups(views, args.protocol)
        inputs = views.select(in_idx)
        splats = float((inputs.depths > 0).sum()) / (int(frame_indices(inputs).max()) + 1)  # per input frame
        for g, idx in groups.items():
            if len(idx) == 0:
                continue
            targets = views.select(idx)
            targets = targets.resized(*short_side_size(targets.height, targets.width, args.resolution))
            cells, secs = [], 0.0
            for k, (_, kw) in enumerate(variants):
                t = time.perf_counter()
                pred = depth_reference(inputs, targets, **kw)
                if k == 0:
                    secs = (time.perf_counter() - t) / len(targets)
                cells.append((float(psnr(pred, targets.images).mean()), float(ssim(pred, targets.images).mean())))
            for name, fn in (("nearest", nearest_input), ("background", background_only)):
                pred = fn(inputs, targets)
                cells.append((float(psnr(pred, targets.images).mean()), float(ssim(pred, targets.images).mean()))
                             if not (name == "nearest" and g == "self") else None)
            for k, c in enumerate(cells):
                if c is not None:
                    totals.setdefault(f"{g}/{k}", []).append(c[0])
            text = "".join(f"{'-':>16}" if c is None else f"{c[0]:>9.2f} {c[1]:.3f}" for c in cells)
            lines.append(f"{Path(bag).name[:23]:<24}{g:<17}{len(idx):>8}{text}{secs:>11.3f}"
                         f"{splats:>13.0f}")
            print(lines[-1], flush=True)
    summary = [f"{'mean PSNR over bags':<24}"]
    for g in dict.fromkeys(k.split("/")[0] for k in totals):
        vals = [totals.get(f"{g}/{k}") for k in range(len(variants) + 2)]
        summary.append(f"{'':<24}{g:<17}{'':>8}" + "".join(f"{'-':>16}" if not v else f"{sum(v) / len(v):>9.2f}      "
                                                            for v in vals))
    summary.append(f"# load average after {os.getloadavg()[0]:.2f} (CPU shared with other jobs: timings are noisy)")
    print("\n".join(summary))
    lines += summary
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
