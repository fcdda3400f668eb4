"""Cameras, rays and the two normalisations the model sees (docs/design.md §3).

- Intrinsics `K` (3,3) follow ROS CameraInfo / OpenCV: pixel (u, v) has its centre at integer (u, v).
- Poses are camera-to-world 4×4 in the optical frame (x right, y down, z forward).
- `SceneNormalization` maps world (metres) ⇄ canonical (content in [-1,1]³, cameras at ~2 units).
- `TimeWindow` maps absolute int64 nanosecond stamps ⇄ normalised time in [-1, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def fov_to_K(fov_y: float, width: int, height: int) -> Tensor:
    """Pinhole intrinsics (3,3) float64 for a vertical field of view `fov_y` (radians), square pixels."""
    if not 0.0 < fov_y < math.pi:
        raise ValueError(f"fov_y must be in (0, pi) radians, got {fov_y}")
    f = 0.5 * height / math.tan(0.5 * fov_y)
    return torch.tensor([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]],
                        dtype=torch.float64)


def scale_K(K: Tensor, sx: float, sy: float) -> Tensor:
    """Intrinsics (...,3,3) for an image resized by factors (sx, sy), keeping integer pixel centres.

    Resizing maps pixel edges, not centres: u' + ½ = sx (u + ½), hence c' = sx (c + ½) − ½.
    """
    K = K.clone()
    K[..., 0, 0] *= sx
    K[..., 1, 1] *= sy
    K[..., 0, 1] *= sx
    K[..., 0, 2] = sx * (K[..., 0, 2] + 0.5) - 0.5
    K[..., 1, 2] = sy * (K[..., 1, 2] + 0.5) - 0.5
    return K


def invert_pose(T: Tensor) -> Tensor:
    """Inverse of rigid transforms (...,4,4): camera-to-world ⇄ world-to-camera."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    Rt = R.transpose(-1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def project_points(points: Tensor, K: Tensor, camtoworld: Tensor) -> tuple[Tensor, Tensor]:
    """(pixel coordinates (…,2), z-depth (…)) of points (…,3) in one camera: K (3,3), camtoworld (4,4), all in
    one frame and dtype. Points behind the camera (z ≤ 0) get finite coordinates (z clamped): test z."""
    cam = (points - camtoworld[:3, 3]) @ camtoworld[:3, :3]
    z = cam[..., 2]
    uv = (cam @ K.T)[..., :2] / z.clamp_min(1e-9)[..., None]
    return uv, z


def pixel_rays(Ks: Tensor, camtoworlds: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """World rays through every pixel centre.

    Ks (V,3,3), camtoworlds (V,4,4) -> origins (V,H,W,3), unit directions (V,H,W,3), in the poses' dtype.
    """
    dtype, device = camtoworlds.dtype, camtoworlds.device
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], dim=-1)  # (H,W,3)
    Kinv = torch.linalg.inv(Ks.to(dtype))  # (V,3,3)
    d_cam = torch.einsum("vij,hwj->vhwi", Kinv, pix)
    d_world = torch.einsum("vij,vhwj->vhwi", camtoworlds[:, :3, :3], d_cam)
    d_world = d_world / d_world.norm(dim=-1, keepdim=True)
    origins = camtoworlds[:, None, None, :3, 3].expand_as(d_world)
    return origins, d_world


def plucker(origins: Tensor, dirs: Tensor) -> Tensor:
    """Rays' Plücker coordinates (...,6) = [d, o − ⟨o,d⟩d]: unit direction and the ray's point nearest the origin,
    from origins and unit directions (...,3): the model's camera input."""
    return torch.cat([dirs, origins - (origins * dirs).sum(-1, keepdim=True) * dirs], dim=-1)


def plucker_rays(Ks: Tensor, camtoworlds: Tensor, height: int, width: int) -> Tensor:
    """Plücker ray map (V,H,W,6) of every pixel's ray (`plucker` of `pixel_rays`)."""
    return plucker(*pixel_rays(Ks, camtoworlds, height, width))


# World up is taken from the cameras where their x (right) axes pin it down and it lies this far or more from world
# z (a y-up renderer's frame, a SLAM map started at a camera's pose); nearer, world z stays (REP-103), and a tilted
# floor is levelled from measured depth (floor_fit.floor_normal). A camera mounted 1° rolled shifts the cameras' estimate
# by about that much; a world tilted by 2° cost evaluation bag scene_1002000 2.8 dB RGB-D novel_view unlevelled.
LEVEL_FROM_CAMERAS_DEG = 5.0
# The x axes pin up down where their second singular value is above this share of the first (headings ~35° apart).
HEADING_SPREAD = 0.3


def levelling(up: Tensor) -> Tensor:
    """(3,3) float64 rotation taking the unit direction `up` (3,) to +z by the shortest arc (identity for +z;
    a half turn about x for −z)."""
    u = torch.as_tensor(up, dtype=torch.float64).reshape(3)
    u = u / u.norm()
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    c = float(u @ z)
    if c < -1 + 1e-12:
        return torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    v = torch.linalg.cross(u, z)
    vx = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + vx + vx @ vx / (1 + c)


def camera_up(camtoworlds: Tensor, spread: float = HEADING_SPREAD) -> Tensor | None:
    """World up (3,) that cameras (V,4,4) without roll show (orthogonal to every x axis, on the side of their −y
    axes), or None where their headings are too alike to pin it down (the x axes' second singular value not above
    `spread` of the first)."""
    c2w = torch.as_tensor(camtoworlds, dtype=torch.float64).reshape(-1, 4, 4)
    _, s, vh = torch.linalg.svd(c2w[:, :3, 0])
    if len(s) < 2 or not s[1] > spread * s[0]:
        return None
    up = vh[-1]
    return up if float(up @ -c2w[:, :3, 1].sum(0)) >= 0 else -up


def image_up(camtoworlds: Tensor) -> Tensor:
    """The up (3,) cameras (V,4,4) facing one way would show unpitched: their mean −y axis made orthogonal to their
    mean x axis (a guess where `camera_up` has none: a level camera's image up is the world's)."""
    c2w = torch.as_tensor(camtoworlds, dtype=torch.float64).reshape(-1, 4, 4)
    x = c2w[:, :3, 0].mean(0)
    x = x / x.norm().clamp_min(1e-12)
    up = -c2w[:, :3, 1].mean(0)
    up = up - (up @ x) * x
    return up / up.norm().clamp_min(1e-12)


@dataclass(frozen=True)
class SceneNormalization:
    """canonical = rotation · (world − center) · scale. `center` (3,) float64 in metres, `scale` in 1/metres,
    `rotation` (3,3) float64 (default identity) turns world up to canonical +z, where the world's z is not up
    (`from_cameras`, `levelled`): the model, the floor and the environment map take canonical z as up."""

    center: Tensor
    scale: float
    rotation: Tensor | None = None

    def __post_init__(self):
        center = torch.as_tensor(self.center, dtype=torch.float64).reshape(3)
        if not torch.isfinite(center).all() or not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"invalid SceneNormalization(center={center.tolist()}, scale={self.scale})")
        R = torch.eye(3, dtype=torch.float64) if self.rotation is None else \
            torch.as_tensor(self.rotation, dtype=torch.float64).reshape(3, 3)
        if not torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-6) or float(torch.det(R)) < 0:
            raise ValueError(f"SceneNormalization rotation must be a rotation matrix, got {R.tolist()}")
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "rotation", R)
        object.__setattr__(self, "_turned", not torch.equal(R, torch.eye(3, dtype=torch.float64)))

    @classmethod
    def identity(cls) -> "SceneNormalization":
        return cls(torch.zeros(3, dtype=torch.float64), 1.0)

    @classmethod
    def from_cameras(cls, camtoworlds: Tensor, radius: float = 2.0) -> "SceneNormalization":
        """Centre = the point nearest all optical axes (least squares); scale puts cameras at mean distance `radius`;
        rotation levels the cameras' up (`camera_up`) where it lies LEVEL_FROM_CAMERAS_DEG or more from world z.

        Falls back to a point ahead of the cameras (by their spread, at least 1 m) when the axes are near-parallel
        or diverge, as for a single camera or a forward-looking rig.
        """
        c2w = torch.as_tensor(camtoworlds, dtype=torch.float64).reshape(-1, 4, 4)
        origins = c2w[:, :3, 3]
        axes = c2w[:, :3, 2] / c2w[:, :3, 2].norm(dim=-1, keepdim=True)
        # Σ (I − a aᵀ) x = Σ (I − a aᵀ) o : minimiser of the summed squared distances to the axes.
        P = torch.eye(3, dtype=torch.float64) - axes[:, :, None] * axes[:, None, :]
        A, b = P.sum(0), (P @ origins[:, :, None]).sum(0)[:, 0]
        eig = torch.linalg.eigvalsh(A)
        if eig[0] > 1e-3 * max(float(eig[-1]), 1e-12):
            center = torch.linalg.solve(A, b)
            # An intersection behind the cameras means they look away from each other: not a usable centre.
            if ((center - origins) * axes).sum(-1).mean() <= 0:
                center = None
        else:
            center = None
        if center is None:
            spread = (origins - origins.mean(0)).norm(dim=-1).mean()
            ahead = max(float(spread), 1.0)
            center = (origins + ahead * axes).mean(0)
        dist = (origins - center).norm(dim=-1).mean()
        scale = radius / float(dist) if dist > 1e-9 else 1.0
        up = camera_up(c2w)
        tilted = up is not None and float(up[2]) < math.cos(math.radians(LEVEL_FROM_CAMERAS_DEG))
        return cls(center, scale, levelling(up) if tilted else None)

    def levelled(self, up: Tensor) -> "SceneNormalization":
        """The same centre and scale, turned so that `up` (3,), a canonical direction of this normalisation,
        becomes canonical +z."""
        return SceneNormalization(self.center, self.scale, levelling(up) @ self.rotation)

    @property
    def up(self) -> Tensor:
        """World up (3,) float64: the world direction of canonical +z."""
        return self.rotation[2]

    def heights_to_world(self, h: float) -> float:
        """Canonical height (z) -> metres along world up (world z where it is up)."""
        return h / self.scale + float(self.up @ self.center)

    def heights_to_canonical(self, h: float) -> float:
        return (h - float(self.up @ self.center)) * self.scale

    def points_to_canonical(self, x: Tensor) -> Tensor:
        x = x - self.center.to(x)
        return (x @ self.rotation.T.to(x) if self._turned else x) * self.scale

    def points_to_world(self, x: Tensor) -> Tensor:
        return self.vectors_to_world(x) + self.center.to(x)

    def vectors_to_world(self, v: Tensor) -> Tensor:
        """Canonical displacements (...,3) (velocities, offsets) -> metres."""
        v = v / self.scale
        return v @ self.rotation.to(v) if self._turned else v

    def covars_to_world(self, c: Tensor) -> Tensor:
        """Canonical covariances (...,3,3) -> square metres."""
        c = c / self.scale ** 2
        if not self._turned:
            return c
        R = self.rotation.to(c)
        return R.T @ c @ R

    def poses_to_canonical(self, c2w: Tensor) -> Tensor:
        """Camera-to-world (...,4,4) in metres -> camera-to-canonical."""
        out = c2w.clone()
        out[..., :3, 3] = self.points_to_canonical(c2w[..., :3, 3])
        if self._turned:
            out[..., :3, :3] = self.rotation.to(c2w) @ c2w[..., :3, :3]
        return out

    def poses_to_world(self, c2w: Tensor) -> Tensor:
        out = c2w.clone()
        out[..., :3, 3] = self.points_to_world(c2w[..., :3, 3])
        if self._turned:
            out[..., :3, :3] = self.rotation.T.to(c2w) @ c2w[..., :3, :3]
        return out

    def lengths_to_world(self, x: Tensor) -> Tensor:
        """Canonical lengths (depths, scales) -> metres."""
        return x / self.scale


@dataclass(frozen=True)
class TimeWindow:
    """A window [start_ns, end_ns] of absolute stamps (int nanoseconds) mapped linearly to [-1, 1]."""

    start_ns: int
    end_ns: int

    def __post_init__(self):
        object.__setattr__(self, "start_ns", int(self.start_ns))
        object.__setattr__(self, "end_ns", int(self.end_ns))
        if self.end_ns < self.start_ns:
            raise ValueError(f"TimeWindow end {self.end_ns} ns precedes start {self.start_ns} ns")

    @classmethod
    def from_stamps(cls, stamps_ns: Tensor) -> "TimeWindow":
        s = torch.as_tensor(stamps_ns, dtype=torch.int64)
        if s.numel() == 0:
            raise ValueError("TimeWindow.from_stamps needs at least one stamp")
        return cls(int(s.min()), int(s.max()))

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9

    def normalize(self, stamps_ns: Tensor | int) -> Tensor:
        """Absolute stamps (int64 ns) -> float32 normalised time; a zero-length window maps to 0."""
        s = torch.as_tensor(stamps_ns, dtype=torch.int64)
        span = self.end_ns - self.start_ns
        if span == 0:
            return torch.zeros(s.shape, dtype=torch.float32, device=s.device)
        # Subtract in int64 first: float64 cannot hold absolute nanosecond stamps exactly.
        rel = (s - self.start_ns).to(torch.float64)
        return (2.0 * rel / span - 1.0).to(torch.float32)

    def denormalize(self, t: Tensor | float) -> Tensor:
        """Normalised time -> absolute stamps (int64 ns, rounded)."""
        t = torch.as_tensor(t, dtype=torch.float64)
        span = self.end_ns - self.start_ns
        return torch.round((t + 1.0) * 0.5 * span).to(torch.int64) + self.start_ns

    def contains(self, stamps_ns: Tensor | int, tolerance_ns: int = 0) -> Tensor:
        s = torch.as_tensor(stamps_ns, dtype=torch.int64)
        return (s >= self.start_ns - tolerance_ns) & (s <= self.end_ns + tolerance_ns)


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


def estimate_up(camtoworlds: Tensor) -> Tensor:
    """World "up" (3,) seen by cameras (V,4,4): the direction orthogonal to all their x (right) axes, which
    is exact for cameras without roll; the mean of their −y axes where the x axes do not pin it down."""
    c2w = torch.as_tensor(camtoworlds, dtype=torch.float64).reshape(-1, 4, 4)
    up = camera_up(c2w, spread=0.1)
    if up is not None:
        return up
    mean_up = -c2w[:, :3, 1].mean(0)
    if mean_up.norm() < 1e-6:
        return torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return mean_up / mean_up.norm()


def orbit_path(camtoworlds: Tensor, n: int, center: Tensor | None = None, turns: float = 1.0) -> Tensor:
    """(n,4,4) cameras circling `center` (default: the point nearest all optical axes) at the mean distance
    and mean elevation of the given cameras, starting at the first camera's azimuth.

    World up comes from the cameras (`estimate_up`), so it works for any bag.
    """
    c2w = torch.as_tensor(camtoworlds, dtype=torch.float64).reshape(-1, 4, 4)
    if center is None:
        center = SceneNormalization.from_cameras(c2w).center
    center = torch.as_tensor(center, dtype=torch.float64)
    up = estimate_up(c2w)
    rel = c2w[:, :3, 3] - center
    height = float((rel @ up).mean())
    horizontal = rel - (rel @ up)[:, None] * up
    radius = float(horizontal.norm(dim=-1).mean())
    e1 = horizontal[0] if horizontal[0].norm() > 1e-6 else torch.linalg.cross(up, torch.tensor([1.0, 0, 0]).double())
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(up, e1)
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi * turns / n)
    eye = center + radius * (torch.cos(angles)[:, None] * e1 + torch.sin(angles)[:, None] * e2) + height * up
    return look_at(eye, center.expand(n, 3), tuple(up.tolist()))
