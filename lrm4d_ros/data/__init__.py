"""Procedural 4D scenes (primitives, textures, motion, rigs, analytic ray casting; object-centric and robot-like
scenes), the training sampler with its input draws and scene mixes, and the evaluation-protocol view selection."""
from .generator import SCENE_KINDS, SceneConfig, Scene, all_views, generate, robot_config, sample_scene
from .protocols import PROTOCOLS, protocol_indices, split_protocol
from .raycast import CASTERS, render_views
from .sampler import INPUT_DRAWS, VAL_SEED_START, MixEntry, SceneMix, SceneSampler, collate_list, robot_mix

__all__ = ["SceneConfig", "Scene", "all_views", "generate", "sample_scene", "render_views", "SceneSampler",
           "collate_list", "VAL_SEED_START", "PROTOCOLS", "protocol_indices", "split_protocol", "SCENE_KINDS",
           "robot_config", "CASTERS", "INPUT_DRAWS", "MixEntry", "SceneMix", "robot_mix"]
