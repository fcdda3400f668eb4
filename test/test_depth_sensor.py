"""The depth-camera model against closed forms: noise σ(z), grazing-angle and edge dropouts, range, seeding."""
import math

import pytest
import torch

from lrm4d_ros.cameras import fov_to_K
from lrm4d_ros.data.depth_sensor import DepthSensor, depth_edges, incidence_angles, sensor_depth

H = W = 64
K = fov_to_K(math.radians(60), W, H).double()
QUIET = dict(dropout=0.0, edge_dropout=0.0, sigma_0=0.0, sigma_quad=0.0, sigma_angle=0.0)


def _rays():
    """Camera rays r = (x, y, 1) (H,W,3) of K."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    return torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)


def _plane(normal, point):
    """Exact z-depth (1,H,W) of the plane through `point` with `normal` (camera frame), and the incidence
    angle (H,W) of each pixel's ray on it."""
    n, p = torch.tensor(normal, dtype=torch.float64), torch.tensor(point, dtype=torch.float64)
    r = _rays()
    z = (n @ p) / (r @ n)  # z·(r·n) = p·n, and r's third coordinate is 1
    cos = (r @ n).abs() / (r.norm(dim=-1) * n.norm())
    return z[None].float(), torch.arccos(cos.clamp(0, 1))


def test_noise_on_a_fronto_parallel_plane_grows_with_z_squared():
    s = DepthSensor(dropout=0.0)
    for z in (1.0, 3.0):
        depth = torch.full((16, H, W), z)
        out = sensor_depth(depth, K.expand(16, 3, 3), torch.Generator().manual_seed(1), s)
        assert (out > 0).all()  # a plane facing the camera inside the range loses nothing
        expect = 0.0012 + 0.0019 * (z - 0.4) ** 2  # Nguyen et al. 2012 at θ = 0
        err = (out - z).double()
        assert float(err.std()) == pytest.approx(expect, rel=0.02)
        assert abs(float(err.mean())) < 4 * expect / math.sqrt(err.numel())


def test_normals_from_depth_are_exact_on_tilted_planes_and_grazing_pixels_drop():
    for tilt in (0.0, 35.0, 55.0):  # below 60°, so every pixel's ray (60° FoV) meets the plane in front
        t = math.radians(tilt)
        depth, theta = _plane([0.0, math.sin(t), -math.cos(t)], [0.0, 0.0, 2.0])
        assert (depth > 0).all()
        est = incidence_angles(depth, K[None])[0].double()
        assert float((est - theta).abs().max()) < 1e-3  # radians; float32 depths
        assert not depth_edges(depth, 0.02).any()  # a plane of any tilt has no depth edge
    # Beyond max_angle every pixel goes, below it none (a hard threshold when start == max).
    # Tilted 55°, the plane is seen at 25°..85° incidence from top to bottom, up to 12 m away.
    depth, theta = _plane([0.0, math.sin(math.radians(55)), -math.cos(math.radians(55))], [0.0, 0.0, 2.0])
    out = sensor_depth(depth, K[None], torch.Generator().manual_seed(0), **QUIET, grazing_start_deg=72.0,
                       max_angle_deg=72.0, max_range=20.0)[0]
    clear = (theta - math.radians(72.0)).abs() > 1e-3
    assert clear.sum() > 0.9 * H * W and 0.1 < float((out == 0).float().mean()) < 0.9
    assert torch.equal((out == 0)[clear], (theta > math.radians(72.0))[clear])


def test_depth_edges_and_empty_neighbours_drop_and_range_limits():
    depth = torch.full((1, H, W), 2.0)
    depth[:, :, : W // 2] = 1.0  # a step between two planes at column W/2
    depth[:, 40:50, 10:20] = 0.0  # a hole: nothing there
    edges = depth_edges(depth, 0.02)[0]
    expect = torch.zeros(H, W, dtype=torch.bool)
    expect[:, W // 2 - 1: W // 2 + 1] = True
    expect[39, 10:20] = expect[50, 10:20] = expect[40:50, 9] = expect[40:50, 20] = True
    assert torch.equal(edges, expect)
    out = sensor_depth(depth, K[None], torch.Generator().manual_seed(0), **{**QUIET, "edge_dropout": 1.0})[0]
    assert torch.equal(out == 0, expect | (depth[0] == 0))
    assert torch.equal(out[out > 0], depth[0][out > 0])  # noise off: exact values
    near = sensor_depth(torch.full((1, 8, 8), 0.1), K[None], **QUIET)
    far = sensor_depth(torch.full((1, 8, 8), 9.0), K[None], **QUIET)
    assert not near.any() and not far.any()


def test_seeded_and_random_dropout_rate():
    depth = torch.full((12, 128, 128), 1.5)
    Ks = fov_to_K(1.0, 128, 128).expand(12, 3, 3)
    a = sensor_depth(depth, Ks, torch.Generator().manual_seed(7), dropout=0.1)
    b = sensor_depth(depth, Ks, torch.Generator().manual_seed(7), dropout=0.1)
    c = sensor_depth(depth, Ks, torch.Generator().manual_seed(8), dropout=0.1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float((a > 0).float().mean()) == pytest.approx(0.9, abs=0.005)
    with pytest.raises(TypeError, match="unknown depth sensor parameters"):
        sensor_depth(depth, Ks, noise=1.0)
    with pytest.raises(ValueError, match="min_range < max_range"):
        DepthSensor(min_range=3.0, max_range=2.0)
