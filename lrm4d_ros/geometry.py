"""Rotations and rigid poses: the package's one quaternion module (no ROS, no message types).

Quaternions are wxyz everywhere inside the package (ROS messages carry xyzw: only io/messages.py converts).
The batched torch functions serve the Gaussians; the numpy ones (single poses, float64) serve message
conversion and pose interpolation, and are the torch ones applied to one element.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-8
# |‖q‖² − 1| beyond this is a malformed orientation, not rounding: tf2's and RViz's own tolerance
# (QUATERNION_NORMALIZATION_TOLERANCE = 10e-3 on the squared norm), so that what ROS accepts (0.71, 0, 0, 0.71 written
# to two decimals: ‖q‖² = 1.008) is read here too, renormalised.
QUAT_UNIT_TOLERANCE = 1e-2


def rotmat_to_quat(R: Tensor) -> Tensor:
    """(N,3,3) rotation matrices -> (N,4) unit quaternions wxyz with w ≥ 0 (Shepperd's method)."""
    m = R
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack([
        torch.stack([1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                     m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0],
                     1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                     1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
    ], 1)  # (N,4 candidates,4): each is 4·q_i·q for the candidate's pivot i
    pivot = torch.stack([1 + tr, 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2],
                         1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1)
    best = pivot.argmax(-1)
    q = cands[torch.arange(R.shape[0], device=R.device), best]
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.where(q[:, :1] < 0, -q, q)


def quat_to_rotmat(q: Tensor) -> Tensor:
    """(N,4) wxyz (normalised here) -> (N,3,3)."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quat(R) -> np.ndarray:
    """Rotation (3,3) -> unit quaternion (4,) float64 wxyz with w >= 0."""
    R = torch.as_tensor(np.asarray(R, dtype=np.float64).reshape(1, 3, 3))
    return rotmat_to_quat(R)[0].numpy()


def quat_to_matrix(q) -> np.ndarray:
    """Quaternion (4,) wxyz, normalised here -> rotation (3,3) float64."""
    return quat_to_rotmat(torch.as_tensor(np.asarray(q, dtype=np.float64).reshape(1, 4)))[0].numpy()


# Farther than any Earth-fixed frame's coordinates (UTM northings reach 1e7 m): beyond it a position is garbage, and
# its squares overflow the float32 the model computes in
MAX_POSITION_M = 1e9


def rigid_matrix(position, quat_wxyz) -> np.ndarray:
    """4×4 float64 from a position (3,) and a unit quaternion (4,) wxyz (renormalised).

    Raises ValueError for non-finite values, a position farther than MAX_POSITION_M from the origin, or a
    quaternion whose squared norm is off 1 by more than QUAT_UNIT_TOLERANCE (as tf2 allows).
    """
    p = np.asarray(position, dtype=np.float64).reshape(3)
    q = np.asarray(quat_wxyz, dtype=np.float64).reshape(4)
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError(f"pose has non-finite values: position {p.tolist()}, quaternion {q.tolist()}")
    if float(np.abs(p).max()) > MAX_POSITION_M:
        raise ValueError(f"pose position {p.tolist()} is more than {MAX_POSITION_M:g} m from the world origin")
    n = float(np.linalg.norm(q))
    if abs(n * n - 1.0) > QUAT_UNIT_TOLERANCE:
        raise ValueError(f"pose quaternion is not unit length (norm {n:.6f})")
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(q / n)
    T[:3, 3] = p
    return T


def slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (4,) at fraction a in [0,1], along the shorter arc."""
    d = float(np.dot(q0, q1))
    if d < 0.0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly parallel: lerp is exact to float precision and avoids dividing by sin(~0)
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(d, 1.0))
    s = math.sin(theta)
    return (math.sin((1.0 - a) * theta) * q0 + math.sin(a * theta) * q1) / s
