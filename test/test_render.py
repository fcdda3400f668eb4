"""render(): analytic images, compositing order and stopping rule, depth, background, poses, gradients."""
import math

import pytest
import torch

from lrm4d_ros.render import render
from lrm4d_ros.render.projection import EPS2D
from lrm4d_ros.render.rasterize_torch import rasterize

W, H = 48, 40


def _K(f=60.0, cx=23.5, cy=19.5, dtype=torch.float64):
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def _iso(n, s):
    return torch.eye(3, dtype=torch.float32).expand(n, 3, 3) * s * s


def _one(mean, s=0.05, o=0.8, color=(1.0, 1.0, 1.0), K=None, c2w=None, **kw):
    K = _K() if K is None else K
    c2w = torch.eye(4, dtype=torch.float64) if c2w is None else c2w
    return render(torch.tensor([mean], dtype=torch.float32), _iso(1, s), torch.tensor([o]),
                  torch.tensor([color]), c2w[None], K[None], W, H, **kw)


def _fit_gaussian(img):
    """Least-squares fit of log img = log p − ((u−μx)² + (v−μy)²)/(2σ²) over clearly lit pixels."""
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")
    m = img > 0.05
    A = torch.stack([torch.ones_like(u[m]), u[m], v[m], u[m] ** 2 + v[m] ** 2], -1)
    coef = torch.linalg.lstsq(A, img[m].double().log()[:, None]).solution[:, 0]
    inv2s2 = -coef[3]
    mx, my = coef[1] / (2 * inv2s2), coef[2] / (2 * inv2s2)
    peak = torch.exp(coef[0] + inv2s2 * (mx ** 2 + my ** 2))
    return mx.item(), my.item(), math.sqrt(1 / (2 * inv2s2.item())), peak.item()


def test_isotropic_gaussian_is_the_analytic_2d_gaussian():
    f, cx, cy, z, s, o = 60.0, 21.3, 18.7, 2.0, 0.05, 0.8
    out = _one([0.0, 0.0, z], s=s, o=o, K=_K(f, cx, cy))
    img = out.alphas[0, :, :, 0].double()
    sigma2 = (f * s / z) ** 2 + EPS2D  # EWA: J Σ Jᵀ on the optical axis, plus gsplat's blur
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                          indexing="ij")
    expected = o * torch.exp(-0.5 * ((u - cx) ** 2 + (v - cy) ** 2) / sigma2)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    assert (img - expected).abs().max().item() < 1e-5
    mx, my, sd, peak = _fit_gaussian(img)
    assert abs(mx - cx) < 0.05 and abs(my - cy) < 0.05
    assert abs(sd / math.sqrt(sigma2) - 1) < 0.01
    assert abs(peak / o - 1) < 0.01
    assert torch.allclose(out.colors[0, :, :, 0].double(), img, atol=1e-6)  # white over black


def test_pose_convention_axis_point_lands_on_principal_point():
    angle = 0.7
    R = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]],
                     dtype=torch.float64) @ torch.tensor([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = R
    c2w[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    point = (c2w @ torch.tensor([0.0, 0.0, 3.0, 1.0], dtype=torch.float64))[:3]
    cx, cy = 17.25, 22.5
    out = _one(point.tolist(), K=_K(cx=cx, cy=cy), c2w=c2w)
    mx, my, _, _ = _fit_gaussian(out.alphas[0, :, :, 0])
    assert abs(mx - cx) < 0.05 and abs(my - cy) < 0.05
    assert abs(out.depths[0, 22, 17, 0].item() - 3.0) < 1e-4
    behind = _one((c2w @ torch.tensor([0.0, 0.0, -3.0, 1.0], dtype=torch.float64))[:3].tolist(), c2w=c2w)
    assert behind.alphas.abs().max().item() == 0.0


def _two(z_red, z_blue, o=0.7, bg=(0.0, 0.0, 0.0)):
    means = torch.tensor([[0.0, 0.0, z_red], [0.0, 0.0, z_blue]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return render(means, _iso(2, 0.05), torch.tensor([o, o]), colors, torch.eye(4)[None], _K(cx=24, cy=20)[None],
                  W, H, background=torch.tensor(bg))


def test_front_to_back_order_follows_depth_not_input_order():
    o, bg = 0.7, torch.tensor([0.1, 0.2, 0.3])
    near_red = _two(2.0, 3.0, o, bg.tolist()).colors[0, 20, 24]
    near_blue = _two(3.0, 2.0, o, bg.tolist()).colors[0, 20, 24]
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(near_red, o * red + (1 - o) * o * blue + (1 - o) ** 2 * bg, atol=1e-5)
    assert torch.allclose(near_blue, o * blue + (1 - o) * o * red + (1 - o) ** 2 * bg, atol=1e-5)


def test_opaque_stack_stops_before_transmittance_reaches_1e_minus_4():
    # Three opaque Gaussians: alpha clamps to 0.999; the second would leave T = 1e-6 <= 1e-4, so the pixel
    # stops before it (gsplat's exclusive rule) and keeps T = 1e-3 of background.
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.5], [0.0, 0.0, 3.0]])
    colors = torch.eye(3)
    bg = torch.tensor([0.0, 0.5, 1.0])
    out = render(means, _iso(3, 0.05), torch.ones(3), colors, torch.eye(4)[None], _K(cx=24, cy=20)[None], W, H,
                 background=bg)
    expected = 0.999 * colors[0] + 0.001 * bg
    assert torch.allclose(out.colors[0, 20, 24], expected, atol=1e-6)
    assert abs(out.alphas[0, 20, 24, 0].item() - 0.999) < 1e-6
    assert abs(out.depths[0, 20, 24, 0].item() - 2.0) < 1e-5


def test_expected_depth_of_one_and_two_gaussians():
    single = _one([0.0, 0.0, 2.5], o=0.99, K=_K(cx=24, cy=20))
    lit = single.alphas[0, :, :, 0] > 0
    assert torch.allclose(single.depths[0, :, :, 0][lit], torch.full_like(single.depths[0, :, :, 0][lit], 2.5))
    assert single.depths[0, :, :, 0][~lit].abs().max().item() == 0.0
    o = 0.6
    out = _two(2.0, 4.0, o)
    w1, w2 = o, (1 - o) * o
    assert abs(out.depths[0, 20, 24, 0].item() - (2.0 * w1 + 4.0 * w2) / (w1 + w2)) < 1e-5
    assert abs(out.alphas[0, 20, 24, 0].item() - (w1 + w2)) < 1e-6


def _stack(zs, ops, backend, mode="median"):
    """Gaussians on the optical axis at depths zs with opacities ops, drawn by a CPU backend ("numba": render(),
    "torch": the reference) with depth_mode `mode`: (colors, alphas, depths, ...)."""
    n = len(zs)
    means = torch.tensor([[0.0, 0.0, z] for z in zs])
    args = (_iso(n, 0.05), torch.tensor(ops), torch.rand(n, 3, generator=torch.Generator().manual_seed(0)))
    K = _K(cx=24, cy=20)[None]
    if backend == "numba":
        return render(means, *args, torch.eye(4)[None], K, W, H, depth_mode=mode)
    return rasterize(means, *args, torch.eye(4)[None], K.float(), W, H, torch.zeros(1, 3), 0.01, 1e10,
                     median=mode == "median")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_median_depth_is_the_layer_that_covers_half_the_pixel(backend):
    """depth_mode="median": at the centre pixel (alpha = opacity) of Gaussians on the axis, the depth of the layer
    (Gaussians within LAYER_GAP of each other in depth) where Σ w reaches one half, averaged over that layer's
    weights; the expected depth there mixes in the surfaces before and behind; where Σ w never reaches one half, the
    expected depth. Colours and alphas are a plain render's."""
    def centre(zs, ops):
        out = _stack(zs, ops, backend)
        return out[2][0, 20, 24, 0].item(), out

    # a layer of two at 2.0 and 2.1 holds 0.3 + 0.7 * 0.3 = 0.51 of the pixel: the depth is its weighted mean
    z, out = centre([2.0, 2.1, 4.0], [0.3, 0.3, 0.9])
    assert abs(z - (0.3 * 2.0 + 0.21 * 2.1) / 0.51) < 1e-5
    expected = _stack([2.0, 2.1, 4.0], [0.3, 0.3, 0.9], backend, "expected")
    assert torch.equal(expected[0], out[0]) and torch.equal(expected[1], out[1])
    assert expected[2][0, 20, 24, 0].item() > z + 0.5
    # the same layer holding 0.36: half is reached behind it, and the depth is the background's
    z, _ = centre([2.0, 2.1, 4.0], [0.2, 0.2, 0.9])
    assert abs(z - 4.0) < 1e-5
    # never half: the expected depth of what there is
    z, _ = centre([2.0, 2.1], [0.2, 0.2])
    assert abs(z - (0.2 * 2.0 + 0.16 * 2.1) / 0.36) < 1e-5
    # off the centre, the layer's share falls with the falloff: the depth flips to the background, never between
    # (where the pixel is at least half covered; the rest has the expected depth)
    depths = out[2][0, 20, :, 0]
    lit = out[1][0, 20, :, 0] >= 0.5
    assert ((depths[lit] - 2.04).abs() < 0.06).any() and ((depths[lit] - 4.0).abs() < 1e-5).any()
    assert (((depths[lit] - 2.04).abs() < 0.06) | ((depths[lit] - 4.0).abs() < 1e-5)).all()
    with pytest.raises(ValueError, match="depth_mode"):
        render(torch.zeros(1, 3), _iso(1, 0.05), torch.ones(1), torch.ones(1, 3), torch.eye(4)[None],
               _K()[None], W, H, depth_mode="mean")


def test_background_per_camera_and_translucency():
    c2w = torch.eye(4).expand(2, 4, 4)
    bgs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    o, color = 0.3, torch.tensor([0.2, 0.4, 0.6])
    out = render(torch.tensor([[0.0, 0.0, 2.0]]), _iso(1, 0.05), torch.tensor([o]), color[None], c2w,
                 _K(cx=24, cy=20).expand(2, 3, 3), W, H, background=bgs)
    for c in range(2):
        assert torch.allclose(out.colors[c, 20, 24], o * color + (1 - o) * bgs[c], atol=1e-6)
        assert torch.allclose(out.colors[c, 0, 0], bgs[c])
    assert out.alphas[:, 0, 0].abs().max().item() == 0.0


def test_near_far_culling():
    assert _one([0.0, 0.0, 2.0], near=2.5).alphas.max().item() == 0.0
    assert _one([0.0, 0.0, 2.0], far=1.5).alphas.max().item() == 0.0
    assert _one([0.0, 0.0, 2.0], near=1.0, far=3.0).alphas.max().item() > 0.5


def _random_scene(n, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * 0.3 + torch.tensor([0.0, 0.0, 2.0], dtype=dtype)
    A = torch.randn(n, 3, 3, generator=g, dtype=dtype) * 0.04
    covars = A @ A.transpose(1, 2) + torch.eye(3, dtype=dtype) * 1e-3
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.6 + 0.2
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, covars, opac, colors


def _reference_render(means, covars, opac, colors, c2w, K, bg):
    """gsplat's per-pixel loop written plainly: every Gaussian at every pixel, one Gaussian at a time."""
    from lrm4d_ros.cameras import invert_pose
    from lrm4d_ros.render.projection import project

    p = project(means, covars, opac, invert_pose(c2w[None]), K[None], W, H, 0.01, 1e10)
    v, u = torch.meshgrid(torch.arange(H, dtype=means.dtype), torch.arange(W, dtype=means.dtype), indexing="ij")
    T, rgb, done = torch.ones(H, W), torch.zeros(H, W, 3), torch.zeros(H, W, dtype=torch.bool)
    for i in torch.argsort(p.depths[0]).tolist():
        if p.depths[0, i] < 0.01:
            continue
        dx, dy = u - p.means2d[0, i, 0], v - p.means2d[0, i, 1]
        a, b, c = p.conics[0, i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = (opac[i] * torch.exp(-sigma)).clamp(max=0.999)
        ok = (sigma >= 0) & (alpha >= 1 / 255) & ~done
        stop = ok & (T * (1 - alpha) <= 1e-4)
        done |= stop
        blend = ok & ~stop
        rgb += torch.where(blend[..., None], (alpha * T)[..., None] * colors[i], torch.zeros(3))
        T = torch.where(blend, T * (1 - alpha), T)
    return rgb + T[..., None] * bg, 1 - T


def test_matches_plain_per_pixel_loop_on_elongated_gaussians():
    g = torch.Generator().manual_seed(4)
    n = 80
    means = torch.randn(n, 3, generator=g) * 0.4 + torch.tensor([0.0, 0.0, 2.0])
    A = torch.randn(n, 3, 3, generator=g) * torch.tensor([0.15, 0.02, 0.005])  # long, thin, rotated
    covars = A @ A.transpose(1, 2) + torch.eye(3) * 1e-5
    opac = torch.rand(n, generator=g) * 0.99 + 0.01
    opac[:3] = 1.0
    colors = torch.rand(n, 3, generator=g)
    bg = torch.tensor([0.3, 0.6, 0.9])
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.05, -0.1, 0.0])
    ref_rgb, ref_alpha = _reference_render(means, covars, opac, colors, c2w, _K(dtype=torch.float32), bg)
    out = render(means, covars, opac, colors, c2w[None], _K()[None], W, H, background=bg)
    assert ref_alpha.mean().item() > 0.3 and (ref_alpha > 0.999).any()
    assert (out.colors[0] - ref_rgb).abs().max().item() < 1e-5
    assert (out.alphas[0, :, :, 0] - ref_alpha).abs().max().item() < 1e-5


def test_block_processing_matches_one_pass():
    means, covars, opac, colors = _random_scene(300, 1)
    args = (means, covars, opac, colors, torch.eye(4)[None], _K(dtype=torch.float32)[None], W, H,
            torch.tensor([[0.3, 0.3, 0.3]]), 0.01, 1e10)
    one = rasterize(*args)
    many = rasterize(*args, max_pairs=200)
    for a, b in zip(one, many):
        assert torch.allclose(a, b, atol=2e-6)
    assert one[1].mean().item() > 0.3  # the scene really covers the image


def test_gradcheck_float64():
    means, covars, opac, colors = _random_scene(5, 2, torch.float64)
    K = torch.tensor([[18.0, 0, 6.5], [0, 18.0, 5.5], [0, 0, 1]], dtype=torch.float64)
    bg = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)

    def fn(m, c, o, col):
        out = render(m, c, o, col, torch.eye(4, dtype=torch.float64)[None], K[None], 14, 12, background=bg)
        return out.colors, out.alphas, out.depths

    inputs = tuple(t.clone().requires_grad_() for t in (means, covars, opac, colors))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_blocks_cameras_and_stopping():
    # Two opaque Gaussians stacked on the axis make central pixels stop (T would fall below 1e-4); tiny
    # blocks send transmittance across block boundaries; two cameras share the Gaussians.
    means, covars, opac, colors = _random_scene(6, 3, torch.float64)
    means[2:, 2] += 1.0  # behind the pair below
    means[:2] = torch.tensor([[0.5 / 18 * 1.8, 0.5 / 18 * 1.8, 1.8], [0.5 / 18 * 2.2, 0.5 / 18 * 2.2, 2.2]],
                             dtype=torch.float64)  # both project onto the centre of pixel (7, 6) of camera 0
    covars[:2] = torch.eye(3, dtype=torch.float64) * 0.003
    opac[:2] = 1.0
    K = torch.tensor([[18.0, 0, 6.5], [0, 18.0, 5.5], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3)
    c2w = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    c2w[1, :3, 3] = torch.tensor([0.1, -0.05, 0.0])
    bg = torch.tensor([[0.2, 0.3, 0.4], [1.0, 1.0, 1.0]], dtype=torch.float64)
    from lrm4d_ros.cameras import invert_pose

    def fn(m, c, o, col):
        return rasterize(m, c, o, col, invert_pose(c2w), K, 14, 12, bg, 0.01, 1e10, max_pairs=150)

    out = fn(means, covars, opac, colors)
    # First alpha clamps to 0.999; the second would leave T <= 1e-4, so it and all behind are skipped.
    assert abs(out[1][0, 6, 7, 0].item() - 0.999) < 1e-9
    inputs = tuple(t.clone().requires_grad_() for t in (means, covars, opac, colors))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_no_visible_gaussian_still_differentiable():
    means = torch.tensor([[0.0, 0.0, -2.0]], requires_grad=True)
    out = render(means, _iso(1, 0.05), torch.tensor([0.5]), torch.ones(1, 3), torch.eye(4)[None], _K()[None], W, H)
    out.colors.sum().backward()
    assert means.grad is not None and means.grad.abs().max().item() == 0.0


@pytest.mark.parametrize("bad, err", [
    (dict(means=torch.zeros(2, 2)), ValueError),
    (dict(covars=torch.zeros(2, 3)), ValueError),
    (dict(opacities=torch.zeros(3)), ValueError),
    (dict(colors=torch.zeros(2, 3, dtype=torch.float64)), TypeError),
    (dict(Ks=torch.zeros(2, 3, 3)), ValueError),
    (dict(width=0), ValueError),
    (dict(background=torch.zeros(4)), ValueError),
    (dict(means=torch.zeros(2, 3, dtype=torch.int64)), TypeError),
])
def test_bad_inputs_raise(bad, err):
    kw = dict(means=torch.zeros(2, 3), covars=_iso(2, 0.1), opacities=torch.ones(2), colors=torch.ones(2, 3),
              camtoworlds=torch.eye(4)[None], Ks=_K()[None], width=W, height=H)
    kw.update(bad)
    with pytest.raises(err):
        render(**kw)


def test_gsplat_backend_shifts_K_and_splits_outputs(monkeypatch):
    """The CUDA backend's contract with gsplat, checked against a recording stand-in (no GPU here)."""
    import sys
    import types

    from lrm4d_ros.render import rasterize_gsplat

    calls = {}

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kw):
        calls.update(Ks=Ks, quats=quats, scales=scales, **kw)
        C = viewmats.shape[0]
        rendered = torch.arange(C * height * width * 4, dtype=torch.float32).reshape(C, height, width, 4)
        return rendered, torch.full((C, height, width, 1), 0.5), {}

    monkeypatch.setitem(sys.modules, "gsplat", types.SimpleNamespace(rasterization=rasterization))
    K = _K(cx=10.0, cy=7.0, dtype=torch.float32)[None]
    covars = _iso(1, 0.1)
    rgb, alpha, depth = rasterize_gsplat.rasterize(torch.zeros(1, 3), covars, torch.ones(1), torch.ones(1, 3),
                                                   torch.eye(4)[None], K, 6, 5, torch.zeros(1, 3), 0.1, 50.0)
    assert calls["Ks"][0, 0, 2].item() == 10.5 and calls["Ks"][0, 1, 2].item() == 7.5
    assert K[0, 0, 2].item() == 10.0  # the caller's K is not modified
    assert calls["covars"] is covars and calls["quats"] is None and calls["scales"] is None
    assert (calls["render_mode"], calls["rasterize_mode"], calls["packed"]) == ("RGB+ED", "classic", False)
    assert (calls["near_plane"], calls["far_plane"], calls["eps2d"]) == (0.1, 50.0, EPS2D)
    assert rgb.shape == (1, 5, 6, 3) and depth.shape == (1, 5, 6, 1) and alpha.shape == (1, 5, 6, 1)
    assert depth[0, 0, 1, 0].item() == 7.0 and rgb[0, 0, 1, 2].item() == 6.0
    # gsplat's classic mode has no median depth: the reference's, beside gsplat's colours
    means = torch.tensor([[0.0, 0.0, 2.0]])
    rgb, alpha, depth, *_ = rasterize_gsplat.rasterize(means, covars, torch.ones(1), torch.ones(1, 3),
                                                       torch.eye(4)[None], K, 6, 5, torch.zeros(1, 3), 0.1, 50.0,
                                                       median=True)
    assert rgb[0, 0, 1, 2].item() == 6.0 and abs(depth[0, 2, 3, 0].item() - 2.0) < 1e-6


def test_cuda_falls_back_to_the_reference_when_gsplat_fails_to_build(monkeypatch):
    """gsplat compiles its CUDA kernels on first use; where that fails (an nvcc it does not support), a GPU run
    renders with the reference rasterizer after one warning instead of stopping."""
    import lrm4d_ros.render as R
    from lrm4d_ros.render import rasterize_gsplat, rasterize_torch

    def failing_build():
        raise RuntimeError("Error building extension 'gsplat_cuda'")

    monkeypatch.setattr(R, "_cuda", [])
    monkeypatch.setattr(R.importlib.util, "find_spec", lambda name, *a: object() if name == "gsplat" else None)
    monkeypatch.delenv("LRM4D_NO_GSPLAT", raising=False)
    monkeypatch.setattr(rasterize_gsplat, "warm_up", failing_build)
    assert R.gsplat_available()
    with pytest.warns(RuntimeWarning, match="gsplat unavailable .*Error building extension"):
        name, fn = R.cuda_backend()
    assert (name, fn) == ("torch", rasterize_torch.rasterize) and not R.gsplat_available()
    monkeypatch.setattr(R, "_cuda", [])
    monkeypatch.setenv("LRM4D_NO_GSPLAT", "1")
    assert not R.gsplat_available() and R.cuda_backend()[0] == "none"


def test_non_rigid_poses_and_bad_intrinsics_are_refused():
    means, covars = torch.tensor([[0.0, 0.0, 2.0]]), torch.eye(3)[None] * 0.01
    args = (torch.ones(1), torch.ones(1, 3))
    K = torch.tensor([[[20.0, 0.0, 9.5], [0.0, 20.0, 9.5], [0.0, 0.0, 1.0]]])
    scaled = torch.eye(4)[None].clone()
    scaled[0, :3, :3] *= 2  # rendered the same image with depths doubled, without a word
    with pytest.raises(ValueError, match="rigid camera-to-world"):
        render(means, covars, *args, scaled, K, 20, 20)
    K0 = K.clone()
    K0[0, 0, 0] = 0.0
    with pytest.raises(ValueError, match="fx, fy > 0"):
        render(means, covars, *args, torch.eye(4)[None], K0, 20, 20)
    assert float(render(means, covars, *args, torch.eye(4)[None], K, 20, 20).alphas.max()) > 0.5
