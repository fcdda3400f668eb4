"""ViewSet (world units, absolute stamps) -> Reconstruction: 4D Gaussians renderable at any camera and time.

The one entry point used by the CLI, the bag tools and the ROS node:

    rec = Reconstructor.from_checkpoint().reconstruct(views)
    out = rec.render(camtoworlds, Ks, width, height, stamps_ns)   # depth in metres
    g3 = rec.slice(stamp_ns)                                      # Gaussians3D in metres
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .cameras import SceneNormalization, TimeWindow, pixel_rays
from .gaussians import Gaussians3D, Gaussians4D, MIN_MARGINAL, RAW_CHANNELS
from .model import LRM4D, config_of, model_input
from .render import RenderOutput, render
from .views import ViewSet

# Stamps this far outside the window (fraction of its span, at least 10 ms) are still rendered: the time
# Gaussians extend smoothly a little past the window.
WINDOW_TOLERANCE = 0.1
MIN_TOLERANCE_NS = 10_000_000


def estimate_background(images: Tensor) -> Tensor:
    """Background colour (3,) of input views (V,H,W,3): the per-channel median of their one-pixel borders.

    Renders are composited over it, in training and at inference alike, so empty space needs no Gaussians. For
    object-centric views it is the backdrop colour; for cluttered views it only fills what no Gaussian covers.
    """
    border = torch.cat([images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1]], dim=1)
    return border.reshape(-1, 3).float().median(dim=0).values


def model_input_size(cfg, height: int, width: int) -> tuple[int, int]:
    """Model resolution for views of height×width: short side = cfg.image_size, aspect kept, both multiples of
    the patch size."""
    p, s = cfg.patch_size, cfg.image_size
    scale = s / min(height, width)
    return max(p, round(height * scale / p) * p), max(p, round(width * scale / p) * p)


@dataclass
class Prediction:
    """Model output in the canonical frame: Gaussians (pixel-aligned first, V·H·W of them, then free ones) and
    the pixel-aligned Gaussians' camera z-depth (V,H,W) in canonical units."""

    gaussians: Gaussians4D
    pixel_depths: Tensor


def view_spacing(times: Tensor) -> float:
    """Mean spacing of V normalised view times, (max − min)/(V − 1); 0 for a single view."""
    return float(times.max() - times.min()) / (len(times) - 1) if len(times) > 1 else 0.0


def predict(model: LRM4D, images: Tensor, Ks: Tensor, camtoworlds: Tensor, times: Tensor) -> Prediction:
    """Run the model on V canonical-frame views (one scene).

    images (V,H,W,3) in [0,1]; Ks (V,3,3); camtoworlds (V,4,4) camera-to-canonical; times (V,) normalised.
    """
    V, H, W, _ = images.shape
    origins, dirs = pixel_rays(Ks.double(), camtoworlds.double(), H, W)
    plucker = torch.cat([dirs, origins - (origins * dirs).sum(-1, keepdim=True) * dirs], dim=-1)
    x = model_input(images[None].float(), plucker[None].float(), times[None].float())
    pix, free = model(x)
    cfg = config_of(model)
    per_pixel = lambda x: x.float()[:, None, None].expand(V, H, W).reshape(-1)  # noqa: E731
    pixel_size = per_pixel(1.0 / (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt())  # canonical length of a pixel at unit distance
    pixel = Gaussians4D.from_raw(pix.reshape(-1, RAW_CHANNELS).float(), origins.reshape(-1, 3).float(),
                                 dirs.reshape(-1, 3).float(),
                                 view_times=per_pixel(times) if cfg.time_offset else None,
                                 pixel_size=pixel_size, scale_floor_px=cfg.scale_floor_px,
                                 pixel_colors=images.reshape(-1, 3) if cfg.color_skip else None,
                                 time_floor=cfg.time_floor * view_spacing(times))
    # Camera z of each pixel-aligned mean (after the [-1,1]³ clip), for depth read-outs and supervision.
    axis = camtoworlds[:, None, None, :3, 2].float()
    depth = ((pixel.means.view(V, H, W, 3) - origins.float()) * axis).sum(-1)
    g = pixel if free.shape[1] == 0 else Gaussians4D.cat([pixel, Gaussians4D.from_raw(free[0].float())])
    return Prediction(g, depth)


def render_at_times(gaussians: Gaussians4D, camtoworlds: Tensor, Ks: Tensor, width: int, height: int,
                    times: Tensor, background: Tensor | None = None,
                    min_marginal: float = MIN_MARGINAL) -> RenderOutput:
    """Render C cameras, camera c at normalised time times[c]; everything in the Gaussians' frame.

    camtoworlds (C,4,4), Ks (C,3,3), times (C,), background None|(3,)|(C,3) -> RenderOutput with (C,H,W,·).
    Cameras sharing a time share one slice.
    """
    C = camtoworlds.shape[0]
    if times.shape != (C,):
        raise ValueError(f"times must be ({C},), got {tuple(times.shape)}")
    if background is not None:
        background = torch.as_tensor(background, dtype=gaussians.means.dtype, device=gaussians.means.device)
        background = background.expand(C, 3)
    uniq, inverse = torch.unique(times, return_inverse=True)
    slices = gaussians.slice_many(list(uniq), min_marginal)
    parts: list[tuple[Tensor, RenderOutput]] = []
    for k, g in enumerate(slices):
        idx = torch.nonzero(inverse == k).squeeze(1)
        bg = None if background is None else background[idx]
        parts.append((idx, render(g.means, g.covars, g.opacities, g.colors, camtoworlds[idx], Ks[idx],
                                  width, height, bg)))
    order = torch.argsort(torch.cat([idx for idx, _ in parts]))
    return RenderOutput(*[torch.cat([out[i] for _, out in parts])[order] for i in range(3)])


@dataclass
class Reconstruction:
    """Canonical-frame 4D Gaussians of one window, the maps back to metres and absolute stamps, and the
    background colour (3,) estimated from the input views (`estimate_background`)."""

    gaussians: Gaussians4D
    normalization: SceneNormalization
    window: TimeWindow
    background: Tensor

    def _times(self, stamps_ns) -> Tensor:
        stamps = torch.as_tensor(stamps_ns, dtype=torch.int64).reshape(-1)
        span = self.window.end_ns - self.window.start_ns
        tol = max(int(WINDOW_TOLERANCE * span), MIN_TOLERANCE_NS)
        inside = self.window.contains(stamps, tolerance_ns=tol)
        if not bool(inside.all()):
            bad = stamps[~inside].tolist()
            raise ValueError(f"stamps {bad} ns lie outside the reconstructed window "
                             f"[{self.window.start_ns}, {self.window.end_ns}] ns (tolerance {tol} ns)")
        return self.window.normalize(stamps).to(self.gaussians.means.device)

    def render(self, camtoworlds: Tensor, Ks: Tensor, width: int, height: int, stamps_ns: Tensor,
               background: Tensor | None = None) -> RenderOutput:
        """Render C world cameras (camtoworlds (C,4,4) metres, Ks (C,3,3)) at absolute stamps (C,) int64 ns.

        Returns colors (C,H,W,3), alphas (C,H,W,1), depths (C,H,W,1) z-depth in metres (0 where empty).
        background: (3,) or (C,3); None -> the background estimated from the input views.
        """
        times = self._times(stamps_ns)
        dev = self.gaussians.means.device
        c2w = self.normalization.poses_to_canonical(torch.as_tensor(camtoworlds, dtype=torch.float64))
        out = render_at_times(self.gaussians, c2w.to(dev).float(), torch.as_tensor(Ks).to(dev).float(),
                              width, height, times, self.background if background is None else background)
        return RenderOutput(out.colors, out.alphas, self.normalization.lengths_to_world(out.depths))

    def slice(self, stamp_ns: int) -> Gaussians3D:
        """3D Gaussians at an absolute stamp, in metres (those with marginal < 0.05 dropped)."""
        t = self._times([int(stamp_ns)])[0]
        return self.gaussians.slice(t).to_world(self.normalization)


class Reconstructor:
    """Runs a trained LRM4D on ViewSets. device None -> CUDA if available, else CPU."""

    def __init__(self, model: LRM4D, device: str | torch.device | None = None):
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None,
                        device: str | torch.device | None = None) -> "Reconstructor":
        """Load weights from `path` (None -> the shipped checkpoint)."""
        from .checkpoint import load_model

        return cls(load_model(path), device)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(self.model.cfg, height, width)

    @torch.no_grad()
    def reconstruct(self, views: ViewSet, normalization: SceneNormalization | None = None) -> Reconstruction:
        """Views in world units with absolute stamps -> Reconstruction.

        normalization defaults to SceneNormalization.from_cameras(views.camtoworlds); the time window is the span
        of the views' stamps.
        """
        if len(views) == 0:
            raise ValueError("reconstruct needs at least one view")
        norm = normalization or SceneNormalization.from_cameras(views.camtoworlds)
        window = TimeWindow.from_stamps(views.stamps_ns)
        v = views.resized(*self.input_size(views.height, views.width)).to(self.device)
        c2w = norm.poses_to_canonical(v.camtoworlds.double())
        pred = predict(self.model, v.images, v.Ks, c2w, window.normalize(views.stamps_ns).to(self.device))
        return Reconstruction(pred.gaussians.detach(), norm, window, estimate_background(v.images))
