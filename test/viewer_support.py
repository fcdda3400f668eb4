"""Shared by the viewer tests: a moving 4D scene with known colours, pixel classifiers, and the rule for
Chromium and viser: skipped where absent, unless LRM4D_REQUIRE_BROWSER=1 (CI) makes that a failure."""
import os

import numpy as np
import pytest
import torch

from lrm4d_ros.gaussians import Gaussians4D

RED, BLUE = (0.9, 0.05, 0.05), (0.05, 0.1, 0.9)
START_NS = 1_700_000_000_000_000_000  # the scene's window: one second from this stamp
STEPS = 6


def require(what: str, available: bool, how: str) -> None:
    """Skip (or fail, with LRM4D_REQUIRE_BROWSER=1) when `what` is not available."""
    if available:
        return
    if os.environ.get("LRM4D_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is missing but LRM4D_REQUIRE_BROWSER=1 requires it ({how})")
    pytest.skip(f"{what} is missing ({how}); LRM4D_REQUIRE_BROWSER=1 turns this skip into a failure")


def require_viser() -> None:
    import importlib.util

    require("viser", importlib.util.find_spec("viser") is not None, 'pip install -e "."')


def require_chromium() -> None:
    from lrm4d_ros.viewer.browser import find_chromium

    require("Chromium", find_chromium() is not None, "apt-get install chromium")


def moving_scene(per_blob: int = 300, seed: int = 0) -> Gaussians4D:
    """Metres and seconds over a 1 s window: a red blob moving along +x from x = -0.6 m to +0.6 m (STEPS clusters,
    each alive only around its own time) and a static blue blob at y = 0.4 m."""
    g = torch.Generator().manual_seed(seed)
    means, times, scale_t, colors = [], [], [], []
    for k in range(STEPS):
        center = torch.tensor([-0.6 + 1.2 * k / (STEPS - 1), 0.0, 0.0])
        means.append(center + 0.06 * torch.randn(per_blob, 3, generator=g))
        times.append(torch.full((per_blob,), k / (STEPS - 1)))
        # neighbours in time are exp(-0.5 (1/0.35)^2) = 0.017 < 0.05 apart: culled at each cluster's time
        scale_t.append(torch.full((per_blob,), 0.35 / (STEPS - 1)))
        colors.append(torch.tensor(RED).expand(per_blob, 3))
    means.append(torch.tensor([0.0, 0.4, 0.0]) + 0.06 * torch.randn(per_blob, 3, generator=g))
    times.append(torch.full((per_blob,), 0.5))
    scale_t.append(torch.full((per_blob,), 10.0))  # alive all through the window
    colors.append(torch.tensor(BLUE).expand(per_blob, 3))
    n = per_blob * (STEPS + 1)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4)
    return Gaussians4D.from_rotations(torch.cat(means), torch.cat(times), torch.full((n, 3), 0.03),
                                      torch.cat(scale_t), identity, identity, torch.full((n,), 0.9), torch.cat(colors))


def changed(img: np.ndarray, empty: np.ndarray, threshold: int = 40) -> np.ndarray:
    """(H,W) bool: pixels that differ from the empty scene by more than `threshold` in some channel."""
    return (np.abs(img.astype(int) - empty.astype(int)).max(-1) > threshold)


def reddish(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 150) & (r > g + 80) & (r > b + 80)


def bluish(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (b > 150) & (b > r + 80) & (b > g + 50)


def palette_distance(img: np.ndarray, palette, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """(H,W) distance (RGB in [0,1]) from each pixel to the nearest colour a·c + (1−a)·background, a in [0,1],
    c in `palette` (N,3): how far a pixel is from what splats of those colours blended over the page can give."""
    p = img.astype(np.float64)[..., None, :] / 255.0  # (H,W,1,3)
    bg = np.asarray(background, np.float64)
    d = np.asarray(palette, np.float64) - bg  # (N,3)
    a = np.clip(((p - bg) * d).sum(-1) / (d * d).sum(-1).clip(1e-12), 0.0, 1.0)  # (H,W,N)
    return np.linalg.norm(p - (bg + a[..., None] * d), axis=-1).min(-1)


def pinkish(img: np.ndarray, margin: int = 20) -> np.ndarray:
    """Red over white, however faint: red above both green and blue by `margin`."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > g + margin) & (r > b + margin)


def save(folder, **images: np.ndarray) -> None:
    """Keep screenshots beside the test's other files (pytest's tmp_path) for a look after a failure."""
    import cv2

    for name, img in images.items():
        cv2.imwrite(str(folder / f"{name}.png"), img[..., ::-1])
