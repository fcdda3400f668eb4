"""Camera rigs around a scene (z up, metres).

`Rig` kinds (spherical, about target points near the world origin): "orbit" (a ring at one elevation, evenly
spaced), "canonical" (evenly spaced at elevation 0: for 4 cameras the front/right/back/left views), "shell"
(random directions on a shell), "moving" (an orbit ring whose cameras travel in azimuth and bob in elevation over
the window), "workcell" (fixed cameras at irregular positions above the scene looking inward at jittered targets).

`MountedRig` kinds (cameras fixed on a mount, as robots carry them; about a workspace at any centre):
"poles" (a still mount: cameras on poles and walls around and above a workspace, looking inward and down) and
"head" (a robot head or mobile base driving past the workspace, its cameras on a bar, the head turned towards
the workspace). Poses are camera-to-world in the optical frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import fov_to_K, look_at

RIG_KINDS = ("orbit", "canonical", "shell", "moving", "workcell")
MOUNTED_RIG_KINDS = ("poles", "head")
ALL_RIG_KINDS = RIG_KINDS + MOUNTED_RIG_KINDS


@dataclass
class Rig:
    """C cameras. fov_y (C,) radians; spherical eye coordinates about `targets` (C,3): azimuth (C,), elevation
    (C,) radians, distance (C,) metres; az_rate (C,) radians per window and el_amp (C,) radians (moving rigs)."""

    kind: str
    names: list[str]
    fov_y: Tensor
    azimuth: Tensor
    elevation: Tensor
    distance: Tensor
    targets: Tensor
    az_rate: Tensor
    el_amp: Tensor

    @property
    def num(self) -> int:
        return len(self.names)

    def Ks(self, height: int, width: int) -> Tensor:
        """(C,3,3) intrinsics for images of height×width (ROS convention)."""
        return _Ks(self.fov_y, height, width)

    def poses(self, cam: Tensor, u: Tensor) -> Tensor:
        """Camera-to-world (V,4,4) for camera indices cam (V,) at window fractions u (V,)."""
        u = u.to(torch.float64)
        az = self.azimuth[cam] + self.az_rate[cam] * u
        el = self.elevation[cam] + self.el_amp[cam] * torch.sin(2 * math.pi * u)
        r = self.distance[cam]
        eye = torch.stack([r * torch.cos(el) * torch.cos(az), r * torch.cos(el) * torch.sin(az),
                           r * torch.sin(el)], -1) + self.targets[cam]
        return look_at(eye, self.targets[cam])


def _Ks(fov_y: Tensor, height: int, width: int) -> Tensor:
    return torch.stack([fov_to_K(float(f), width, height) for f in fov_y])


def _rot_z(yaw: Tensor) -> Tensor:
    """(V,3,3) rotations about z by yaw (V,) radians."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


@dataclass
class MountedRig:
    """C cameras fixed on a mount (see module docstring). The mount sits at origin + velocity·u (+ bob·sin(2πu)
    in z) at window fraction u, heading yaw0 + yaw_rate·u about z, or, with `track` (3,), turned so that its x
    axis points at that world point (plus yaw0). Camera c sits at eye_local[c] and looks at target_local[c]
    (mount frame: x forward, y left, z up; metres). float64 throughout."""

    kind: str
    names: list[str]
    fov_y: Tensor                # (C,) radians
    eye_local: Tensor            # (C,3)
    target_local: Tensor         # (C,3)
    origin: Tensor               # (3,)
    velocity: Tensor             # (3,) metres per window
    yaw0: float = 0.0
    yaw_rate: float = 0.0        # radians per window (ignored with track)
    bob: float = 0.0             # metres
    track: Tensor | None = None  # (3,)

    @property
    def num(self) -> int:
        return len(self.names)

    def Ks(self, height: int, width: int) -> Tensor:
        """(C,3,3) intrinsics for images of height×width (ROS convention)."""
        return _Ks(self.fov_y, height, width)

    def mount(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Mount position (V,3) and rotation (V,3,3) at window fractions u (V,)."""
        u = u.to(torch.float64)
        pos = self.origin + self.velocity * u[:, None]
        pos[:, 2] = pos[:, 2] + self.bob * torch.sin(2 * math.pi * u)
        if self.track is not None:
            to = self.track - pos
            yaw = torch.atan2(to[:, 1], to[:, 0]) + self.yaw0
        else:
            yaw = self.yaw0 + self.yaw_rate * u
        return pos, _rot_z(yaw)

    def poses(self, cam: Tensor, u: Tensor) -> Tensor:
        """Camera-to-world (V,4,4) for camera indices cam (V,) at window fractions u (V,)."""
        pos, R = self.mount(u)
        eye = pos + (R @ self.eye_local[cam][..., None])[..., 0]
        target = pos + (R @ self.target_local[cam][..., None])[..., 0]
        return look_at(eye, target)


def eye_positions(rig: Rig | MountedRig, steps: int = 5) -> Tensor:
    """(steps, C, 3) camera centres at `steps` window fractions evenly spaced over [0, 1]."""
    u = torch.linspace(0, 1, steps, dtype=torch.float64).repeat_interleave(rig.num)
    cams = torch.arange(rig.num).repeat(steps)
    return rig.poses(cams, u)[:, :3, 3].reshape(steps, rig.num, 3)


def camera_names(n: int) -> list[str]:
    """"cam0".."camN", zero-padded so that sorting by name keeps the index order."""
    width = len(str(max(n - 1, 0)))
    return [f"cam{i:0{width}d}" for i in range(n)]


def _u(g, n, lo, hi):
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def sample_rig(g: torch.Generator, kind: str, num_cameras: int, fov_range_deg=(30.0, 60.0),
               content_radius: float = 1.0, min_elevation_deg: float = -10.0) -> Rig:
    """A random rig of `kind` whose cameras all see a sphere of `content_radius` metres about the origin."""
    if kind not in RIG_KINDS:
        raise ValueError(f"unknown rig kind {kind!r}; expected one of {RIG_KINDS}")
    if num_cameras < 1:
        raise ValueError(f"num_cameras must be >= 1, got {num_cameras}")
    C = num_cameras
    lo, hi = (math.radians(f) for f in fov_range_deg)
    # One FoV per rig (like a set of identical cameras) except the workcell, whose cameras differ.
    fov = _u(g, C, lo, hi) if kind == "workcell" else _u(g, 1, lo, hi).expand(C).clone()
    # Far enough for the content sphere to fit the vertical FoV, with some margin.
    distance = content_radius / torch.sin(fov / 2) * _u(g, C, 1.05, 1.3)
    min_el = math.radians(min_elevation_deg)
    zeros = torch.zeros(C, dtype=torch.float64)
    targets = torch.zeros(C, 3, dtype=torch.float64)
    az_rate, el_amp = zeros.clone(), zeros.clone()
    start = float(_u(g, 1, 0, 2 * math.pi))
    ring = start + 2 * math.pi * torch.arange(C, dtype=torch.float64) / C
    if kind == "orbit":
        azimuth, elevation = ring, _u(g, 1, max(min_el, math.radians(5)), math.radians(40)).expand(C).clone()
    elif kind == "canonical":
        azimuth, elevation = 2 * math.pi * torch.arange(C, dtype=torch.float64) / C, zeros.clone()
        elevation = elevation.clamp_min(min_el)
    elif kind == "shell":
        azimuth = _u(g, C, 0, 2 * math.pi)
        # Uniform on the sphere's band: sample sin(elevation) uniformly.
        elevation = torch.asin(_u(g, C, math.sin(max(min_el, -math.pi / 6)), math.sin(math.radians(70))))
    elif kind == "moving":
        azimuth, elevation = ring, _u(g, 1, max(min_el, math.radians(5)), math.radians(35)).expand(C).clone()
        az_rate = _u(g, 1, math.radians(30), math.radians(120)).expand(C) * (1 if float(_u(g, 1, 0, 1)) < .5 else -1)
        el_amp = _u(g, C, 0, math.radians(10))
        elevation = elevation.clamp_min(min_el + el_amp)
    else:  # workcell: cameras on irregular corners above the table, looking inward at jittered targets
        azimuth = ring + _u(g, C, -0.4, 0.4) * math.pi / C
        elevation = _u(g, C, max(min_el, math.radians(20)), math.radians(55))
        targets = (torch.rand(C, 3, generator=g, dtype=torch.float64) - 0.5) * 0.3 * content_radius
        distance = distance * _u(g, C, 1.0, 1.2)
    return Rig(kind, camera_names(C), fov, azimuth, elevation, distance, targets, az_rate.clone(), el_amp)


def sample_mounted_rig(g: torch.Generator, kind: str, num_cameras: int, fov_range_deg=(40.0, 70.0),
                       centre=(0.0, 0.0, 0.5), radius: float = 1.0, floor_z: float = 0.0) -> MountedRig:
    """A random `MountedRig` of `kind` about a workspace: a sphere of `radius` metres at `centre` above a floor
    at height `floor_z`.

    poles: cameras at irregular azimuths around the workspace, 1.2–2.6 m above the floor (and above the
    workspace centre), each far enough for the workspace to fill ~70–95 % of its vertical FoV, looking at a point
    within half a radius of the centre. head: a mount 0.8–1.7 m above the floor that drives 0.2–1.5 m along a
    line passing the workspace at 1–2.2 radii + 0.6 m, turned towards the centre (±0.15 rad); its cameras sit on
    a bar up to 0.4 m wide, fanned over up to 80° of yaw and tilted down at the workspace (±0.1 rad); the mount
    bobs by up to 2 cm."""
    if kind not in MOUNTED_RIG_KINDS:
        raise ValueError(f"unknown mounted rig kind {kind!r}; expected one of {MOUNTED_RIG_KINDS}")
    if num_cameras < 1:
        raise ValueError(f"num_cameras must be >= 1, got {num_cameras}")
    C = num_cameras
    centre = torch.as_tensor(centre, dtype=torch.float64)
    lo, hi = (math.radians(f) for f in fov_range_deg)
    zero3 = torch.zeros(3, dtype=torch.float64)
    if kind == "poles":
        fov = _u(g, C, lo, hi)
        azimuth = _u(g, 1, 0, 2 * math.pi) + 2 * math.pi * torch.arange(C, dtype=torch.float64) / C \
            + _u(g, C, -0.35, 0.35) * math.pi / C
        height = torch.maximum(floor_z + _u(g, C, 1.2, 2.6), centre[2] + _u(g, C, 0.3, 0.8))
        dist = radius / torch.sin(fov / 2) * _u(g, C, 1.05, 1.4)
        rise = height - centre[2]
        horiz = torch.sqrt((dist ** 2 - rise ** 2).clamp_min((0.6 * radius) ** 2))
        eyes = torch.stack([centre[0] + horiz * torch.cos(azimuth), centre[1] + horiz * torch.sin(azimuth), height], -1)
        r = 0.5 * radius * _u(g, C, 0, 1).sqrt()
        phi = _u(g, C, 0, 2 * math.pi)
        targets = centre + torch.stack([r * torch.cos(phi), r * torch.sin(phi), _u(g, C, -0.2, 0.2) * radius], -1)
        return MountedRig(kind, camera_names(C), fov, eyes, targets, zero3.clone(), zero3.clone())
    fov = _u(g, 1, lo, hi).expand(C).clone()  # a head carries one camera model
    height = float(floor_z + _u(g, 1, 0.8, 1.7))
    pass_dist = float(radius * _u(g, 1, 1.0, 2.2) + 0.6)
    side = float(_u(g, 1, 0, 2 * math.pi))
    normal = torch.tensor([math.cos(side), math.sin(side), 0.0], dtype=torch.float64)
    along = torch.tensor([-math.sin(side), math.cos(side), 0.0], dtype=torch.float64)
    travel = float(_u(g, 1, 0.2, 1.5)) * (1 if float(_u(g, 1, 0, 1)) < 0.5 else -1)
    start = float(_u(g, 1, -1.0, 0.2)) * abs(travel)
    origin = centre + pass_dist * normal + start * along
    origin[2] = height
    fan = float(_u(g, 1, 0, math.radians(80))) if C > 1 else 0.0
    yaw_c = (torch.linspace(-0.5, 0.5, C, dtype=torch.float64) if C > 1 else torch.zeros(1, dtype=torch.float64)) * fan
    bar = (torch.linspace(-0.5, 0.5, C, dtype=torch.float64) if C > 1 else torch.zeros(1, dtype=torch.float64)) \
        * float(_u(g, 1, 0.06, 0.4))
    pitch = math.atan2(height - float(centre[2]), pass_dist) + _u(g, C, -0.1, 0.1)
    eyes = torch.stack([torch.zeros(C, dtype=torch.float64), -bar, torch.zeros(C, dtype=torch.float64)], -1)
    look = torch.stack([torch.cos(pitch) * torch.cos(yaw_c), torch.cos(pitch) * torch.sin(yaw_c), -torch.sin(pitch)], -1)
    return MountedRig(kind, camera_names(C), fov, eyes, eyes + look, origin, travel * along,
                      yaw0=float(_u(g, 1, -0.15, 0.15)), bob=float(_u(g, 1, 0, 0.02)), track=centre.clone())
