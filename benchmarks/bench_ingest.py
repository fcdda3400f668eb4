"""The node's ingest thread at a robot's image sizes: what one message costs from its decode to the SpaceTimeWindow
(io/ingest.py's Ingest, ROS-free: the same code the node runs on its ingest thread, without DDS), and so how many
images a second one thread takes in. The model's own time is bench_node.py's and bench_model.py's.

Rows: colour as rgb8 / bgr8 / JPEG (compressed_image_transport), with lens distortion taken out (rectify: a
plumb_bob camera_info), and 32FC1 depth registered to the colour image or in the depth camera's own frame, 2.5 cm
beside it (then registered here, as depth_image_proc does; bench_register.py's floor and box). Every message is
built before the clock starts; each image comes with its pose (pose topic), each depth with the image of its stamp.

    python benchmarks/bench_ingest.py [--sizes 480x640 720x1280] [--messages 40] [--threads 1]

Prints a table and writes benchmarks/results/ingest_cpu.txt.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from lrm4d_ros.geometry import rigid_matrix
from lrm4d_ros.io.compressed import compressed_image_msg
from lrm4d_ros.io.ingest import CameraTopics, Ingest
from lrm4d_ros.io.messages import camera_info_msg, depth_msg, image_msg, pose_msg
from lrm4d_ros.io.tf_tree import TransformTree
from lrm4d_ros.window import SpaceTimeWindow

from bench_register import scene_depth  # a floor and a box seen from 1 m up, 1 % of the pixels missing

S = 1_000_000_000


def transforms() -> TransformTree:
    """The depth camera 2.5 cm beside the colour camera (a RealSense D435's offset)."""
    tree = TransformTree()
    tree.add("cam0_colour", "cam0_depth", 0, rigid_matrix(np.array([0.025, 0.0, 0.0]), np.array([1.0, 0, 0, 0])),
             static=True)
    return tree


def row(kind: str, H: int, W: int, n: int) -> tuple[float, int]:
    """(median ms per colour or depth message into the window, views buffered with it: all n, or it says so)."""
    refused = []
    window = SpaceTimeWindow(["cam0"], window_s=1e3, buffer_size=n, max_lead_s=None, max_age_s=None,
                             depth_buffer=n)
    cam = CameraTopics("cam0", "image_raw", "camera_info", "pose", "depth", depth_info_topic="depth/camera_info")
    ingest = Ingest(window, [cam], tf=transforms(), refuse=lambda *a, **k: refused.append(a))
    K = np.array([[0.8 * W, 0, (W - 1) / 2], [0, 0.8 * W, (H - 1) / 2], [0, 0, 1.0]])
    info = camera_info_msg(K, W, H, S, "cam0_colour")
    if kind == "rgb8 rectified":
        info.distortion_model, info.d = "plumb_bob", np.array([-0.1, 0.02, 0.0, 0.0, 0.0])
    ingest.handle(0, "info", info, time.monotonic())
    ingest.handle(0, "depth_info", camera_info_msg(K, W, H, S, "cam0_depth"), time.monotonic())
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = scene_depth(W, H, K)
    stamps = [S + k * 33_000_000 for k in range(n)]
    msgs = []
    for s in stamps:
        pose = pose_msg(np.eye(4), s)
        if kind.startswith("depth"):
            frame = "cam0_depth" if kind == "depth, own frame" else "cam0_colour"
            ingest.handle(0, "pose", pose, time.monotonic())
            ingest.handle(0, "image", image_msg(rgb, s, "cam0_colour"), time.monotonic())
            msgs.append([("depth", depth_msg(depth, s, frame))])
        elif kind == "jpeg":
            msgs.append([("pose", pose), ("image", compressed_image_msg(rgb, s, "cam0_colour", codec="jpeg"))])
        else:
            enc = "bgr8" if kind == "bgr8" else "rgb8"
            msgs.append([("pose", pose), ("image", image_msg(rgb, s, "cam0_colour", encoding=enc))])
    times = []
    for batch in msgs:
        t = time.perf_counter()
        for k, m in batch:
            ingest.handle(0, k, m, time.monotonic())
        times.append(time.perf_counter() - t)
    if refused:
        raise RuntimeError(f"{kind}: refused {refused[:2]}")
    st = window.stats.per_camera["cam0"]
    kept = st.with_depth if kind.startswith("depth") else st.kept  # every one, or the row says so
    return 1e3 * statistics.median(times[2:]), kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["480x640", "720x1280"])
    ap.add_argument("--messages", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ingest_cpu.txt")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    kinds = ["rgb8", "bgr8", "jpeg", "rgb8 rectified", "depth, registered", "depth, own frame"]
    lines = [f"# bench_ingest: {platform.machine()}, torch {torch.__version__}, {args.threads} torch thread(s); "
             f"median of {args.messages - 2} messages after 2",
             f"{'size':>9s}  {'message':<18s} {'ms':>7s} {'per s':>7s} {'in':>5s}"]
    print("\n".join(lines), flush=True)
    for size in args.sizes:
        H, W = (int(x) for x in size.split("x"))
        for kind in kinds:
            ms, kept = row(kind, H, W, args.messages)
            line = f"{size:>9s}  {kind:<18s} {ms:7.2f} {1e3 / ms:7.0f} {kept:5d}"
            print(line, flush=True)
            lines.append(line)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
