"""The recipe of the model card's evaluation scenes, and of scenes drawn the same way for validation.

Rigs cycle orbit/canonical/shell/moving and motions rigid/articulated/scaling; 12 frames × 8 cameras at 128²
(3×3 supersampled), 2–6 primitives, no ground plane or backdrop, white background: what
`lrm4d make-bag --seed S --rig R --motion M --ground 0 --backdrop 0` writes. All seeds are ≥ VAL_SEED_START, so
no training scene is among them; training's protocol validation uses its own seeds, apart from the evaluation's.
"""
from __future__ import annotations

from ..views import ViewSet
from .generator import SceneConfig, generate
from .sampler import VAL_SEED_START

RIGS = ("orbit", "canonical", "shell", "moving")
MOTIONS = ("rigid", "articulated", "scaling")
FRAMES, CAMERAS, RESOLUTION = 12, 8, 128
EVAL_FIRST_SEED = VAL_SEED_START + 100
PROTOCOL_VAL_FIRST_SEED = VAL_SEED_START + 300


def recipe(first_seed: int, count: int) -> list[tuple[int, str, str]]:
    """(seed, rig, motion) of `count` scenes from `first_seed`, rigs and motions in turn."""
    return [(first_seed + i, RIGS[i % len(RIGS)], MOTIONS[i % len(MOTIONS)]) for i in range(count)]


EVAL_SCENES = recipe(EVAL_FIRST_SEED, 8)


def scene_config(rig: str, motion: str, resolution: int = RESOLUTION, supersample: int = 3) -> SceneConfig:
    """The SceneConfig `lrm4d make-bag` uses for these scenes (its defaults with --ground 0 --backdrop 0)."""
    return SceneConfig(num_primitives=(2, 6), rig_kinds=(rig,), motion_kinds=(motion,), frames=FRAMES,
                       cameras=CAMERAS, height=resolution, width=resolution, ground_prob=0.0, backdrop_prob=0.0,
                       supersample=supersample)


def render_scenes(scenes: list[tuple[int, str, str]], resolution: int = RESOLUTION,
                  supersample: int = 3) -> list[ViewSet]:
    """Each scene's full T×C ViewSet, rendered by the generator as the bags are."""
    return [generate(seed, scene_config(rig, motion, resolution, supersample)) for seed, rig, motion in scenes]
