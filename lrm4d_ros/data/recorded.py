"""Training scenes from recorded contract bags: fine-tuning the model on the scenes a robot will serve.

Each recording is read in parts (`io.bag.read_bag`), resized to the training size (short side `resolution`, as
`lrm4d evaluate` renders its targets) and cut into windows of `frames` frames of every camera
(`recording.make_windows`). Training windows are half a window apart; validation windows do not overlap, and come
from `val_bags` or, without them, from the last VAL_SHARE of each recording (training windows stop before it).

A training item is drawn from one seed, like a procedural scene: a window; a random subset of its cameras as
the input cameras (at least one camera is always held out where there are two); a random span of its frames;
and, from the input cameras' views in that span, the inputs the node would take (`selection.select_views`,
policy "uniform"). Targets are views of that span that are not inputs (held-out cameras, input cameras at other
moments) stamped within the inputs' time span: the novel views and moments the rig protocol scores.

A bag's depth is a depth camera's measurement: it is the model's input as recorded (the generator's simulated
sensor noise is not added), dropped per view and per scene as training drops it.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..recording import Span, make_windows
from ..selection import select_views
from ..views import ViewSet, frame_indices, short_side_size

VAL_SHARE = 0.2  # of each recording's frames, held out for validation where no validation bags are given
DRAWS = 20  # draws of a scene before it is given up as leaving no target
PART_BYTES = 1 << 30  # a recording is read in parts of about this many bytes (at its own size) before resizing


def expand_bags(paths: list[str | Path]) -> list[Path]:
    """The bags named: a bag (a folder with metadata.yaml, or an .mcap / .db3 file) as it is, a folder holding
    bags as each bag in it (name order). ValueError naming a path that is neither."""
    out = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / "metadata.yaml").is_file():
            inner = sorted(q for q in p.iterdir() if (q / "metadata.yaml").is_file())
            if not inner:
                raise ValueError(f"{p}: neither a bag (no metadata.yaml) nor a folder holding bags")
            out += inner
        elif p.exists():
            out.append(p)
        else:
            raise ValueError(f"{p}: no such bag")
    return out


def read_recording(path: Path, resolution: int) -> ViewSet:
    """A whole recording at the training size (short side `resolution` px), read in parts so that a long bag at
    a camera's own size need not fit in memory at once. BagError where it cannot be read."""
    from ..io.bag import bag_size, memory_needed, read_bag

    size = bag_size(path)
    parts = max(1, math.ceil(memory_needed(size) / 2 / PART_BYTES))  # (memory_needed counts a resized copy too)
    span = size["seconds"] / parts
    chunks = []
    for k in range(parts):
        try:
            views = read_bag(path, start_s=k * span, duration_s=span if k < parts - 1 else None)
        except ValueError as e:
            if "no image" in str(e).lower() and k:  # a last part past the final image
                continue
            raise
        chunks.append(views.resized(*short_side_size(views.height, views.width, resolution)))
    if len(chunks) == 1:
        return chunks[0]
    views = ViewSet.cat(chunks)
    # an image stamped on the edge between two parts is read with both: keep one
    first = {}
    for i, key in enumerate(zip(views.stamps_ns.tolist(), views.camera_ids.tolist())):
        first.setdefault(key, i)
    return views if len(first) == len(views) else views.select(torch.tensor(sorted(first.values())))


class RecordedScenes:
    """Training and validation windows of recorded bags (see module docstring).

    bags: contract bags (folders of bags expanded); val_bags: recordings kept for validation (None: the last
    VAL_SHARE of each of `bags`); frames: a window's length in frames; resolution: the short side in pixels.
    """

    def __init__(self, bags: list[str | Path], val_bags: list[str | Path] | None, frames: int, resolution: int,
                 log=print):
        self.frames = frames
        self.train: list[ViewSet] = []
        self.val: list[ViewSet] = []
        self.names: list[str] = []
        val_paths = expand_bags(val_bags) if val_bags else []
        for path in expand_bags(bags):
            views = read_recording(path, resolution)
            n_frames = len(views) // max(1, len(views.camera_names))
            if not val_paths:
                held = max(frames, round(VAL_SHARE * n_frames))
                if n_frames < frames + held:
                    raise ValueError(f"{path}: {n_frames} frames cannot give a training window and a validation "
                                     f"window of {frames} frames (--frames): pass --val-bags, a longer recording "
                                     "or fewer --frames")
                cut = _frame_cut(views, n_frames - held)
                self.val += self._windows(views.select(~cut), frames)
                views = views.select(cut)
            wins = self._windows(views, max(1, frames // 2))
            self.train += wins
            self.names += [path.name] * len(wins)
            log(f"{path}: {len(views)} views of {len(views.camera_names)} cameras, {len(wins)} training windows")
        for path in val_paths:
            self.val += self._windows(read_recording(path, resolution), frames)
        if not self.train:
            raise ValueError("the bags give no training window")
        if not self.val:
            raise ValueError("the validation bags give no window")
        for w in self.train + self.val:
            if len(w.camera_names) < 2:
                raise ValueError(f"a recording of {w.camera_names} has one camera: training holds a camera out as "
                                 "the target, so it needs two or more")

    def _windows(self, views: ViewSet, stride: int) -> list[ViewSet]:
        wins = [views.select(w.views) for w in make_windows(views, Span(self.frames, "frames"), Span(stride, "frames"))]
        full = [w for w in wins if len(w) == self.frames * len(views.camera_names)]
        return full or wins[-1:]  # a recording shorter than a window is one window

    @property
    def max_views(self) -> int:
        """Views in the smallest training window."""
        return min(len(w) for w in self.train)

    def sample(self, seed: int, num_inputs: int, num_targets: int, split: str = "train") -> dict:
        """One item (as the procedural SceneSampler's, with "measured": True): a window of `split` drawn by `seed`
        and its inputs and targets (module docstring). A draw that leaves no target (one frame of unsynchronised
        cameras: no held-out view stamped within the inputs') is drawn again."""
        g = torch.Generator().manual_seed(int(seed) * 2 + 1)
        windows = self.train if split == "train" else self.val
        for _ in range(DRAWS):
            w = int(torch.randint(len(windows), (1,), generator=g))
            inputs, targets = _draw(windows[w], g, num_inputs, num_targets)
            if len(targets):
                views = windows[w]
                return {"inputs": views.select(inputs), "targets": views.select(targets), "seed": int(seed),
                        "scene": self.names[w] if split == "train" else "val", "draw": "recorded",
                        "measured": True}
        raise ValueError(f"{DRAWS} draws of scene {seed} left no target view within the inputs' time span: are the "
                         "recordings' cameras far from synchronised?")



def _draw(views: ViewSet, g: torch.Generator, num_inputs: int, num_targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) indices into one window's views, each in time order (module docstring)."""
    cams = views.camera_ids.unique()
    n_in = int(torch.randint(1, len(cams), (1,), generator=g))  # input cameras: one to all but one
    in_cams = cams[torch.randperm(len(cams), generator=g)[:n_in]]
    frame = frame_indices(views)
    T = int(frame.max()) + 1
    length = int(torch.randint(min(max(1, math.ceil(num_inputs / n_in)), T), T + 1, (1,), generator=g))
    first = int(torch.randint(0, T - length + 1, (1,), generator=g))
    in_span = (frame >= first) & (frame < first + length)
    pool = torch.nonzero(in_span & torch.isin(views.camera_ids, in_cams)).squeeze(1)
    chosen = select_views([(int(views.stamps_ns[i]), int(views.camera_ids[i])) for i in pool], num_inputs,
                          "uniform")
    inputs = pool[torch.tensor(chosen, dtype=torch.int64)]
    stamps = views.stamps_ns
    free = in_span & (stamps >= stamps[inputs].min()) & (stamps <= stamps[inputs].max())
    free[inputs] = False
    candidates = torch.nonzero(free).squeeze(1)
    targets = candidates[torch.randperm(len(candidates), generator=g)[:num_targets]]
    return (inputs[torch.argsort(stamps[inputs], stable=True)], targets[torch.argsort(stamps[targets], stable=True)])


def _frame_cut(views: ViewSet, n: int) -> torch.Tensor:
    """(V,) bool: the views among each camera's first n frames."""
    return frame_indices(views) < n
