"""Writes the model card's 8 unseen procedural evaluation scenes as bags (the recipe is
lrm4d_ros/data/eval_scenes.py: validation seeds 1000100–1000107, never used in training; rigs and motions in turn,
12 frames × 8 cameras at 128², 3×3 supersampled, 2–6 primitives, white background).

    python benchmarks/eval_scenes.py --out /tmp/lrm4d_eval_bags      # then: lrm4d evaluate /tmp/lrm4d_eval_bags/scene_*
"""
from __future__ import annotations

import argparse
import sys

from lrm4d_ros.data.eval_scenes import CAMERAS, EVAL_SCENES, FRAMES, RESOLUTION


def main(argv=None) -> int:
    from lrm4d_ros.cli import main as lrm4d

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for scene_<seed>/ bags")
    args = p.parse_args(argv)
    for seed, rig, motion in EVAL_SCENES:
        code = lrm4d(["make-bag", "--seed", str(seed), "--rig", rig, "--motion", motion, "--ground", "0",
                      "--backdrop", "0", "--frames", str(FRAMES), "--cameras", str(CAMERAS),
                      "--resolution", str(RESOLUTION), "--out", args.out])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
