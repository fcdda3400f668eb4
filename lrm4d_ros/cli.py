"""`lrm4d` command line: one sub-command per module, imported only when it runs (keeps --help fast)."""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings

# command -> (module, one-line help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "demo": ("lrm4d_ros.demo", "reconstruct a built-in generated scene and write a video, contact sheet and PLY"),
    "reconstruct": ("lrm4d_ros.pipeline", "contract bag in -> per-window Gaussians, PLY, video and an output bag"),
    "view": ("lrm4d_ros.viewer.command", "4D Gaussians in the browser with a time slider: PLY, output folder or bag"),
    "make-bag": ("lrm4d_ros.data.make_bag", "generate a procedural 4D scene and write it as a contract bag"),
    "convert-bag": ("lrm4d_ros.io.convert", "a robot's bag (its own topics, TF poses, compressed images) -> a "
                                            "contract bag"),
    "check-bag": ("lrm4d_ros.check_bag", "what in a contract bag is unlike the model's training data (depth unit, "
                                         "quantity and noise, camera frame, world up), window by window"),
    "train": ("lrm4d_ros.train", "train the model on procedural scenes, or fine-tune it on recorded bags"),
    "evaluate": ("lrm4d_ros.evaluate", "evaluate a checkpoint on contract bags against baselines"),
    "render-view": ("lrm4d_ros.ros.render_view_cli", "ask a running reconstruct node for a view (PNG + depth)"),
    "play": ("lrm4d_ros.ros.play", "publish a bag's messages in their recorded rhythm (ros2 bag play without ros2cli)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrm4d", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = sys.argv[1:]
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Import a module only for the command being run, so a broken optional dependency of one
        # command never breaks the others.
        if name in argv[:1]:
            importlib.import_module(module).add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args()
    if args.command is None:
        parser.print_help()
        return 2
    # a warning while the command runs (a bag's skipped frames, ...) as one line, without Python's file and code line
    shown = warnings.showwarning
    warnings.showwarning = lambda message, *_: print(
        f"lrm4d {args.command}: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    try:  # SIGTERM (a scheduler, `timeout`) unwinds as Ctrl-C does, so that the outputs are closed on the way out
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals are not ours to take
        previous = None
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt as exc:
        # a command that ends its own work on a signal (train, play, view) returns before this
        term = isinstance(exc, Terminated)
        print(f"lrm4d {args.command}: interrupted ({'SIGTERM' if term else 'Ctrl-C'})", file=sys.stderr, flush=True)
        return 128 + (signal.SIGTERM if term else signal.SIGINT)
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C raises KeyboardInterrupt."""


def _terminate(signum, frame):
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
