"""Analytic ray–primitive intersections in each primitive's unit (object) space.

A primitive is a unit shape mapped to the world by p_world = R · (s ⊙ p_local) + c. Rays are mapped to object
space by the affine inverse without renormalising the direction, so the ray parameter t is the same in both
spaces: with unit world directions t is the metric distance along the ray.

Every `intersect_*` takes object-space origins o (K,3) and directions d (K,3) and returns
(t (K,) with +inf where missed, object-space normal (K,3), not normalised). Shapes:

- sphere: unit sphere;  box: [-1,1]³;  cylinder: x²+y² ≤ 1, |z| ≤ 1;
- cone: apex (0,0,1), base radius 1 at z = −1;  capsule: segment z ∈ [−h, h] swept by radius 1 (h = param);
- torus: major radius 1 in the xy-plane, minor radius r = param (sphere-traced: no closed form worth its cost).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

KINDS = ("sphere", "box", "cylinder", "cone", "capsule", "torus")
EPS = 1e-4  # minimum ray parameter (metres): ignore hits behind or at the camera centre
INF = float("inf")


def local_extent(kind: str, param: float) -> Tensor:
    """(3,) half-extents of the unit shape's axis-aligned bounding box in object space."""
    if kind in ("sphere", "box", "cylinder", "cone"):
        return torch.ones(3)
    if kind == "capsule":
        return torch.tensor([1.0, 1.0, 1.0 + param])
    if kind == "torus":
        return torch.tensor([1.0 + param, 1.0 + param, param])
    raise ValueError(f"unknown primitive kind {kind!r}; expected one of {KINDS}")


def _nearest_valid(*cands: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Among (t, normal) candidates (t = inf where invalid) keep the smallest t per ray."""
    t, n = cands[0]
    for t2, n2 in cands[1:]:
        closer = t2 < t
        t = torch.where(closer, t2, t)
        n = torch.where(closer[:, None], n2, n)
    return t, n


def _quadratic_roots(a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Roots (near, far) of a t² + 2b t + c = 0 (inf where there is no real root or a ≈ 0)."""
    disc = b * b - a * c
    ok = (disc >= 0) & (a.abs() > 1e-12)
    sq = disc.clamp_min(0).sqrt()
    a_safe = torch.where(ok, a, torch.ones_like(a))
    r1, r2 = (-b - sq) / a_safe, (-b + sq) / a_safe
    lo, hi = torch.minimum(r1, r2), torch.maximum(r1, r2)
    inf = torch.full_like(a, INF)
    return torch.where(ok, lo, inf), torch.where(ok, hi, inf)


def _first_positive(t0: Tensor, t1: Tensor, ok0: Tensor, ok1: Tensor) -> Tensor:
    t0 = torch.where(ok0 & (t0 > EPS), t0, INF)
    t1 = torch.where(ok1 & (t1 > EPS), t1, INF)
    return torch.minimum(t0, t1)


def intersect_sphere(o: Tensor, d: Tensor, param: float = 0.0) -> tuple[Tensor, Tensor]:
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - 1.0
    t0, t1 = _quadratic_roots(a, b, c)
    t = torch.where(t0 > EPS, t0, torch.where(t1 > EPS, t1, INF))
    return t, o + t.clamp(max=1e6)[:, None] * d


def intersect_box(o: Tensor, d: Tensor, param: float = 0.0) -> tuple[Tensor, Tensor]:
    d = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    inv = 1.0 / d
    ta, tb = (-1.0 - o) * inv, (1.0 - o) * inv
    tnear, tfar = torch.minimum(ta, tb), torch.maximum(ta, tb)
    t_in, axis = tnear.max(-1)
    t_out = tfar.min(-1).values
    hit = (t_in <= t_out) & (t_out > EPS)
    t = torch.where(hit, torch.where(t_in > EPS, t_in, t_out), INF)
    n = torch.zeros_like(o)
    n.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))
    return t, n


def _cylinder_side(o: Tensor, d: Tensor, zmin: float, zmax: float) -> tuple[Tensor, Tensor]:
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - 1.0
    t0, t1 = _quadratic_roots(a, b, c)
    z0, z1 = o[:, 2] + t0.clamp(max=1e6) * d[:, 2], o[:, 2] + t1.clamp(max=1e6) * d[:, 2]
    t = _first_positive(t0, t1, (z0 >= zmin) & (z0 <= zmax), (z1 >= zmin) & (z1 <= zmax))
    p = o + t.clamp(max=1e6)[:, None] * d
    return t, torch.stack([p[:, 0], p[:, 1], torch.zeros_like(t)], -1)


def _disc(o: Tensor, d: Tensor, z: float, sign: float) -> tuple[Tensor, Tensor]:
    """Disc of radius 1 in the plane at height z, outward normal (0,0,sign)."""
    dz = torch.where(d[:, 2].abs() < 1e-12, torch.full_like(d[:, 2], 1e-12), d[:, 2])
    t = (z - o[:, 2]) / dz
    p = o[:, :2] + t[:, None] * d[:, :2]
    ok = (t > EPS) & ((p * p).sum(-1) <= 1.0)
    n = torch.zeros_like(o)
    n[:, 2] = sign
    return torch.where(ok, t, INF), n


def intersect_cylinder(o: Tensor, d: Tensor, param: float = 0.0) -> tuple[Tensor, Tensor]:
    return _nearest_valid(_cylinder_side(o, d, -1.0, 1.0), _disc(o, d, 1.0, 1.0), _disc(o, d, -1.0, -1.0))


def intersect_cone(o: Tensor, d: Tensor, param: float = 0.0) -> tuple[Tensor, Tensor]:
    # Side: x² + y² = k²(1 − z)² with k = ½ (radius 1 at z = −1, 0 at the apex z = 1).
    k2 = 0.25
    w = 1.0 - o[:, 2]
    a = d[:, 0] ** 2 + d[:, 1] ** 2 - k2 * d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 1] * d[:, 1] + k2 * w * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - k2 * w * w
    t0, t1 = _quadratic_roots(a, b, c)
    z0, z1 = o[:, 2] + t0.clamp(max=1e6) * d[:, 2], o[:, 2] + t1.clamp(max=1e6) * d[:, 2]
    t = _first_positive(t0, t1, (z0 >= -1) & (z0 <= 1), (z1 >= -1) & (z1 <= 1))
    p = o + t.clamp(max=1e6)[:, None] * d
    side = (t, torch.stack([p[:, 0], p[:, 1], k2 * (1.0 - p[:, 2])], -1))
    return _nearest_valid(side, _disc(o, d, -1.0, -1.0))


def intersect_capsule(o: Tensor, d: Tensor, param: float = 0.5) -> tuple[Tensor, Tensor]:
    h = float(param)
    side = _cylinder_side(o, d, -h, h)
    caps = []
    for zc in (-h, h):
        oc = o.clone()
        oc[:, 2] -= zc
        t, n = intersect_sphere(oc, d)
        p_z = oc[:, 2] + t.clamp(max=1e6) * d[:, 2]
        # Only the outer hemisphere belongs to the capsule surface.
        t = torch.where(p_z * math.copysign(1.0, zc) >= 0, t, INF)
        caps.append((t, n))
    return _nearest_valid(side, *caps)


def torus_sdf(p: Tensor, r: float) -> Tensor:
    q = torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2) - 1.0
    return torch.sqrt(q * q + p[:, 2] ** 2) - r


def intersect_torus(o: Tensor, d: Tensor, param: float = 0.3, iters: int = 64) -> tuple[Tensor, Tensor]:
    r = float(param)
    dn = d.norm(dim=-1)
    # Start on the bounding sphere so the march covers only the shape's extent.
    t_enter, t_exit = _quadratic_roots((d * d).sum(-1), (o * d).sum(-1), (o * o).sum(-1) - (1.0 + r) ** 2)
    t = torch.full_like(dn, INF)
    live = (torch.isfinite(t_exit) & (t_exit > EPS)).nonzero()[:, 0]
    tl, te = t_enter[live].clamp_min(0.0), t_exit[live]
    ol, dl, dnl = o[live], d[live], dn[live]
    tol = 1e-5
    for i in range(iters):
        # The SDF is in object units; dividing by |d| turns it into a step in t that cannot overshoot.
        sdf = torus_sdf(ol + tl[:, None] * dl, r)
        tl = tl + sdf / dnl
        if i % 4 == 3 or i == iters - 1:
            # Retire converged rays (hits) and rays that left the bounding sphere (misses).
            done = sdf < tol
            t[live[done]] = tl[done]
            keep = (~done & (tl < te)).nonzero()[:, 0]
            live, tl, te, ol, dl, dnl = (x.index_select(0, keep) for x in (live, tl, te, ol, dl, dnl))
            if live.numel() == 0:
                break
    t = torch.where(t > EPS, t, INF)
    p = o + t.clamp(max=1e6)[:, None] * d
    rho = torch.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2).clamp_min(1e-9)
    f = 1.0 - 1.0 / rho
    n = torch.stack([p[:, 0] * f, p[:, 1] * f, p[:, 2]], -1)
    return t, n


INTERSECT = {"sphere": intersect_sphere, "box": intersect_box, "cylinder": intersect_cylinder,
             "cone": intersect_cone, "capsule": intersect_capsule, "torus": intersect_torus}
