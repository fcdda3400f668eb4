"""Primitive motion over a window: rigid trajectories, hinged chains, non-uniform scaling, or nothing.

Time is the window fraction u (0 at the first nominal frame, 1 at the last; jittered stamps may fall slightly
outside). Each primitive owns a link frame (R_link, c_link); its shape sits in that frame with a fixed rotation
R_shape and a time-varying per-axis scale. Root links follow c(u) = c0 + v·u + a·sin(2π f u + φ) and rotate
about a fixed axis by ω·u; a child link hangs off its parent at joint offset `joint` (parent link frame,
metres) and turns about `hinge_axis` by θ(u) = θ0 + A·sin(2π f u + φ) (+ ω_h·u with `hinge_rate`: wheels), its centre
at `offset` in the rotated frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

MOTION_KINDS = ("static", "rigid", "articulated", "scaling")


def axis_angle_to_matrix(axis: Tensor, angle: Tensor) -> Tensor:
    """Rodrigues: unit axis (...,3), angle (...) radians -> rotation (...,3,3)."""
    x, y, z = axis.unbind(-1)
    c, s = torch.cos(angle), torch.sin(angle)
    C = 1 - c
    return torch.stack([
        torch.stack([c + x * x * C, x * y * C - z * s, x * z * C + y * s], -1),
        torch.stack([y * x * C + z * s, c + y * y * C, y * z * C - x * s], -1),
        torch.stack([z * x * C - y * s, z * y * C + x * s, c + z * z * C], -1)], -2)


def random_rotation(g: torch.Generator, n: int) -> Tensor:
    """n uniformly random rotations (n,3,3) float64 (from normalised Gaussian quaternions)."""
    q = torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=-1)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], -2)


@dataclass
class Motion:
    """Per-primitive motion parameters, P primitives, float64 (see module docstring). Parents precede children."""

    parent: list[int]            # -1 for a root link
    c0: Tensor                   # (P,3) root centre at u = 0 (metres)
    vel: Tensor                  # (P,3) metres per window
    osc_amp: Tensor              # (P,3) metres
    osc_freq: Tensor             # (P,) cycles per window
    osc_phase: Tensor            # (P,)
    spin_axis: Tensor            # (P,3) unit
    spin: Tensor                 # (P,) radians per window
    R0: Tensor                   # (P,3,3) link orientation at u = 0 (roots)
    joint: Tensor                # (P,3) joint position in the parent link frame (children)
    offset: Tensor               # (P,3) child centre relative to the joint, in its own link frame
    hinge_axis: Tensor           # (P,3) unit, in the parent link frame
    hinge0: Tensor               # (P,)
    hinge_amp: Tensor            # (P,)
    hinge_freq: Tensor           # (P,)
    hinge_phase: Tensor          # (P,)
    R_shape: Tensor              # (P,3,3) shape orientation in its link frame
    scale0: Tensor               # (P,3) semi-axes in metres
    scale_amp: Tensor            # (P,3) relative amplitude (0 = constant)
    scale_freq: Tensor           # (P,)
    scale_phase: Tensor          # (P,)
    hinge_rate: Tensor | None = None  # (P,) radians per window added to θ (continuous turning); None = 0

    @property
    def num(self) -> int:
        return len(self.parent)

    def at(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Poses at window fractions u (V,) float64 -> rotation (V,P,3,3), centre (V,P,3), scale (V,P,3)."""
        u = u.to(torch.float64)[:, None]  # (V,1)
        tau = 2 * math.pi * u
        c_root = self.c0 + self.vel * u[..., None] + self.osc_amp * torch.sin(
            tau * self.osc_freq + self.osc_phase)[..., None]
        R_root = axis_angle_to_matrix(self.spin_axis.expand(u.shape[0], -1, -1), self.spin * u) @ self.R0
        theta = self.hinge0 + self.hinge_amp * torch.sin(tau * self.hinge_freq + self.hinge_phase)
        if self.hinge_rate is not None:
            theta = theta + self.hinge_rate * u
        R_links, c_links = [], []
        for i, par in enumerate(self.parent):
            if par < 0:
                R_links.append(R_root[:, i])
                c_links.append(c_root[:, i])
                continue
            Rp, cp = R_links[par], c_links[par]
            R = Rp @ axis_angle_to_matrix(self.hinge_axis[i].expand(u.shape[0], 3), theta[:, i])
            c = cp + (Rp @ self.joint[i]) + (R @ self.offset[i])
            R_links.append(R)
            c_links.append(c)
        R = torch.stack(R_links, 1) @ self.R_shape
        scale = self.scale0 * (1 + self.scale_amp * torch.sin(tau * self.scale_freq + self.scale_phase)[..., None])
        return R, torch.stack(c_links, 1), scale
