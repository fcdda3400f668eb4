"""Training/validation sampler over procedural scenes (an IterableDataset).

Per scene (one seed) the rig has T frames × C cameras (view k·C + c: camera c at frame k). Inputs are drawn by
one of INPUT_DRAWS, chosen per scene with the sampler's (or its mix entry's) weights:

- "time_bins": N inputs stratified in time (one per time bin, random camera, no repeats); M targets uniformly
  from all T×C (inputs and targets may overlap, as in 4D-LRM training). The original draw.
- "rig": the rig protocol's inputs (docs/design.md §5, with N for its 12): the even-indexed cameras at frames
  0, s, 2s, … with s = ⌈T·⌈C/2⌉/N⌉ (at most N views: a surplus drops the last frame's highest cameras).
- "uniform", "latest": the node's draw from a buffered stream: a window of the last w frames up to frame e
  (w and e random, the window holding at least N views) and `lrm4d_ros.selection.select_views` with that
  policy, as the node's SpaceTimeWindow picks its inputs.
With the last three, targets are views within the inputs' frame span that are not inputs (other cameras and
times), plus round(self_fraction·M) of the inputs themselves; the span's views are used up before others.
Only the drawn views are rendered.

Each item is a dict {"inputs": ViewSet (N views, time order), "targets": ViewSet (M views, time order),
"seed": int, "scene": the mix entry's name, "draw": the input draw}. ViewSets do not collate by default: use
`DataLoader(ds, batch_size=B, collate_fn=collate_list)` (a list of items) or `batch_size=None` (single items).

A `SceneMix` holds weighted (SceneConfig, draw weights) entries; `robot_mix` is the training mix of robot-like
and object-centric scenes.

Seeds: training scenes use seeds in [0, VAL_SEED_START), validation scenes seeds ≥ VAL_SEED_START, so the two
never share a scene. With DataLoader workers, worker w of W takes every W-th seed starting at first_seed + w.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..selection import select_views
from .generator import SceneConfig, all_views, robot_config, sample_scene
from .raycast import render_views

VAL_SEED_START = 1_000_000
SPLITS = ("train", "val")
INPUT_DRAWS = ("time_bins", "rig", "uniform", "latest")


def pick_views(g: torch.Generator, T: int, C: int, num_inputs: int, num_targets: int) -> tuple[list, list]:
    """Frame-major flat view indices (k·C + c): N inputs stratified over time and M uniform targets."""
    if num_inputs > T * C or num_targets > T * C or num_inputs < 1 or num_targets < 0:
        raise ValueError(f"need 1 <= num_inputs, 0 <= num_targets, both <= T*C = {T * C}; "
                         f"got {num_inputs}, {num_targets}")
    chosen: set[int] = set()
    for i in range(num_inputs):
        # Time bin i of N; when a bin's frames are all taken, fall back to any free view.
        lo, hi = (i * T) // num_inputs, max((i + 1) * T // num_inputs, (i * T) // num_inputs + 1)
        free = [k * C + c for k in range(lo, min(hi, T)) for c in range(C) if k * C + c not in chosen]
        if not free:
            free = [v for v in range(T * C) if v not in chosen]
        chosen.add(free[int(torch.randint(len(free), (1,), generator=g))])
    targets = torch.randperm(T * C, generator=g)[:num_targets].tolist()
    return sorted(chosen), sorted(targets)


def rig_inputs(T: int, C: int, num_inputs: int) -> list[int]:
    """Frame-major view indices of the rig protocol's inputs with N = num_inputs (see module docstring)."""
    if T < 1 or C < 1 or num_inputs < 1:
        raise ValueError(f"need T, C, num_inputs >= 1, got {T}, {C}, {num_inputs}")
    even = (C + 1) // 2
    step = math.ceil(T * even / num_inputs)
    return [k * C + c for k in range(0, T, step) for c in range(0, C, 2)][:num_inputs]


def stream_window(g: torch.Generator, T: int, C: int, num_inputs: int) -> tuple[int, int]:
    """(first, last) frames of a simulated node buffer holding at least num_inputs views: w >= ⌈N/C⌉ frames and
    the last frame e >= w − 1, both uniform."""
    if num_inputs > T * C:
        raise ValueError(f"num_inputs {num_inputs} > T*C = {T * C}")
    w = int(torch.randint(max(math.ceil(num_inputs / C), 1), T + 1, (1,), generator=g))
    last = int(torch.randint(w - 1, T, (1,), generator=g))
    return last - w + 1, last


def stream_inputs(stamps_ns: torch.Tensor, first: int, last: int, num_inputs: int, policy: str) -> list[int]:
    """Frame-major view indices the node hands the model from a buffer of frames first..last of every camera:
    `select_views(…, num_inputs, policy)` over those views. stamps_ns (T,C) int64."""
    T, C = stamps_ns.shape
    views = [k * C + c for k in range(first, last + 1) for c in range(C)]
    flat = stamps_ns.reshape(-1).tolist()
    chosen = select_views([(flat[v], v % C) for v in views], num_inputs, policy)
    return sorted(views[i] for i in chosen)


def span_targets(g: torch.Generator, T: int, C: int, inputs: list[int], num_targets: int,
                 self_fraction: float) -> list[int]:
    """M target view indices: round(self_fraction·M) inputs, the rest views of the inputs' frame span that are
    not inputs (then any other views when the span runs out)."""
    if num_targets > T * C:
        raise ValueError(f"num_targets {num_targets} > T*C = {T * C}")
    inp = set(inputs)
    lo, hi = min(inputs) // C, max(inputs) // C
    n_self = min(round(self_fraction * num_targets), len(inputs))

    def draw(pool: list[int], n: int) -> list[int]:
        return [pool[i] for i in torch.randperm(len(pool), generator=g)[:n].tolist()]

    chosen = draw(sorted(inp), n_self)
    span = [v for v in range(lo * C, (hi + 1) * C) if v not in inp]
    chosen += draw(span, num_targets - len(chosen))
    if len(chosen) < num_targets:
        taken = set(chosen)
        chosen += draw([v for v in range(T * C) if v not in taken], num_targets - len(chosen))
    return sorted(chosen)


@dataclass(frozen=True)
class MixEntry:
    """One kind of scene in a mix: its name, relative weight, SceneConfig and input draws {draw: weight}."""

    name: str
    weight: float
    config: SceneConfig
    draws: dict = field(default_factory=lambda: {"time_bins": 1.0})

    def __post_init__(self):
        if not self.weight > 0:
            raise ValueError(f"mix entry {self.name!r}: weight must be > 0, got {self.weight}")
        _check_draws(self.draws)


def _check_draws(draws: dict) -> None:
    bad = [d for d in draws if d not in INPUT_DRAWS]
    if not draws or bad or any(not w > 0 for w in draws.values()):
        raise ValueError(f"draws must map some of {INPUT_DRAWS} to weights > 0, got {draws}")


def _weighted(tag: str, seed: int, weights: list[float]) -> int:
    """An index drawn with `weights` from a stream of its own per (tag, seed): independent of the scene's
    torch streams (string seeds are hashed with SHA-512, the same on every run)."""
    return random.Random(f"{tag}:{int(seed)}").choices(range(len(weights)), weights)[0]


@dataclass(frozen=True)
class SceneMix:
    """Weighted scene kinds for `SceneSampler`; all entries render T frames × C cameras at one size."""

    entries: tuple[MixEntry, ...]

    def __post_init__(self):
        if not self.entries:
            raise ValueError("a SceneMix needs at least one entry")
        sizes = {(e.config.frames, e.config.cameras, e.config.height, e.config.width) for e in self.entries}
        if len(sizes) != 1:
            raise ValueError(f"mix entries must share frames, cameras, height and width, got {sorted(sizes)}")

    def pick(self, seed: int) -> MixEntry:
        """The entry of scene `seed` (its own stream: the same seed, the same entry)."""
        if len(self.entries) == 1:
            return self.entries[0]
        return self.entries[_weighted("mix", seed, [e.weight for e in self.entries])]


ROBOT_DRAWS = {"rig": 0.3, "uniform": 0.25, "latest": 0.2, "time_bins": 0.25}
OBJECT_DRAWS = {"time_bins": 0.6, "uniform": 0.2, "rig": 0.2}


def robot_mix(frames: int = 12, cameras: int = 6, height: int = 128, width: int = 128, supersample: int = 1,
              caster: str = "numba", background: tuple[float, float, float] | None = None) -> SceneMix:
    """The training mix of robot-like and object-centric scenes (all with the fast caster by default):

    | entry          | weight | scenes                                                     | rigs                     |
    |----------------|--------|------------------------------------------------------------|--------------------------|
    | tabletop       | 0.25   | table, arm, 1–5 objects, 0–3 walls, floor to the horizon   | poles ×2, head, orbit, shell |
    | workcell       | 0.20   | 1–2 arms on floor/pedestals, objects, 0–3 walls            | poles ×2, head, orbit, workcell |
    | mobile         | 0.20   | 1–2 driving mobile bases (arm on one half the time)        | head ×2, poles, orbit    |
    | objects        | 0.25   | the original object-centric scenes (no ground)             | orbit, canonical, shell, moving |
    | objects_floor  | 0.10   | object-centric scenes on a ground plane, backdrop 30 %     | poles, workcell, orbit   |

    Robot entries are `robot_config`s (synchronized cameras with ±2 % stamp jitter, 40–75° FoV, backdrop 30 %)
    drawing ROBOT_DRAWS; object entries keep their unsynchronized rigs and draw OBJECT_DRAWS. Robot scenes are
    65 %. background: None for a random colour per scene (what the sky and the object scenes' backdrop show).
    """
    base = dict(frames=frames, cameras=cameras, height=height, width=width, supersample=supersample,
                caster=caster, background=background)
    return SceneMix((
        MixEntry("tabletop", 0.25, robot_config(("tabletop",), ("poles", "poles", "head", "orbit", "shell"), **base),
                 ROBOT_DRAWS),
        MixEntry("workcell", 0.20, robot_config(("workcell",), ("poles", "poles", "head", "orbit", "workcell"), **base),
                 ROBOT_DRAWS),
        MixEntry("mobile", 0.20, robot_config(("mobile",), ("head", "head", "poles", "orbit"), **base), ROBOT_DRAWS),
        MixEntry("objects", 0.25, SceneConfig(rig_kinds=("orbit", "canonical", "shell", "moving"), ground_prob=0.0,
                                              backdrop_prob=0.0, **base), OBJECT_DRAWS),
        MixEntry("objects_floor", 0.10, SceneConfig(rig_kinds=("poles", "workcell", "orbit"), ground_prob=1.0,
                                                    backdrop_prob=0.3, **base), OBJECT_DRAWS),
    ))


def collate_list(batch: list) -> list:
    """DataLoader collate_fn keeping items as they are (ViewSets of different scenes are not stacked)."""
    return list(batch)


class SceneSampler(IterableDataset):
    """Yields {"inputs", "targets", "seed", "scene", "draw"} per procedural scene (see module docstring).

    config: a SceneConfig (scene/rig/resolution settings: frames = T, cameras = C, height × width) or a SceneMix;
    num_inputs N; num_targets M; split "train" (infinite, seeds cycle in [first_seed, VAL_SEED_START)) or "val"
    (num_scenes scenes from VAL_SEED_START + first_seed); device where the views are rendered. draws: input draw
    weights {draw: weight} for a plain SceneConfig (default {"time_bins": 1}; a SceneMix's entries carry their
    own); self_fraction: the share of targets that re-render inputs in the non-"time_bins" draws.
    """

    def __init__(self, config: SceneConfig | SceneMix | None = None, num_inputs: int = 12, num_targets: int = 24,
                 split: str = "train", num_scenes: int | None = None, first_seed: int = 0,
                 device: str | torch.device = "cpu", draws: dict | None = None, self_fraction: float = 0.25):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if isinstance(config, SceneMix):
            if draws is not None:
                raise ValueError("draws come with each SceneMix entry; pass draws only with a SceneConfig")
            self.mix = config
        else:
            self.mix = SceneMix((MixEntry("scenes", 1.0, config or SceneConfig(), draws or {"time_bins": 1.0}),))
        if not 0.0 <= self_fraction <= 1.0:
            raise ValueError(f"self_fraction must be in [0, 1], got {self_fraction}")
        self.config = self.mix.entries[0].config
        self.self_fraction = self_fraction
        T, C = self.config.frames, self.config.cameras
        pick_views(torch.Generator(), T, C, num_inputs, num_targets)  # validate sizes now, not in a worker
        if split == "train" and not 0 <= first_seed < VAL_SEED_START:
            raise ValueError(f"training first_seed must be in [0, {VAL_SEED_START}), got {first_seed}")
        self.num_inputs, self.num_targets = num_inputs, num_targets
        self.split = split
        self.num_scenes = num_scenes if num_scenes is not None else (None if split == "train" else 64)
        self.first_seed = first_seed
        self.device = device

    def seeds(self):
        """This worker's seeds, in order."""
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        base = VAL_SEED_START if self.split == "val" else 0
        i = wid
        while self.num_scenes is None or i < self.num_scenes:
            s = self.first_seed + i
            yield base + (s % VAL_SEED_START if self.split == "train" else s)
            i += nw

    def sample(self, seed: int) -> dict:
        entry = self.mix.pick(seed)
        cfg = entry.config
        scene = sample_scene(seed, cfg)
        T, C = scene.stamps_ns.shape
        names = list(entry.draws)
        draw = names[0] if len(names) == 1 else names[_weighted("draw", seed, list(entry.draws.values()))]
        # The view draw uses its own stream so the scene stays the same whatever N and M are.
        g = torch.Generator().manual_seed(int(seed) * 2 + 1)
        if draw == "time_bins":
            inp, tgt = pick_views(g, T, C, self.num_inputs, self.num_targets)
        else:
            inp = rig_inputs(T, C, self.num_inputs) if draw == "rig" else \
                stream_inputs(scene.stamps_ns, *stream_window(g, T, C, self.num_inputs), self.num_inputs, draw)
            tgt = span_targets(g, T, C, inp, self.num_targets, self.self_fraction)
        union = sorted(set(inp) | set(tgt))
        cams, stamps = all_views(scene)
        inp, tgt = (sorted(x, key=lambda v: int(stamps[v])) for x in (inp, tgt))
        views = render_views(scene, cams[union], stamps[union], cfg.height, cfg.width, device=self.device,
                             supersample=cfg.supersample, caster=cfg.caster)
        where = {v: i for i, v in enumerate(union)}
        return {"inputs": views.select([where[v] for v in inp]), "targets": views.select([where[v] for v in tgt]),
                "seed": int(seed), "scene": entry.name, "draw": draw}

    def __iter__(self):
        for seed in self.seeds():
            yield self.sample(seed)
