"""ViewSet: a batch of posed, timestamped images — the unit every layer passes around (docs/design.md §2–§3)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .cameras import scale_K


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(H, W) with the short side `short` pixels and the aspect ratio of height×width kept (each ≥ 1)."""
    s = short / min(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


IMAGE_SLACK = 1e-3  # how far outside [0, 1] an image's values may stray (resampling, float rounding)


@dataclass
class ViewSet:
    """V posed views, all at one resolution H×W.

    images: (V,H,W,3) float32 RGB in [0,1]; Ks: (V,3,3) float64 (ROS convention); camtoworlds: (V,4,4) float64
    optical frame, metres; stamps_ns: (V,) int64 absolute capture times; camera_ids: (V,) int64 indices into
    camera_names. Optional: depths (V,H,W) float32 z-depth in metres (0 = no measurement): a depth camera's
    measurement (the model's input where present) or a renderer's ground truth; alphas (V,H,W) float32 coverage.
    """

    images: Tensor
    Ks: Tensor
    camtoworlds: Tensor
    stamps_ns: Tensor
    camera_ids: Tensor
    camera_names: list[str] = field(default_factory=list)
    depths: Tensor | None = None
    alphas: Tensor | None = None

    def __post_init__(self):
        for name in ("images", "Ks", "camtoworlds", "stamps_ns", "camera_ids", "depths", "alphas"):
            x = getattr(self, name)
            if x is not None and not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__} (torch.from_numpy converts "
                                "an array)")
        V = self.images.shape[0]
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be (V,H,W,3), got {tuple(self.images.shape)}")
        expect = {"Ks": (V, 3, 3), "camtoworlds": (V, 4, 4), "stamps_ns": (V,), "camera_ids": (V,)}
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} must have shape {shape}, got {got}")
        for name in ("depths", "alphas"):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != tuple(self.images.shape[:3]):
                raise ValueError(f"{name} must have shape {tuple(self.images.shape[:3])}, got {tuple(x.shape)}")
        if self.stamps_ns.dtype != torch.int64:
            raise ValueError(f"stamps_ns must be a torch int64 tensor of nanoseconds, got {self.stamps_ns.dtype}")
        for name in ("Ks", "camtoworlds"):  # (a hand-typed integer K: the rescaling's floats cannot be cast to it)
            x = getattr(self, name)
            if not x.is_floating_point():
                setattr(self, name, x.double())
            if not bool(torch.isfinite(getattr(self, name)).all()):
                bad = torch.nonzero(~torch.isfinite(getattr(self, name)).flatten(1).all(1)).flatten().tolist()
                raise ValueError(f"{name} must be finite, got NaN or inf in view(s) {bad[:8]}")
        if self.depths is not None and not self.depths.is_floating_point():
            raise TypeError(f"depths must be floating point metres, got {self.depths.dtype} (16-bit millimetres, as "
                            "ROS's 16UC1: .float() / 1000)")
        # an 8-bit image (torch.from_numpy of a cv2 frame) or one in 0..255 reconstructed without a word into garbage
        if not self.images.is_floating_point():
            raise TypeError(f"images must be floating point RGB in [0, 1], got {self.images.dtype} (uint8 images: "
                            ".float() / 255)")
        if V:
            lo, hi = (float(x) for x in torch.aminmax(self.images))
            if math.isnan(lo) or math.isnan(hi):  # (aminmax propagates NaN; an inf fails the range below)
                raise ValueError("images must be RGB in [0, 1], got NaN values")
            if lo < -IMAGE_SLACK or hi > 1 + IMAGE_SLACK:
                raise ValueError(f"images must be RGB in [0, 1], got values in [{lo:g}, {hi:g}]"
                                 + (" (0..255: divide by 255)" if hi > 2 else ""))
            if self.camera_ids.is_floating_point() or int(self.camera_ids.min()) < 0 or \
                    (self.camera_names and int(self.camera_ids.max()) >= len(self.camera_names)):
                raise ValueError(f"camera_ids must be integer indices into camera_names ({len(self.camera_names)} "
                                 f"names), got {self.camera_ids.unique().tolist()}")
        if not self.camera_names and V:
            self.camera_names = [f"cam{i}" for i in range(int(self.camera_ids.max()) + 1)]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def height(self) -> int:
        return self.images.shape[1]

    @property
    def width(self) -> int:
        return self.images.shape[2]

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def times(self) -> Tensor:
        """Stamps as float64 seconds (lossy at ns resolution for absolute stamps; use stamps_ns for exactness)."""
        return self.stamps_ns.to(torch.float64) * 1e-9

    @property
    def camera_centers(self) -> Tensor:
        return self.camtoworlds[:, :3, 3]

    def select(self, index) -> "ViewSet":
        """Views at `index` (a slice, bool mask, or sequence/tensor of ints); camera_names kept whole."""
        if isinstance(index, (list, tuple)):
            index = torch.as_tensor(index, dtype=torch.long)

        def pick(x):
            return None if x is None else x[index]

        return replace(self, images=self.images[index], Ks=self.Ks[index], camtoworlds=self.camtoworlds[index],
                       stamps_ns=self.stamps_ns[index], camera_ids=self.camera_ids[index],
                       depths=pick(self.depths), alphas=pick(self.alphas))

    def resized(self, height: int, width: int) -> "ViewSet":
        """Views resampled to height×width (area for downsizing, bilinear for upsizing) with K rescaled.

        Depths use nearest-neighbour sampling so no depth is invented across an edge; enlarged, they are
        interpolated within a surface (`ENLARGE_SPREAD`).
        """
        if (height, width) == (self.height, self.width):
            return self
        sx, sy = width / self.width, height / self.height
        mode = _resample_mode(sx, sy)
        images = self.resample_images(self.images, height, width)
        alphas = None if self.alphas is None else _resample(self.alphas[:, None], height, width, mode)[:, 0]
        depths = None if self.depths is None else (
            _enlarge_depths(self.depths, height, width) if height >= self.height and width >= self.width else
            _resample(self.depths[:, None], height, width, "nearest")[:, 0])
        return replace(self, images=images.contiguous(), Ks=scale_K(self.Ks, sx, sy), depths=depths,
                       alphas=alphas)

    @staticmethod
    def resample_images(images: Tensor, height: int, width: int) -> Tensor:
        """Images (V,H,W,3) resampled to height×width as `resized` does (area down, bilinear up), in [0, 1]."""
        mode = _resample_mode(width / images.shape[2], height / images.shape[1])
        return _resample(images.permute(0, 3, 1, 2), height, width, mode).permute(0, 2, 3, 1).clamp(0, 1).contiguous()

    def to(self, device) -> "ViewSet":
        def mv(x):
            return None if x is None else x.to(device)

        return replace(self, images=self.images.to(device), Ks=self.Ks.to(device),
                       camtoworlds=self.camtoworlds.to(device), stamps_ns=self.stamps_ns.to(device),
                       camera_ids=self.camera_ids.to(device), depths=mv(self.depths), alphas=mv(self.alphas))

    @staticmethod
    def stack(images: list, Ks: list, camtoworlds: list, stamps_ns: list[int], camera_ids: list[int],
              camera_names: list[str], depths: list | None, size: tuple[int, int]) -> "ViewSet":
        """One ViewSet of views given one by one, in that order, whose images may differ in size: images (H,W,3)
        numpy uint8 (0-255) or float32 in [0,1]; Ks (3,3) and camtoworlds (4,4) numpy (float64); stamps_ns integer
        nanoseconds; depths: per view (H,W) float metres, or integer millimetres (ROS's 16UC1), or None (all zero),
        or None for no depths. Each size's views are stacked and resized to `size` (H, W) by `resized` (K
        rescaled)."""
        V = len(images)
        lists = {"Ks": Ks, "camtoworlds": camtoworlds, "stamps_ns": stamps_ns, "camera_ids": camera_ids}
        if depths is not None:
            lists["depths"] = depths
        for name, xs in lists.items():
            if len(xs) != V:
                raise ValueError(f"ViewSet.stack: {V} images but {len(xs)} {name}")
        for s in stamps_ns:
            if not isinstance(s, (int, np.integer)):
                raise TypeError(f"ViewSet.stack: stamps_ns must be integer nanoseconds, got {s!r} "
                                f"({type(s).__name__}; seconds: round(s * 1e9))")
        images = [np.ascontiguousarray(x) for x in images]  # (an image[..., ::-1] BGR -> RGB view)
        if depths is not None:
            depths = [None if d is None else _metres(np.ascontiguousarray(d)) for d in depths]
            for i, d in enumerate(depths):
                if d is not None and d.shape != images[i].shape[:2]:
                    raise ValueError(f"ViewSet.stack: view {i}'s depth is {d.shape}, its image "
                                     f"{images[i].shape[:2]}: depth must be registered to its colour image")
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(tuple(image.shape[:2]), []).append(i)
        parts, order = [], []
        for hw, members in groups.items():
            pixels = [torch.from_numpy(images[i]) for i in members]
            parts.append(ViewSet(
                images=torch.stack([p.float() / 255.0 if p.dtype == torch.uint8 else p for p in pixels]),
                Ks=torch.as_tensor(np.stack([Ks[i] for i in members]), dtype=torch.float64),
                camtoworlds=torch.as_tensor(np.stack([camtoworlds[i] for i in members]), dtype=torch.float64),
                stamps_ns=torch.tensor([stamps_ns[i] for i in members], dtype=torch.int64),
                camera_ids=torch.tensor([camera_ids[i] for i in members], dtype=torch.int64),
                camera_names=list(camera_names),
                depths=None if depths is None else torch.stack([torch.zeros(hw) if depths[i] is None
                                                                else torch.from_numpy(depths[i]) for i in members]),
            ).resized(*size))
            order += members
        if len(parts) == 1:
            return parts[0]
        return ViewSet.cat(parts).select(torch.argsort(torch.tensor(order)))

    @staticmethod
    def cat(views: list["ViewSet"]) -> "ViewSet":
        """Concatenate view sets that share resolution and camera_names."""
        if not views:
            raise ValueError("ViewSet.cat needs at least one ViewSet")
        names = views[0].camera_names
        if any(v.camera_names != names for v in views):
            raise ValueError("ViewSet.cat: camera_names differ")

        def opt(name):
            xs = [getattr(v, name) for v in views]
            if name == "depths" and any(x is not None for x in xs):  # 0 is "not measured": nothing is lost
                xs = [torch.zeros(v.images.shape[:3], dtype=torch.float32, device=v.device) if x is None else x
                      for x, v in zip(xs, views)]
            return None if any(x is None for x in xs) else torch.cat(xs)

        return ViewSet(images=torch.cat([v.images for v in views]), Ks=torch.cat([v.Ks for v in views]),
                       camtoworlds=torch.cat([v.camtoworlds for v in views]),
                       stamps_ns=torch.cat([v.stamps_ns for v in views]),
                       camera_ids=torch.cat([v.camera_ids for v in views]), camera_names=list(names),
                       depths=opt("depths"), alphas=opt("alphas"))


def _metres(depth: np.ndarray) -> np.ndarray:
    """A depth image as float32 metres: integer ones are millimetres (ROS's 16UC1, REP 118)."""
    if np.issubdtype(depth.dtype, np.integer):
        return depth.astype(np.float32) / 1000.0
    return depth.astype(np.float32, copy=False)


def _resample_mode(sx: float, sy: float) -> str:
    return "area" if sx <= 1 and sy <= 1 else "bilinear"


def _resample(x: Tensor, height: int, width: int, mode: str) -> Tensor:
    """(N,C,H,W) resampled to height×width."""
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x, size=(height, width), mode=mode, **kw)


# Enlarged depth is interpolated (bilinear in inverse depth, exact on a plane) where the four measurements around a
# pixel are one surface: their spread, as the interpolation weights them, within this share of their mean inverse
# depth; elsewhere (a depth edge, a pixel without measurement among them) the nearest measurement. Nearest copies
# alone step along every slanted surface.
ENLARGE_SPREAD = 0.02


def _enlarge_depths(depths: Tensor, height: int, width: int) -> Tensor:
    """depths (V,H,W) (0 = none) at height×width >= H×W: bilinear in inverse depth within a surface, nearest at its
    edges (ENLARGE_SPREAD)."""
    measured = (depths > 0) & torch.isfinite(depths)
    inv = torch.where(measured, 1.0 / torch.where(measured, depths, torch.ones_like(depths)), torch.zeros_like(depths))
    stack = torch.stack([measured.to(depths.dtype), inv, inv * inv], 1)
    weight, mean, square = _resample(stack, height, width, "bilinear").unbind(1)
    whole = weight > 1 - 1e-4  # all four measured
    mean = mean / weight.clamp_min(1e-6)
    spread = (square / weight.clamp_min(1e-6) - mean * mean).clamp_min(0).sqrt()
    smooth = whole & (spread <= ENLARGE_SPREAD * mean) & (mean > 0)
    nearest = _resample(depths[:, None], height, width, "nearest")[:, 0]
    return torch.where(smooth, 1.0 / torch.where(smooth, mean, torch.ones_like(mean)), nearest)


def frame_indices(views: ViewSet) -> Tensor:
    """(V,) int64: the rank of each view among its own camera's views ordered by stamp (its frame number)."""
    frames = torch.empty(len(views), dtype=torch.int64)
    cams, stamps = views.camera_ids.cpu(), views.stamps_ns.cpu()
    for cam in cams.unique():
        idx = torch.nonzero(cams == cam).squeeze(1)
        frames[idx[torch.argsort(stamps[idx], stable=True)]] = torch.arange(len(idx))
    return frames
