"""numba kernels of the compiled CPU rasterizer: gsplat's projection and `rasterize_to_pixels` (classic mode)
as CPU loops, forward and backward. numpy arrays in and out; rasterize_numba.py wraps them for autograd.

An *entry* is a visible (camera, Gaussian) pair; entries are kept in (camera, Gaussian) order. Per entry,
`geo` (M,6) = [mean x, mean y (px, ROS convention), conic a, b, c, opacity] and `feat` (M,5) = [r, g, b, 1, z],
in the dtype of the inputs (float32 or float64: a separate compilation each).

- `project_entries`: EWA projection (projection.py's rules, computed in float64) of every (camera, Gaussian),
  keeping those whose opacity-aware pixel box holds a pixel; BLOCK Gaussians at a time, in a branch-free loop
  LLVM vectorises; `entries_backward` is its vector-Jacobian product, written into every Gaussian's gradient
  row SUB Gaussians at a time (zeroed, then accumulated camera by camera while in cache; within a camera a
  Gaussian has at most one entry: no races).
- `bin_tiles`: a counting sort of the entries into 16×16 tiles, then a stable radix sort of each tile's run by
  depth: ties keep (camera, Gaussian) order, as in the reference's stable global depth sort.
- `blend_forward`: per tile, Gaussians front to back over their box, up to 16 of its pixels at a time (rows of
  the box packed row-major into TILE lanes: a pixel-sized splat's whole box at once). One branch-free loop (LLVM
  vectorizes it) computes σ, exp(−σ) and alpha of the lanes in the entries' dtype, in the reference's order and
  with its tests (σ ≥ 0, alpha ≥ 1/255), and a bit mask of those that pass; the pixels that pass and have not
  stopped are then composited one by one, walking the mask's set bits (no branch per lane to mispredict),
  transmittance and sums in float64. A pixel stops before the Gaussian that would bring its transmittance to
  ≤ 1e-4, a tile when all its pixels have. The records of the entry PREFETCH places ahead in the run are
  prefetched (`_prefetcher`): a run visits them in depth order, scattered over megabytes.
- `blend_backward`: the same pairs in reverse from each pixel's final transmittance and stop index
  (T before a Gaussian = T after / (1 − α)), gsplat's backward, over the same lanes and in the same pixel
  order, prefetching as the forward does (and the gradient row it will write); a tile's pixels join the walk
  from lists bucketed by their stop index. Each (entry, tile) pair writes its own gradient row, so threads never
  share an accumulator and the result does not depend on the thread count; `entries_backward` sums an entry's
  rows.

Tiles go to `n_slots` slots round-robin (slot s takes tiles s, s + n_slots, ...), one slot per thread. Numeric
constants come in arrays at call time, not as globals: numba's on-disk cache would keep stale global values.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

TILE = 16
RADIX_BITS = 11
SHORT_RUN = 32  # tile runs up to this long are insertion-sorted
BLOCK = 64  # Gaussians projected at once (their fields in float64 stay in L1)
SUB = 4096  # Gaussians whose gradient rows the projection's backward zeroes and fills while they are in cache
PREFETCH = 8  # a tile's blend asks for the records of the entry this many places ahead of the one it blends
# blend constants, an array in the entries' dtype (so float32 arithmetic is not promoted by float64 literals)
HALF, MAX_ALPHA, ALPHA_MIN, ZERO = range(4)
# float64 parameters
EPS2D, MAX_EXTEND, ALPHA_MIN64, NEAR, FAR, T_MIN, LAYER_GAP = range(7)
# per-camera float64 row: rotation (9, row-major), translation (3), fx, fy, cx, cy, then the Jacobian's clamp
# limits on x/z and y/z (projection.py): x/z in [−lim_x_neg, lim_x_pos], y/z in [−lim_y_neg, lim_y_pos]
FX, FY, CX, CY, LIM_X_POS, LIM_X_NEG, LIM_Y_POS, LIM_Y_NEG = range(12, 20)
CAM_COLUMNS = 20


def _jit(fn):
    """njit(parallel=True) (numpy error model: x/0 is inf, not an exception) with an on-disk cache, or without
    one where no cache directory is writable (numba tries beside this file, then ~/.cache/numba;
    $NUMBA_CACHE_DIR first)."""
    try:
        return njit(parallel=True, cache=True, error_model="numpy")(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(parallel=True, error_model="numpy")(fn)


def _serial(fn):
    """A cached njit function without parallel loops: what a parallel kernel calls per chunk of work, so that
    the helpers it inlines stay out of numba's parfor analysis (which rejects some of their tuple code)."""
    try:
        return njit(cache=True, error_model="numpy")(fn)
    except RuntimeError:
        return njit(error_model="numpy")(fn)


def _inline(fn):
    """A helper compiled into its callers (numba IR inlining: no call overhead, loops stay vectorizable)."""
    return njit(inline="always", error_model="numpy")(fn)


def _prefetcher(write: int):
    """A numba intrinsic prefetch(array, row): ask the CPU to bring row `row` of an array into its caches (LLVM's
    prefetch, to read (write=0) or to write (1), kept), without waiting. A tile's run visits entries in depth
    order, scattered over megabytes of records (and the backward writes their gradient rows there): fetched one
    at a time, each would stall the blend on a cache miss."""
    @intrinsic
    def prefetch(typingctx, array, row):
        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            ary = context.make_array(array_type)(context, builder, args[0])
            index = [args[1]] + [context.get_constant(types.intp, 0)] * (array_type.ndim - 1)
            ptr = cgutils.get_item_pointer(context, builder, array_type, ary, index, wraparound=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(write), i32(3), i32(1)])
            return context.get_dummy_value()
        return types.void(array, row), codegen
    return prefetch


_prefetch, _prefetch_write = _prefetcher(0), _prefetcher(1)


@intrinsic
def _lowest_bit(typingctx, mask):
    """Index of the lowest set bit of a nonzero int64 (LLVM's cttz: one instruction): a blend walks the set bits
    of a lane mask instead of testing every lane, whose data-dependent branches the CPU mispredicts."""
    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]),
                                            "llvm.cttz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])
    return types.int64(types.int64), codegen


@_inline
def _prefetch_entry(geo, feat, boxes, e):
    _prefetch(geo, e)
    _prefetch(feat, e)
    _prefetch(boxes, e)


# ---------------------------------------------------------------------------------------------- projection

@_inline
def _mm(a, b):
    """Product of two 3×3 matrices held as row-major 9-tuples (tuples stay in registers: no allocation)."""
    return (a[0] * b[0] + a[1] * b[3] + a[2] * b[6], a[0] * b[1] + a[1] * b[4] + a[2] * b[7],
            a[0] * b[2] + a[1] * b[5] + a[2] * b[8],
            a[3] * b[0] + a[4] * b[3] + a[5] * b[6], a[3] * b[1] + a[4] * b[4] + a[5] * b[7],
            a[3] * b[2] + a[4] * b[5] + a[5] * b[8],
            a[6] * b[0] + a[7] * b[3] + a[8] * b[6], a[6] * b[1] + a[7] * b[4] + a[8] * b[7],
            a[6] * b[2] + a[7] * b[5] + a[8] * b[8])


@_inline
def _tr(a):
    return (a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8])


@_inline
def _cov2d(Sc, j00, j02, j11, j12, eps2d):
    """J Σc Jᵀ + eps2d·I for J = [[j00, 0, j02], [0, j11, j12]] -> (a, b, c) of the symmetric 2×2."""
    a00, a01, a02 = j00 * Sc[0] + j02 * Sc[6], j00 * Sc[1] + j02 * Sc[7], j00 * Sc[2] + j02 * Sc[8]
    a10, a11, a12 = j11 * Sc[3] + j12 * Sc[6], j11 * Sc[4] + j12 * Sc[7], j11 * Sc[5] + j12 * Sc[8]
    c00 = a00 * j00 + a02 * j02
    c01 = a01 * j11 + a02 * j12
    c10 = a10 * j00 + a12 * j02
    c11 = a11 * j11 + a12 * j12
    return c00 + eps2d, 0.5 * (c01 + c10), c11 + eps2d


@_inline
def _load_gaussian(means, covars, g, inp, i):
    """Column i of rows 0-11 of a block's float64 rows: Gaussian g's mean and covariance (row-major)."""
    inp[0, i], inp[1, i], inp[2, i] = means[g, 0], means[g, 1], means[g, 2]
    inp[3, i], inp[4, i], inp[5, i] = covars[g, 0, 0], covars[g, 0, 1], covars[g, 0, 2]
    inp[6, i], inp[7, i], inp[8, i] = covars[g, 1, 0], covars[g, 1, 1], covars[g, 1, 2]
    inp[9, i], inp[10, i], inp[11, i] = covars[g, 2, 0], covars[g, 2, 1], covars[g, 2, 2]


@_inline
def _camera_row(cams, c):
    """Camera c's row of `cams` (see CAM_COLUMNS): rotation R and its transpose Rt (9-tuples), translation t0, t1,
    t2, fx, fy, cx, cy, and the Jacobian's clamp limits lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg."""
    R = (cams[c, 0], cams[c, 1], cams[c, 2], cams[c, 3], cams[c, 4], cams[c, 5], cams[c, 6], cams[c, 7], cams[c, 8])
    return (R, _tr(R), cams[c, 9], cams[c, 10], cams[c, 11], cams[c, FX], cams[c, FY], cams[c, CX], cams[c, CY],
            cams[c, LIM_X_POS], cams[c, LIM_X_NEG], cams[c, LIM_Y_POS], cams[c, LIM_Y_NEG])


@_inline
def _to_camera(inp, i, R, Rt, t0, t1, t2):
    """Gaussian i of a block (rows 0-11, see _load_gaussian) in the camera frame of rotation R (9-tuple, Rt its
    transpose) and translation (t0, t1, t2): mean x, y, z, covariance R Σ Rᵀ (9-tuple) and 1/z."""
    m0, m1, m2 = inp[0, i], inp[1, i], inp[2, i]
    x = R[0] * m0 + R[1] * m1 + R[2] * m2 + t0
    y = R[3] * m0 + R[4] * m1 + R[5] * m2 + t1
    z = R[6] * m0 + R[7] * m1 + R[8] * m2 + t2
    S = (inp[3, i], inp[4, i], inp[5, i], inp[6, i], inp[7, i], inp[8, i], inp[9, i], inp[10, i], inp[11, i])
    return x, y, z, _mm(_mm(R, S), Rt), 1.0 / z


@_inline
def _project_block(means, covars, opacities, log_ratio, cams, c, g0, n, width, height, params, inp, out):
    """Project Gaussians g0 .. g0+n−1 (n ≤ BLOCK) into camera c: projection.py's rules, all of them at once.

    The inputs are first copied into `inp` (14, BLOCK) float64, one row per field: the arithmetic loop then reads
    and writes contiguous rows, has no branch and no call (log_ratio (N,) float64 = log(opacity / 1/255) comes
    in), and LLVM runs it 8 Gaussians per AVX-512 instruction: R Σ Rᵀ, the Jacobian at the clamped x/z and y/z,
    J Σc Jᵀ (_cov2d) and the opacity-aware box. out (11, BLOCK): visible (1.0 or 0.0), mean x, mean y, conic a,
    b, c, z, box x0, x1, y0, y1."""
    for i in range(n):
        g = g0 + i
        _load_gaussian(means, covars, g, inp, i)
        inp[12, i], inp[13, i] = opacities[g], log_ratio[g]
    R, Rt, t0, t1, t2, fx, fy, cx, cy, lim_xp, lim_xn, lim_yp, lim_yn = _camera_row(cams, c)
    alpha_min, near, far, eps2d, max_extend = params[ALPHA_MIN64], params[NEAR], params[FAR], params[EPS2D], \
        params[MAX_EXTEND]
    w, h = float(width), float(height)
    for i in range(n):
        x, y, z, Sc, rz = _to_camera(inp, i, R, Rt, t0, t1, t2)
        ux_c = min(lim_xp, max(-lim_xn, x * rz))
        uy_c = min(lim_yp, max(-lim_yn, y * rz))
        tx, ty = z * ux_c, z * uy_c
        a, b, cc = _cov2d(Sc, fx * rz, -fx * tx * rz * rz, fy * rz, -fy * ty * rz * rz, eps2d)
        det = a * cc - b * b
        mx, my = fx * x * rz + cx, fy * y * rz + cy
        extend = min(np.sqrt(2.0 * inp[13, i]), max_extend)
        rx = np.ceil(extend * np.sqrt(max(a, 0.0)))
        ry = np.ceil(extend * np.sqrt(max(cc, 0.0)))
        # NaN fails every comparison: a Gaussian with any NaN on its way is not visible
        visible = ((inp[12, i] >= alpha_min) & (z >= near) & (z <= far) & (det > 0.0) & ((rx > 0.0) | (ry > 0.0))
                   & (np.abs(mx) < np.inf) & (np.abs(my) < np.inf) & (mx + 0.5 + rx > 0.0) & (mx + 0.5 - rx < w)
                   & (my + 0.5 + ry > 0.0) & (my + 0.5 - ry < h))
        rx, ry = min(rx, 1e6), min(ry, 1e6)
        x0 = min(max(np.ceil(mx - rx), 0.0), w)
        x1 = min(max(np.floor(mx + rx), -1.0), w - 1.0)
        y0 = min(max(np.ceil(my - ry), 0.0), h)
        y1 = min(max(np.floor(my + ry), -1.0), h - 1.0)
        out[0, i] = np.float64(visible & (x1 >= x0) & (y1 >= y0))
        out[1, i], out[2, i] = mx, my
        out[3, i], out[4, i], out[5, i] = cc / det, -b / det, a / det
        out[6, i] = z
        out[7, i], out[8, i], out[9, i], out[10, i] = x0, x1, y0, y1


@_serial
def _project_pairs(means, covars, opacities, colors, log_ratio, cams, width, height, params, q0, q1, e, index, geo,
                   feat, boxes, write):
    """Project the flattened (camera * N + Gaussian) pairs q0 <= q < q1, block by block -> how many are visible.
    write: store them as entries e, e+1, ... (see project_entries); else only count them."""
    N = means.shape[0]
    e0 = e
    inp = np.empty((14, BLOCK))
    out = np.empty((11, BLOCK))
    c, g = q0 // N, q0 % N
    q = q0
    while q < q1:
        n = min(BLOCK, q1 - q, N - g)
        _project_block(means, covars, opacities, log_ratio, cams, c, g, n, width, height, params, inp, out)
        for i in range(n):
            if out[0, i] == 0.0:
                continue
            if write:
                index[e] = q + i
                geo[e, 0], geo[e, 1], geo[e, 2], geo[e, 3], geo[e, 4], geo[e, 5] = \
                    out[1, i], out[2, i], out[3, i], out[4, i], out[5, i], opacities[g + i]
                feat[e, 0], feat[e, 1], feat[e, 2], feat[e, 3], feat[e, 4] = \
                    colors[g + i, 0], colors[g + i, 1], colors[g + i, 2], 1.0, out[6, i]
                boxes[e, 0], boxes[e, 1], boxes[e, 2], boxes[e, 3] = \
                    int(out[7, i]), int(out[8, i]), int(out[9, i]), int(out[10, i])
            e += 1
        q += n
        g += n
        if g == N:
            c, g = c + 1, 0
    return e - e0


@_jit
def project_entries(means, covars, opacities, colors, log_ratio, cams, width, height, params, n_chunks, one_pass,
                    index, geo, feat, boxes):
    """log_ratio (N,) float64: log(opacity / ALPHA_MIN64) (numpy's vectorised log: numba's would be a call per
    Gaussian, which no loop vectorises) -> index (M,) int64 (camera * N + Gaussian, ascending), geo (M,6),
    feat (M,5), boxes (M,4) int64 [x0, x1, y0, y1] inclusive pixel ranges, in their first M rows, and M. Chunks
    of (camera, Gaussian) pairs run in parallel. one_pass: each chunk writes its visible pairs at the chunk's start
    in arrays of C*N rows, then the runs are moved together: index, geo, feat and boxes where they have as many
    rows (the caller reuses them from call to call where it can: a fresh C*N-row allocation can cost more in page
    faults than the projection), else new ones; otherwise a first pass counts and a second recomputes and writes
    into new M-row arrays."""
    total = cams.shape[0] * means.shape[0]
    chunk = (total + n_chunks - 1) // n_chunks
    start = np.zeros(n_chunks + 1, np.int64)
    if one_pass and index.shape[0] < total:
        index = np.empty(total, np.int64)
        geo = np.empty((total, 6), means.dtype)
        feat = np.empty((total, 5), means.dtype)
        boxes = np.empty((total, 4), np.int64)
    for k in prange(n_chunks):
        q0, q1 = min(total, k * chunk), min(total, (k + 1) * chunk)
        start[k + 1] = _project_pairs(means, covars, opacities, colors, log_ratio, cams, width, height, params,
                                      q0, q1, q0, index, geo, feat, boxes, one_pass)
    for k in range(n_chunks):
        start[k + 1] += start[k]
    M = start[n_chunks]
    if one_pass:
        for k in range(1, n_chunks):  # runs only move towards the front: ascending copies never overwrite
            for i in range(start[k + 1] - start[k]):
                d, src = start[k] + i, k * chunk + i
                index[d] = index[src]
                for f in range(6):
                    geo[d, f] = geo[src, f]
                for f in range(5):
                    feat[d, f] = feat[src, f]
                for f in range(4):
                    boxes[d, f] = boxes[src, f]
        return index, geo, feat, boxes, M
    index = np.empty(M, np.int64)
    geo = np.empty((M, 6), means.dtype)
    feat = np.empty((M, 5), means.dtype)
    boxes = np.empty((M, 4), np.int64)
    for k in prange(n_chunks):
        _project_pairs(means, covars, opacities, colors, log_ratio, cams, width, height, params, min(total, k * chunk),
                       min(total, (k + 1) * chunk), start[k], index, geo, feat, boxes, True)
    return index, geo, feat, boxes, M


@_inline
def _vjp_block(means, covars, cams, params, c, gs, n, inp, out):
    """Per-Gaussian gradients of n ≤ BLOCK entries of camera c, all of them at once (as _project_block).

    gs (BLOCK,) their Gaussians; inp (20, BLOCK) float64: rows 14-19 hold ∂L/∂(mean x, mean y, conic a, b, c, z)
    of each entry, rows 0-11 receive its Gaussian's mean and covariance. out (12, BLOCK): ∂L/∂mean (3) and
    ∂L/∂covariance (9, row-major): _project_block's arithmetic, taken back."""
    for i in range(n):
        _load_gaussian(means, covars, gs[i], inp, i)
    R, Rt, t0, t1, t2, fx, fy, _, _, lim_xp, lim_xn, lim_yp, lim_yn = _camera_row(cams, c)
    eps2d = params[EPS2D]
    for i in range(n):
        x, y, z, Sc, rz = _to_camera(inp, i, R, Rt, t0, t1, t2)
        ux, uy = x * rz, y * rz
        free_x = (-lim_xn < ux) & (ux < lim_xp)  # a clamp passes a gradient only where inactive
        free_y = (-lim_yn < uy) & (uy < lim_yp)
        ux_c = min(lim_xp, max(-lim_xn, ux))
        uy_c = min(lim_yp, max(-lim_yn, uy))
        gmx, gmy, gq0, gq1, gq2, gz = inp[14, i], inp[15, i], inp[16, i], inp[17, i], inp[18, i], inp[19, i]
        tx, ty = z * ux_c, z * uy_c
        j00, j02, j11, j12 = fx * rz, -fx * tx * rz * rz, fy * rz, -fy * ty * rz * rz
        a, b, cc = _cov2d(Sc, j00, j02, j11, j12, eps2d)
        det = a * cc - b * b
        q0, q1, q2 = cc / det, -b / det, a / det
        # conic Q = S⁻¹ of S = cov2d + eps2d·I: ∂L/∂S = −Q Gq Q with Gq = [[gq0, gq1/2], [gq1/2, gq2]]
        h = 0.5 * gq1
        m00, m01, m10, m11 = q0 * gq0 + q1 * h, q0 * h + q1 * gq2, q1 * gq0 + q2 * h, q1 * h + q2 * gq2
        g00 = -(m00 * q0 + m01 * q1)
        g01 = -0.5 * ((m00 * q1 + m01 * q2) + (m10 * q0 + m11 * q1))
        g11 = -(m10 * q1 + m11 * q2)
        # cov2d = J Σc Jᵀ: with H = G2 J, ∂L/∂Σc = Jᵀ H and ∂L/∂J = H (Σc + Σcᵀ)
        H = (g00 * j00, g01 * j11, g00 * j02 + g01 * j12, g01 * j00, g11 * j11, g01 * j02 + g11 * j12)
        P = (2.0 * Sc[0], Sc[1] + Sc[3], Sc[2] + Sc[6], Sc[3] + Sc[1], 2.0 * Sc[4], Sc[5] + Sc[7],
             Sc[6] + Sc[2], Sc[7] + Sc[5], 2.0 * Sc[8])
        gj00 = H[0] * P[0] + H[1] * P[3] + H[2] * P[6]
        gj02 = H[0] * P[2] + H[1] * P[5] + H[2] * P[8]
        gj11 = H[3] * P[1] + H[4] * P[4] + H[5] * P[7]
        gj12 = H[3] * P[2] + H[4] * P[5] + H[5] * P[8]
        GSc = (j00 * H[0], j00 * H[1], j00 * H[2], j11 * H[3], j11 * H[4], j11 * H[5],
               j02 * H[0] + j12 * H[3], j02 * H[1] + j12 * H[4], j02 * H[2] + j12 * H[5])
        # Σc = R Σ Rᵀ: ∂L/∂Σ = Rᵀ ∂L/∂Σc R
        GS = _mm(_mm(Rt, GSc), R)
        # J and the projected mean as functions of the camera-frame mean (x, y, z)
        g_rz = gj00 * fx + gj11 * fy - gj02 * fx * tx * 2.0 * rz - gj12 * fy * ty * 2.0 * rz
        g_tx, g_ty = -gj02 * fx * rz * rz, -gj12 * fy * rz * rz
        g_x, g_y = gmx * fx * rz, gmy * fy * rz
        g_rz += gmx * fx * x + gmy * fy * y
        g_z = gz + g_tx * ux_c + g_ty * uy_c
        g_x = g_x + g_tx * z * rz if free_x else g_x
        g_rz = g_rz + g_tx * z * x if free_x else g_rz
        g_y = g_y + g_ty * z * rz if free_y else g_y
        g_rz = g_rz + g_ty * z * y if free_y else g_rz
        g_z -= g_rz * rz * rz
        out[0, i] = R[0] * g_x + R[3] * g_y + R[6] * g_z
        out[1, i] = R[1] * g_x + R[4] * g_y + R[7] * g_z
        out[2, i] = R[2] * g_x + R[5] * g_y + R[8] * g_z
        out[3, i], out[4, i], out[5, i], out[6, i], out[7, i] = GS[0], GS[1], GS[2], GS[3], GS[4]
        out[8, i], out[9, i], out[10, i], out[11, i] = GS[5], GS[6], GS[7], GS[8]


@_serial
def _entries_vjp(means, covars, cams, params, index, c, e0, e1, entry_start, isect_grad, grad_means,
                 grad_covars, grad_opacities, grad_colors):
    """entries_backward for entries e0 <= e < e1, all of camera c, BLOCK at a time."""
    N = means.shape[0]
    gs = np.empty(BLOCK, np.int64)
    inp = np.empty((20, BLOCK))
    out = np.empty((12, BLOCK))
    for b0 in range(e0, e1, BLOCK):
        n = min(BLOCK, e1 - b0)
        for i in range(n):
            e = b0 + i
            g = index[e] - c * N
            gs[i] = g
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = s10 = 0.0
            for q in range(entry_start[e], entry_start[e + 1]):
                s0 += isect_grad[q, 0]
                s1 += isect_grad[q, 1]
                s2 += isect_grad[q, 2]
                s3 += isect_grad[q, 3]
                s4 += isect_grad[q, 4]
                s5 += isect_grad[q, 5]
                s6 += isect_grad[q, 6]
                s7 += isect_grad[q, 7]
                s8 += isect_grad[q, 8]
                s10 += isect_grad[q, 10]
            grad_opacities[g] += s5
            grad_colors[g, 0] += s6
            grad_colors[g, 1] += s7
            grad_colors[g, 2] += s8
            inp[14, i], inp[15, i], inp[16, i], inp[17, i], inp[18, i], inp[19, i] = s0, s1, s2, s3, s4, s10
        _vjp_block(means, covars, cams, params, c, gs, n, inp, out)
        for i in range(n):
            g = gs[i]
            grad_means[g, 0] += out[0, i]
            grad_means[g, 1] += out[1, i]
            grad_means[g, 2] += out[2, i]
            for k in range(9):
                grad_covars[g, k // 3, k % 3] += out[3 + k, i]


@_jit
def entries_backward(means, covars, cams, params, index, cam_start, entry_start, isect_grad, grad_means,
                     grad_covars, grad_opacities, grad_colors):
    """Sum each entry's rows of isect_grad (I,11) (entry_start[e] .. entry_start[e+1]) and take them back through
    the projection into the per-Gaussian gradients, which are written whole (no need to zero them first).
    cam_start (C+1,): each camera's run of entries. SUB Gaussians at a time, in parallel: their gradient rows
    are zeroed, then each camera's entries of them add theirs in camera order, while the rows are in cache (a
    Gaussian has at most one entry per camera: no races)."""
    N = means.shape[0]
    for k in prange((N + SUB - 1) // SUB):
        g0, g1 = k * SUB, min(N, (k + 1) * SUB)
        grad_means[g0:g1] = 0.0
        grad_covars[g0:g1] = 0.0
        grad_opacities[g0:g1] = 0.0
        grad_colors[g0:g1] = 0.0
        for c in range(cams.shape[0]):
            run = index[cam_start[c]:cam_start[c + 1]]
            e0 = cam_start[c] + np.searchsorted(run, c * N + g0)
            e1 = cam_start[c] + np.searchsorted(run, c * N + g1)
            if e1 > e0:
                _entries_vjp(means, covars, cams, params, index, c, e0, e1, entry_start, isect_grad, grad_means,
                             grad_covars, grad_opacities, grad_colors)


# ------------------------------------------------------------------------------------------------- binning

@_serial
def _sort_run(keys, run, slot):
    """Stable sort of a tile's run of entry ids by keys[run], permuting slot (the same positions) alike."""
    L = run.shape[0]
    k = np.empty(L, np.int64)
    pos = np.arange(L)
    for i in range(L):
        k[i] = keys[run[i]]
    if L <= SHORT_RUN:
        for i in range(1, L):
            key, p = k[i], pos[i]
            j = i - 1
            while j >= 0 and k[j] > key:
                k[j + 1], pos[j + 1] = k[j], pos[j]
                j -= 1
            k[j + 1], pos[j + 1] = key, p
    else:
        buckets = 1 << RADIX_BITS
        k2 = np.empty(L, np.int64)
        pos2 = np.empty(L, np.int64)
        count = np.empty(buckets + 1, np.int64)
        top = k.max()
        for shift in range(0, 64, RADIX_BITS):
            if (top >> shift) == 0:
                break
            count[:] = 0
            for i in range(L):
                count[((k[i] >> shift) & (buckets - 1)) + 1] += 1
            if count.max() == L:
                continue  # every key has the same digit here: the pass would not move anything
            for d in range(buckets):
                count[d + 1] += count[d]
            for i in range(L):
                d = (k[i] >> shift) & (buckets - 1)
                k2[count[d]], pos2[count[d]] = k[i], pos[i]
                count[d] += 1
            k, k2 = k2, k
            pos, pos2 = pos2, pos
    old_run, old_slot = run.copy(), slot.copy()
    for i in range(L):
        run[i] = old_run[pos[i]]
        slot[i] = old_slot[pos[i]]


@_jit
def bin_tiles(keys, boxes, index, N, tiles_x, tiles_y, n_cams, n_chunks):
    """keys (M,) int64 ≥ 0 ordered as the depths, boxes (M,4) -> tile_start (n_tiles+1,), tile_entries (I,)
    entry ids, each tile's run in depth order, entry_start (M+1,) and slot (I,): tile position j holds entry
    e's k-th tile where slot[j] = entry_start[e] + k (the backward writes its per-tile gradients there, so
    that each entry's rows are contiguous). A parallel counting sort over n_chunks chunks of entries (kept in
    entry order within each tile), then a parallel stable sort of each tile's run."""
    M = keys.shape[0]
    per_cam = tiles_x * tiles_y
    n_tiles = n_cams * per_cam
    entry_start = np.zeros(M + 1, np.int64)
    for e in prange(M):
        entry_start[e + 1] = ((boxes[e, 1] // TILE - boxes[e, 0] // TILE + 1)
                              * (boxes[e, 3] // TILE - boxes[e, 2] // TILE + 1))
    for e in range(M):
        entry_start[e + 1] += entry_start[e]
    chunk = (M + n_chunks - 1) // n_chunks
    # entries are in (camera, Gaussian) order: each chunk walks the cameras' boundaries instead of dividing
    cam_start = np.searchsorted(index, np.arange(n_cams + 1) * N)
    cursor = np.zeros((n_chunks, n_tiles), np.int64)
    for k in prange(n_chunks):
        c = 0
        for e in range(min(M, k * chunk), min(M, (k + 1) * chunk)):
            while e >= cam_start[c + 1]:
                c += 1
            base = c * per_cam
            for ty in range(boxes[e, 2] // TILE, boxes[e, 3] // TILE + 1):
                for tx in range(boxes[e, 0] // TILE, boxes[e, 1] // TILE + 1):
                    cursor[k, base + ty * tiles_x + tx] += 1
    tile_start = np.zeros(n_tiles + 1, np.int64)
    at = 0
    for t in range(n_tiles):
        tile_start[t] = at
        for k in range(n_chunks):
            count = cursor[k, t]
            cursor[k, t] = at
            at += count
    tile_start[n_tiles] = at
    tile_entries = np.empty(at, np.int64)
    slot = np.empty(at, np.int64)
    for k in prange(n_chunks):
        c = 0
        for e in range(min(M, k * chunk), min(M, (k + 1) * chunk)):
            while e >= cam_start[c + 1]:
                c += 1
            base = c * per_cam
            q = entry_start[e]
            for ty in range(boxes[e, 2] // TILE, boxes[e, 3] // TILE + 1):
                for tx in range(boxes[e, 0] // TILE, boxes[e, 1] // TILE + 1):
                    t = base + ty * tiles_x + tx
                    tile_entries[cursor[k, t]] = e
                    slot[cursor[k, t]] = q
                    cursor[k, t] += 1
                    q += 1
    for t in prange(n_tiles):
        _sort_run(keys, tile_entries[tile_start[t]:tile_start[t + 1]], slot[tile_start[t]:tile_start[t + 1]])
    return tile_start, tile_entries, entry_start, slot


# ---------------------------------------------------------------------------------------------- blending

def exp_neg(s):
    """exp(−s) for s ≥ 0 in the dtype of s (float32 or float64), as a loop-vectorizable polynomial without
    calls or tables; see the float32 and float64 implementations below."""
    return np.exp(-s)


@overload(exp_neg, jit_options={"error_model": "numpy"})
def _exp_neg_impl(s):
    if s == types.float32:
        return _exp_neg_float32
    return _exp_neg_float64


_F = np.float32


def _exp_neg_float32(s):
    # Cody-Waite reduction exp(−s) = 2^−q·exp(−(s − q·ln 2)) and Sleef's expf_u10 polynomial: within 1.2 ulp
    # of exp (torch's float32 exp is within 0.56 ulp: the two agree to 1 ulp). s is clamped to [0, 16]:
    # beyond it alpha < 1/255 for any opacity ≤ 1.
    s = min(max(s, _F(0.0)), _F(16.0))
    q = np.int32(s * _F(1.44269504088896341) + _F(0.5))
    qf = _F(q)
    t = (qf * _F(0.693145751953125) - s) + qf * _F(1.428606765330187045e-06)
    u = _F(0.000198527617612853646278381)
    u = u * t + _F(0.00139304355252534151077271)
    u = u * t + _F(0.00833336077630519866943359)
    u = u * t + _F(0.0416664853692054748535156)
    u = u * t + _F(0.166666671633720397949219)
    u = u * t + _F(0.5)
    u = (t * t) * u + (t + _F(1.0))
    return u * (_F(np.int32(1) << (np.int32(23) - q)) * _F(1.1920928955078125e-07))  # exact 2^−q, q in 0..23


def _exp_neg_float64(s):
    # exp(−s/32)^32 with a degree-13 Taylor polynomial: ~1e-14 relative on [0, 16], and smooth (no range
    # reduction steps), which the float64 finite-difference checks need.
    r = min(max(s, 0.0), 16.0) * 0.03125
    p = 1.0 / 6227020800.0
    p = 1.0 / 479001600.0 - p * r
    p = 1.0 / 39916800.0 - p * r
    p = 1.0 / 3628800.0 - p * r
    p = 1.0 / 362880.0 - p * r
    p = 1.0 / 40320.0 - p * r
    p = 1.0 / 5040.0 - p * r
    p = 1.0 / 720.0 - p * r
    p = 1.0 / 120.0 - p * r
    p = 1.0 / 24.0 - p * r
    p = 1.0 / 6.0 - p * r
    p = 0.5 - p * r
    p = 1.0 - p * r
    p = 1.0 - p * r
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


@_inline
def _box_alpha(pk, lanes, w, x0, y0, mx, my, ca, cb, cc, op, consts):
    """Up to 16 pixels of an entry's box at once, rows of w pixels from (x0, y0) packed row-major into one
    branch-free loop of TILE lanes (LLVM vectorizes it: one AVX-512 vector in float32): a pixel-sized splat's
    whole box in one pass instead of one pass per row. lanes (2, TILE+1, TILE): column and row of lane i for
    rows of w (_lane_tables). pk (4, TILE) receives dx, dy, exp(−σ) and alpha, or 0 where σ < 0 or alpha < 1/255
    (the reference's arithmetic and tests; lanes past the box are computed and not read). Returns the mask of
    lanes that passed (bit i: lane i)."""
    half, max_alpha, alpha_min, zero = consts[HALF], consts[MAX_ALPHA], consts[ALPHA_MIN], consts[ZERO]
    passed = 0
    for i in range(TILE):
        dx = (x0 + lanes[0, w, i]) - mx  # exact: pixel coordinates are integers
        dy = (y0 + lanes[1, w, i]) - my
        sigma = half * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        falloff = exp_neg(sigma)
        alpha = min(op * falloff, max_alpha)
        ok = (sigma >= zero) & (alpha >= alpha_min)
        pk[0, i], pk[1, i], pk[2, i] = dx, dy, falloff
        pk[3, i] = alpha if ok else zero
        passed |= np.int64(ok) << i
    return passed


@_inline
def _pass_lanes(rows, ys, ye, lx0, bw):
    """Lane mask of a pass over box rows ys..ye−1, bw pixels from column lx0 (_box_alpha's lanes): the pixels whose
    bit is set in rows (a bit mask per tile row: not yet stopped in the forward, gone through in the backward)."""
    low = (1 << bw) - 1
    mask = 0
    for r in range(ye - ys):
        mask |= ((rows[ys + r] >> lx0) & low) << (r * bw)
    return mask


@_inline
def _lane_tables(dtype_like):
    """(lanes (2, TILE+1, TILE) in dtype_like's dtype, ilanes (3, TILE+1, TILE) int64): lane i of a box w
    pixels wide is its column i % w and row i // w; ilanes[2, w, 0] = TILE // w, its rows per pass."""
    ilanes = np.zeros((3, TILE + 1, TILE), np.int64)
    for w in range(1, TILE + 1):
        ilanes[2, w, 0] = TILE // w
        for i in range(TILE):
            ilanes[0, w, i], ilanes[1, w, i] = i % w, i // w
    return ilanes[:2].astype(dtype_like.dtype), ilanes


@_inline
def _tile_origin(t, tiles_x, tiles_y, width, height):
    """Camera, first pixel column and row, and width and height in pixels (≤ 16 at the image edges) of tile t."""
    c, r = t // (tiles_x * tiles_y), t % (tiles_x * tiles_y)
    px0, py0 = (r % tiles_x) * TILE, (r // tiles_x) * TILE
    return c, px0, py0, min(TILE, width - px0), min(TILE, height - py0)


@_inline
def _layer_step(layer, ly, lx, w, d, dz, before, gap):
    """Pixel (ly, lx)'s median-layer state layer[ly, lx] (5,): the current layer's Σ w·d, Σ w·d·z, last z, 1 once
    Σ w·d reached one half in it, and the depth (−1 until the layer holding the median ends), after an entry of
    weight w, depth weight d > 0 and d·z that the pixel blends, Σ w·d being `before` ahead of it."""
    z = dz / d
    if layer[ly, lx, 0] > 0.0 and z > layer[ly, lx, 2] * gap:  # a depth edge: a new layer
        if layer[ly, lx, 3] > 0.0:
            layer[ly, lx, 4] = layer[ly, lx, 1] / layer[ly, lx, 0]
            return
        layer[ly, lx, 0] = 0.0
        layer[ly, lx, 1] = 0.0
    layer[ly, lx, 0] += w * d
    layer[ly, lx, 1] += w * dz
    layer[ly, lx, 2] = z
    if before < 0.5 <= before + w * d:
        layer[ly, lx, 3] = 1.0


@_jit
def blend_forward(geo, feat, boxes, tile_start, tile_entries, width, height, tiles_x, tiles_y, coords, consts,
                  params, n_slots, out, t_final, n_used):
    """Fill out (C*H*W,5) with Σ w·feat per pixel, t_final (C*H*W,) float64 with the final transmittance
    and n_used (C*H*W,) int32 with how many entries of its tile's run the pixel went through (its stop index).
    coords: (tiles_x or tiles_y) * TILE pixel coordinates 0, 1, ... in the entries' dtype.
    An out of 6 columns also receives the median layer's depth (rasterize_torch._median_depths), −1 where there is
    none: with feat = [r,g,b,d,d·z], the entries with d > 0 form layers along the ray (a new one where z exceeds the
    last one's by more than params[LAYER_GAP] of it), and the layer of the entry whose weight takes Σ w·d to one half
    or more gives Σ w·d·z / Σ w·d over its entries."""
    t_min = params[T_MIN]
    median = out.shape[1] > 5
    gap = 1.0 + params[LAYER_GAP] if median else 1.0
    n_tiles = tile_start.shape[0] - 1
    lanes, ilanes = _lane_tables(geo)
    for s in prange(n_slots):
        pk = np.empty((4, TILE), geo.dtype)
        T = np.empty((TILE, TILE), np.float64)
        acc = np.empty((TILE, TILE, 5), np.float64)
        stop = np.empty((TILE, TILE), np.int32)
        live = np.empty(TILE, np.int64)
        layer = np.empty((TILE, TILE, 5), np.float64)  # _layer_step's state
        for t in range(s, n_tiles, n_slots):
            c, px0, py0, pw, ph = _tile_origin(t, tiles_x, tiles_y, width, height)
            a, b = tile_start[t], tile_start[t + 1]
            T[:] = 1.0
            acc[:] = 0.0
            if median:
                layer[:] = 0.0
                layer[:, :, 4] = -1.0
            stop[:] = b - a
            for ly in range(TILE):
                live[ly] = (1 << pw) - 1 if ly < ph else 0
            n_live = pw * ph
            for j in range(a, min(a + PREFETCH, b)):
                _prefetch_entry(geo, feat, boxes, tile_entries[j])
            for j in range(a, b):
                if j + PREFETCH < b:
                    _prefetch_entry(geo, feat, boxes, tile_entries[j + PREFETCH])
                e = tile_entries[j]
                mx, my, op = geo[e, 0], geo[e, 1], geo[e, 5]
                f0, f1, f2, f3, f4 = feat[e, 0], feat[e, 1], feat[e, 2], feat[e, 3], feat[e, 4]
                lx0, lx1 = max(boxes[e, 0] - px0, 0), min(boxes[e, 1] - px0, pw - 1)
                ly0, ly1 = max(boxes[e, 2] - py0, 0), min(boxes[e, 3] - py0, ph - 1)
                bw = lx1 - lx0 + 1
                ys = ly0
                while ys <= ly1:  # TILE // bw rows at a time
                    ye = min(ys + ilanes[2, bw, 0], ly1 + 1)
                    todo = _pass_lanes(live, ys, ye, lx0, bw)  # the pixels not yet stopped
                    if todo != 0:
                        todo &= _box_alpha(pk, lanes, bw, coords[px0 + lx0], coords[py0 + ys], mx, my, geo[e, 2],
                                           geo[e, 3], geo[e, 4], op, consts)
                    while todo != 0:
                        i = _lowest_bit(todo)
                        todo &= todo - 1
                        lx, ly = lx0 + ilanes[0, bw, i], ys + ilanes[1, bw, i]
                        alpha = pk[3, i]
                        Tk = T[ly, lx]
                        next_t = Tk * (1.0 - alpha)
                        if next_t <= t_min:
                            stop[ly, lx] = j - a
                            live[ly] &= ~(1 << lx)
                            n_live -= 1
                            continue
                        w = alpha * Tk
                        if median and f3 > 0.0 and layer[ly, lx, 4] < 0.0:
                            _layer_step(layer, ly, lx, w, f3, f4, acc[ly, lx, 3], gap)
                        acc[ly, lx, 0] += w * f0
                        acc[ly, lx, 1] += w * f1
                        acc[ly, lx, 2] += w * f2
                        acc[ly, lx, 3] += w * f3
                        acc[ly, lx, 4] += w * f4
                        T[ly, lx] = next_t
                    ys = ye
                if n_live == 0:
                    break
            for ly in range(ph):
                for lx in range(pw):
                    p = (c * height + py0 + ly) * width + px0 + lx
                    for f in range(5):
                        out[p, f] = acc[ly, lx, f]
                    if median:
                        if layer[ly, lx, 4] < 0.0 and layer[ly, lx, 3] > 0.0:  # the median's layer was the last
                            layer[ly, lx, 4] = layer[ly, lx, 1] / layer[ly, lx, 0]
                        out[p, 5] = layer[ly, lx, 4]
                    t_final[p] = T[ly, lx]
                    n_used[p] = stop[ly, lx]


@_jit
def blend_backward(geo, feat, boxes, tile_start, tile_entries, width, height, tiles_x, tiles_y, coords, consts,
                   params, n_slots, t_final, n_used, grad_out, slot, isect_grad):
    """grad_out (C*H*W,5) -> isect_grad (I,11), every row written: row slot[j] receives ∂L/∂geo (6) and
    ∂L/∂feat (5) of entry tile_entries[j] from its tile's pixels (see bin_tiles), zeros past the pixels' stops."""
    max_alpha = consts[MAX_ALPHA]
    n_tiles = tile_start.shape[0] - 1
    lanes, ilanes = _lane_tables(geo)
    longest = 0
    for t in range(n_tiles):
        longest = max(longest, tile_start[t + 1] - tile_start[t])
    for s in prange(n_slots):
        pk = np.empty((4, TILE), geo.dtype)
        T = np.empty((TILE, TILE), np.float64)
        after = np.empty((TILE, TILE), np.float64)  # Σ over later Gaussians of (grad·feat)·w: what (1 − α) scales
        G = np.empty((TILE, TILE, 5), geo.dtype)
        # pixels bucketed by their stop index u (linked lists): they join the backward walk at run position u − 1
        first = np.empty(longest + 1, np.int64)
        then = np.empty(TILE * TILE, np.int64)
        active = np.empty(TILE, np.int64)  # bit lx: the pixel went through the current entry
        for t in range(s, n_tiles, n_slots):
            c, px0, py0, pw, ph = _tile_origin(t, tiles_x, tiles_y, width, height)
            a = tile_start[t]
            first[:tile_start[t + 1] - a + 1] = -1
            after[:] = 0.0
            most = 0
            for ly in range(TILE):
                active[ly] = 0
                for lx in range(TILE):
                    if ly < ph and lx < pw:
                        p = (c * height + py0 + ly) * width + px0 + lx
                        T[ly, lx] = t_final[p]
                        u = n_used[p]
                        then[ly * TILE + lx] = first[u]
                        first[u] = ly * TILE + lx
                        most = max(most, u)
                        for f in range(5):
                            G[ly, lx, f] = grad_out[p, f]
            # walking the run backwards, a pixel joins once the walk reaches the entries it went through
            last = a + most - 1
            for j in range(last, max(last - PREFETCH, a - 1), -1):
                _prefetch_entry(geo, feat, boxes, tile_entries[j])
            for j in range(last, a - 1, -1):
                if j - PREFETCH >= a:
                    _prefetch_entry(geo, feat, boxes, tile_entries[j - PREFETCH])
                    _prefetch_write(isect_grad, slot[j - PREFETCH])
                k = first[j - a + 1]
                while k >= 0:
                    active[k // TILE] |= 1 << (k % TILE)
                    k = then[k]
                e = tile_entries[j]
                mx, my, ca, cb, cc, op = geo[e, 0], geo[e, 1], geo[e, 2], geo[e, 3], geo[e, 4], geo[e, 5]
                f0, f1, f2, f3, f4 = feat[e, 0], feat[e, 1], feat[e, 2], feat[e, 3], feat[e, 4]
                lx0, lx1 = max(boxes[e, 0] - px0, 0), min(boxes[e, 1] - px0, pw - 1)
                ly0, ly1 = max(boxes[e, 2] - py0, 0), min(boxes[e, 3] - py0, ph - 1)
                bw = lx1 - lx0 + 1
                # this entry's ∂L/∂(mean x, mean y, conic a, b, c, opacity) and ∂L/∂(r, g, b, 1, z)
                g_mx = g_my = g_a = g_b = g_c = g_o = 0.0
                g_f0 = g_f1 = g_f2 = g_f3 = g_f4 = 0.0
                ys = ly0
                while ys <= ly1:  # rows in order, pixels row-major (lowest bit first): the forward's sums' order
                    ye = min(ys + ilanes[2, bw, 0], ly1 + 1)
                    todo = _pass_lanes(active, ys, ye, lx0, bw)
                    if todo != 0:
                        todo &= _box_alpha(pk, lanes, bw, coords[px0 + lx0], coords[py0 + ys], mx, my, ca, cb, cc, op,
                                           consts)
                    while todo != 0:
                        i = _lowest_bit(todo)
                        todo &= todo - 1
                        lx, ly = lx0 + ilanes[0, bw, i], ys + ilanes[1, bw, i]
                        alpha = pk[3, i]
                        falloff = pk[2, i]
                        raw = op * falloff
                        keep = 1.0 - alpha
                        Tk = T[ly, lx] / keep
                        T[ly, lx] = Tk
                        w = alpha * Tk
                        G0, G1, G2, G3, G4 = G[ly, lx, 0], G[ly, lx, 1], G[ly, lx, 2], G[ly, lx, 3], G[ly, lx, 4]
                        gf = float(G0 * f0) + G1 * f1 + G2 * f2 + G3 * f3 + G4 * f4
                        g_f0 += w * G0
                        g_f1 += w * G1
                        g_f2 += w * G2
                        g_f3 += w * G3
                        g_f4 += w * G4
                        d_alpha = gf * Tk - after[ly, lx] / keep
                        after[ly, lx] += gf * w
                        if raw < max_alpha:
                            dx, dy = pk[0, i], pk[1, i]
                            d_sigma = -d_alpha * raw
                            g_mx -= d_sigma * (ca * dx + cb * dy)
                            g_my -= d_sigma * (cc * dy + cb * dx)
                            g_a += 0.5 * d_sigma * dx * dx
                            g_b += d_sigma * dx * dy
                            g_c += 0.5 * d_sigma * dy * dy
                            g_o += d_alpha * falloff
                    ys = ye
                q = slot[j]
                isect_grad[q, 0], isect_grad[q, 1], isect_grad[q, 2] = g_mx, g_my, g_a
                isect_grad[q, 3], isect_grad[q, 4], isect_grad[q, 5] = g_b, g_c, g_o
                isect_grad[q, 6], isect_grad[q, 7], isect_grad[q, 8] = g_f0, g_f1, g_f2
                isect_grad[q, 9], isect_grad[q, 10] = g_f3, g_f4
            for j in range(last + 1, tile_start[t + 1]):  # no pixel went through these: zero rows
                isect_grad[slot[j]] = 0.0
