"""The viewer's time slider on CPU: from moving the slider to the new splats leaving the server, for a window of
130k-200k Gaussians. Frame rate in the browser is the browser's business and is not measured here.

    python benchmarks/bench_viewer.py [--moves 20]

A websocket client (no browser) connects to the viewer as the web page does; the slider is moved on the server
(the same callback a browser's slider update runs) to `--moves` stamps across the window, and each move is timed
until that client has received the message holding the new splats. Columns: Gaussians in the window, Gaussians
alive (sent) at the stamps, slice (time-conditioning and culling, to numpy), hand-over (packing into viser's
buffer), and the end-to-end time, median and 90th percentile over the moves. Windows:
  demo    — the shipped model's reconstruction of `lrm4d demo`'s scene (12 views at 128²: 196 608 Gaussians,
            most of them alive only near their own view's time);
  all     — 131 072 Gaussians all alive through the window (moving at constant speed): every move sends them all.
Also times opening a 3DGS PLY of a million Gaussians with SH degree 3, as another tool writes it (`lrm4d view FILE`).
Writes benchmarks/results/viewer_cpu.txt.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch

from lrm4d_ros.viewer.server import Viewer
from lrm4d_ros.viewer.sources import ViewerWindow, WindowRef

RESULTS = Path(__file__).resolve().parent / "results"
N_PLY = 1_000_000  # a mid-sized scene of a 3DGS training tool
N_ALL = 131_072


def demo_window() -> ViewerWindow:
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import generate
    from lrm4d_ros.data.protocols import split_protocol
    from lrm4d_ros.demo import DEMO_SEED, demo_scene_config
    from lrm4d_ros.reconstructor import Reconstructor

    views = with_depth(generate(DEMO_SEED, demo_scene_config("tabletop", "poles", 12, 6, 128)), "sensor", DEMO_SEED)
    inputs, _ = split_protocol(views, "rig")
    rec = Reconstructor.from_checkpoint(device="cpu").reconstruct(inputs)
    return ViewerWindow.from_reconstruction(rec, inputs)


def all_alive_window(n: int = N_ALL, seed: int = 0) -> ViewerWindow:
    """n Gaussians in a 1 m cube over a 1 s window, each moving at its own constant velocity, all alive."""
    from lrm4d_ros.gaussians import Gaussians4D

    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 3, 3, generator=g) * 0.01
    cond = Gaussians4D(means=torch.rand(n, 3, generator=g), times=torch.full((n,), 0.5),
                       velocities=torch.randn(n, 3, generator=g) * 0.2, covars=a @ a.transpose(1, 2) + 1e-5 * torch.eye(3),
                       scale_t=torch.full((n,), 10.0), opacities=torch.rand(n, generator=g),
                       colors=torch.rand(n, 3, generator=g))
    start = 1_700_000_000_000_000_000
    return ViewerWindow(cond, start, start + 10**9, 0.0, 1e9)


class Listener:
    """A websocket client of the viewer, as its web page connects: records (arrival time, bytes) per frame."""

    def __init__(self, url: str):
        import viser
        from websockets.sync.client import connect

        self.ws = connect(url.replace("http", "ws"), subprotocols=[f"viser-v{viser.__version__}"],
                          max_size=None)
        self.frames: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._recv, daemon=True).start()

    def _recv(self) -> None:
        try:
            for frame in self.ws:
                with self._lock:
                    self.frames.append((time.perf_counter(), len(frame)))
        except Exception:  # closed
            pass

    def first_after(self, t0: float, min_bytes: int, timeout: float = 60.0) -> float:
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self._lock:
                hit = next((t for t, size in self.frames if t > t0 and size >= min_bytes), None)
            if hit is not None:
                return hit
            time.sleep(0.0005)
        raise TimeoutError(f"no frame of {min_bytes} bytes after the slider moved")


def bench(name: str, win: ViewerWindow, moves: int) -> dict:
    print(f"{name}: {len(win.gaussians)} Gaussians, {moves} slider moves ...", flush=True)
    viewer = Viewer(port=0)
    try:
        viewer.show([WindowRef(name, win.start_ns, win.end_ns, lambda: win)], start_s=0.0)
        listener = Listener(viewer.url)
        while not viewer.draws:
            time.sleep(0.01)
        # the page's first load (the initial splats) must be in before the first move is timed
        listener.first_after(0.0, 32 * viewer.draws[-1].gaussians)
        span_s = (win.end_ns - win.start_ns) * 1e-9
        ends, alive, slices, sends = [], [], [], []
        # distinct stamps, jumping back and forth across the window: 1, moves, 2, moves - 1, ... (of moves + 1)
        order = [k // 2 + 1 if k % 2 == 0 else moves - k // 2 for k in range(moves)]
        for k in order:
            t_s = span_s * k / (moves + 1)
            stamp = win.start_ns + int(round(t_s * 1e9))
            n_draws = len(viewer.draws)
            t0 = time.perf_counter()
            viewer._time.value = t_s
            while len(viewer.draws) == n_draws or viewer.draws[-1].stamp_ns != stamp:
                if time.perf_counter() > t0 + 60:
                    raise TimeoutError(f"the viewer did not draw {t_s:.3f} s")
                time.sleep(0.0005)
            d = viewer.draws[-1]
            # 32 bytes per Gaussian in viser's splat buffer
            ends.append(listener.first_after(t0, 32 * d.gaussians) - t0)
            alive.append(d.gaussians)
            slices.append(d.slice_s)
            sends.append(d.send_s)
        listener.ws.close()
    finally:
        viewer.close()
    q90 = lambda x: float(np.quantile(x, 0.9))  # noqa: E731
    return {"window": name, "gaussians": len(win.gaussians), "alive": int(statistics.median(alive)),
            "slice": statistics.median(slices), "handover": statistics.median(sends),
            "end_to_end": statistics.median(ends), "end_to_end_p90": q90(ends)}


def ply_load(n: int = N_PLY, repeats: int = 3) -> tuple[float, float]:
    """Median seconds `lrm4d view FILE` takes to read a graphdeco 3DGS PLY of n Gaussians with SH degree 3 (62
    float32 columns, as another tool writes it), and the file's MiB."""
    import tempfile

    from lrm4d_ros.ply import write_ply_fields
    from lrm4d_ros.viewer.sources import load_ply_window

    rng = np.random.default_rng(0)
    names = (["x", "y", "z", "nx", "ny", "nz"] + [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(45)]
             + ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)])
    fields = {k: rng.standard_normal(n).astype(np.float32) for k in names}
    for i in range(3):
        fields[f"scale_{i}"] -= 4.0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "point_cloud.ply"
        write_ply_fields(path, fields)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            load_ply_window(path)
            times.append(time.perf_counter() - t)
        return statistics.median(times), path.stat().st_size / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20)
    args = p.parse_args()
    torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    print("reconstructing the demo scene with the shipped model ...", flush=True)
    rows = [bench("demo", demo_window(), args.moves), bench("all", all_alive_window(), args.moves)]
    lines = [f"# bench_viewer: slider move -> splats received by a websocket client, median of {args.moves} moves",
             f"# torch {torch.__version__}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
             f"load average before {load0:.2f}",
             f"{'window':<7} {'gaussians':>9} {'alive':>7} {'slice s':>8} {'handover s':>10} {'end-to-end s':>12} "
             f"{'p90 s':>7}"]
    for r in rows:
        lines.append(f"{r['window']:<7} {r['gaussians']:>9} {r['alive']:>7} {r['slice']:>8.3f} {r['handover']:>10.3f} "
                     f"{r['end_to_end']:>12.3f} {r['end_to_end_p90']:>7.3f}")
    load_s, mib = ply_load()
    lines.append(f"# a 3DGS PLY of {N_PLY} Gaussians with SH degree 3 ({mib:.0f} MiB) opened by `lrm4d view`: "
                 f"{load_s:.2f} s (median of 3)")
    lines.append(f"# load average after {os.getloadavg()[0]:.2f} (CPU shared with other jobs: timings are noisy)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "viewer_cpu.txt").write_text(text)


if __name__ == "__main__":
    main()
