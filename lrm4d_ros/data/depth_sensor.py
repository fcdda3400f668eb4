"""A depth camera's measurement model on exact z-depth maps: what an RGB-D camera would have published.

`sensor_depth(depth_m, Ks, generator)` turns exact z-depth (V,H,W) metres (0 = nothing there) into a measured
one (0 = no measurement, the contract's convention, docs/design.md §4):

- axial noise, Gaussian with σ(z, θ) = σ₀ + k·(z − z₀)² + a/√z · θ²/(π/2 − θ)² (Nguyen, Izadi & Lovell 2012,
  fitted to a structured-light Kinect; ToF cameras are of the same order): ~2 mm at 1 m, ~14 mm at 3 m;
- no return at grazing incidence: θ (between the viewing ray and the surface normal, from the depth map's own
  gradients) beyond `grazing_start_deg` loses the pixel with a probability rising linearly to 1 at
  `max_angle_deg`;
- dropouts at depth edges (structured-light shadows, mixed pixels): a pixel whose inverse depth departs from
  its neighbours' linear trend by more than `edge_threshold`·(1/z) (planes of any tilt never do: inverse depth
  is affine in pixel coordinates on a plane), or next to "nothing there", is lost with `edge_dropout`;
- a small rate of isolated random losses (`dropout`), and a working range [min_range, max_range] on the
  measured depth.

Everything is vectorised over views and pixels (12×128² views: 7–20 ms on one thread of this shared 2-core CPU
at load averages 8–10, `benchmarks/bench_depth_sensor.py`) and seeded by a `torch.Generator`; no ROS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ..views import ViewSet

SENSOR_MODES = ("none", "clean", "sensor")  # `--depth` of make-bag and the MuJoCo bag script


@dataclass(frozen=True)
class DepthSensor:
    """Measurement-model parameters (metres, degrees, probabilities). Defaults: a Kinect-like RGB-D camera."""

    min_range: float = 0.2
    max_range: float = 8.0
    sigma_0: float = 0.0012
    sigma_quad: float = 0.0019
    z_0: float = 0.4
    sigma_angle: float = 0.0001
    grazing_start_deg: float = 70.0
    max_angle_deg: float = 80.0
    edge_threshold: float = 0.02
    edge_dropout: float = 0.8
    dropout: float = 0.002

    def __post_init__(self):
        if not 0 <= self.min_range < self.max_range:
            raise ValueError(f"need 0 <= min_range < max_range, got {self.min_range}, {self.max_range}")
        if not 0 < self.grazing_start_deg <= self.max_angle_deg < 90:
            raise ValueError(f"need 0 < grazing_start_deg <= max_angle_deg < 90, got {self.grazing_start_deg}, "
                             f"{self.max_angle_deg}")
        for name in ("edge_dropout", "dropout"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        for name in ("sigma_0", "sigma_quad", "sigma_angle", "edge_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def sigma(self, z: Tensor, theta: Tensor) -> Tensor:
        """Axial noise σ (m) at z-depth z (m) and incidence θ (radians, < π/2)."""
        zc = z.clamp_min(1e-6)
        return (self.sigma_0 + self.sigma_quad * (zc - self.z_0) ** 2
                + self.sigma_angle / zc.sqrt() * theta ** 2 / (math.pi / 2 - theta) ** 2)


def _second_difference(w: Tensor, dim: int) -> Tensor:
    """|w[i−1] − 2w[i] + w[i+1]| along `dim` of (V,H,W); 0 on the first and last row/column."""
    out = torch.zeros_like(w)
    n = w.shape[dim]
    if n >= 3:
        mid = w.narrow(dim, 1, n - 2)
        out.narrow(dim, 1, n - 2).copy_((w.narrow(dim, 0, n - 2) - 2 * mid + w.narrow(dim, 2, n - 2)).abs())
    return out


def _gradient(w: Tensor, dim: int) -> Tensor:
    """dw/di along `dim`: central differences inside, one-sided at the ends (all exact for affine w)."""
    n = w.shape[dim]
    if n < 2:
        return torch.zeros_like(w)
    g = torch.empty_like(w)
    if n >= 3:
        g.narrow(dim, 1, n - 2).copy_((w.narrow(dim, 2, n - 2) - w.narrow(dim, 0, n - 2)) * 0.5)
    g.narrow(dim, 0, 1).copy_(w.narrow(dim, 1, 1) - w.narrow(dim, 0, 1))
    g.narrow(dim, n - 1, 1).copy_(w.narrow(dim, n - 1, 1) - w.narrow(dim, n - 2, 1))
    return g


def _touches_empty(valid: Tensor) -> Tensor:
    """(V,H,W) bool: a pixel with a 4-neighbour where nothing is."""
    empty = ~valid
    out = torch.zeros_like(valid)
    out[:, 1:] |= empty[:, :-1]
    out[:, :-1] |= empty[:, 1:]
    out[:, :, 1:] |= empty[:, :, :-1]
    out[:, :, :-1] |= empty[:, :, 1:]
    return out


def _inverse(depth_m: Tensor) -> Tensor:
    return torch.where(depth_m > 0, 1.0 / depth_m.clamp_min(1e-12), torch.zeros_like(depth_m))


def depth_edges(depth_m: Tensor, threshold: float, inverse: Tensor | None = None) -> Tensor:
    """(V,H,W) bool depth edges of z-depth maps (0 = nothing): pixels beside "nothing", or whose inverse depth
    departs from its neighbours' linear trend (row or column) by more than threshold·(1/z)."""
    valid = depth_m > 0
    inv = _inverse(depth_m) if inverse is None else inverse
    jump = torch.maximum(_second_difference(inv, 1), _second_difference(inv, 2)) * depth_m
    return valid & (_touches_empty(valid) | (jump > threshold))


def incidence_angles(depth_m: Tensor, Ks: Tensor, inverse: Tensor | None = None) -> Tensor:
    """(V,H,W) angle (radians, [0, π/2]) between each pixel's viewing ray and the surface normal of the
    depth map, from inverse-depth gradients (exact on planes). Meaningless at depth edges.

    With r = ((u−cx)/fx, (v−cy)/fy, 1) and w = 1/z, the back-projected surface z·r has the normal
    n ∝ (A, B, A·x + B·y + 1) with A = −fx·z·∂w/∂u, B = −fy·z·∂w/∂v, and n·r = 1, so cos θ = 1 / (|n|·|r|).
    """
    V, H, W = depth_m.shape
    K = Ks.to(depth_m)
    w = _inverse(depth_m) if inverse is None else inverse
    x = (torch.arange(W, device=depth_m.device, dtype=depth_m.dtype) - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    y = (torch.arange(H, device=depth_m.device, dtype=depth_m.dtype)[:, None] - K[:, 1, 2, None, None]) \
        / K[:, 1, 1, None, None]
    A = _gradient(w, 2) * depth_m * -K[:, 0, 0, None, None]
    B = _gradient(w, 1) * depth_m * -K[:, 1, 1, None, None]
    n2 = A * A + B * B + (A * x + B * y + 1) ** 2
    return torch.arccos(torch.rsqrt(n2 * (x * x + y * y + 1)).clamp(0.0, 1.0))


def sensor_depth(depth_m: Tensor, Ks: Tensor, generator: torch.Generator | None = None,
                 sensor: DepthSensor | None = None, **params) -> Tensor:
    """Measured depth (V,H,W) float32 metres, 0 = no measurement, of exact z-depths `depth_m` (V,H,W) metres
    (0 = nothing there) seen through intrinsics Ks (V,3,3), by the model in the module docstring.

    sensor: the parameters (default `DepthSensor()`); keyword `params` override its fields. `generator` (on
    the depth's device) makes it reproducible.
    """
    if depth_m.ndim != 3 or Ks.shape != (depth_m.shape[0], 3, 3):
        raise ValueError(f"need depth_m (V,H,W) and Ks (V,3,3), got {tuple(depth_m.shape)} and {tuple(Ks.shape)}")
    if params:
        known = {f.name for f in fields(DepthSensor)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"unknown depth sensor parameters {unknown}; known: {sorted(known)}")
        base = sensor or DepthSensor()
        sensor = DepthSensor(**{**{k: getattr(base, k) for k in known}, **params})
    s = sensor or DepthSensor()
    z = depth_m.float()
    valid = z > 0
    inv = _inverse(z)
    edges = depth_edges(z, s.edge_threshold, inv)
    theta = torch.where(edges | ~valid, torch.zeros_like(z), incidence_angles(z, Ks, inv))
    start, stop = math.radians(s.grazing_start_deg), math.radians(s.max_angle_deg)
    p_graze = ((theta - start) / max(stop - start, 1e-9)).clamp(0.0, 1.0) if stop > start else \
        (theta > stop).float()
    keep = (1 - p_graze) * (1 - s.edge_dropout * edges.float()) * (1 - s.dropout)
    u = torch.rand(z.shape, generator=generator, device=z.device)
    noise = torch.randn(z.shape, generator=generator, device=z.device)
    measured = z + s.sigma(z, theta.clamp_max(stop)) * noise
    ok = valid & (u < keep) & (measured >= s.min_range) & (measured <= s.max_range)
    return torch.where(ok, measured, torch.zeros_like(measured))


def with_depth(views: ViewSet, mode: str, seed: int = 0, sensor: DepthSensor | None = None) -> ViewSet:
    """`views` with depths as a bag writer's `--depth` says: "none" drops them, "clean" keeps the exact
    z-depths, "sensor" replaces them by `sensor_depth` (seeded by `seed`)."""
    if mode not in SENSOR_MODES:
        raise ValueError(f"depth mode must be one of {SENSOR_MODES}, got {mode!r}")
    if mode == "none":
        return replace(views, depths=None)
    if views.depths is None:
        raise ValueError(f"depth mode {mode!r} needs views with exact depths")
    if mode == "clean":
        return views
    g = torch.Generator(device=views.depths.device).manual_seed(seed)
    return replace(views, depths=sensor_depth(views.depths, views.Ks, g, sensor))
