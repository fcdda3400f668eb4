"""argparse types and arguments shared by the `lrm4d` commands (light: no torch), so that a bad value is refused by
argparse in one line naming its flag, before anything runs."""
from __future__ import annotations

import argparse
import math


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (steps, batch sizes, intervals, sizes), with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _float(text: str, bound: str, ok) -> float:
    """`text` as a float for which ok(value) holds, else ArgumentTypeError naming `bound` (" > 0", or "")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number{bound}, got {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (rates, durations), with a clear message otherwise."""
    return _float(text, " > 0", lambda value: value > 0)


def finite_float(text: str) -> float:
    """argparse type: a finite number (NaN and inf refused), with a clear message otherwise."""
    return _float(text, "", lambda value: True)


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    """A bag's windows and each window's model inputs, as `lrm4d reconstruct` takes them (and `check-bag`)."""
    from .selection import DEFAULT_POLICY, POLICIES  # here: selection imports torch, which light commands do not need
    p.add_argument("--window", default="8",
                   help="window length: frames (e.g. 8) or seconds (e.g. 0.5s) (default: 8 frames)")
    p.add_argument("--stride", default=None, help="window stride, same unit as --window (default: half a window)")
    p.add_argument("--cameras", default=None, help="comma-separated camera names to use (default: all)")
    p.add_argument("--max-views", type=positive_int, default=12,
                   help="model input views per window (rest are held out) (default: 12)")
    p.add_argument("--policy", default=DEFAULT_POLICY, choices=POLICIES,
                   help=f"input view selection (lrm4d_ros/selection.py) (default: {DEFAULT_POLICY})")


def add_part_arguments(p: argparse.ArgumentParser, verb: str, in_memory: bool = True) -> None:
    """--start / --duration: the part of a bag a command reads (seconds from its first image). verb: what the
    command does with it ("reconstruct", "check", ...); in_memory: the command holds what it reads (the part is
    then read alone, so that a part of a long bag fits in memory)."""
    p.add_argument("--start", type=float, default=0.0,
                   help="seconds after the bag's first image to start from (default: 0)")
    p.add_argument("--duration", type=float, default=None,
                   help=f"seconds of the bag to {verb} (default: all)" +
                        ("; the part is read alone, so a part of a long bag fits in memory" if in_memory else ""))


def check_part(args) -> None:
    """ValueError where add_part_arguments' --start / --duration cannot name a part of a bag."""
    if args.start < 0 or (args.duration is not None and not args.duration > 0):
        raise ValueError(f"--start must be >= 0 and --duration > 0 seconds, got {args.start} and {args.duration}")
