"""The reconstruct node as its own process with the shipped model, fed by an rclpy client process in real time
(FastDDS, loopback): latency view-in -> cloud, model time, /render_view round trips, and a soak.

    source install/setup.bash && python benchmarks/bench_node.py [--device cpu] [--seconds 30]
    source install/setup.bash && nice -n 10 python benchmarks/bench_node.py --soak-minutes 30

A generated synchronized scene (4 cameras, 128x128) is streamed at 10 Hz per camera, stamped with the wall
clock (the node's ROS time). Latency: from publishing the last image of a frame to receiving the ~/gaussians
cloud of the window ending at that frame (frames that got a cloud of their own), streaming and with the node
idle (one frame, then a pause); beside it the node's model time (~/status reconstruction_time). render_view:
round trips with colour+depth at 128x128 and 256x256 while no reconstruction runs. The soak streams for the
given minutes and samples the node's RSS. Results: benchmarks/results/node_<device>.txt, node_soak_<device>.txt.
The idle figures are given twice: to the cloud's arrival at the client and to its publication by the node (~/status
latency); the difference is the cloud's transport (Fast DDS's default transports take ~50 ms for 3 MB on this
machine; `FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA` for node and client, ~13 ms).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lrm4d_ros.checkpoint import load_config, shipped_checkpoint_path
from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.io.messages import GAUSSIAN_DTYPE, pose_msg, time_ns
from lrm4d_ros.ros.conversions import RCLPY
from lrm4d_ros.ros.interfaces import RenderView
from lrm4d_ros.ros.live import StreamClient, rss_mib, start_node, stop_node
from lrm4d_ros.selection import DEFAULT_POLICY, POLICIES

CAMS, RATE_HZ, SIZE = 4, 10.0, 128


def reasons(st) -> dict:
    return dict(zip(st.rejection_reasons, st.rejection_counts))


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q)) if len(xs) else float("nan")


def row(name: str, xs) -> str:
    return f"{name:<58} p50 {pct(xs, 50):7.1f} ms  p95 {pct(xs, 95):7.1f} ms  (n={len(xs)})"


class Stream:
    """Publishes the scene's frames in a loop at RATE_HZ, remembering when each stamp's last image went out."""

    def __init__(self, client: StreamClient, scene):
        self.client, self.scene = client, scene
        self.frames = len(scene) // CAMS
        self.sent: dict[int, float] = {}  # stamp -> monotonic time its frame's last image was published
        self.k = 0

    def frame(self) -> int:
        f = self.k % self.frames
        stamp = self.client.publish_frame(range(f * CAMS, (f + 1) * CAMS))
        self.sent[stamp] = time.monotonic()
        self.k += 1
        return stamp

    def run(self, seconds: float, tick=None) -> None:
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            self.frame()
            if tick is not None:
                tick(now - start)
            time.sleep(max(0.0, start + self.k_since(start) / RATE_HZ - time.monotonic()))

    def k_since(self, start: float) -> int:
        return int((time.monotonic() - start) * RATE_HZ) + 1


def cloud_latencies(client: StreamClient, sent: dict[int, float], since: float) -> list[float]:
    return [t - sent[s] for t, s, _ in client.clouds if s in sent and sent[s] >= since]


def model_times(client: StreamClient, since_count: int) -> list[float]:
    seen = {}
    for st in client.statuses:
        if st.reconstructions > since_count:
            seen[st.reconstructions] = st.reconstruction_time
    return list(seen.values())


def render_request(scene, i: int, size: int) -> RenderView.Request:
    K = scene.Ks[i].numpy() * size / SIZE
    req = RenderView.Request()
    req.camera_pose = pose_msg(scene.camtoworlds[i].numpy(), 0, "world", RCLPY).pose
    req.fx, req.fy, req.cx, req.cy = K[0, 0], K[1, 1], (size - 1) / 2, (size - 1) / 2
    req.width = req.height = size
    req.return_color = req.return_depth = True
    return req


def header(args, ckpt_desc: str) -> list[str]:
    return [f"# bench_node.py — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPU threads visible, torch "
            f"{torch.__version__}, device {args.device}; node and client are separate processes",
            "# CPU shared with other jobs while measured: figures are noisy, compare only within one run.",
            f"# model: {ckpt_desc}; {CAMS} synchronized cameras x {RATE_HZ:g} Hz, {SIZE}x{SIZE}, "
            f"max_input_views {args.max_views}, selection_policy {args.policy}, reconstruction_rate_hz {args.rate}",
            f"# FASTDDS_BUILTIN_TRANSPORTS={os.environ.get('FASTDDS_BUILTIN_TRANSPORTS', '(unset: Fast DDS default)')} "
            "for node and client"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=30.0, help="streaming time for the latency figures")
    ap.add_argument("--max-views", type=int, default=12)
    ap.add_argument("--policy", default=DEFAULT_POLICY, choices=POLICIES, help="the node's selection_policy")
    ap.add_argument("--rate", type=float, default=10.0, help="the node's reconstruction_rate_hz")
    ap.add_argument("--renders", type=int, default=20)
    ap.add_argument("--soak-minutes", type=float, default=0.0, help="only the soak, this long")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = args.device.split(":")[0]
    results = Path(__file__).parent / "results"
    out_path = args.out or results / (f"node_soak_{dev}.txt" if args.soak_minutes else f"node_{dev}.txt")
    ckpt = shipped_checkpoint_path()
    cfg, _ = load_config(ckpt)
    ckpt_desc = f"shipped {ckpt.name} ({cfg.n_layer}x{cfg.n_embd}, input {cfg.image_size}px)"
    scene = generate(7, SceneConfig(frames=40, cameras=CAMS, height=SIZE, width=SIZE, synchronized=True,
                                    fps_range=(RATE_HZ, RATE_HZ)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": args.device,
              "reconstruction_rate_hz": args.rate, "min_views": CAMS, "max_input_views": args.max_views,
              "selection_policy": args.policy,
              "render_service": "/render_view", "virtual_camera_names": [],
              # the whole cloud, as the figures before 2026-12-06 sent it: from this scene's colour alone the model
              # guesses every depth, which ~/gaussians leaves out by default (it would send an empty cloud)
              "gaussians_guessed": True}
    domain = int(os.environ.get("BENCH_DOMAIN_ID", "79"))
    work = Path(tempfile.mkdtemp(prefix="bench_node_"))
    proc = start_node(params, domain, work)
    client = StreamClient(domain, scene)
    lines = header(args, ckpt_desc)
    try:
        client.wait_ready()
        stream = Stream(client, scene)
        for _ in range(5):  # camera_info first, then warm up the model
            stream.frame()
            time.sleep(1.0 / RATE_HZ)
        # a frame every 0.5 s until two reconstructions ran: frames that all arrive before the (slow) first one
        # starts give it nothing new to do afterwards
        deadline = time.monotonic() + 120.0
        while (st := client.status()) is None or st.reconstructions < 2:
            assert time.monotonic() < deadline, f"no second reconstruction in 120 s; last status: {st}"
            stream.frame()
            time.sleep(0.5)
        time.sleep(2.0)
        if args.soak_minutes:
            lines += soak(client, stream, proc.pid, args.soak_minutes)
        else:
            lines += latency_and_renders(client, stream, scene, args)
        code = proc.poll()
        lines.append(f"node process still running at the end: {code is None}")
    finally:
        client.close()
        code = stop_node(proc)
    lines.append(f"node exit code on SIGINT: {code}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out_path.write_text(text)
    print(f"wrote {out_path} (node log: {work / 'node.log'})")
    return 0


def latency_and_renders(client: StreamClient, stream: Stream, scene, args) -> list[str]:
    # idle: one frame at a time, the node has nothing else to do when it arrives
    idle, idle_model, idle_node, idle_bytes = [], [], [], []
    for _ in range(8):
        n_rec = client.status().reconstructions
        stamp = stream.frame()
        st = client.wait_status(lambda s: time_ns(s.window_end) == stamp and s.reconstructions > n_rec, 60.0,
                                "the frame's reconstruction")
        idle.append(wait_cloud(client, stamp) - stream.sent[stamp])
        idle_model.append(st.reconstruction_time)
        idle_node.append(st.latency)
        idle_bytes.append(next(n for _, s, n in reversed(client.clouds) if s == stamp) * GAUSSIAN_DTYPE.itemsize)
        time.sleep(1.0)
    # streaming at 10 Hz per camera
    n_rec, since = client.status().reconstructions, time.monotonic()
    stream.run(args.seconds)
    time.sleep(3.0)
    streaming = cloud_latencies(client, stream.sent, since)
    model = model_times(client, n_rec)
    st = client.status()
    recs = st.reconstructions - n_rec
    node_lat = [s.latency for s in client.statuses if s.reconstructions > n_rec]
    kept = 100.0 * st.views_kept / max(st.views_received, 1)
    out = [
        row("idle: last image of a frame published -> its cloud received", idle),
        row("idle: model time (reconstruction_time)", idle_model),
        f"idle: overhead (latency - model time) p50 {pct(np.subtract(idle, idle_model), 50):7.1f} ms",
        row("idle: node last-image arrival -> cloud published", idle_node),
        f"idle: node overhead (node latency - model time) p50 {pct(np.subtract(idle_node, idle_model), 50):7.1f} ms; "
        f"the rest is the cloud's way to the client ({np.median(idle_bytes) / 1e6:.1f} MB through Fast DDS)",
        row(f"streaming {args.seconds:g} s: last image published -> cloud of that window", streaming),
        row("streaming: model time (reconstruction_time)", model),
        row("streaming: node newest-image arrival -> cloud published", node_lat),
        f"streaming: {recs} reconstructions ({recs / args.seconds:.2f}/s), {len(streaming)} of "
        f"{sum(1 for v in stream.sent.values() if v >= since)} frames got a cloud of their own; views kept "
        f"{st.views_kept} of {st.views_received} received ({kept:.2f} %), dropped {st.views_dropped}, "
        f"rejected {st.views_rejected}; refusals by reason {reasons(st)}",
    ]
    i = (stream.frames - 1) * CAMS + 1
    for size in (128, 256):
        req = render_request(scene, i, size)
        times = []
        for _ in range(args.renders + 1):
            t0 = time.monotonic()
            resp = client.call(req, timeout=120.0)
            times.append(time.monotonic() - t0)
            assert resp.success, resp.message
        out.append(row(f"render_view round trip {size}x{size} colour+depth (node idle)", times[1:]))
    # the same render in this process, no ROS: what the service adds is the difference
    from lrm4d_ros.reconstructor import Reconstructor

    # the node is sent colour only (no depth topics): so is this reconstruction
    rec = Reconstructor.from_checkpoint(shipped_checkpoint_path(), args.device).reconstruct(
        replace(scene.select(slice(len(scene) - args.max_views, len(scene))), depths=None))
    for size in (128, 256):
        req = render_request(scene, i, size)
        K = torch.tensor([[req.fx, 0, req.cx], [0, req.fy, req.cy], [0, 0, 1.0]], dtype=torch.float64)
        times = []
        for _ in range(args.renders + 1):
            t0 = time.monotonic()
            rec.render(scene.camtoworlds[i:i + 1], K[None], size, size, torch.tensor([rec.window.end_ns]))
            times.append(time.monotonic() - t0)
        out.append(row(f"Reconstruction.render {size}x{size} in-process (no ROS), same model", times[1:]))
    return out


def wait_cloud(client: StreamClient, stamp: int, timeout: float = 60.0) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for t, s, _ in client.clouds:
            if s == stamp:
                return t
        time.sleep(0.005)
    raise AssertionError(f"no cloud for stamp {stamp}")


def soak(client: StreamClient, stream: Stream, pid: int, minutes: float) -> list[str]:
    samples = [(0.0, rss_mib(pid))]
    st0 = client.status()
    since, n_rec = time.monotonic(), st0.reconstructions
    next_sample = [30.0]

    def tick(elapsed: float) -> None:
        if elapsed >= next_sample[0]:
            samples.append((elapsed, rss_mib(pid)))
            next_sample[0] += 30.0

    stream.run(minutes * 60.0, tick)
    time.sleep(3.0)
    samples.append((minutes * 60.0, rss_mib(pid)))
    st = client.status()
    lat = cloud_latencies(client, stream.sent, since)
    model = model_times(client, n_rec)
    rss_1 = next(r for t, r in samples if t >= 60.0) if minutes >= 1 else samples[0][1]
    rss_end = samples[-1][1]
    # RSS swings by tens of MiB within a minute (each reconstruction's tensors): compare medians of periods
    span = minutes * 60.0
    early = [r for t, r in samples if 60.0 <= t < max(60.0 + 1, span / 3)] or [rss_1]
    late = [r for t, r in samples if t >= span * 2 / 3] or [rss_end]
    m_early, m_late = float(np.median(early)), float(np.median(late))
    received, kept = st.views_received - st0.views_received, st.views_kept - st0.views_kept
    out = [f"soak: {minutes:g} min at {CAMS} cameras x {RATE_HZ:g} Hz ({stream.k} frames published)",
           f"RSS of the node: start {samples[0][1]:.1f} MiB, at 1 min {rss_1:.1f} MiB, end {rss_end:.1f} MiB "
           f"(end vs 1 min {100.0 * (rss_end - rss_1) / rss_1:+.2f} %, max {max(r for _, r in samples):.1f} MiB)",
           f"RSS median from 1 min to a third of the soak {m_early:.1f} MiB, over the last third {m_late:.1f} MiB "
           f"({100.0 * (m_late - m_early) / m_early:+.2f} %)",
           f"views kept {kept} of {received} received ({100.0 * kept / max(received, 1):.2f} %), dropped "
           f"{st.views_dropped - st0.views_dropped}, rejected {st.views_rejected - st0.views_rejected}; "
           f"{st.reconstructions - n_rec} reconstructions; refusals by reason since start {reasons(st)}",
           row("soak: last image published -> cloud of that window", lat),
           row("soak: model time (reconstruction_time)", model),
           "RSS samples (s: MiB): " + ", ".join(f"{t:.0f}: {r:.1f}" for t, r in samples)]
    return out


if __name__ == "__main__":
    sys.exit(main())
