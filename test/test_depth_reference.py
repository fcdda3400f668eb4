"""The RGB-D depth reference against closed forms: a plane seen from a shifted camera, and frame choice."""
import math

import torch

from lrm4d_ros.baselines import baselines_for, depth_points, depth_reference, nearest_input_frame
from lrm4d_ros.cameras import fov_to_K
from lrm4d_ros.reconstructor import estimate_background
from lrm4d_ros.views import ViewSet

N = 48
Z, B = 2.0, 0.1  # plane depth and camera shift (m)
BASE = 1_700_000_000_000_000_000


def _smooth(u, v):
    """A smooth RGB pattern over pixel coordinates (blur-invariant to first order)."""
    return torch.stack([0.5 + 0.4 * torch.sin(u / 9.0), 0.5 + 0.4 * torch.cos(v / 11.0),
                        0.3 + 0.2 * torch.sin((u + v) / 13.0)], -1)


def _views(images, depths, xs, stamps, cams):
    V = len(xs)
    c2w = torch.eye(4, dtype=torch.float64).repeat(V, 1, 1)
    c2w[:, 0, 3] = torch.tensor(xs, dtype=torch.float64)
    return ViewSet(images=images, Ks=fov_to_K(math.radians(50), N, N).expand(V, 3, 3).clone(), camtoworlds=c2w,
                   stamps_ns=torch.tensor(stamps, dtype=torch.int64), camera_ids=torch.tensor(cams),
                   camera_names=["a", "b"], depths=depths)


def test_a_plane_reappears_shifted_by_its_disparity():
    v, u = torch.meshgrid(torch.arange(N, dtype=torch.float32), torch.arange(N, dtype=torch.float32), indexing="ij")
    inputs = _views(_smooth(u, v)[None], torch.full((1, N, N), Z), [0.0], [BASE], [0])
    targets = _views(torch.zeros(2, N, N, 3), None, [0.0, B], [BASE, BASE], [0, 1])
    pts, colors, sigma = depth_points(inputs)
    assert len(pts) == N * N and torch.allclose(pts[:, 2], torch.full((N * N,), Z))
    f = float(inputs.Ks[0, 0, 0])
    assert torch.allclose(sigma, torch.full_like(sigma, 0.3 * Z / f))
    pred = depth_reference(inputs, targets)
    shift = f * B / Z  # a camera moved +B along x sees the plane shifted by -f·B/Z pixels
    expect = torch.stack([_smooth(u, v), _smooth(u + shift, v)])
    inner = slice(4, N - 4), slice(4, N - 4 - math.ceil(shift))
    err = (pred[:, inner[0], inner[1]] - expect[:, inner[0], inner[1]]).abs()
    # Equal-depth neighbours blend in draw order: ~0.2 px of bias at most; one pixel off would be 0.044.
    assert float(err.max()) < 0.02, float(err.max())
    # Where the shifted camera sees past the input's edge there is nothing but the background colour.
    bg = estimate_background(inputs.images)
    assert float((pred[1, :, -1] - bg).abs().max()) < 1e-3
    # Unmeasured pixels are left out, or (far_fill) splatted far behind: then they show their own colour.
    inputs.depths[0, 20:30, 20:30] = 0.0
    hole = slice(22, 28), slice(22, 28)
    skip = depth_reference(inputs, targets.select([0]))[0]
    assert float((skip[hole] - bg).abs().max()) < 1e-3
    far = depth_reference(inputs, targets.select([0]), far_fill=3.0)[0]
    assert float((far[hole] - _smooth(u, v)[hole]).abs().max()) < 0.02


def test_targets_take_the_input_frame_nearest_in_time():
    red, blue = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.1, 0.9])
    images = torch.stack([red, red, blue, blue])[:, None, None].expand(4, N, N, 3).clone()
    images[:, :2], images[:, -2:], images[:, :, :2], images[:, :, -2:] = 1.0, 1.0, 1.0, 1.0  # white borders
    ms = 1_000_000
    inputs = _views(images, torch.full((4, N, N), Z), [0.0, 0.05, 0.0, 0.05],
                    [BASE, BASE + 3 * ms, BASE + 300 * ms, BASE + 304 * ms], [0, 1, 0, 1])
    targets = _views(torch.zeros(3, N, N, 3), None, [0.02] * 3, [BASE + 100 * ms, BASE + 200 * ms, BASE + 290 * ms],
                     [1, 1, 1])
    frames, nearest = nearest_input_frame(inputs, targets)
    assert frames.tolist() == [0, 0, 1, 1] and nearest.tolist() == [0, 1, 1]
    pred = depth_reference(inputs, targets)
    centre = pred[:, N // 2, N // 2]
    assert torch.allclose(centre, torch.stack([red, blue, blue]), atol=0.01)
    assert "depth_reference" in baselines_for(inputs)
    no_depth = inputs.select(slice(None))
    no_depth.depths = torch.zeros_like(no_depth.depths)  # a depth topic without measurements
    assert "depth_reference" not in baselines_for(no_depth)
