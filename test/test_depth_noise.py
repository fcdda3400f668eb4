"""A depth camera's noise read from its own images, and denoising where it exceeds the training sensor's: the
estimate against the noise put in, planes flattened, depth edges and unmeasured pixels kept, quiet views untouched,
and the RGB-D novel views of a noisy camera against the same scene undenoised."""
import math

import pytest
import torch

from lrm4d_ros.cameras import fov_to_K
from lrm4d_ros.depth_noise import TRAINED_NOISE, denoise, noise_level

H = W = 64
K = fov_to_K(math.radians(60), W, H).double()


def _tilted_plane(views: int = 4) -> torch.Tensor:
    """Exact z-depth (views,H,W) metres of a plane 1.5-3 m away, tilted 40° about the camera's x axis: its inverse
    depth is affine in the pixel coordinates."""
    v = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    y = (v - K[1, 2]) / K[1, 1]
    a = math.radians(40)
    z = 2.0 / (math.cos(a) + y * math.sin(a))  # the plane n·X = 2, n = (0, sin a, cos a)
    return z[None].expand(views, H, W).float().clone()


def _noisy(depth: torch.Tensor, sigma_inv: float, seed: int = 0) -> torch.Tensor:
    """depth with Gaussian noise of sigma_inv (1/m) on its inverse, as a stereo camera's disparity noise."""
    g = torch.Generator().manual_seed(seed)
    return 1.0 / (1.0 / depth + sigma_inv * torch.randn(depth.shape, generator=g))


def test_noise_level_reads_the_noise_put_in_and_zero_on_exact_depth():
    exact = _tilted_plane()
    assert float(noise_level(exact).max()) < 1e-5
    for sigma in (0.002, 0.006, 0.02):
        est = noise_level(_noisy(exact, sigma))
        assert est.shape == (4,)
        assert est.numpy() == pytest.approx(sigma, rel=0.1)
    # too few pixels with measured neighbours: no estimate
    sparse = torch.zeros(1, H, W)
    sparse[0, ::4, ::4] = 2.0
    assert float(noise_level(sparse)[0]) == 0.0


def test_denoise_flattens_a_noisy_plane_and_keeps_edges_holes_and_quiet_views():
    exact = _tilted_plane(2)
    noisy = _noisy(exact, 0.01)
    # a box 0.3 m nearer than the plane over the left half of view 1, and a hole in its middle
    noisy[1, :, :32] -= 0.3
    exact[1, :, :32] -= 0.3
    noisy[1, 28:36, 28:36] = 0.0
    out = denoise(noisy)
    err_in = (1 / noisy[0] - 1 / exact[0]).std()
    inner = (slice(2, -2), slice(2, -2))
    err_out = (1 / out[0][inner] - 1 / exact[0][inner]).std()
    assert float(err_out) < float(err_in) / 3  # 25 neighbours: about 1/5 of the noise
    # the edge: every pixel stays on its own surface (within 5 noise widths of its side's inverse depth)
    assert bool(((1 / out[1][noisy[1] > 0] - 1 / exact[1][noisy[1] > 0]).abs() < 0.05).all())
    assert bool((out[1][28:36, 28:36] == 0).all())
    # a view as quiet as the training sensor's comes back as it was, bit for bit; all quiet: the same tensor
    quiet = _noisy(_tilted_plane(1), 0.5 * TRAINED_NOISE)
    mixed = torch.cat([quiet, noisy[:1]])
    assert torch.equal(denoise(mixed)[0], quiet[0])
    assert denoise(quiet) is quiet


def test_a_noisy_depth_camera_reconstructs_better_denoised():
    """One robot validation scene whose depth camera is 5x noisier than the training sensor: RGB-D novel views
    denoised against the same reconstruction without it (8 scenes: 25.36 -> 26.57 dB, ablation block 35)."""
    import lrm4d_ros.reconstructor as reconstructor
    from lrm4d_ros.data import eval_scenes as es
    from lrm4d_ros.data.depth_sensor import DepthSensor, with_depth
    from lrm4d_ros.data.generator import generate
    from lrm4d_ros.evaluate import evaluate_views

    seed, layout, rig = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED + 40, 1)[0]
    views = with_depth(generate(seed, es.robot_scene_config(layout, rig, supersample=1)), "sensor",
                       seed=seed, sensor=DepthSensor(sigma_0=0.006, sigma_quad=0.0095))
    assert float(noise_level(views.depths).min()) > TRAINED_NOISE
    rec = reconstructor.Reconstructor.from_checkpoint(device="cpu")

    def novel_view() -> float:
        return evaluate_views(rec, views, "rig")["groups"]["novel_view"]["model"]["psnr"]

    denoised = novel_view()
    saved = reconstructor.denoise
    reconstructor.denoise = lambda depths: depths
    try:
        raw = novel_view()
    finally:
        reconstructor.denoise = saved
    assert denoised > raw + 0.5, (denoised, raw)
