"""ViewSet (world units, absolute stamps) -> Reconstruction: 4D Gaussians renderable at any camera and time.

The one entry point used by the CLI, the bag tools and the ROS node:

    rec = Reconstructor.from_checkpoint().reconstruct(views)
    out = rec.render(camtoworlds, Ks, width, height, stamps_ns)   # depth in metres
    g3 = rec.slice(stamp_ns)                                      # Gaussians3D in metres

A Reconstructor serves one rig's windows in turn: an RGB-only rig's floor, found by matching, is reused (same
poses) or checked first (a moving rig); call `forget()` before reconstructing an unrelated scene. What it returns,
and how that renders, is reconstruction.py's.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from .cameras import (LEVEL_FROM_CAMERAS_DEG, SceneNormalization, TimeWindow, camera_up, image_up, pixel_rays,
                      plucker)
from .captured import CapturedFrames
from .environment import MIN_WEIGHT, Environment, content_weights
from .floor import Floor
from .floor_fit import (floor_agreement, floor_from_photo, floor_normal, floor_palette, height_from_depth,
                        plane_depths, up_from_photo)
from .gaussians import Gaussians4D
from .measured_depth import (PLAUSIBLE_DEPTH, POSE_FIXES, RAY_T, SENSOR_NOISE, TRAINED_NOISE, noise_level,
                             ray_depth_t, z_from_ray)
from .measured_depth import prepare as prepare_depth
from .measured_depth import reading as depth_reading
from .model import BF16_CHOICES, LRM4D, bf16_native, config_of
from .pixel_gaussians import RGB_DEPTH, base_log_depth, paper_gaussians, surfel_gaussians, z_rays
from .reconstruction import Reconstruction, ViewWeighting, pixel_footprints, render_at_times
from .scene_flow import scene_velocities
from .silhouettes import (border_colour, find_backdrop, floor_from_feet, hull_depths, off_silhouette,
                          standing_depths, unmix_edges)
from .views import ViewSet
from .walls import find_walls, wall_pixels

# Refined colours may leave [0, 1] by this much: a sky pixel next to a dark edge needs more than white to come
# back white through its neighbour's splat. 16 rig validation scenes: self RGB-D 44.35 -> 48.25 with (-0.5, 1.5),
# 47.73 with (-0.25, 1.25); with the fill, time_interp RGB-D 34.44 -> 34.80, RGB 33.52 -> 33.85, self 45.08 ->
# 48.84. What shows colours clamps them: rendered images, PointCloud2 rgb, the viewer.
REFINE_RANGE = (-0.5, 1.5)
FLOOR_CACHE = 16  # input pose sets whose RGB-only floor a Reconstructor remembers
FLOOR_Z_TOLERANCE = 0.03  # share of the cameras' height above the floor by which floor_z may miss the depth's floor


# Colour refinement passes (refine_colours). Rig validation, 6 scenes, RGB-D time_interp / self: 29.67 / 35.17 (0),
# 30.75 / 41.94 (2), 30.81 / 43.26 (3), 30.82 / 44.45 (5). With today's layers, 16 scenes, RGB-D novel_view /
# novel_view_time / time_interp / self, 3 passes 27.40 / 26.50 / 37.75 / 49.64, 2 passes 27.42 / 26.51 / 37.76 /
# 46.49 (RGB 20.86 / 20.88 / 36.58 / 47.73 against 20.86 / 20.92 / 36.62 / 44.49; object-centric alternating and
# novel-camera +0.02 / +0.03): the held-out views no worse, a reconstruction ~0.06 s faster (ablation block 28).
REFINE_STEPS = 2
# Log z-depth added to a depth camera's measured pixels before the model's bounded residual, at inference only
# (predict's measured_offset). The shipped model puts them a median 1.2 % beyond the measurement (depth_stats.txt);
# moved along their rays, novel views are sharply worse farther out and gently nearer (16 rig validation scenes,
# RGB-D novel_view: +0.6 % 27.21, +0.2 % 27.50, 0 27.59, -0.3 % 27.61, -0.45 % 27.57, -0.6 % 27.48, -1.2 % 26.92),
# and the MuJoCo validation bags, another renderer's, gain most (15 bags 23.51 -> 23.68 at -0.3 %; ablation block 29).
# An RGB-only rig's located depths (floor, silhouettes) moved alike gained nothing (16 rig and 16 object-centric
# validation scenes within 0.01 dB): they keep none.
MEASURED_OFFSET = -0.003
# A floor that measured depth shows this far or more from level (canonical z) turns the canonical frame to level it
# (level_by_depth): the floor layer, the walls and the environment map's horizon take canonical z as up. Evaluation bag
# scene_1002000 in a world tilted 2° / 5° about x, RGB-D novel_view: 22.17 / 21.42 dB unlevelled, 24.94 levelled as
# in its own world. The 13 evaluation RGB-D bags' level floors read 0.005-0.11° off (the fit's noise): unturned.
LEVEL_FROM_DEPTH_DEG = 0.2
# Depth images whose farthest pixels lie beyond a gap of FAR_GAP (a factor: log2 bins of 1/FAR_BINS), on FAR_SHARE
# of a view's measured pixels, hold a renderer's background there (far_background): those pixels measured nothing.
# Evaluation bag jaco_workcell_floor with its unmeasured pixels at a far plane of 100 m or 16UC1's 65.535 m, or on a
# sky sphere of 100 m: RGB-D novel_view 15.61 dB each against 22.69 with 0; read so, 22.69 / 22.68 / 22.69.
FAR_SHARE, FAR_GAP, FAR_BINS = 0.005, 2.0, 16
FAR_GAP_BINS = round(math.log2(FAR_GAP) * FAR_BINS)
IMAGE_UP_DEG = 45.0  # level_by_depth: image up this far from canonical z is a second guess at up
# An RGB-only head rig's cameras pin no up (cameras.camera_up); its floor does, found by matching the views
# (Reconstructor._level_by_colour, ~2 s on two CPU cores, once per world frame: in at most this many windows until
# found). 16 RGB head-rig validation scenes, novel_view: y up 24.27 -> 25.28 dB, a SLAM map's frame 23.73 -> 25.08,
# as written 25.42 (never looked for); found on 5, 0.15-1.4° off the truth (ablation block 44).
COLOUR_UP_TRIES = 3
# Normalised time between consecutive input instants beyond which a depth camera's measured pixel Gaussians live
# proportionally longer (σ_t × gap / SPARSE_GAP; stamps within INSTANT_MERGE of an instant's first, 2.5 % of the
# window's span, are that instant: an unsynchronized rig's frame). One gap widens every measured pixel. The model
# predicts σ_t ≈ 0.27 whatever the spacing, as suits the rig draw's 4 instants (gap 2/3), so two or three
# synchronized frames faded to the environment half way between them. 16 rig validation scenes, RGB-D inputs of the
# even cameras at frames {0, 9} / {0, 5, 10}, novel_view_time / time_interp between them: 22.90 / 37.18 -> 24.78 /
# 37.75 and 25.10 / 41.01 -> 25.82 / 41.09, novel_view unchanged (6 scenes: the exponent 0.5 on gap / SPARSE_GAP
# gained two thirds to four fifths as much, 1.5 lost 1 dB novel_view at 2 instants). An RGB-only rig's pixels,
# widened alike, lost 0.1-0.2 dB at 3 instants: they keep theirs. 4 or more evenly spread instants (the rig
# protocol's, the node's frames policy's with three cameras, its uniform policy's) are unchanged (ablation block 31).
SPARSE_GAP, INSTANT_MERGE = 0.7, 0.05


def estimate_background(images: Tensor) -> Tensor:
    """Background colour (3,) of input views (V,H,W,3): the per-channel median of their one-pixel borders.

    Renders are composited over it, in training and at inference alike, so empty space needs no Gaussians. For
    object-centric views it is the backdrop colour; for cluttered views it only fills what no Gaussian covers.
    """
    return border_colour(images)


def model_input_size(cfg, height: int, width: int) -> tuple[int, int]:
    """Model resolution for views of height×width: short side = cfg.image_size, aspect kept, both multiples of
    the patch size."""
    p, s = cfg.patch_size, cfg.image_size
    scale = s / min(height, width)
    return max(p, round(height * scale / p) * p), max(p, round(width * scale / p) * p)


@dataclass
class Prediction:
    """Model output in the canonical frame: pixel-aligned Gaussians (V·H·W, view-major), their camera z-depth
    (V,H,W) in canonical units, the environment the renders are composited over (None: the model composites over
    one background colour), and `hidden` (N,): the opacities taken from pixel Gaussians for every camera but their
    own: those that lie past the floor, an RGB-only rig's pixels the floor's depth bound caught where no other
    view confirms the floor (floor_fit.unconfirmed), and the uncovered part of an object's outline pixels
    (silhouettes.unmix_edges); None: none taken."""

    gaussians: Gaussians4D
    pixel_depths: Tensor
    environment: Environment | None
    hidden: Tensor | None = None
    floor_from_colour: float | None = None  # canonical height of the floor found by matching an RGB-only rig
    backdrop: Tensor | None = None  # (V,H,W) bool: an RGB-only rig's plain background (silhouettes.py), or None
    flows: dict = field(default_factory=dict)  # scene flow's optical flows between views, (a, b) -> (H,W,2) px
    # (V,H,W) bool: the pixels whose depth is the model's guess: nothing located them (a depth camera's measurement;
    # from colour, the floor found by matching or the objects' silhouettes) and, a colour camera's, the model left
    # them at or past their starting depth (RGB_DEPTH); a depth camera's unmeasured pixels (its no return) all.
    # None: the paper head's (not anchored to a depth)
    guessed: Tensor | None = None


def predict(model: LRM4D, images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
            depths: Tensor | None = None, match_floor: bool | float = True,
            camera_ids: Tensor | None = None, read_views: bool = True, floor_near: float | None = None,
            bf16: bool = False, measured_offset: float = 0.0) -> Prediction:
    """Run the model on V canonical-frame views (one scene).

    images (V,H,W,3) in [0,1]; Ks (V,3,3); camtoworlds (V,4,4) camera-to-canonical; times (V,) normalised;
    depths (V,H,W) measured z-depth in canonical units, 0 = no measurement (None: an RGB-only rig).
    match_floor: place what an RGB-only rig's colours locate: objects before a plain backdrop by their silhouettes
    (silhouettes.py, ~0.2 s compiled on two CPU cores for 12 views of 128²), else the floor by matching the views
    (floor_fit.floor_from_photo, ~0.25 s compiled; a floor of one colour where what stands on it meets it,
    silhouettes.floor_from_feet) and what stands on it where other views of the same moment outline it
    (silhouettes.standing_depths, ~0.2 s); training skips them; a float: the floor's canonical height, known
    (an RGB-only rig matches only its pixels; an RGB-D one takes it instead of the height its depth shows).
    read_views: read the floor from the input views that show it, and find walls (RGB-D); training skips both
    (about 60 ms a scene at 128², nothing is differentiated through them) and composites over the floor's grid.
    floor_near: the canonical height an RGB-only rig's floor was found at in an earlier window (a moving rig's),
    checked first (floor_from_photo's `near`: ~0.08 s where it holds).
    bf16: the transformer's forward under bf16 autocast, as it trained (False: whatever the caller's context is).
    measured_offset: log z-depth added to a depth camera's measured pixels before the head's residual (the
    Reconstructor's MEASURED_OFFSET; training learns the residual without one).
    """
    V, H, W, _ = images.shape
    cfg = config_of(model)
    origins, dirs = pixel_rays(Ks.double(), camtoworlds.double(), H, W)
    rays = plucker(origins, dirs)
    if depths is not None and not bool((depths > 0).any()):
        depths = None
    sensed, floor_height, backdrop = depths is not None, None, None
    known = None if isinstance(match_floor, bool) else float(match_floor)  # the floor's height, told
    flows: dict = {}
    depth_views = (depths > 0).flatten(1).any(1) if sensed else None  # before the floor's or silhouettes' depths
    if not sensed and match_floor is not False and cfg.environment and cfg.head != "paper":
        backdrop = find_backdrop(images.detach())
        if backdrop is not None:
            # objects before a plain backdrop: their silhouettes give their pixels a depth, as a camera would
            depths = hull_depths(images.detach(), Ks, camtoworlds, times, backdrop).to(images.dtype)
        else:
            # an RGB-only rig: the floor found by matching the views gives its pixels a depth, as a camera would
            found = floor_from_photo(images.detach(), Ks, camtoworlds, times, height=known, near=floor_near)
            # a floor of one colour matches nowhere: where what stands on it meets it tells its height; and wherever
            # the floor is (matched, told or so found), its pixels of one colour are its own
            feet = floor_from_feet(images.detach(), Ks, camtoworlds, times, height=None if found is None else found[0])
            plain = None if feet is None else feet[1]
            swept = found is not None  # matched (or told): its matched pixels show the floor's colours
            if found is None and feet is not None:
                found = floor_from_photo(images.detach(), Ks, camtoworlds, times, height=feet[0])
            if found is not None:
                floor_height, depths = found[0], found[1].to(images.device, images.dtype)
                # and what stands on it, where the same moment's views outline it (silhouettes.standing_depths);
                # which pixels a partner confirms as floor also tells which caught ones to hide (below). A plain
                # floor's pixels and those in the colours of its matched ones outline it too, though they are left to
                # the floor layer, not given the model as depth (a plain floor found from feet matches on objects
                # near it as much as on itself: its matched colours are not its own)
                agreement = floor_agreement(images.detach(), Ks, camtoworlds, times, floor_height)
                shown = depths > 0
                if swept:
                    shown = shown | floor_palette(images, shown).to(depths.device)
                if plain is not None:
                    shown = shown | plain.to(depths.device)
                standing = standing_depths(images.detach(), Ks, camtoworlds, times, floor_height, shown, agreement)
                depths = torch.where(depths > 0, depths, standing.to(depths))
    caught = measured = off_floor = None
    with torch.autocast(images.device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
        out = model(images.float(), rays.float(), times.float(),
                    depths.float() if depths is not None and cfg.depth_input else None)
    # Geometry in float32 whatever the model ran in (bf16 autocast would round rays and covariances).
    with torch.autocast(images.device.type, enabled=False):
        raw = out.raw.float()
        if cfg.head == "paper":
            g, z = paper_gaussians(raw, Ks.float(), camtoworlds.float(), times.float())
        else:
            base, measured = base_log_depth(depths.float() if depths is not None else None, depth_views, (V, H, W),
                                            images.device)
            if sensed and measured_offset:
                base = base + measured_offset * measured.to(base)
            far = None
            if floor_height is not None:
                # whatever an RGB-only view shows below the horizon lies no farther than the floor
                z_floor, hit = plane_depths(origins, dirs, camtoworlds[:, :3, 2], floor_height)
                far = torch.where(hit, z_floor.clamp_min(1e-6).log(), torch.full_like(z_floor, math.inf))
            g, z = surfel_gaussians(raw, images.float(), Ks.float(), camtoworlds.float(), times.float(),
                                    base.to(raw), measured, far)
            if far is not None:
                # the unmeasured pixels the floor bounds, which the model put at or past it
                caught = ~measured & hit & (z.detach().double() >= (1 - 1e-3) * z_floor)
            if camera_ids is not None:
                velocities = scene_velocities(images, g.means.detach().view(V, H, W, 3), times, camera_ids,
                                              Ks.float(), camtoworlds.float(), flows)
                g = replace(g, velocities=velocities.reshape(-1, 3).to(g.means))
        env, hidden = None, None
        if cfg.environment and backdrop is not None:
            # the map holds the backdrop alone: weighted by depth, the objects' colours smeared into it
            env = Environment.build(images.detach().float(), dirs, backdrop.to(images.dtype))
            # outline pixels show the object at their coverage, in its colour, not a blend with the backdrop's; the
            # rest of their opacity stays for their own camera (ViewWeighting.hidden), which saw them as they are
            outline, coverage, colours = unmix_edges(images.detach(), backdrop)
            shown = coverage.reshape(-1).to(g.opacities)
            # and a Gaussian other views see on the backdrop lies outside the objects: its own camera alone shows it
            off = off_silhouette(g.means.detach().view(V, H, W, 3), backdrop, Ks, camtoworlds, times)
            shown = torch.where(off.reshape(-1), torch.zeros_like(shown), shown)
            hidden = g.opacities * (1 - shown)
            g = replace(g, opacities=g.opacities - hidden,
                        colors=torch.where(outline.reshape(-1, 1), colours.reshape(-1, 3).to(g.colors), g.colors))
        elif cfg.environment:
            floor = ground(images, origins, dirs, camtoworlds, depths,
                           floor_height if floor_height is not None else known)
            if floor is not None and read_views:
                floor = floor.with_views(images.float(), Ks.float(), camtoworlds.float(),
                                         depths, z.detach(), sensed)
            if caught is not None:
                # a caught pixel that no partner confirms as floor where its ray meets it (they show another
                # colour there, or do not see it) mostly stands before the floor, at a depth nothing located: drawn
                # on the floor it smears (a thin arm over many views' floor), so its own camera alone shows it
                # and the floor layer draws the floor. 64 rig validation scenes / 15 MuJoCo bags, RGB novel_view:
                # +0.12 / +0.36 dB; every caught pixel hidden: -0.07 (16 scenes) / +0.46 (ablation block 23)
                confirmed = agreement[2]  # caught pixels meet the floor: caught & ~confirmed is unconfirmed()'s
                off = off_floor = caught & ~confirmed
                hidden = torch.where(off.reshape(-1), g.opacities, torch.zeros_like(g.opacities))
                g = replace(g, opacities=g.opacities - hidden)
            if floor is not None and sensed:
                # a pixel Gaussian beyond the floor along its own ray (the sky past a platform's edge, a far pixel's
                # hedged depth) would show through the floor from elsewhere: the floor layer shows its colour
                # instead, and only its own camera sees it (ViewWeighting.hidden)
                past = floor.beyond(origins, dirs, camtoworlds[:, :3, 2].double(), z.detach().double()).reshape(-1)
                hidden = torch.where(past, g.opacities, torch.zeros_like(g.opacities))
                g = replace(g, opacities=g.opacities - hidden)
            weights = content_weights(z.detach(), g.opacities.detach().view(V, H, W))
            walls = []
            if sensed and read_views:
                walls = find_walls(images.detach().float(), Ks.float(), camtoworlds.float(), depths,
                                   None if floor is None else floor.height)
                on_walls = wall_pixels(walls)
                if on_walls is not None:
                    # a wall is geometry now: what the environment map holds above and beyond it is the sky's
                    weights = torch.where(on_walls, torch.full_like(weights, MIN_WEIGHT), weights)
            env = Environment.build(images.detach().float(), dirs, weights, floor=floor, walls=walls)
    guessed = None
    if measured is not None:
        colour = torch.ones(V, dtype=torch.bool, device=z.device) if depth_views is None else ~depth_views.to(z.device)
        guessed = ~measured & (~colour[:, None, None] | (z.detach() >= RGB_DEPTH))
        if off_floor is not None:  # held by the floor's depth bound where no view confirms the floor: a ceiling
            guessed |= off_floor.view(V, H, W)
    return Prediction(g, z, env, hidden, floor_height, backdrop, flows, guessed)


def _measurements(depths: Tensor) -> Tensor:
    """depths (V,H,W) metres with every value that is not a measurement as 0: NaN, and +-inf (REP 117: no return,
    too close). ValueError for negative depths (z is positive in front of the camera; OpenGL's is negative)."""
    finite = torch.isfinite(depths)
    negative = finite & (depths < 0)
    if bool(negative.any()):
        share = float(negative.sum()) / max(1, int((finite & (depths != 0)).sum()))
        raise ValueError(f"depths must be z in metres, >= 0 (0 = none), got negative values on {share:.1%} of the "
                         "measured pixels (OpenGL's camera looks along -z: negate its depth)")
    return depths if bool(finite.all()) else torch.where(finite, depths, torch.zeros_like(depths))


def far_background(depths: Tensor) -> float | None:
    """The depth (metres) from which depths (V,H,W) (0 = none) show a renderer's background, or None: the farthest
    measured pixels, beyond a gap of FAR_GAP (a factor) in which none lies, where one view holds FAR_SHARE of its
    measured pixels there (at least 16, on 3 rows or more) and as many of all lie nearer. A renderer writes its far
    clip plane's z-depth for what it did not hit (MuJoCo's zfar; 65.535 m, 16UC1's largest value), or a sky
    sphere's; a camera measures its scene up to its range without such a gap (a floor to the horizon, a wall far
    off: what a sensor drops it reports as 0), and a few stray far pixels are too few."""
    measured = torch.isfinite(depths) & (depths > 0)
    if not bool(measured.any()):
        return None
    nearest = torch.where(measured, depths, torch.full_like(depths, math.inf)).min()
    filled = torch.where(measured, depths, nearest)  # the unmeasured in the nearest one's bin: occupied anyway
    # The log2 bins in float32 lie within one of the exact ones: where no two occupied bins lie more than FAR_GAP's
    # bins less 2 apart, the exact ones lie at most FAR_GAP's apart: no gap (most bags: 148 -> 58 ms for 12 views of
    # 720x960, the same answers)
    quick = torch.log2(filled.float())
    bins = quick.sub_(quick.min()).mul_(FAR_BINS).to(torch.int32)  # truncation: floor, all being >= 0
    steps = torch.nonzero(torch.bincount(bins.flatten()))[:, 0].diff()
    if steps.numel() == 0 or int(steps.max()) <= FAR_GAP_BINS - 2:
        return None
    logs = torch.log2(filled.double())
    lowest = float(logs.min())
    occupied = torch.nonzero(torch.bincount(logs.sub_(lowest).mul_(FAR_BINS).long().flatten()))[:, 0]
    gaps = torch.nonzero(occupied.diff() > FAR_GAP_BINS)[:, 0]
    if gaps.numel() == 0:
        return None
    start = 2.0 ** (lowest + float(occupied[int(gaps[-1]) + 1]) / FAR_BINS)  # the lower edge of the farthest run
    far = measured & (depths >= start)
    count, rows = far.flatten(1).sum(1), far.any(-1).sum(-1)
    enough = (count >= (FAR_SHARE * measured.flatten(1).sum(1)).clamp_min(16)) & (rows >= 3)
    nearer = int((measured & ~far).sum())
    return start if bool(enough.any()) and nearer >= FAR_SHARE * int(measured.sum()) else None


def sparse_time_factor(times: Tensor) -> float:
    """σ_t factor (≥ 1) for a measured pixel's Gaussian when the input instants are far apart: the largest gap
    between consecutive instants (normalised times (V,), merged within INSTANT_MERGE) over SPARSE_GAP."""
    instants = torch.unique(times.detach().float().cpu()).tolist()
    kept = instants[:1]
    for t in instants[1:]:
        if t - kept[-1] > INSTANT_MERGE:
            kept.append(t)
    gap = max((b - a for a, b in zip(kept, kept[1:])), default=0.0)
    return max(1.0, gap / SPARSE_GAP)


def ground(images: Tensor, origins: Tensor, dirs: Tensor, camtoworlds: Tensor, depths: Tensor | None,
           height: float | None = None) -> Floor | None:
    """The floor under V canonical views (floor.py), or None where nothing locates one: at `height`, or where
    measured depth (V,H,W) canonical z-depth (0 = none) puts it."""
    if depths is None:
        return None
    axes = camtoworlds[:, :3, 2].double()
    if height is None:
        height = height_from_depth(origins, dirs, axes, depths.double())
    if height is None:
        return None
    return Floor.build(images.detach().float(), origins, dirs, axes, depths.double(), height)


def refine_colours(gaussians: Gaussians4D, images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
                   background: Tensor | Environment, weighting: ViewWeighting | None, steps: int) -> Gaussians4D:
    """The pixel Gaussians' colours corrected so that the V input views re-render as they were captured.

    A pixel's splat is blended with its neighbours' (the rasterizer's 0.3 px² dilation alone makes each σ ≥ 0.55
    px) and with what shows through it, so a view re-rendered from exact pixel colours comes back at about
    37 dB, blurred. Each step renders every input view at its time, as `Reconstruction.render` would (the
    same fading), and adds the residual to its pixels' Gaussians: a Jacobi iteration of that blur's inverse,
    the colours kept within REFINE_RANGE.
    images (V,H,W,3) in [0,1]; Ks (V,3,3), camtoworlds (V,4,4) canonical; times (V,) normalised; the pixel
    Gaussians come first in `gaussians`, view-major, as `predict` returns them."""
    V, H, W, _ = images.shape
    n = V * H * W
    plan: dict = {}  # only the colours change from pass to pass: slice and look up the environment once
    for _ in range(steps):
        out = render_at_times(gaussians, camtoworlds, Ks, W, H, times, background, weighting=weighting, fill=True,
                              plan=plan)
        colors = gaussians.colors.clone()
        colors[:n] = (colors[:n] + (images - out.colors).reshape(n, 3).to(colors)).clamp(*REFINE_RANGE)
        gaussians = replace(gaussians, colors=colors)
    return gaussians


def checked_device(device: str | torch.device) -> torch.device:
    """torch.device(device), or ValueError saying why it cannot be used here (a typo, CUDA absent or too few GPUs)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r}: {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not available: this torch has no CUDA or sees no GPU "
                             f"(use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} is not available: {torch.cuda.device_count()} GPU(s) visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} is not available: this torch has no MPS or sees no Apple GPU (use cpu)")
    return dev


@dataclass
class ModelInputs:
    """A window's views as the model takes them (`Reconstructor.inputs`) and what was found on the way."""
    views: ViewSet  # at the model's input size, on its device; depth made like the training sensor's
    norm: SceneNormalization  # world <-> canonical, levelled
    c2w: Tensor  # (V,4,4) canonical optical-frame poses
    depths: Tensor | None  # (V,H,W) canonical z-depth, 0 = none
    window: TimeWindow
    times: Tensor  # (V,) normalised stamps
    facts: dict  # far_background_m, units_factor, frame, agreement, depth_median, noise, ray_t, tilt_deg, ...


class Reconstructor:
    """Runs a trained LRM4D on ViewSets. device None -> CUDA if available, else CPU; refine_steps: colour
    refinement passes per reconstruction (`refine_colours`; 0 = the model's colours; each re-renders the inputs:
    about 0.06 s for 12 views of 128² on two CPU cores). floor_z: the world height (metres, along world up: world
    z in a REP-103 frame) of a horizontal floor the caller knows, e.g. 0 in a ground robot's odom or map frame
    (REP-105); None: found from depth or by matching
    the views. An RGB-only rig's untextured floor gives matching nothing, and the floor bounds how far what its
    colour shows below the horizon may lie (ablation block 18: 16 rig validation scenes, RGB novel_view 20.19 ->
    21.58 with it given; RGB-D unchanged). bf16: the transformer under bf16 autocast (None: where the hardware
    computes it natively, `bf16_native`; the shipped model trained so)."""

    def __init__(self, model: LRM4D, device: str | torch.device | None = None, refine_steps: int = REFINE_STEPS,
                 floor_z: float | None = None, bf16: bool | None = None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
        if floor_z is not None and not math.isfinite(floor_z):
            raise ValueError(f"floor_z must be a finite height in metres or None, got {floor_z}")
        self.device = checked_device(device)
        self.refine_steps = int(refine_steps)
        self.floor_z = None if floor_z is None else float(floor_z)
        self.model = model.to(self.device).eval()
        # the transformer as it trained: bf16 autocast where the hardware computes it natively (a CPU's 12-view
        # 128² forward 82 -> 56 ms; 8 evaluation bags' RGB-D novel_view 25.813 -> 25.812 dB)
        self.bf16 = bf16_native(self.device) if bf16 is None else bool(bf16)
        # An RGB-only rig's floor height (world z, or None: not found) by the input poses it was matched from: a
        # static rig's windows share their poses, and matching the floor is most of their reconstruction time. A
        # moving rig's windows do not: the last floor found is checked first instead of the full sweep.
        self._floors: OrderedDict[tuple, float | None] = OrderedDict()
        self._floor_z_checked = False  # floor_z held against a depth camera's floor (once one shows it)
        # the world's up an RGB-only head rig's floor showed (world frame, float64 (3,); None: not yet), and how many
        # windows have looked for it (_level_by_colour)
        self._colour_up: Tensor | None = None
        self._colour_up_tries = 0
        self._told: set[str] = set()  # the findings of `inputs` already warned of (each once per Reconstructor)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str | torch.device | None = None,
                        refine_steps: int = REFINE_STEPS, floor_z: float | None = None,
                        bf16: bool | None = None) -> "Reconstructor":
        """Load weights from `path` (None -> the shipped checkpoint)."""
        from .checkpoint import load_model

        return cls(load_model(path), device, refine_steps, floor_z, bf16)

    def forget(self) -> None:
        """Forget the floors earlier windows found (an RGB-only rig's, by matching; floor_z's check against depth is
        made again). Windows of one robot share its floor, and a Reconstructor checks the last one first; call this
        between unrelated scenes (`evaluate` does, per bag), so that one scene's floor is never tried on another's."""
        self._floors.clear()
        self._floor_z_checked = False
        self._colour_up, self._colour_up_tries = None, 0

    def _check_floor_z(self, v: ViewSet, c2w: Tensor, depths: Tensor, norm: SceneNormalization,
                       lowest: float) -> None:
        """Warn once where the depth cameras show their floor away from floor_z (a frame mix-up: base_link for
        odom, a map whose z is not the floor's); the reconstruction then still places the floor at floor_z. Checked
        until a window's depth shows a floor (height_from_depth; a few ms). Evaluation bag scene_1002000 (cameras
        2.06 m up), RGB-D novel_view told the floor 0 / 0.1 / 0.15 / 0.2 m high: 24.94 / 24.91 / 23.53 / 19.90 dB."""
        origins, dirs = pixel_rays(v.Ks.double(), c2w, v.height, v.width)
        seen = height_from_depth(origins, dirs, c2w[:, :3, 2], depths.double())
        if seen is None:
            return
        self._floor_z_checked = True
        seen_z = norm.heights_to_world(seen)
        if abs(seen_z - self.floor_z) > FLOOR_Z_TOLERANCE * max(lowest - seen_z, 0.0):
            shown = round(seen_z, 3) + 0.0  # (no "-0.000")
            warnings.warn(f"floor_z is {self.floor_z:.3f} m but the depth cameras show a floor at {shown:.3f} m "
                          f"(height along world up; the lowest camera at {lowest:.3f} m): the floor is drawn at "
                          "floor_z. Check the world frame floor_z is given in, or leave floor_z unset for an RGB-D "
                          "rig", RuntimeWarning, stacklevel=3)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(self.model.cfg, height, width)

    @staticmethod
    def findings(facts: dict) -> list[tuple[str, str]]:
        """(kind, text) of each thing `inputs` found unlike the model's training data (its `facts`), with what was
        done about it. The pixels measured_depth drops at depth edges are not among them, as a depth camera's own
        dropouts are not: an exact renderer's grazing faces one or two pixels wide lose as many as anti-aliased
        depth does (~1 %)."""
        said = []
        if facts.get("far_background_m") is not None:
            said.append(("far", f"the depth images hold a renderer's background from {facts['far_background_m']:.3f} m "
                                "on (a far clip plane or sky, beyond a gap nothing lies in): read as no measurement"))
        if facts.get("units_factor", 1.0) != 1.0:
            f = facts["units_factor"]
            said.append(("units", f"the depth images agree with the camera poses multiplied by {f:g} "
                                  f"({facts['agreement']:.0%} of their pixels land on another view's depth through "
                                  f"the poses, {facts['optical_agreement']:.0%} as they are"
                                  + (f"; their median as they are, {facts['depth_median']:.0f} m, is beyond a depth "
                                     "camera's range" if facts.get("depth_median", 0.0) > PLAUSIBLE_DEPTH else "")
                                  + "): multiplied. "
                                  "Depth and poses must share a unit: 32FC1 depth is metres, 16UC1 millimetres "
                                  "(REP 118)"))
        if facts.get("noise", 0.0) > TRAINED_NOISE:
            said.append(("noise", f"the depth images' noise reads {facts['noise']:.4f} /m in inverse depth, "
                                  f"{facts['noise'] / SENSOR_NOISE:.0f}x the depth camera the model was trained with: "
                                  "averaged along their surfaces"))
        if facts.get("frame") is not None:
            said.append(("frame", f"the depth images agree through the camera poses only {facts['frame']} "
                                  f"({facts['agreement']:.0%} of their pixels land on another view's depth, "
                                  f"{facts['optical_agreement']:.0%} as given): {POSE_FIXES[facts['frame']]}"))
        if facts.get("ray_t", 0.0) > RAY_T:
            said.append(("ray", f"the depth images read as each pixel's distance along its ray (t = "
                                f"{facts['ray_t']:.0f} over their planar patches), not z along the optical axis as "
                                "ROS depth is (REP 118): converted to z. A renderer writes z as e.g. Isaac Sim's "
                                "distance_to_image_plane, AirSim's DepthPlanar"))
        if facts.get("principal_point_off") is not None:
            cam, cx, cy, w, h = facts["principal_point_off"]
            said.append(("intrinsics", f"{cam}'s principal point ({cx:.1f}, {cy:.1f}) lies off its {w}x{h} image: "
                                       "its K is for another image size (scale K with the image: fx, cx by the "
                                       "width's ratio, fy, cy by the height's)"))
        if facts["tilt_deg"] >= LEVEL_FROM_CAMERAS_DEG:
            said.append(("level", f"the world frame's z is {facts['tilt_deg']:.1f}° from the up the cameras, depth or "
                                  "floor show (REP-103 has z up): the reconstruction is levelled; its outputs stay in "
                                  "the world frame, and floor_z is a height along that up"))
        return said

    def _tell(self, facts: dict) -> tuple[str, ...]:
        """Warn of each of `findings(facts)` once per Reconstructor; returns all their texts."""
        found = self.findings(facts)
        for key, text in found:
            if key not in self._told:
                self._told.add(key)
                warnings.warn(text, RuntimeWarning, stacklevel=4)
        return tuple(text for _, text in found)

    def _level_by_colour(self, norm: SceneNormalization, v: ViewSet, c2w: Tensor, times: Tensor) -> SceneNormalization:
        """`norm` turned to the up the floor of an RGB-only rig whose cameras all face one way shows
        (floor_fit.up_from_photo, world z tried beside its turns), where it lies LEVEL_FROM_CAMERAS_DEG or more from
        canonical z; else `norm`.
        Looked for where the cameras' image up lies IMAGE_UP_DEG or more from canonical z (world z up would pitch
        them that steeply: a y-up frame, a SLAM map started at a camera's pose), in at most COLOUR_UP_TRIES windows
        until found; the up found is the world frame's, kept for every later window (forget() drops it).
        v: the model-size views; c2w (V,4,4) canonical; times (V,) normalised."""
        if self._colour_up is None:
            if camera_up(c2w) is not None or self._colour_up_tries >= COLOUR_UP_TRIES:
                return norm
            hint = image_up(c2w)
            if float(hint[2]) >= math.cos(math.radians(IMAGE_UP_DEG)):
                return norm
            self._colour_up_tries += 1
            found = up_from_photo(v.images, v.Ks, c2w, times, hint, given=norm.rotation[:, 2])  # world z, canonical
            if found is None:
                return norm
            self._colour_up = norm.rotation.T.to(found[0]) @ found[0]
        up = norm.rotation.to(self._colour_up) @ self._colour_up
        if float(up[2]) > math.cos(math.radians(LEVEL_FROM_CAMERAS_DEG)):
            return norm
        return norm.levelled(up.cpu())

    @torch.no_grad()
    def inputs(self, views: ViewSet, normalization: SceneNormalization | None = None) -> ModelInputs:
        """views (world units, absolute stamps) as the model takes them, and what was found on the way: a depth
        camera's renderer background, unit, noise, camera frame and depth quantity (measured_depth), and the world
        up. Warns of nothing: `reconstruct` does (`_tell`), `lrm4d check-bag` reports."""
        if len(views) == 0:
            raise ValueError("reconstruct needs at least one view")
        if views.depths is not None:
            views = replace(views, depths=_measurements(views.depths))
        norm = normalization or SceneNormalization.from_cameras(views.camtoworlds)
        window = TimeWindow.from_stamps(views.stamps_ns)
        facts: dict = {}
        far = None if views.depths is None else far_background(views.depths)
        if far is not None:  # before resizing, which would blend it into its neighbours
            views = replace(views, depths=torch.where(views.depths >= far, torch.zeros_like(views.depths),
                                                      views.depths))
        v = views.resized(*self.input_size(views.height, views.width)).to(self.device)
        if v.depths is not None:  # a depth camera unlike the one the model learned from, made like it
            # Distance along the ray first (its test is unit-free; ray distance bends what the unit test matches),
            # read again after denoising where the raw planes are too noisy to tell.
            t = ray_depth_t(v.depths, v.Ks)
            if t > RAY_T:
                v = replace(v, depths=z_from_ray(v.depths, v.Ks))
            # The noise, read once (the unit search's tolerance and `prepare` use it), at the camera's own size
            # where the views were enlarged: nearest-neighbour copies step along a slanted surface, and those steps
            # read as noise (exact 64² depth at 128²: 0.0084 /m, 3x the training sensor's, then averaged).
            if v.height > views.height or v.width > views.width:
                native = views.depths if t <= RAY_T else z_from_ray(views.depths, views.Ks)
                sigma = noise_level(native.to(v.depths.device))
            else:
                sigma = noise_level(v.depths)
            found = depth_reading(v.depths, v.Ks, v.camtoworlds, sigma)
            if found.factor != 1.0:
                v = replace(v, depths=v.depths * found.factor)
                sigma = sigma / found.factor  # inverse-depth noise scales inversely
            prepared, noise, dropped = prepare_depth(v.depths, sigma)
            if -RAY_T <= t <= RAY_T:
                t = ray_depth_t(prepared, v.Ks)
                if t > RAY_T:
                    prepared = z_from_ray(prepared, v.Ks)
            v = replace(v, depths=prepared)
            facts.update(far_background_m=far, units_factor=found.factor, frame=found.frame, agreement=found.share,
                         optical_agreement=found.given, depth_median=found.median, noise=noise,
                         mixed_dropped=dropped, ray_t=t)
        c2w = norm.poses_to_canonical(v.camtoworlds.double())
        depths = None if v.depths is None else v.depths.float() * norm.scale
        times = window.normalize(views.stamps_ns).to(self.device)
        if depths is not None and bool((depths > 0).any()):
            norm = level_by_depth(norm, v, c2w, depths)
            c2w = norm.poses_to_canonical(v.camtoworlds.double())
        elif self.model.cfg.head != "paper":  # (the paper's head places no floor)
            levelled = self._level_by_colour(norm, v, c2w, times)
            if levelled is not norm:
                norm, c2w = levelled, levelled.poses_to_canonical(v.camtoworlds.double())
        facts["tilt_deg"] = math.degrees(math.acos(max(-1.0, min(1.0, float(norm.up[2])))))
        # a K for another image size (a calibration at 1280x720 used with 640x480 frames) puts its principal point
        # off the image: the views come back at a few dB (cx 95.5 on a 96-pixel image: own views 12.6 dB)
        c = views.Ks[:, :2, 2].double().cpu()
        off = (c[:, 0] < -0.5) | (c[:, 0] > views.width - 0.5) | (c[:, 1] < -0.5) | (c[:, 1] > views.height - 0.5)
        if bool(off.any()):
            i = int(torch.nonzero(off)[0])
            facts["principal_point_off"] = (views.camera_names[int(views.camera_ids[i])], float(c[i, 0]),
                                            float(c[i, 1]), views.width, views.height)
        return ModelInputs(v, norm, c2w, depths, window, times, facts)

    @torch.no_grad()
    def reconstruct(self, views: ViewSet, normalization: SceneNormalization | None = None) -> Reconstruction:
        """Views in world units with absolute stamps -> Reconstruction.

        Where `views.depths` holds measured depth (metres, 0 = none: an RGB-D camera), the model uses it; views
        without depth (an RGB-only rig, or some cameras of a mixed one) are reconstructed from colour.
        normalization defaults to SceneNormalization.from_cameras(views.camtoworlds); the time window is the span
        of the views' stamps.
        """
        inp = self.inputs(views, normalization)
        findings = self._tell(inp.facts)
        v, norm, c2w, depths, window, times = inp.views, inp.norm, inp.c2w, inp.depths, inp.window, inp.times
        key, match_floor, near = None, True, None
        if self.floor_z is not None:
            lowest = float((views.camtoworlds[:, :3, 3].double().cpu() @ norm.up).min())
            if self.floor_z >= lowest:
                raise ValueError(f"floor_z {self.floor_z} m is not below every camera (the lowest is at height "
                                 f"{lowest:.3f} m): the floor must be a horizontal plane under the rig")
            match_floor = norm.heights_to_canonical(self.floor_z)
            if depths is not None and not self._floor_z_checked:
                self._check_floor_z(v, c2w, depths, norm, lowest)
        elif depths is None:
            key = tuple(torch.cat([views.camtoworlds.double().cpu().reshape(-1) * 1e3,  # mm, and pixels
                                   v.Ks.double().cpu().reshape(-1)]).round().long().tolist())
            if key in self._floors:
                world_z = self._floors[key]
                match_floor = False if world_z is None else norm.heights_to_canonical(world_z)
            else:
                last = next((z for z in reversed(self._floors.values()) if z is not None), None)
                near = None if last is None else norm.heights_to_canonical(last)
        pred = predict(self.model, v.images, v.Ks, c2w, times, depths, match_floor, v.camera_ids, floor_near=near,
                       bf16=self.bf16, measured_offset=MEASURED_OFFSET)
        if key is not None and key not in self._floors and pred.backdrop is None:  # objects move: no cache
            h = pred.floor_from_colour
            self._floors[key] = None if h is None else norm.heights_to_world(h)
            while len(self._floors) > FLOOR_CACHE:
                self._floors.popitem(last=False)
        background = pred.environment if pred.environment is not None else estimate_background(v.images)
        P = v.height * v.width
        # (the paper head's temporal extents are not anchored at their view's time: left as predicted)
        spread = sparse_time_factor(times) if depths is not None and self.model.cfg.head != "paper" else 1.0
        if spread > 1.0:
            g = pred.gaussians
            measured = torch.zeros_like(g.scale_t, dtype=torch.bool)
            measured[:depths.numel()] = depths.reshape(-1).to(measured.device) > 0
            pred = replace(pred, gaussians=replace(g, scale_t=torch.where(measured, g.scale_t * spread, g.scale_t)))
        scales_t = pred.gaussians.scale_t[:len(v) * P].view(len(v), P).median(dim=1).values
        weighting = ViewWeighting(c2w[:, :3, 2].float().to(self.device), times.float(), P, pred.hidden, scales_t)
        g = refine_colours(pred.gaussians.detach(), v.images, v.Ks.float(), c2w.float(), times.float(), background,
                           weighting, self.refine_steps)
        native = None
        if (views.height, views.width) != (v.height, v.width):  # the views as captured, for renders at their size
            native = (views.images.to("cpu"), views.Ks.to(self.device).float())  # (show moves the two it uses)
        captured = CapturedFrames(v.images.float(), v.Ks.float(), c2w.float(), times.float(), pred.flows, native)
        to_measured = None
        if depths is not None:
            # the measured point less the mean, whatever the head did with it (the paper head clamps its means)
            o, d = z_rays(v.Ks.float(), c2w.float(), v.height, v.width)
            at = (o + depths[..., None] * d).reshape(-1, 3).to(g.means)
            hit = (depths > 0).reshape(-1, 1)
            to_measured = torch.zeros_like(g.means)
            to_measured[:len(v) * P] = torch.where(hit, at - g.means[:len(v) * P], torch.zeros_like(at))
        guessed = None
        if pred.guessed is not None:  # the model's guess of a depth: in no rendered depth
            guessed = torch.zeros(len(g), dtype=torch.bool, device=g.means.device)
            guessed[:len(v) * P] = pred.guessed.reshape(-1).to(guessed.device)
        footprints = torch.zeros(len(g), 2, dtype=g.means.dtype, device=g.means.device)
        footprints[:, 1] = math.inf  # not a pixel Gaussian: nothing to fill
        footprints[:len(v) * P] = pixel_footprints(pred.pixel_depths.float(), v.Ks.float()).to(footprints)
        return Reconstruction(g, norm, window, background, weighting, captured=captured, to_measured=to_measured,
                              guessed=guessed, footprints=footprints, findings=findings)


def level_by_depth(norm: SceneNormalization, v: ViewSet, c2w: Tensor, depths: Tensor) -> SceneNormalization:
    """`norm` turned so that the floor measured depth shows (floor_fit.floor_normal) is canonical z = const, where it
    is LEVEL_FROM_DEPTH_DEG or more off; else `norm`. Cameras that all face one way (`camera_up` finds none) and
    whose image up lies IMAGE_UP_DEG or more from canonical z (world z up would pitch them that steeply: a y-up
    frame, a SLAM map started at a camera's pose, or a camera looking down at a table) also try a floor about their
    image up, and the plane holding more of the measured points wins. v: the model-size views; c2w (V,4,4)
    canonical; depths (V,H,W) canonical z-depth, 0 = none."""
    origins, dirs = pixel_rays(v.Ks.double(), c2w, v.height, v.width)
    axes, depths = c2w[:, :3, 2], depths.double()
    found = floor_normal(origins, dirs, axes, depths)
    if camera_up(c2w) is None:
        hint = image_up(c2w)
        if float(hint[2]) < math.cos(math.radians(IMAGE_UP_DEG)):
            other = floor_normal(origins, dirs, axes, depths, around=hint)
            if other is not None and (found is None or other[1] > found[1]):
                found = other
    if found is None or float(found[0][2]) > math.cos(math.radians(LEVEL_FROM_DEPTH_DEG)):
        return norm
    return norm.levelled(found[0])


def check_model_choice(checkpoint: str | None, config: str | None) -> None:
    """ValueError where a command is given both --checkpoint and --config (before it reads its input)."""
    if config is not None and checkpoint is not None:
        raise ValueError(f"--config {config} (a randomly initialised model) and --checkpoint {checkpoint} (trained "
                         "weights) ask for two models: give one")


def load_reconstructor(checkpoint: str | None, config: str | None, device: str | None, seed: int = 0,
                       floor_z: float | None = None, bf16: str = "auto") -> Reconstructor:
    """The shipped/given checkpoint, or (config) a randomly initialised model of that preset: what the commands'
    --checkpoint / --config / --device / --seed / --floor-z / --bf16 ("auto" | "on" | "off") ask for."""
    check_model_choice(checkpoint, config)
    if config is not None:
        from .model import LRM4DConfig

        torch.manual_seed(seed)
        return Reconstructor(LRM4D(LRM4DConfig.preset(config)), device, floor_z=floor_z, bf16=BF16_CHOICES[bf16])
    return Reconstructor.from_checkpoint(checkpoint, device, floor_z=floor_z, bf16=BF16_CHOICES[bf16])
