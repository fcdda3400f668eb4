"""The floor under a scene: its height from measured depth and from colour alone, its texture, and what renders
take from it."""
import math
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from lrm4d_ros.cameras import fov_to_K, pixel_rays
from lrm4d_ros.cameras import look_at
from lrm4d_ros.environment import Environment
from lrm4d_ros.floor import Floor, floor_period
from lrm4d_ros.floor_fit import (floor_from_photo, floor_normal, floor_palette, height_from_depth, pick_partners,
                                 plane_depths, unconfirmed, up_from_photo)
from lrm4d_ros.silhouettes import _matched_reach, floor_from_feet, standing_depths

FLOOR_Z = -0.8


def _floor_views(texture: torch.Tensor, res: int = 64, box: bool = True, half: float | tuple = 0.3, top: float = 0.0,
                 fov_deg: float = 60.0, apart: float = math.pi / 10, floor_half: float | None = None):
    """Six cameras (vertical field of view fov_deg) on a ring of radius 2, `apart` radians apart (18°: a quarter of
    the ring, as a robot's head or wall rig), at heights 0.3-0.6 looking at the origin over a floor at z = FLOOR_Z
    textured with `texture` (3,h,w) over x, y ∈ ±4; optionally a grey box (|x|, |y| < half, or half's (x, y), up to
    z = top) on it.
    floor_half: the floor ends at |x|, |y| = floor_half, and past it and above the horizon lies a white void that
    measures no depth (the MuJoCo bags'), not the sky.
    Returns images (6,res,res,3), exact z-depths (6,res,res), Ks, camtoworlds (float64)."""
    a = torch.arange(6, dtype=torch.float64) * apart + 0.3
    eyes = torch.stack([2 * a.cos(), 2 * a.sin(), 0.3 + 0.06 * torch.arange(6)], -1)
    c2w = look_at(eyes, torch.zeros(6, 3, dtype=torch.float64))
    K = fov_to_K(math.radians(fov_deg), res, res).expand(6, 3, 3).double()
    o, d = pixel_rays(K, c2w, res, res)
    t = torch.where(d[..., 2] < 0, (FLOOR_Z - o[..., 2]) / d[..., 2].clamp(max=-1e-9), torch.full_like(d[..., 2], 1e9))
    hit = o + t[..., None] * d
    grid = (hit[..., :2] / 4.0).clamp(-1, 1).float()
    images = F.grid_sample(texture[None].expand(6, -1, -1, -1), grid, align_corners=False).permute(0, 2, 3, 1)
    images = torch.where((d[..., 2:] < 0) & (t[..., None] < 1e8), images, torch.tensor([0.8, 0.9, 1.0]))  # sky
    if floor_half is not None:
        past = (d[..., 2] >= 0) | (t >= 1e8) | (hit[..., :2].abs() > floor_half).any(-1)
        images = torch.where(past[..., None], torch.ones(3), images)
        t = torch.where(past, torch.full_like(t, 1e9), t)
    if box:  # ray-box slab test against |x|, |y| < half, FLOOR_Z < z < top
        hx, hy = half if isinstance(half, tuple) else (half, half)
        lo = torch.tensor([-hx, -hy, FLOOR_Z], dtype=torch.float64)
        hi = torch.tensor([hx, hy, top], dtype=torch.float64)
        t1, t2 = (lo - o) / d, (hi - o) / d
        near, far = torch.minimum(t1, t2).amax(-1), torch.maximum(t1, t2).amin(-1)
        inside = (near < far) & (near > 0) & (near < t)
        t = torch.where(inside, near, t)
        images = torch.where(inside[..., None], torch.tensor([0.5, 0.5, 0.5]), images)
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1)
    depths = torch.where(t < 1e8, t * cos, torch.zeros_like(t))
    return images.float().contiguous(), depths, K, c2w


def _noise_texture(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, 48, 48, generator=g), size=(384, 384), mode="bilinear")[0]


def test_height_from_measured_depth_and_none_without_a_floor():
    images, depths, K, c2w = _floor_views(_noise_texture())
    o, d = pixel_rays(K, c2w, 64, 64)
    h = height_from_depth(o, d, c2w[:, :3, 2], depths)
    assert abs(h - FLOOR_Z) < 0.02, h
    # a noisy sensor (1 % of depth) with half the pixels missing still finds it
    g = torch.Generator().manual_seed(3)
    noisy = depths * (1 + 0.01 * torch.randn(depths.shape, generator=g, dtype=torch.float64))
    noisy = torch.where(torch.rand(depths.shape, generator=g) < 0.5, noisy, torch.zeros_like(noisy))
    assert abs(height_from_depth(o, d, c2w[:, :3, 2], noisy) - FLOOR_Z) < 0.03
    # points scattered in a volume hold no plane
    scattered = torch.rand(depths.shape, generator=g, dtype=torch.float64) * 4 + 0.5
    assert height_from_depth(o, d, c2w[:, :3, 2], scattered) is None


def test_height_from_depth_is_the_floor_under_a_table_that_fills_the_views():
    # a table top (|x|, |y| < 1.2 at z = -0.3) holding more of the measured points than the floor around it
    images, depths, K, c2w = _floor_views(_noise_texture(), half=1.2, top=-0.3)
    o, d = pixel_rays(K, c2w, 64, 64)
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1)
    z = (o + d * (depths / cos)[..., None])[..., 2][depths > 0]
    on_top = float(((z + 0.3).abs() < 0.02).float().mean())
    on_floor = float(((z - FLOOR_Z).abs() < 0.02).float().mean())
    assert on_top > on_floor > 0.1, (on_top, on_floor)
    assert abs(height_from_depth(o, d, c2w[:, :3, 2], depths) - FLOOR_Z) < 0.02


def _spread_and_share(o, d, c2w, depths, z0, tol=0.02):
    """10-90 % spread (the lesser of x and y) of the measured points within tol of height z0, and their share."""
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1)
    p = (o + d * (depths / cos)[..., None])[depths > 0]
    on = p[(p[:, 2] - z0).abs() < tol]
    q = torch.tensor([0.1, 0.9], dtype=p.dtype)
    return min(float(torch.quantile(on[:, k], q).diff()) for k in (0, 1)), on.shape[0] / p.shape[0]


def test_a_floor_narrow_views_see_and_no_floor_on_a_box_alone():
    """Cameras of 25° field of view whose depth range (3.5 units) ends 1.5 past the scene's centre see a floor
    patch narrower than MIN_EXTENT that holds most of the measured points: it is the floor (height and normal). A
    box seen alone (its top and sides measured, nothing else) is no floor."""
    from lrm4d_ros import floor_fit

    images, depths, K, c2w = _floor_views(_noise_texture(), half=0.15, top=-0.5, fov_deg=25.0)
    depths = torch.where(depths < 3.5, depths, torch.zeros_like(depths))
    o, d = pixel_rays(K, c2w, 64, 64)
    spread, share = _spread_and_share(o, d, c2w, depths, FLOOR_Z)
    assert floor_fit.DOMINANT_EXTENT <= spread < floor_fit.MIN_EXTENT and share >= floor_fit.DOMINANT_SHARE
    assert abs(height_from_depth(o, d, c2w[:, :3, 2], depths) - FLOOR_Z) < 0.02
    level, held = floor_normal(o, d, c2w[:, :3, 2], depths)
    assert math.degrees(math.acos(min(1.0, float(level[2])))) < 0.05 and held >= floor_fit.DOMINANT_SHARE
    for half in (0.3, 0.6):  # the box alone: the floor's pixels unmeasured
        images, depths, K, c2w = _floor_views(_noise_texture(), half=half, top=-0.3)
        o, d = pixel_rays(K, c2w, 64, 64)
        on_box = depths * (images == 0.5).all(-1).double()
        spread, share = _spread_and_share(o, d, c2w, on_box, -0.3)
        assert share < floor_fit.DOMINANT_SHARE and (spread < floor_fit.MIN_EXTENT), (half, spread, share)
        assert height_from_depth(o, d, c2w[:, :3, 2], on_box) is None
        assert floor_normal(o, d, c2w[:, :3, 2], on_box) is None


def test_floor_normal_from_measured_depth_in_a_tilted_world():
    """The scene of the tests above seen in a world turned 3° about x and 2° about y: the floor's normal comes back
    within 0.05° from exact depth, 0.3° from a noisy sensor missing half its pixels; points scattered in a volume
    hold no plane (None), and a level floor gives z itself within 0.05°."""
    images, depths, K, c2w = _floor_views(_noise_texture())
    a, b = math.radians(3.0), math.radians(2.0)
    Rx = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]], dtype=torch.float64)
    Ry = torch.tensor([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]], dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = Ry @ Rx
    up = T[:3, 2]

    def angle(n):
        return math.degrees(math.acos(min(1.0, float(n @ up))))

    turned = T @ c2w
    o, d = pixel_rays(K, turned, 64, 64)
    assert angle(floor_normal(o, d, turned[:, :3, 2], depths)[0]) < 0.05
    g = torch.Generator().manual_seed(3)
    noisy = depths * (1 + 0.01 * torch.randn(depths.shape, generator=g, dtype=torch.float64))
    noisy = torch.where(torch.rand(depths.shape, generator=g) < 0.5, noisy, torch.zeros_like(noisy))
    assert angle(floor_normal(o, d, turned[:, :3, 2], noisy)[0]) < 0.3
    scattered = torch.rand(depths.shape, generator=g, dtype=torch.float64) * 4 + 0.5
    assert floor_normal(o, d, turned[:, :3, 2], scattered) is None
    o, d = pixel_rays(K, c2w, 64, 64)
    level, share = floor_normal(o, d, c2w[:, :3, 2], depths)
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1)
    z = (o + d * (depths / cos)[..., None])[..., 2][depths > 0]
    assert abs(share - float(((z - FLOOR_Z).abs() < 0.01).double().mean())) < 0.02  # the floor's, not the box's
    assert math.degrees(math.acos(min(1.0, float(level[2])))) < 0.05


def test_floor_from_colour_matches_downsized_views_about_their_pixel_centres():
    # 128- and 192-pixel views are matched at 64 pixels: with intrinsics scaled about the pixel centres the height
    # is as exact as from 64-pixel views (scaling fx, cx alone put it 1.6 % of the drop too high)
    for res in (128, 192):
        images, _, K, c2w = _floor_views(_noise_texture(), res=res)
        found = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
        assert found is not None
        drop = float(c2w[:, 2, 3].min()) - FLOOR_Z
        assert abs(found[0] - FLOOR_Z) < 0.005 * drop, (res, found[0])


def test_floor_from_colour_alone_finds_the_height_and_the_floor_pixels():
    images, depths, K, c2w = _floor_views(_noise_texture())
    found = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
    assert found is not None
    height, floor_depths = found
    drop = float(c2w[:, 2, 3].min()) - FLOOR_Z
    assert abs(height - FLOOR_Z) < 0.03 * drop, height
    on = floor_depths > 0
    # the floor's pixels: over half of what is floor (a textured pixel that matches), little of the box (one
    # pixel's border of it, where the matching window straddles its edge), none of the sky, at the right depth
    truth = (depths > 0) & (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1).gt(1e-3)
    truth &= (images - torch.tensor([0.8, 0.9, 1.0])).abs().sum(-1).gt(1e-3)
    assert float((on & truth).sum()) > 0.5 * float(truth.sum())
    box = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    assert float((on & box).sum()) < 0.08 * float(box.sum())
    sky = (images - torch.tensor([0.8, 0.9, 1.0])).abs().sum(-1) < 1e-3
    assert not bool((on & sky).any())
    rel = ((floor_depths - depths).abs() / depths.clamp_min(1e-6))[on & truth]
    assert float(rel.median()) < 0.02
    # an untextured world: nothing to match, no floor
    flat = torch.full_like(images, 0.4)
    assert floor_from_photo(flat, K.float(), c2w, torch.zeros(6)) is None


def test_a_floor_patterned_in_hue_alone_is_found_from_colour(monkeypatch):
    """A floor whose pattern is red against green at one brightness (the mean of its channels flat), under a grey box
    and a blue sky, is found from colour as a grey-patterned one is: the sweep matches the views' colour along the
    axis their texture varies on. Matched on the mean, it is not; a grey pattern is still matched on the mean."""
    from lrm4d_ros import floor_fit

    n = _noise_texture()[0:1]
    hue = torch.cat([0.3 + 0.4 * n, 0.7 - 0.4 * n, torch.full_like(n, 0.4)])
    assert float(hue.mean(0).std()) < 1e-6 < 0.05 < float(hue[0].std())  # flat in the channels' mean
    images, depths, K, c2w = _floor_views(hue)
    floor = (depths > 0) & (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1).gt(1e-3)
    found = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
    assert found is not None
    drop = float(c2w[:, 2, 3].min()) - FLOOR_Z
    assert abs(found[0] - FLOOR_Z) < 0.03 * drop, found[0]
    assert float(((found[1] > 0) & floor).sum()) > 0.4 * float(floor.sum())  # its far, flat texels unmatched
    grey, _, _, _ = _floor_views(_noise_texture()[0:1].expand(3, -1, -1))
    below = torch.ones(grey.shape[:3], dtype=torch.bool)
    assert torch.equal(floor_fit._matching_grey(grey, below)[0], grey.mean(-1))
    monkeypatch.setattr(floor_fit, "_matching_grey",
                        lambda small, below: (small.mean(-1), floor_fit._contrast(small.mean(-1))))
    assert floor_from_photo(images, K.float(), c2w, torch.zeros(6)) is None


def test_a_plain_floor_is_found_where_what_stands_on_it_meets_it(monkeypatch):
    """A floor of one colour matches nowhere, but a box standing on it meets it: the lower outline of what differs
    from the floor's colour, placed on the hull of the same moment's outlines, gives its height, and its pixels are
    the floor's colour's. Without the box (the floor's far edge against the sky alone), or on a textured floor, none.
    A floor lit unevenly is found on the wider colour tolerance. Its pixels outline what stands on it for
    standing_depths. In predict(), an RGB-only rig's floor is then found there; told its height, or matched on a floor
    of faint texture, its pixels of one colour outline what stands too."""
    from lrm4d_ros import reconstructor, silhouettes
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import predict

    plain = torch.tensor([0.3, 0.45, 0.6])[:, None, None].expand(3, 384, 384)
    images, depths, K, c2w = _floor_views(plain, res=96, half=0.2, top=-0.4, apart=math.pi / 3)
    assert floor_from_photo(images, K.float(), c2w, torch.zeros(6)) is None
    found = floor_from_feet(images, K.float(), c2w, torch.zeros(6))
    assert found is not None
    drop = float(c2w[:, 2, 3].min()) - FLOOR_Z
    assert abs(found[0] - FLOOR_Z) < 0.02 * drop, found[0]
    floor = (images - plain[:, 0, 0]).abs().amax(-1) < 1e-3
    assert not bool((found[1] & ~floor).any()) and float(found[1][floor].float().mean()) > 0.9
    bare, _, _, _ = _floor_views(plain, res=96, box=False, apart=math.pi / 3)
    assert floor_from_feet(bare, K.float(), c2w, torch.zeros(6)) is None
    textured, _, _, _ = _floor_views(_noise_texture(), res=96, half=0.2, top=-0.4, apart=math.pi / 3)
    assert floor_from_feet(textured, K.float(), c2w, torch.zeros(6)) is None
    # lit unevenly: its green and blue drift by about 0.1 across the views
    drift = torch.linspace(-0.15, 0.15, 384)[None, :, None] * torch.tensor([0.0, 1.0, 1.0])[:, None, None]
    lit, _, _, _ = _floor_views(plain + drift, res=96, half=0.2, top=-0.4, apart=math.pi / 3)
    assert abs(floor_from_feet(lit, K.float(), c2w, torch.zeros(6))[0] - FLOOR_Z) < 0.02 * drop
    monkeypatch.setattr(silhouettes, "FEET_TOLS", silhouettes.FEET_TOLS[:1])
    assert floor_from_feet(lit, K.float(), c2w, torch.zeros(6)) is None
    monkeypatch.undo()
    # its pixels outline the box for standing_depths as matched floor would: the box's pixels the same moment's
    # views outline get their depth (none without them: nothing matched)
    box = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    placed = standing_depths(images, K.float(), c2w, torch.zeros(6), found[0], found[1])
    on = box & (placed > 0)
    assert float(on[box].float().mean()) > 0.3 and not bool((placed > 0)[~box].any())
    assert float(((placed[on] - depths[on]).abs() / depths[on]).median()) < 0.03
    assert not bool(standing_depths(images, K.float(), c2w, torch.zeros(6), found[0], torch.zeros_like(box)).any())
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=96))
    with torch.no_grad():
        pred = predict(model, images, K.float(), c2w.float(), torch.zeros(6))
    assert pred.floor_from_colour is not None and abs(pred.floor_from_colour - found[0]) < 1e-6
    # told the floor's height, its plain pixels outline what stands on it as well; and a floor of faint texture, which
    # the sweep matches on few of its pixels, has its pixels of one colour (within 0.15) outline it too
    outlined = []
    monkeypatch.setattr(reconstructor, "standing_depths", lambda *a: outlined.append(a[5]) or standing_depths(*a))
    with torch.no_grad():
        predict(model, images, K.float(), c2w.float(), torch.zeros(6), match_floor=FLOOR_Z)
    assert float(outlined[0][found[1]].float().mean()) == 1.0
    faint, _, _, _ = _floor_views(0.45 + 0.2 * (_noise_texture() - 0.5), res=96, half=0.2, top=-0.4, apart=math.pi / 3)
    matched = floor_from_photo(faint, K.float(), c2w, torch.zeros(6))
    assert matched is not None and abs(matched[0] - FLOOR_Z) < 0.02 * drop
    with torch.no_grad():
        predict(model, faint, K.float(), c2w.float(), torch.zeros(6))
    assert float(outlined[1].float().mean()) > 5 * float((matched[1] > 0).float().mean())


def test_up_from_colour_alone_levels_a_head_rig_in_a_turned_world():
    """An RGB-only rig whose cameras face one way pins no up by their x axes; the floor its views match does. The
    six cameras 18° apart looking down at a textured floor, in a world turned 70° about x (as a y-up renderer's or a
    SLAM map's frame would have it): swept about their x axis from their image up (11° off), the floor's up is
    found within half a degree (0.04°); an untextured world gives none. The world's up, where given, wins where its
    floor holds the most votes."""
    from lrm4d_ros import floor_fit
    from lrm4d_ros.cameras import image_up

    images, _, K, c2w = _floor_views(_noise_texture(), res=96)
    a = math.radians(70.0)
    T = torch.eye(4, dtype=torch.float64)
    T[1, 1], T[1, 2], T[2, 1], T[2, 2] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
    turned = T @ c2w
    truth = T[:3, 2]
    hint = image_up(turned)
    assert math.degrees(math.acos(float(hint @ truth))) > 5  # the cameras look down: their image up is off
    up, share = up_from_photo(images, K.float(), turned, torch.zeros(6), hint)
    assert math.degrees(math.acos(min(1.0, float(up @ truth)))) < 0.5 and share > floor_fit.MIN_VOTES
    assert up_from_photo(torch.full_like(images, 0.4), K.float(), turned, torch.zeros(6), hint) is None
    # the world's own up, given, is tried beside the turns: kept as it is where its floor holds most votes (the
    # truth here), passed over where it shows no floor (the world's x)
    assert torch.equal(up_from_photo(images, K.float(), turned, torch.zeros(6), hint, given=truth)[0], truth)
    up, _ = up_from_photo(images, K.float(), turned, torch.zeros(6), hint, given=T[:3, 0])
    assert math.degrees(math.acos(min(1.0, float(up @ truth)))) < 0.5


def test_floor_texture_shows_each_half_where_it_lies_and_what_hides_it():
    # left half (x < 0) red, right half blue; the box hides the floor at the centre from every camera, and the floor
    # runs on under it (seen farther out at the same azimuths)
    tex = torch.zeros(3, 64, 64)
    tex[0, :, :32] = 1.0
    tex[2, :, 32:] = 1.0
    images, depths, K, c2w = _floor_views(tex)
    o, d = pixel_rays(K, c2w, 64, 64)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    # a camera high above the origin looking straight down: rays to (±1, 0) and to the box's centre
    eye = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    targets = torch.tensor([[-1.2, 0.3, FLOOR_Z], [1.2, -0.3, FLOOR_Z], [0.0, 0.0, FLOOR_Z], [5.0, 0.0, 10.0]],
                           dtype=torch.float64)
    dirs = F.normalize(targets - eye, dim=-1)
    colors, p = floor.lookup(eye.expand(4, 3), dirs)
    torch.testing.assert_close(colors[0], torch.tensor([1.0, 0.0, 0.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(colors[1], torch.tensor([0.0, 0.0, 1.0]), atol=0.1, rtol=0)
    assert float(p[0]) > 0.9 and float(p[1]) > 0.9
    assert float(p[2]) > 0.99
    assert float(p[3]) == 0.0  # a ray upwards never meets the floor
    # composited: the environment (sky everywhere) where the floor is hidden or absent, the floor where seen
    env = Environment(torch.tensor([0.8, 0.9, 1.0]).reshape(3, 1, 1).expand(3, 2, 2).clone(), floor)
    out = env.lookup(dirs, eye.expand(4, 3))
    torch.testing.assert_close(out[0], colors[0].float(), atol=0.05, rtol=0)
    torch.testing.assert_close(out[3], torch.tensor([0.8, 0.9, 1.0]), atol=1e-4, rtol=0)
    # a floor seen only beyond a depth camera's range (no measurement) is still textured from its pixels
    far_only = Floor.build(images, o, d, c2w[:, :3, 2], torch.zeros_like(depths), FLOOR_Z)
    torch.testing.assert_close(far_only.lookup(eye.expand(1, 3), dirs[:1])[0][0],
                               torch.tensor([1.0, 0.0, 0.0], dtype=far_only.colors.dtype), atol=0.15, rtol=0)


def test_the_floor_runs_on_under_what_hid_it_but_not_behind_a_wall():
    """Floor no input saw is floor where floor was seen farther out at the same azimuth (what hid it stands on the
    floor: a robot, a box, which the target's own Gaussians draw), and the environment map's behind a wall that
    hides everything past it. Rays from above to floor points on the cameras' side of each object and behind it."""
    eye = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)

    def sureness(r: float, **scene) -> torch.Tensor:
        images, depths, K, c2w = _floor_views(_noise_texture(), **scene)
        o, d = pixel_rays(K, c2w, 64, 64)
        floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
        side = F.normalize(c2w[:, :2, 3].mean(0), dim=0)  # towards the cameras
        points = F.pad(torch.stack([r * side, -r * side]), (0, 1), value=FLOOR_Z)
        return floor.lookup(eye.expand(2, 3), F.normalize(points - eye, dim=-1))[1]

    # a low box the cameras look over: its shadow on the far side ends about 1.0 from the centre
    assert float(sureness(0.6, half=0.3, top=-0.5).min()) > 0.99
    # a wall through the centre, across the cameras' view and taller than they are
    wall = sureness(0.8, half=(0.1, 4.0), top=1.0, apart=0.02, fov_deg=90.0)
    assert float(wall[0]) > 0.99 and float(wall[1]) < 0.1


def test_an_objects_edge_dropouts_do_not_paint_the_floor_behind_it():
    """A depth camera drops out on an object's edges: those pixels show the object (grey here), not the floor their
    rays meet behind it, where no camera saw the floor. They count as seeing the floor (sureness) but give it no
    colour, as `with_views` leaves them out: the floor behind the box keeps the floor's blue (the MuJoCo jaco bags'
    floor behind the arm had taken its edges' grey and the sky's white)."""
    blue = torch.tensor([0.1, 0.2, 0.6])
    images, depths, K, c2w = _floor_views(blue.reshape(3, 1, 1).expand(3, 64, 64).clone())
    o, d = pixel_rays(K, c2w, 64, 64)
    z_plane, hit = plane_depths(o, F.normalize(d, dim=-1), c2w[:, :3, 2], FLOOR_Z)
    box = hit & (depths > 0) & (depths < 0.95 * z_plane)
    edge = box & (F.max_pool2d((~box)[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], torch.where(edge, torch.zeros_like(depths), depths), FLOOR_Z)
    # where the edge pixels' rays meet the floor, off the box's foot (its grey sides meet the floor within ON_PLANE)
    # and within the test texture's extent
    t = (FLOOR_Z - o[..., 2]) / d[..., 2]
    land = (o + t[..., None] * d)[edge & hit]
    land = land[(land[:, :2].abs().amax(-1) > 0.45) & (land[:, :2].norm(dim=-1) < 3.5)]
    assert len(land) > 100
    eye = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    colors, p = floor.lookup(eye.expand(len(land), 3), F.normalize(land - eye, dim=-1))
    assert float((colors - blue).abs().max()) < 0.03  # 0.014; 0.33 with the edges' colour in the texture
    assert float(p.min()) > 0.0


def test_floor_is_claimed_only_near_where_views_looked():
    """The rig faces the origin from one quadrant: the floor behind its cameras, (4, 4), is in no view, so rays
    that meet the plane there take the environment; the floor the views saw keeps its weight."""
    images, depths, K, c2w = _floor_views(_noise_texture(), box=False)
    o, d = pixel_rays(K, c2w, 64, 64)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    eye = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    targets = torch.tensor([[-1.0, -0.5, FLOOR_Z], [4.0, 4.0, FLOOR_Z]], dtype=torch.float64)
    dirs = F.normalize(targets - eye, dim=-1)
    _, p = floor.lookup(eye.expand(2, 3), dirs)
    assert float(p[0]) > 0.9 and float(p[1]) == 0.0
    sky = torch.tensor([0.8, 0.9, 1.0])
    out = Environment(sky.reshape(3, 1, 1).expand(3, 2, 2).clone(), floor).lookup(dirs, eye.expand(2, 3))
    torch.testing.assert_close(out[1], sky, atol=1e-4, rtol=0)


def test_pixels_past_the_floor_and_where_rays_meet_it():
    images, depths, K, c2w = _floor_views(_noise_texture(), box=False)
    o, d = pixel_rays(K, c2w, 64, 64)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    assert not bool(floor.beyond(o, d, c2w[:, :3, 2], depths).any())  # the floor itself is not past the floor
    assert bool(floor.beyond(o, d, c2w[:, :3, 2], depths * 1.5)[depths > 0].all())
    z_floor, hit = plane_depths(o, d, c2w[:, :3, 2], FLOOR_Z)
    torch.testing.assert_close(z_floor[depths > 0], depths[depths > 0])
    assert bool(hit[depths > 0].all()) and not bool(hit[depths == 0].any())  # the sky: never meets the floor


def test_a_pixel_seen_past_the_floor_shows_only_from_its_own_camera():
    """predict() takes the opacity of a pixel Gaussian that lies past the floor (the sky beyond a platform's
    edge, a far pixel's depth) for novel views, and ViewWeighting gives it back to its own camera."""
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstruction import ViewWeighting
    from lrm4d_ros.reconstructor import predict

    images, depths, K, c2w = _floor_views(_noise_texture(), res=32, box=False)
    past = torch.zeros_like(depths, dtype=torch.bool)
    past[:, 28:, 10:20] = True  # floor pixels near the bottom, measured 40 % too far
    measured = torch.where(past, depths * 1.4, depths)
    model = LRM4D(LRM4DConfig.preset("tiny"))
    torch.nn.init.zeros_(model.unpatchify.weight)
    torch.manual_seed(0)
    with torch.no_grad():
        pred = predict(model, images, K.float(), c2w.float(), torch.zeros(6), measured.float())
    assert pred.environment.floor is not None and abs(pred.environment.floor.height - FLOOR_Z) < 0.03
    with torch.no_grad():  # a height the caller knows is taken over the one the depth shows
        told = predict(model, images, K.float(), c2w.float(), torch.zeros(6), measured.float(), FLOOR_Z - 0.2)
    assert told.environment.floor.height == FLOOR_Z - 0.2
    hidden = pred.hidden.reshape(6, 32, 32)
    assert bool((hidden[past] > 0.5).all()) and float(hidden[~past].abs().max()) == 0.0
    assert float(pred.gaussians.opacities.reshape(6, 32, 32)[past].max()) == 0.0
    # a slice (point clouds, PLY, the viewer) leaves them out
    assert len(pred.gaussians.slice(0.0)) == 6 * 32 * 32 - int(past.sum())
    # rendering camera 0 at its own time: its own hidden pixels are back, camera 1's stay hidden
    wt = ViewWeighting(c2w[:, :3, 2].float(), torch.zeros(6), 32 * 32, pred.hidden)
    opacities = wt.opacities(c2w[0, :3, 2].float(), 0.0, pred.gaussians.opacities).reshape(6, 32, 32)
    assert bool((opacities[0][past[0]] > 0.5).all())
    assert float(opacities[1][past[1]].max()) == 0.0


def test_what_stands_before_the_floor_is_told_by_the_partners_colours():
    """A pixel whose ray meets the floor where no other camera shows its colour is unconfirmed as floor: most of a
    thin post's pixels; none of the near floor, the sky or the post's foot."""
    images, depths, K, c2w = _floor_views(_noise_texture(), res=64, half=0.1, top=0.5)
    before = unconfirmed(images, K.float(), c2w, torch.zeros(6), FLOOR_Z)
    post = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    sky = (images - torch.tensor([0.8, 0.9, 1.0])).abs().sum(-1) < 1e-3
    assert float(before[post].float().mean()) > 0.4
    assert not bool(before[sky].any())
    # the floor below the horizon's band, where the views resolve its texture alike (the far floor, minified
    # differently in each view, may disagree), in the inner cameras: the ring's end cameras see floor at their
    # outer edge that no other camera sees, unconfirmed too
    near = ~post & ~sky
    near[:, :44] = False
    near[[0, 5]] = False
    assert float(before[near].float().mean()) < 0.01
    # where the post stands, its foot meets the floor: the partners see the post's grey there too
    foot = post & (depths > 0) & (depths.sub(_plane_z(K, c2w)).abs() < 0.05 * depths)
    assert float(before[foot].float().mean()) < 0.3


def _plane_z(K, c2w, height=FLOOR_Z):
    o, d = pixel_rays(K, c2w, 64, 64)
    return plane_depths(o, d, c2w[:, :3, 2], height)[0]


def test_an_rgb_rigs_pixels_caught_before_the_floor_show_only_from_their_own_camera():
    """predict() on an RGB-only rig: the pixel Gaussians the floor's depth bound catches and no partner confirms
    as floor (a post the model could not place) are hidden for novel views; the matched floor is not."""
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import predict

    images, depths, K, c2w = _floor_views(_noise_texture(), res=64, half=0.1, top=0.5)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
    torch.nn.init.zeros_(model.unpatchify.weight)  # every unmeasured pixel at the base depth: past the floor
    torch.manual_seed(0)
    with torch.no_grad():
        pred = predict(model, images, K.float(), c2w.float(), torch.zeros(6))
    assert pred.floor_from_colour is not None and abs(pred.floor_from_colour - FLOOR_Z) < 0.03
    hidden = pred.hidden.reshape(6, 64, 64) > 0
    post = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    expected = unconfirmed(images, K.float(), c2w, torch.zeros(6), pred.floor_from_colour)
    # caught: the model's depth reached the floor's bound (the rest of the post it put nearer stays shown)
    z_floor = _plane_z(K, c2w, pred.floor_from_colour)
    floor = floor_from_photo(images, K.float(), c2w, torch.zeros(6))[1]
    matched = floor > 0
    caught = (pred.pixel_depths.double() >= (1 - 1e-3) * z_floor) & ~matched
    assert torch.equal(hidden, caught & expected)
    # the post's pixels the same moment's outlines placed (standing_depths) are placed, not caught: shown; the rest
    # of the post is hidden
    placed = standing_depths(images, K.float(), c2w, torch.zeros(6), pred.floor_from_colour, floor) > 0
    assert float(placed[post].float().mean()) > 0.1 and not bool((hidden & placed).any())
    assert float((hidden | placed)[post].float().mean()) > 0.25
    assert float(pred.gaussians.opacities.reshape(6, 64, 64)[hidden].max()) == 0.0


def test_what_stands_on_a_floor_found_by_colour_gets_its_depth_from_the_same_moments_outlines():
    """An RGB-only ring's pixels of a post standing on the floor matched by colour: where no partner shows the
    floor's colour behind them, their depth is where their ray enters the hull of the other views' such pixels of
    the same moment, in their colour; the floor and sky get none, nor views of other moments."""
    images, depths, K, c2w = _floor_views(_noise_texture(), res=64, half=0.1, apart=math.pi / 3)
    height, floor = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
    got = standing_depths(images, K.float(), c2w, torch.zeros(6), height, floor)
    post = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    sky = (images - torch.tensor([0.8, 0.9, 1.0])).abs().sum(-1) < 1e-3
    assert float((got[post] > 0).float().mean()) > 0.5  # its foot the partners see in grey too: the floor's
    on = post & (got > 0)
    rel = (got[on] - depths[on]).abs() / depths[on]
    median, p90 = float(rel.median()), float(rel.quantile(0.9))
    assert median < 0.03 and p90 < 0.05, (median, p90)  # a sweep of 3.4 % steps
    assert not bool(got[sky].any()) and float((got[~post & ~sky] > 0).float().mean()) < 0.005
    # one camera per moment (a rig taking turns): nothing outlines the post in any other view of its moment
    assert not bool(standing_depths(images, K.float(), c2w, torch.linspace(-1, 1, 6), height, floor).any())


def test_a_checkers_pixels_the_sweep_did_not_match_are_in_the_floors_colours():
    """A checker of two close blues (the MuJoCo floors') matches along its edges only: the floor's palette, the
    colours its matched pixels show, holds its other pixels too and neither the post on it nor the sky; given them,
    standing_depths carves no floor pixels into the post's hull and places more of the post."""
    ij = torch.arange(384)
    odd = ((ij[:, None] // 24 + ij[None, :] // 24) % 2).float()
    texture = torch.tensor([0.20, 0.30, 0.45])[:, None, None] + torch.tensor([0.05, 0.08, 0.10])[:, None, None] * odd
    images, depths, K, c2w = _floor_views(texture, res=64, half=0.1, top=0.5, apart=math.pi / 3)
    height, floor = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
    assert abs(height - FLOOR_Z) < 0.03
    o, d = pixel_rays(K, c2w, 64, 64)
    z_floor, below = plane_depths(o, d, c2w[:, :3, 2], height)
    on_floor = below & (depths > 0) & ((depths / z_floor - 1).abs() < 0.01)
    matched = floor > 0
    assert float(matched[on_floor].float().mean()) < 0.6  # the sweep leaves much of it unmatched
    palette = floor_palette(images, matched)
    post = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    sky = (images - torch.tensor([0.8, 0.9, 1.0])).abs().sum(-1) < 1e-3
    assert float(palette[on_floor].float().mean()) > 0.9  # bar the blends along the squares' edges
    assert not bool(palette[post].any()) and not bool(palette[sky].any())
    assert not bool(floor_palette(images, matched & (torch.rand(matched.shape) < 1e-4)).any())  # too few to tell
    alone = standing_depths(images, K.float(), c2w, torch.zeros(6), height, floor)
    given = standing_depths(images, K.float(), c2w, torch.zeros(6), height, matched | palette)
    assert int((given[on_floor] > 0).sum()) < int((alone[on_floor] > 0).sum())  # 9 -> 0 pixels
    # and the floor's pixels outline the post: more of it placed (0.52 -> 0.69 of its pixels)
    assert float((given[post] > 0).float().mean()) > float((alone[post] > 0).float().mean()) + 0.1


def test_what_stands_before_the_void_past_a_finite_floor_gets_its_depth_too():
    """A post taller than the cameras on a finite floor with a white void past its edge (the MuJoCo bags'): the
    post's pixels seen against the void below the horizon take their depth from the same moment's outlines as those
    seen against the floor do; the void, the floor the matched grid does not reach, and the post above the horizon
    (where a plain wall's sky would be carved alike) take none."""
    images, depths, K, c2w = _floor_views(_noise_texture(), res=64, half=0.1, top=1.0, apart=math.pi / 3,
                                          floor_half=1.8)
    behind, _, _, _ = _floor_views(_noise_texture(), res=64, box=False, apart=math.pi / 3, floor_half=1.8)
    height, floor = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
    assert abs(height - FLOOR_Z) < 0.03
    got = standing_depths(images, K.float(), c2w, torch.zeros(6), height, floor)
    post = (images - torch.tensor([0.5, 0.5, 0.5])).abs().sum(-1) < 1e-3
    o, d = pixel_rays(K, c2w, 64, 64)
    below = plane_depths(o, d, c2w[:, :3, 2], height)[1]
    assert not bool(got[post & ~below].any())
    before_void = post & (behind == 1).all(-1) & below
    assert int(before_void.sum()) > 100
    assert float((got[before_void] > 0).float().mean()) > 0.4  # 0.3 % without the void's rule (below)
    on = before_void & (got > 0)
    rel = (got[on] - depths[on]).abs() / depths[on]
    median, p90 = float(rel.median()), float(rel.quantile(0.9))
    assert median < 0.04 and p90 < 0.08, (median, p90)  # the sweep's 3.4 % steps, smoothed over 5×5 pixels
    void = (images == 1).all(-1)
    assert not bool(got[void].any()) and float((got[~post & ~void] > 0).float().mean()) < 0.005
    # where what lies off the matched floor's grid is not one plain colour (here a void as busy as the floor), the
    # post before it is placed only where its rays meet the grid (0.3 % of these pixels), as before the void's rule
    busy = torch.where(void[..., None], images.flip(1), images)
    placed = standing_depths(busy, K.float(), c2w, torch.zeros(6), height, floor)[before_void] > 0
    assert float(placed.float().mean()) < 0.02


def test_a_matched_floors_holes_are_floor_within_its_reach():
    """Floor matched only in a ring (a robot lying on it hid the middle from every view; plain squares match
    nowhere): what stands on it meets the plane inside the ring, which standing_depths takes as over the floor too,
    but not past the farthest cell matched at each azimuth, nor in a wedge where nothing was matched."""
    n, cell = 65, 0.05
    lo = torch.tensor([-1.6, -1.6], dtype=torch.float64)
    c = lo[0] + (torch.arange(n, dtype=torch.float64) + 0.5) * cell
    x, y = c[:, None].expand(n, n), c[None, :].expand(n, n)  # grid[i, j] lies at (x_i, y_j)
    r, az = (x.square() + y.square()).sqrt(), torch.atan2(y, x)
    ring = (r > 0.8) & (r < 1.2) & (az.abs() > 0.4)
    got = _matched_reach(ring, lo, cell)
    assert bool(got[ring].all())
    assert bool(got[(r < 0.8) & (az.abs() > 0.6)].all())
    assert not bool(got[r > 1.3].any())
    assert not bool(got[(az.abs() < 0.3) & (r > 0.05)].any())


def test_a_static_rgb_rigs_floor_is_matched_once():
    """Reconstructor remembers the floor it matched for a set of input poses (world height): the next window of
    a static rig skips the sweep and finds the same floor pixels."""
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor
    from lrm4d_ros.views import ViewSet

    images, _, K, c2w = _floor_views(_noise_texture(), res=64)
    views = ViewSet(images=images, Ks=K.float(), camtoworlds=c2w, stamps_ns=torch.zeros(6, dtype=torch.int64),
                    camera_ids=torch.arange(6))
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
    rec = Reconstructor(model, "cpu")
    first = rec.reconstruct(views)
    (world_z,) = rec._floors.values()
    assert abs(world_z - FLOOR_Z) < 0.03 * (0.3 - FLOOR_Z)
    assert abs(first.background.floor.height / first.normalization.scale + float(first.normalization.center[2])
               - world_z) < 1e-9
    again = rec.reconstruct(views)
    assert len(rec._floors) == 1
    torch.testing.assert_close(again.gaussians.means, first.gaussians.means)


def _heights_matched(monkeypatch) -> list:
    """Counts the heights floor_from_photo matches the views through (its cost), call by call."""
    import lrm4d_ros.floor_fit as floor_module

    counted, match = [], floor_module.plane_matches

    def counting(gray, Ks, camtoworlds, partners, heights):
        counted.append(heights.shape[0])
        return match(gray, Ks, camtoworlds, partners, heights)

    monkeypatch.setattr(floor_module, "plane_matches", counting)
    return counted


def test_a_moving_rigs_last_floor_is_checked_before_the_full_sweep(monkeypatch):
    from lrm4d_ros.floor_fit import BAND, COARSE, FINE, SWEEP

    images, _, K, c2w = _floor_views(_noise_texture())
    drop = float(c2w[:, 2, 3].min()) - FLOOR_Z
    counted = _heights_matched(monkeypatch)
    full = floor_from_photo(images, K.float(), c2w, torch.zeros(6))
    assert full is not None and sum(counted) == SWEEP + FINE + 1
    # the floor found a window ago, 3 % of the drop off (the pose estimate drifted): found again within the band,
    # as exactly as by the full sweep, at a quarter of its matching, and the same pixels are the floor's
    counted.clear()
    again = floor_from_photo(images, K.float(), c2w, torch.zeros(6), near=FLOOR_Z + 0.03 * drop)
    assert sum(counted) == COARSE + BAND + 1
    assert abs(again[0] - FLOOR_Z) < 0.005 * drop, again[0]
    assert float(((again[1] > 0) != (full[1] > 0)).float().mean()) < 0.01
    # a floor that is no longer there (the rig climbed a ramp: 60 % deeper) fails the check: the full sweep runs
    counted.clear()
    moved = floor_from_photo(images, K.float(), c2w, torch.zeros(6), near=FLOOR_Z - 0.6 * drop)
    assert sum(counted) == COARSE + BAND + SWEEP + FINE + 1
    assert moved[0] == full[0]


def test_a_moving_rgb_rig_checks_the_floor_of_its_last_window_first(monkeypatch):
    """Reconstructor hands the world height it matched in one window to the next, with other poses, and forgets it
    between unrelated scenes (`forget`, as `evaluate` calls it per bag)."""
    from lrm4d_ros.floor_fit import BAND, COARSE, FINE, SWEEP
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor
    from lrm4d_ros.views import ViewSet

    images, _, K, c2w = _floor_views(_noise_texture(), res=64)
    torch.manual_seed(0)
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=64)), "cpu")
    rec.reconstruct(ViewSet(images=images[:5], Ks=K[:5].float(), camtoworlds=c2w[:5],
                            stamps_ns=torch.zeros(5, dtype=torch.int64), camera_ids=torch.arange(5)))
    counted = _heights_matched(monkeypatch)
    moved = rec.reconstruct(ViewSet(images=images[1:], Ks=K[1:].float(), camtoworlds=c2w[1:],
                                    stamps_ns=torch.zeros(5, dtype=torch.int64), camera_ids=torch.arange(5)))
    assert sum(counted) == COARSE + BAND + 1
    assert len(rec._floors) == 2
    world_z = moved.background.floor.height / moved.normalization.scale + float(moved.normalization.center[2])
    assert abs(world_z - FLOOR_Z) < 0.01 * (0.3 - FLOOR_Z), world_z
    # another scene (`evaluate` forgets between bags): the full sweep
    rec.forget()
    counted.clear()
    rec.reconstruct(ViewSet(images=images[:4], Ks=K[:4].float(), camtoworlds=c2w[:4],
                            stamps_ns=torch.full((4,), 10**9, dtype=torch.int64), camera_ids=torch.arange(4)))
    assert sum(counted) == SWEEP + FINE + 1


def test_floor_points_read_from_the_views_keep_a_texture_the_grid_blurs():
    """A checkerboard of 0.25-unit squares: the polar grid's cells (0.1 units around at r = 1) blur it; read from
    the views that saw each point on the plane, a camera straight above sees it within a few per cent."""
    n = 32
    tex = ((torch.arange(n)[:, None] + torch.arange(n)[None, :]) % 2).float()
    tex = torch.stack([tex, 1 - tex, 0.5 * torch.ones_like(tex)]).repeat_interleave(12, 1).repeat_interleave(12, 2)
    images, depths, K, c2w = _floor_views(tex, res=96, box=False)
    o, d = pixel_rays(K, c2w, 96, 96)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    sharp = floor.with_views(images, K.float(), c2w.float(), depths.float(), depths.float(), sensed=True)
    g = torch.Generator().manual_seed(0)
    r, az = 0.7 + 0.5 * torch.rand(400, generator=g, dtype=torch.float64), 0.5 + 1.1 * torch.rand(400, generator=g)
    pts = torch.stack([r * az.cos(), r * az.sin(), torch.full_like(r, FLOOR_Z)], 1)  # between the rig and the origin
    eye = torch.tensor([1.2, 1.2, 3.0], dtype=torch.float64)
    dirs = F.normalize(pts - eye, dim=-1)
    truth = F.grid_sample(tex[None], (pts[None, :, None, :2] / 4.0).float(), align_corners=False)[0, :, :, 0].T
    # points some view shows, away from the squares' edges (where the views' own pixels mix both colours)
    _, shown = sharp.views.sample(pts.float(), dirs.float())
    edge = ((pts[:, :2] / 0.25) - (pts[:, :2] / 0.25).round()).abs().amin(1) < 0.12
    keep = (shown > 0.9) & ~edge
    assert int(keep.sum()) > 100
    colors, p = sharp.lookup(eye.expand(400, 3), dirs)
    assert float(p[keep].min()) > 0.9
    err_views = (colors.float() - truth).abs().mean(1)[keep].mean()
    err_grid = (floor.lookup(eye.expand(400, 3), dirs)[0].float() - truth).abs().mean(1)[keep].mean()
    assert float(err_views) < 0.01 and float(err_grid) > 10 * float(err_views), (float(err_views), float(err_grid))


def test_compiled_plane_sampling_equals_the_torch_version():
    """plane_kernels.sample_plane_views (the CPU path) against PlaneViews' torch version on points the views show
    fully, partly, at their image borders and not at all (outside every view, behind the cameras, under the box):
    the same colours and shows to float32 rounding."""
    images, depths, K, c2w = _floor_views(_noise_texture(3), res=64)
    o, d = pixel_rays(K, c2w, 64, 64)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    views = floor.with_views(images, K.float(), c2w.float(), depths.float(), depths.float(), sensed=True).views
    g = torch.Generator().manual_seed(1)
    xy = (torch.rand(3000, 2, generator=g) * 2 - 1) * torch.tensor([4.0, 4.0])  # well past the views' frames too
    pts = torch.cat([xy, torch.full((3000, 1), FLOOR_Z)], 1)
    pts[:50, :2] = pts[:50, :2] * 0.05  # under the box: no view shows the floor there
    pts[50:60] = c2w[0, :3, 3].float() + 0.01  # at a camera
    dirs = F.normalize(pts - torch.tensor([0.5, 1.5, 2.5]), dim=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the compiled path must run, not fall back with a warning
        fast, fast_shown = views._sample(pts, dirs)
    ref, ref_shown = views._sample_torch(pts, dirs)
    assert 300 < int((ref_shown > 0.9).sum()) < 2900 and int((ref_shown == 0).sum()) > 100  # all the cases occur
    torch.testing.assert_close(fast_shown, ref_shown, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)


def _sweep_inputs(res: int = 64):
    """Grey images of _floor_views (box on a noise floor), their Ks, camtoworlds, partners, and heights from just
    below the cameras to under the floor, the floor's own among them."""
    from lrm4d_ros.floor_fit import PARTNERS

    images, _, K, c2w = _floor_views(_noise_texture(5), res=res)
    partners = pick_partners(c2w, torch.zeros(6, dtype=torch.float64), PARTNERS)
    heights = torch.tensor([0.2, 0.0, -0.3, -0.55, -1.05, -1.3, -1.6, -2.0, FLOOR_Z], dtype=torch.float64)
    return images.mean(-1), K, c2w, partners, heights


def test_compiled_plane_sweep_equals_the_torch_version():
    """plane_kernels.sweep (the CPU path of floor_fit.plane_matches) against the torch version in float64 on planes
    above, at and below the floor: the same NCC to float32 rounding, and the same pixels without a match (rays
    above the horizon, points outside every partner or behind it). At the floor's height its textured pixels
    match (median NCC over 0.7), at the other heights they do not."""
    from lrm4d_ros.floor_fit import _box, _plane_matches_torch, plane_matches

    gray, K, c2w, partners, heights = _sweep_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the compiled path must run, not fall back with a warning
        fast = plane_matches(gray, K, c2w, partners, heights)
    ref = _plane_matches_torch(gray.double(), K, c2w, partners, heights)
    none = ref == -1
    assert 0.1 < float(none.float().mean()) < 0.9  # both cases occur
    assert torch.equal(fast == -1, none)
    torch.testing.assert_close(fast.double(), ref, atol=1e-6, rtol=0)
    textured = (_box(gray * gray) - _box(gray) ** 2).clamp_min(0).sqrt() > 0.02
    medians = [float(fast[k][textured & ~none[k]].median()) for k in range(len(heights))]
    assert medians[-1] > 0.7 and max(medians[:-1]) < 0.4, medians  # heights[-1] is the floor's; 0.82, ≤ 0.33 here
    textured &= ~none[-1]
    # the float32 torch version (the GPU's) is within its running sums' rounding
    torch.testing.assert_close(_plane_matches_torch(gray, K, c2w, partners, heights)[-1][textured],
                               fast[-1][textured], atol=0.05, rtol=0)


def test_plane_sweep_falls_back_to_torch_with_one_warning(monkeypatch):
    """Where the compiled sweep cannot run, the planes are matched with torch after one RuntimeWarning."""
    from lrm4d_ros import plane_kernels
    from lrm4d_ros.floor_fit import _plane_matches_torch, plane_matches

    def broken(*args):
        raise RuntimeError("no compiler here")

    gray, K, c2w, partners, heights = _sweep_inputs(res=32)
    monkeypatch.setattr(plane_kernels, "sweep_ncc", broken)
    monkeypatch.setattr(plane_kernels, "_SWEEP_STATE", [])
    with pytest.warns(RuntimeWarning, match="compiled plane sweep unavailable"):
        first = plane_matches(gray, K, c2w, partners, heights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        second = plane_matches(gray, K, c2w, partners, heights)
    ref = _plane_matches_torch(gray, K, c2w, partners, heights)
    assert torch.equal(first, ref) and torch.equal(second, ref)


def test_plane_sampling_falls_back_to_torch_with_one_warning(monkeypatch):
    """Where the compiled sampler cannot run, the views are read with torch after one RuntimeWarning."""
    from lrm4d_ros import plane_kernels

    def broken(*args):
        raise RuntimeError("no compiler here")

    images, depths, K, c2w = _floor_views(_noise_texture(4), res=32)
    o, d = pixel_rays(K, c2w, 32, 32)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    views = floor.with_views(images, K.float(), c2w.float(), depths.float(), depths.float(), sensed=True).views
    monkeypatch.setattr(plane_kernels, "sample_plane_views", broken)
    monkeypatch.setattr(plane_kernels, "_STATE", [])
    pts = torch.tensor([[0.9, 0.6, FLOOR_Z], [1.1, 0.2, FLOOR_Z]])
    dirs = F.normalize(pts - torch.tensor([0.5, 1.5, 2.5]), dim=-1)
    with pytest.warns(RuntimeWarning, match="compiled plane sampling unavailable"):
        first = views._sample(pts, dirs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        second = views._sample(pts, dirs)
    for a, b, c in zip(first, second, views._sample_torch(pts, dirs)):
        assert torch.equal(a, c) and torch.equal(b, c)


def test_floor_points_hidden_in_a_view_are_not_read_from_it():
    """Under the box every view saw the box, not the floor: reading the views must not paint the box's grey there
    (those points keep the texture's colour and its low weight)."""
    tex = torch.zeros(3, 64, 64)
    tex[0] = 1.0  # red floor
    images, depths, K, c2w = _floor_views(tex)
    o, d = pixel_rays(K, c2w, 64, 64)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    sharp = floor.with_views(images, K.float(), c2w.float(), depths.float(), depths.float(), sensed=True)
    eye = torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    dirs = F.normalize(torch.tensor([[0.0, 0.0, FLOOR_Z], [1.2, 0.6, FLOOR_Z]], dtype=torch.float64) - eye, dim=-1)
    (c_grid, p_grid), (c_views, p_views) = floor.lookup(eye.expand(2, 3), dirs), sharp.lookup(eye.expand(2, 3), dirs)
    torch.testing.assert_close(c_views[0], c_grid[0])  # no view shows the floor under the box
    torch.testing.assert_close(p_views, p_grid)
    torch.testing.assert_close(c_views[1].float(), torch.tensor([1.0, 0.0, 0.0]), atol=0.02, rtol=0)


def test_partners_are_the_other_cameras_at_the_same_time():
    """3 cameras side by side (0.25 apart) at two moments: a view's partners are the other cameras at its own time,
    not itself at the other (the same pose: no baseline)."""
    eyes = torch.tensor([[-0.25, 0.0, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 0.0]], dtype=torch.float64)
    c2w = look_at(eyes, eyes + torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    c2w6 = torch.cat([c2w, c2w])
    times = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    p = pick_partners(c2w6, times, 2)
    for v in range(6):
        assert set(p[v].tolist()) == {u for u in range(6) if u // 3 == v // 3 and u != v}
    assert pick_partners(c2w[:1], times[:1], 2).tolist() == [[0, 0]]  # one view: itself


def _checker(n: int = 32, side: int = 12) -> torch.Tensor:
    """(3, n·side, n·side): n×n squares (0.25 units over ±4 in `_floor_views`), green/magenta-ish."""
    tex = ((torch.arange(n)[:, None] + torch.arange(n)[None, :]) % 2).float()
    return torch.stack([tex, 1 - tex, 0.5 * torch.ones_like(tex)]).repeat_interleave(side, 1).repeat_interleave(side, 2)


def test_a_checkered_floor_repeats_where_no_view_saw_it():
    """The checkerboard's period is found from the part the views saw (translations by whole squares diagonally,
    a cell of 2 squares' area), and floor no view shows takes the colour of the square it lies on; without the
    period it takes the grid's blur. A noise floor has no period."""
    tex = _checker()
    images, depths, K, c2w = _floor_views(tex, res=96, box=False)
    o, d = pixel_rays(K, c2w, 96, 96)
    floor = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    sharp = floor.with_views(images, K.float(), c2w.float(), depths.float(), depths.float(), sensed=True)
    L = sharp.period
    assert L is not None
    squares = L / 0.25  # each translation moves by whole squares, an even number of them in all
    assert float((squares - squares.round()).abs().max()) < 0.05, L
    assert all(int(v.round().sum()) % 2 == 0 for v in squares), L
    assert abs(abs(float(torch.linalg.det(L))) - 2 * 0.25 ** 2) < 0.01, L
    g = torch.Generator().manual_seed(1)
    N = 4000
    r, az = 1.0 + 2 * torch.rand(N, generator=g, dtype=torch.float64), 2 * math.pi * torch.rand(N, generator=g)
    pts = torch.stack([r * az.cos(), r * az.sin(), torch.full_like(r, FLOOR_Z)], 1)
    eye = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64).expand(N, 3)
    dirs = F.normalize(pts - eye, dim=-1)
    repeated, p = sharp.lookup(eye, dirs, spread=0.001)
    blurred = replace(sharp, period=None, tile=None).lookup(eye, dirs, spread=0.001)[0].float()
    # claimed floor (near where the views looked) that no view shows, away from the squares' edges
    _, shown = sharp.views.sample(pts.float(), dirs.float())
    edge = ((pts[:, :2] / 0.25) - (pts[:, :2] / 0.25).round()).abs().amin(1) < 0.12
    keep = (p > 0) & (shown < 0.01) & ~edge
    assert int(keep.sum()) > 100
    truth = F.grid_sample(tex[None], (pts[None, :, None, :2] / 4.0).float(), align_corners=False)[0, :, :, 0].T
    err = (repeated.float() - truth).abs().mean(1)[keep].mean()
    err_blur = (blurred - truth).abs().mean(1)[keep].mean()
    assert float(err) < 0.12 and float(err_blur) > 2.5 * float(err), (float(err), float(err_blur))
    # a pixel wider than half a period on the floor sees the blur, not one square (the period fades out before)
    wide = sharp.lookup(eye, dirs, spread=0.2)[0].float()
    torch.testing.assert_close(wide[keep], blurred[keep])
    # a floor of noise does not repeat
    images, depths, K, c2w = _floor_views(_noise_texture(), res=96, box=False)
    o, d = pixel_rays(K, c2w, 96, 96)
    noisy = Floor.build(images, o, d, c2w[:, :3, 2], depths, FLOOR_Z)
    noisy = noisy.with_views(images, K.float(), c2w.float(), depths.float(), depths.float(), sensed=True)
    assert noisy.period is None and floor_period(noisy.views, FLOOR_Z) is None


def test_a_floor_height_the_caller_knows_bounds_an_rgb_rigs_pixels():
    """A smooth floor (a colour ramp, nothing for matching to lock onto) gives an RGB-only rig no floor; told the
    floor's world height (Reconstructor floor_z), the reconstruction has the floor layer there and no pixel
    Gaussian whose ray meets the floor lies beyond it. A floor_z not below every camera is refused."""

    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor
    from lrm4d_ros.views import ViewSet

    ramp = torch.linspace(0.2, 0.8, 384)
    across, along = ramp[None, :].expand(384, -1), ramp[:, None].expand(-1, 384)
    texture = torch.stack([across, along, 1 - across])
    images, _, K, c2w = _floor_views(texture, res=64, box=False)
    views = ViewSet(images=images, Ks=K.float(), camtoworlds=c2w, stamps_ns=torch.zeros(6, dtype=torch.int64),
                    camera_ids=torch.arange(6))
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
    unknown = Reconstructor(model, "cpu").reconstruct(views)
    assert unknown.background.floor is None
    rec = Reconstructor(model, "cpu", floor_z=FLOOR_Z)
    known = rec.reconstruct(views)
    norm = known.normalization
    h = (FLOOR_Z - float(norm.center[2])) * norm.scale
    assert abs(known.background.floor.height - h) < 1e-9 and not rec._floors
    c2w_canon = norm.poses_to_canonical(c2w)
    o, d = pixel_rays(K, c2w_canon, 64, 64)
    z_floor, hit = plane_depths(o, d, c2w_canon[:, :3, 2], h)

    def pixel_z(recon):  # camera z-depth (6,64,64) of each view's pixel Gaussians
        means = recon.gaussians.means[:6 * 64 * 64].double().view(6, 64, 64, 3)
        return ((means - c2w_canon[:, None, None, :3, 3]) * c2w_canon[:, None, None, :3, 2]).sum(-1)

    assert int(hit.sum()) > 6 * 64 * 20
    assert bool((pixel_z(known)[hit] <= z_floor[hit] * 1.01).all())  # float32 rays: grazing ones amplify rounding
    # without it, the same pixels go past where the floor is
    assert float((pixel_z(unknown)[hit] > z_floor[hit] * 1.05).double().mean()) > 0.2
    with pytest.raises(ValueError, match="floor_z"):
        Reconstructor(model, "cpu", floor_z=0.35).reconstruct(views)
    with pytest.raises(ValueError, match="floor_z"):
        Reconstructor(model, "cpu", floor_z=float("nan"))


def test_a_floor_z_the_depth_cameras_contradict_is_warned_once():
    """floor_z given to an RGB-D rig is held against the floor its depth shows: a height 0.3 m off (a frame mix-up)
    warns once, naming both heights; the right one, or one within 3 % of the cameras' height (1.1-1.4 m), is silent."""
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor
    from lrm4d_ros.views import ViewSet

    images, depths, K, c2w = _floor_views(_noise_texture(), res=64)
    views = ViewSet(images=images, Ks=K.float(), camtoworlds=c2w, stamps_ns=torch.zeros(6, dtype=torch.int64),
                    camera_ids=torch.arange(6), depths=depths.float())
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
    for floor_z in (FLOOR_Z, FLOOR_Z - 0.02, None):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Reconstructor(model, "cpu", floor_z=floor_z).reconstruct(views)
    rec = Reconstructor(model, "cpu", floor_z=FLOOR_Z + 0.3)
    with pytest.warns(RuntimeWarning, match=r"floor_z is -0\.500 m but the depth cameras show a floor at -0\.80"):
        known = rec.reconstruct(views)
    norm = known.normalization  # the floor is drawn where the caller said
    assert abs(known.background.floor.height - (FLOOR_Z + 0.3 - float(norm.center[2])) * norm.scale) < 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.reconstruct(views)


def test_a_renderers_background_in_depth_reads_as_no_measurement():
    """A renderer writes its far clip plane's z-depth where it hit nothing (here the sky and past the floor's end at
    8 m: 100 m, or 16UC1's 65.535 m), or a sky sphere's (100 m along each ray): those pixels measured nothing, and
    the reconstruction renders exactly as from depth images with 0 there, with one warning. The same scene's depths
    (exact, whose farthest floor row shares one z-depth; noisy; rounded to millimetres; a floor that runs on to the
    far plane; a few stray far pixels) hold no such background."""
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor, far_background
    from lrm4d_ros.views import ViewSet

    images, depths, K, c2w = _floor_views(_noise_texture(), res=64)
    depths = depths.float()
    sky = depths == 0
    assert 0.05 < float(sky.float().mean()) < 0.5
    g = torch.Generator().manual_seed(1)
    noisy = depths * (1 + 0.01 * torch.randn(depths.shape, generator=g))
    stray = depths.clone()
    stray[0, 0, :5] = 500.0
    for real in (depths, noisy, (depths * 1000).round() / 1000, torch.where(sky, torch.tensor(100.0), depths), stray):
        assert far_background(real) is None
    o, d = pixel_rays(K, c2w, 64, 64)
    cos = (d * c2w[:, None, None, :3, 2]).sum(-1).float()
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))

    def render(d, rec):
        views = ViewSet(images=images, Ks=K.float(), camtoworlds=c2w, stamps_ns=torch.zeros(6, dtype=torch.int64),
                        camera_ids=torch.arange(6), depths=d)
        out = rec.reconstruct(views).render(c2w[:2], K[:2], 64, 64, torch.zeros(2, dtype=torch.int64))
        return out.colors, out.depths

    beyond = sky | (depths > 8.0)  # a floor that ends: past it the renderer hits nothing (it reaches 600 m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        truth = render(torch.where(beyond, torch.zeros_like(depths), depths), Reconstructor(model, "cpu"))
    for name, far in (("plane", torch.tensor(100.0)), ("16UC1", torch.tensor(65.535)), ("sphere", 100.0 * cos)):
        background = torch.where(beyond, far, depths)
        assert 8.0 < far_background(background) <= float(far.min()), name
        rec = Reconstructor(model, "cpu")
        with pytest.warns(RuntimeWarning, match=r"a renderer's background from \d+\.\d{3} m on"):
            got = render(background, rec)
        torch.testing.assert_close(got, truth, atol=0, rtol=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per Reconstructor
            render(background, rec)


def test_a_world_whose_z_is_not_up_renders_as_its_own_and_is_told_once():
    """The floor scene's RGB-D rig in a y-down world (poses only): the reconstruction levels it (its cameras' x axes
    pin up) and renders its cameras as in the z-up world, with one warning naming the tilt; the z-up world is
    silent."""
    from dataclasses import replace

    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor
    from lrm4d_ros.views import ViewSet

    images, depths, K, c2w = _floor_views(_noise_texture(), res=64)
    views = ViewSet(images=images, Ks=K.float(), camtoworlds=c2w, stamps_ns=torch.zeros(6, dtype=torch.int64),
                    camera_ids=torch.arange(6), depths=depths.float())
    T = torch.eye(4, dtype=torch.float64)
    T[1:3, 1:3] = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)  # up becomes -y: a y-down world
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
    stamps = torch.zeros(3, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        level = Reconstructor(model, "cpu").reconstruct(views).render(c2w[:3], K[:3], 64, 64, stamps)
    rec = Reconstructor(model, "cpu")
    with pytest.warns(RuntimeWarning, match=r"the world frame's z is 90\.0° from the up"):
        turned = rec.reconstruct(replace(views, camtoworlds=T @ c2w))
    torch.testing.assert_close(turned.normalization.up, T[:3, 2], atol=1e-9, rtol=0)  # the old z
    out = turned.render(T @ c2w[:3], K[:3], 64, 64, stamps)
    assert float((out.colors - level.colors).abs().max()) < 1e-3
    assert float((out.depths - level.depths).abs().max()) < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per Reconstructor
        rec.reconstruct(replace(views, camtoworlds=T @ c2w))


def test_an_object_centric_rgbd_scene_has_no_floor_to_level_by():
    """Objects without a floor, measured by depth (the generator's object-centric scene, one orbiting camera's
    windows as `lrm4d reconstruct` takes them): a face of an object tilted 22° once passed for the floor and turned
    the reconstruction. A floor has nothing under it: nothing is levelled, and nothing is said."""
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor

    views = generate(4, SceneConfig(frames=6, cameras=2, height=24, width=32, rig_kinds=("orbit",)))
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny")), "cpu")
    cam0 = torch.nonzero(views.camera_ids == 0)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in range(2, 7):
            for start in range(0, 7 - n):
                norm = rec.reconstruct(views.select(cam0[start:start + n])).normalization
                assert torch.equal(norm.rotation, torch.eye(3, dtype=torch.float64))


def test_an_rgb_head_rig_in_a_turned_world_is_levelled_by_its_floor_once(monkeypatch):
    """An RGB-only head rig (rig validation scene 1002129) in a y-up world: the canonical frame turns to the up its
    floor shows (Reconstructor._level_by_colour; 0.5° off the truth), found in the first window and kept for later
    ones (one search). In its own z-up world nothing is searched (its image up lies under IMAGE_UP_DEG from z) and
    nothing turns. Where the floor shows nothing (untextured), at most COLOUR_UP_TRIES windows search; forget()
    starts over."""
    import lrm4d_ros.reconstructor as reconstructor
    from lrm4d_ros.data import eval_scenes as es
    from lrm4d_ros.data.protocols import protocol_groups

    scene = (1002129, "mobile", "head")
    assert scene in es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED, 32)
    views = es.render_robot_scenes([scene], 128)[0]
    views = replace(views.select(protocol_groups(views, "rig")[0]), depths=None)
    T = torch.eye(4, dtype=torch.float64)
    T[1:3, 1:3] = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)  # world z -> y: y up
    y_up = replace(views, camtoworlds=T.to(views.camtoworlds) @ views.camtoworlds)
    searched = []

    def counted(*args, **kwargs):
        searched.append(1)
        return up_from_photo(*args, **kwargs)

    monkeypatch.setattr(reconstructor, "up_from_photo", counted)
    rec = reconstructor.Reconstructor.from_checkpoint(device="cpu")  # (its input size: the views' 128²)
    assert torch.equal(rec.inputs(views).norm.rotation, torch.eye(3, dtype=torch.float64)) and not searched
    for _ in range(2):
        up = rec.inputs(y_up).norm.up
        assert math.degrees(math.acos(min(1.0, float(up @ T[:3, 2])))) < 1.0
    assert len(searched) == 1
    flat = replace(y_up, images=torch.full_like(y_up.images, 0.4))
    rec.forget()
    for _ in range(reconstructor.COLOUR_UP_TRIES + 2):
        assert torch.equal(rec.inputs(flat).norm.rotation, torch.eye(3, dtype=torch.float64))
    assert len(searched) == 1 + reconstructor.COLOUR_UP_TRIES
