"""Depth from silhouettes: RGB-only views of objects in front of a plain backdrop (object-centric capture, the
paper's evaluation protocols), where the views' colours alone locate the objects.

Where a rig's images share one background colour (`find_backdrop`: the median of their borders, matched by nearly
all of every view's border and half of all pixels), each view's foreground is what differs from it. The objects
then lie inside the visual hull (Laurentini 1994): the points whose projections fall on foreground in every
other view that sees them. Each foreground pixel's depth is where its ray enters the hull (`hull_depths`), on a
log-spaced sweep. Only views within HULL_DT of normalised time carve: objects move, and a hull carved across the
whole window loses what moved. Pixels the hull misses (a part that moved, a thin one) take their neighbours'
depth, and the depths are smoothed over 5×5 pixels (the sweep's steps would make the surfels' normals). The
reconstructor gives these depths to the model as measured ones, builds the environment map from the backdrop
alone, unmixes the outline pixels' colours from the backdrop's (`unmix_edges`), and shows a pixel Gaussian that
other views near in time see on the backdrop (`off_silhouette`: a smoothed or filled depth, the model's residual)
only to its own camera.

On the 8 object-centric evaluation scenes (`benchmarks/eval_scenes.py`, RGB only, both paper protocols' inputs)
every object pixel gets a depth, within 0.8-4.6 % of the truth (median per scene). The sweep is compiled on the
CPU (hull_kernels.py): 0.17-0.25 s for 12 views of 128² on two CPU cores, the same depths as the torch version's
0.7-0.9 s.

The same hulls serve an RGB-only robot rig: what stands on the floor it matched gets its depth where the same
moment's views outline it (`standing_depths`), and a floor of one colour, which matches nowhere, is found where what
stands on it meets it (`floor_from_feet`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import hull_kernels
from .floor_fit import floor_agreement, one_pixel_in
from .pixel_gaussians import masked_box_mean, z_rays

BACKDROP_TOL = 0.02  # max RGB difference from the backdrop colour that still counts as backdrop
MIN_BACKDROP = 0.5  # share of all pixels that must show the backdrop
# Share of each view's border that may show something else (an object crossing the frame). Where one colour is a
# floor, the sky or a wall beyond it meets the border: a tabletop on a plain floor with a white wall behind had it
# on up to 53 % of a view's border (18 % over all views); there the "foreground" the hull placed included the wall,
# and its RGB novel_view fell 20.09 -> 12.38 dB. Object-centric scenes: at most 0.4 %.
MAX_BORDER_FG = 0.1
HULL_PLANES = 128  # z-depths swept, log-spaced over HULL_RANGE (canonical units; cameras sit ~2 from the centre)
HULL_RANGE = (0.3, 20.0)
# Views that carve a view's hull: within this normalised time (the window is [-1,1]). Alternating / novel-camera
# on 8 object-centric validation scenes (model's PSNR, the first version: ≥ 50 % seen, grown 1 px, not smoothed):
# 0.5: 18.66 / 16.22; 1.0: 18.87 / 17.76; the whole window: 18.86 / 17.79.
HULL_DT = 1.0
# A hull point must be seen by this share of the most views that see any point of its ray (and by ≥ 2): nearer the
# camera fewer views see a ray, and two that happen to agree do not make a hull. 8 object-centric validation
# scenes, alternating / novel-camera: 0.3: 18.82 / 14.96, 0.5: 19.09 / 18.19, 0.75: 19.10 / 18.25, 1: 19.10 / 18.27
# (0 with the foreground grown 1 px: 18.59 / 14.40). The carving views' foreground grown by 1 / 2 px (for
# calibration and anti-aliased edges): 19.00 / 17.95, 18.78 / 17.44 (at 0.5): not grown.
MIN_SEEN = 0.75
# An object's pixel Gaussian that at least OFF_VOTES other views within OFF_DT of normalised time (the window is
# [-1,1]) see on the backdrop lies outside the objects: a hull depth smoothed across an outline, a hole filled from
# its neighbours, the model's residual. Shown only to its own camera. 8 object-centric validation scenes, alternating
# / novel-camera (19.15 / 18.82 without): votes 1 / 2 / 3 within 1.0 with the foreground grown 1 px 18.83 / 18.43,
# 19.03 / 18.96, 19.13 / 19.11; within 0.4: 19.22 / 19.19, 19.21 / 19.20, 19.17 / 18.96; votes 2 within 0.25 / 0.6
# 19.17 / 18.92, 19.20 / 19.21; not grown, votes 2 within 0.4 / 0.6 19.22 / 19.31, 19.18 / 19.24, votes 1 19.15 /
# 19.03 (block 10).
OFF_VOTES = 2
OFF_DT = 0.4
FILL_STEPS = 64  # neighbour-averaging passes that give the hull's missed foreground pixels a depth
# Box (pixels) over which the hull's log depth is averaged within the foreground: its depths step from plane to plane,
# and the surfels' normals come from them. Validation as above (at 0.5, grown 1 px): none 18.87 / 17.76, 3: 18.98 /
# 17.91, 5: 19.00 / 17.95, 9: 19.00 / 17.98.
SMOOTH = 5


def unmix_edges(images: Tensor, backdrop: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """What the foreground pixels beside the backdrop hold of the object: (outline (V,H,W) bool: those pixels,
    coverage (V,H,W) in [0,1], object colour (V,H,W,3); both for the outline pixels, 1 and the pixel's own colour
    elsewhere). An outline pixel's colour c mixes the object's o (the mean of the foreground within 2 px that is
    not itself outline) with the backdrop's b: coverage is c − b projected on o − b (alpha matting against a known
    background). Unmixed, a pixel Gaussian at the object's depth does not
    carry a halo of backdrop colour into other cameras' views of the object. 8 object-centric validation scenes,
    alternating / novel-camera (inputs re-rendered): as they are 19.10 / 18.25 (50.4); unmixed, the opacity
    the coverage leaves kept for the pixel's own camera (the reconstructor's choice) 19.19 / 18.38 (48.9); unmixed
    for every camera 19.21 / 18.44 (42.4); outline pixels removed 18.96 / 18.62; colour alone 19.11 / 18.28."""
    colour = border_colour(images)
    outline = (F.max_pool2d(backdrop.float()[:, None], 3, 1, 1)[:, 0] > 0.5) & ~backdrop
    c = images.float()
    o, inner = masked_box_mean(c, ~backdrop & ~outline, 5)
    share = (((c - colour) * (o - colour)).sum(-1) / ((o - colour) ** 2).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    # an outline pixel with no inner pixel near (a part one or two pixels thin) has no object colour to unmix by:
    # it stays whole, or thin parts would vanish
    known = outline & (inner > 0)
    coverage = torch.where(known, share, torch.ones_like(share))
    return outline, coverage, torch.where(known[..., None], o, c)


def _border(x: Tensor) -> Tensor:
    """The one-pixel border of (V,H,W,...) -> (V, 2H+2W-4, ...)."""
    return torch.cat([x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], dim=1)


def border_colour(images: Tensor) -> Tensor:
    """The per-channel median (3,) of the one-pixel borders of views (V,H,W,3): a backdrop's colour."""
    return _border(images).reshape(-1, 3).float().median(dim=0).values


def find_backdrop(images: Tensor) -> Tensor | None:
    """(V,H,W) bool: the pixels showing the views' common plain background, or None where there is none.
    images (V,H,W,3) in [0,1]."""
    colour = border_colour(images)
    back = (images.float() - colour).abs().amax(-1) <= BACKDROP_TOL
    if float(back.float().mean()) < MIN_BACKDROP or float((~_border(back)).float().mean(1).max()) > MAX_BORDER_FG:
        return None
    if bool(back.all()):
        return None  # nothing in front of it
    return back


def _on_image(z: Tensor, uv: Tensor, H: int, W: int) -> tuple[Tensor, Tensor]:
    """For points at camera z-depths z (...) projecting to pixels uv (...,2) of an H×W view: whether the view sees
    them (before it, inside the image) and their float32 grid_sample coordinates (...,2)."""
    inside = (z > 1e-3) & (uv[..., 0] > -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] > -0.5) & (uv[..., 1] < H - 0.5)
    return inside, torch.stack([(uv[..., 0] + 0.5) / W * 2 - 1, (uv[..., 1] + 0.5) / H * 2 - 1], -1).float()


def _sweep_depths(device) -> Tensor:
    """The hull sweeps' z-depths (HULL_PLANES,) float64, log-spaced over HULL_RANGE."""
    return torch.exp(torch.linspace(math.log(HULL_RANGE[0]), math.log(HULL_RANGE[1]), HULL_PLANES,
                                    dtype=torch.float64, device=device))


def _near_in_time(times: Tensor, v: int, dt: float) -> list[int]:
    """The views other than v whose normalised time (times (V,)) lies within dt of v's: those that carve its hull."""
    return [u for u in range(len(times)) if u != v and abs(float(times[u] - times[v])) <= dt]


def _in_hull(votes: Tensor, seen: Tensor) -> Tensor:
    """(n,D) bool: the points of n rays' D depths inside the hull, from `_carve`'s votes and seen: every carving view
    that sees the point sees foreground there, and at least 2 and MIN_SEEN of the most that see any point of the
    ray do."""
    return (votes >= seen) & (seen >= 2) & (seen >= MIN_SEEN * seen.amax(1, keepdim=True))


def _carve(points: Tensor, masks: Tensor, Ks: Tensor, w2c: Tensor, views: list[int]) -> tuple[Tensor, Tensor]:
    """For points (...,3): (how many of `views` see them on foreground, how many see them at all)."""
    H, W = masks.shape[-2:]
    votes = torch.zeros(points.shape[:-1], dtype=torch.float32, device=points.device)
    seen = torch.zeros_like(votes)
    for u in views:
        pc = points @ w2c[u, :3, :3].T + w2c[u, :3, 3]
        z = pc[..., 2]
        inside, grid = _on_image(z, (pc @ Ks[u].T)[..., :2] / z.clamp_min(1e-6)[..., None], H, W)
        fg = F.grid_sample(masks[u:u + 1], grid.reshape(1, -1, 1, 2), mode="nearest", align_corners=False)
        votes += (fg.reshape(z.shape) > 0.5) & inside
        seen += inside
    return votes, seen


def hull_depths(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor, backdrop: Tensor) -> Tensor:
    """z-depths (V,H,W), canonical units, 0 on the backdrop: where each foreground pixel's ray enters the visual
    hull of the other views' foregrounds. images (V,H,W,3); Ks (V,3,3); camtoworlds (V,4,4) canonical; times (V,)
    normalised; backdrop (V,H,W) bool from `find_backdrop`."""
    V, H, W, _ = images.shape
    fg = ~backdrop
    masks = fg.float()[:, None]
    c2w = camtoworlds.double()
    w2c = torch.linalg.inv(c2w)
    K = Ks.double()
    origins, rays = z_rays(K, c2w, H, W)
    zs = _sweep_depths(images.device)
    out = torch.zeros(V, H, W, dtype=torch.float32, device=images.device)
    for v in range(V):
        sel = fg[v]
        carvers = _near_in_time(times, v, HULL_DT)
        if not bool(sel.any()) or not carvers:
            continue
        out[v][sel] = _hull_entry(origins[v, 0, 0], rays[v][sel], zs, masks, K, w2c, carvers).to(out)
    return _smooth(_fill(out, fg))


def _hull_entry(origin: Tensor, rays: Tensor, zs: Tensor, masks: Tensor, Ks: Tensor, w2c: Tensor,
                carvers: list[int]) -> Tensor:
    """(n,) float32 z-depth where each ray (n,3) from `origin` (3,) first meets the hull (0: never), on the depths zs
    (D,): every carving view that sees the point sees foreground there, and at least 2 and MIN_SEEN of the most that
    see any point of the ray do. Compiled on the CPU (hull_kernels.entry), else `_hull_entry_torch`."""
    if rays.device.type == "cpu":
        out = hull_kernels.entry(origin, rays, zs, masks, Ks, w2c, carvers, MIN_SEEN)
        if out is not None:
            return out
    return _hull_entry_torch(origin, rays, zs, masks, Ks, w2c, carvers)


def _hull_entry_torch(origin: Tensor, rays: Tensor, zs: Tensor, masks: Tensor, Ks: Tensor, w2c: Tensor,
                      carvers: list[int]) -> Tensor:
    """`_hull_entry` in torch: any device, and the reference hull_kernels.entry is tested against."""
    points = origin + rays[:, None] * zs[None, :, None]  # (n,D,3)
    inside = _in_hull(*_carve(points, masks, Ks, w2c, carvers))
    first = inside.float().argmax(1)
    return torch.where(inside.any(1), zs[first].float(), torch.zeros_like(first, dtype=torch.float32))


def off_silhouette(means: Tensor, backdrop: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor) -> Tensor:
    """(V,H,W) bool: the foreground pixels whose Gaussian lies where other views see the backdrop (OFF_VOTES of those
    within OFF_DT). means (V,H,W,3) the pixel Gaussians' canonical means at their views' times; backdrop (V,H,W)
    bool from `find_backdrop`; Ks (V,3,3); camtoworlds (V,4,4) canonical; times (V,) normalised."""
    V = backdrop.shape[0]
    masks = (~backdrop).float()[:, None]
    w2c = torch.linalg.inv(camtoworlds.double())
    K = Ks.double()
    out = torch.zeros_like(backdrop)
    for v in range(V):
        sel = ~backdrop[v]
        others = _near_in_time(times, v, OFF_DT)
        if not bool(sel.any()) or len(others) < OFF_VOTES:
            continue
        on_fg, seen = _carve(means[v][sel].double(), masks, K, w2c, others)
        out[v][sel] = (seen - on_fg) >= OFF_VOTES
    return out


def _smooth(depths: Tensor) -> Tensor:
    """Mean log depth over SMOOTH×SMOOTH boxes, of the pixels that have a depth, at those pixels."""
    mean, _ = masked_box_mean(depths.clamp_min(1e-6).log(), depths > 0, SMOOTH)
    return torch.where(depths > 0, mean.exp(), depths)


def _fill(depths: Tensor, fg: Tensor) -> Tensor:
    """Foreground pixels without a depth take the mean log depth of their neighbours that have one, grown
    outwards FILL_STEPS times (a part that moved between the carving views, a thin one)."""
    d = depths
    for _ in range(FILL_STEPS):
        missing = fg & (d <= 0)
        if not bool(missing.any()):
            break
        mean, share = masked_box_mean(d.clamp_min(1e-6).log(), d > 0, 3)
        d = torch.where(missing & (share > 0), mean.exp(), d)
    return d


# What stands on the floor an RGB-only rig's views matched (floor_fit.floor_from_photo): pixels below the horizon that
# were not matched as floor, whose ray meets the floor where no partner shows the pixel's colour
# (floor_fit.floor_agreement), at a point over floor some view matched (a STAND_GRID² grid over the matched floor's
# extent, grown by STAND_GROW cells: past a finite floor's edge the void meets the plane too; its holes filled, see
# `_matched_reach`). Each such pixel's depth is where its ray enters the visual hull of the other views' such pixels
# of the same moment (within STAND_MOMENT normalised time: the robot moves; at least two views carve) at a point those
# views show in the pixel's colour (STAND_TOL: their max-channel difference, averaged over the views that see it; two
# silhouettes alone meet in ghosts before the object). Without it the model put such pixels at the floor, where they
# smeared over other views' floor and were hidden for novel views (the MuJoCo arms vanished from RGB renders). RGB rig
# protocol novel_view / novel_view_time, shipped weights (`python benchmarks/standing_depths.py`, ablation block 45):
# 64 rig validation scenes 20.45 / 20.47 -> 20.57 / 20.59, 15 MuJoCo validation bags 19.46 / 19.44 -> 19.70 / 19.63.
# Lost: the hull alone (16 of the scenes 20.94 -> 20.85, the bags 19.62), colour within 0.1 (bags 19.66), carving
# views from the whole window (bags 19.53), and the "sky" past the floor's grid carved too (pixels no partner shows
# alike far away; 16.65 -> 15.00 on one MuJoCo evaluation bag).
STAND_MOMENT, STAND_TOL, STAND_GRID, STAND_GROW = 0.05, 0.15, 64, 2
# What stands before the void past a finite floor's far edge (a robot's upper links against the MuJoCo bags' white
# beyond their floor) stands on it too, and carves and is carved with it (`_before_the_void`): where the pixels off
# the matched floor's grid share one plain colour (VOID_SHARE of them within VOID_TOL: the void, or a plain wall),
# those that differ from it by more than PAST_TOL, lie within VOID_NEAR pixels of it, and whose ray meets the floor's
# plane no nearer the scene centre than the void's rays met it at that azimuth (EDGE_BINS; none at an azimuth where
# no view saw the void). RGB rig protocol novel_view / novel_view_time, shipped weights (ablation block 52): 15 MuJoCo
# validation bags 19.69 / 19.59 -> 20.41 / 20.34, 64 rig validation scenes 20.60 / 20.63 unchanged (the rule finds
# no void there). Without the edge the floor beyond the grid's reach (matched nowhere, unlike the void) was carved
# before itself (MuJoCo 19.26 / 19.30); rays that miss the plane as well took a plain wall for the void and carved
# the sky above it (evaluation bag scene_1002001, all held-out groups, 32.80 -> 26.59); without VOID_NEAR the
# horizon's band beside such a wall was carved (that bag 32.08 / 32.11 against 32.21 / 32.54 without the rule;
# 32.16 / 32.49 with it; MuJoCo 20.44 / 20.37). PAST_TOL 0.15: the same to 0.01. The edge exact, not 2 % nearer (a
# few of the floor's far-edge pixels were carved with the links; ablation block 56): MuJoCo 20.64 / 20.49 -> 20.70 /
# 20.51, the 64 scenes and the procedural evaluation bags unchanged (1.02: 20.70 / 20.50).
VOID_TOL, VOID_SHARE, PAST_TOL, EDGE_BINS, VOID_NEAR = 0.05, 0.5, 0.25, 64, 4


def standing_depths(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor, height: float,
                    floor_pixels: Tensor, agreement: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
    """z-depths (V,H,W) float32, canonical units, 0 elsewhere: of what stands on the floor z = `height` in V RGB
    views (see STAND_MOMENT above). images (V,H,W,3) in [0,1]; Ks (V,3,3); camtoworlds (V,4,4) canonical; times
    (V,) normalised; floor_pixels (V,H,W) > 0 where a pixel is known to show the floor (matched, or of a plain floor's
    colour); agreement: `floor_agreement` of these
    views at `height` where the caller has it (read here where None)."""
    V, H, W, _ = images.shape
    out = torch.zeros(V, H, W, dtype=torch.float32, device=images.device)
    z_floor, hit, agreed = agreement or floor_agreement(images, Ks, camtoworlds, times, height)
    c2w = camtoworlds.double()
    origins, rays = z_rays(Ks.double(), c2w, H, W)
    floor = (floor_pixels > 0) & hit
    ground = (origins + rays * z_floor[..., None])[..., :2]  # where each ray meets the floor (x, y)
    matched = ground[floor]
    if len(matched) < 100:
        return out
    lo = matched.min(0).values
    cell = float((matched.max(0).values - lo).max()) / STAND_GRID
    if cell <= 0:
        return out
    grid = torch.zeros(STAND_GRID + 1, STAND_GRID + 1, device=images.device)
    ij = ((matched - lo) / cell).long().clamp(0, STAND_GRID)
    grid[ij[:, 0], ij[:, 1]] = 1
    grid = F.max_pool2d(grid[None, None], 2 * STAND_GROW + 1, 1, STAND_GROW)[0, 0] > 0
    grid = _matched_reach(grid, lo, cell)
    q = ((ground - lo) / cell).floor().long()
    over = hit & (q >= 0).all(-1) & (q <= STAND_GRID).all(-1)
    q = q.clamp(0, STAND_GRID)
    on_grid = over & grid[q[..., 0], q[..., 1]]
    stand = (on_grid & ~agreed & ~floor) | _before_the_void(images, ~on_grid & ~floor, hit, ground)
    masks = stand.float()[:, None]
    K, w2c = Ks.double(), torch.linalg.inv(c2w)
    zs = _sweep_depths(images.device)
    pictures = images.float().permute(0, 3, 1, 2)
    for v in range(V):
        sel = stand[v]
        carvers = _near_in_time(times, v, STAND_MOMENT)
        if not bool(sel.any()) or len(carvers) < 2:
            continue
        # only depths before the floor, (n,D,3) in float32: a few canonical units, to far under a pixel (float64
        # took twice the time)
        before = zs[zs < 0.98 * float(z_floor[v][sel].max())]
        if len(before) == 0:
            continue
        points = (origins[v][sel][:, None] + rays[v][sel][:, None] * before[None, :, None]).float()
        votes, seen, gap = (torch.zeros(points.shape[:2], device=images.device) for _ in range(3))
        for u in carvers:  # as _carve does, and the colour the carving view shows there
            to_pixels = (K[u] @ w2c[u, :3]).float()  # world -> (u z, v z, z)
            pixels = points @ to_pixels[:, :3].T + to_pixels[:, 3]
            z = pixels[..., 2]
            sees, grid_u = _on_image(z, pixels[..., :2] / z.clamp_min(1e-6)[..., None], H, W)
            fg = F.grid_sample(masks[u:u + 1], grid_u.reshape(1, -1, 1, 2), mode="nearest", align_corners=False)
            colour = F.grid_sample(pictures[u:u + 1], grid_u.reshape(1, -1, 1, 2), mode="bilinear",
                                   align_corners=False)[0, :, :, 0].T.reshape(*sees.shape, 3)
            votes += (fg.reshape(sees.shape) > 0.5) & sees
            seen += sees
            gap += torch.where(sees, (colour - images[v][sel].float()[:, None]).abs().amax(-1), torch.zeros_like(gap))
        inside = _in_hull(votes, seen) & (gap / seen.clamp_min(1) <= STAND_TOL) \
            & (before[None] < 0.98 * z_floor[v][sel][:, None])
        first = inside.float().argmax(1)
        out[v][sel] = torch.where(inside.any(1), before[first].float(), torch.zeros(len(first), device=out.device))
    return _smooth(out)


def _azimuth_bins(x: Tensor, y: Tensor) -> Tensor:
    """The EDGE_BINS azimuth bin about the scene centre (...) long of canonical floor points (x, y), each (...)."""
    return ((torch.atan2(y, x) / math.pi + 1) / 2 * EDGE_BINS).long().clamp(0, EDGE_BINS - 1)


def _matched_reach(grid: Tensor, lo: Tensor, cell: float) -> Tensor:
    """The floor grid (n,n) bool (cells of `cell` canonical units over x, y from `lo` (2,)) with its holes filled:
    every cell nearer the scene centre than the farthest marked cell at its azimuth (EDGE_BINS bins). What lies on
    the floor (a humanoid fallen over, a quadruped) hides the floor under it from every view, and plain floor (a
    checker's squares) matches nowhere: the MuJoCo humanoid evaluation bag's matched floor was a ring 0.5-1.2 from
    the centre, and 63 % of the robot's pixels met the plane inside it, where they were not taken as standing
    (ablation block 54)."""
    n = grid.shape[0]
    centres = lo[None] + (torch.arange(n, dtype=lo.dtype, device=lo.device)[:, None] + 0.5) * cell  # (n,2)
    x, y = centres[:, 0][:, None].expand(n, n), centres[:, 1][None, :].expand(n, n)  # grid[i, j] lies at (x_i, y_j)
    azimuth, radius = _azimuth_bins(x, y), (x.square() + y.square()).sqrt()
    farthest = torch.zeros(EDGE_BINS, dtype=radius.dtype, device=radius.device)
    farthest = farthest.scatter_reduce(0, azimuth[grid], radius[grid], reduce="amax")
    return grid | (radius < farthest[azimuth])


def _before_the_void(images: Tensor, off_grid: Tensor, hit: Tensor, ground: Tensor) -> Tensor:
    """(V,H,W) bool: the pixels off the matched floor's grid (off_grid (V,H,W) bool) that stand before a plain void
    past the floor's far edge (see VOID_TOL above); none where those pixels share no plain colour. images
    (V,H,W,3) in [0,1]; hit (V,H,W) which rays meet the floor, ground (V,H,W,2) where (canonical x, y)."""
    none = torch.zeros_like(off_grid)
    if int(off_grid.sum()) < 100:
        return none
    colours = images.float()
    void = colours[off_grid].median(0).values
    gap = (colours - void).abs().amax(-1)
    if float((gap[off_grid] <= VOID_TOL).float().mean()) < VOID_SHARE:
        return none
    # the floor's far edge: per azimuth, the nearest the void's rays met the plane
    azimuth, radius = _azimuth_bins(ground[..., 0], ground[..., 1]), ground.norm(dim=-1)
    seen = off_grid & hit & (gap <= VOID_TOL)
    edge = torch.full((EDGE_BINS,), math.inf, dtype=radius.dtype, device=radius.device)
    edge = edge.scatter_reduce(0, azimuth[seen], radius[seen], reduce="amin")  # inf: no void seen there
    beside = F.max_pool2d(seen.float()[:, None], 2 * VOID_NEAR + 1, 1, VOID_NEAR)[:, 0] > 0
    return off_grid & (gap > PAST_TOL) & hit & (radius >= edge[azimuth]) & beside


# A floor of one colour matches nowhere (floor_fit.floor_from_photo), but what stands on it meets it: where most of
# the pixels below the horizon share one plain colour (FEET_SHARE of them within the first of FEET_TOLS of their
# median for which a height is found: a floor lit unevenly, its colour drifting across the views, on a wider one),
# the lower outline of what differs from it (its pixels just above a plain one) is placed where its ray enters the hull
# of the same moment's other views' non-plain pixels (STAND_MOMENT), and the floor lies at the lowest height where
# FEET_PEAK of those outline points gather (within FEET_BIN of log drop below the lowest camera, over three bins),
# where no more than FEET_BELOW of them lie lower still (a table on a plain floor: its legs too thin to carve, the
# outline points met the tabletop, and scattered below it). The floor's plain pixels then outline what stands on it
# as matched ones do (standing_depths), though the model is not given their depth (the floor layer draws them); so do
# a floor's plain pixels wherever it was found, matched or told (a checker of low contrast, a floor of faint texture:
# block 58: 15 MuJoCo validation bags 20.91 / 20.68 -> 21.10 / 20.88, 64 scenes 21.64 / 21.51 -> 21.62 / 21.52).
# 64 rig validation scenes from RGB (ablation block 57): floors found 34 -> 54 (17 of the 20 within 2.5 % of the drop
# below the cameras, one at a tabletop); novel_view / novel_view_time 20.88 / 20.88 -> 21.64 / 21.51 (the floor alone,
# one tolerance 0.05 and no floor-above rule: 21.31 / 21.23; its plain pixels given the model as depth instead of only
# outlining: 12 scenes -0.12); 15 MuJoCo validation bags 20.70 / 20.51 -> 20.91 / 20.68 (one floor found, at 0.1).
FEET_TOLS, FEET_SHARE, FEET_BIN, FEET_PEAK, FEET_BELOW = (0.05, 0.1, 0.15), 0.6, 0.04, 0.05, 0.03


def floor_from_feet(images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
                    height: float | None = None) -> tuple[float, Tensor] | None:
    """A plain floor under V RGB views, from where what stands on it meets it (see FEET_TOLS above): (its canonical
    height, (V,H,W) bool its pixels below the horizon, one pixel in from their region's border), or None. Given its
    `height` (told, or matched), only its pixels: those of the first tolerance that holds FEET_SHARE of them. images
    (V,H,W,3) in [0,1]; Ks (V,3,3); camtoworlds (V,4,4) canonical; times (V,) normalised."""
    _, H, W, _ = images.shape
    c2w = camtoworlds.double()
    origins, rays = z_rays(Ks.double(), c2w, H, W)
    down = rays[..., 2] < -1e-6
    if int(down.sum()) < 100:
        return None
    colours = images.float()
    gap = (colours - colours[down].median(0).values).abs().amax(-1)
    for tol in FEET_TOLS:
        plain = gap <= tol
        if float((plain & down).sum()) < FEET_SHARE * float(down.sum()):
            continue
        found = height if height is not None else _feet_height(origins, rays, Ks, c2w, times, plain, down)
        if found is not None:
            # a pixel beside an object's outline mixes both colours: one pixel in, as floor_from_photo's matched floor
            return found, one_pixel_in(plain & down)
    return None


def _feet_height(origins: Tensor, rays: Tensor, Ks: Tensor, c2w: Tensor, times: Tensor, plain: Tensor,
                 down: Tensor) -> float | None:
    """floor_from_feet's height for one plain mask (V,H,W) bool, or None; origins, rays (V,H,W,3) from z_rays; down
    (V,H,W) bool the rays below the horizon."""
    V = plain.shape[0]
    # its lower outline: a plain pixel just below, and floor above it too (what stands before a wall or past the
    # floor's far edge meets nothing there)
    above = F.pad(plain[:, :-1], (0, 0, 1, 0)).int().cummax(1).values > 0
    outline = ~plain & down & F.pad(plain[:, 1:], (0, 0, 0, 1)) & above
    masks = (~plain).float()[:, None]
    K, w2c = Ks.double(), torch.linalg.inv(c2w)
    zs = _sweep_depths(c2w.device)
    heights = []
    for v in range(V):
        sel = outline[v]
        carvers = _near_in_time(times, v, STAND_MOMENT)
        if not bool(sel.any()) or len(carvers) < 2:
            continue
        z = _hull_entry(origins[v, 0, 0], rays[v][sel], zs, masks, K, w2c, carvers).double()
        heights.append((origins[v][sel] + rays[v][sel] * z[:, None])[:, 2][z > 0])
    top = float(c2w[:, 2, 3].min())
    drops = top - torch.cat(heights) if heights else torch.zeros(0, dtype=torch.float64)
    drops = drops[drops > 1e-3]
    if len(drops) < 100:
        return None
    bins = (drops.log() / FEET_BIN).floor().long()
    bins = bins - int(bins.min())
    counts = torch.bincount(bins).double()
    windows = F.pad(counts, (1, 1))[None, None]
    windows = F.avg_pool1d(windows, 3, 1)[0, 0] * 3  # the count within one bin either side
    peaks = torch.nonzero(windows >= FEET_PEAK * len(drops))[:, 0]
    if len(peaks) == 0:
        return None
    k = int(peaks.max())  # the lowest such height
    if float((bins > k + 1).sum()) > FEET_BELOW * len(drops):
        return None
    return top - float(drops[(bins - k).abs() <= 1].median())
