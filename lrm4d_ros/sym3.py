"""Principal axes of many symmetric 3×3 matrices on the CPU: cyclic Jacobi rotations in a numba kernel.

`torch.linalg.eigh` costs about 1.2 µs per 3×3 matrix on this CPU (LAPACK call overhead), which made turning a
window's ~90k Gaussians into PointCloud2 scales and rotations take 100 ms. `principal_axes` goes straight from
covariances to scales and wxyz quaternions in one pass (after eigh, the torch route's determinant, sign flip and
quaternion conversion cost as much again). Where numba is unavailable or the tensor is not on the CPU it returns
None and the caller uses torch (`gaussians._spd_factor`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

try:
    import numba

    @numba.njit(cache=True, inline="always")
    def _jacobi_one(a: np.ndarray, v: np.ndarray) -> None:
        """Diagonalise the symmetric 3×3 `a` in place by cyclic Jacobi rotations, accumulating them in `v`."""
        for _ in range(16):
            off = a[0, 1] * a[0, 1] + a[0, 2] * a[0, 2] + a[1, 2] * a[1, 2]
            scale = a[0, 0] * a[0, 0] + a[1, 1] * a[1, 1] + a[2, 2] * a[2, 2]
            if off <= 1e-30 * scale or off == 0.0:
                break
            for p, q in ((0, 1), (0, 2), (1, 2)):
                if a[p, q] == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * a[p, q])
                t = 1.0 / (abs(theta) + np.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(3):  # A J
                    akp, akq = a[k, p], a[k, q]
                    a[k, p], a[k, q] = c * akp - s * akq, s * akp + c * akq
                for k in range(3):  # Jᵀ (A J)
                    apk, aqk = a[p, k], a[q, k]
                    a[p, k], a[q, k] = c * apk - s * aqk, s * apk + c * aqk
                for k in range(3):  # V J
                    vkp, vkq = v[k, p], v[k, q]
                    v[k, p], v[k, q] = c * vkp - s * vkq, s * vkp + c * vkq

    @numba.njit(cache=True, inline="always")
    def _order(a: np.ndarray) -> tuple[int, int, int]:
        """Indices of the diagonal of `a` in ascending order."""
        i, j, k = 0, 1, 2
        if a[j, j] < a[i, i]:
            i, j = j, i
        if a[k, k] < a[j, j]:
            j, k = k, j
        if a[j, j] < a[i, i]:
            i, j = j, i
        return i, j, k

    CHUNK = 1024  # matrices per parallel task: its scratch is allocated once, not per matrix

    @numba.njit(parallel=True, cache=True)
    def _axes(cov: np.ndarray, scales: np.ndarray, quats: np.ndarray) -> None:
        n_all = cov.shape[0]
        for c in numba.prange((n_all + CHUNK - 1) // CHUNK):
            a, v, m = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
            for n in range(c * CHUNK, min(n_all, (c + 1) * CHUNK)):
                for r in range(3):
                    for k in range(3):
                        a[r, k] = 0.5 * (cov[n, r, k] + cov[n, k, r])
                v[:] = 0.0
                v[0, 0] = v[1, 1] = v[2, 2] = 1.0
                _jacobi_one(a, v)
                order = _order(a)
                for j in range(3):
                    scales[n, j] = np.sqrt(max(a[order[j], order[j]], 0.0))
                    for k in range(3):
                        m[k, j] = v[k, order[j]]
                det = (m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
                       - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
                       + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]))
                if det < 0.0:  # a proper rotation: flip the first axis (the Gaussian is symmetric about it)
                    for k in range(3):
                        m[k, 0] = -m[k, 0]
                # Shepperd's method with the largest of 4w², 4x², 4y², 4z² as pivot, as geometry.rotmat_to_quat
                tr = m[0, 0] + m[1, 1] + m[2, 2]
                p0, p1 = 1 + tr, 1 + m[0, 0] - m[1, 1] - m[2, 2]
                p2, p3 = 1 - m[0, 0] + m[1, 1] - m[2, 2], 1 - m[0, 0] - m[1, 1] + m[2, 2]
                if p0 >= p1 and p0 >= p2 and p0 >= p3:
                    w, x, y, z = p0, m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]
                elif p1 >= p2 and p1 >= p3:
                    w, x, y, z = m[2, 1] - m[1, 2], p1, m[0, 1] + m[1, 0], m[0, 2] + m[2, 0]
                elif p2 >= p3:
                    w, x, y, z = m[0, 2] - m[2, 0], m[0, 1] + m[1, 0], p2, m[1, 2] + m[2, 1]
                else:
                    w, x, y, z = m[1, 0] - m[0, 1], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], p3
                f = 1.0 / max(np.sqrt(w * w + x * x + y * y + z * z), 1e-8)
                if w < 0.0:
                    f = -f
                quats[n, 0], quats[n, 1], quats[n, 2], quats[n, 3] = w * f, x * f, y * f, z * f
except ImportError:  # numba is a dependency; this only keeps a broken install working
    _axes = None


def principal_axes(cov: Tensor) -> tuple[Tensor, Tensor] | None:
    """(N,3,3) symmetric PSD -> (scales (N,3) ascending standard deviations, rotations (N,4) wxyz with w ≥ 0 and
    det +1), cov = R diag(s²) Rᵀ, in one pass over the matrices; None where the kernel cannot run (the caller
    then uses torch)."""
    if _axes is None or cov.device.type != "cpu" or cov.requires_grad or cov.ndim != 3 or cov.shape[1:] != (3, 3):
        return None
    c = np.ascontiguousarray(cov.detach().numpy(), dtype=np.float64)
    scales, quats = np.empty((len(c), 3)), np.empty((len(c), 4))
    if len(c):
        from .cpu_kernels import numba_threads  # numba is there: _axes compiled

        numba_threads()
        _axes(c, scales, quats)
    return torch.from_numpy(scales).to(cov.dtype), torch.from_numpy(quats).to(cov.dtype)
