"""Latency of the reconstruct node over real rclpy (FastDDS, loopback, one process): message in -> Gaussians
updated, and the render_view round trip.

    source install/setup.bash && python benchmarks/bench_node.py [--device cpu] [--frames 8] [--out FILE]

A generated scene (4 cameras) is replayed frame by frame. For each new frame: the time from publishing its
last image to receiving the ~/gaussians cloud of the window ending at that frame (includes the wait for the
reconstruction timer, up to 1/rate), and the node's own split from ~/status (model time; arrival -> publish).
Then render_view is called repeatedly at two sizes. Uses the shipped checkpoint, or a randomly initialised
model of the same preset when it is absent (same cost). Results go to benchmarks/results/node_<device>.txt.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lrm4d_ros.checkpoint import load_config, save_model, shipped_checkpoint_path
from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.model import LRM4D, LRM4DConfig
from lrm4d_ros.ros.conversions import matrix_to_pose, ns_to_stamp, stamp_to_ns
from lrm4d_ros.ros.inprocess import InProcessSession, wait_for
from lrm4d_ros.ros.interfaces import RenderView

CAMS = 4
RATE_HZ = 20.0


def checkpoint(tmp: Path) -> tuple[str, str]:
    path = shipped_checkpoint_path()
    if path.is_file():
        cfg, _ = load_config(path)
        return str(path), f"shipped checkpoint {path.name} ({cfg.n_layer}x{cfg.n_embd}, input {cfg.image_size}px)"
    torch.manual_seed(0)
    cfg = LRM4DConfig.preset("small")
    p = save_model(tmp / "bench_small_random.safetensors", LRM4D(cfg))
    return str(p), f"random-init 'small' preset ({cfg.n_layer}x{cfg.n_embd}, input {cfg.image_size}px; shipped absent)"


def stats(xs) -> str:
    a = np.asarray(xs) * 1e3
    return f"median {np.median(a):7.1f} ms  p90 {np.percentile(a, 90):7.1f} ms  (n={len(a)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", type=int, default=8, help="timed frames (after 3 warm-up frames)")
    ap.add_argument("--size", type=int, default=128, help="input image size (square)")
    ap.add_argument("--max-views", type=int, default=12)
    ap.add_argument("--renders", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    out_path = args.out or Path(__file__).parent / "results" / f"node_{args.device.split(':')[0]}.txt"
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    ckpt, ckpt_desc = checkpoint(tmp)

    warm = 3
    frames = warm + args.frames
    scene = generate(7, SceneConfig(frames=frames, cameras=CAMS, height=args.size, width=args.size))
    params = {"camera_names": list(scene.camera_names), "checkpoint": ckpt, "device": args.device,
              "reconstruction_rate_hz": RATE_HZ, "min_views": CAMS, "max_input_views": args.max_views,
              "window_seconds": 60.0, "input_queue_depth": 50, "render_service": "/render_view",
              "virtual_camera_names": []}
    session = InProcessSession(int(os.environ.get("BENCH_DOMAIN_ID", "79")), scene, params)
    lat, model_t, node_lat, views_used = [], [], [], []
    try:
        session.publish_camera_infos()
        for f in range(frames):
            idx = range(f * CAMS, (f + 1) * CAMS)
            newest = int(scene.stamps_ns[list(idx)].max())
            n_clouds = len(session.clouds)
            for i in idx:
                session.publisher.publish(i)
            t_sent = time.monotonic()
            st = session.wait_status(lambda s: stamp_to_ns(s.window_end) == newest, 120.0, f"frame {f}")
            # 1-based index of the cloud of this window (0 would read as "not yet")
            k = wait_for(lambda: next((j + 1 for j in range(n_clouds, len(session.clouds))
                                       if stamp_to_ns(session.clouds[j].header.stamp) == newest), None),
                         30.0, f"cloud of frame {f}") - 1
            if f >= warm:
                lat.append(session.cloud_times[k] - t_sent)
                model_t.append(st.reconstruction_time)
                node_lat.append(st.latency)
                views_used.append(st.views_used)
        n_gauss = st.num_gaussians_published
        renders = {}
        i = (frames - 1) * CAMS + 1
        for size in (128, 256):
            K = scene.Ks[i].numpy() * size / args.size
            req = RenderView.Request()
            req.camera_pose = matrix_to_pose(scene.camtoworlds[i].numpy())
            req.fx, req.fy = K[0, 0], K[1, 1]
            req.cx = req.cy = (size - 1) / 2
            req.width = req.height = size
            req.stamp = ns_to_stamp(int(scene.stamps_ns[i]))
            req.return_color = req.return_depth = True
            times = []
            for _ in range(args.renders + 1):
                t0 = time.monotonic()
                resp = session.call(req, timeout=120.0)
                times.append(time.monotonic() - t0)
                assert resp.success, resp.message
            renders[size] = times[1:]  # first call warms the rasterizer
    finally:
        session.close()

    lines = [
        f"# bench_node.py — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPU threads visible, torch "
        f"{torch.__version__} ({torch.get_num_threads()} intra-op threads), device {args.device}",
        "# CPU shared with other jobs while measured: figures are noisy, compare only within one run.",
        f"# model: {ckpt_desc}",
        f"# scene: {CAMS} cameras, {args.size}x{args.size} images, window of up to {args.max_views} views "
        f"(used: {min(views_used)}-{max(views_used)}), {n_gauss} Gaussians published; timer {RATE_HZ:g} Hz",
        f"message in -> Gaussians received (last image of a frame published -> its cloud): {stats(lat)}",
        f"  node: model reconstruct()                                                   : {stats(model_t)}",
        f"  node: newest image arrival -> cloud published (~/status latency)            : {stats(node_lat)}",
    ]
    for size, times in renders.items():
        lines.append(f"render_view round trip {size}x{size} colour+depth: {stats(times)}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
