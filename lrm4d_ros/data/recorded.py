"""Training scenes from recorded contract bags: fine-tuning the model on the scenes a robot will serve.

Each recording is read (in parts where it would not fit in memory at its own size: `io.bag.read_bag`), resized to
the training size (short side `resolution`, as `lrm4d evaluate` renders its targets) and cut in time into windows
of `frames` frame periods (the recording's median frame period), so that a window holds one stretch of time of
every camera even where a camera dropped frames. Training windows are half a window apart; validation windows a
window apart (the last ends at the recording's end, so it may overlap the one before), each camera trimmed to the
same number of frames (the evaluation protocols pair cameras by frame), and come from `val_bags` or, without them,
from the last VAL_SHARE of each recording's time (at least one window), which training windows then stop before.
Training windows are index sets into their recording, not copies.

A training item is drawn from one seed, like a procedural scene: a window; a random subset of its cameras as the
input cameras (at least one camera is always held out, and enough cameras taken to give the inputs asked for); a
random stretch of its frame slots (of time: a camera at another rate keeps to it); and, from the input cameras'
views in that stretch, the inputs the node would take (`selection.select_views`, the default policy). Targets are
views of that span that are not inputs (held-out cameras, input cameras at other moments) stamped within the inputs'
time span (widened as a reconstruction renders it: `reconstruction.covered`): the novel views and moments the rig
protocol scores.

A bag's depth is a depth camera's measurement: items carry it as recorded ("measured": True), and training gives
it to the model as inference does (`train.recorded_inputs`, i.e. `Reconstructor.inputs`; the generator's simulated
sensor noise is not added), dropped per view and per scene as training drops it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..cameras import TimeWindow
from ..reconstruction import covered
from ..recording import Span, make_windows
from ..selection import DEFAULT_POLICY, depth_flags, select_views
from ..views import ViewSet, short_side_size

VAL_SHARE = 0.2  # of each recording's time, held out for validation where no validation bags are given
DRAWS = 20  # draws of a scene before it is given up as leaving no target
MEMORY_SHARE = 0.4  # a recording is read in parts where reading it whole would take more of the available memory
MIN_COVER = 0.5  # a window with fewer views than this share of a full one (cameras x frames) is not used


def expand_bags(paths: list[str | Path]) -> list[Path]:
    """The bags named, each once: a bag (a folder with metadata.yaml, or an .mcap / .db3 file) as it is, a folder
    holding bags as each bag in it (bag folders, then .mcap / .db3 files, in name order). ValueError naming a path
    that is neither."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.name == "metadata.yaml" or (p.is_file() and (p.parent / "metadata.yaml").is_file()):
            p = p.parent  # a bag's metadata or storage file names the bag
        if p.is_dir() and not (p / "metadata.yaml").is_file():
            inner = sorted(q for q in p.iterdir() if (q / "metadata.yaml").is_file())
            inner += sorted(q for q in p.iterdir() if q.is_file() and q.suffix in (".mcap", ".db3"))
            if not inner:
                raise ValueError(f"{p}: neither a bag (no metadata.yaml) nor a folder holding bags or .mcap / .db3 "
                                 "files")
            found = inner
        elif p.exists():
            found = [p]
        else:
            raise ValueError(f"{p}: no such bag")
        out += [q for q in found if q.resolve() not in {o.resolve() for o in out}]
    return out


def read_recording(path: Path, resolution: int, log=print) -> ViewSet:
    """A whole recording at the training size (short side `resolution` px), read in parts where reading it whole
    would take more than MEMORY_SHARE of the available memory: parts of the bag's (log) time, each image read once
    (`read_bag`'s log_span). BagError where it cannot be read."""
    from ..io.bag import available_memory, bag_size, memory_needed, read_bag

    size = bag_size(path)
    free = available_memory()
    parts = 1 if free is None else max(1, math.ceil(memory_needed(size) / 2 / (MEMORY_SHARE * free)))
    if parts == 1:
        views = read_bag(path)
        return views.resized(*short_side_size(views.height, views.width, resolution))
    log(f"{path}: reading it whole would take about {memory_needed(size) / 2 / 2**30:.1f} GiB at its own size: "
        f"read in {parts} parts")
    start, end = size["start_ns"], size["end_ns"] + 1
    edges = [start + (end - start) * k // parts for k in range(parts + 1)]
    chunks = []
    for k in range(parts):
        try:
            views = read_bag(path, log_span=(edges[k], edges[k + 1]))
        except ValueError as e:
            if "no image" in str(e).lower():  # a part with no image (a gap in the recording)
                continue
            raise
        chunks.append(views.resized(*short_side_size(views.height, views.width, resolution)))
    if not chunks:
        return read_bag(path)  # (raises its own error: no images)
    views = ViewSet.cat(chunks)
    by_camera = torch.argsort(views.camera_ids, stable=True)  # then by stamp: read_bag's (stamp, camera) order
    return views.select(by_camera[torch.argsort(views.stamps_ns[by_camera], stable=True)])


def frame_period_ns(views: ViewSet) -> int:
    """The median over cameras of each camera's median interval between its views (ns; 1 where no camera has two
    views)."""
    periods = []
    for c in views.camera_ids.unique():
        s = torch.sort(views.stamps_ns[views.camera_ids == c]).values
        if len(s) > 1:
            periods.append(int(torch.median(s[1:] - s[:-1])))
    return max(1, int(torch.tensor(periods).median())) if periods else 1


@dataclass
class Window:
    """A window of a recording: `index` (M,) into recording `rec`'s views, in stamp order."""

    rec: int
    index: torch.Tensor


class RecordedScenes:
    """Training and validation windows of recorded bags (see module docstring).

    bags: contract bags (folders of bags expanded); val_bags: recordings kept for validation (None: the last
    VAL_SHARE of each of `bags`); frames: a window's length in frame periods; resolution: the short side in pixels.
    """

    def __init__(self, bags: list[str | Path], val_bags: list[str | Path] | None, frames: int, resolution: int,
                 log=print):
        self.frames = frames
        self.recordings: list[ViewSet | None] = []  # None: a validation recording, once its windows are copied
        self.names: list[str] = []
        self.periods: list[int] = []  # each recording's frame period, ns
        self.train: list[Window] = []
        val: list[Window] = []
        train_paths = expand_bags(bags)
        val_paths = expand_bags(val_bags) if val_bags else []
        shared = {p.resolve() for p in train_paths} & {p.resolve() for p in val_paths}
        if shared:
            raise ValueError(f"--val-bags {', '.join(sorted(map(str, shared)))} also in --bags: validation on "
                             "training data says nothing of other recordings")
        for path in train_paths + val_paths:
            try:
                views = read_recording(path, resolution, log)
            except ValueError as e:
                raise type(e)(str(e) if str(path) in str(e) else f"{path}: {e}") from e
            if len(views.camera_ids.unique()) < 2:
                raise ValueError(f"{path}: one camera ({views.camera_names}): training holds a camera out as the "
                                 "target, so a recording needs two or more")
            r = len(self.recordings)
            self.recordings.append(views)
            self.names.append(path.name)
            period = frame_period_ns(views)
            self.periods.append(period)
            stamps = views.stamps_ns
            if path in val_paths:
                held = self._windows(r, torch.arange(len(views)), period, self.frames)
                val += held
                log(f"{path}: {len(views)} views of {len(views.camera_ids.unique())} cameras at "
                    f"{1e9 / period:.3g} fps, {len(held)} validation windows")
                continue
            everything = torch.arange(len(views))
            held = []
            if not val_paths:
                frames_total = (int(stamps.max()) - int(stamps.min())) / period + 1
                held_frames = max(frames, round(VAL_SHARE * frames_total))
                if frames_total < frames + held_frames:
                    raise ValueError(f"{path}: {frames_total:.0f} frames cannot give a training window and a "
                                     f"validation window of {frames} frames (--frames): pass --val-bags, a longer "
                                     "recording or fewer --frames")
                cut = int(stamps.max()) - int((held_frames - 0.5) * period)
                held = self._windows(r, everything[stamps >= cut], period, self.frames)
                val += held
                everything = everything[stamps < cut]
            wins = self._windows(r, everything, period, max(1, frames // 2))
            self.train += wins
            used = torch.cat([w.index for w in wins + held]).unique() if wins or held else torch.zeros(0)
            lost = len(views) - len(used)
            note = f", {lost} view{'s' if lost != 1 else ''} in no window (too few cameras at their moments)" \
                if lost else ""
            log(f"{path}: {len(views)} views of {len(views.camera_ids.unique())} cameras at "
                f"{1e9 / period:.3g} fps, {len(wins)} training and {len(held)} validation windows{note}")
        if not self.train:
            raise ValueError("the bags give no training window (each needs views of two cameras or more)")
        self.val = [_same_frames(self.recordings[w.rec].select(w.index)) for w in val]
        self.val_periods = [self.periods[w.rec] for w in val]
        for r in range(len(self.recordings)):
            if not any(w.rec == r for w in self.train):  # a validation recording: only its windows are kept
                self.recordings[r] = None
        if not self.val:
            raise ValueError("no validation window (each needs views of two cameras or more)")

    def _windows(self, rec: int, index: torch.Tensor, period: int, stride: int) -> list[Window]:
        """Windows of `frames` frame periods, `stride` periods apart, over the views `index` of recording `rec`;
        those with fewer than MIN_COVER of a full window's views or one camera are dropped."""
        if len(index) == 0:
            return []
        views = self.recordings[rec].select(index)
        length = Span((self.frames - 0.5) * period * 1e-9, "s")  # closed spans: frames, not frames + 1, per camera
        wins = make_windows(views, length, Span(stride * period * 1e-9, "s"))
        cams = len(views.camera_ids.unique())
        out = []
        for w in wins:
            if len(w.views) >= MIN_COVER * cams * self.frames and len(views.camera_ids[w.views].unique()) > 1:
                out.append(Window(rec, index[w.views]))
        return out

    def window(self, k: int) -> ViewSet:
        """Training window k as a ViewSet."""
        w = self.train[k]
        return self.recordings[w.rec].select(w.index)

    def capacity(self, k: int) -> int:
        """The most inputs training window k gives with a camera held out (all views but the richest camera's)."""
        cams = self.recordings[self.train[k].rec].camera_ids[self.train[k].index]
        counts = sorted((int((cams == c).sum()) for c in cams.unique()), reverse=True)
        return sum(counts[1:])

    def keep_inputs(self, num_inputs: int) -> int:
        """Keep the training windows that give `num_inputs` inputs with a camera held out; how many were left
        out. ValueError where none does."""
        rich = [w for k, w in enumerate(self.train) if self.capacity(k) >= num_inputs]
        if not rich:
            most = max(self.capacity(k) for k in range(len(self.train)))
            raise ValueError(f"no training window gives {num_inputs} inputs with a camera held out as the target "
                             f"(the richest gives {most})")
        dropped, self.train = len(self.train) - len(rich), rich
        return dropped

    def sample(self, seed: int, num_inputs: int, num_targets: int, split: str = "train") -> dict:
        """One item (as the procedural SceneSampler's, with "measured": True): a window of `split` drawn by `seed`
        and its inputs and targets (module docstring). A draw that leaves no target (one frame of cameras out of
        step: no held-out view stamped within the inputs' span) is drawn again; after DRAWS such draws the last
        one's targets are the views nearest the inputs' time, as close as the recording has them."""
        g = torch.Generator().manual_seed(int(seed) * 2 + 1)
        count = len(self.train) if split == "train" else len(self.val)
        for attempt in range(DRAWS):
            k = int(torch.randint(count, (1,), generator=g))
            views = self.window(k) if split == "train" else self.val[k]
            period = self.periods[self.train[k].rec] if split == "train" else self.val_periods[k]
            inputs, targets = _draw(views, g, num_inputs, num_targets, period, nearest=attempt == DRAWS - 1)
            if len(targets):
                return {"inputs": views.select(inputs), "targets": views.select(targets), "seed": int(seed),
                        "scene": self.names[self.train[k].rec] if split == "train" else "val", "draw": "recorded",
                        "measured": True}
        raise ValueError(f"scene {seed}: a window of {len(views)} views left no view to hold out")


def _draw(views: ViewSet, g: torch.Generator, num_inputs: int, num_targets: int, period: int,
          nearest: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) indices into one window's views, each in time order (module docstring); period: the
    recording's frame period (ns), which cuts the window's time into frame slots (a camera at half the rate fills
    every other one); nearest: where no view is stamped within the inputs' span, the targets are the other views
    nearest it."""
    cams = views.camera_ids.unique()
    frame = torch.div(views.stamps_ns - views.stamps_ns.min() + period // 2, period, rounding_mode="floor")
    T = int(frame.max()) + 1
    fewest = min(max(1, math.ceil(num_inputs / T)), len(cams) - 1)  # input cameras enough for num_inputs
    n_in = int(torch.randint(fewest, len(cams), (1,), generator=g))  # ... to all but one
    in_cams = cams[torch.randperm(len(cams), generator=g)[:n_in]]
    length = int(torch.randint(min(max(1, math.ceil(num_inputs / n_in)), T), T + 1, (1,), generator=g))
    first = int(torch.randint(0, T - length + 1, (1,), generator=g))
    in_span = (frame >= first) & (frame < first + length)
    pool = torch.nonzero(in_span & torch.isin(views.camera_ids, in_cams)).squeeze(1)
    flags = depth_flags(views)  # drawn as the node draws its inputs: a depth camera's views with depth first
    chosen = select_views([(int(views.stamps_ns[i]), int(views.camera_ids[i])) for i in pool], num_inputs,
                          DEFAULT_POLICY, None if flags is None else [flags[i] for i in pool])
    inputs = pool[torch.tensor(chosen, dtype=torch.int64)]
    stamps = views.stamps_ns
    lo, hi = int(stamps[inputs].min()), int(stamps[inputs].max())
    free = in_span & covered(TimeWindow(lo, hi), stamps)
    free[inputs] = False
    if nearest and not bool(free.any()):
        others = torch.ones(len(views), dtype=torch.bool)
        others[inputs] = False
        idx = others.nonzero()[:, 0]
        if len(idx):
            gap = torch.maximum(lo - stamps[idx], stamps[idx] - hi).clamp(min=0)
            free[idx[gap == gap.min()]] = True
    candidates = torch.nonzero(free).squeeze(1)
    targets = candidates[torch.randperm(len(candidates), generator=g)[:num_targets]]
    return (inputs[torch.argsort(stamps[inputs], stable=True)], targets[torch.argsort(stamps[targets], stable=True)])


def _same_frames(views: ViewSet) -> ViewSet:
    """The window with every camera it holds at the same number of frames (the fewest any has: those nearest the
    window's middle), and only those cameras named, as the evaluation protocols need them (`protocols.frame_grid`);
    a camera a little out of step can hold a frame more or fewer than the others in a stretch of time."""
    present = views.camera_ids.unique()
    k = min(int((views.camera_ids == c).sum()) for c in present)
    mid = (int(views.stamps_ns.min()) + int(views.stamps_ns.max())) // 2
    keep = []
    for c in present:
        idx = (views.camera_ids == c).nonzero()[:, 0]
        idx = idx[torch.argsort(views.stamps_ns[idx], stable=True)]
        best = min(range(len(idx) - k + 1), key=lambda j: abs(int(views.stamps_ns[idx[j:j + k]].sum()) // k - mid))
        keep.append(idx[best:best + k])
    out = views.select(torch.sort(torch.cat(keep)).values)
    remap = torch.full((len(views.camera_names),), -1, dtype=torch.int64)
    remap[present] = torch.arange(len(present))
    return replace(out, camera_ids=remap[out.camera_ids], camera_names=[views.camera_names[int(c)] for c in present])
