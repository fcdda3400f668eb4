"""Training/validation sampler over procedural scenes (an IterableDataset).

Per scene (one seed) the rig has T frames × C cameras; N input views are drawn stratified in time (one per
time bin, random camera, no repeats) and M supervision views uniformly from all T×C without repeats; inputs and
targets may overlap (as in 4D-LRM training). Only the drawn views are rendered.

Each item is a dict {"inputs": ViewSet (N views, time order), "targets": ViewSet (M views, time order),
"seed": int}. ViewSets do not collate by default: use `DataLoader(ds, batch_size=B, collate_fn=collate_list)`
(a list of items) or `batch_size=None` (single items).

Seeds: training scenes use seeds in [0, VAL_SEED_START), validation scenes seeds ≥ VAL_SEED_START, so the two
never share a scene. With DataLoader workers, worker w of W takes every W-th seed starting at first_seed + w.
"""
from __future__ import annotations

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .generator import SceneConfig, all_views, sample_scene
from .raycast import render_views

VAL_SEED_START = 1_000_000
SPLITS = ("train", "val")


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


def collate_list(batch: list) -> list:
    """DataLoader collate_fn keeping items as they are (ViewSets of different scenes are not stacked)."""
    return list(batch)


class SceneSampler(IterableDataset):
    """Yields {"inputs", "targets", "seed"} per procedural scene (see module docstring).

    config: scene/rig/resolution settings (frames = T, cameras = C, height × width); num_inputs N; num_targets M;
    split "train" (infinite, seeds cycle in [first_seed, VAL_SEED_START)) or "val" (num_scenes scenes from
    VAL_SEED_START + first_seed); device where the views are rendered.
    """

    def __init__(self, config: SceneConfig | None = None, num_inputs: int = 12, num_targets: int = 24,
                 split: str = "train", num_scenes: int | None = None, first_seed: int = 0,
                 device: str | torch.device = "cpu"):
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.config = config or SceneConfig()
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
        scene = sample_scene(seed, self.config)
        T, C = scene.stamps_ns.shape
        # The view draw uses its own stream so the scene stays the same whatever N and M are.
        g = torch.Generator().manual_seed(int(seed) * 2 + 1)
        inp, tgt = pick_views(g, T, C, self.num_inputs, self.num_targets)
        union = sorted(set(inp) | set(tgt))
        cams, stamps = all_views(scene)
        inp, tgt = (sorted(x, key=lambda v: int(stamps[v])) for x in (inp, tgt))
        views = render_views(scene, cams[union], stamps[union], self.config.height, self.config.width,
                             device=self.device, supersample=self.config.supersample)
        where = {v: i for i, v in enumerate(union)}
        return {"inputs": views.select([where[v] for v in inp]), "targets": views.select([where[v] for v in tgt]),
                "seed": int(seed)}

    def __iter__(self):
        for seed in self.seeds():
            yield self.sample(seed)
