"""Real third-party robot scenes: dm_control / MuJoCo models simulated and rendered into a `ViewSet`.

The models (humanoid, quadruped, dog, Kinova Jaco arm, ...) are Apache-2.0 assets nobody on this project wrote,
which makes them honest evaluation data. Each scene is simulated with smooth random actuation; C free cameras
from a `data.rigs` rig (a ring around the robot or a workcell) film it. Every view is rendered at its own capture
time (frame period plus per-camera jitter, snapped to the physics step), so stamps and images agree exactly.

Conventions (fitted numerically, see shared/notes/third-party-renderers.md and test/test_mujoco_scenes.py):
K = fov_to_K(fovy, W, H), i.e. f = (H/2)/tan(fovy/2), c = ((W-1)/2, (H-1)/2); the free camera's optical frame
is [right, -up, forward] read from the averaged stereo eyes of the rendered scene; depth is z-depth in metres.
World geoms (floor, walls, terrain) are hidden by default, so the alpha is the robot's segmentation mask and
the RGB is composited onto a plain background; `show_world=True` keeps them (the suite's and the manipulation
arena's checkered floors: the robot bag set of scripts/make_mujoco_bags.py), and then only the sky is
background. Requires `mujoco==3.17.0`, `dm-control` and an offscreen GL
(`libosmesa6`; MUJOCO_GL=osmesa is the default set here, before dm_control is imported).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..cameras import fov_to_K
from ..views import ViewSet
from .rigs import RIG_KINDS, sample_rig

DEFAULT_BASE_NS = 1_700_000_000_000_000_000  # absolute stamps: consumers must never assume they start at 0


@dataclass(frozen=True)
class SceneSpec:
    """A dm_control model: `source` "suite" (domain, task) or "manipulation" (environment name, task None)."""

    source: str
    name: str
    task: str | None
    note: str


SCENES: dict[str, SceneSpec] = {
    "humanoid": SceneSpec("suite", "humanoid", "stand", "21-joint humanoid; collapses and flails under random torques"),
    "humanoid_cmu": SceneSpec("suite", "humanoid_CMU", "stand", "CMU mocap humanoid, 56 actuators"),
    "quadruped": SceneSpec("suite", "quadruped", "walk", "four-legged walker, 12 position actuators"),
    "dog": SceneSpec("suite", "dog", "stand", "skinned dog, 38 actuators (slowest to load)"),
    # The "features" variant: the "vision" one renders at reset, creating a multisampled GL context too early.
    "jaco": SceneSpec("manipulation", "reach_site_features", None, "Kinova Jaco arm + hand on a fixed base"),
    "jaco_bricks": SceneSpec("manipulation", "stack_3_bricks_features", None,
                             "Jaco arm among three Duplo bricks it may knock about"),
    "jaco_base": SceneSpec("manipulation", "stack_2_bricks_moveable_base_features", None,
                           "Jaco arm, two bricks, one of them on a moveable base"),
}
RIG_ALIASES = {"ring": "orbit"}


def _dm_control():
    """Import dm_control headless (the GL backend is fixed when dm_control is first imported)."""
    gl = os.environ.setdefault("MUJOCO_GL", "osmesa")
    if gl in ("osmesa", "egl"):
        os.environ.setdefault("PYOPENGL_PLATFORM", gl)
    try:
        import dm_control  # noqa: F401
        import mujoco
    except ImportError as e:
        raise ImportError('MuJoCo scenes need `pip install "mujoco==3.17.0" dm-control` and libosmesa6') from e
    if int(mujoco.__version__.split(".")[0]) >= 4:
        # dm_control 1.0.50 then fails deep inside rendering ('MjModel' object has no attribute 'flex_vertedge').
        raise ImportError(f'dm_control needs mujoco 3.x, found {mujoco.__version__}: pip install "mujoco==3.17.0"')
    return mujoco


def load_env(scene: str, seed: int = 0):
    """dm_control environment of `scene` (a key of SCENES) after its task's seeded reset.

    Keep the environment alive while using `env.physics`: composer environments hold it by weak reference.
    """
    if scene not in SCENES:
        raise ValueError(f"unknown MuJoCo scene {scene!r}; expected one of {sorted(SCENES)}")
    _dm_control()
    spec = SCENES[scene]
    if spec.source == "suite":
        from dm_control import suite
        env = suite.load(spec.name, spec.task, task_kwargs={"random": seed})
    else:
        from dm_control import manipulation
        env = manipulation.load(spec.name, seed=seed)
    env.reset()
    return env


def sinusoid_controls(model, rng: np.random.Generator, amplitude: float = 0.8, freq_hz=(0.3, 1.2)):
    """ctrl(t): one random sinusoid per actuator within its control range (±1 where unlimited)."""
    nu = model.nu
    lo = np.where(model.actuator_ctrllimited.astype(bool), model.actuator_ctrlrange[:, 0], -1.0)
    hi = np.where(model.actuator_ctrllimited.astype(bool), model.actuator_ctrlrange[:, 1], 1.0)
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    f = rng.uniform(*freq_hz, nu)
    phase = rng.uniform(0, 2 * math.pi, nu)
    return lambda t: mid + amplitude * half * np.sin(2 * math.pi * f * t + phase)


def capture_steps(frames: int, cameras: int, fps: float, jitter_s: float, timestep: float,
                  rng: np.random.Generator, settle_s: float = 0.0) -> np.ndarray:
    """(frames, cameras) int physics-step indices of each capture: settle_s + k/fps + U[0, jitter_s), snapped."""
    if frames < 1 or cameras < 1:
        raise ValueError(f"need frames >= 1 and cameras >= 1, got {frames}, {cameras}")
    if fps <= 0 or not 0 <= jitter_s < 1 / fps:
        raise ValueError(f"need fps > 0 and 0 <= jitter_s < 1/fps, got fps={fps}, jitter_s={jitter_s}")
    if settle_s < 0:
        raise ValueError(f"settle_s must be >= 0, got {settle_s}")
    t = settle_s + np.arange(frames)[:, None] / fps + rng.uniform(0, jitter_s, (frames, cameras))
    return np.rint(t / timestep).astype(np.int64)


def simulate(physics, steps: np.ndarray, ctrl) -> dict[int, np.ndarray]:
    """Step `physics` under ctrl(t) through every index in `steps`; the physics state at each of them."""
    states, t0 = {}, physics.data.time
    wanted = sorted(set(int(s) for s in steps.ravel()))
    n = 0
    for s in wanted:
        while n < s:
            physics.set_control(ctrl(physics.data.time - t0))
            physics.step()
            n += 1
        states[s] = physics.get_state().copy()
    return states


def robot_geoms(model) -> np.ndarray:
    """Indices of geoms not attached to the world body (the robot and its free objects)."""
    return np.flatnonzero(model.geom_bodyid != 0)


def bounding_sphere(physics, states) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius (m) of a sphere holding every robot geom's bounding sphere in all `states`."""
    g = robot_geoms(physics.model)
    pts, rad = [], physics.model.geom_rbound[g]
    for st in states:
        physics.set_state(st)
        physics.forward()
        pts.append(physics.data.geom_xpos[g].copy())
    pts = np.concatenate(pts)
    r = np.tile(rad, len(states))
    centre = ((pts - r[:, None]).min(0) + (pts + r[:, None]).max(0)) / 2
    return centre, float((np.linalg.norm(pts - centre, axis=1) + r).max())


def free_camera_pose(scene) -> np.ndarray:
    """Camera-to-world (4,4) optical frame of a rendered free camera: averaged stereo eyes, [right, -up, fwd]."""
    pos, fwd, up = (np.mean([getattr(c, a) for c in scene.camera], axis=0, dtype=np.float64)
                    for a in ("pos", "forward", "up"))
    # MuJoCo keeps these in float32: re-orthonormalise so the published pose is a rotation to float64 precision.
    fwd = fwd / np.linalg.norm(fwd)
    up = up - (up @ fwd) * fwd
    up = up / np.linalg.norm(up)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = np.cross(fwd, up), -up, fwd, pos
    return T


@dataclass
class RecordedScene:
    """A rendered scene plus the simulator's ground truth for checks.

    views: the ViewSet (T·C views, frame-major); geom_ids: (V,H,W) int32 geom index per pixel (-1: none or a
    non-geom object such as a skin); geom_xpos: (V,ngeom,3) float64 world geom centres at each view's capture.
    """

    views: ViewSet
    geom_ids: np.ndarray
    geom_xpos: np.ndarray
    geom_names: list[str]
    note: str


def headless_camera(physics, resolution: int, show_world: bool = False):
    """A square MovableCamera set up for fast, exact ground truth; must come before the first render.

    Returns (camera, far): far (m) is the depth dm_control reports where nothing was drawn.
    """
    mujoco = _dm_control()
    from dm_control.mujoco.engine import MovableCamera

    model = physics.model
    if not show_world:  # group 5 is hidden in the default scene option
        model.geom_group[model.geom_bodyid == 0] = 5
    # Hard edges: multisampled RGB would bleed into the (binary) segmentation alpha at silhouettes.
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, resolution)
    model.vis.global_.offheight = max(model.vis.global_.offheight, resolution)
    cam = MovableCamera(physics, resolution, resolution)
    for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX):
        cam.scene.flags[flag] = 0  # ~10x faster (the shadow map dominates), and a plain background
    cam.option.sitegroup[:] = 0  # task sites (targets) are not part of the robot
    return cam, 0.999 * model.vis.map.zfar * model.stat.extent


def film(physics, cam, far: float, camtoworld: np.ndarray, target: np.ndarray, fov_y: float):
    """Render physics' current state with `cam` (from headless_camera) from the optical-frame pose
    camtoworld (4,4) looking at target (3,) with a vertical field of view fov_y (radians).

    The free camera has no roll, so camtoworld must be a look-at pose with z up (cameras.look_at).
    Returns rgb (H,W,3) float32 [0,1], z-depth (H,W) m, segmentation (H,W,2) [object id, mjtObj], and the
    pose (4,4) MuJoCo actually rendered from.
    """
    eye, fwd = camtoworld[:3, 3], camtoworld[:3, 2]
    physics.model.vis.global_.fovy = math.degrees(fov_y)
    cam.set_pose(target, float(np.linalg.norm(eye - target)), math.degrees(math.atan2(fwd[1], fwd[0])),
                 math.degrees(math.asin(np.clip(fwd[2], -1, 1))))
    rgb = cam.render().astype(np.float32) / 255.0
    z = cam.render(depth=True).copy()  # render() returns views of reused buffers
    seg = cam.render(segmentation=True).copy()
    pose = free_camera_pose(cam.scene)
    # Catches an azimuth/elevation convention slip (MuJoCo keeps the GL camera in float32).
    if np.abs(pose[:3, :3] - camtoworld[:3, :3]).max() > 1e-4 or np.abs(pose[:3, 3] - eye).max() > 1e-4 * (
            1 + np.linalg.norm(eye)):
        raise RuntimeError("the MuJoCo free camera did not take the requested pose (camera with roll?)")
    if (z[seg[..., 0] >= 0] >= far).any():
        raise RuntimeError("segmentation and depth renders disagree (GL context created multisampled before "
                           "headless_camera set offsamples=0?)")
    return rgb, z, seg, pose


def record_scene(scene: str = "humanoid", frames: int = 12, cameras: int = 8, resolution: int = 128,
                 rig: str = "ring", fps: float = 10.0, jitter_s: float = 0.01, settle_s: float = 1.0, seed: int = 0,
                 base_ns: int = DEFAULT_BASE_NS, background=(1.0, 1.0, 1.0), show_world: bool = False,
                 physics=None) -> RecordedScene:
    """Simulate `scene` for `frames` frames and film it with `cameras` free cameras at resolution² pixels.

    Filming starts after settle_s simulated seconds (suite resets drop the robot from mid-air; a robot already on
    the ground moves less, so the rig frames it tighter). Stamps are base_ns + simulated time since filming
    started, with per-camera jitter U[0, jitter_s) snapped to the physics step.
    rig: "ring" (= rigs "orbit") or any `data.rigs.RIG_KINDS`; fovs, elevations and placement are sampled
    from `seed` and scaled so the robot's bounding sphere over the whole clip fits every view. show_world keeps
    the floor/walls (then alpha and depth cover them too). `physics` replaces the scene's model (then `scene`
    only names it); it is stepped, modified for rendering and freed.
    """
    if physics is None and scene not in SCENES:
        raise ValueError(f"unknown MuJoCo scene {scene!r}; expected one of {sorted(SCENES)}")
    kind = RIG_ALIASES.get(rig, rig)
    if kind not in RIG_KINDS:
        raise ValueError(f"unknown rig {rig!r}; expected 'ring' or one of {RIG_KINDS}")
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8 pixels, got {resolution}")
    mujoco = _dm_control()
    rng = np.random.default_rng(seed)
    env = load_env(scene, seed) if physics is None else None
    physics = env.physics if env is not None else physics
    model = physics.model
    steps = capture_steps(frames, cameras, fps, jitter_s, model.opt.timestep, rng, settle_s)
    states = simulate(physics, steps, sinusoid_controls(model, rng))
    centre, radius = bounding_sphere(physics, list(states.values()))
    camrig = sample_rig(torch.Generator().manual_seed(seed), kind, cameras, content_radius=radius)

    T, C, H = frames, cameras, resolution
    span = max(int(steps.max() - steps.min()), 1)
    bg = np.asarray(background, dtype=np.float32)
    images = np.empty((T * C, H, H, 3), np.float32)
    depths, alphas = np.empty((T * C, H, H), np.float32), np.empty((T * C, H, H), np.float32)
    geom_ids = np.empty((T * C, H, H), np.int32)
    geom_xpos = np.empty((T * C, model.ngeom, 3))
    c2w, Ks = np.empty((T * C, 4, 4)), np.empty((T * C, 3, 3))
    cam_idx = torch.arange(C)
    cam, far = headless_camera(physics, resolution, show_world)
    try:
        for k in range(T):
            poses = camrig.poses(cam_idx, torch.as_tensor((steps[k] - steps.min()) / span)).numpy()
            poses[:, :3, 3] += centre  # rigs are built about the origin
            for c in range(C):
                v = k * C + c
                physics.set_state(states[int(steps[k, c])])
                physics.forward()
                rgb, z, seg, c2w[v] = film(physics, cam, far, poses[c], centre + camrig.targets[c].numpy(),
                                           float(camrig.fov_y[c]))
                hit = (seg[..., 0] >= 0).astype(np.float32)
                images[v] = rgb * hit[..., None] + bg * (1 - hit[..., None])
                depths[v] = np.where(hit > 0, z, 0.0)
                alphas[v] = hit
                geom_ids[v] = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
                geom_xpos[v] = physics.data.geom_xpos
                Ks[v] = fov_to_K(float(camrig.fov_y[c]), H, H).numpy()
    finally:
        physics.free()  # releases the GL context now, not in a noisy atexit hook

    stamps = base_ns + np.rint((steps.reshape(-1) - steps.min()) * model.opt.timestep * 1e9).astype(np.int64)
    views = ViewSet(images=torch.from_numpy(images), Ks=torch.from_numpy(Ks), camtoworlds=torch.from_numpy(c2w),
                    stamps_ns=torch.from_numpy(stamps), camera_ids=cam_idx.repeat(T),
                    camera_names=list(camrig.names), depths=torch.from_numpy(depths),
                    alphas=torch.from_numpy(alphas))
    names = [model.id2name(i, "geom") or f"geom{i}" for i in range(model.ngeom)]
    return RecordedScene(views, geom_ids, geom_xpos, names, SCENES[scene].note if scene in SCENES else "")


def render_scene(scene: str = "humanoid", frames: int = 12, cameras: int = 8, resolution: int = 128,
                 rig: str = "ring", **kwargs) -> ViewSet:
    """`record_scene(...).views`: T·C views (frame-major), images/depths/alphas at resolution², metres."""
    return record_scene(scene, frames, cameras, resolution, rig, **kwargs).views
