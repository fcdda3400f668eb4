"""The environment map the renders are composited over: what the inputs saw in each direction, and its fill."""
import math

import torch
import torch.nn.functional as F

from lrm4d_ros.environment import Environment


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


def test_environment_map_lookup_does_not_blend_across_the_horizon():
    # White sky above the horizon, a blue floor below, seen in every direction. Within half a bin of the horizon
    # (2.8° for 32 elevation rows) a bilinear lookup had mixed the two: a grey band over the far floor's edge in
    # every novel view of an open scene (ablation block 19). Each side now reads its own hemisphere's colour.
    dirs = F.normalize(torch.randn(6, 48, 48, 3, generator=torch.Generator().manual_seed(4)), dim=-1)
    sky, floor = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.1, 0.2, 0.5])
    env = Environment.build(torch.where(dirs[..., 2:] > 0, sky, floor), dirs, torch.ones(6, 48, 48))
    el = torch.tensor([0.2, 1.0, 2.0, -0.2, -1.0, -2.0]).deg2rad()
    az = torch.tensor([0.3, 1.7, -2.5, 0.3, 1.7, -2.5])
    near = torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1)
    torch.testing.assert_close(env.lookup(near), torch.stack([sky] * 3 + [floor] * 3), atol=1e-4, rtol=0)


def test_environment_map_continues_the_highest_elevation_seen_upwards():
    # The inputs look down (elevations -90° .. -4°, towards +x): the floor, and past its far edge (above -12°) a
    # white sky. Nobody looked above the horizon: the sky there, and between -4° and the horizon, is what the
    # highest elevation showed, not the whole map's (mostly the floor's) average, as it had been (0.1-0.3 for white).
    g = torch.Generator().manual_seed(5)
    az = (torch.rand(8, 32, 32, generator=g) - 0.5) * math.pi / 2
    el = torch.rand(8, 32, 32, generator=g) * math.radians(86) - math.radians(90)
    dirs = torch.stack([el.cos() * az.cos(), el.cos() * az.sin(), el.sin()], -1)
    sky, floor = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.1, 0.2, 0.5])
    images = torch.where(el[..., None] > math.radians(-12), sky, floor)
    env = Environment.build(images, dirs, torch.ones(8, 32, 32))
    el_q = torch.tensor([40.0, 5.0, -2.0, -40.0, -70.0]).deg2rad()
    az_q = torch.tensor([0.0, 0.3, -0.2, 0.1, 0.0])
    q = torch.stack([el_q.cos() * az_q.cos(), el_q.cos() * az_q.sin(), el_q.sin()], -1)
    torch.testing.assert_close(env.lookup(q), torch.stack([sky] * 3 + [floor] * 2), atol=0.02, rtol=0)
