"""The fast CPU ray caster (numba): a scene's views cast and shaded in one compiled loop.

Same geometry, textures, shading and outputs as the reference caster in raycast.py (which it is tested against),
in float64, one ray per pixel of the (fine) grid. Per view: the ground plane and the backdrop for every pixel;
then, nearest first, each primitive over the pixel rectangle that may see it (raycast's `_Rays.rects`), skipping
pixels already nearer than the primitive can be, intersecting in its unit space (the formulas of primitives.py,
written per ray); then each pixel is shaded once by the surface that won it (the formulas of textures.py,
including the footprint-filtered ground). Single-threaded: parallelism belongs to the data loader's workers.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .primitives import EPS, KINDS

KIND_IDS = {k: i for i, k in enumerate(KINDS)}
SPHERE, BOX, CYLINDER, CONE, CAPSULE, TORUS = (KIND_IDS[k] for k in KINDS)
NOTHING, GROUND, BACKDROP = -1, -2, -3  # surface ids besides primitive indices; NOTHING = raycast.NO_PRIMITIVE
INF = math.inf


@njit(cache=True, error_model="numpy")
def _roots(a, b, c):
    """Roots (near, far) of a t² + 2b t + c = 0, (inf, inf) without a real root or with a ≈ 0."""
    disc = b * b - a * c
    if disc < 0.0 or abs(a) <= 1e-12:
        return INF, INF
    sq = math.sqrt(disc)
    r1, r2 = (-b - sq) / a, (-b + sq) / a
    return min(r1, r2), max(r1, r2)


@njit(cache=True, error_model="numpy")
def _sphere(ox, oy, oz, dx, dy, dz):
    t0, t1 = _roots(dx * dx + dy * dy + dz * dz, ox * dx + oy * dy + oz * dz, ox * ox + oy * oy + oz * oz - 1.0)
    t = t0 if t0 > EPS else (t1 if t1 > EPS else INF)
    if t == INF:
        return INF, 0.0, 0.0, 0.0
    return t, ox + t * dx, oy + t * dy, oz + t * dz


@njit(cache=True, error_model="numpy")
def _box(ox, oy, oz, dx, dy, dz):
    t_in, t_out, axis, sign = -INF, INF, 0, 0.0
    for k in range(3):
        o = ox if k == 0 else (oy if k == 1 else oz)
        d = dx if k == 0 else (dy if k == 1 else dz)
        if abs(d) < 1e-12:
            d = 1e-12
        ta, tb = (-1.0 - o) / d, (1.0 - o) / d
        lo, hi = min(ta, tb), max(ta, tb)
        if lo > t_in:
            t_in, axis, sign = lo, k, -1.0 if d > 0 else 1.0
        t_out = min(t_out, hi)
    if t_in > t_out or t_out <= EPS:
        return INF, 0.0, 0.0, 0.0
    t = t_in if t_in > EPS else t_out
    return t, sign if axis == 0 else 0.0, sign if axis == 1 else 0.0, sign if axis == 2 else 0.0


@njit(cache=True, error_model="numpy")
def _side(ox, oy, oz, dx, dy, dz, zmin, zmax):
    """The lateral surface x² + y² = 1, zmin <= z <= zmax."""
    t0, t1 = _roots(dx * dx + dy * dy, ox * dx + oy * dy, ox * ox + oy * oy - 1.0)
    t = INF
    for r in (t0, t1):
        if r > EPS and r < t:
            z = oz + r * dz
            if zmin <= z <= zmax:
                t = r
    if t == INF:
        return INF, 0.0, 0.0, 0.0
    return t, ox + t * dx, oy + t * dy, 0.0


@njit(cache=True, error_model="numpy")
def _disc(ox, oy, oz, dx, dy, dz, z, sign):
    """The unit disc in the plane at height z, outward normal (0, 0, sign)."""
    if abs(dz) < 1e-12:
        dz = 1e-12
    t = (z - oz) / dz
    px, py = ox + t * dx, oy + t * dy
    if t > EPS and px * px + py * py <= 1.0:
        return t, 0.0, 0.0, sign
    return INF, 0.0, 0.0, 0.0


@njit(cache=True, error_model="numpy")
def _cone(ox, oy, oz, dx, dy, dz):
    k2 = 0.25  # radius 1 at z = -1, 0 at the apex z = 1
    w = 1.0 - oz
    t0, t1 = _roots(dx * dx + dy * dy - k2 * dz * dz, ox * dx + oy * dy + k2 * w * dz,
                    ox * ox + oy * oy - k2 * w * w)
    t = INF
    for r in (t0, t1):
        if r > EPS and r < t and -1.0 <= oz + r * dz <= 1.0:
            t = r
    best = (INF, 0.0, 0.0, 0.0)
    if t < INF:
        best = (t, ox + t * dx, oy + t * dy, k2 * (1.0 - (oz + t * dz)))
    cap = _disc(ox, oy, oz, dx, dy, dz, -1.0, -1.0)
    return cap if cap[0] < best[0] else best


@njit(cache=True, error_model="numpy")
def _capsule(ox, oy, oz, dx, dy, dz, h):
    best = _side(ox, oy, oz, dx, dy, dz, -h, h)
    for zc in (-h, h):
        hit = _sphere(ox, oy, oz - zc, dx, dy, dz)
        # Only the outer hemisphere belongs to the capsule surface.
        if hit[0] < best[0] and hit[3] * zc >= 0.0:
            best = hit
    return best


@njit(cache=True, error_model="numpy")
def _torus(ox, oy, oz, dx, dy, dz, r):
    """Sphere tracing from the bounding sphere as primitives.intersect_torus does (64 steps, 1e-5 tolerance)."""
    dn = math.sqrt(dx * dx + dy * dy + dz * dz)
    t_enter, t_exit = _roots(dx * dx + dy * dy + dz * dz, ox * dx + oy * dy + oz * dz,
                             ox * ox + oy * oy + oz * oz - (1.0 + r) ** 2)
    if not (t_exit < INF and t_exit > EPS):
        return INF, 0.0, 0.0, 0.0
    t = max(t_enter, 0.0)
    hit = INF
    for i in range(64):
        px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
        q = math.sqrt(px * px + py * py) - 1.0
        sdf = math.sqrt(q * q + pz * pz) - r
        t += sdf / dn
        if i % 4 == 3 or i == 63:
            if sdf < 1e-5:
                hit = t
                break
            if t >= t_exit:
                break
    if not hit > EPS or hit == INF:
        return INF, 0.0, 0.0, 0.0
    px, py, pz = ox + hit * dx, oy + hit * dy, oz + hit * dz
    f = 1.0 - 1.0 / max(math.sqrt(px * px + py * py), 1e-9)
    return hit, px * f, py * f, pz


@njit(cache=True, error_model="numpy")
def _intersect(kind, param, ox, oy, oz, dx, dy, dz):
    if kind == BOX:
        return _box(ox, oy, oz, dx, dy, dz)
    if kind == SPHERE:
        return _sphere(ox, oy, oz, dx, dy, dz)
    if kind == CYLINDER:
        best = _side(ox, oy, oz, dx, dy, dz, -1.0, 1.0)
        for z in (1.0, -1.0):
            cap = _disc(ox, oy, oz, dx, dy, dz, z, z)
            if cap[0] < best[0]:
                best = cap
        return best
    if kind == CONE:
        return _cone(ox, oy, oz, dx, dy, dz)
    if kind == CAPSULE:
        return _capsule(ox, oy, oz, dx, dy, dz, param)
    return _torus(ox, oy, oz, dx, dy, dz, param)


TEXTURE_IDS = {"solid": 0, "stripes": 1, "checkers": 2, "noise": 3}


@njit(cache=True, error_model="numpy")
def _mod2(x):
    return x - 2.0 * math.floor(0.5 * x)  # x mod 2 in [0, 2), as torch.remainder computes it


@njit(cache=True, error_model="numpy")
def _box_square(x, w):
    """Mean of the ±1 square wave (−1)^⌊x⌋ over [x − w/2, x + w/2] (textures._box_square)."""
    if w <= 1e-4:
        return 1.0 - 2.0 * _mod2(math.floor(x))
    return (abs(1.0 - _mod2(x - 0.5 * w)) - abs(1.0 - _mod2(x + 0.5 * w))) / w


@njit(cache=True, error_model="numpy")
def _damping(width):
    """exp(−(π·width)²/6), the Gaussian attenuation of a wave filtered over `width` periods; its Taylor
    polynomial (error < 2e-7) where the exponent is small, as it is for most pixels."""
    x = (math.pi * width) ** 2 / 6.0
    return 1.0 - x + 0.5 * x * x if x < 0.01 else math.exp(-x)


@njit(cache=True, error_model="numpy")
def _sin(x):
    """sin(x) to ~1e-7 in a few nanoseconds (a quarter of libm's time, which dominates noise textures): reduced to
    [−π/2, π/2], then its degree-11 Taylor polynomial (remainder < 6e-8)."""
    r = x - 2.0 * math.pi * math.floor(x / (2.0 * math.pi) + 0.5)  # [−π, π]
    if r > 0.5 * math.pi:
        r = math.pi - r
    elif r < -0.5 * math.pi:
        r = -math.pi - r
    r2 = r * r
    return r * (1.0 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880
                                                                               - r2 / 39916800)))))


@njit(cache=True, error_model="numpy")
def _albedo(tex, tk, tf, px, py, pz, filt, ax, ay, az, bx, by, bz):
    """Texture weight in [0, 1] between its two colours (textures.Texture), point-sampled or, with `filt`,
    averaged over the footprint spanned by (ax, ay, az) and (bx, by, bz) as Texture.filtered does. tex: the
    texture's (15,) row [axis 3, waves 9 (row-major), phases 3] (pack_textures), tk its TEXTURE_IDS kind, tf
    its frequency."""
    if tk == 0:
        return 0.0
    if tk == 2:
        if not filt:
            return _mod2(math.floor(px * tf) + math.floor(py * tf) + math.floor(pz * tf))
        prod = _box_square(px * tf, tf * math.sqrt(ax * ax + bx * bx))
        prod *= _box_square(py * tf, tf * math.sqrt(ay * ay + by * by))
        prod *= _box_square(pz * tf, tf * math.sqrt(az * az + bz * bz))
        return 0.5 - 0.5 * prod
    if tk == 1:
        proj = px * tex[0] + py * tex[1] + pz * tex[2]
        if not filt:
            return 1.0 if math.sin(2 * math.pi * tf * proj + tex[12]) > 0.0 else 0.0
        wa = ax * tex[0] + ay * tex[1] + az * tex[2]
        wb = bx * tex[0] + by * tex[1] + bz * tex[2]
        s = tf * proj + tex[12] / (2 * math.pi)
        return 0.5 + 0.5 * _box_square(2 * s, 2 * tf * math.sqrt(wa * wa + wb * wb))
    acc = 0.0
    for k in range(3):
        wx, wy, wz = tex[3 + 3 * k], tex[4 + 3 * k], tex[5 + 3 * k]
        wave = _sin(2 * math.pi * tf * (px * wx + py * wy + pz * wz) + tex[12 + k])
        if filt:
            wa, wb = ax * wx + ay * wy + az * wz, bx * wx + by * wy + bz * wz
            wave *= _damping(tf * math.sqrt(wa * wa + wb * wb))
        acc += wave
    return 0.5 + 0.5 * math.tanh(2.0 * acc / 3.0)


@njit(cache=True, error_model="numpy")
def cast(M, oloc, shade, zmin, kinds, params, rects, Pw, origins, height, width, ground_z, ground, ground_r2,
         backdrop_r, tex, tex_kind, tex_freq, tex_colors, light, ambient, background):
    """Render V views of height×width rays through every pixel (u, v).

    Geometry: M (V,P,3,3) maps pixel (u, v, 1) to primitive p's object-space ray direction; oloc (V,P,3) the
    camera centre in object space; shade (V,P,6) [A·l, 1/s] for n·l (raycast._object_space); zmin (V,P) a lower
    bound of p's z-depth in the view (pixels already nearer skip it); kinds (P,) KIND_IDS; params (P,); rects
    (V,P,4) int64 (u0, nu, v0, nv) pixel rectangles that may see p; Pw (V,3,3) pixel -> world direction (camera
    z component 1, so t is the z-depth); origins (V,3); ground: 0 none, 1 the plane z = ground_z within
    ground_r2 (squared radius) of the z axis, 2 infinite; backdrop_r: radius of the inward-facing cylinder
    about the z axis (<= 0: none).
    Shading: textures of the P primitives, the ground (row P) and the backdrop (row P + 1): tex (P+2,15)
    (pack_textures), tex_kind (P+2,), tex_freq (P+2,), tex_colors (P+2,2,3); light (3,) unit; ambient; background
    (3,). All float64.

    Returns rgb (V,H,W,3) float32, z-depth (V,H,W) float32 (0: nothing), alpha (V,H,W) float32 (0 or 1) and
    primitive id (V,H,W) int32 (NOTHING where the ground, the backdrop or nothing is hit).
    """
    V, P = M.shape[0], M.shape[1]
    rgb = np.empty((V, height, width, 3), np.float32)
    depth = np.zeros((V, height, width), np.float32)
    alpha = np.zeros((V, height, width), np.float32)
    ids = np.empty((V, height, width), np.int32)
    t_buf = np.empty((height, width))
    pts = np.empty((height, width, 3))
    nrm = np.empty((height, width, 3))
    for v in range(V):
        p = Pw[v]
        ox, oy, oz = origins[v, 0], origins[v, 1], origins[v, 2]
        # Ground and backdrop first: their depths let nearer-first primitives skip occluded pixels.
        for i in range(height):
            for j in range(width):
                t_buf[i, j] = INF
                ids[v, i, j] = NOTHING
                dx = p[0, 0] * j + p[0, 1] * i + p[0, 2]
                dy = p[1, 0] * j + p[1, 1] * i + p[1, 2]
                dz = p[2, 0] * j + p[2, 1] * i + p[2, 2]
                if ground > 0 and oz > ground_z and dz < 0.0:
                    t = (ground_z - oz) / dz
                    px, py = ox + t * dx, oy + t * dy
                    if (ground == 2 and dz < -1e-12) or (ground == 1 and px * px + py * py < ground_r2):
                        t_buf[i, j], ids[v, i, j] = t, GROUND
                        pts[i, j, 0], pts[i, j, 1], pts[i, j, 2] = px, py, ground_z
                if backdrop_r > 0.0:
                    a = max(dx * dx + dy * dy, 1e-12)
                    bq = ox * dx + oy * dy
                    cq = ox * ox + oy * oy - backdrop_r * backdrop_r
                    t = (-bq + math.sqrt(max(bq * bq - a * cq, 0.0))) / a
                    if t > 0.0 and t < t_buf[i, j]:
                        t_buf[i, j], ids[v, i, j] = t, BACKDROP
                        pts[i, j, 0], pts[i, j, 1], pts[i, j, 2] = ox + t * dx, oy + t * dy, oz + t * dz
        for q in np.argsort(zmin[v]):
            u0, nu, v0, nv = rects[v, q, 0], rects[v, q, 1], rects[v, q, 2], rects[v, q, 3]
            m = M[v, q]
            lx, ly, lz = oloc[v, q, 0], oloc[v, q, 1], oloc[v, q, 2]
            kind, param, near = kinds[q], params[q], zmin[v, q]
            for i in range(v0, v0 + nv):
                # Direction at u = 0 of this row, then one column step at a time.
                bx, by, bz = m[0, 1] * i + m[0, 2], m[1, 1] * i + m[1, 2], m[2, 1] * i + m[2, 2]
                for j in range(u0, u0 + nu):
                    if t_buf[i, j] <= near:
                        continue
                    dx, dy, dz = bx + m[0, 0] * j, by + m[1, 0] * j, bz + m[2, 0] * j
                    t, nx, ny, nz = _intersect(kind, param, lx, ly, lz, dx, dy, dz)
                    if t < t_buf[i, j]:
                        t_buf[i, j], ids[v, i, j] = t, q
                        pts[i, j, 0], pts[i, j, 1], pts[i, j, 2] = lx + t * dx, ly + t * dy, lz + t * dz
                        nrm[i, j, 0], nrm[i, j, 1], nrm[i, j, 2] = nx, ny, nz
        for i in range(height):
            for j in range(width):
                q = ids[v, i, j]
                if q < 0:
                    ids[v, i, j] = NOTHING  # ground and backdrop are no primitive (raycast.surface_ids)
                if q == NOTHING:
                    for k in range(3):
                        rgb[v, i, j, k] = background[k]
                    continue
                t = t_buf[i, j]
                depth[v, i, j], alpha[v, i, j] = t, 1.0
                px, py, pz = pts[i, j, 0], pts[i, j, 1], pts[i, j, 2]
                if q >= 0:
                    s = shade[v, q]
                    nx, ny, nz = nrm[i, j, 0], nrm[i, j, 1], nrm[i, j, 2]
                    norm = math.sqrt((nx * s[3]) ** 2 + (ny * s[4]) ** 2 + (nz * s[5]) ** 2)
                    ndl = (nx * s[0] + ny * s[1] + nz * s[2]) / max(norm, 1e-12)
                    row = q
                    w = _albedo(tex[row], tex_kind[row], tex_freq[row], px, py, pz, False, 0., 0., 0., 0., 0., 0.)
                elif q == GROUND:
                    ndl, row = light[2], P
                    # Ray differentials: the hit's offsets per pixel step in u and in v (raycast._plane_differentials).
                    dx = p[0, 0] * j + p[0, 1] * i + p[0, 2]
                    dy = p[1, 0] * j + p[1, 1] * i + p[1, 2]
                    dz = p[2, 0] * j + p[2, 1] * i + p[2, 2]
                    ku, kv = p[2, 0] / dz, p[2, 1] / dz
                    w = _albedo(tex[row], tex_kind[row], tex_freq[row], px, py, pz, True,
                                t * (p[0, 0] - dx * ku), t * (p[1, 0] - dy * ku), t * (p[2, 0] - dz * ku),
                                t * (p[0, 1] - dx * kv), t * (p[1, 1] - dy * kv), t * (p[2, 1] - dz * kv))
                else:
                    row = P + 1
                    ndl = -(px * light[0] + py * light[1]) / max(math.sqrt(px * px + py * py), 1e-12)
                    w = _albedo(tex[row], tex_kind[row], tex_freq[row], px, py, pz, False, 0., 0., 0., 0., 0., 0.)
                lit = ambient + (1.0 - ambient) * max(ndl, 0.0)
                for k in range(3):
                    c0 = tex_colors[row, 0, k]
                    rgb[v, i, j, k] = min(max((c0 + w * (tex_colors[row, 1, k] - c0)) * lit, 0.0), 1.0)
    return rgb, depth, alpha, ids


def kind_ids(kinds: list[str]) -> np.ndarray:
    """(P,) int64 KIND_IDS of primitive kind names."""
    return np.array([KIND_IDS[k] for k in kinds], dtype=np.int64)


def pack_textures(textures: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Textures (textures.Texture, or None for an unused slot) as `cast` takes them: rows (n,15) [axis 3,
    waves 9 row-major, phases 3], kinds (n,) TEXTURE_IDS, frequencies (n,), colours (n,2,3); float64."""
    n = len(textures)
    rows, kinds = np.zeros((n, 15)), np.zeros(n, np.int64)
    freqs, colors = np.zeros(n), np.zeros((n, 2, 3))
    for i, tex in enumerate(textures):
        if tex is None:
            continue
        rows[i] = np.concatenate([tex.axis.double().numpy(), tex.waves.double().numpy().reshape(-1),
                                  tex.phases.double().numpy()])
        kinds[i], freqs[i], colors[i] = TEXTURE_IDS[tex.kind], tex.freq, tex.colors.double().numpy()
    return rows, kinds, freqs, colors
