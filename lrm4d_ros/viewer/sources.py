"""What `lrm4d view` can show, as a list of windows loaded on demand.

- a 4D PLY (`write_ply_4d`: metres, seconds since the window start; the window's stamps from its header when
  stored there);
- a `lrm4d reconstruct` output folder: every `window_NNN/gaussians_4d.ply`, with the source bag's cameras and
  images when `summary.json` names a bag that still exists;
- a contract bag (docs/design.md §4): sliding windows (as `lrm4d reconstruct` makes them) reconstructed on the fly.

Every window becomes a `ViewerWindow`: time-conditioned Gaussians in metres plus the views seen in it.
"""
from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..gaussians import MIN_MARGINAL, Gaussians3D, Gaussians4D
from ..ply import read_ply_window as stored_window
from ..views import ViewSet

PLY_4D_NAME = "gaussians_4d.ply"
BAG_SUFFIXES = (".mcap", ".db3")
EXPECTED = ("a 4D PLY (gaussians_4d.ply, as `lrm4d demo` and `lrm4d reconstruct` write), a 3DGS PLY (shown still), "
            "a `lrm4d reconstruct` output folder, or a contract bag (MCAP or sqlite3)")


class ViewerError(ValueError):
    """Input the viewer cannot show; the message says what was expected."""


@dataclass
class ViewerWindow:
    """One window as the viewer shows it.

    gaussians: positions in metres; at absolute stamp s their time is
    ((s − start_ns) − offset_ns) / ns_per_unit. views: the views seen in the window (camera frustums), or None.
    """

    gaussians: Gaussians4D
    start_ns: int
    end_ns: int
    offset_ns: float
    ns_per_unit: float
    views: ViewSet | None = None
    still: bool = False  # 3D Gaussians (a 3DGS PLY) shown the same at every moment

    def time_of(self, stamp_ns: int) -> float:
        """The Gaussians' time at an absolute stamp (int ns, subtracted exactly before scaling)."""
        return ((int(stamp_ns) - self.start_ns) - self.offset_ns) / self.ns_per_unit

    def slice(self, stamp_ns: int, min_marginal: float = MIN_MARGINAL) -> Gaussians3D:
        """3D Gaussians (metres) at an absolute stamp."""
        return self.gaussians.slice(self.time_of(stamp_ns), min_marginal)

    @classmethod
    def from_reconstruction(cls, rec, views: ViewSet | None = None) -> "ViewerWindow":
        """A `Reconstruction` (canonical frame, time normalised to [-1,1] over its window)."""
        half = 0.5 * (rec.window.end_ns - rec.window.start_ns)
        cond = rec.smoothed().spatial_to_world(rec.normalization)  # drawn at the screen's resolution
        # A zero-length window maps every stamp to time 0 (TimeWindow.normalize).
        return cls(cond, rec.window.start_ns, rec.window.end_ns, half, half if half > 0 else 1.0,
                   None if views is None else views.to("cpu"))


@dataclass(frozen=True)
class WindowRef:
    """A window known by its stamps, loaded (read or reconstructed) only when shown."""

    label: str
    start_ns: int
    end_ns: int
    load: Callable[[], ViewerWindow]

    @property
    def mid_ns(self) -> int:
        return self.start_ns + (self.end_ns - self.start_ns) // 2


def nearest_window(windows: list[WindowRef], stamp_ns: int) -> int:
    """Index of the window whose middle is nearest `stamp_ns` (the earlier on a tie), as `lrm4d reconstruct`
    assigns views to windows."""
    return min(range(len(windows)), key=lambda i: (abs(windows[i].mid_ns - stamp_ns), i))


# ---------------------------------------------------------------------------------------------------- PLY
def load_ply_window(path: Path, views: ViewSet | None = None, window: tuple[int, int] | None = None
                    ) -> ViewerWindow:
    """A 4D PLY as a ViewerWindow. `window` (start_ns, end_ns) overrides the one in its header."""
    from plyfile import PlyParseError

    from ..cameras import TimeWindow
    from ..ply import read_ply_gaussians

    try:
        g = read_ply_gaussians(path)  # once: a foreign 3DGS file can be a million Gaussians
    except FileNotFoundError:
        raise ViewerError(f"{path} does not exist") from None
    except (PlyParseError, UnicodeDecodeError, EOFError) as e:
        raise ViewerError(f"{path} is not a PLY file ({e}); expected {EXPECTED}") from None
    except ValueError as e:
        raise ViewerError(f"{path}: {e}; expected {EXPECTED}") from None
    still = isinstance(g, Gaussians3D)
    if still:
        window = window or _still_window(path)
        g4 = _still_gaussians(g, 0.5e-9 * (window[1] - window[0]))
    else:
        g4 = g
    if len(g4) == 0:
        raise ViewerError(f"{path} holds no Gaussians")
    finite = torch.ones(len(g4), dtype=torch.bool)
    for t in (g4.means, g4.times, g4.velocities, g4.covars, g4.scale_t, g4.opacities, g4.colors):
        finite &= torch.isfinite(t.reshape(len(g4), -1)).all(1)
    if not bool(finite.all()):  # one NaN position made the view's framing NaN: a blank page, no error
        print(f"lrm4d view: {path}: {int((~finite).sum())} of {len(g4)} Gaussians have non-finite values: not shown",
              file=sys.stderr, flush=True)
        g4 = g4.select(finite)
        if len(g4) == 0:
            raise ViewerError(f"{path} holds no Gaussian with finite values")
    if window is None:
        stored = stored_window(path)
        window = (stored.start_ns, stored.end_ns) if stored else estimated_window(g4.times)
    TimeWindow(*window)  # validates the order
    return ViewerWindow(g4, window[0], window[1], 0.0, 1e9, views, still)


STILL_SPAN_NS = 1_000_000_000  # the time slider's span for 3D Gaussians without a stamp


def _still_gaussians(g3: Gaussians3D, time_s: float) -> Gaussians4D:
    """3D Gaussians (a 3DGS PLY: this package's slice.ply, or another tool's, SH degree 0 colour) as 4D Gaussians
    that do not change in time: centred at `time_s` (the window's middle) with a temporal extent that leaves them
    whole at every moment of it."""
    n = len(g3)
    return Gaussians4D(means=g3.means, times=torch.full((n,), time_s), velocities=torch.zeros(n, 3), covars=g3.covars,
                       scale_t=torch.full((n,), 1e6), opacities=g3.opacities, colors=g3.colors)


def _still_window(path: Path) -> tuple[int, int]:
    """A second around the stamp slice.ply stores, or the first second."""
    from ..ply import read_ply_stamp

    stamp = read_ply_stamp(path)
    return (0, STILL_SPAN_NS) if stamp is None else (stamp - STILL_SPAN_NS // 2, stamp + STILL_SPAN_NS // 2)


def estimated_window(times_s: torch.Tensor) -> tuple[int, int]:
    """(0, end) in ns for a 4D PLY without stored stamps: its times count seconds from the window start, and
    almost all Gaussians' time centres lie inside the window."""
    end_s = float(torch.quantile(times_s.double(), 0.99)) if len(times_s) else 0.0
    return 0, max(int(round(end_s * 1e9)), 1_000_000)


def ply_windows(path: Path) -> list[WindowRef]:
    """One window: a 4D PLY."""
    win = load_ply_window(path)  # read now: a foreign file fails before the server starts
    stamps = " (3D Gaussians: the same at every moment)" if win.still else "" if stored_window(path) else \
        " (no stamps in the file: times in seconds since the window start)"
    return [WindowRef(f"{path.name}{stamps}", win.start_ns, win.end_ns, lambda: win)]


# ------------------------------------------------------------------------------------------ output folder
def folder_windows(folder: Path) -> list[WindowRef]:
    """Every window of a `lrm4d reconstruct` output folder, with the source bag's views when it still exists."""
    summary_path = folder / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    rows = summary.get("windows")
    if rows is None:  # no summary: the window folders and the stamps in their PLY headers
        rows = []
        for d in sorted(folder.glob("window_*")):
            stored = stored_window(d / PLY_4D_NAME) if (d / PLY_4D_NAME).exists() else None
            if stored is None:
                raise ViewerError(f"{d / PLY_4D_NAME} is missing or has no window stamps, and {summary_path} "
                                  "is missing")
            rows.append({"window": len(rows), "dir": str(d), "start_ns": stored.start_ns, "end_ns": stored.end_ns})
    if not rows:
        raise ViewerError(f"{folder} holds no windows (no window_NNN/{PLY_4D_NAME}); expected {EXPECTED}")
    views = _source_views(summary, folder)
    refs = []
    for row in rows:
        ply = folder / Path(row["dir"]).name / PLY_4D_NAME
        if not ply.exists():
            raise ViewerError(f"{ply} is missing (listed in {summary_path})")
        span = (int(row["start_ns"]), int(row["end_ns"]))
        refs.append(WindowRef(f"window {row['window']}", *span,
                              lambda ply=ply, span=span: load_ply_window(ply, views.within(*span), span)))
    return refs


class _LazyViews:
    """The source bag's views, read once on first use; None when there is no bag to read."""

    def __init__(self, path: Path | None, cameras, height: int | None, width: int | None):
        self.path, self.cameras, self.size = path, cameras, (height, width)
        self._views, self._lock = None, threading.Lock()

    def within(self, start_ns: int, end_ns: int) -> ViewSet | None:
        if self.path is None:
            return None
        with self._lock:
            if self._views is None:
                from ..io.bag import read_bag

                views = read_bag(self.path, cameras=self.cameras)
                self._views = views.resized(*self.size) if self.size[0] else views
        inside = (self._views.stamps_ns >= start_ns) & (self._views.stamps_ns <= end_ns)
        return self._views.select(inside)


def _source_views(summary: dict, folder: Path) -> _LazyViews:
    bag = summary.get("bag_in")
    if summary.get("complete") is False:
        print(f"lrm4d view: {folder}: its reconstruct run stopped after {len(summary.get('windows', []))} of "
              f"{summary.get('windows_planned', '?')} windows; those are shown")
    if bag is None or not Path(bag).exists():
        print(f"lrm4d view: no camera frustums for {folder}: "
              + ("it has no summary.json (a reconstruct run that did not finish?)" if not summary else
                 "its summary.json names no source bag" if bag is None else f"its source bag {bag} is gone"))
        return _LazyViews(None, None, None, None)
    height, width = summary.get("resolution") or (None, None)
    return _LazyViews(Path(bag), summary.get("cameras"), height, width)


# --------------------------------------------------------------------------------------------------- bags
@dataclass
class BagOptions:
    """How a bag is cut into windows and reconstructed (the options of `lrm4d reconstruct`)."""

    window: str = "8"
    stride: str | None = None
    max_views: int = 12
    policy: str = "frames"  # selection.DEFAULT_POLICY
    floor_z: float | None = None
    cameras: list[str] | None = None
    checkpoint: str | None = None
    config: str | None = None
    device: str | None = None
    seed: int = 0


def bag_windows(path: Path, opts: BagOptions) -> list[WindowRef]:
    """Sliding windows of a contract bag, each reconstructed when first shown. The options and the model are
    checked here, so that a bad one fails before the server starts rather than on every window shown."""
    from ..io.bag import BagError, read_bag
    from ..recording import make_windows, parse_spans
    from ..selection import select_inputs

    length, stride = parse_spans(opts.window, opts.stride)
    if opts.max_views < 1:
        raise ViewerError(f"--max-views must be >= 1, got {opts.max_views}")
    model = load_model(opts)
    print(f"lrm4d view: reading {path} ...", flush=True)
    try:
        views = read_bag(path, cameras=opts.cameras)
    except BagError as e:
        raise ViewerError(str(e)) from None
    windows = make_windows(views, length, stride)
    print(f"lrm4d view: {len(views)} views from cameras {views.camera_names}; {len(windows)} window"
          f"{'s' if len(windows) != 1 else ''} of {length} every {stride}, reconstructed when shown", flush=True)

    def load(win) -> ViewerWindow:
        sub = views.select(win.views)
        rec = model.reconstruct(sub.select(select_inputs(sub, opts.max_views, opts.policy)))
        return ViewerWindow.from_reconstruction(rec, sub)

    refs = []
    for w in windows:
        stamps = views.stamps_ns[w.views]
        refs.append(WindowRef(f"window {w.index}", int(stamps.min()), int(stamps.max()), lambda w=w: load(w)))
    return refs


def load_model(opts: BagOptions):
    """The Reconstructor of `opts` (checkpoint, config, device), or ViewerError saying why it cannot be loaded."""
    from ..reconstructor import load_reconstructor

    try:
        return load_reconstructor(opts.checkpoint, opts.config, opts.device, opts.seed, floor_z=opts.floor_z)
    except Exception as e:  # a missing or foreign checkpoint, an unknown preset, a device torch cannot use, ...
        src = (f"--config {opts.config}" if opts.config is not None else
               f"--checkpoint {opts.checkpoint}" if opts.checkpoint is not None else "the shipped checkpoint")
        why = str(e) if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: {e}"
        raise ViewerError(f"cannot load the model ({src}): {why}") from None


# ------------------------------------------------------------------------------------------------- any path
def is_bag(path: str | Path) -> bool:
    """Whether open_path reads `path` as a bag (reconstructed window by window) rather than as results."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in BAG_SUFFIXES
    return path.is_dir() and ((path / "metadata.yaml").exists() or any(path.glob("*.mcap"))
                              or any(path.glob("*.db3")))


def open_path(path: str | Path, bag_options: BagOptions | None = None) -> list[WindowRef]:
    """The windows of a 4D PLY, an output folder or a contract bag (ViewerError with the reason otherwise)."""
    path = Path(path)
    if not path.exists():
        raise ViewerError(f"{path} does not exist; expected {EXPECTED}")
    if is_bag(path):
        return bag_windows(path, bag_options or BagOptions())
    if path.is_file():
        return ply_windows(path)
    if (path / "summary.json").exists() or any(path.glob(f"window_*/{PLY_4D_NAME}")):
        return folder_windows(path)
    if (path / PLY_4D_NAME).exists():  # e.g. `lrm4d demo`'s output folder
        return ply_windows(path / PLY_4D_NAME)
    what = "is empty" if not any(path.iterdir()) else "holds none of these"
    raise ViewerError(f"{path} {what}: expected {EXPECTED}")
