"""Eigen-decomposition of many symmetric 3×3 matrices on the CPU: cyclic Jacobi rotations in a numba kernel.

`torch.linalg.eigh` costs about 1.2 µs per 3×3 matrix on this CPU (LAPACK call overhead), which made turning a
window's ~90k Gaussians into PointCloud2 scales and rotations take 100 ms; the kernel does the same in a few ms.
Falls back to torch where numba is unavailable or the tensor is not on the CPU.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

try:
    import numba

    @numba.njit(parallel=True, cache=True)
    def _jacobi(cov: np.ndarray, evals: np.ndarray, evecs: np.ndarray) -> None:
        for n in numba.prange(cov.shape[0]):
            a = cov[n].copy()
            v = np.eye(3)
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
            order = np.argsort(np.array([a[0, 0], a[1, 1], a[2, 2]]))
            for j in range(3):
                evals[n, j] = a[order[j], order[j]]
                for k in range(3):
                    evecs[n, k, j] = v[k, order[j]]
except ImportError:  # numba is a dependency; this only keeps a broken install working
    _jacobi = None


def eigh3(cov: Tensor) -> tuple[Tensor, Tensor]:
    """(N,3,3) symmetric -> eigenvalues (N,3) ascending and eigenvectors (N,3,3) as columns, like
    torch.linalg.eigh (eigenvector signs may differ)."""
    if _jacobi is None or cov.device.type != "cpu" or cov.requires_grad or cov.shape[-2:] != (3, 3):
        return torch.linalg.eigh(cov)
    c = np.ascontiguousarray(cov.detach().reshape(-1, 3, 3).numpy(), dtype=np.float64)
    evals, evecs = np.empty((len(c), 3)), np.empty((len(c), 3, 3))
    if len(c):
        _jacobi(c, evals, evecs)
    return (torch.from_numpy(evals).to(cov.dtype).reshape(*cov.shape[:-1]),
            torch.from_numpy(evecs).to(cov.dtype).reshape(cov.shape))
