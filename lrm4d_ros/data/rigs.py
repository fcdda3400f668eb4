"""Camera rigs around a scene centred at the world origin (z up, metres).

Kinds: "orbit" (a ring at one elevation, evenly spaced), "canonical" (evenly spaced at elevation 0: for 4
cameras the front/right/back/left views), "shell" (random directions on a shell), "moving" (an orbit ring whose
cameras travel in azimuth and bob in elevation over the window), "workcell" (fixed cameras at irregular
positions above the scene looking inward at jittered targets). Poses are camera-to-world in the optical frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..cameras import fov_to_K

RIG_KINDS = ("orbit", "canonical", "shell", "moving", "workcell")


def look_at(eyes: Tensor, targets: Tensor, up=(0.0, 0.0, 1.0)) -> Tensor:
    """Camera-to-world (V,4,4) float64, optical frame (x right, y down, z forward), from eyes/targets (V,3)."""
    eyes, targets = eyes.to(torch.float64), targets.to(torch.float64)
    z = torch.nn.functional.normalize(targets - eyes, dim=-1)
    upv = torch.tensor(up, dtype=torch.float64).expand_as(z)
    x = torch.linalg.cross(z, upv)
    # Looking straight up or down: any horizontal right vector will do.
    bad = x.norm(dim=-1) < 1e-9
    x[bad] = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x)
    T = torch.zeros(eyes.shape[0], 4, 4, dtype=torch.float64)
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2], T[:, :3, 3] = x, y, z, eyes
    T[:, 3, 3] = 1.0
    return T


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
        return torch.stack([fov_to_K(float(f), width, height) for f in self.fov_y])

    def poses(self, cam: Tensor, u: Tensor) -> Tensor:
        """Camera-to-world (V,4,4) for camera indices cam (V,) at window fractions u (V,)."""
        u = u.to(torch.float64)
        az = self.azimuth[cam] + self.az_rate[cam] * u
        el = self.elevation[cam] + self.el_amp[cam] * torch.sin(2 * math.pi * u)
        r = self.distance[cam]
        eye = torch.stack([r * torch.cos(el) * torch.cos(az), r * torch.cos(el) * torch.sin(az),
                           r * torch.sin(el)], -1) + self.targets[cam]
        return look_at(eye, self.targets[cam])


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
