"""Reconstruction: a window's canonical 4D Gaussians and what renders are composited over, drawn at any camera and
absolute stamp (`Reconstruction.render`, `slice`), and the render-time steps it takes: input views faded for targets
that look as an input camera looks (ViewWeighting), novel views softened (`soften`), splats widened for finer
cameras (`fill_footprints`) and coarser cameras supersampled, the composite over the environment (`composite`).
reconstructor.py makes one from a ViewSet.
"""
from __future__ import annotations

import math
import numbers
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import SceneNormalization, TimeWindow, pixel_rays, scale_K
from .captured import CapturedFrames
from .environment import Environment
from .gaussians import Gaussians3D, Gaussians4D, MIN_MARGINAL
from .pixel_gaussians import SIGMA_T0
from .render import RenderOutput, render
from .render.projection import ALPHA_THRESHOLD, EPS2D

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
# A camera whose focal length exceeds the input's a pixel Gaussian came from by more than this factor widens it
# towards its input pixel (fill_footprints): beyond it the splats, 0.3 input px wide, stop overlapping. 8 rig
# validation scenes generated at 384², inputs at the model's 128², targets scored against their own ground truth
# at 128 / 256 / 384, RGB-D novel_view (self): none 27.42 / 26.14 / 24.47 (45.39 / 29.01 / 24.89); from 1.0
# 27.34 / 26.73 / 26.08 (45.39 / 34.62 / 31.78); 1.5 27.41 / 27.00 / 26.23 (45.39 / 36.50 / 32.24); 2.0 27.42 /
# 26.19 / 26.32 (45.39 / 29.01 / 32.50); RGB at 1.5: 20.70 / 20.38 / 19.97 against none's 20.70 / 20.32 / 19.64
# (ablation block 32). At 128 the held-out cameras' focal lengths differ from the inputs' by up to 2x.
# The pixels with a depth (a depth camera's measured ones; not those the model guessed) count how near the camera
# stands as well: a held-out camera closer to a table than the inputs saw its top as speckle with the floor showing
# through (validation scene 1002108's four such targets 17.6 -> 18.7 dB). 16 / 32 rig validation scenes, RGB-D
# novel_view / novel_view_time 27.60 / 26.61 -> 27.63 / 26.65 and 26.41 / 25.59 -> 26.44 / 25.63 (from 1.0 27.62 /
# 26.74, self -0.08; 1.25 27.64 / 26.68; 2.0 27.62 / 26.63); RGB, the object-centric scenes and self unchanged, 15
# MuJoCo validation bags 23.639 -> 23.636. Every pixel counting its distance had lost RGB rigs 0.09 dB: a colour
# camera's guessed pixels lie on a far panorama, large, and grow larger still (block 48).
FILL_FROM = 1.5
# A camera whose focal length is shorter than every input's by this factor or more sees several pixel Gaussians
# per pixel, each narrower than the pixel: point-sampled, the nearest one a pixel meets covers it and the render
# aliases. It is drawn ⌈f_input / f⌉ times finer (at most MAX_SUPERSAMPLE) and area-averaged to its size. 8 rig
# validation scenes generated at 384², inputs at the model's 128², targets at 64 / 96 / 128 scored against their
# own ground truth, RGB-D novel_view (self): without 24.59 / 26.44 / 27.41 (27.43 / 33.38 / 45.39); with, from the
# shortest input focal length, 28.85 / 27.77 / 27.41 (48.28 / 35.31 / 45.39); from the inputs' median one 29.03 /
# 27.82 / 27.41 (48.85 / 35.58 / 45.20: at 128 the wide cameras' own views lose); RGB at 64 20.82 -> 21.41.
SUPERSAMPLE_FROM, MAX_SUPERSAMPLE = 1.25, 4
# A camera no input looks like (ViewWeighting gate 0) meets the pixel Gaussians of several views, each off by a
# fraction of a pixel, and point-sampled at its pixel centres it aliases where a camera's pixel averages: it is drawn
# at least this many times as fine as the inputs (⌈NOVEL_FINENESS · f_input / f⌉), area-averaged, and then
# softened at its own pixels (`soften`); the floor's texture judges its own pixel's footprint. 16 rig validation
# scenes, novel_view / novel_view_time: RGB-D 27.66 / 26.67 -> 27.79 / 26.68, RGB 20.99 / 21.04 -> 21.00 / 21.07;
# 15 MuJoCo validation bags RGB-D 23.78 / 22.33 -> 23.82 / 22.31, RGB 19.68 / 19.62 -> 19.69 / 19.59; 8
# object-centric validation scenes alternating / novel-camera 19.19 / 19.49 -> 19.18 / 19.49. Softened at the finer
# render's pixels and the floor's period judged there (before the floor's change of block 51, from 27.63 RGB-D):
# RGB-D 27.76, RGB 20.98, novel-camera 19.37; every camera twice as fine: self -1.26 (ablation blocks 50, 51). A
# 128² camera costs the pixels of a 256² one.
NOVEL_FINENESS = 2
# The pixels whose depth the model guessed (`Reconstruction.guessed`: a depth camera's that measured nothing, sky,
# beyond its range, dropouts, which it leaves at 18 canonical units, ~25 m in a generated robot scene; a colour
# camera's that nothing located and it left far, or the floor's bound held) count in no rendered depth, and a pixel
# they cover this share of or more has depth 0, as a sensor gives none. Counted in, a depth camera's far guess was a
# shell wherever an input camera's view was re-rendered and was averaged into its neighbours' depth, and an RGB rig's
# depth was mostly guesses. 8 rig validation scenes and 5 MuJoCo validation bags, rendered depth against their
# measured depth, AbsRel / share of measured pixels with a depth: RGB-D time_interp 0.095 / 99.9 % counted in, 0.0097
# / 99.0 % left out (0.0093 / 97.6 % at a share of 0.25, 0.0100 / 99.9 % never 0), self 0.019 -> 0.006, novel_view
# 0.014 -> 0.008 (block 40); RGB novel_view 1.05 / 68 % -> 0.022 / 42 %, time_interp 1.12 / 100 % -> 0.009 / 40 %
# (block 41).
GUESSED_SHARE = 0.5


def window_tolerance_ns(window: TimeWindow) -> int:
    """How far past a window of input stamps a reconstruction still renders: WINDOW_TOLERANCE of its span, at
    least MIN_TOLERANCE_NS."""
    return max(int(WINDOW_TOLERANCE * (window.end_ns - window.start_ns)), MIN_TOLERANCE_NS)


def covered(window: TimeWindow, stamps_ns) -> Tensor:
    """(C,) bool: which absolute stamps (int64 ns) a reconstruction of inputs spanning `window` renders: the window
    widened by `window_tolerance_ns`."""
    stamps = torch.as_tensor(stamps_ns, dtype=torch.int64).reshape(-1)
    return window.contains(stamps, tolerance_ns=window_tolerance_ns(window))


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


def composite(out: RenderOutput, background: Tensor | Environment | None, camtoworlds: Tensor, Ks: Tensor,
              width: int, height: int, fill: bool = False, plan: dict | None = None, finer: int = 1) -> RenderOutput:
    """Colours of a render made over black, composited over `background`: an Environment (looked up along each
    pixel's ray), a colour (3,) or (C,3), or None (black).

    fill: where the Gaussians cover a pixel almost fully (alpha from FILL_ALPHA[0] up, all of it from
    FILL_ALPHA[1]), the rest of it takes their own mean colour (colour / alpha) instead of the background. Pixel
    Gaussians cover a surface seen from near their view with alpha 0.87-0.95, not 1 (an in-between moment falls
    between two frames' temporal marginals), and the environment, a blur of far content, would show through a
    solid surface. plan: see `render_at_times` (it keeps the environment's lookups). finer: the render is drawn this
    many times finer than the cameras' own pixels (to be area-averaged): the floor's texture judges a pixel's
    footprint (`Floor.lookup`'s spread) at their own pixels."""
    if background is None:
        return out
    if plan is not None and "background" in plan:
        bg = plan["background"]
    elif isinstance(background, Environment):
        origins, dirs = pixel_rays(Ks.double(), camtoworlds.double(), height, width)
        # only pixels the Gaussians leave uncovered look it up (the floor's and walls' views are per-ray work)
        need = out.alphas[..., 0] < (FILL_ALPHA[1] if fill else 1.0)
        bg = out.colors.new_zeros(out.colors.shape)
        spread = (finer / (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt()).to(dirs)[:, None, None].expand(dirs.shape[:3])
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
    return out._replace(colors=out.colors + (1.0 - out.alphas) * bg)


def pixel_footprints(depths: Tensor, Ks: Tensor) -> Tensor:
    """(V·H·W, 2) per pixel Gaussian: [the side of its input pixel at its depth, in the depths' units; that input's
    focal length, px]. depths (V,H,W) z-depths; Ks (V,3,3) (focal: geometric mean of fx and fy)."""
    f = (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt().to(depths)
    return torch.stack([depths / f[:, None, None], f[:, None, None].expand_as(depths)], dim=-1).reshape(-1, 2)


def fill_footprints(covars: Tensor, footprints: Tensor, K: Tensor, camtoworld: Tensor | None = None,
                    means: Tensor | None = None, near: Tensor | None = None) -> Tensor:
    """covars (N,3,3) for a camera (K (3,3)) that sees the Gaussians' input pixels (footprints (N,2),
    `pixel_footprints`) r times larger than they were, r = f / f_input (its focal length against the input's):
    isotropic variance EPS2D·side²·(1 − (FILL_FROM / r)²) added where r > FILL_FROM, side the input pixel at its
    depth: EPS2D·(r² − FILL_FROM²) px². With the rasterizer's own EPS2D px² a splat's blur is then EPS2D·(r² − 1.25)
    px², against the EPS2D·r² its input pixel's blur scales to (0.86 of it at 3x). Pixel Gaussians are sized for
    their input's resolution: a larger image otherwise shows them as dots with gaps between them (a 640x480 camera's
    views, reconstructed at 128x171, rendered back at 640x480). near (N,) bool: the Gaussians whose r also counts
    how near the camera (camtoworld (4,4), the means' (N,3) frame) stands, r = side·f / z with z their depth
    there (the larger of the two): the pixels with a depth (not guessed: a depth camera's measured ones, an RGB
    rig's located floor and outlines), whose splats a camera standing nearer than their input had shown with gaps,
    what lies behind them showing through. Below FILL_FROM the Gaussians are drawn as they are: returns covars
    itself where none is widened."""
    f = (K[0, 0] * K[1, 1]).sqrt()
    zoom = f / footprints[:, 1]
    if near is not None and camtoworld is not None and means is not None and bool(near.any()):
        z = (means - camtoworld[:3, 3].to(means)) @ camtoworld[:3, 2].to(means)
        seen = footprints[:, 0] * f / z.clamp_min(1e-9)
        zoom = torch.where(near & (z > 0), torch.maximum(zoom, seen), zoom)
    finer = (1 - (FILL_FROM / zoom).square()).clamp_min(0)
    if not bool((finer > 0).any()):
        return covars
    extra = EPS2D * footprints[:, 0].square() * finer
    filled = covars.clone()
    filled.diagonal(dim1=-2, dim2=-1).add_(extra[:, None].to(covars))  # one copy, not an (N,3,3) product and a sum
    return filled


def render_at_times(gaussians: Gaussians4D, camtoworlds: Tensor, Ks: Tensor, width: int, height: int,
                    times: Tensor, background: Tensor | Environment | None = None,
                    min_marginal: float = MIN_MARGINAL,
                    slicer: Callable[[list[Tensor]], list[tuple[Tensor | None, Gaussians3D]]] | None = None,
                    weighting: ViewWeighting | None = None, fill: bool = False, plan: dict | None = None,
                    footprints: Tensor | None = None, near: Tensor | None = None,
                    depth_weights: Tensor | None = None, depth_mode: str = "expected", finer: int = 1) -> RenderOutput:
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
    near: (N,) bool, the Gaussians a camera standing nearer than their input also widens (`fill_footprints`).
    depth_weights: (N,) how much each Gaussian counts in the depth, depth_mode: "expected" or "median" (`render`'s).
    finer: the cameras are drawn this many times finer than their own pixels, to be area-averaged (`composite`).
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
        if footprints is not None:  # cameras needing nothing, or the same fill, stay in one call
            fp = footprints if keep is None else footprints.index_select(0, keep)
            nr = None if near is None else near if keep is None else near.index_select(0, keep)
            by_focal = nr is None or not bool(nr.any())  # the fill depends on the focal length alone: once per one
            filled: dict = {}
            calls = {}
            for k in range(len(idx)):
                c = idx[k:k + 1]
                key = float(Ks[c[0], 0, 0] * Ks[c[0], 1, 1]) if by_focal else k
                if key not in filled:
                    filled[key] = fill_footprints(g.covars, fp, Ks[c[0]], camtoworlds[c[0]], g.means, nr)
                cov = filled[key]
                calls[id(cov)] = (cov, c if id(cov) not in calls else torch.cat([calls[id(cov)][1], c]))
        d = None if depth_weights is None else depth_weights if keep is None else depth_weights.index_select(0, keep)
        for cov, cams in calls.values():
            parts.append((cams, render(g.means, cov, g.opacities, g.colors, camtoworlds[cams], Ks[cams], width,
                                       height, depth_weights=d, depth_mode=depth_mode)))
    out = _gathered(parts)
    return composite(out, background, camtoworlds, Ks, width, height, fill, plan, finer)


def _gathered(parts: list[tuple[Tensor, RenderOutput]]) -> RenderOutput:
    """One RenderOutput of the cameras' renders (cameras (k,), their render) in camera order."""
    order = torch.argsort(torch.cat([cams for cams, _ in parts]).to(parts[0][1].colors.device))
    return RenderOutput(*[None if parts[0][1][i] is None else torch.cat([o[i] for _, o in parts])[order]
                          for i in range(len(RenderOutput._fields))])


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
    """A render (C,kH,kW,·) averaged over k×k blocks to (C,H,W,·): colours, alphas and depth_alphas by their mean,
    depths by their median weighted by the depth's coverage (as a pixel's median depth: the surface that covers
    most of the block, not a mean of a foreground and a background; 0 where nothing covers it)."""
    def pool(x: Tensor) -> Tensor:
        return F.avg_pool2d(x.permute(0, 3, 1, 2), k).permute(0, 2, 3, 1)

    def blocks(x: Tensor) -> Tensor:  # (C,kH,kW,1) -> (C,H,W,k²)
        C, kH, kW, _ = x.shape
        return x[..., 0].reshape(C, kH // k, k, kW // k, k).permute(0, 1, 3, 2, 4).reshape(C, kH // k, kW // k, -1)

    covers = out.alphas if out.depth_alphas is None else out.depth_alphas
    z, order = torch.sort(blocks(out.depths), -1)
    cum = torch.cumsum(blocks(covers).gather(-1, order), -1)
    half = (cum < 0.5 * cum[..., -1:]).sum(-1, keepdim=True).clamp(max=k * k - 1)
    depths = torch.where(cum[..., -1:] > 0, z.gather(-1, half), torch.zeros_like(half, dtype=z.dtype))
    return RenderOutput(pool(out.colors), pool(out.alphas), depths, None if out.depth_alphas is None else pool(covers))


def novel_view_gaussians(gaussians: Gaussians4D) -> Gaussians4D:
    """The Gaussians as a reconstruction shows them to a target no input camera looks like: σ_t × NOVEL_SIGMA_T."""
    return replace(gaussians, scale_t=gaussians.scale_t * NOVEL_SIGMA_T)


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
    # (pixel_footprints; None: unknown; inf focal: not a pixel Gaussian): a much finer render widens them
    # (fill_footprints)
    footprints: Tensor | None = None
    # what its input views held unlike the model's training data, and what was done (Reconstructor.findings' texts)
    findings: tuple[str, ...] = ()
    # (N,) bool: the pixel Gaussians whose depth is the model's guess (Prediction.guessed): a depth camera's pixels
    # that measured nothing (sky, beyond its range, dropouts), and a colour camera's that nothing located (the floor
    # found by matching, the objects' silhouettes) and the model left far. Rendered depth leaves them out, and is 0
    # where they make GUESSED_SHARE of a pixel's coverage or more. None: unknown (every Gaussian counts).
    guessed: Tensor | None = None
    # The last SLICE_CACHE slices by normalised time: a node's virtual cameras and /render_view requests, and a
    # viewer's slider, ask for the same instant again and again (slicing is a quarter of a 128² CPU render).
    _slices: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False, compare=False)
    _input_focal: float | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        # pickle and copy.deepcopy (a process pool of renderers, a kept copy) carry the data, not the lock or the
        # slices cached for this process's requests
        state = dict(self.__dict__)
        state.update(_lock=None, _slices=OrderedDict())
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

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
        return window_tolerance_ns(self.window)

    def covers(self, stamps_ns) -> Tensor:
        """(C,) bool: which absolute stamps (int64 ns) `render` takes (`covered`)."""
        return covered(self.window, stamps_ns)

    def _times(self, stamps_ns) -> Tensor:
        stamps = torch.as_tensor(stamps_ns, dtype=torch.int64).reshape(-1)
        inside = self.covers(stamps)
        if not bool(inside.all()):
            bad = stamps[~inside].tolist()
            raise ValueError(f"stamps {bad} ns lie outside the reconstructed window "
                             f"[{self.window.start_ns}, {self.window.end_ns}] ns (tolerance {self._tolerance_ns()} ns)")
        return self.window.normalize(stamps).to(self.gaussians.means.device)

    def render(self, camtoworlds: Tensor, Ks: Tensor, width: int, height: int, stamps_ns: Tensor,
               background: Tensor | Environment | None = None, max_pixels: int | None = None) -> RenderOutput:
        """Render C world cameras (camtoworlds (C,4,4) metres, Ks (C,3,3)) at absolute stamps (C,) int64 ns.

        Returns colors (C,H,W,3) in [0,1], alphas (C,H,W,1), depths (C,H,W,1) z-depth in metres of the surface where
        the pixel's coverage reaches one half (`render(depth_mode="median")`; 0 where empty, and where the model
        guessed the depth of what the pixel shows: `guessed`).
        background: (3,), (C,3) or an Environment; None -> the reconstruction's own (`background`). A camera that
        looks unlike every input gets the Gaussians' colours softened (`soften` by 1 − its gate);
        an input camera's captured frames are shown as they are (`CapturedFrames`). max_pixels: a camera coarser
        than the inputs is drawn finer (`supersampling`) only as far as it stays within this many pixels (what a
        server bounds a request's cost by).
        """
        camtoworlds, Ks = torch.as_tensor(camtoworlds), torch.as_tensor(Ks)
        C = camtoworlds.shape[0] if camtoworlds.dim() == 3 else -1
        stamps = torch.as_tensor(stamps_ns).reshape(-1)
        if C < 1 or tuple(camtoworlds.shape) != (C, 4, 4) or tuple(Ks.shape) != (C, 3, 3) or len(stamps) != C:
            raise ValueError(f"render takes C >= 1 cameras: camtoworlds (C,4,4), Ks (C,3,3) and stamps_ns (C,), got "
                             f"{tuple(camtoworlds.shape)}, {tuple(Ks.shape)} and {tuple(stamps.shape)}")
        if not all(isinstance(n, numbers.Integral) and n >= 1 for n in (width, height)):
            raise ValueError(f"render takes integer width and height >= 1 (pixels), got {width!r} x {height!r}")
        if isinstance(background, Tensor) and tuple(background.shape) not in ((3,), (C, 3)):
            raise ValueError(f"background must be (3,) or (C,3) = (C={C}, 3) RGB, or an Environment, got "
                             f"{tuple(background.shape)}")
        times = self._times(stamps)
        dev = self.gaussians.means.device
        c2w = self.normalization.poses_to_canonical(camtoworlds.to(torch.float64))
        c2w, Ks = c2w.to(dev).float(), torch.as_tensor(Ks).to(dev).float()
        background = self.background if background is None else background
        gates = None if self.weighting is None else torch.tensor(
            [self.weighting.gate(c2w[c, :3, 2], times[c]) for c in range(C)], dtype=torch.float64)
        factors = self.supersampling(Ks, novel=None if gates is None else gates == 0)
        if max_pixels is not None:
            factors = factors.clamp(max=max(1, math.isqrt(max(0, int(max_pixels)) // max(1, width * height))))
        parts = []
        for k in factors.unique().tolist():  # drawn k times finer, area-averaged
            cams = torch.nonzero(factors == k).squeeze(1)
            bg = background[cams.to(background.device)] if isinstance(background, Tensor) and background.dim() == 2 \
                else background
            out = self._draw(c2w[cams], scale_K(Ks[cams], k, k), width * k, height * k, times[cams], bg, finer=k)
            out = out if k == 1 else _area_average(out, k)
            if gates is not None:  # novel cameras softened at their own pixels
                out = out._replace(colors=soften(out.colors, (1.0 - gates[cams]).to(out.colors)))
            parts.append((cams, out))
        out = _gathered(parts)
        colors = out.colors if self.captured is None else self.captured.show(out.colors, c2w, Ks, times)
        depths = out.depths
        if out.depth_alphas is not None:  # where the model guessed most of what the pixel shows, it has no depth
            guessed = out.alphas - out.depth_alphas >= GUESSED_SHARE * out.alphas
            depths = torch.where(guessed, torch.zeros_like(depths), depths)
        # refined colours may leave [0, 1] (REFINE_RANGE); an image does not
        return RenderOutput(colors.clamp(0, 1), out.alphas, self.normalization.lengths_to_world(depths))

    def supersampling(self, Ks: Tensor, novel: Tensor | None = None) -> Tensor:
        """(C,) int64: how many times finer each camera (Ks (C,3,3)) is drawn before its pixels are area-averaged,
        ⌈f_input / f⌉ where the shortest input focal length is SUPERSAMPLE_FROM times its own or more, else 1; a
        camera no input looks like (novel (C,) bool: gate 0, `ViewWeighting.gate`) at least ⌈NOVEL_FINENESS ·
        f_input / f⌉. 1 without footprints (nothing says what the inputs' pixels were)."""
        f = (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt()
        if self.footprints is None:
            return torch.ones(len(Ks), dtype=torch.int64)
        if self._input_focal is None:
            focal = self.footprints[:, 1]
            fin = focal[torch.isfinite(focal)]
            self._input_focal = float(fin.min()) if len(fin) else math.inf
        if not math.isfinite(self._input_focal):
            return torch.ones(len(Ks), dtype=torch.int64)
        ratio = (self._input_focal / f).cpu()
        k = torch.ceil(ratio - 1e-6).clamp(1, MAX_SUPERSAMPLE).to(torch.int64)
        k = torch.where(ratio >= SUPERSAMPLE_FROM, k, torch.ones_like(k))
        if novel is not None:
            fine = torch.ceil(NOVEL_FINENESS * ratio - 1e-6).clamp(1, MAX_SUPERSAMPLE).to(torch.int64)
            k = torch.where(novel.cpu(), torch.maximum(k, fine), k)
        return k

    def _draw(self, c2w: Tensor, Ks: Tensor, width: int, height: int, times: Tensor, background,
              finer: int = 1) -> RenderOutput:
        """The Gaussians' render of canonical cameras (drawn `finer` times finer than their own pixels)."""
        known = None if self.guessed is None else ~self.guessed  # the Gaussians with a depth
        weights = None if known is None or bool(known.all()) else known.to(self.gaussians.means)
        return render_at_times(self.gaussians, c2w, Ks, width, height, times, background, slicer=self._sliced,
                               weighting=self.weighting, fill=self.fill, footprints=self.footprints, near=known,
                               depth_weights=weights, depth_mode="median", finer=finer)

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

    def slice(self, stamp_ns: int, measured: bool = False, guessed: bool = True) -> Gaussians3D:
        """3D Gaussians at an absolute stamp, in metres (those with marginal < 0.05 dropped), `smoothed`.

        measured: the pixel Gaussians of a depth camera's measured pixels sit at the measured depth along their
        rays, for metric use (a point cloud). False: where the model put them, a median ~1 % beyond the measurement
        (MEASURED_OFFSET), where renders are best and as `render` draws them. guessed: False leaves out the
        Gaussians whose depth the model guessed (`guessed`: a depth camera's unmeasured pixels, far out; a colour
        camera's that nothing located), as a point cloud for metric use should; renders (and a 3DGS file, where
        they are the backdrop) keep them."""
        t = self._times([int(stamp_ns)])[0]
        g = self.smoothed()
        if measured and self.to_measured is not None:
            g = replace(g, means=g.means + self.to_measured)
        keep, g3 = g.slice_kept(t)
        if not guessed and self.guessed is not None:
            g3 = g3.select(~(self.guessed if keep is None else self.guessed.index_select(0, keep)))
        return g3.to_world(self.normalization)
