"""What a depth camera measured, made like what the model was trained on (`prepare`), read from the depth images
themselves: its noise, and its pixels that straddle a depth edge.

The model learned measured depth from a Kinect-like sensor (data.depth_sensor: ~2 mm at 1 m, ~14 mm at 3 m, a depth
edge's pixels mostly lost). Other cameras differ in both ways, and the pixel Gaussians, placed at the measured depth,
show it (8 robot validation scenes, RGB-D novel_view; ablation block 35):
- noise: a stereo camera measures several times noisier (a RealSense D435's 2 % at 2 m is 0.01 /m in inverse depth,
  six times the training sensor's), and its Gaussians scatter about every surface (the sensor's noise x3: -0.9 dB,
  x8 -2.3 dB). `noise_level` reads a view's noise as a pixel's departure from its neighbours' mean (a plane's
  inverse depth is affine in the pixel coordinates), in inverse depth, where a camera's noise is about one number
  at every range (a stereo camera's disparity noise; the training sensor's views read 0.0015-0.0027 /m whatever their
  depths); `denoise` averages, in views noisier than TRAINED_NOISE, each measured pixel's inverse depth with those
  of its 5x5 neighbours within a few noise widths (a depth edge stays).
- mixed pixels: a time-of-flight camera's "flying pixels", and a renderer's anti-aliased depth, measure a depth
  edge's pixels between the two surfaces, and their Gaussians hang in the air between them (flying pixels -1.7 dB,
  anti-aliased depth -0.5 dB). `mixed_pixels` finds them: between their two neighbours across the edge in some
  direction, and on neither side's surface as the next two pixels on each side extrapolate it; `prepare` drops
  them (the training sensor lost such pixels too).
- the unit: depth images that hold millimetres in a 32FC1 image (or poses in other units than the depth's) put every
  measured pixel 1000x off (-7.7 dB, worse than no depth). `reading` finds the power of ten by which the depth
  agrees with the poses: view i's pixels, through the poses, landing on view j's measured depth.
- the camera frame (`reading` too): poses are the optical frame's (z forward, x right, y down). Poses of OpenGL's
  camera frame (a renderer's: x right, y up, z back) or of a body frame (camera_link: x forward, y left, z up), or
  images written bottom-up, put every view's pixels where no other view saw them; the depth agrees through the poses
  only read so. Told, not mended: the same poses come with every render request.
- the quantity: ROS depth is z along the optical axis (REP 118), but some renderers write each pixel's distance along
  its ray (Isaac Sim's distance_to_camera, AirSim's DepthPerspective), up to 1.29x z at a 60° camera's corners,
  which bends every plane (range read as z: -4.1 dB). `ray_depth_t` tells them apart by which reading keeps the
  views' planar patches planar, and `z_from_ray` converts.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# Inverse-depth noise (1/m; 1.4826·MAD of a pixel's departure from its 8 neighbours' mean, as one pixel's) above
# which a view is denoised: the training sensor's views read 0.0015-0.0027 (24 robot validation scenes and the 13
# RGB-D evaluation bags), x2 its noise 0.0030-0.0052.
TRAINED_NOISE = 0.003
SENSOR_NOISE = 0.0016  # what the training sensor's views read (the median view)
# neighbours further than this share of the pixel's inverse depth are another surface (the estimate): 0.15 read
# 0.0155 /m for 0.02 of noise on a plane 2 m away (the gate cut its tails), 0.3 0.0196; the same on the bags
NOISE_GATE = 0.3
MIN_PIXELS = 100  # pixels with all 8 neighbours on their surface a view needs for an estimate
# The neighbourhood (pixels) and its tolerance in noise widths. 8 robot validation scenes, RGB-D novel_view at the
# sensor's noise x2 / x3 / x5 / x8: none 26.65 / 26.05 / 25.36 / 24.63, 5x5 within 4 widths 26.86 / 26.78 / 26.56 /
# 26.13 (at x5: 3 widths 26.47, 6 widths 26.46, 7x7 26.46); 16 others 27.15 / 26.65 / 26.01 / 25.13 -> 27.58 / 27.51
# / 26.98 / 26.68 (ablation block 35).
SIZE, WIDTHS = 5, 4.0
# mixed_pixels' tolerance: this share of the pixel's inverse depth, or this many noise widths if more. 8 robot
# validation scenes, RGB-D novel_view without / with the drop: flying pixels (the sensor's edge pixels kept, each at a
# random mix of its surface's and its farthest neighbour's inverse depth) 25.22 / 26.27, anti-aliased renderer depth
# (3x3 sub-pixel z averaged) 26.53 / 27.23, the training sensor 26.94 / 26.94, exact pixel-centre depth 27.01 / 27.02;
# at 0.02 26.30, 27.29, 26.93, 26.97 (ablation block 35).
MIXED_REL, MIXED_WIDTHS = 0.04, 8.0


def _neighbours(inverse: Tensor, size: int) -> Tensor:
    """(V,size²,H,W) each pixel's size x size neighbourhood of inverse (V,H,W), 0 beyond the image."""
    V, H, W = inverse.shape
    return F.unfold(inverse[:, None], size, padding=size // 2).view(V, size * size, H, W)


def _inverse(depths: Tensor) -> Tensor:
    measured = torch.isfinite(depths) & (depths > 0)
    return torch.where(measured, 1.0 / torch.where(measured, depths, torch.ones_like(depths)), torch.zeros_like(depths))


def noise_level(depths: Tensor) -> Tensor:
    """(V,) each view's inverse-depth noise (1/unit) read from depths (V,H,W) (metres, 0 or NaN = none): robust σ
    of (mean of the 8 neighbours − pixel) over pixels whose 8 neighbours all lie within NOISE_GATE of it, as one
    pixel's noise (that mean carries an eighth of its variance); 0 where under MIN_PIXELS qualify."""
    inv = _inverse(depths.float())
    ring = _neighbours(inv, 3)
    ring = torch.cat([ring[:, :4], ring[:, 5:]], 1)
    full = (inv > 0) & ((ring - inv[:, None]).abs() <= NOISE_GATE * inv[:, None]).all(1)
    departure = (ring.mean(1) - inv).abs()
    out = torch.zeros(depths.shape[0], dtype=torch.float32, device=depths.device)
    for v in range(depths.shape[0]):
        x = departure[v][full[v]]
        if x.numel() >= MIN_PIXELS:
            out[v] = x.median() * 1.4826 / (1 + 1 / 8) ** 0.5
    return out


def mixed_pixels(depths: Tensor, sigma: Tensor | None = None) -> Tensor:
    """(V,H,W) bool: the measured pixels of depths (V,H,W) (metres, 0 = none) that straddle a depth edge. Along one
    of 4 directions (rows, columns, diagonals), with both neighbours and the next pixel beyond each measured, the
    pixel's inverse depth lies between its two neighbours' by more than a tolerance, and departs by more than it
    from each side's surface extrapolated from its two pixels (a plane seen at a grazing angle, its inverse depth
    a ramp, lies on both; a one- or two-pixel pole, a thin edge's own pixels, on one). The tolerance is MIXED_REL of
    the pixel's inverse depth or MIXED_WIDTHS of the view's noise sigma (V,) (`noise_level` where None)."""
    inv = _inverse(depths.float())
    sigma = noise_level(depths) if sigma is None else sigma
    tol = torch.maximum(MIXED_REL * inv, MIXED_WIDTHS * sigma.to(inv)[:, None, None])
    V, H, W = inv.shape
    pad = F.pad(inv, (2, 2, 2, 2))

    def at(dy: int, dx: int) -> Tensor:  # inv[v, i + dy, j + dx], 0 beyond the image
        return pad[:, 2 + dy:2 + dy + H, 2 + dx:2 + dx + W]

    out = torch.zeros_like(inv, dtype=torch.bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a1, a2, b1, b2 = at(-dy, -dx), at(-2 * dy, -2 * dx), at(dy, dx), at(2 * dy, 2 * dx)
        seen = (inv > 0) & (a1 > 0) & (a2 > 0) & (b1 > 0) & (b2 > 0)
        between = (inv > torch.minimum(a1, b1) + tol) & (inv < torch.maximum(a1, b1) - tol)
        off = ((inv - (2 * a1 - a2)).abs() > tol) & ((inv - (2 * b1 - b2)).abs() > tol)
        out |= seen & between & off
    return out


def denoise(depths: Tensor, sigma: Tensor | None = None) -> Tensor:
    """depths (V,H,W) (metres, 0 = none) with each measured pixel of the views noisier than TRAINED_NOISE (sigma
    (V,), `noise_level` where None) given the mean inverse depth of its SIZE x SIZE measured neighbours within
    WIDTHS of the view's noise; the other views, and every unmeasured pixel, as they were (the same tensor where no
    view is noisier)."""
    sigma = noise_level(depths) if sigma is None else sigma
    noisy = sigma > TRAINED_NOISE
    if not bool(noisy.any()):
        return depths
    inv = _inverse(depths[noisy].float())
    near = _neighbours(inv, SIZE)
    kept = (near > 0) & ((near - inv[:, None]).abs() <= (WIDTHS * sigma[noisy])[:, None, None, None])
    mean = (near * kept).sum(1) / kept.sum(1).clamp_min(1)
    out = depths.clone()
    out[noisy] = torch.where(inv > 0, 1.0 / mean.clamp_min(1e-12), depths[noisy].float()).to(depths.dtype)
    return out


def prepare(depths: Tensor, sigma: Tensor | None = None) -> tuple[Tensor, float, float]:
    """depths (V,H,W) (metres, 0 = none) as the model was trained on them: each view's noise read once (sigma (V,),
    `noise_level` where None), the pixels that straddle a depth edge dropped (0), then the views noisier than the
    training sensor's denoised. A camera like the training sensor's comes back nearly as it was (8 validation scenes:
    under 1 pixel in 10^4 dropped). Returns (depths, the noisiest view's noise (1/m), the share of the measured
    pixels dropped)."""
    sigma = noise_level(depths) if sigma is None else sigma
    mixed = mixed_pixels(depths, sigma)
    measured = int((torch.isfinite(depths) & (depths > 0)).sum())
    dropped = int(mixed.sum()) / max(measured, 1)
    if dropped:
        depths = torch.where(mixed, torch.zeros_like(depths), depths)
    return denoise(depths, sigma), float(sigma.max()) if sigma.numel() else 0.0, dropped


# Ray distance against z (`ray_depth_t`): a plane's inverse z-depth is affine in the pixel coordinates, its inverse
# ray distance is that divided by the pixel's ray length, which bends it most at the image's edges. Planes are fitted
# to the inverse depth of RAY_TILE x RAY_TILE tiles (half-overlapping, every pixel measured) read both ways; a tile
# counts where one reading fits within PLANAR of its mean inverse depth (RMS). Read on the depth as it came (before
# the unit test, which ray distance defeats), and where that tells nothing (|t| <= RAY_T: a noisy camera's raw tiles
# are not planar within 1 %) again after `prepare` (its denoising keeps a plane's inverse depth affine). As it came,
# z-depth never read above 0 (noise x3 / x8: no planar tiles in some / all windows). Rig-protocol windows of 24 robot
# validation scenes, z-depth as written / read as ray distance: t -17 at most (median -35) / 16 at least (median 37)
# with the training sensor, -45 / 38 exact, -6.4 / 10.4 median with its noise x8 (denoised; z up to 0.6, ray down to
# 4.4), and the 17 RGB-D evaluation bags' -19 / 19. Ray distance read as z cost 8 of them 4.1 dB of RGB-D novel_view
# (26.94 -> 22.82; converted, 26.94).
RAY_TILE, PLANAR = 16, 0.01
RAY_T = 8.0  # t above which a window's depth is read as ray distance (z-depth read 0.6 at most)
# Planar tiles a reading needs. With 20, exact z-depth of 4 views of curved objects and no floor (bench_model's
# scene) read t 8.06 from 20 tiles: half-overlapping tiles of a few surfaces are not independent, and t grows with
# them. The 24 validation windows and 17 evaluation bags hold 204-1126 (as z or ray distance); the sensor's noise
# x3 / x8 written as ray distance is told on 12 / 10 of 12 windows with 20 or 100 (/work/runs/s38/agree).
MIN_TILES = 100


def ray_lengths(Ks: Tensor, height: int, width: int) -> Tensor:
    """(V,H,W) each pixel centre's ray length per unit of z, |K⁻¹ (u, v, 1)|, for intrinsics Ks (V,3,3)."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64, device=Ks.device),
                          torch.arange(width, dtype=torch.float64, device=Ks.device), indexing="ij")
    k = torch.linalg.inv(Ks.double())[:, :, :, None, None]  # (V,3,3,1,1)
    ray = k[:, :, 0] * u + k[:, :, 1] * v + k[:, :, 2]  # (V,3,H,W)
    return ray.pow(2).sum(1).sqrt()


def ray_depth_t(depths: Tensor, Ks: Tensor) -> float:
    """How strongly depths (V,H,W) (metres, 0 = none; intrinsics Ks (V,3,3)) read as each pixel's distance along its
    ray rather than z: the t statistic, over planar tiles, of log(plane-fit RMS read as z / read as ray distance).
    Above RAY_T: ray distance; about 0 where neither fits better; negative for z; 0 under MIN_TILES planar tiles."""
    V, H, W = depths.shape
    if H < RAY_TILE or W < RAY_TILE:
        return 0.0
    inv_z = _inverse(depths.double())
    measured = inv_z > 0
    inv_ray = inv_z * ray_lengths(Ks, H, W)  # z = ray distance / ray length

    def tiles(x: Tensor) -> Tensor:  # (V·L, RAY_TILE²) half-overlapping tiles
        return F.unfold(x[:, None], RAY_TILE, stride=RAY_TILE // 2).transpose(1, 2).reshape(-1, RAY_TILE ** 2)

    full = tiles(measured.double()).amin(-1) > 0
    if int(full.sum()) < MIN_TILES:
        return 0.0
    r = torch.arange(RAY_TILE, dtype=torch.float64, device=depths.device)
    a = torch.stack([r.repeat(RAY_TILE), r.repeat_interleave(RAY_TILE), torch.ones_like(r).repeat(RAY_TILE)], 1)
    basis = torch.linalg.qr(a).Q  # (RAY_TILE², 3) orthonormal: the planes' part of a tile is x @ basis

    def misfit(x: Tensor) -> Tensor:  # each tile's plane-fit RMS over its mean
        x = tiles(x)[full]
        residual = (x.pow(2).sum(-1) - (x @ basis).pow(2).sum(-1)).clamp_min(0)
        return (residual / RAY_TILE ** 2).sqrt() / x.mean(-1)

    as_z, as_ray = misfit(inv_z), misfit(inv_ray)
    planar = torch.minimum(as_z, as_ray) < PLANAR
    if int(planar.sum()) < MIN_TILES:
        return 0.0
    s = torch.log(as_z[planar].clamp_min(1e-12)) - torch.log(as_ray[planar].clamp_min(1e-12))
    spread = float(s.std())
    return float(s.mean()) / (spread / len(s) ** 0.5) if spread > 0 else 0.0


def z_from_ray(depths: Tensor, Ks: Tensor) -> Tensor:
    """depths (V,H,W) written as distance along each pixel's ray, as z along the optical axis (0 stays 0)."""
    return (depths.double() / ray_lengths(Ks, *depths.shape[1:])).to(depths.dtype)


# Depth units against the poses (`reading`): view i's measured pixels, scaled by a power of ten and carried through
# the poses into every other view with depth from another position, agree with that view's depth where they land
# within UNIT_TOLERANCE (log; a noisy camera's, within its noise). The factor most agree at is taken where it beats 1
# by UNIT_MARGIN times and UNIT_MIN_SHARE of the pixels. Rig-protocol windows of 24 robot validation scenes and 17
# RGB-D evaluation bags in metres: no other factor reached 0.81 of 1's share (0.68 on the scenes; with the sensor's
# noise x3 / x8 0.83 / 0.90); the same depth x1000 is found on all 24 scenes (x3 / x8 noise: 19 / 18, NOISE_TOLERANCE)
# and 16 bags. A window whose cameras stand close together and look one way (a head rig) sees scale least:
# scene_1002001 x1000 reads 1.27x at 0.001 and is left as it came. A tolerance of 0.05 separated less (head rigs x1000
# 1.13-1.28x; metres up to 0.92). RGB-D novel_view of 8 of the scenes with their depth x1000 / x100 / x10 / x0.001:
# 19.26 / 19.27 / 19.01 / 18.42 as it came, 26.94 / 26.94 / 25.39 / 26.94 scaled (x10: two head rigs' windows left as
# they came) against 26.94 in metres.
UNIT_FACTORS = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3)
UNIT_TOLERANCE, UNIT_MARGIN = 0.01, 1.5
# A noisy camera's pixels agree within its noise: the tolerance widens to this many times its relative noise (the
# training sensor's 0.4 % keeps 0.01; x3 / x8 its noise 2.7 % / 6.9 %): x1000 found on 19 / 18 of the 24 scenes
# (13 / 0 at 0.01), metres still never read otherwise (other pairs at most 0.83 / 0.90 of the optical frame's share).
NOISE_TOLERANCE = 1.5
# A claim (another unit, another frame) needs this share of the pixels agreeing: in metres and the optical frame the
# validation and bag windows agree on 0.17-0.80, while the test suite's two 24x32 views, which barely overlap, read
# 0.01-0.07 as given and by chance up to 0.11 with their images' rows reversed.
UNIT_MIN_SHARE = 0.15
UNIT_PIXELS = 256  # pixels sampled per view (1024 read the same to 0.01 on 41 windows, 4x the time)
# A depth camera measures up to tens of metres (REP 118: 32FC1 in metres, 16UC1 can hold no more than 65.535 m). The
# agreement rules out depth read too near (points brought nearer move with every camera's parallax) but hardly too
# far: where the cameras see the scene with little parallax (a head rig, close together and looking one way) depth
# x1000 agrees as well scaled back or not (scene_1002001 x1000: 0.561 at 0.001, 0.443 as given, 1.27x, under
# UNIT_MARGIN; in metres 0.561 as given, 0.093 at 0.1). So a median measurement beyond this, as given, is taken as
# another unit where a factor below 1 that brings it within agrees better than the depth as given at all.
PLAUSIBLE_DEPTH = 50.0


def agreement(depths: Tensor, Ks: Tensor, camtoworlds: Tensor, factors: tuple[float, ...], turns: Tensor,
              tolerance: float) -> Tensor:
    """(R, len(factors)) the share of UNIT_PIXELS sampled measured pixels per view of depths (V,H,W) (0 = none;
    intrinsics Ks (V,3,3)) that, scaled by each factor and carried through the poses camtoworlds (V,4,4), each
    post-multiplied by each of turns (R,3,3) (the optical frame's axes in the frame read), into each other view with
    depth from another position, land within `tolerance` (log) of its depth."""
    _, H, W = depths.shape
    d = depths.double()
    d = torch.where(torch.isfinite(d) & (d > 0), d, torch.zeros_like(d))
    K, c2w = Ks.double(), camtoworlds.double()
    w2c = torch.linalg.inv(c2w)
    turns = turns.double().to(d.device)
    factors = torch.tensor(factors, dtype=torch.float64, device=d.device)
    stride = max(1, round((H * W / UNIT_PIXELS) ** 0.5))
    v, u = torch.meshgrid(torch.arange(0, H, stride, dtype=torch.float64, device=d.device),
                          torch.arange(0, W, stride, dtype=torch.float64, device=d.device), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)
    has = (d > 0).flatten(1).any(1)
    centres = c2w[:, :3, 3]
    agree = torch.zeros(len(turns), len(factors), dtype=torch.float64, device=d.device)
    tested = 0
    for i in torch.where(has)[0].tolist():
        js = torch.where(has & ((centres - centres[i]).norm(dim=-1) > 1e-9 * float(centres.abs().max()) + 1e-12))[0]
        di = d[i, ::stride, ::stride].reshape(-1)
        cam = (pix[di > 0] @ torch.linalg.inv(K[i]).T) * di[di > 0, None]  # (N,3) at factor 1
        if len(js) == 0 or len(cam) == 0:
            continue
        rel = w2c[js] @ c2w[i]  # (J,4,4) view i's camera frame -> view j's
        # read through a turn T, both poses turn: T^-1 rel T (rotation about the camera centres: the same js)
        rot = turns.transpose(1, 2)[:, None] @ rel[None, :, :3, :3] @ turns[:, None]  # (R,J,3,3)
        shift = (turns.transpose(1, 2)[:, None] @ rel[None, :, :3, 3:])[..., 0]  # (R,J,3)
        x = (factors[:, None, None] * cam)[None, None] @ rot[:, :, None].transpose(-1, -2) \
            + shift[:, :, None, None]  # (R,J,F,N,3)
        z = x[..., 2]
        proj = x @ K[js][None, :, None].transpose(-1, -2)
        col = torch.round(proj[..., 0] / z.clamp_min(1e-12)).long()
        row = torch.round(proj[..., 1] / z.clamp_min(1e-12)).long()
        inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
        there = d[js[None, :, None, None], row.clamp(0, H - 1), col.clamp(0, W - 1)] * factors[:, None]
        close = (torch.log(there.clamp_min(1e-300)) - torch.log(z.clamp_min(1e-300))).abs() < tolerance
        agree += (inside & (there > 0) & close).sum((1, 3)).double()
        tested += len(js) * len(cam)
    return agree / max(tested, 1)


# Readings of the poses other than as the optical frame's, each as the optical frame's axes in the frame read
# (columns: poses so read times this are the optical frame's) and what to change. Images written bottom-up (as
# OpenGL reads them back) are the optical frame mirrored in y about the principal point's row.
OPTICAL = "camera poses must be of the optical frame (z forward, x right, y down; REP 103)"
FRAMES = {
    "with the poses read as OpenGL's camera frame (x right, y up, z back; a renderer's)":
        (torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]], dtype=torch.float64), OPTICAL),
    "with the poses read as a body frame (x forward, y left, z up; camera_link's)":
        (torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=torch.float64),
         OPTICAL + ", e.g. camera_color_optical_frame, not camera_link"),
    "with each image's rows reversed (written bottom-up, as OpenGL reads images back)":
        (torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, 1]], dtype=torch.float64),
         "write images and depth top row first"),
}
# Poses written world-to-camera (a view matrix, tf's camera -> world lookup) instead of camera-to-world read as their
# inverse; rig-protocol windows of the 24 robot validation scenes: 0.117-0.563 of the pixels agree as written,
# 0.002-0.102 through such poses (/work/runs/s38/agree/agree.py).
INVERTED = "with the poses inverted (written as world-to-camera, e.g. a view matrix)"
POSE_FIXES = {**{name: fix for name, (_, fix) in FRAMES.items()},
              INVERTED: "camera poses must be camera-to-world (the optical frame's pose in the world frame: tf's "
                        "world -> camera transform), not their inverse"}


def agreement_tolerance(depths: Tensor, sigma: Tensor | None = None) -> float:
    """The `agreement` tolerance (log) for depths (V,H,W): UNIT_TOLERANCE, or NOISE_TOLERANCE times the views' median
    relative noise (sigma (V,), `noise_level` where None, times the view's median depth: the same in any unit)
    where more."""
    sigma = noise_level(depths) if sigma is None else sigma
    relative = [float(s) * float(d[d > 0].median()) for s, d in zip(sigma, depths) if s > 0 and bool((d > 0).any())]
    return max(UNIT_TOLERANCE, NOISE_TOLERANCE * sorted(relative)[len(relative) // 2]) if relative else UNIT_TOLERANCE


class Reading(NamedTuple):
    """How depth and poses agree (`reading`)."""
    frame: str | None  # the FRAMES (or INVERTED) reading of the poses the depth agrees through; None: as given
    factor: float  # the power of ten the depth agrees at (1.0: as it came)
    share: float  # the `agreement` at (frame, factor)
    given: float  # the `agreement` of the optical frame at 1
    shares: Tensor  # (2 + len(FRAMES), len(UNIT_FACTORS)) each reading's agreement at each factor: as given, FRAMES,
    # INVERTED (at 1 only: 0 at the other factors)
    median: float = 0.0  # the measured pixels' median depth as given (0 where none)


def reading(depths: Tensor, Ks: Tensor, camtoworlds: Tensor, sigma: Tensor | None = None) -> Reading:
    """The reading of the poses camtoworlds (V,4,4) (as the optical frame's, a FRAMES one, or INVERTED) and the power
    of ten (UNIT_FACTORS) at which depths (V,H,W) (0 = none; intrinsics Ks (V,3,3)) agree best through them: the
    optical frame at 1 unless another pair's `agreement` beats it UNIT_MARGIN times, on UNIT_MIN_SHARE of the pixels
    or more (sigma (V,): the views' `noise_level`, read here where None), or, where the median measurement as given
    lies beyond PLAUSIBLE_DEPTH, unless a factor below 1 that brings it within agrees better at all.
    One search over both, since each mistake hides the other (millimetres agree through no frame, poses of another
    frame at no unit). Rig-protocol windows of 24 robot validation scenes / 17 RGB-D evaluation bags, as written:
    every other pair at most 0.68 / 0.81 of the optical frame's share at 1 (another unit; another frame 0.42 / 0.58,
    a head rig's parallel cameras through OpenGL's); poses written as another frame read 0.00-0.16 as optical and
    are found on all."""
    turns = torch.stack([torch.eye(3, dtype=torch.float64)] + [axes for axes, _ in FRAMES.values()])
    tolerance = agreement_tolerance(depths, sigma)
    inverse = torch.linalg.inv(camtoworlds.double()).to(camtoworlds.dtype)
    # inverted poses at the unit as given only: scaled a thousandfold, a constant depth (a wall ahead of each of a
    # ring's cameras) lies far out where the inverted cameras, looking one way, all see it (85 % agreeing)
    one = UNIT_FACTORS.index(1.0)
    shares = agreement(depths, Ks, camtoworlds, UNIT_FACTORS, turns, tolerance)
    inverted = torch.zeros_like(shares[:1])
    inverted[0, one] = agreement(depths, Ks, inverse, (1.0,), turns[:1], tolerance)[0, 0]
    shares = torch.cat([shares, inverted])
    names = [None, *FRAMES, INVERTED]
    given = float(shares[0, one])
    best = int(shares.argmax())
    r, f = divmod(best, len(UNIT_FACTORS))
    share = float(shares[r, f])
    measured = depths[torch.isfinite(depths) & (depths > 0)]
    median = float(measured.median()) if measured.numel() else 0.0
    if best != one and share >= max(UNIT_MARGIN * given, UNIT_MIN_SHARE):
        return Reading(names[r], UNIT_FACTORS[f], share, given, shares, median)
    if median > PLAUSIBLE_DEPTH:
        within = [f for f, factor in enumerate(UNIT_FACTORS) if factor < 1.0 and factor * median <= PLAUSIBLE_DEPTH]
        if within:
            f = max(within, key=lambda f: float(shares[0, f]))
            share = float(shares[0, f])
            if share > given and share >= UNIT_MIN_SHARE:
                return Reading(None, UNIT_FACTORS[f], share, given, shares, median)
    return Reading(None, 1.0, given, given, shares, median)
