"""Bags as another renderer or robot may write them: the shipped model's rig-protocol novel_view on evaluation bags
as written and changed the way such a bag differs, without (world z taken as up, every depth value a measurement
in metres along the optical axis, as before) and with the reconstruction's handling of it.

- world frame turned about x (poses only; images and depths as they were): y up (many renderers' frames), 20°,
  and 2° (a floor not quite level in odom); and `slam`, the first camera's optical frame (z forward, y down: a
  SLAM map started at its pose). Handled by levelling: the cameras' up (`SceneNormalization.from_cameras`), the
  floor's normal in measured depth (`reconstructor.level_by_depth`, about the cameras' image up too where they all
  face one way, as scene_1002001's head rig does), and from colour alone a head rig's floor as its views match it
  (`Reconstructor._level_by_colour`, where the image up lies 45° or more from world z).
- what the depth camera did not measure written as a far clip plane, 100 m (a renderer's zfar) or 65.535 m (16UC1's
  largest value), or as a sky sphere 100 m away (z-depth 100 m times each ray's cosine to the optical axis), through
  a bag, instead of 0. Handled by `reconstructor.far_background`.
- depth as each pixel's distance along its ray (`ray depth`: Isaac Sim's distance_to_camera, AirSim's
  DepthPerspective) instead of z, and in millimetres where the poses are in metres (`depth mm`: 32FC1 written x1000).
  Handled by `measured_depth.ray_depth_t` / `z_from_ray` and `measured_depth.reading`.

    python benchmarks/foreign_bags.py [BAG ...] [--threads 2]

Default bags: evaluation bags scene_1002000 (cameras around the scene), scene_1002001 (a head rig) and
jaco_workcell_floor under /tmp/lrm4d_eval_bags (written by scripts/eval_shipped.sh). Writes
benchmarks/results/foreign_bags.txt.
"""
from __future__ import annotations

import argparse
import math
import platform
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

import lrm4d_ros.cameras as cameras
from lrm4d_ros.cameras import pixel_rays
from lrm4d_ros.measured_depth import Reading, ray_lengths
import lrm4d_ros.reconstructor as reconstructor
from lrm4d_ros.evaluate import evaluate_views
from lrm4d_ros.io.bag import read_bag, write_bag

BAGS = ["/tmp/lrm4d_eval_bags/robot/scene_1002000", "/tmp/lrm4d_eval_bags/robot/scene_1002001",
        "/tmp/lrm4d_eval_bags/mujoco/jaco_workcell_floor"]


def turned(degrees: float):
    def change(views):
        a = math.radians(degrees)
        T = torch.eye(4, dtype=torch.float64)
        T[1, 1], T[1, 2], T[2, 1], T[2, 2] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
        return replace(views, camtoworlds=T.to(views.camtoworlds) @ views.camtoworlds)
    return change


def slam_frame(views):
    """The world frame a SLAM map started at the first camera's pose has: its optical frame (z forward, y down)."""
    first = torch.linalg.inv(views.camtoworlds[0])
    return replace(views, camtoworlds=first.to(views.camtoworlds) @ views.camtoworlds)


def far_plane(metres: float, encoding: str, sphere: bool = False):
    def change(views):
        if views.depths is None:
            return None
        far = torch.tensor(metres)
        if sphere:
            _, dirs = pixel_rays(views.Ks, views.camtoworlds, views.height, views.width)
            far = metres * (dirs * views.camtoworlds[:, None, None, :3, 2]).sum(-1).float()
        clipped = replace(views, depths=torch.where(views.depths > 0, views.depths, far))
        with tempfile.TemporaryDirectory() as tmp:
            return read_bag(write_bag(clipped, Path(tmp) / "bag", depth_encoding=encoding))
    return change


@contextmanager
def unlevelled():
    saved = cameras.LEVEL_FROM_CAMERAS_DEG, reconstructor.LEVEL_FROM_DEPTH_DEG, reconstructor.COLOUR_UP_TRIES
    cameras.LEVEL_FROM_CAMERAS_DEG = reconstructor.LEVEL_FROM_DEPTH_DEG = 180.0  # no turn reaches it
    reconstructor.COLOUR_UP_TRIES = 0  # an RGB-only head rig's floor is not looked for
    try:
        yield
    finally:
        cameras.LEVEL_FROM_CAMERAS_DEG, reconstructor.LEVEL_FROM_DEPTH_DEG, reconstructor.COLOUR_UP_TRIES = saved


@contextmanager
def unclipped():
    saved = reconstructor.FAR_SHARE
    reconstructor.FAR_SHARE = 2.0  # no share reaches it
    try:
        yield
    finally:
        reconstructor.FAR_SHARE = saved


def ray_depth(views):
    if views.depths is None:
        return None
    return replace(views, depths=views.depths * ray_lengths(views.Ks, views.height, views.width).float())


def millimetres(views):
    return None if views.depths is None else replace(views, depths=views.depths * 1000)


@contextmanager
def as_written():
    saved = reconstructor.RAY_T, reconstructor.depth_reading
    reconstructor.RAY_T = math.inf
    reconstructor.depth_reading = lambda depths, Ks, camtoworlds, sigma=None: Reading(None, 1.0, 0.0, 0.0,
                                                                                      torch.zeros(1))
    try:
        yield
    finally:
        reconstructor.RAY_T, reconstructor.depth_reading = saved


DEPTH_ONLY = ("far 100 m", "far 16UC1", "sky sphere", "ray depth", "depth mm")
CHANGES = {"as written": (lambda v: v, unlevelled), "y up": (turned(-90.0), unlevelled),
           "20 deg": (turned(20.0), unlevelled), "2 deg": (turned(2.0), unlevelled), "slam": (slam_frame, unlevelled),
           "far 100 m": (far_plane(100.0, "32FC1"), unclipped), "far 16UC1": (far_plane(65.535, "16UC1"), unclipped),
           "sky sphere": (far_plane(100.0, "32FC1", sphere=True), unclipped), "ray depth": (ray_depth, as_written),
           "depth mm": (millimetres, as_written)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bags", nargs="*", default=BAGS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "foreign_bags.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = reconstructor.Reconstructor.from_checkpoint(device="cpu")

    def novel_view(views, depth: bool) -> float:
        rec.forget()
        return evaluate_views(rec, views, "rig", depth=depth)["groups"]["novel_view"]["model"]["psnr"]

    lines = [f"# torch {torch.__version__}, {platform.machine()}, {args.threads} threads; the shipped checkpoint",
             "# rig protocol, novel_view PSNR (dB); `before`: world z taken as up, every depth value a measurement "
             "in metres along the optical axis",
             f"{'bag':28s} {'bag as':>10s} {'inputs':>6s} | {'before':>7s} {'now':>6s}"]
    print("\n".join(lines), flush=True)
    for bag in args.bags:
        views = read_bag(bag)
        for name, (change, without) in CHANGES.items():
            v = change(views)
            if v is None:
                continue
            for depth in (True, False):
                if (v.depths is None and depth) or (name in DEPTH_ONLY and not depth):
                    continue
                with without():
                    before = novel_view(v, depth)
                now = novel_view(v, depth)
                inputs = "RGB-D" if depth else "RGB"
                line = f"{Path(bag).name:28s} {name:>10s} {inputs:>6s} | {before:7.2f} {now:6.2f}"
                print(line, flush=True)
                lines.append(line)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
