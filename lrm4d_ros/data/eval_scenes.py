"""The recipes of the evaluation scenes, and of scenes drawn the same way for validation.

EVAL_SCENES (the model card's): rigs cycle orbit/canonical/shell/moving and motions rigid/articulated/scaling;
12 frames × 8 cameras at 128² (3×3 supersampled), 2–6 primitives, no ground plane or backdrop, white background:
what `lrm4d make-bag --seed S --rig R --motion M --ground 0 --backdrop 0` writes.

ROBOT_EVAL_SCENES (procedural robot scenes for the rig protocol): layouts cycle tabletop/workcell/mobile and rigs
poles/head/poles/orbit; 12 frames × 6 synchronized cameras (±2 % stamp jitter) at 128² (3×3 supersampled),
`robot_config` otherwise, white sky, rendered by the fast caster. benchmarks/eval_scenes.py --robot writes
them as bags.

All seeds are ≥ VAL_SEED_START, so no training scene is among them; the validation recipes use their own seeds,
apart from the evaluations' and from the sampler's random validation scenes (VAL_SEED_START + 0, 1, ...).
"""
from __future__ import annotations

from ..views import ViewSet
from .generator import SceneConfig, generate, robot_config
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


ROBOT_LAYOUT_CYCLE = ("tabletop", "workcell", "mobile")
ROBOT_RIG_CYCLE = ("poles", "head", "poles", "orbit")
ROBOT_FRAMES, ROBOT_CAMERAS = 12, 6
ROBOT_EVAL_FIRST_SEED = VAL_SEED_START + 2000
ROBOT_PROTOCOL_VAL_FIRST_SEED = VAL_SEED_START + 2100


def robot_recipe(first_seed: int, count: int) -> list[tuple[int, str, str]]:
    """(seed, layout, rig) of `count` robot scenes from `first_seed`, layouts and rigs in turn."""
    return [(first_seed + i, ROBOT_LAYOUT_CYCLE[i % len(ROBOT_LAYOUT_CYCLE)], ROBOT_RIG_CYCLE[i % len(ROBOT_RIG_CYCLE)])
            for i in range(count)]


ROBOT_EVAL_SCENES = robot_recipe(ROBOT_EVAL_FIRST_SEED, 8)


def robot_scene_config(layout: str, rig: str, resolution: int = RESOLUTION, supersample: int = 3,
                       caster: str = "numba") -> SceneConfig:
    """The SceneConfig of the robot evaluation scenes (see module docstring)."""
    return robot_config((layout,), (rig,), frames=ROBOT_FRAMES, cameras=ROBOT_CAMERAS, height=resolution,
                        width=resolution, supersample=supersample, background=(1.0, 1.0, 1.0), caster=caster)


def render_robot_scenes(scenes: list[tuple[int, str, str]], resolution: int = RESOLUTION,
                        supersample: int = 3) -> list[ViewSet]:
    """Each robot scene's full T×C ViewSet (frame-major), with exact depths and alphas."""
    return [generate(seed, robot_scene_config(layout, rig, resolution, supersample)) for seed, layout, rig in scenes]


def moving_head_rig() -> ViewSet:
    """Validation scene 1002141 (never trained on, apart from the evaluation bags): a head rig of 6 depth cameras moving
    through a workcell, 12 frames at 128², point-sampled, with the depth sensor's measurements: what the rig's readings
    (stamp offsets, focal lengths; rig_reading.py) are tested and timed on."""
    from .depth_sensor import with_depth

    seed, layout, rig = robot_recipe(ROBOT_PROTOCOL_VAL_FIRST_SEED + 40, 2)[1]
    assert rig == "head"
    return with_depth(generate(seed, robot_scene_config(layout, rig, supersample=1)), "sensor", seed=seed)
