"""Reference predictions for evaluation (docs/design.md §5): what a target view looks like without the model.

- `nearest_input`: copy an input image — the same camera's input nearest in time if that camera has inputs,
  else the input nearest in time, ties (within `same_time_ns`) broken by the nearest camera centre.
- `background_only`: a constant image of the background colour estimated from the inputs' borders (the colour
  the model's renders are composited over), so a model has to beat "draw nothing".
- `depth_reference` (inputs with depth only): a non-learned RGB-D reference. The input pixels of the input
  frame nearest the target's time (input frame k = the k-th input of every input camera, by stamp, as the
  protocols match frames) are placed at their measured depth as pixel-footprint Gaussians (σ = `footprint`
  pixels at their depth, opacity 1, colour = the pixel) and rendered at the target with the package's
  `render()`, over the same background colour. Pixels without a measurement (depth 0) add nothing. The
  renderer's 0.3 px² screen-space blur dominates the footprint: 0.05–0.5 px scored within 0.2 dB of each
  other on a generated workcell scene, 0.3 px at the top.

`baselines_for(inputs)` is what `lrm4d evaluate` reports: nearest and background, plus depth_reference
whenever the inputs carry a depth measurement; where the targets carry one too, the depth reference's rendered
depth is scored beside the model's (`DEPTH_RENDERS`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .views import frame_indices
from .reconstructor import estimate_background
from .render import render
from .views import ViewSet

SAME_TIME_NS = 1_000_000  # stamps closer than 1 ms count as the same instant


def _resize(images: Tensor, height: int, width: int) -> Tensor:
    if images.shape[1:3] == (height, width):
        return images
    mode = "area" if images.shape[1] >= height and images.shape[2] >= width else "bilinear"
    kw = {"align_corners": False} if mode == "bilinear" else {}
    x = F.interpolate(images.permute(0, 3, 1, 2), size=(height, width), mode=mode, **kw)
    return x.permute(0, 2, 3, 1).clamp(0, 1)


def nearest_input_index(inputs: ViewSet, targets: ViewSet, same_time_ns: int = SAME_TIME_NS) -> Tensor:
    """(M,) index into `inputs` of the view copied for each target (see module docstring).

    Cameras are matched by name, so inputs and targets may come from different ViewSets of one rig.
    """
    if len(inputs) == 0:
        raise ValueError("nearest_input needs at least one input view")
    in_names = [inputs.camera_names[int(i)] for i in inputs.camera_ids]
    in_stamps = inputs.stamps_ns.cpu()
    in_centres = inputs.camera_centers.cpu().double()
    out = []
    for m in range(len(targets)):
        name = targets.camera_names[int(targets.camera_ids[m])]
        stamp = int(targets.stamps_ns[m])
        dt = (in_stamps - stamp).abs()
        same_cam = torch.tensor([n == name for n in in_names])
        if same_cam.any():
            dt_cam = torch.where(same_cam, dt, torch.full_like(dt, torch.iinfo(torch.int64).max))
            out.append(int(dt_cam.argmin()))
            continue
        nearest_t = dt <= dt.min() + same_time_ns
        dist = (in_centres - targets.camera_centers[m].cpu().double()).norm(dim=-1)
        dist = torch.where(nearest_t, dist, torch.full_like(dist, float("inf")))
        out.append(int(dist.argmin()))
    return torch.tensor(out, dtype=torch.long)


def nearest_input(inputs: ViewSet, targets: ViewSet) -> Tensor:
    """Predictions (M,H,W,3) at the targets' resolution: the nearest input's image, resized if needed."""
    idx = nearest_input_index(inputs, targets)
    return _resize(inputs.images[idx.to(inputs.images.device)], targets.height, targets.width)


def background_only(inputs: ViewSet, targets: ViewSet) -> Tensor:
    """Predictions (M,H,W,3): the inputs' estimated background colour everywhere."""
    bg = estimate_background(inputs.images).to(targets.images)
    return bg.expand(len(targets), targets.height, targets.width, 3).clone()


def depth_points(views: ViewSet, footprint: float = 0.3, far: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """World points (N,3) float32 of every measured pixel of `views` (depth > 0), their colours (N,3) and
    isotropic standard deviations (N,) = footprint · z / √(fx·fy) (`footprint` pixels at their depth).
    far: also place the pixels without a measurement, at this z-depth (metres)."""
    if views.depths is None:
        raise ValueError("depth_points needs views with depths")
    V, H, W = views.depths.shape
    dev = views.depths.device
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64, device=dev),
                          torch.arange(W, dtype=torch.float64, device=dev), indexing="ij")
    pix = torch.stack([u, v, torch.ones_like(u)], -1)  # (H,W,3)
    Ks, c2w = views.Ks.to(dev, torch.float64), views.camtoworlds.to(dev, torch.float64)
    rays = torch.einsum("vij,hwj->vhwi", torch.linalg.inv(Ks), pix)  # third coordinate 1: z-depth scales it
    z = views.depths.to(torch.float64)
    if far is not None:
        z = torch.where(z > 0, z, torch.full_like(z, far))
    cam = rays * z[..., None]
    world = torch.einsum("vij,vhwj->vhwi", c2w[:, :3, :3], cam) + c2w[:, None, None, :3, 3]
    sigma = footprint * z / (Ks[:, 0, 0] * Ks[:, 1, 1]).sqrt()[:, None, None]
    hit = z > 0
    return world[hit].float(), views.images.to(dev)[hit].float(), sigma[hit].float()


def nearest_input_frame(inputs: ViewSet, targets: ViewSet) -> tuple[Tensor, Tensor]:
    """(input frame (V,) of every input, the input frame (M,) nearest in time to each target): input frame k
    is the k-th input of every input camera; its time is the mean of their stamps."""
    frames = frame_indices(inputs)
    rel = (inputs.stamps_ns.cpu() - inputs.stamps_ns.min().cpu()).to(torch.float64)
    n = int(frames.max()) + 1
    times = torch.zeros(n, dtype=torch.float64).index_add_(0, frames, rel) / torch.bincount(frames, minlength=n)
    t = (targets.stamps_ns.cpu() - inputs.stamps_ns.min().cpu()).to(torch.float64)
    return frames, (t[:, None] - times[None]).abs().argmin(1)


def _reference_render(inputs: ViewSet, targets: ViewSet, footprint: float = 0.3,
                      far_fill: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The depth reference's render at the targets: colours (M,H,W,3) over the background, alphas (M,H,W) and
    z-depths (M,H,W) (metres, 0 where nothing was splatted); targets sharing a nearest input frame rendered
    together."""
    if inputs.depths is None:
        raise ValueError("depth_reference needs inputs with depths (a bag with /<cam>/depth topics)")
    bg = estimate_background(inputs.images).to(inputs.images.device)
    frames, nearest = nearest_input_frame(inputs, targets)
    out = bg.expand(len(targets), targets.height, targets.width, 3).clone()
    alphas = out.new_zeros(len(targets), targets.height, targets.width)
    depths = torch.zeros_like(alphas)
    for k in nearest.unique().tolist():
        frame = inputs.select(frames == k)
        far = None if far_fill is None or not bool((frame.depths > 0).any()) else far_fill * float(frame.depths.max())
        means, colors, sigma = depth_points(frame, footprint, far)
        tgt = (nearest == k).nonzero()[:, 0]
        if len(means) == 0:
            continue
        covars = torch.diag_embed((sigma ** 2)[:, None].expand(-1, 3))
        r = render(means, covars, torch.ones_like(sigma), colors, targets.camtoworlds[tgt].to(means.device),
                   targets.Ks[tgt].to(means.device), targets.width, targets.height, bg.to(means))
        at = tgt.to(out.device)
        out[at] = r.colors.clamp(0, 1).to(out)
        alphas[at], depths[at] = r.alphas[..., 0].to(out), r.depths[..., 0].to(out)
    return out, alphas, depths


def depth_reference(inputs: ViewSet, targets: ViewSet, footprint: float = 0.3,
                    far_fill: float | None = None) -> Tensor:
    """Predictions (M,H,W,3) of the non-learned RGB-D reference (module docstring) at the targets' cameras
    and resolution.

    far_fill: a variant that also splats the pixels without a measurement (sky, out of range, dropouts) at
    far_fill × the frame's largest measured depth, a backdrop behind everything measured.
    """
    return _reference_render(inputs, targets, footprint, far_fill)[0]


def depth_reference_depths(inputs: ViewSet, targets: ViewSet) -> tuple[Tensor, Tensor]:
    """The depth reference's rendered z-depths (M,H,W) in metres (0 where nothing) and alphas (M,H,W) at the
    targets: the inputs' measured depth carried to the target camera, what rendered depth is scored against."""
    _, alphas, depths = _reference_render(inputs, targets)
    return depths, alphas


def has_depth(views: ViewSet) -> bool:
    """True when `views` carry at least one depth measurement."""
    return views.depths is not None and bool((views.depths > 0).any())


BASELINES = {"nearest": nearest_input, "background": background_only}
DEPTH_BASELINES = {"depth_reference": depth_reference}
# the baselines that also render depth: {name: fn(inputs, targets) -> (z-depths (M,H,W) metres, alphas (M,H,W))}
DEPTH_RENDERS = {"depth_reference": depth_reference_depths}


def baselines_for(inputs: ViewSet) -> dict:
    """{name: fn(inputs, targets) -> (M,H,W,3)}: BASELINES, plus DEPTH_BASELINES when the inputs have depth."""
    return {**BASELINES, **(DEPTH_BASELINES if has_depth(inputs) else {})}
