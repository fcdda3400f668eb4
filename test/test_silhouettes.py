"""Depth from silhouettes: a sphere before a plain backdrop gets its depth from the views' outlines alone, and
scenes without a plain backdrop are left to the model."""
import math
import warnings

import pytest
import torch

from lrm4d_ros.cameras import fov_to_K, pixel_rays
from lrm4d_ros.cameras import look_at
from lrm4d_ros.silhouettes import find_backdrop, hull_depths, off_silhouette

RADIUS = 0.5
BACKDROP = torch.tensor([1.0, 1.0, 1.0])


def _sphere_rig(views: int = 8, res: int = 64, fov: float = 50.0):
    """`views` cameras on a tilted ring of radius 2 about a sphere at the origin: images (V,res,res,3) of an orange
    sphere on white, z-depths (V,res,res) (0 off the sphere), Ks (vertical field of view `fov` degrees),
    camtoworlds."""
    a = torch.arange(views, dtype=torch.float64) * 2 * math.pi / views
    eyes = torch.stack([2 * a.cos(), 2 * a.sin(), 0.6 * torch.sin(3 * a)], -1)
    c2w = look_at(eyes, torch.zeros_like(eyes))
    K = fov_to_K(math.radians(fov), res, res).expand(views, 3, 3).double()
    o, d = pixel_rays(K, c2w, res, res)
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - RADIUS ** 2)
    t = -b - disc.clamp_min(0).sqrt()
    hit = disc > 0
    shade = 0.6 + 0.4 * (-(o + t[..., None] * d) / RADIUS * d).sum(-1).clamp(0, 1)  # lit from the camera
    images = torch.where(hit[..., None], torch.stack([shade, 0.5 * shade, 0.1 * shade], -1), BACKDROP.double())
    depths = torch.where(hit, t * (d * c2w[:, None, None, :3, 2]).sum(-1), torch.zeros_like(t))
    return images.float(), depths.float(), K, c2w


def test_a_sphere_before_a_backdrop_gets_its_depth_from_the_silhouettes():
    images, depths, K, c2w = _sphere_rig()
    backdrop = find_backdrop(images)
    assert backdrop is not None
    torch.testing.assert_close(backdrop, depths <= 0, atol=0, rtol=0)  # the sphere, exactly
    found = hull_depths(images, K, c2w, torch.zeros(len(images)), backdrop)
    sphere = depths > 0
    assert bool((found[sphere] > 0).all()) and bool((found[~sphere] == 0).all())
    rel = (found[sphere] - depths[sphere]).abs() / depths[sphere]
    # eight outlines make a polyhedron about the sphere, on a sweep of 3.4 % steps, smoothed over 5×5 pixels
    median, p90 = float(rel.median()), float(rel.quantile(0.9))
    assert median < 0.03 and p90 < 0.05, (median, p90)


@pytest.mark.parametrize("fov", [50.0, 26.0])  # 26°: the sphere overflows every frame: views see parts of rays
def test_compiled_hull_sweep_equals_the_torch_version(fov):
    """hull_kernels.entry (the CPU path, walking each ray's depths only until the answer is sure) against the torch
    version (every depth through every view) on every pixel's ray of two views, the sphere's and the backdrop's:
    the same entry depths, exactly."""
    from lrm4d_ros.pixel_gaussians import z_rays
    from lrm4d_ros.silhouettes import HULL_PLANES, HULL_RANGE, _hull_entry, _hull_entry_torch

    images, depths, K, c2w = _sphere_rig(fov=fov)
    masks = (~find_backdrop(images)).float()[:, None] if fov == 50.0 else (depths > 0).float()[:, None]
    origins, rays = z_rays(K, c2w, 64, 64)
    zs = torch.exp(torch.linspace(math.log(HULL_RANGE[0]), math.log(HULL_RANGE[1]), HULL_PLANES,
                                  dtype=torch.float64))
    w2c = torch.linalg.inv(c2w)
    for v in (0, 3):
        carvers = [u for u in range(len(images)) if u != v]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the compiled path must run, not fall back with a warning
            fast = _hull_entry(origins[v, 0, 0], rays[v].reshape(-1, 3), zs, masks, K, w2c, carvers)
        ref = _hull_entry_torch(origins[v, 0, 0], rays[v].reshape(-1, 3), zs, masks, K, w2c, carvers)
        on = (depths[v] > 0).reshape(-1)
        assert float((ref[on] > 0).float().mean()) > 0.95
        if fov == 50.0:  # at 26° the hull is loose where views see only parts of the rays
            assert float((ref[~on] > 0).float().mean()) < 0.2
        assert torch.equal(fast, ref)


def test_hull_sweep_falls_back_to_torch_with_one_warning(monkeypatch):
    """Where the compiled sweep cannot run, the hull is carved with torch after one RuntimeWarning."""
    from lrm4d_ros import hull_kernels

    def broken(*args):
        raise RuntimeError("no compiler here")

    images, _, K, c2w = _sphere_rig(res=32)
    backdrop = find_backdrop(images)
    expected = hull_depths(images, K, c2w, torch.zeros(len(images)), backdrop)
    monkeypatch.setattr(hull_kernels, "hull_entry", broken)
    monkeypatch.setattr(hull_kernels, "_STATE", [])
    with pytest.warns(RuntimeWarning, match="compiled hull sweep unavailable"):
        first = hull_depths(images, K, c2w, torch.zeros(len(images)), backdrop)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        second = hull_depths(images, K, c2w, torch.zeros(len(images)), backdrop)
    assert torch.equal(first, expected) and torch.equal(second, expected)


def test_views_carve_only_near_their_own_time():
    images, depths, K, c2w = _sphere_rig()
    times = torch.linspace(-1, 1, len(images))
    times[0] = -1.0
    times[1:] = 1.0  # every other view was taken at the window's other end, when the sphere may have moved
    found = hull_depths(images, K, c2w, times, find_backdrop(images))
    assert bool((found[0] == 0).all())  # nothing to carve view 0's hull: the model keeps its own depth there
    assert bool((found[1:][depths[1:] > 0] > 0).all())


def test_scenes_without_a_plain_backdrop_are_left_alone():
    images, _, _, _ = _sphere_rig()
    noisy = (images + 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert find_backdrop(noisy) is None  # a textured background (a floor, a room)
    assert find_backdrop(torch.ones(4, 16, 16, 3)) is None  # nothing before the backdrop
    framed = images.clone()
    framed[:, :, :8] = torch.tensor([0.2, 0.3, 0.4])  # something large fills a side of every view
    framed[:, :, -8:] = torch.tensor([0.2, 0.3, 0.4])
    framed[:, :8] = torch.tensor([0.2, 0.3, 0.4])
    assert find_backdrop(framed) is None
    walled = images.clone()
    walled[0, :24] = torch.tensor([0.9, 0.9, 0.8])  # one view sees a wall above a plain floor: the floor is no backdrop
    assert find_backdrop(walled) is None  # though the other views' borders are all floor colour


def test_outline_pixels_are_unmixed_from_the_backdrop():
    from lrm4d_ros.silhouettes import unmix_edges

    red = torch.tensor([0.9, 0.1, 0.1])
    images = torch.ones(2, 24, 24, 3)
    images[:, 8:16, 8:16] = red
    images[:, 8:16, 16] = 0.4 * red + 0.6 * torch.ones(3)  # a column 40 % covered by the square
    backdrop = find_backdrop(images)
    assert backdrop is not None
    outline, coverage, colours = unmix_edges(images, backdrop)
    torch.testing.assert_close(coverage[:, 8:16, 16], torch.full((2, 8), 0.4), atol=1e-5, rtol=0)
    torch.testing.assert_close(colours[:, 8:16, 16], red.expand(2, 8, 3), atol=1e-5, rtol=0)
    assert bool(outline[:, 8:16, 16].all()) and not bool(outline[:, 10:14, 10:14].any())
    assert bool((coverage[:, 10:14, 10:14] == 1).all())  # the interior keeps all of itself
    torch.testing.assert_close(coverage[:, 8:16, 8], torch.ones(2, 8), atol=1e-5, rtol=0)  # a hard edge is all object


def test_gaussians_other_views_see_on_the_backdrop_are_found():
    images, depths, K, c2w = _sphere_rig()
    backdrop = find_backdrop(images)
    o, d = pixel_rays(K, c2w, *depths.shape[1:])
    z_dir = (d * c2w[:, None, None, :3, 2]).sum(-1)
    on_sphere = o + (depths / z_dir)[..., None] * d  # each sphere pixel's surface point
    times = torch.zeros(len(images))
    off = off_silhouette(on_sphere.float(), backdrop, K, c2w, times)
    sphere = depths > 0
    assert not bool(off[~sphere].any())  # the backdrop's pixels are not asked about
    # (about 5 % fall within half a pixel outside another view's outline, where its pixel centres see backdrop)
    assert float(off[sphere].float().mean()) < 0.07
    # view 0's pixels pulled 40 % nearer along their rays: floaters before the sphere, beside its outline elsewhere
    before = on_sphere.clone()
    before[0] = o[0] + (0.6 * depths[0] / z_dir[0])[..., None] * d[0]
    off = off_silhouette(before.float(), backdrop, K, c2w, times)
    # (those whose neighbours' lines of sight still cross the sphere stay: they may be in front of it)
    assert float(off[0][sphere[0]].float().mean()) > 0.7
    assert float(off[1:][sphere[1:]].float().mean()) < 0.07
    # views far from view 0 in time do not judge it (the objects may have moved)
    times[1:] = 1.0
    assert not bool(off_silhouette(before.float(), backdrop, K, c2w, times)[0].any())
