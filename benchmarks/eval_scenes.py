"""The 8 unseen procedural scenes of the model card's evaluation, and the command that writes them as bags.

Validation seeds 1000100–1000107 (never used in training), rigs cycling orbit/canonical/shell/moving and motion
rigid/articulated/scaling, 12 frames × 8 cameras at 128² (3×3 supersampled), 2–6 primitives, no ground plane or
backdrop, white background.

    python benchmarks/eval_scenes.py --out /tmp/lrm4d_eval_bags      # then: lrm4d evaluate /tmp/lrm4d_eval_bags/scene_*
"""
from __future__ import annotations

import argparse
import sys

RIGS = ("orbit", "canonical", "shell", "moving")
MOTIONS = ("rigid", "articulated", "scaling")
EVAL_SCENES = [(1_000_100 + i, RIGS[i % 4], MOTIONS[i % 3]) for i in range(8)]
FRAMES, CAMERAS, RESOLUTION = 12, 8, 128


def scene_config(rig: str, motion: str, resolution: int = RESOLUTION, supersample: int = 3):
    """The SceneConfig `lrm4d make-bag` uses for these scenes (its defaults with --ground 0 --backdrop 0)."""
    from lrm4d_ros.data.generator import SceneConfig

    return SceneConfig(num_primitives=(2, 6), rig_kinds=(rig,), motion_kinds=(motion,), frames=FRAMES,
                       cameras=CAMERAS, height=resolution, width=resolution, ground_prob=0.0, backdrop_prob=0.0,
                       supersample=supersample)


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
