"""ViewSet (world units, absolute stamps) -> Reconstruction: 4D Gaussians renderable at any camera and time.

The one entry point used by the CLI, the bag tools and the ROS node:

    rec = Reconstructor.from_checkpoint().reconstruct(views)
    out = rec.render(camtoworlds, Ks, width, height, stamps_ns)   # depth in metres
    g3 = rec.slice(stamp_ns)                                      # Gaussians3D in metres

A Reconstructor serves one rig's windows in turn: an RGB-only rig's floor, found by matching, is reused (same
poses) or checked first (a moving rig); call `forget()` before reconstructing an unrelated scene.
"""
from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import (LEVEL_FROM_CAMERAS_DEG, SceneNormalization, TimeWindow, camera_up, image_up, pixel_rays,
                      plucker, scale_K)
from .captured import CapturedFrames
from .environment import MIN_WEIGHT, Environment, content_weights
from .floor import Floor, floor_from_photo, floor_normal, height_from_depth, plane_depths, unconfirmed
from .gaussians import Gaussians3D, Gaussians4D, MIN_MARGINAL
from .model import BF16_CHOICES, LRM4D, bf16_native, config_of
from .pixel_gaussians import SIGMA_T0, base_log_depth, paper_gaussians, surfel_gaussians, z_rays
from .render import RenderOutput, render
from .render.projection import ALPHA_THRESHOLD, EPS2D
from .scene_flow import scene_velocities
from .silhouettes import border_colour, find_backdrop, hull_depths, off_silhouette, unmix_edges
from .views import ViewSet
from .walls import find_walls, wall_pixels

# Stamps this far outside the window (fraction of its span, at least 10 ms) are still rendered: the time
# Gaussians extend smoothly a little past the window.
WINDOW_TOLERANCE = 0.1
MIN_TOLERANCE_NS = 10_000_000
SLICE_CACHE = 4  # slices a Reconstruction keeps (each as large as the Gaussians alive at its time)
# A pixel the Gaussians cover this much (alpha) or more shows their own colour where it is not fully opaque, not
# the environment (`composite(fill=True)`): on 16 rig validation scenes, time_interp RGB-D 33.79 -> 34.44, RGB
# 32.83 -> 33.52 (novel views RGB-D +0.02, RGB -0.06); 0.3-0.7 and 0.1-0.5 gain 0.1 more time_interp and lose
# 0.1 more RGB novel views.
FILL_ALPHA = (0.5, 0.9)
# Refined colours may leave [0, 1] by this much: a sky pixel next to a dark edge needs more than white to come
# back white through its neighbour's splat. 16 rig validation scenes: self RGB-D 44.35 -> 48.25 with (-0.5, 1.5),
# 47.73 with (-0.25, 1.25); with the fill, time_interp RGB-D 34.44 -> 34.80, RGB 33.52 -> 33.85, self 45.08 ->
# 48.84. What shows colours clamps them: rendered images, PointCloud2 rgb, the viewer.
REFINE_RANGE = (-0.5, 1.5)
FLOOR_CACHE = 16  # input pose sets whose RGB-only floor a Reconstructor remembers
FLOOR_Z_TOLERANCE = 0.03  # share of the cameras' height above the floor by which floor_z may miss the depth's floor


# Inputs fade by optical-axis angle for targets that look the way an input camera looks (ViewWeighting)
FADE_FALLOFF = 0.1  # cosine difference at which a view's opacity falls by e (0.1 vs 0.3 vs 1 on the rig validation)
# Targets whose axis is more than FADE_GATE_DEG from every input's render all views unfaded. Nearer ones lean on the
# nearest input's pixels: an RGB-only rig's pixels lie on a far panorama (model card, "RGB-only inputs"), whose copies
# from other views disagree more the farther those stand. 32 rig validation scenes, novel_view / novel_view_time, RGB
# (RGB-D): 5° 19.77 / 20.04 (26.08 / 25.33); 10° 19.92 / 20.10 (26.08 / 25.33); 15° 20.03 / 20.16 (26.11 / 25.39);
# 20° 20.06 / 20.15 (26.11 / 25.39); 25° 20.08 / 20.16 (26.10 / 25.38); 40° 20.10 / 20.13 (26.02 / 25.33). 15 MuJoCo
# validation bags unchanged to 25° (their held-out cameras stand farther off), at 40° RGB 19.37 -> 19.20, RGB-D
# 23.20 -> 23.07. 8 object-centric scenes, alternating / novel-camera: 5° 19.21 / 19.27, 15° 19.12 / 19.26, 20°
# 19.01 / 19.30 (ablation block 25).
FADE_GATE_DEG = 15.0
# normalised time over which an input's gate falls by e^-1/2: with scene flow moving a camera's pixels between
# its frames, its frames count for the whole window (16 rig validation scenes, RGB time_interp 32.36 at 0.2 (the
# pixels' own σ_t), 32.69 at 1.0; 6 object-centric ones, alternating 17.49, 17.70, 17.72 at 3.0)
FADE_SIGMA_T = 1.0
FADE_MIN_PRESENCE = 0.1  # temporal marginal (at a view's median σ_t) a reference view must have at the target's time
# Every Gaussian's temporal extent (σ_t) times this for targets that look from no input camera's viewpoint (those
# ViewWeighting leaves unfaded): from there a view of another moment adds little its own moment's views do not, and
# shows what moved where it was. Validation, novel_view_time from RGB-D / RGB over 16 rig scenes and alternating /
# novel-camera over 8 object scenes (novel_view within 0.01 on the rig scenes): 1.0 25.59 / 19.97, 19.19 / 18.38;
# 0.8 25.70 / 20.06, 19.20 / 18.69; 0.7 25.72 / 20.13, 19.15 / 18.82; 0.6 25.63 / 20.24, 19.05 / 18.90 (block 10).
NOVEL_SIGMA_T = 0.7
# Shares of a 3×3 median and then of a 3×3 binomial blur mixed into the colours a Reconstruction renders for a
# target no input camera looks like (times 1 − its fading gate: none from an input's viewpoint; `soften`). There
# every view's copy of a surface shows, each off by a fraction of a pixel, and their disagreement is pixel-scale
# speckle a camera's pixel would average away; the median takes it out without blurring edges. 16 rig validation
# scenes, RGB-D novel_view / novel_view_time (time_interp and self unchanged): none 27.42 / 26.51; blur 0.3 (the
# first version) 27.52 / 26.54, 0.45 27.52 / 26.53, 0.6 27.51 / 26.50; median 0.5 27.57 / 26.57, 1.0 27.53 / 26.53;
# median 0.5 + blur 0.15 27.59 / 26.57, + blur 0.3 27.58 / 26.56. Median 0.5 + blur 0.15 against blur 0.3: RGB
# 20.92 / 20.96 -> 20.95 / 20.99, object-centric alternating / novel-camera 19.18 / 19.45 -> 19.19 / 19.49, 15 MuJoCo
# validation bags RGB-D 23.38 -> 23.51. Every camera blurred alike: novel_view 27.55 but time_interp 35.61 (block 28).
NOVEL_MEDIAN, NOVEL_BLUR = 0.5, 0.15
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
IMAGE_UP_DEG = 45.0  # level_by_depth: image up this far from canonical z is a second guess at up
# A camera whose focal length exceeds the input's a pixel Gaussian came from by more than this factor widens it
# towards its input pixel (fill_footprints): beyond it the splats, 0.3 input px wide, stop overlapping. 8 rig
# validation scenes generated at 384², inputs at the model's 128², targets scored against their own ground truth
# at 128 / 256 / 384, RGB-D novel_view (self): none 27.42 / 26.14 / 24.47 (45.39 / 29.01 / 24.89); from 1.0
# 27.34 / 26.73 / 26.08 (45.39 / 34.62 / 31.78); 1.5 27.41 / 27.00 / 26.23 (45.39 / 36.50 / 32.24); 2.0 27.42 /
# 26.19 / 26.32 (45.39 / 29.01 / 32.50); RGB at 1.5: 20.70 / 20.38 / 19.97 against none's 20.70 / 20.32 / 19.64
# (ablation block 32). At 128 the held-out cameras' focal lengths differ from the inputs' by up to 2x.
FILL_FROM = 1.5
# A camera whose focal length is shorter than every input's by this factor or more sees several pixel Gaussians
# per pixel, each narrower than the pixel: point-sampled, the nearest one a pixel meets covers it and the render
# aliases. It is drawn ⌈f_input / f⌉ times finer (at most MAX_SUPERSAMPLE) and area-averaged to its size. 8 rig
# validation scenes generated at 384², inputs at the model's 128², targets at 64 / 96 / 128 scored against their
# own ground truth, RGB-D novel_view (self): without 24.59 / 26.44 / 27.41 (27.43 / 33.38 / 45.39); with, from the
# shortest input focal length, 28.85 / 27.77 / 27.41 (48.28 / 35.31 / 45.39); from the inputs' median one 29.03 /
# 27.82 / 27.41 (48.85 / 35.58 / 45.20: at 128 the wide cameras' own views lose); RGB at 64 20.82 -> 21.41.
SUPERSAMPLE_FROM, MAX_SUPERSAMPLE = 1.25, 4
# Normalised time between consecutive input instants beyond which a depth camera's measured pixel Gaussians live
# proportionally longer (σ_t × gap / SPARSE_GAP; stamps within INSTANT_MERGE of an instant's first, 2.5 % of the
# window's span, are that instant: an unsynchronized rig's frame). One gap widens every measured pixel. The model
# predicts σ_t ≈ 0.27 whatever the spacing, as suits the rig draw's 4 instants (gap 2/3), so two or three
# synchronized frames faded to the environment half way between them. 16 rig validation scenes, RGB-D inputs of the
# even cameras at frames {0, 9} / {0, 5, 10}, novel_view_time / time_interp between them: 22.90 / 37.18 -> 24.78 /
# 37.75 and 25.10 / 41.01 -> 25.82 / 41.09, novel_view unchanged (6 scenes: the exponent 0.5 on gap / SPARSE_GAP
# gained two thirds to four fifths as much, 1.5 lost 1 dB novel_view at 2 instants). An RGB-only rig's pixels,
# widened alike, lost 0.1-0.2 dB at 3 instants: they keep theirs. 4 or more evenly spread instants (the rig
# protocol's, the node's uniform policy's) are unchanged (ablation block 31).
SPARSE_GAP, INSTANT_MERGE = 0.7, 0.05


@dataclass
class ViewWeighting:
    """Opacity factors of each input view's pixel Gaussians for a target that looks the way an input camera
    looks (the same camera at another moment in the window, at its own, or a viewpoint within FADE_GATE_DEG of
    it). Such a target then shows its nearest camera's pixels instead of a blend with every other view's
    resampled copy of the same surface (its own view's Gaussians alone re-render it about 5 dB better than all
    views' together).

    With c_v the cosine between the target's optical axis and input view v's: the gate of view v is
    a_v · exp(−½ ((t − t_v) / FADE_SIGMA_T)²), a_v = 1 for an axis within a hair of the target's, falling
    linearly to 0 at FADE_GATE_DEG, and 0 where view v's pixels have faded out by t (temporal marginal at its
    median σ_t `scales_t` below FADE_MIN_PRESENCE); the view r with the largest gate g sets the reference, and
    view u's factor is min(1, exp(−g (c_r − c_u) / FADE_FALLOFF)).
    Novel viewpoints (g = 0) render every view unfaded. axes (V,3) unit optical axes of the input views
    (canonical frame); times (V,) their normalised times; pixels: pixel Gaussians per view (they come first,
    view-major); any Gaussians after the V·pixels keep their opacity."""

    axes: Tensor
    times: Tensor
    pixels: int
    hidden: Tensor | None = None  # (N,) opacities of pixel Gaussians removed for novel views (Prediction.hidden)
    scales_t: Tensor | None = None  # (V,) each view's median temporal extent (None: SIGMA_T0 for every view)

    def _gates(self, target_axis: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """(each view's gate (V,), cosines (V,) between its axis and the target's) for a target along target_axis
        (3,) at normalised time t."""
        cos = self.axes @ (target_axis / target_axis.norm()).to(self.axes)
        c_gate = math.cos(math.radians(FADE_GATE_DEG))
        dt = self.times - float(t)
        gates = ((cos - c_gate) / (1.0 - c_gate)).clamp(0.0, 1.0) * torch.exp(-0.5 * (dt / FADE_SIGMA_T) ** 2)
        # a view whose Gaussians have faded out by t cannot stand in for the target: fading the others would
        # leave nothing
        scales = self.scales_t if self.scales_t is not None else torch.full_like(dt, SIGMA_T0)
        return gates * (torch.exp(-0.5 * (dt / scales.to(dt)) ** 2) >= FADE_MIN_PRESENCE), cos

    def gate(self, target_axis: Tensor, t: float | Tensor) -> float:
        """The largest view gate g in [0, 1] for a target along target_axis (3,) at normalised time t: 1 from an
        input's own viewpoint, 0 from a novel one (every view shown unfaded)."""
        g = float(self._gates(target_axis, t)[0].max())
        return 0.0 if g < 1e-3 else g

    def _fade(self, target_axis: Tensor, t: float | Tensor, n: int) -> tuple[Tensor, int] | None:
        """(factors (n,), the reference view r) for a target along target_axis (3,) at normalised time t, or None."""
        gates, cos = self._gates(target_axis, t)
        r = int(gates.argmax())
        g = float(gates[r])
        if g < 1e-3:
            return None
        w = torch.exp(-g * (cos[r] - cos) / FADE_FALLOFF).clamp(max=1.0).repeat_interleave(self.pixels)
        return (torch.cat([w, w.new_ones(n - w.shape[0])]) if n > w.shape[0] else w[:n]), r

    def opacity_scale(self, target_axis: Tensor, t: float | Tensor, n: int) -> Tensor | None:
        """(n,) factors for the opacities of n Gaussians seen along target_axis (3,) at normalised time t, or None
        (all 1)."""
        fade = self._fade(target_axis, t, n)
        return None if fade is None else fade[0]

    def opacities(self, target_axis: Tensor, t: float | Tensor, opacities: Tensor) -> Tensor | None:
        """Opacities (N,) of the Gaussians for a target along target_axis (3,) at normalised time t, or None (those
        given): faded by `opacity_scale`, and the reference view's `hidden` Gaussians back (its own pixels, which
        it saw past the floor, are right from its own camera)."""
        fade = self._fade(target_axis, t, opacities.shape[0])
        if fade is None:
            return None
        w, r = fade
        if self.hidden is not None:
            own = torch.zeros_like(opacities)
            own[r * self.pixels:(r + 1) * self.pixels] = 1.0
            opacities = opacities + own * self.hidden.to(opacities)
        return opacities * w


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
    view confirms the floor (floor.unconfirmed), and the uncovered part of an object's outline pixels
    (silhouettes.unmix_edges); None: none taken."""

    gaussians: Gaussians4D
    pixel_depths: Tensor
    environment: Environment | None
    hidden: Tensor | None = None
    floor_from_colour: float | None = None  # canonical height of the floor found by matching an RGB-only rig
    backdrop: Tensor | None = None  # (V,H,W) bool: an RGB-only rig's plain background (silhouettes.py), or None
    flows: dict = field(default_factory=dict)  # scene flow's optical flows between views, (a, b) -> (H,W,2) px


def predict(model: LRM4D, images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor,
            depths: Tensor | None = None, match_floor: bool | float = True,
            camera_ids: Tensor | None = None, read_views: bool = True, floor_near: float | None = None,
            bf16: bool = False, measured_offset: float = 0.0) -> Prediction:
    """Run the model on V canonical-frame views (one scene).

    images (V,H,W,3) in [0,1]; Ks (V,3,3); camtoworlds (V,4,4) camera-to-canonical; times (V,) normalised;
    depths (V,H,W) measured z-depth in canonical units, 0 = no measurement (None: an RGB-only rig).
    match_floor: place what an RGB-only rig's colours locate: objects before a plain backdrop by their silhouettes
    (silhouettes.py, ~0.2 s compiled on two CPU cores for 12 views of 128²), else the floor by matching the views
    (floor.floor_from_photo, ~0.25 s compiled); training skips both; a float: the floor's canonical height, known
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
            if found is not None:
                floor_height, depths = found[0], found[1].to(images.device, images.dtype)
    caught = None
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
                off = caught & unconfirmed(images.detach(), Ks, camtoworlds, times, floor_height)
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
    return Prediction(g, z, env, hidden, floor_height, backdrop, flows)


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
    logs = torch.log2(depths[measured].double())
    lowest = float(logs.min())
    occupied = torch.nonzero(torch.bincount(((logs - lowest) * FAR_BINS).long()))[:, 0]
    gaps = torch.nonzero(occupied.diff() > math.log2(FAR_GAP) * FAR_BINS)[:, 0]
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


def composite(out: RenderOutput, background: Tensor | Environment | None, camtoworlds: Tensor, Ks: Tensor,
              width: int, height: int, fill: bool = False, plan: dict | None = None) -> RenderOutput:
    """Colours of a render made over black, composited over `background`: an Environment (looked up along each
    pixel's ray), a colour (3,) or (C,3), or None (black).

    fill: where the Gaussians cover a pixel almost fully (alpha from FILL_ALPHA[0] up, all of it from
    FILL_ALPHA[1]), the rest of it takes their own mean colour (colour / alpha) instead of the background. Pixel
    Gaussians cover a surface seen from near their view with alpha 0.87-0.95, not 1 (an in-between moment falls
    between two frames' temporal marginals), and the environment, a blur of far content, would show through a
    solid surface. plan: see `render_at_times` (it keeps the environment's lookups)."""
    if background is None:
        return out
    if plan is not None and "background" in plan:
        bg = plan["background"]
    elif isinstance(background, Environment):
        origins, dirs = pixel_rays(Ks.double(), camtoworlds.double(), height, width)
        # only pixels the Gaussians leave uncovered look it up (the floor's and walls' views are per-ray work)
        need = out.alphas[..., 0] < (FILL_ALPHA[1] if fill else 1.0)
        bg = out.colors.new_zeros(out.colors.shape)
        spread = (1.0 / (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt()).to(dirs)[:, None, None].expand(dirs.shape[:3])
        bg[need] = background.lookup(dirs[need], origins[need], spread[need]).to(out.colors)
    else:
        bg = torch.as_tensor(background, dtype=out.colors.dtype, device=out.colors.device)
        bg = bg.expand(camtoworlds.shape[0], 3)[:, None, None, :]
    if plan is not None:
        plan["background"] = bg
    if fill:
        a = out.alphas
        own = (out.colors / a.clamp_min(1e-6)).clamp(0, 1)
        w = ((a - FILL_ALPHA[0]) / (FILL_ALPHA[1] - FILL_ALPHA[0])).clamp(0, 1)
        bg = w * own + (1 - w) * bg
    return RenderOutput(out.colors + (1.0 - out.alphas) * bg, out.alphas, out.depths)


def pixel_footprints(depths: Tensor, Ks: Tensor) -> Tensor:
    """(V·H·W, 2) per pixel Gaussian: [the side of its input pixel at its depth, in the depths' units; that input's
    focal length, px]. depths (V,H,W) z-depths; Ks (V,3,3) (focal: geometric mean of fx and fy)."""
    f = (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt().to(depths)
    return torch.stack([depths / f[:, None, None], f[:, None, None].expand_as(depths)], dim=-1).reshape(-1, 2)


def fill_footprints(covars: Tensor, footprints: Tensor, K: Tensor) -> Tensor:
    """covars (N,3,3) for a camera of focal length (K (3,3)) longer than the inputs' the Gaussians came from
    (footprints (N,2), `pixel_footprints`): isotropic variance EPS2D·side²·(1 − (FILL_FROM·f_input / f)²) added,
    side its input pixel at its depth: EPS2D·(r² − FILL_FROM²) px² at the zoom r = f / f_input. With the
    rasterizer's own EPS2D px² a splat's blur is then EPS2D·(r² − 1.25) px², against the EPS2D·r² its input pixel's
    blur scales to (0.86 of it at 3x). Pixel Gaussians are sized for that resolution: a larger image otherwise shows them as dots
    with gaps between them (a 640x480 camera's views, reconstructed at 128x171, rendered back at 640x480). Below
    FILL_FROM times the input's focal length the Gaussians are drawn as they are. Only the resolution counts, not how near the
    camera stands: bounding by each Gaussian's pixel in the target (its depth there) gained RGB-D novel views
    0.02-0.13 dB and lost RGB ones 0.09-0.12 (16 rig validation scenes: a colour camera's pixels lie on a far
    panorama, large, and grow larger still)."""
    f = (K[0, 0] * K[1, 1]).sqrt()
    finer = (1 - (footprints[:, 1] * FILL_FROM / f).square()).clamp_min(0)
    if not bool((finer > 0).any()):
        return covars
    extra = EPS2D * footprints[:, 0].square() * finer
    return covars + extra[:, None, None] * torch.eye(3, dtype=covars.dtype, device=covars.device)


def render_at_times(gaussians: Gaussians4D, camtoworlds: Tensor, Ks: Tensor, width: int, height: int,
                    times: Tensor, background: Tensor | Environment | None = None,
                    min_marginal: float = MIN_MARGINAL,
                    slicer: Callable[[list[Tensor]], list[tuple[Tensor | None, Gaussians3D]]] | None = None,
                    weighting: ViewWeighting | None = None, fill: bool = False, plan: dict | None = None,
                    footprints: Tensor | None = None) -> RenderOutput:
    """Render C cameras, camera c at normalised time times[c]; everything in the Gaussians' frame.

    camtoworlds (C,4,4), Ks (C,3,3), times (C,), background None | (3,) | (C,3) | Environment -> RenderOutput
    with (C,H,W,·). Cameras sharing a time share one slice. weighting: fade the input views' Gaussians for cameras
    that look the way an input looks (ViewWeighting), and show the others `novel_view_gaussians`; None: neither.
    slicer: times -> the unfaded cameras' (kept indices or None, slice) pairs, in place of slicing those Gaussians
    here (`slice_kept(t, min_marginal, ALPHA_THRESHOLD)`; a cache of them: Reconstruction). fill: see
    `composite` (reconstructions render with it; training, which the model learned without it, does not).
    plan: an empty dict to fill, or one filled by an earlier call with everything the same but the Gaussians'
    colours (refine_colours' passes): the cameras' slices and the environment's lookups are then reused, only the
    colours gathered again.
    footprints: (N,2) each Gaussian's input pixel at its depth and that input's focal length (`pixel_footprints`): a
    camera of a much longer focal length widens them towards their input pixel (`fill_footprints`); None: as they are.
    """
    C = camtoworlds.shape[0]
    if times.shape != (C,):
        raise ValueError(f"times must be ({C},), got {tuple(times.shape)}")
    if plan is not None and slicer is not None:
        raise ValueError("a plan keeps the slices made here: pass no slicer with it")
    if plan is None or "slices" not in plan:
        sliced = _slices_at_times(gaussians, camtoworlds, times, min_marginal, slicer, weighting)
        if plan is not None:
            plan["slices"] = sliced
    else:
        sliced = [(idx, keep, replace(g, colors=gaussians.colors if keep is None else
                                      gaussians.colors.index_select(0, keep))) for idx, keep, g in plan["slices"]]
    parts = []
    for idx, keep, g in sliced:
        calls = {id(g.covars): (g.covars, idx)}  # covariances -> the cameras drawing them, in one render call
        if footprints is not None:  # filled once per focal length; cameras needing nothing stay in one call
            fp = footprints if keep is None else footprints.index_select(0, keep)
            focals = (Ks[idx, 0, 0] * Ks[idx, 1, 1]).tolist()
            calls = {}
            for f in dict.fromkeys(focals):
                cov = fill_footprints(g.covars, fp, Ks[idx[focals.index(f)]])
                cams = idx[[k for k, fk in enumerate(focals) if fk == f]]
                calls[id(cov)] = (cov, cams if id(cov) not in calls else torch.cat([calls[id(cov)][1], cams]))
        for cov, cams in calls.values():
            parts.append((cams, render(g.means, cov, g.opacities, g.colors, camtoworlds[cams], Ks[cams], width,
                                       height)))
    order = torch.argsort(torch.cat([idx for idx, _ in parts]))
    out = RenderOutput(*[torch.cat([out[i] for _, out in parts])[order] for i in range(3)])
    return composite(out, background, camtoworlds, Ks, width, height, fill, plan)


def _slices_at_times(gaussians: Gaussians4D, camtoworlds: Tensor, times: Tensor, min_marginal: float,
                     slicer: Callable[[list[Tensor]], list[tuple[Tensor | None, Gaussians3D]]] | None,
                     weighting: ViewWeighting | None
                     ) -> list[tuple[Tensor, Tensor | None, Gaussians3D]]:
    """render_at_times' slices: (cameras (k,), the Gaussians kept (None: all, or a caller's slicer chose), the
    Gaussians3D they see) per group of cameras."""
    sliced = []
    plain = torch.ones(camtoworlds.shape[0], dtype=torch.bool)
    for c in range(len(plain) if weighting is not None else 0):  # faded cameras: their own opacities, one by one
        opacities = weighting.opacities(camtoworlds[c, :3, 2], times[c], gaussians.opacities)
        if opacities is not None:
            plain[c] = False
            # faded out of sight (another camera's pixels) goes before the renderer, which would cull it
            keep, g = replace(gaussians, opacities=opacities).slice_kept(times[c], min_marginal, ALPHA_THRESHOLD)
            sliced.append((torch.tensor([c], device=camtoworlds.device), keep, g))
    cams = torch.nonzero(plain).squeeze(1)
    if not len(cams):
        return sliced
    uniq, inverse = torch.unique(times[cams.to(times.device)], return_inverse=True)
    groups = [cams[(inverse == k).cpu()].to(camtoworlds.device) for k in range(len(uniq))]
    if slicer is not None:
        return sliced + [(idx, keep, g) for idx, (keep, g) in zip(groups, slicer(list(uniq)))]
    novel = gaussians if weighting is None else novel_view_gaussians(gaussians)
    return sliced + [(idx, *novel.slice_kept(t, min_marginal, ALPHA_THRESHOLD)) for idx, t in zip(groups, uniq)]


def _area_average(out: RenderOutput, k: int) -> RenderOutput:
    """A render (C,kH,kW,·) averaged over k×k blocks to (C,H,W,·): colours and alphas by their mean, depths by
    their alpha-weighted mean (the expected depth of what covers the block; 0 where nothing does)."""
    def pool(x: Tensor) -> Tensor:
        return F.avg_pool2d(x.permute(0, 3, 1, 2), k).permute(0, 2, 3, 1)

    alphas = pool(out.alphas)
    weighted = pool(out.alphas * out.depths)
    depths = torch.where(alphas > 0, weighted / alphas.clamp_min(1e-12), torch.zeros_like(weighted))
    return RenderOutput(pool(out.colors), alphas, depths)


def novel_view_gaussians(gaussians: Gaussians4D) -> Gaussians4D:
    """The Gaussians as a reconstruction shows them to a target no input camera looks like: σ_t × NOVEL_SIGMA_T."""
    return replace(gaussians, scale_t=gaussians.scale_t * NOVEL_SIGMA_T)


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


def _median3x3(x: Tensor) -> Tensor:
    """Each channel's 3×3 median of x (C,ch,H,W), edges replicated: the 9 shifted images through a 19-step
    compare-exchange network (Paeth's median of 9), elementwise: 15x faster than sorting each window (0.8 against
    16 ms at 256² on two CPU threads) and the same values."""
    H, W = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    v = [p[..., i:i + H, j:j + W] for i in range(3) for j in range(3)]
    for i, j in ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
                 (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2)):
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return v[4]


def soften(colors: Tensor, amount: Tensor) -> Tensor:
    """colors (C,H,W,3) softened by amount (C,) in [0, 1] per camera: a = NOVEL_MEDIAN·amount of each channel's
    3×3 median mixed in, y = (1 − a)·x + a·median(x), then b = NOVEL_BLUR·amount of a 3×3 binomial blur (1 2 1 ⊗
    1 2 1 / 16), (1 − b)·y + b·blur(y); edges replicated. amount 0 returns the colours untouched."""
    if not bool((amount != 0).any()):
        return colors
    x = colors.permute(0, 3, 1, 2)
    a = amount.to(x)[:, None, None, None]
    y = x + NOVEL_MEDIAN * a * (_median3x3(x) - x)
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    k = (k[:, None] * k[None]) / 16
    blur = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3), groups=3)
    return (y + NOVEL_BLUR * a * (blur - y)).permute(0, 2, 3, 1)


@dataclass
class Reconstruction:
    """Canonical-frame 4D Gaussians of one window, the maps back to metres and absolute stamps, and what renders
    are composited over: the input views' Environment (environment.py), or for models without one the
    background colour (3,) estimated from the input views (`estimate_background`)."""

    gaussians: Gaussians4D
    normalization: SceneNormalization
    window: TimeWindow
    background: Tensor | Environment
    weighting: ViewWeighting | None = None
    fill: bool = True  # composite(fill=...): a per-scene fit (optimize.py), made without the fill, renders without it
    # the input views: an input camera's in-between moments show what it captured where nothing moved (captured.py)
    captured: CapturedFrames | None = None
    # (N,3) canonical: from each Gaussian's mean to where its pixel's depth camera measured the surface, along its
    # ray (zero where nothing was measured; None: unknown). `slice(measured=True)` applies it.
    to_measured: Tensor | None = None
    # (N,2) each Gaussian's input pixel at its depth (canonical units) and that input's focal length (px)
    # (pixel_footprints; None: unknown; inf focal: not a pixel Gaussian): a much finer render widens them (fill_footprints)
    footprints: Tensor | None = None
    # The last SLICE_CACHE slices by normalised time: a node's virtual cameras and /render_view requests, and a
    # viewer's slider, ask for the same instant again and again (slicing is a quarter of a 128² CPU render).
    _slices: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False, compare=False)
    _input_focal: float | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def _sliced(self, times: list[Tensor]) -> list[tuple[Tensor | None, Gaussians3D]]:
        out = []
        for t in times:
            key = float(t)
            with self._lock:
                kept = self._slices.get(key)
                if kept is not None:
                    self._slices.move_to_end(key)
            if kept is None:
                shown = self.gaussians if self.weighting is None else novel_view_gaussians(self.gaussians)
                kept = shown.slice_kept(t, MIN_MARGINAL, ALPHA_THRESHOLD)  # only what the renderer would draw
                with self._lock:
                    self._slices[key] = kept
                    while len(self._slices) > SLICE_CACHE:
                        self._slices.popitem(last=False)
            out.append(kept)
        return out

    def _tolerance_ns(self) -> int:
        return max(int(WINDOW_TOLERANCE * (self.window.end_ns - self.window.start_ns)), MIN_TOLERANCE_NS)

    def covers(self, stamps_ns) -> Tensor:
        """(C,) bool: which absolute stamps (int64 ns) `render` takes: the input views' span, widened by
        WINDOW_TOLERANCE of it (at least MIN_TOLERANCE_NS)."""
        stamps = torch.as_tensor(stamps_ns, dtype=torch.int64).reshape(-1)
        return self.window.contains(stamps, tolerance_ns=self._tolerance_ns())

    def _times(self, stamps_ns) -> Tensor:
        stamps = torch.as_tensor(stamps_ns, dtype=torch.int64).reshape(-1)
        inside = self.covers(stamps)
        if not bool(inside.all()):
            bad = stamps[~inside].tolist()
            raise ValueError(f"stamps {bad} ns lie outside the reconstructed window "
                             f"[{self.window.start_ns}, {self.window.end_ns}] ns (tolerance {self._tolerance_ns()} ns)")
        return self.window.normalize(stamps).to(self.gaussians.means.device)

    def render(self, camtoworlds: Tensor, Ks: Tensor, width: int, height: int, stamps_ns: Tensor,
               background: Tensor | Environment | None = None) -> RenderOutput:
        """Render C world cameras (camtoworlds (C,4,4) metres, Ks (C,3,3)) at absolute stamps (C,) int64 ns.

        Returns colors (C,H,W,3) in [0,1], alphas (C,H,W,1), depths (C,H,W,1) z-depth in metres (0 where empty).
        background: (3,), (C,3) or an Environment; None -> the reconstruction's own (`background`). A camera that
        looks unlike every input gets the Gaussians' colours softened (`soften` by 1 − its gate);
        an input camera's captured frames are shown as they are (`CapturedFrames`).
        """
        camtoworlds, Ks = torch.as_tensor(camtoworlds), torch.as_tensor(Ks)
        C = camtoworlds.shape[0] if camtoworlds.dim() == 3 else -1
        stamps = torch.as_tensor(stamps_ns).reshape(-1)
        if C < 1 or tuple(camtoworlds.shape) != (C, 4, 4) or tuple(Ks.shape) != (C, 3, 3) or len(stamps) != C:
            raise ValueError(f"render takes C >= 1 cameras: camtoworlds (C,4,4), Ks (C,3,3) and stamps_ns (C,), got "
                             f"{tuple(camtoworlds.shape)}, {tuple(Ks.shape)} and {tuple(stamps.shape)}")
        times = self._times(stamps)
        dev = self.gaussians.means.device
        c2w = self.normalization.poses_to_canonical(camtoworlds.to(torch.float64))
        c2w, Ks = c2w.to(dev).float(), torch.as_tensor(Ks).to(dev).float()
        background = self.background if background is None else background
        factors = self.supersampling(Ks)
        parts = []
        for k in factors.unique().tolist():  # cameras coarser than the inputs: drawn k times finer, area-averaged
            cams = torch.nonzero(factors == k).squeeze(1)
            bg = background[cams.to(background.device)] if isinstance(background, Tensor) and background.dim() == 2 \
                else background
            out = self._draw(c2w[cams], scale_K(Ks[cams], k, k), width * k, height * k, times[cams], bg)
            parts.append((cams, out if k == 1 else _area_average(out, k)))
        order = torch.argsort(torch.cat([cams for cams, _ in parts]).to(dev))
        out = RenderOutput(*[torch.cat([o[i] for _, o in parts])[order] for i in range(3)])
        colors = out.colors if self.captured is None else self.captured.show(out.colors, c2w, Ks, times)
        # refined colours may leave [0, 1] (REFINE_RANGE); an image does not
        return RenderOutput(colors.clamp(0, 1), out.alphas, self.normalization.lengths_to_world(out.depths))

    def supersampling(self, Ks: Tensor) -> Tensor:
        """(C,) int64: how many times finer each camera (Ks (C,3,3)) is drawn before its pixels are area-averaged,
        ⌈f_input / f⌉ where the shortest input focal length is SUPERSAMPLE_FROM times its own or more, else 1;
        1 without footprints (nothing says what the inputs' pixels were)."""
        f = (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt()
        if self.footprints is None:
            return torch.ones(len(Ks), dtype=torch.int64)
        if self._input_focal is None:
            focal = self.footprints[:, 1]
            fin = focal[torch.isfinite(focal)]
            self._input_focal = float(fin.min()) if len(fin) else math.inf
        ratio = (self._input_focal / f).cpu()
        k = torch.ceil(ratio - 1e-6).clamp(1, MAX_SUPERSAMPLE).to(torch.int64)
        return torch.where(ratio >= SUPERSAMPLE_FROM, k, torch.ones_like(k))

    def _draw(self, c2w: Tensor, Ks: Tensor, width: int, height: int, times: Tensor, background) -> RenderOutput:
        """The Gaussians' render of canonical cameras, novel ones softened (`soften` by 1 − their gate)."""
        out = render_at_times(self.gaussians, c2w, Ks, width, height, times, background, slicer=self._sliced,
                              weighting=self.weighting, fill=self.fill, footprints=self.footprints)
        if self.weighting is None:
            return out
        amount = torch.tensor([1.0 - self.weighting.gate(c2w[c, :3, 2], times[c]) for c in range(c2w.shape[0])],
                              dtype=out.colors.dtype, device=out.colors.device)
        return RenderOutput(soften(out.colors, amount), out.alphas, out.depths)

    def smoothed(self) -> Gaussians4D:
        """The Gaussians (canonical frame) as a viewer at any resolution should draw them: each widened by its
        input pixel's blur (covariance + EPS2D·side²·I: Mip-Splatting's 3D smoothing filter, at gsplat's eps2d), so
        that at a screen's resolution they do not show as dots. The PLY files, the point clouds and the viewer hold
        these: at the model's own resolution that is twice `render`'s blur, which widens each camera's Gaussians only
        where it zooms in by FILL_FROM or more (fill_footprints)."""
        if self.footprints is None:
            return self.gaussians
        g = self.gaussians
        eye = torch.eye(3, dtype=g.covars.dtype, device=g.covars.device)
        extra = EPS2D * self.footprints[:, 0].square()
        return replace(g, covars=g.covars + extra[:, None, None].to(g.covars) * eye)

    def slice(self, stamp_ns: int, measured: bool = False) -> Gaussians3D:
        """3D Gaussians at an absolute stamp, in metres (those with marginal < 0.05 dropped), `smoothed`.

        measured: the pixel Gaussians of a depth camera's measured pixels sit at the measured depth along their
        rays, for metric use (a point cloud). False: where the model put them, a median ~1 % beyond the measurement
        (MEASURED_OFFSET), where renders are best and as `render` draws them."""
        t = self._times([int(stamp_ns)])[0]
        g = self.smoothed()
        if measured and self.to_measured is not None:
            g = replace(g, means=g.means + self.to_measured)
        return g.slice(t).to_world(self.normalization)


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
        self._far_told = False  # a warning that depth images hold a renderer's background, once
        self._level_told = False  # a warning that the world frame's z is not up, once

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

    @torch.no_grad()
    def reconstruct(self, views: ViewSet, normalization: SceneNormalization | None = None) -> Reconstruction:
        """Views in world units with absolute stamps -> Reconstruction.

        Where `views.depths` holds measured depth (metres, 0 = none: an RGB-D camera), the model uses it; views
        without depth (an RGB-only rig, or some cameras of a mixed one) are reconstructed from colour.
        normalization defaults to SceneNormalization.from_cameras(views.camtoworlds); the time window is the span
        of the views' stamps.
        """
        if len(views) == 0:
            raise ValueError("reconstruct needs at least one view")
        norm = normalization or SceneNormalization.from_cameras(views.camtoworlds)
        window = TimeWindow.from_stamps(views.stamps_ns)
        far = None if views.depths is None else far_background(views.depths)
        if far is not None:  # before resizing, which would blend it into its neighbours
            views = replace(views, depths=torch.where(views.depths >= far, torch.zeros_like(views.depths),
                                                      views.depths))
            if not self._far_told:
                self._far_told = True
                warnings.warn(f"the depth images hold a renderer's background from {far:.3f} m on (a far clip plane "
                              "or sky, beyond a gap nothing lies in): read as no measurement", RuntimeWarning,
                              stacklevel=3)
        v = views.resized(*self.input_size(views.height, views.width)).to(self.device)
        c2w = norm.poses_to_canonical(v.camtoworlds.double())
        depths = None if v.depths is None else v.depths.float() * norm.scale
        if depths is not None and bool((depths > 0).any()):
            norm = level_by_depth(norm, v, c2w, depths)
            c2w = norm.poses_to_canonical(v.camtoworlds.double())
        tilt = math.degrees(math.acos(max(-1.0, min(1.0, float(norm.up[2])))))
        if tilt >= LEVEL_FROM_CAMERAS_DEG and not self._level_told:
            self._level_told = True
            warnings.warn(f"the world frame's z is {tilt:.1f}° from the up the cameras and depth show (REP-103 has "
                          "z up): the reconstruction is levelled; its outputs stay in the world frame, and floor_z "
                          "is a height along that up", RuntimeWarning, stacklevel=3)
        times = window.normalize(views.stamps_ns).to(self.device)
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
        footprints = torch.zeros(len(g), 2, dtype=g.means.dtype, device=g.means.device)
        footprints[:, 1] = math.inf  # not a pixel Gaussian: nothing to fill
        footprints[:len(v) * P] = pixel_footprints(pred.pixel_depths.float(), v.Ks.float()).to(footprints)
        return Reconstruction(g, norm, window, background, weighting, captured=captured, to_measured=to_measured,
                              footprints=footprints)


def level_by_depth(norm: SceneNormalization, v: ViewSet, c2w: Tensor, depths: Tensor) -> SceneNormalization:
    """`norm` turned so that the floor measured depth shows (floor.floor_normal) is canonical z = const, where it
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


def load_reconstructor(checkpoint: str | None, config: str | None, device: str | None, seed: int = 0,
                       floor_z: float | None = None, bf16: str = "auto") -> Reconstructor:
    """The shipped/given checkpoint, or (config) a randomly initialised model of that preset: what the commands'
    --checkpoint / --config / --device / --seed / --floor-z / --bf16 ("auto" | "on" | "off") ask for."""
    if config is not None:
        from .model import LRM4DConfig

        torch.manual_seed(seed)
        return Reconstructor(LRM4D(LRM4DConfig.preset(config)), device, floor_z=floor_z, bf16=BF16_CHOICES[bf16])
    return Reconstructor.from_checkpoint(checkpoint, device, floor_z=floor_z, bf16=BF16_CHOICES[bf16])
