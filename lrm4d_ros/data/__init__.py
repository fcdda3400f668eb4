"""Procedural 4D scenes (primitives, textures, motion, rigs, analytic ray casting), the training sampler and
the evaluation-protocol view selection."""
from .generator import SceneConfig, Scene, all_views, generate, sample_scene
from .protocols import PROTOCOLS, protocol_indices, split_protocol
from .raycast import render_views
from .sampler import VAL_SEED_START, SceneSampler, collate_list

__all__ = ["SceneConfig", "Scene", "all_views", "generate", "sample_scene", "render_views", "SceneSampler",
           "collate_list", "VAL_SEED_START", "PROTOCOLS", "protocol_indices", "split_protocol"]
