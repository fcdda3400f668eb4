"""`lrm4d render-view`: ask a running reconstruct node for a view (an rclpy client of render_view, no ros2cli)
and write it as PNG files.

    lrm4d render-view --position 0 -3 1.5 --look-at 0 0 0 --width 160 --height 120 --fov 50 --out view

writes view_color.png (rgb8), view_depth.png (16-bit millimetres, 0 = nothing rendered, as a 16UC1 depth
image) and view_depth.npy (float32 metres). Needs the built interfaces (scripts/build_ros.sh) and the node's
ROS_DOMAIN_ID.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..argtypes import positive_int

DEFAULT_SERVICE = "/render_view"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--position", type=float, nargs=3, required=True, metavar=("X", "Y", "Z"),
                   help="camera centre in the world frame [m]")
    aim = p.add_mutually_exclusive_group(required=True)
    aim.add_argument("--look-at", type=float, nargs=3, metavar=("X", "Y", "Z"), help="point the camera looks at")
    aim.add_argument("--orientation", type=float, nargs=4, metavar=("W", "X", "Y", "Z"),
                     help="optical-frame orientation quaternion (x right, y down, z forward)")
    p.add_argument("--up", type=float, nargs=3, default=(0.0, 0.0, 1.0), metavar=("X", "Y", "Z"),
                   help="world up for --look-at (default: 0 0 1)")
    p.add_argument("--width", type=positive_int, default=160, help="image width in pixels (default: 160)")
    p.add_argument("--height", type=positive_int, default=120, help="image height in pixels (default: 120)")
    p.add_argument("--fov", type=float, default=50.0,
                   help="vertical field of view [deg] (unless --fx given) (default: 50)")
    p.add_argument("--fx", type=float, help="focal length in pixels (fy = fx, principal point at the centre)")
    p.add_argument("--stamp", type=float, default=0.0,
                   help="time to render [s since the epoch]; 0 = the newest stamp of the node's window")
    p.add_argument("--service", default=DEFAULT_SERVICE,
                   help=f"the node's RenderView service (default: {DEFAULT_SERVICE})")
    p.add_argument("--frame-id", default="",
                   help="frame_id for the returned images (default: the node's render_frame_id)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the service and the answer (default: 30)")
    p.add_argument("--out", type=Path, default=Path("view"),
                   help="output prefix: <out>_color.png, <out>_depth.png, <out>_depth.npy (default: view)")


def camera_pose(args) -> np.ndarray:
    """The requested camera-to-world (4,4) float64; ValueError for a pose the arguments do not define."""
    import torch

    from ..cameras import look_at
    from ..geometry import rigid_matrix

    if not args.look_at:
        try:
            return rigid_matrix(args.position, args.orientation)
        except ValueError as e:
            raise ValueError(f"--position / --orientation: {e}") from None
    p, target, up = (np.asarray(v, dtype=np.float64) for v in (args.position, args.look_at, args.up))
    if not (np.isfinite(p).all() and np.isfinite(target).all() and np.isfinite(up).all()):
        raise ValueError("--position, --look-at and --up must be finite")
    forward = target - p
    if np.linalg.norm(forward) <= 1e-9 * max(1.0, float(np.linalg.norm(p))):
        raise ValueError("--look-at must differ from --position")
    if not np.linalg.norm(up) > 0:
        raise ValueError("--up must not be zero")
    T = look_at(torch.tensor(p[None]), torch.tensor(target[None]), tuple(up))[0].numpy()
    # look_at picks a right vector itself where the view runs along --up (straight down under the default up);
    # where that one runs along the view as well, it makes no rotation.
    R = T[:3, :3]
    if not (np.allclose(R.T @ R, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0):
        raise ValueError(f"--look-at lies straight along --up {' '.join(f'{x:g}' for x in up)} from --position: "
                         "give an --up across the view direction")
    return T


def request(args, T: np.ndarray):
    from ..io.messages import pose_msg, time_msg
    from .conversions import RCLPY
    from .interfaces import RenderView

    fx = args.fx or (args.height / 2) / math.tan(math.radians(args.fov) / 2)
    req = RenderView.Request()
    req.camera_pose = pose_msg(T, 0, "world", RCLPY).pose
    req.fx = req.fy = float(fx)
    req.cx, req.cy = (args.width - 1) / 2, (args.height - 1) / 2
    req.width, req.height = args.width, args.height
    req.stamp = time_msg(int(round(args.stamp * 1e9)), RCLPY)
    req.return_color = req.return_depth = True
    req.frame_id = args.frame_id
    return req


def depth_range(depth: np.ndarray) -> str:
    """'depth A-B m' over the rendered pixels (> 0 and finite), or 'no depth' where nothing was rendered."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    return f"depth {float(valid.min()):.2f}-{float(valid.max()):.2f} m" if valid.size else "no depth"


def _error(message) -> int:
    """An argparse-style one-line error (exit code 2)."""
    print(f"lrm4d render-view: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def run(args) -> int:
    import cv2

    from ..io.messages import image_depth, image_rgb, time_ns

    try:  # before anything is sent
        T = camera_pose(args)
        if not 0 <= args.stamp < 2**31:  # builtin_interfaces/Time's sec is an int32: nanoseconds given for seconds?
            raise ValueError(f"--stamp is in seconds since the epoch (e.g. 1707237830.5), got {args.stamp:g}"
                             + (": nanoseconds?" if args.stamp >= 2**31 else ""))
    except ValueError as e:
        return _error(e)
    try:  # interfaces first: where they are not built, their message says how to build them
        from .interfaces import RenderView

        import rclpy
    except ImportError as e:
        return _error(e)
    req = request(args, T)
    rclpy.init(args=[])
    node = rclpy.create_node("lrm4d_render_view_client")
    try:
        client = node.create_client(RenderView, args.service)
        if not client.wait_for_service(timeout_sec=args.timeout):
            print(f"no {args.service} service after {args.timeout} s (is the node running, same ROS_DOMAIN_ID?)",
                  file=sys.stderr)
            return 1
        t0 = time.monotonic()
        future = client.call_async(req)
        rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
        if not future.done():
            print(f"no answer from {args.service} after {args.timeout} s", file=sys.stderr)
            return 1
        resp = future.result()
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    if not resp.success:
        print(f"render_view refused: {resp.message}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    color, depth = image_rgb(resp.color), image_depth(resp.depth)
    cv2.imwrite(f"{args.out}_color.png", color[..., ::-1])
    cv2.imwrite(f"{args.out}_depth.png", np.clip(np.rint(depth * 1000.0), 0, 65535).astype(np.uint16))
    np.save(f"{args.out}_depth.npy", depth)
    print(f"{args.width}x{args.height} at {time_ns(resp.stamp_rendered) * 1e-9:.3f} s in "
          f"{time.monotonic() - t0:.2f} s -> {args.out}_color.png, {args.out}_depth.png (mm), "
          f"{args.out}_depth.npy (m); {depth_range(depth)}")
    return 0
