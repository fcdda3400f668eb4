"""4D Gaussians (4D-LRM / 4DGS parameterisation) and their 3D slices at a time t (DESIGN.md §1).

A 4D Gaussian has mean (x, y, z, t), scales (sx, sy, sz, st), a 4D rotation R = L(q_l)·R(q_r) built from a left
and a right isoclinic rotation (unit quaternions, wxyz), opacity and RGB colour. Σ = R·S·Sᵀ·Rᵀ over (x, y, z, t).
Conditioning on time t gives an ordinary 3D Gaussian whose mean moves with velocity Σ_xyz,t / Σ_tt and whose
opacity is scaled by the temporal marginal p(t) = exp(−½ (t − μ_t)² / Σ_tt).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import SceneNormalization, TimeWindow
from .geometry import quat_to_rotmat, rotmat_to_quat

RAW_CHANNELS = 20  # [xyz 3, t 1, rgb 3, scale_xyz 3, scale_t 1, q_left 4, q_right 4, opacity 1]
NEAR_DEPTH, FAR_DEPTH = 0.1, 4.5  # pixel-aligned depth range along the ray (canonical units)
SCALE_BIAS, MAX_SCALE_XYZ, MAX_SCALE_T = 2.3, 0.3, 1.0
OPACITY_BIAS = 2.0
MIN_MARGINAL = 0.05  # inference-time cull of Gaussians far from the queried time
_EPS = 1e-8
_IDENTITY_QUAT = torch.tensor([1.0, 0.0, 0.0, 0.0])


def left_quat_matrix(q: Tensor) -> Tensor:
    """(…,4) wxyz -> (…,4,4) matrix of x ↦ q·x (left isoclinic rotation when |q| = 1)."""
    a, b, c, d = q.unbind(-1)
    return torch.stack([
        torch.stack([a, -b, -c, -d], -1),
        torch.stack([b, a, -d, c], -1),
        torch.stack([c, d, a, -b], -1),
        torch.stack([d, -c, b, a], -1),
    ], -2)


def right_quat_matrix(q: Tensor) -> Tensor:
    """(…,4) wxyz -> (…,4,4) matrix of x ↦ x·q (right isoclinic rotation when |q| = 1)."""
    p, q1, r, s = q.unbind(-1)
    return torch.stack([
        torch.stack([p, -q1, -r, -s], -1),
        torch.stack([q1, p, s, -r], -1),
        torch.stack([r, -s, p, q1], -1),
        torch.stack([s, r, -q1, p], -1),
    ], -2)


def rotation_4d(quats_l: Tensor, quats_r: Tensor) -> Tensor:
    """(N,4),(N,4) unit quaternions -> (N,4,4) rotation of (x, y, z, t)."""
    return left_quat_matrix(quats_l) @ right_quat_matrix(quats_r)


def _isoclinic_basis(dtype, device) -> Tensor:
    """B[k, l] = L(e_k)·R(e_l): 16 mutually orthogonal 4×4 matrices with ‖B_kl‖²_F = 4."""
    eye = torch.eye(4, dtype=dtype, device=device)
    return left_quat_matrix(eye)[:, None] @ right_quat_matrix(eye)[None, :]


def rotation_4d_to_quats(R: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of rotation_4d: (N,4,4) in SO(4) -> (q_l, q_r), each (N,4) unit wxyz (joint sign is arbitrary).

    Since L(a)R(b) is bilinear, its coordinates in the orthogonal basis L(e_k)R(e_l) form the rank-one matrix
    a·bᵀ (Van Elfrinkhof's associate matrix); a and b are read off its largest column.
    """
    B = _isoclinic_basis(R.dtype, R.device)
    A = torch.einsum("klij,nij->nkl", B, R) / 4.0  # (N,4,4) = a bᵀ
    col = A.norm(dim=1).argmax(-1)  # column with the largest |b_l|
    a = torch.gather(A, 2, col[:, None, None].expand(-1, 4, 1))[..., 0]
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b = torch.einsum("nkl,nk->nl", A, a)
    return a, b / b.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def _spd_factor(cov: Tensor) -> tuple[Tensor, Tensor]:
    """(N,D,D) symmetric PSD -> (scales (N,D), rotation (N,D,D) with det +1), cov = R diag(s²) Rᵀ."""
    evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
    flip = torch.linalg.det(evecs) < 0
    evecs = torch.where(flip[:, None, None], evecs * evecs.new_tensor([-1.0] + [1.0] * (cov.shape[-1] - 1)), evecs)
    return evals.clamp_min(0).sqrt(), evecs


@dataclass
class Gaussians3D:
    """N 3D Gaussians: means (N,3), covars (N,3,3), opacities (N,) in [0,1], colors (N,3) RGB in [0,1]."""

    means: Tensor
    covars: Tensor
    opacities: Tensor
    colors: Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    def to_world(self, norm: SceneNormalization) -> "Gaussians3D":
        """Canonical frame -> metres."""
        return replace(self, means=norm.points_to_world(self.means), covars=self.covars / norm.scale ** 2)

    def scales_quats(self) -> tuple[Tensor, Tensor]:
        """Principal axes: scales (N,3) (standard deviations) and rotations (N,4) wxyz, covars = R S² Rᵀ."""
        scales, R = _spd_factor(self.covars)
        return scales, rotmat_to_quat(R)

    @classmethod
    def from_scales_quats(cls, means, scales, quats, opacities, colors) -> "Gaussians3D":
        R = quat_to_rotmat(quats)
        covars = R @ torch.diag_embed(scales ** 2) @ R.transpose(-1, -2)
        return cls(means, covars, opacities, colors)

    def select(self, mask: Tensor) -> "Gaussians3D":
        return Gaussians3D(self.means[mask], self.covars[mask], self.opacities[mask], self.colors[mask])


@dataclass
class Gaussians4D:
    """N 4D Gaussians with activated parameters.

    In the model's canonical frame (positions in canonical units, times in normalised window units [-1,1]) unless
    produced by `to_world` (metres, seconds since the window start). means (N,3), times (N,), scales (N,3),
    scale_t (N,), quats_l (N,4), quats_r (N,4) unit wxyz, opacities (N,), colors (N,3) RGB in [0,1].
    """

    means: Tensor
    times: Tensor
    scales: Tensor
    scale_t: Tensor
    quats_l: Tensor
    quats_r: Tensor
    opacities: Tensor
    colors: Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def from_raw(cls, raw: Tensor, ray_origins: Tensor | None = None, ray_dirs: Tensor | None = None,
                 view_times: Tensor | None = None, pixel_size: Tensor | None = None,
                 scale_floor_px: float = 0.0, pixel_colors: Tensor | None = None,
                 time_floor: float = 0.0) -> "Gaussians4D":
        """Paper activations on raw predictions (N,20); with rays (N,3) the Gaussians are pixel-aligned.

        Pixel-aligned: w = σ(mean(xyz)), depth δ = (1−w)·0.1 + w·4.5 along the ray, μ = o + δ·d, clipped to
        [-1,1]³. Free Gaussians (no rays): xyz clipped to [-1,1]³. Colour is σ(rgb) (SH degree 0). Quaternions
        are L2-normalised after adding the identity (1,0,0,0): the same as a bias in the head, and it keeps a zero
        prediction a valid rotation instead of a degenerate zero covariance.

        Two optional departures for pixel-aligned Gaussians (both off by default, i.e. the paper's activations):
        - view_times (N,): the time channel is an offset from the pixel's own view time, μ_t = t_view + raw_t.
          The paper's raw μ_t lets a small model park a pixel's Gaussian at another time, where its own view
          cannot supervise it (seen in CPU training: median |μ_t − t_view| 0.4 of the window).
        - pixel_size (N,) canonical length of one pixel at unit distance (1/f) and scale_floor_px k: spatial
          scales become sqrt(s² + (k·δ·pixel_size)²), a 3D smoothing filter in the manner of Mip-Splatting
          (Yu et al. 2024). Without it the model shrank splats far below a pixel and let the rasteriser's 2D
          low-pass fill the pixel, which leaves holes when rendering at a finer resolution than the input.
        - pixel_colors (N,3) in [0,1], the input pixel under each Gaussian: colour is σ(rgb + logit(pixel)), a
          residual on the pixel's own colour (clamped to [0.001, 0.999] before the logit) rather than a colour
          decoded from scratch, which an 8×8-patch token of a small model reproduces only blurred.
        - time_floor f (normalised time): temporal scales become sqrt(s_t² + f²), the temporal counterpart of the
          spatial floor. A small model otherwise gives each Gaussian a lifetime far below the frame spacing and
          scatters the Gaussians over time, so that only a few percent are alive at any one time.
        """
        if raw.ndim != 2 or raw.shape[1] != RAW_CHANNELS:
            raise ValueError(f"raw must be (N,{RAW_CHANNELS}), got {tuple(raw.shape)}")
        xyz, t, rgb, s_xyz, s_t, q_l, q_r, opa = raw.split([3, 1, 3, 3, 1, 4, 4, 1], dim=-1)
        scales = torch.exp(s_xyz - SCALE_BIAS).clamp(max=MAX_SCALE_XYZ)
        times = t[:, 0]
        scale_t = torch.exp(s_t[:, 0] - SCALE_BIAS).clamp(max=MAX_SCALE_T)
        if pixel_colors is not None:
            rgb = rgb + torch.logit(pixel_colors.to(rgb).clamp(1e-3, 1 - 1e-3))
        if ray_origins is not None:
            if ray_dirs is None:
                raise ValueError("pixel-aligned Gaussians need both ray_origins and ray_dirs")
            w = torch.sigmoid(xyz.mean(-1, keepdim=True))
            depth = (1 - w) * NEAR_DEPTH + w * FAR_DEPTH
            xyz = ray_origins + depth * ray_dirs
            if view_times is not None:
                times = view_times.to(times) + times
            if pixel_size is not None and scale_floor_px > 0:
                floor = scale_floor_px * depth * pixel_size.to(depth)[:, None]
                scales = (scales ** 2 + floor ** 2).sqrt()
            if time_floor > 0:
                scale_t = (scale_t ** 2 + time_floor ** 2).sqrt()
        elif view_times is not None or pixel_size is not None or pixel_colors is not None or time_floor > 0:
            raise ValueError("view_times, pixel_size, pixel_colors and time_floor apply to pixel-aligned Gaussians "
                             "only (pass the rays)")
        return cls(
            means=xyz.clamp(-1.0, 1.0),
            times=times,
            scales=scales,
            scale_t=scale_t,
            quats_l=F.normalize(q_l + _IDENTITY_QUAT.to(q_l), dim=-1, eps=_EPS),
            quats_r=F.normalize(q_r + _IDENTITY_QUAT.to(q_r), dim=-1, eps=_EPS),
            opacities=torch.sigmoid(opa[:, 0] - OPACITY_BIAS),
            colors=torch.sigmoid(rgb),
        )

    @staticmethod
    def cat(parts: list["Gaussians4D"]) -> "Gaussians4D":
        return Gaussians4D(*[torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Gaussians4D)])

    def select(self, mask: Tensor) -> "Gaussians4D":
        return Gaussians4D(*[getattr(self, f.name)[mask] for f in fields(Gaussians4D)])

    def detach(self) -> "Gaussians4D":
        return Gaussians4D(*[getattr(self, f.name).detach() for f in fields(Gaussians4D)])

    def to(self, device=None, dtype=None) -> "Gaussians4D":
        return Gaussians4D(*[getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(Gaussians4D)])

    def rotation(self) -> Tensor:
        """(N,4,4) rotation of (x, y, z, t)."""
        return rotation_4d(self.quats_l, self.quats_r)

    def covariance(self) -> Tensor:
        """(N,4,4) Σ = R S Sᵀ Rᵀ, S = diag(sx, sy, sz, st)."""
        R = self.rotation()
        s2 = torch.cat([self.scales, self.scale_t[:, None]], -1) ** 2
        return (R * s2[:, None, :]) @ R.transpose(-1, -2)

    def marginal(self, t: float | Tensor, cov: Tensor | None = None) -> Tensor:
        """(N,) temporal marginal p(t) = exp(−½ (t − μ_t)² / Σ_tt)."""
        cov = self.covariance() if cov is None else cov
        sigma_tt = cov[:, 3, 3].clamp_min(_EPS)
        return torch.exp(-0.5 * (t - self.times) ** 2 / sigma_tt)

    def slice(self, t: float | Tensor, min_marginal: float = MIN_MARGINAL) -> Gaussians3D:
        """3D Gaussians at time t (same time units as `times`); those with p(t) < min_marginal are dropped."""
        return self.slice_many([t], min_marginal)[0]

    def temporal_variance(self) -> Tensor:
        """(N,) Σ_tt from the rotation's last row alone (what the temporal marginal needs; cheaper than Σ)."""
        a, b, c, d = self.quats_l.unbind(-1)
        p, q, r, s = self.quats_r.unbind(-1)
        # row 3 of L(q_l)·R(q_r): [d, -c, b, a] times right_quat_matrix(q_r), written out
        row = (d * p - c * q + b * r + a * s, -d * q - c * p - b * s + a * r,
               -d * r - c * s + b * p - a * q, -d * s + c * r + b * q + a * p)
        s2 = torch.cat([self.scales, self.scale_t[:, None]], -1) ** 2
        return sum(x ** 2 * s2[:, k] for k, x in enumerate(row))

    def slice_many(self, ts, min_marginal: float = MIN_MARGINAL) -> list[Gaussians3D]:
        """Slices at several times sharing one covariance computation."""
        if min_marginal > 0:
            # Condition only the Gaussians that can pass the cull at one of the times (most are far from any one
            # time); the slack keeps every Gaussian whose exact p(t) may reach min_marginal: same result.
            sigma_tt = self.temporal_variance().clamp_min(_EPS)
            keep = torch.zeros(len(self), dtype=torch.bool, device=self.means.device)
            for t in ts:
                keep |= torch.exp(-0.5 * (t - self.times) ** 2 / sigma_tt) >= 0.99 * min_marginal
            return self.select(keep)._slice_all(ts, min_marginal)
        return self._slice_all(ts, min_marginal)

    def _slice_all(self, ts, min_marginal: float) -> list[Gaussians3D]:
        cov = self.covariance()
        sigma_tt = cov[:, 3, 3].clamp_min(_EPS)
        sigma_xt = cov[:, :3, 3]  # (N,3)
        velocity = sigma_xt / sigma_tt[:, None]
        cov3 = cov[:, :3, :3] - sigma_xt[:, :, None] * sigma_xt[:, None, :] / sigma_tt[:, None, None]
        cov3 = 0.5 * (cov3 + cov3.transpose(-1, -2))
        out = []
        for t in ts:
            dt = t - self.times
            p = torch.exp(-0.5 * dt ** 2 / sigma_tt)
            g = Gaussians3D(self.means + velocity * dt[:, None], cov3, self.opacities * p, self.colors)
            out.append(g.select(p >= min_marginal) if min_marginal > 0 else g)
        return out

    def to_world(self, norm: SceneNormalization, window: TimeWindow) -> "Gaussians4D":
        """Canonical frame, normalised time -> metres and seconds since `window.start_ns`.

        Space and time scale by different factors, so the 4D covariance D Σ D (D = diag(1/s, 1/s, 1/s, T/2)) is
        factorised again into scales and a left/right quaternion pair.
        """
        half_span = 0.5 * window.duration_s
        if half_span <= 0:
            raise ValueError("to_world needs a window of positive duration")
        cov = self.covariance()
        d = cov.new_tensor([1.0 / norm.scale] * 3 + [half_span])
        scales, R = _spd_factor(cov * d[:, None] * d[None, :])
        q_l, q_r = rotation_4d_to_quats(R)
        return Gaussians4D(
            means=norm.points_to_world(self.means), times=(self.times + 1.0) * half_span,
            scales=scales[:, :3], scale_t=scales[:, 3], quats_l=q_l, quats_r=q_r,
            opacities=self.opacities, colors=self.colors)
