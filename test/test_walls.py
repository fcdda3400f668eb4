"""Walls found in measured depth: the plane, its extent, what a novel view sees on it, and the sky above it."""
import math

import torch
import torch.nn.functional as F

from lrm4d_ros.cameras import fov_to_K, pixel_rays
from lrm4d_ros.cameras import look_at
from lrm4d_ros.environment import Environment
from lrm4d_ros.walls import find_walls, wall_pixels

FLOOR_Z, WALL_X, WALL_TOP = -0.8, -2.5, 1.0  # the wall: x = WALL_X, |y| < 3, from the floor to WALL_TOP
SKY = torch.tensor([0.8, 0.9, 1.0])


def _wall_colour(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Vertical stripes 0.4 wide, red and blue, a horizontal band of green above z = 0."""
    red = ((y / 0.4).floor() % 2 == 0).float()
    band = (z > 0).float()
    return torch.stack([red * (1 - band), band, (1 - red) * (1 - band)], -1)


def _cast(K: torch.Tensor, c2w: torch.Tensor, res: int):
    """Images (V,res,res,3) and z-depths (V,res,res) of a grey floor, the striped wall and the sky."""
    o, d = pixel_rays(K, c2w, res, res)
    t_floor = torch.where(d[..., 2] < 0, (FLOOR_Z - o[..., 2]) / d[..., 2].clamp(max=-1e-9),
                          torch.full_like(d[..., 2], math.inf))
    t_wall = torch.where(d[..., 0] < 0, (WALL_X - o[..., 0]) / d[..., 0].clamp(max=-1e-9),
                         torch.full_like(d[..., 0], math.inf))
    x = o + t_wall.clamp(max=1e6)[..., None] * d
    t_wall = torch.where((x[..., 1].abs() < 3) & (x[..., 2] > FLOOR_Z) & (x[..., 2] < WALL_TOP), t_wall,
                         torch.full_like(t_wall, math.inf))
    t = torch.minimum(t_floor, t_wall)
    images = torch.where((t_wall < t_floor)[..., None], _wall_colour(x[..., 1], x[..., 2]).double(),
                         torch.where(t_floor.isfinite()[..., None], torch.full_like(d, 0.4), SKY.double()))
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1)
    depths = torch.where(t.isfinite(), t * cos, torch.zeros_like(t))
    return images.float(), depths


def _rig(res: int = 64):
    """Six cameras on an arc about (1, 0, 0.4), looking at the wall from 2.5-4 units away."""
    a = torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)
    eyes = torch.stack([1.0 + 0.5 * a.cos(), 1.5 * a.sin(), 0.2 + 0.1 * torch.arange(6)], -1)
    look = torch.stack([torch.full_like(a, WALL_X), 1.2 * a, torch.zeros_like(a)], -1)
    c2w = look_at(eyes, look)
    K = fov_to_K(math.radians(60), res, res).expand(6, 3, 3).double()
    images, depths = _cast(K, c2w, res)
    return images, depths, K, c2w


def test_a_wall_is_found_where_it_stands_and_as_far_as_it_was_seen():
    images, depths, K, c2w = _rig()
    walls = find_walls(images, K.float(), c2w.float(), depths.float(), FLOOR_Z)
    assert len(walls) == 1
    w = walls[0]
    torch.testing.assert_close(w.normal, torch.tensor([1.0, 0.0, 0.0]), atol=0.01, rtol=0)  # facing the cameras
    assert abs(w.offset - WALL_X) < 0.02
    assert w.heights[0] == FLOOR_Z and abs(w.heights[1] - WALL_TOP) < 0.1
    assert w.span[1] - w.span[0] > 3.0  # the views saw most of its 6 units
    # the pixels that measured it are its; of the others only the floor in its corner (within ON_PLANE of its depth)
    on = wall_pixels(walls)
    o, d = pixel_rays(K, c2w, 64, 64)
    x = o + (depths / (d * c2w[:, None, None, :3, 2]).sum(-1))[..., None] * d
    truly = (depths > 0) & ((x[..., 0] - WALL_X).abs() < 1e-6)
    assert float((on & truly).sum()) > 0.98 * float(truly.sum())
    assert float((x[on & ~truly][:, 0] - WALL_X).abs().max()) < 0.25


def test_a_novel_view_sees_the_walls_texture_on_it_and_the_sky_above_it():
    images, depths, K, c2w = _rig()
    walls = find_walls(images, K.float(), c2w.float(), depths.float(), FLOOR_Z)
    env = Environment(SKY.reshape(3, 1, 1).expand(3, 2, 2).clone(), None, walls)
    # a camera nearer the wall, looking at points on it (away from the stripes' edges) and over its top
    eye = torch.tensor([0.0, 0.3, 0.1], dtype=torch.float64)
    ys = torch.tensor([-1.0, -0.6, -0.2, 0.6, 1.0], dtype=torch.float64)
    pts = torch.cat([torch.stack([torch.full_like(ys, WALL_X), ys, torch.full_like(ys, -0.4)], -1),
                     torch.stack([torch.full_like(ys, WALL_X), ys, torch.full_like(ys, 0.5)], -1),
                     torch.tensor([[WALL_X, 0.0, 1.6]], dtype=torch.float64)])
    dirs = F.normalize(pts - eye, dim=-1)
    out = env.lookup(dirs, eye.expand(len(pts), 3))
    truth = _wall_colour(pts[:10, 1], pts[:10, 2])
    torch.testing.assert_close(out[:10], truth.float(), atol=0.05, rtol=0)
    torch.testing.assert_close(out[10], SKY, atol=1e-4, rtol=0)  # above the wall: the environment
    # from behind the wall (x < WALL_X) rays pass through: a wall has one face
    behind = torch.tensor([-4.0, 0.0, 0.0], dtype=torch.float64)
    back = env.lookup(F.normalize(pts[:1] - behind, dim=-1), behind[None])
    torch.testing.assert_close(back[0], SKY, atol=1e-4, rtol=0)


def test_no_wall_in_a_floor_and_a_small_box():
    """Vertical faces narrower than MIN_WIDTH (a box's side) are no wall."""
    a = torch.arange(6, dtype=torch.float64) * (math.pi / 10) + 0.3
    eyes = torch.stack([2 * a.cos(), 2 * a.sin(), 0.3 + 0.06 * torch.arange(6)], -1)
    c2w = look_at(eyes, torch.zeros(6, 3, dtype=torch.float64))
    K = fov_to_K(math.radians(60), 64, 64).expand(6, 3, 3).double()
    o, d = pixel_rays(K, c2w, 64, 64)
    t = torch.where(d[..., 2] < 0, (FLOOR_Z - o[..., 2]) / d[..., 2].clamp(max=-1e-9), torch.full_like(d[..., 2], 1e9))
    lo = torch.tensor([-0.3, -0.3, FLOOR_Z], dtype=torch.float64)
    hi = torch.tensor([0.3, 0.3, 0.0], dtype=torch.float64)
    t1, t2 = (lo - o) / d, (hi - o) / d
    near, far = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
    t = torch.where((near < far) & (near > 0) & (near < t), near, t)
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1)
    depths = torch.where(t < 1e8, t * cos, torch.zeros_like(t))
    images = torch.full((6, 64, 64, 3), 0.5)
    assert find_walls(images, K.float(), c2w.float(), depths.float(), FLOOR_Z) == []


def test_training_skips_the_layers_read_from_the_views():
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import predict

    images, depths, K, c2w = _rig()
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", n_layer=1)).eval()
    times = torch.linspace(-1, 1, len(images))
    with torch.no_grad():
        full = predict(model, images, K.float(), c2w.float(), times, depths.float())
        train = predict(model, images, K.float(), c2w.float(), times, depths.float(), read_views=False)
    assert len(full.environment.walls) == 1 and full.environment.floor.views is not None
    assert train.environment.walls == [] and train.environment.floor.views is None
    assert abs(train.environment.floor.height - FLOOR_Z) < 0.02  # the floor itself stays: only its reading goes
    torch.testing.assert_close(train.gaussians.means, full.gaussians.means)  # the Gaussians are the same
