"""4D Gaussians (4D-LRM / 4DGS) and their 3D slices at a time t (docs/design.md §1).

In the paper's parameterisation a 4D Gaussian has mean (x, y, z, t), scales (sx, sy, sz, st), a 4D rotation
R = L(q_l)·R(q_r) built from a left and a right isoclinic rotation (unit quaternions, wxyz), opacity and RGB
colour, Σ = R·S·Sᵀ·Rᵀ over (x, y, z, t). Conditioning on time t gives an ordinary 3D Gaussian whose mean moves
with velocity Σ_xyz,t / Σ_tt and whose opacity is scaled by the temporal marginal p(t) = exp(−½ (t − μ_t)² / Σ_tt).
`Gaussians4D` stores that conditional form (the same Gaussians, parameterised by what slicing needs) and converts
to and from the paper's.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import SceneNormalization, TimeWindow
from .geometry import quat_to_rotmat, rotmat_to_quat
from .sym3 import principal_axes

MIN_MARGINAL = 0.05  # inference-time cull of Gaussians far from the queried time
# Training culls far less: a Gaussian culled from every target gets no gradient, so temporal extents that start
# short (σ_t 0.2) could never grow to reach a target 2/3 of the window away (marginal 0.004 there).
TRAIN_MIN_MARGINAL = 1e-3
ONE_INSTANT_HALF_SPAN_S = 0.5  # to_world's seconds per normalised time unit where a window is one instant
_EPS = 1e-8


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
    """N 3D Gaussians: means (N,3), covars (N,3,3), opacities (N,) in [0,1], colors (N,3) RGB in [0,1] (a
    reconstruction's refined ones within reconstructor.REFINE_RANGE)."""

    means: Tensor
    covars: Tensor
    opacities: Tensor
    colors: Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    def to_world(self, norm: SceneNormalization) -> "Gaussians3D":
        """Canonical frame -> metres."""
        return replace(self, means=norm.points_to_world(self.means), covars=norm.covars_to_world(self.covars))

    def scales_quats(self) -> tuple[Tensor, Tensor]:
        """Principal axes: scales (N,3) (standard deviations) and rotations (N,4) wxyz, covars = R S² Rᵀ."""
        fast = principal_axes(self.covars)
        if fast is not None:
            return fast
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
    """N 4D Gaussians, stored in their conditional (sliced) form.

    A 4D Gaussian over (x, y, z, t) with covariance Σ is stored as what slicing needs: the spatial mean at its
    temporal centre `means` (N,3), the temporal centre `times` (N,), `velocities` (N,3) = Σ_xyz,t / Σ_tt, the
    conditional spatial covariance `covars` (N,3,3) = Σ_xyz − Σ_xyz,t Σ_xyz,tᵀ / Σ_tt (the same at every t), the
    temporal standard deviation `scale_t` (N,) = √Σ_tt, opacities (N,) and colours (N,3) RGB in [0,1]. This is an
    exact reparameterisation of the paper's (scales, scale_t, left/right quaternions) form: `from_rotations` and
    `rotations` convert, `covariance` rebuilds Σ. Predictions store it directly, so a head can emit velocities and
    footprints without differentiating through an eigendecomposition.

    Units: canonical frame and normalised time [-1,1] (velocities in canonical units per normalised time unit),
    unless produced by `to_world` (metres, seconds since the window start, metres per second).
    """

    means: Tensor
    times: Tensor
    velocities: Tensor
    covars: Tensor
    scale_t: Tensor
    opacities: Tensor
    colors: Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @classmethod
    def from_rotations(cls, means: Tensor, times: Tensor, scales: Tensor, scale_t: Tensor, quats_l: Tensor,
                       quats_r: Tensor, opacities: Tensor, colors: Tensor) -> "Gaussians4D":
        """The paper's parameterisation: Σ = R S Sᵀ Rᵀ, R = L(q_l)·R(q_r), S = diag(scales, scale_t).

        scales (N,3), scale_t (N,) standard deviations; quats_l, quats_r (N,4) unit wxyz."""
        R = rotation_4d(quats_l, quats_r)
        s2 = torch.cat([scales, scale_t[:, None]], -1) ** 2
        return cls.from_covariance(means, times, (R * s2[:, None, :]) @ R.transpose(-1, -2), opacities, colors)

    @classmethod
    def from_covariance(cls, means: Tensor, times: Tensor, cov: Tensor, opacities: Tensor,
                        colors: Tensor) -> "Gaussians4D":
        """From a full 4D covariance (N,4,4) over (x, y, z, t)."""
        sigma_tt = cov[:, 3, 3].clamp_min(_EPS)
        sigma_xt = cov[:, :3, 3]
        cov3 = cov[:, :3, :3] - sigma_xt[:, :, None] * sigma_xt[:, None, :] / sigma_tt[:, None, None]
        return cls(means=means, times=times, velocities=sigma_xt / sigma_tt[:, None],
                   covars=0.5 * (cov3 + cov3.transpose(-1, -2)), scale_t=sigma_tt.sqrt(), opacities=opacities,
                   colors=colors)

    def covariance(self) -> Tensor:
        """(N,4,4) Σ: Σ_tt = scale_t², Σ_xyz,t = v Σ_tt, Σ_xyz = covars + v vᵀ Σ_tt."""
        stt = self.scale_t ** 2
        vt = self.velocities * stt[:, None]
        top = torch.cat([self.covars + self.velocities[:, :, None] * vt[:, None, :], vt[:, :, None]], -1)
        bottom = torch.cat([vt, stt[:, None]], -1)[:, None, :]
        return torch.cat([top, bottom], -2)

    def rotations(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The paper's form of Σ: (scales (N,3), scale_t (N,), quats_l (N,4), quats_r (N,4)), Σ = R S² Rᵀ.

        An eigendecomposition: for export (PLY), not for training. Which axis is "time" in the paper's form is
        the eigenvector with the largest |t| component, so a static Gaussian keeps scale_t = its temporal scale."""
        cov = self.covariance()
        evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
        # the eigenvector most aligned with t goes last, the spatial ones keep their eigenvalue order
        t_axis = F.one_hot(evecs[:, 3, :].abs().argmax(-1), 4)
        order = torch.argsort(torch.arange(4, device=cov.device) + 10 * t_axis, dim=-1)
        evals = torch.gather(evals, 1, order)
        evecs = torch.gather(evecs, 2, order[:, None, :].expand(-1, 4, -1))
        flip = torch.linalg.det(evecs) < 0
        evecs = torch.where(flip[:, None, None], evecs * evecs.new_tensor([-1.0, 1.0, 1.0, 1.0]), evecs)
        s = evals.clamp_min(0).sqrt()
        q_l, q_r = rotation_4d_to_quats(evecs)
        return s[:, :3], s[:, 3], q_l, q_r

    @staticmethod
    def cat(parts: list["Gaussians4D"]) -> "Gaussians4D":
        return Gaussians4D(*[torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Gaussians4D)])

    def select(self, mask: Tensor) -> "Gaussians4D":
        return Gaussians4D(*[getattr(self, f.name)[mask] for f in fields(Gaussians4D)])

    def detach(self) -> "Gaussians4D":
        return Gaussians4D(*[getattr(self, f.name).detach() for f in fields(Gaussians4D)])

    def to(self, device=None, dtype=None) -> "Gaussians4D":
        return Gaussians4D(*[getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(Gaussians4D)])

    def marginal(self, t: float | Tensor) -> Tensor:
        """(N,) temporal marginal p(t) = exp(−½ (t − μ_t)² / Σ_tt)."""
        return torch.exp(-0.5 * (t - self.times) ** 2 / (self.scale_t ** 2).clamp_min(_EPS))

    def slice(self, t: float | Tensor, min_marginal: float = MIN_MARGINAL) -> Gaussians3D:
        """3D Gaussians at time t (same time units as `times`); those with p(t) < min_marginal are dropped."""
        return self.slice_many([t], min_marginal)[0]

    def slice_many(self, ts, min_marginal: float = MIN_MARGINAL) -> list[Gaussians3D]:
        """3D Gaussians at each time in `ts`: means μ + v (t − μ_t), covariance `covars`, opacity × p(t).

        The marginal is computed first, so culled Gaussians cost nothing more (a viewer slices 100k+ per move). With
        min_marginal > 0, Gaussians of zero opacity (a reconstruction's hidden ones) are dropped too."""
        return [self.slice_kept(t, min_marginal)[1] for t in ts]

    def slice_kept(self, t: float | Tensor, min_marginal: float = MIN_MARGINAL,
                   min_opacity: float = 0.0) -> tuple[Tensor | None, Gaussians3D]:
        """`slice(t, min_marginal)` and the indices (M,) of the Gaussians it kept (None: all of them, in order).
        min_opacity: also drop those whose sliced opacity (opacity × p(t)) is below it; a renderer's own cut
        (1/255) drops nothing it would draw, and spares it the rest."""
        p = self.marginal(t)
        if min_marginal > 0:
            shown = self.opacities * p
            mask = (p >= min_marginal) & (self.opacities > 0)
            if min_opacity > 0:
                mask &= shown.double() >= min_opacity
            keep = torch.nonzero(mask).squeeze(1)
            dt = t - self.times.index_select(0, keep)
            return keep, Gaussians3D(self.means.index_select(0, keep) + self.velocities.index_select(0, keep)
                                     * dt[:, None], self.covars.index_select(0, keep), shown.index_select(0, keep),
                                     self.colors.index_select(0, keep))
        dt = t - self.times
        return None, Gaussians3D(self.means + self.velocities * dt[:, None], self.covars, self.opacities * p,
                                 self.colors)

    def to_world(self, norm: SceneNormalization, window: TimeWindow) -> "Gaussians4D":
        """Canonical frame, normalised time -> metres and seconds since `window.start_ns`. A window of one instant
        (a synchronized rig's single frame: TimeWindow.normalize maps it to 0) keeps 0 at 0 s and takes a nominal
        half-span of ONE_INSTANT_HALF_SPAN_S for the temporal extents and velocities."""
        half_span, offset = 0.5 * window.duration_s, 1.0
        if half_span <= 0:
            half_span, offset = ONE_INSTANT_HALF_SPAN_S, 0.0
        return Gaussians4D(
            means=norm.points_to_world(self.means), times=(self.times + offset) * half_span,
            velocities=norm.vectors_to_world(self.velocities) / half_span, covars=norm.covars_to_world(self.covars),
            scale_t=self.scale_t * half_span, opacities=self.opacities, colors=self.colors)

    def spatial_to_world(self, norm: SceneNormalization) -> "Gaussians4D":
        """Canonical frame -> metres, time units unchanged (velocities in metres per time unit)."""
        return replace(self, means=norm.points_to_world(self.means), velocities=norm.vectors_to_world(self.velocities),
                       covars=norm.covars_to_world(self.covars))
