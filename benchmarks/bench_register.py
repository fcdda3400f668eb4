"""Depth registration (lrm4d_ros.io.register: a depth camera's image onto its colour camera, as depth_image_proc's
register node does) at a robot's sensor sizes: the compiled kernel against numpy's reference, side by side in one
run, with their outputs compared (they are equal bit for bit).

    python benchmarks/bench_register.py [--repeats 9] [--out benchmarks/results/register_cpu.txt]

The depth is a floor plane with a box on it, seen by a depth camera 2.5 cm beside the colour camera (a RealSense
D435's depth-to-colour offset), with 1 % of its pixels missing.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np

from lrm4d_ros.io.register import register_depth, register_depth_reference

# (depth W, H, horizontal FOV °) -> (colour W, H, FOV °): RealSense D435 default streams, an aligned-size pair, 720p
SIZES = [((848, 480, 87.0), (640, 480, 69.0)), ((640, 480, 69.0), (640, 480, 69.0)),
         ((1280, 720, 87.0), (1280, 720, 69.0))]


def _K(w: int, h: int, fov_deg: float) -> np.ndarray:
    f = 0.5 * w / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def scene_depth(w: int, h: int, K: np.ndarray, seed: int = 0) -> np.ndarray:
    """z-depth (h,w) in metres: a camera 1 m above a floor, pitched 30° down, a 0.4 m box 1.5 m ahead."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # optical, z = 1
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    down = rays[..., 1] * c + rays[..., 2] * s  # metres dropped per metre of z-depth
    z = np.where(down > 1e-3, 1.0 / np.maximum(down, 1e-3), 0.0)  # the floor
    fwd = rays[..., 2] * c - rays[..., 1] * s
    box = (np.abs(rays[..., 0] / np.maximum(fwd, 1e-6)) < 0.2) & (down / np.maximum(fwd, 1e-6) > (1 - 0.4) / 1.5)
    z = np.where(box & (z > 1.5 / np.maximum(fwd, 1e-6)), 1.5 / np.maximum(fwd, 1e-6), z)
    z[np.random.default_rng(seed).random((h, w)) < 0.01] = 0.0
    return z.astype(np.float32)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=9, help="calls per size and method; the best is reported")
    p.add_argument("--out", default=None, help="also write the table here")
    args = p.parse_args()
    colour_from_depth = np.eye(4)
    colour_from_depth[0, 3] = -0.025
    lines = [f"# bench_register: depth image -> colour camera, ms, best of {args.repeats} calls",
             f"# {platform.machine()}, {os.cpu_count()} CPUs, load average before {os.getloadavg()[0]:.2f}",
             f"{'depth':>10} {'colour':>10} | {'compiled':>9} {'numpy':>9} {'speed-up':>9} | {'equal':>5} "
             f"{'filled':>7}"]
    print("\n".join(lines), flush=True)
    for (dw, dh, dfov), (cw, ch, cfov) in SIZES:
        Kd, Kc = _K(dw, dh, dfov), _K(cw, ch, cfov)
        depth = scene_depth(dw, dh, Kd)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a fallback to numpy here would time numpy twice
            fast = register_depth(depth, Kd, colour_from_depth, Kc, (cw, ch))  # compiles (or loads) first
        ref = register_depth_reference(depth, Kd, colour_from_depth, Kc, (cw, ch))
        t_fast = best_of(lambda: register_depth(depth, Kd, colour_from_depth, Kc, (cw, ch)), args.repeats)
        t_ref = best_of(lambda: register_depth_reference(depth, Kd, colour_from_depth, Kc, (cw, ch)), args.repeats)
        line = (f"{f'{dw}x{dh}':>10} {f'{cw}x{ch}':>10} | {t_fast * 1e3:>9.2f} {t_ref * 1e3:>9.2f} "
                f"{t_ref / t_fast:>8.1f}x | {str(bool(np.array_equal(fast, ref))):>5} {float((fast > 0).mean()):>7.3f}")
        lines.append(line)
        print(line, flush=True)
    lines.append(f"# load average after {os.getloadavg()[0]:.2f}")
    print(lines[-1])
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
