"""`lrm4d view PATH [--port N]`: serve the 4D viewer for a 4D PLY, a `lrm4d reconstruct` output folder or a
contract bag (reconstructed window by window as they are shown) until Ctrl-C."""
from __future__ import annotations

import os
import sys
import threading
import time

from ..argtypes import finite_float

CLOSE_TIMEOUT_S = 10.0  # seconds Ctrl-C waits for the server to stop cleanly
# the options that only a bag, reconstructed on the fly, takes (its policy: selection.DEFAULT_POLICY, test_viewer)
BAG_DEFAULTS = {"window": "8", "stride": None, "max_views": 12, "policy": "frames", "floor_z": None, "cameras": None,
                "checkpoint": None, "config": None, "device": None}


def add_arguments(p) -> None:
    from ..selection import POLICIES  # here: selection imports torch, which a PLY's viewer needs not
    p.add_argument("path", help="a 4D PLY (gaussians_4d.ply), a `lrm4d reconstruct` output folder, "
                                "or a contract bag (MCAP or sqlite3)")
    p.add_argument("--port", type=int, default=8080, help="HTTP/websocket port (default 8080; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 serves other machines too)")
    p.add_argument("--time", type=finite_float, default=None,
                   help="start the slider at this many seconds after the first window's start (default: the "
                        "middle of the first window)")
    bag = p.add_argument_group("bags (reconstructed on the fly, windows as in `lrm4d reconstruct`)")
    bag.add_argument("--window", default=BAG_DEFAULTS["window"],
                     help="window length: frames (e.g. 8) or seconds (e.g. 0.5s)")
    bag.add_argument("--stride", default=None, help="window stride, same unit as --window (default: half a window)")
    bag.add_argument("--max-views", type=int, default=BAG_DEFAULTS["max_views"],
                     help="model input views per window")
    bag.add_argument("--policy", default=BAG_DEFAULTS["policy"], choices=POLICIES,
                     help=f"input view selection (lrm4d_ros/selection.py) (default: {BAG_DEFAULTS['policy']})")
    bag.add_argument("--floor-z", type=float, default=None, metavar="METRES",
                     help="world height of the floor where it is known (a ground robot's odom/map frame: 0); "
                          "default: found from depth or by matching the views")
    bag.add_argument("--cameras", default=None, help="comma-separated camera names to use (default: all)")
    bag.add_argument("--checkpoint", default=None, help="safetensors checkpoint (default: the shipped one)")
    bag.add_argument("--config", default=None, help="use a randomly initialised model of this preset (tests)")
    bag.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")


def run(args) -> int:
    from ..cli import Terminated

    try:
        from .server import Viewer
    except ImportError as e:
        print(f"lrm4d view: error: {e}; install the viewer with: pip install -e \".[viewer]\"", file=sys.stderr)
        return 2
    from .sources import BagOptions, ViewerError, is_bag, open_path

    given = [f"--{k.replace('_', '-')}" for k, default in BAG_DEFAULTS.items() if getattr(args, k) != default]
    if given and not is_bag(args.path):
        print(f"lrm4d view: warning: {', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to a bag, "
              f"reconstructed as it is shown; {args.path} holds reconstructions already: ignored", file=sys.stderr)
    cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    opts = BagOptions(window=args.window, stride=args.stride, max_views=args.max_views, policy=args.policy,
                      floor_z=args.floor_z, cameras=cameras, checkpoint=args.checkpoint, config=args.config,
                      device=args.device)
    try:
        windows = open_path(args.path, opts)
        viewer = Viewer(port=args.port, host=args.host, label=f"lrm4d view {args.path}")
    except (ViewerError, ValueError, FileNotFoundError) as e:
        print(f"lrm4d view: error: {e}", file=sys.stderr)
        return 2
    span_s = (max(w.end_ns for w in windows) - min(w.start_ns for w in windows)) * 1e-9 if windows else 0.0
    if windows and args.time is not None and not 0 <= args.time <= span_s:  # the slider stops at the recording's ends
        print(f"lrm4d view: warning: --time {args.time:g} s is outside the recording (0 to {span_s:.3f} s): clamped to "
              f"{min(max(args.time, 0.0), span_s):.3f} s", file=sys.stderr, flush=True)
    stopped = None
    try:
        viewer.show(windows, start_s=args.time)
        print(f"lrm4d view: {len(windows)} window{'s' if len(windows) != 1 else ''} of {args.path}; "
              f"open {viewer.url} in a browser (Ctrl-C stops)", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (cli.Terminated): the command's normal end
        stopped = exc
    finally:
        # A browser tab still connected can keep viser's shutdown waiting; Ctrl-C must still end the command.
        closer = threading.Thread(target=viewer.close, daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive():
            print(f"lrm4d view: the server did not stop within {CLOSE_TIMEOUT_S:g} s; exiting anyway",
                  file=sys.stderr, flush=True)
            os._exit(143 if isinstance(stopped, Terminated) else 130)
    if stopped is not None:
        raise stopped  # cli says so in one line and exits 130 (143 for SIGTERM), as every command does
    return 0
