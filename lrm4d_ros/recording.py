"""A recording (a ViewSet of a whole bag) cut into sliding windows, as `lrm4d reconstruct` and `lrm4d view` cut
it: window lengths and strides in frames or seconds (`Span`), and the windows over the views (`make_windows`)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from .views import ViewSet, frame_indices


@dataclass(frozen=True)
class Span:
    """A window length or stride: `value` frames (unit "frames") or seconds (unit "s")."""

    value: float
    unit: str

    @classmethod
    def parse(cls, text: str, flag: str | None = None) -> "Span":
        """"8" -> 8 frames, "0.5s" -> 0.5 seconds; flag (e.g. "--window"): named in the error."""
        m = re.fullmatch(r"\s*(-?[0-9]*\.?[0-9]+)\s*(s|frames?)?\s*", str(text))
        if not m:
            raise ValueError(f"{flag + ': ' if flag else ''}expected a number of frames (e.g. 8) or seconds "
                             f"(e.g. 0.5s), got {text!r}")
        value, unit = float(m.group(1)), "s" if m.group(2) == "s" else "frames"
        if value <= 0:
            raise ValueError(f"{flag or 'a window or stride'} must be positive, got {text!r}")
        if unit == "frames" and value != int(value):
            raise ValueError(f"{flag + ': ' if flag else ''}frames must be whole, got {text!r} (add s for seconds: "
                             f"{text.strip()}s)")
        return cls(value, unit)

    def __str__(self) -> str:
        return f"{self.value:g} s" if self.unit == "s" else f"{int(self.value)} frame{'s' if self.value != 1 else ''}"


def parse_spans(window: str, stride: str | None) -> tuple[Span, Span]:
    """--window and --stride (None: half a window, at least a frame) -> (length, stride); ValueError naming the
    flag."""
    length = Span.parse(window, "--window")
    if stride:
        step = Span.parse(stride, "--stride")
        if step.unit != length.unit:
            raise ValueError(f"--window {window} and --stride {stride} must both be frames or both seconds (an s "
                             "suffix)")
        return length, step
    return length, Span(max(1.0, float(length.value // 2)) if length.unit == "frames" else length.value / 2,
                        length.unit)


@dataclass
class Window:
    """One sliding window: `views` indexes the full ViewSet; `own` ⊆ views are the views this window renders
    into the output bag; `mid_ns` is the source stamp nearest the window's middle (where it is sliced, unless the
    model inputs do not span it: then at the rendered view's stamp nearest it)."""

    index: int
    views: Tensor
    own: Tensor
    mid_ns: int


def _starts(total: float, length: float, stride: float) -> list[float]:
    """Window starts covering [0, total]: 0, stride, 2·stride, … and a last one ending exactly at `total`; where
    that one would start less than half a stride after the one before (nearly the same window, reconstructed
    twice), the one before is moved there instead, if the window before it still reaches it."""
    if length >= total:
        return [0.0]
    starts = [k * stride for k in range(int(math.floor((total - length) / stride)) + 1)]
    if starts[-1] + length < total:
        last = total - length
        if len(starts) > 1 and last - starts[-1] < stride / 2 and last <= starts[-2] + length:
            starts[-1] = last
        else:
            starts.append(last)
    return starts


def make_windows(views: ViewSet, length: Span, stride: Span) -> list[Window]:
    """Sliding windows over a whole recording; together they cover every view.

    Frames: window k holds frames [k·stride, k·stride + length) of every camera. Seconds: stamps in
    [t0 + k·stride, t0 + k·stride + length] (t0 = the first stamp). Both spans must share a unit.
    """
    if length.unit != stride.unit:
        raise ValueError(f"window ({length}) and stride ({stride}) must both be frames or both seconds")
    if len(views) == 0:
        raise ValueError("no views to make windows from")
    stamps = views.stamps_ns
    if length.unit == "frames":
        pos = frame_indices(views).to(torch.float64)
        total, size, step, closed = float(pos.max()) + 1, length.value, stride.value, False
    else:
        pos = (stamps - stamps.min()).to(torch.float64) * 1e-9
        total, size, step, closed = float(pos.max()), length.value, stride.value, True
    members = []
    for s in _starts(total, size, step):
        inside = (pos >= s) & ((pos <= s + size) if closed else (pos < s + size))
        members.append(torch.nonzero(inside).squeeze(1))
    members = [m for m in members if len(m)]
    # Ownership: a view belongs to the window whose middle is nearest its stamp (among those holding it).
    mids = torch.stack([(stamps[m].min() + (stamps[m].max() - stamps[m].min()) // 2) for m in members])
    owner = torch.full((len(views),), -1, dtype=torch.int64)
    best = torch.full((len(views),), torch.iinfo(torch.int64).max, dtype=torch.int64)
    for w, m in enumerate(members):
        d = (stamps[m] - mids[w]).abs()
        better = d < best[m]
        owner[m[better]], best[m[better]] = w, d[better]
    windows = []
    for w, m in enumerate(members):
        mid_ns = int(stamps[m][(stamps[m] - mids[w]).abs().argmin()])
        windows.append(Window(w, m, torch.nonzero(owner == w).squeeze(1), mid_ns))
    return windows
