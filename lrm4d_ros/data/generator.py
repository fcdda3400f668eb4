"""Seeded procedural 4D scenes and their rendering: Zeroverse-style primitives in motion ("objects") and robot-like
scenes in metres ("tabletop", "workcell", "mobile": robot_scenes.py) on a ground plane reaching the horizon.

`sample_scene(seed, config)` draws everything from one `torch.Generator`, so a seed fixes the scene, the rig and
the stamps; `render_views` (raycast.py) renders any camera at any stamp; `generate(seed, config)` renders all
T frames × C cameras. World frame: z up, metres. Object scenes hold their content within ~`content_radius` of the
origin; robot scenes stand on the floor z = 0 with a workspace 1–3 m across.
Rendered views carry z-depths (0 where nothing is hit) and alphas = 1 wherever a ray hits any surface, ground
plane and backdrop included (so alpha is not object-only coverage when those are on).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..views import ViewSet
from .motion import MOTION_KINDS, Motion, axis_angle_to_matrix, random_rotation
from .primitives import KINDS
from .raycast import CASTERS, render_views
from .rigs import ALL_RIG_KINDS, MOUNTED_RIG_KINDS, RIG_KINDS, MountedRig, Rig, eye_positions, sample_mounted_rig, \
    sample_rig
from .robot_scenes import ROBOT_LAYOUTS, add_walls, build_layout, floor_texture
from .textures import TEXTURE_KINDS, Texture, random_texture

STAMP_BASE_NS = 1_700_000_000 * 10**9  # ~Nov 2023 in Unix nanoseconds: stamps are absolute, never near 0
SCENE_KINDS = ("objects",) + ROBOT_LAYOUTS


@dataclass
class SceneConfig:
    """What `sample_scene` draws from. Ranges are inclusive (lo, hi); kinds are drawn uniformly.

    background: RGB in [0,1], or None for a random colour per scene. ground_prob / backdrop_prob: chance of a
    textured ground plane below the content / an inward-facing cylindrical backdrop around the cameras (the
    workcell rig always has a ground). fps_range: nominal frame rate; jitter: per-frame stamp noise as a
    fraction of the frame period; cameras get independent offsets within one period unless synchronized.
    supersample: odd s >= 1, s×s rays per pixel for anti-aliased images and fractional alphas (s² the cost).

    scene_kinds: drawn per scene from SCENE_KINDS. "objects" is the primitives-in-motion scene above; the robot
    layouts "tabletop", "workcell", "mobile" (robot_scenes.py) stand on an infinite textured floor z = 0 in
    metres, use num_primitives as the number of loose objects (of primitive_kinds and texture_kinds), get
    `walls` (lo, hi) walls around the cameras, a far backdrop with backdrop_prob, and ignore motion_kinds,
    content_radius and ground_prob. rig_kinds may name any of ALL_RIG_KINDS: the spherical rigs frame the
    content sphere or the robot workspace; "poles" and "head" are MountedRig kinds (rigs.py).
    caster: "torch" (reference, any device) or "numba" (the fast CPU caster, fastcast.py): what `generate` and
    the sampler render with. The default config draws exactly the scenes it drew before these options existed.
    """

    num_primitives: tuple[int, int] = (1, 9)
    primitive_kinds: tuple[str, ...] = KINDS
    texture_kinds: tuple[str, ...] = TEXTURE_KINDS
    motion_kinds: tuple[str, ...] = MOTION_KINDS
    rig_kinds: tuple[str, ...] = RIG_KINDS
    frames: int = 24
    cameras: int = 8
    fov_deg: tuple[float, float] = (30.0, 60.0)
    height: int = 128
    width: int = 128
    content_radius: float = 0.9
    ground_prob: float = 0.3
    backdrop_prob: float = 0.1
    background: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    fps_range: tuple[float, float] = (10.0, 30.0)
    jitter: float = 0.1
    synchronized: bool = False
    ambient: float = 0.35
    supersample: int = 1
    scene_kinds: tuple[str, ...] = ("objects",)
    walls: tuple[int, int] = (0, 3)
    caster: str = "torch"

    def __post_init__(self):
        lo, hi = self.num_primitives
        if not 1 <= lo <= hi:
            raise ValueError(f"num_primitives must be 1 <= lo <= hi, got {self.num_primitives}")
        for name, allowed in (("primitive_kinds", KINDS), ("texture_kinds", TEXTURE_KINDS),
                              ("motion_kinds", MOTION_KINDS), ("rig_kinds", ALL_RIG_KINDS),
                              ("scene_kinds", SCENE_KINDS)):
            got = tuple(getattr(self, name))
            bad = [k for k in got if k not in allowed]
            if not got or bad:
                raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {got}")
            setattr(self, name, got)
        if self.frames < 1 or self.cameras < 1:
            raise ValueError(f"frames and cameras must be >= 1, got {self.frames}, {self.cameras}")
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ValueError(f"supersample must be an odd integer >= 1, got {self.supersample}")
        if not 0 < self.fov_deg[0] <= self.fov_deg[1] < 180:
            raise ValueError(f"fov_deg must satisfy 0 < lo <= hi < 180, got {self.fov_deg}")
        if not 0 <= self.walls[0] <= self.walls[1] <= 4:
            raise ValueError(f"walls must satisfy 0 <= lo <= hi <= 4, got {self.walls}")
        if self.caster not in CASTERS:
            raise ValueError(f"caster must be one of {CASTERS}, got {self.caster!r}")


ROBOT_CAPTURE = dict(synchronized=True, jitter=0.02, fov_deg=(40.0, 75.0), num_primitives=(1, 5), walls=(0, 3),
                     backdrop_prob=0.3)


def robot_config(layouts: tuple[str, ...], rig_kinds: tuple[str, ...], **overrides) -> SceneConfig:
    """A SceneConfig of robot `layouts` captured as robots do (ROBOT_CAPTURE: synchronized cameras with ±2 % stamp
    jitter, 40–75° FoV, 1–5 loose objects, 0–3 walls, a far backdrop 30 % of the time); `overrides` are any
    other SceneConfig fields (frames, cameras, height, width, supersample, caster, background, ...)."""
    return SceneConfig(scene_kinds=tuple(layouts), rig_kinds=tuple(rig_kinds), **{**ROBOT_CAPTURE, **overrides})


@dataclass
class Scene:
    """A sampled scene: P primitives (kinds, shape params, textures, motion), optional ground/backdrop, a rig,
    and stamps (T,C) int64 ns for frame k of camera c. Window fraction u = (stamp − start_ns) / duration_ns.
    The ground plane z = ground_z ends at backdrop_radius from the z axis unless ground_infinite. roles: what
    each primitive is in a robot scene ("table.top", "arm.link2", "wall", "object", ...), None otherwise."""

    kinds: list[str]
    params: list[float]
    textures: list[Texture]
    motion: Motion
    rig: Rig | MountedRig
    stamps_ns: Tensor
    start_ns: int
    duration_ns: int
    background: Tensor
    light_dir: Tensor
    ambient: float
    ground: Texture | None = None
    ground_z: float = -1.0
    backdrop: Texture | None = None
    backdrop_radius: float = 10.0
    motion_kind: str = "static"
    seed: int = 0
    scene_kind: str = "objects"
    ground_infinite: bool = False
    roles: list[str] | None = None


def _u(g, lo, hi, *shape):
    return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)


def _choice(g, options):
    return options[int(torch.randint(len(options), (1,), generator=g))]


def _shape_param(g, kind: str) -> float:
    if kind == "torus":
        return float(_u(g, 0.2, 0.45, 1))
    if kind == "capsule":
        return float(_u(g, 0.3, 1.2, 1))
    return 0.0


def _fit_scale(kind: str, param: float) -> float:
    """Divide semi-axes by this so the unit shape's long extent matches the drawn size."""
    return {"capsule": 1.0 + param, "torus": 1.0 + param}.get(kind, 1.0)


def _sample_motion(g, P: int, kinds: list[str], params: list[float], kind: str, radius: float) -> Motion:
    z3 = torch.zeros(P, 3, dtype=torch.float64)
    z1 = torch.zeros(P, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(P, 3, 3).clone()
    # Smaller primitives when there are many, so that the content stays ~radius across.
    size_hi = 0.7 * radius / P ** (1 / 3)
    fit = torch.tensor([_fit_scale(k, q) for k, q in zip(kinds, params)], dtype=torch.float64)
    scale0 = _u(g, 0.4 * size_hi, size_hi, P, 3) / fit[:, None]
    centre = torch.nn.functional.normalize(torch.randn(P, 3, generator=g, dtype=torch.float64), dim=-1)
    centre = centre * (radius - size_hi) * _u(g, 0, 1, P, 1) ** (1 / 3)
    m = Motion(parent=[-1] * P, c0=centre, vel=z3.clone(), osc_amp=z3.clone(), osc_freq=z1.clone(),
               osc_phase=z1.clone(), spin_axis=torch.nn.functional.normalize(torch.randn(
                   P, 3, generator=g, dtype=torch.float64), dim=-1), spin=z1.clone(), R0=random_rotation(g, P),
               joint=z3.clone(), offset=z3.clone(), hinge_axis=eye[:, 0].clone(), hinge0=z1.clone(),
               hinge_amp=z1.clone(), hinge_freq=z1.clone(), hinge_phase=z1.clone(), R_shape=eye.clone(),
               scale0=scale0, scale_amp=z3.clone(), scale_freq=z1.clone(), scale_phase=z1.clone())
    if kind == "static":
        return m

    def rigid(sel: Tensor, amount: float):
        n = int(sel.sum())
        m.vel[sel] = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1) \
            * _u(g, 0.1, 0.5, n, 1) * radius * amount
        m.c0[sel] = m.c0[sel] - 0.5 * m.vel[sel]  # centred trajectory: stays in the content ball
        m.osc_amp[sel] = _u(g, -0.15, 0.15, n, 3) * radius * amount
        m.osc_freq[sel] = _u(g, 0.5, 1.5, n)
        m.osc_phase[sel] = _u(g, 0, 2 * math.pi, n)
        m.spin[sel] = _u(g, -math.pi, math.pi, n) * amount

    everyone = torch.ones(P, dtype=torch.bool)
    if kind == "rigid":
        rigid(everyone, 1.0)
    elif kind == "scaling":
        rigid(everyone, 0.3)
        m.scale_amp = _u(g, -0.4, 0.4, P, 3)
        m.scale_freq = _u(g, 0.5, 1.5, P)
        m.scale_phase = _u(g, 0, 2 * math.pi, P)
    elif kind == "articulated":
        L = min(P, int(torch.randint(2, 5, (1,), generator=g)))
        # Links are elongated along their link-frame z; each child hangs from its parent's tip.
        half_len = _u(g, 0.15, 0.3, L) * radius
        width = half_len * _u(g, 0.3, 0.6, L)
        for i in range(L):
            m.scale0[i] = torch.stack([width[i], width[i], half_len[i]]) / fit[i]
            m.R_shape[i] = torch.eye(3, dtype=torch.float64)
            if i == 0:
                m.c0[0] = torch.tensor([0.0, 0.0, -0.3 * radius], dtype=torch.float64)
                m.R0[0] = axis_angle_to_matrix(torch.tensor([1.0, 0, 0], dtype=torch.float64),
                                               _u(g, -0.4, 0.4, 1)[0])
                continue
            m.parent[i] = i - 1
            m.joint[i] = torch.tensor([0.0, 0.0, float(half_len[i - 1])], dtype=torch.float64)
            m.offset[i] = torch.tensor([0.0, 0.0, float(half_len[i])], dtype=torch.float64)
            axis = torch.zeros(3, dtype=torch.float64)
            axis[int(torch.randint(2, (1,), generator=g))] = 1.0
            m.hinge_axis[i] = axis
            m.hinge0[i] = _u(g, -0.6, 0.6, 1)[0]
            m.hinge_amp[i] = _u(g, 0.3, 1.0, 1)[0]
            m.hinge_freq[i] = _u(g, 0.5, 1.5, 1)[0]
            m.hinge_phase[i] = _u(g, 0, 2 * math.pi, 1)[0]
        m.spin[0] = _u(g, -1.0, 1.0, 1)[0]
        m.spin_axis[0] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        rest = torch.arange(P) >= L
        if rest.any():
            rigid(rest, 0.6)
    else:
        raise ValueError(f"unknown motion kind {kind!r}; expected one of {MOTION_KINDS}")
    return m


def _sample_stamps(g, cfg: SceneConfig, C: int) -> tuple[Tensor, int, int]:
    """Stamps (T,C) int64 ns, the window start and its nominal duration (first to last frame)."""
    T = cfg.frames
    fps = float(_u(g, cfg.fps_range[0], cfg.fps_range[1], 1))
    period_ns = int(1e9 / fps)
    start = STAMP_BASE_NS + int(torch.randint(0, 10**15, (1,), generator=g)) * 10  # ~4 months of spread
    offset = torch.zeros(C, dtype=torch.float64) if cfg.synchronized else _u(g, 0, 0.5, C)
    jitter = (torch.rand(T, C, generator=g, dtype=torch.float64) - 0.5) * 2 * cfg.jitter
    frac = torch.arange(T, dtype=torch.float64)[:, None] + offset[None, :] + jitter
    stamps = start + torch.round(frac * period_ns).to(torch.int64)
    return stamps, start, max(period_ns * (T - 1), period_ns)


def sample_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """Draw a scene, rig and stamps from `seed` (deterministic across runs and devices)."""
    cfg = config or SceneConfig()
    g = torch.Generator().manual_seed(int(seed))
    if cfg.scene_kinds != ("objects",):  # a lone "objects" draws nothing here, as before scene kinds existed
        kind = _choice(g, cfg.scene_kinds)
        if kind != "objects":
            return _sample_robot_scene(g, cfg, kind, int(seed))
    return _sample_object_scene(g, cfg, int(seed))


def _light(g) -> Tensor:
    return torch.nn.functional.normalize(torch.tensor([_u(g, -0.5, 0.5, 1)[0], _u(g, -0.5, 0.5, 1)[0], 1.0]),
                                         dim=0).float()


def _background(g, cfg: SceneConfig) -> Tensor:
    return torch.tensor(cfg.background, dtype=torch.float32) if cfg.background is not None else \
        torch.rand(3, generator=g).float()


def _sample_object_scene(g, cfg: SceneConfig, seed: int) -> Scene:
    P = int(torch.randint(cfg.num_primitives[0], cfg.num_primitives[1] + 1, (1,), generator=g))
    motion_kind = _choice(g, cfg.motion_kinds)
    kinds = [_choice(g, cfg.primitive_kinds) for _ in range(P)]
    if motion_kind == "articulated":
        # Links read best as elongated solids.
        link_kinds = [k for k in ("box", "cylinder", "capsule") if k in cfg.primitive_kinds] or list(kinds)
        kinds = [_choice(g, link_kinds) if i < 4 else k for i, k in enumerate(kinds)]
    params = [_shape_param(g, k) for k in kinds]
    textures = [random_texture(g, cfg.texture_kinds) for _ in range(P)]
    motion = _sample_motion(g, P, kinds, params, motion_kind, cfg.content_radius)
    rig_kind = _choice(g, cfg.rig_kinds)
    has_ground = rig_kind == "workcell" or float(_u(g, 0, 1, 1)) < cfg.ground_prob
    has_backdrop = float(_u(g, 0, 1, 1)) < cfg.backdrop_prob
    ground_z = -cfg.content_radius * 1.1
    if rig_kind in MOUNTED_RIG_KINDS:
        rig = sample_mounted_rig(g, rig_kind, cfg.cameras, cfg.fov_deg, (0.0, 0.0, 0.0), cfg.content_radius,
                                 floor_z=ground_z)
        cam_reach = float(eye_positions(rig).norm(dim=-1).max())
    else:
        rig = sample_rig(g, rig_kind, cfg.cameras, cfg.fov_deg, cfg.content_radius,
                         min_elevation_deg=5.0 if has_ground else -10.0)
        cam_reach = float((rig.distance + rig.targets.norm(dim=-1)).max())
    stamps, start, duration = _sample_stamps(g, cfg, cfg.cameras)
    bg = _background(g, cfg)
    light = _light(g)
    ground = random_texture(g, ("checkers", "noise")) if has_ground else None
    backdrop = random_texture(g, ("stripes", "noise", "solid")) if has_backdrop else None
    return Scene(kinds=kinds, params=params, textures=textures, motion=motion, rig=rig, stamps_ns=stamps,
                 start_ns=start, duration_ns=duration, background=bg, light_dir=light, ambient=cfg.ambient,
                 ground=ground, ground_z=ground_z, backdrop=backdrop,
                 backdrop_radius=cam_reach + 1.0, motion_kind=motion_kind, seed=seed)


def _sample_robot_scene(g, cfg: SceneConfig, layout: str, seed: int) -> Scene:
    """A robot layout on the floor z = 0 (see SceneConfig), its rig framing the layout's workspace, walls around
    the cameras."""
    num_objects = int(torch.randint(cfg.num_primitives[0], cfg.num_primitives[1] + 1, (1,), generator=g))
    lay = build_layout(g, layout, cfg.primitive_kinds, cfg.texture_kinds, num_objects)
    centre = torch.tensor(lay.centre, dtype=torch.float64)
    rig_kind = _choice(g, cfg.rig_kinds)
    if rig_kind in MOUNTED_RIG_KINDS:
        rig = sample_mounted_rig(g, rig_kind, cfg.cameras, cfg.fov_deg, lay.centre, lay.radius, floor_z=0.0)
    else:
        rig = sample_rig(g, rig_kind, cfg.cameras, cfg.fov_deg, lay.radius, min_elevation_deg=10.0)
        rig.targets = rig.targets + centre
    eyes = eye_positions(rig)
    clearance = float((eyes[..., :2] - centre[:2]).norm(dim=-1).max())
    walls = int(torch.randint(cfg.walls[0], cfg.walls[1] + 1, (1,), generator=g))
    room = add_walls(lay.parts, g, lay.centre, clearance, walls)
    stamps, start, duration = _sample_stamps(g, cfg, cfg.cameras)
    bg = _background(g, cfg)
    light = _light(g)
    ground = floor_texture(g)
    backdrop = random_texture(g, ("stripes", "noise", "solid")) if float(_u(g, 0, 1, 1)) < cfg.backdrop_prob \
        else None
    parts = lay.parts
    return Scene(kinds=parts.kinds, params=parts.params, textures=parts.textures, motion=parts.motion(), rig=rig,
                 stamps_ns=stamps, start_ns=start, duration_ns=duration, background=bg, light_dir=light,
                 ambient=cfg.ambient, ground=ground, ground_z=0.0, backdrop=backdrop,
                 backdrop_radius=math.sqrt(2) * room + float(centre[:2].norm()) + 1.0, motion_kind="robot",
                 seed=seed, scene_kind=layout, ground_infinite=True, roles=parts.roles)


def all_views(scene: Scene) -> tuple[Tensor, Tensor]:
    """(camera_ids, stamps_ns), each (T·C,), frame-major: view k·C + c is camera c at frame k."""
    T, C = scene.stamps_ns.shape
    return torch.arange(C).repeat(T), scene.stamps_ns.reshape(-1)


def generate(seed: int, config: SceneConfig | None = None, device: str | torch.device = "cpu") -> ViewSet:
    """All T×C views of scene `seed` at the config's resolution, frame-major (see `all_views`)."""
    cfg = config or SceneConfig()
    scene = sample_scene(seed, cfg)
    cams, stamps = all_views(scene)
    return render_views(scene, cams, stamps, cfg.height, cfg.width, device=device, supersample=cfg.supersample,
                        caster=cfg.caster)
