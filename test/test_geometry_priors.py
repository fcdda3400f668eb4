"""The geometry the model is handed: the plane-sweep prior's warping, partner choice, and the environment map."""
import math

import torch
import torch.nn.functional as F

from lrm4d_ros.cameras import fov_to_K, pixel_rays
from lrm4d_ros.cost_volume import PlaneSweep, pick_partners
from lrm4d_ros.data.rigs import look_at
from lrm4d_ros.environment import Environment


def _wall_views(depth: float, res: int = 64):
    """Three cameras side by side (baseline 0.25) looking along +y at a noise-textured wall at y = depth."""
    eyes = torch.tensor([[-0.25, 0.0, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 0.0]], dtype=torch.float64)
    c2w = look_at(eyes, eyes + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    K = fov_to_K(math.radians(50), res, res).expand(3, 3, 3).clone()
    g = torch.Generator().manual_seed(0)
    texture = F.interpolate(torch.rand(1, 3, 24, 48, generator=g), size=(240, 480), mode="bilinear")[0]
    o, d = pixel_rays(K, c2w, res, res)
    hit = o + d * ((depth - o[..., 1]) / d[..., 1])[..., None]  # wall points (V,H,W,3)
    grid = torch.stack([hit[..., 0] / 2.0, -hit[..., 2] / 1.0], -1).float()  # wall spans x ∈ ±2, z ∈ ±1
    images = F.grid_sample(texture[None].expand(3, -1, -1, -1), grid, align_corners=False).permute(0, 2, 3, 1)
    return images.contiguous(), K.float(), c2w.float()


class _Identity(torch.nn.Module):
    """Features = the image itself at 1/4 resolution (16 channels: RGB repeated), so the test checks geometry."""

    def forward(self, x):
        f = F.avg_pool2d(x, 4)
        return torch.cat([f] * 5 + [f[:, :1]], 1)


def test_plane_sweep_recovers_a_textured_walls_depth():
    images, K, c2w = _wall_views(depth=2.0)
    sweep = PlaneSweep(planes=48, channels=16, neighbours=2, near=0.5, far=8.0)
    sweep.features = _Identity()
    with torch.no_grad():
        sweep.log_temperature.fill_(math.log(200.0))  # sharp: raw colours correlate weakly
        log_d, conf = sweep(images, K, c2w, torch.zeros(3))
    inner = log_d[:, 16:48, 16:48].exp()
    assert abs(float(inner.median()) - 2.0) < 0.1 * 2.0, float(inner.median())
    assert float(conf[:, 16:48, 16:48].median()) > 2.0 / 48  # more certain than a uniform guess


def test_untrained_prior_is_mid_range_and_partners_are_other_cameras_at_the_same_time():
    images, K, c2w = _wall_views(depth=2.0)
    sweep = PlaneSweep(planes=16, near=0.3, far=20.0)
    with torch.no_grad():
        log_d, _ = sweep(images, K, c2w, torch.zeros(3))
    # an undecided volume answers the geometric middle of [near, far], not the near plane
    assert abs(float(log_d.median()) - math.log(math.sqrt(0.3 * 20.0))) < 0.5
    # 6 views: 3 cameras at two times; each view's partners are the other cameras at its own time
    c2w6 = torch.cat([c2w, c2w]).double()
    times = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    p = pick_partners(c2w6, times, 2)
    for v in range(6):
        assert set(p[v].tolist()) == {u for u in range(6) if u // 3 == v // 3 and u != v}


def test_environment_map_shows_what_the_inputs_saw_in_each_direction():
    # inputs see red above the horizon and blue below, in every azimuth
    dirs = F.normalize(torch.randn(4, 32, 32, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    images = torch.where(dirs[..., 2:] > 0, torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]))
    env = Environment.build(images, dirs, torch.ones(4, 32, 32))
    up = env.lookup(torch.tensor([[0.3, 0.2, 0.9], [-0.5, 0.1, 0.8]]))
    down = env.lookup(torch.tensor([[0.3, 0.2, -0.9], [-0.5, -0.1, -0.8]]))
    torch.testing.assert_close(up, torch.tensor([[1.0, 0.0, 0.0]] * 2), atol=0.02, rtol=0)
    torch.testing.assert_close(down, torch.tensor([[0.0, 0.0, 1.0]] * 2), atol=0.02, rtol=0)
    # a hemisphere nobody looked into is filled from what is nearest: only the upper half is seen, all green
    seen = dirs.clone()
    seen[..., 2] = seen[..., 2].abs()
    env = Environment.build(torch.tensor([0.0, 1.0, 0.0]).expand(4, 32, 32, 3), seen, torch.ones(4, 32, 32))
    torch.testing.assert_close(env.lookup(torch.tensor([[0.0, 0.0, -1.0]])), torch.tensor([[0.0, 1.0, 0.0]]),
                               atol=1e-4, rtol=0)


def test_environment_map_fills_an_unseen_azimuth_from_its_own_elevation():
    # The inputs look only towards +x (azimuth within ±45°): white sky above the horizon, blue floor below. Behind
    # them (-x) nobody looked; the map must show sky there above the horizon and floor below it, not a blend.
    g = torch.Generator().manual_seed(2)
    dirs = F.normalize(torch.randn(6, 32, 32, 3, generator=g), dim=-1)
    dirs[..., 0] = dirs[..., 0].abs() + dirs[..., 1].abs()  # azimuth within ±45° of +x
    dirs = F.normalize(dirs, dim=-1)
    sky, floor = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.1, 0.2, 0.5])
    images = torch.where(dirs[..., 2:] > 0, sky, floor)
    env = Environment.build(images, dirs, torch.ones(6, 32, 32))
    behind = torch.tensor([[-1.0, 0.0, 0.6], [-1.0, 0.3, 0.8], [-1.0, 0.0, -0.6], [-1.0, -0.3, -0.8]])
    torch.testing.assert_close(env.lookup(behind), torch.stack([sky, sky, floor, floor]), atol=0.02, rtol=0)


def test_environment_map_fills_the_sky_from_above_the_horizon_only():
    # Half the inputs look towards +x and see a band of sky up to 10° above the horizon and the floor below it;
    # the other half look at the floor behind. Nobody looked higher: the sky there is what the band showed, with
    # nothing of the floor's colour pulled up across the horizon (it had been: 0.92-0.96 for white).
    g = torch.Generator().manual_seed(3)
    az = (torch.rand(6, 32, 32, generator=g) - 0.5) * math.pi / 2
    el = torch.rand(6, 32, 32, generator=g) * math.radians(100) - math.radians(90)  # -90° .. +10°
    front = torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1)
    behind = torch.stack([-front[..., 0], front[..., 1], -front[..., 2].abs()], -1)
    sky, floor = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.1, 0.2, 0.5])
    images = torch.cat([torch.where(front[..., 2:] > 0, sky, floor), floor.expand(6, 32, 32, 3)])
    env = Environment.build(images, torch.cat([front, behind]), torch.ones(12, 32, 32))
    up = F.normalize(torch.tensor([[1.0, 0.0, 1.5], [-1.0, 0.2, 0.8], [0.0, 0.0, 1.0]]), dim=-1)
    torch.testing.assert_close(env.lookup(up), sky.expand(3, 3), atol=0.01, rtol=0)
    torch.testing.assert_close(env.lookup(F.normalize(torch.tensor([[-1.0, 0.0, -0.6]]), dim=-1)), floor[None],
                               atol=0.01, rtol=0)
