"""Contact sheets of the generator's robot-like scene kinds (docs/robot_scenes.png) and of the sampler's input
draws on one scene (docs/robot_scene_draws.png).

    python scripts/robot_scene_sheets.py [--out docs] [--resolution 128]

robot_scenes.png: per row one scene of `robot_mix` kind (tabletop, workcell, mobile on the poles / head / orbit
rigs, and an object-centric scene on a floor): its 6 synchronized cameras at the first frame, camera 0 at three
later frames, and camera 0's depth (inverse depth, white = near, black = nothing). 3×3 supersampled.
robot_scene_draws.png: per input draw of the sampler (time_bins, rig, uniform, latest) the 12 inputs it picks
from a 12-frame × 6-camera tabletop scene, in time order, labelled camera/frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lrm4d_ros.data.generator import all_views, robot_config, sample_scene, SceneConfig
from lrm4d_ros.data.raycast import render_views
from lrm4d_ros.data.sampler import SceneSampler
from lrm4d_ros.video import contact_sheet, write_png

# (title, layout or None for objects on a floor, rig, seed)
ROWS = (("tabletop", "tabletop", "poles", 3), ("tabletop", "tabletop", "head", 11),
        ("workcell", "workcell", "poles", 5), ("workcell", "workcell", "orbit", 8),
        ("mobile", "mobile", "head", 4), ("mobile", "mobile", "poles", 9),
        ("objects on a floor", None, "poles", 2))
FRAMES, CAMERAS = 12, 6


def inverse_depth(depth: torch.Tensor) -> torch.Tensor:
    """(H,W) z-depth -> (H,W,3) grey image: nearest white, 0 (nothing) black, 1/z scaled to the view's range."""
    inv = torch.where(depth > 0, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    return (inv / inv.max().clamp_min(1e-6))[..., None].expand(*depth.shape, 3)


def scene_rows(resolution: int) -> list[tuple[str, torch.Tensor]]:
    rows = []
    for title, layout, rig, seed in ROWS:
        common = dict(frames=FRAMES, cameras=CAMERAS, height=resolution, width=resolution, supersample=3,
                      caster="numba", background=(0.85, 0.9, 1.0))
        cfg = robot_config((layout,), (rig,), **common) if layout else \
            SceneConfig(rig_kinds=(rig,), ground_prob=1.0, backdrop_prob=0.0, synchronized=True, jitter=0.02,
                        num_primitives=(3, 6), **common)
        scene = sample_scene(seed, cfg)
        cams, stamps = all_views(scene)
        pick = list(range(CAMERAS)) + [k * CAMERAS for k in (4, 8, FRAMES - 1)]
        views = render_views(scene, cams[pick], stamps[pick], resolution, resolution, supersample=3,
                             caster="numba")
        tiles = torch.cat([views.images, inverse_depth(views.depths[0])[None]])
        label = (f"{title}, {rig} rig (seed {seed}, {len(scene.kinds)} primitives): cameras 0-{CAMERAS - 1} at frame 0 "
                 f"| camera 0 at frames 4, 8, {FRAMES - 1} | camera 0 depth")
        rows.append((label, tiles))
        print(label, flush=True)
    return rows


def draw_rows(resolution: int) -> tuple[list, list]:
    cfg = robot_config(("tabletop",), ("poles",), frames=FRAMES, cameras=CAMERAS, height=resolution,
                       width=resolution, caster="numba", background=(0.85, 0.9, 1.0))
    frame_of = {int(s): k for k, row in enumerate(sample_scene(7, cfg).stamps_ns) for s in row}
    rows, tags = [], []
    for draw in ("time_bins", "rig", "uniform", "latest"):
        inp = SceneSampler(cfg, num_inputs=12, num_targets=4, draws={draw: 1.0}).sample(7)["inputs"]
        rows.append((f"input draw '{draw}' on tabletop scene 7 ({len(inp)} inputs, time order)", inp.images))
        tags.append([f"c{c} f{frame_of[s]}" for c, s in zip(inp.camera_ids.tolist(), inp.stamps_ns.tolist())])
    return rows, tags


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"),
                    help="folder the sheets are written in (default: docs/)")
    ap.add_argument("--resolution", type=int, default=128)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("wrote", write_png(out / "robot_scenes.png", contact_sheet(scene_rows(args.resolution))))
    rows, tags = draw_rows(args.resolution)
    print("wrote", write_png(out / "robot_scene_draws.png", contact_sheet(rows, tile_labels=tags)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
