"""argparse types shared by the `lrm4d` commands (light: no torch), so that a bad value is refused by argparse in
one line naming its flag, before anything runs."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (steps, batch sizes, intervals, sizes), with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
