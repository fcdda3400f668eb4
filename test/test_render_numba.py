"""The compiled CPU rasterizer (rasterize_numba) against the PyTorch reference (rasterize_torch): pixels,
gradients, float64 finite differences, threads, and the fallback when numba is unavailable."""
import math
import sys
import warnings

import pytest
import torch

import lrm4d_ros.render as render_pkg
from conftest import fresh_python
from lrm4d_ros.cameras import invert_pose
from lrm4d_ros.render import cpu_backend, render, rasterize_numba, rasterize_torch

W, H = 45, 37  # not multiples of 16: partial tiles on the right and bottom


def _K(f=50.0, cx=22.0, cy=18.0, dtype=torch.float64):
    return torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def _cameras(C=1, dtype=torch.float64):
    c2w = torch.eye(4, dtype=dtype).repeat(C, 1, 1)
    for c in range(1, C):
        a = 0.15 * c
        c2w[c, :3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
                                      dtype=dtype)
        c2w[c, :3, 3] = torch.tensor([-0.3 * c, 0.05 * c, 0.1], dtype=dtype)
    return c2w, _K(dtype=dtype).expand(C, 3, 3)


def _random(n, seed, dtype=torch.float32, spread=0.4, scale=0.04):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * spread + torch.tensor([0.0, 0.0, 2.0], dtype=dtype)
    A = torch.randn(n, 3, 3, generator=g, dtype=dtype) * scale
    covars = A @ A.transpose(1, 2) + torch.eye(3, dtype=dtype) * 1e-4
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.98 + 0.01
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, covars, opac, colors


def _scene(kind, dtype=torch.float32):
    """(means, covars, opacities, colors) of the named test scene."""
    if kind == "random":
        return _random(400, 1, dtype)
    if kind == "dense":  # many layers: most pixels stop on the transmittance rule
        m, c, o, col = _random(1500, 2, dtype, spread=0.25, scale=0.06)
        return m, c, o.clamp(min=0.5), col
    if kind == "elongated":  # long, thin, rotated
        g = torch.Generator().manual_seed(4)
        means = torch.randn(120, 3, generator=g, dtype=dtype) * 0.4 + torch.tensor([0.0, 0.0, 2.0], dtype=dtype)
        A = torch.randn(120, 3, 3, generator=g, dtype=dtype) * torch.tensor([0.3, 0.02, 0.004], dtype=dtype)
        opac = torch.rand(120, generator=g, dtype=dtype)
        opac[:5] = 1.0
        return means, A @ A.transpose(1, 2) + torch.eye(3, dtype=dtype) * 1e-6, opac, torch.rand(120, 3,
                                                                                                 generator=g,
                                                                                                 dtype=dtype)
    if kind == "large":  # a few Gaussians far wider than the image, over a random scene
        m, c, o, col = _random(200, 3, dtype)
        c[:4] = torch.eye(3, dtype=dtype) * torch.tensor([4.0, 1.0, 0.3, 9.0], dtype=dtype)[:, None, None]
        o[:4] = torch.tensor([0.3, 0.2, 0.6, 0.9], dtype=dtype)
        m[:4, 2] = torch.tensor([3.0, 2.5, 1.2, 6.0], dtype=dtype)
        return m, c, o, col
    if kind == "near":  # around the near plane (0.01) and very close to the camera
        m, c, o, col = _random(200, 5, dtype)
        m[:, 2] = torch.linspace(-0.02, 0.2, 200, dtype=dtype)
        m[:, :2] *= m[:, 2:3]
        return m, c * 0.01, o, col
    if kind == "behind":  # half of them behind the camera
        m, c, o, col = _random(300, 6, dtype)
        m[::2, 2] *= -1
        return m, c, o, col
    if kind == "offscreen":  # mostly outside the view, some straddling the image border
        m, c, o, col = _random(300, 7, dtype, spread=1.5)
        return m, c * 3.0, o, col
    if kind == "empty":
        return _random(0, 8, dtype)
    if kind == "invisible":  # all culled: behind, or opacity under 1/255
        m, c, o, col = _random(50, 9, dtype)
        m[:25, 2] = -2.0
        o[25:] = 0.001
        return m, c, o, col
    raise ValueError(kind)


SCENES = ["random", "dense", "elongated", "large", "near", "behind", "offscreen", "empty", "invisible"]


def _both(scene, C=1, dtype=torch.float32, width=W, height=H, **kw):
    c2w, Ks = _cameras(C)
    viewmats = invert_pose(c2w).to(dtype)
    bg = torch.tensor([[0.2, 0.5, 0.9]], dtype=dtype).expand(C, 3) * torch.arange(1, C + 1, dtype=dtype)[:, None] / C
    args = (viewmats, Ks.to(dtype), width, height, bg, kw.get("near", 0.01), kw.get("far", 1e10))
    return (rasterize_numba.rasterize(*scene, *args), rasterize_torch.rasterize(*scene, *args))


@pytest.mark.parametrize("kind", SCENES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pixels_equal_the_reference(kind, dtype):
    scene = _scene(kind, dtype)
    (rgb, alpha, depth), (rgb_t, alpha_t, depth_t) = _both(scene, C=2, dtype=dtype)
    assert rgb.dtype == dtype and rgb.shape == (2, H, W, 3) and alpha.shape == depth.shape == (2, H, W, 1)
    # The float32 reference projects in float32 (einsum, batched matmuls): on the elongated scene its
    # cancellation error reaches 9e-5 in colour and 1.1e-4 in alpha, against 5e-6 for the compiled one, which
    # projects in float64. There the 1e-5 bound holds against the float64 result of the same inputs (below).
    tol = 2e-4 if (kind, dtype) == ("elongated", torch.float32) else 1e-5
    assert (rgb - rgb_t).abs().max().item() < tol
    assert (alpha - alpha_t).abs().max().item() < tol
    # expected depth: relative to the scene's depth (z up to ~6 here)
    assert (depth - depth_t).abs().max().item() < tol * max(1.0, depth_t.abs().max().item())
    if dtype == torch.float32:
        (rgb64, alpha64, _), _ = _both([t.double() for t in scene], C=2, dtype=torch.float64)
        assert (rgb.double() - rgb64).abs().max().item() < 1e-5
        assert (alpha.double() - alpha64).abs().max().item() < 1e-5
    if kind in ("empty", "invisible"):
        assert alpha.abs().max().item() == 0.0 and depth.abs().max().item() == 0.0
    elif kind not in ("behind", "near"):
        assert alpha_t.mean().item() > 0.05  # the scene really covers the image


@pytest.mark.parametrize("kind", SCENES)
def test_depth_weights_equal_the_reference_and_leave_the_colours_alone(kind):
    """Depth weights d (render(depth_weights=)) blended in the colours' pass: the depth Σ w·d·z / Σ w·d and Σ w·d
    equal to the reference's, the colours and alphas (then 1 − the final transmittance) those of a render without
    them, to the bit, and weights of one give the plain depth."""
    scene = _scene(kind)
    n = len(scene[0])
    d = (torch.arange(n) % 3 == 0).float() * 0.75 + 0.25 * (torch.arange(n) % 2)
    c2w, Ks = _cameras(2)
    args = (invert_pose(c2w).float(), Ks.float(), W, H, torch.tensor([[0.2, 0.5, 0.9]]).expand(2, 3), 0.01, 1e10)
    plain = rasterize_numba.rasterize(*scene, *args)
    out = rasterize_numba.rasterize(*scene, *args, depth_weights=d)
    ref = rasterize_torch.rasterize(*scene, *args, depth_weights=d)
    assert torch.equal(out[0], plain[0]) and torch.equal(out[1], plain[1])
    assert out[2].shape == out[3].shape == (2, H, W, 1)
    tol = 2e-4 if kind == "elongated" else 1e-5  # the float32 reference's projection (see the test above)
    assert (out[3] - ref[3]).abs().max().item() < tol
    assert (out[2] - ref[2]).abs().max().item() < tol * max(1.0, ref[2].abs().max().item())
    ones = rasterize_numba.rasterize(*scene, *args, depth_weights=torch.ones(n))
    assert torch.equal(ones[2], plain[2]) and torch.equal(ones[3], plain[1])
    if kind == "random":  # both kinds of Gaussian cover pixels: the depth is theirs, not the plain one
        assert 0 < out[3].max().item() < plain[1].max().item() and (out[2] - plain[2]).abs().max().item() > 0.1


@pytest.mark.parametrize("kind", SCENES)
@pytest.mark.parametrize("weighted", [False, True])
def test_median_depth_equals_the_reference(kind, weighted):
    """The median layer's depth (render(depth_mode="median")) from the compiled blend equals the reference's, with
    and without depth weights; colours and alphas stay a plain render's to the bit, and the depth is the expected
    one wherever the pixel's coverage stays under one half."""
    scene = _scene(kind)
    n = len(scene[0])
    d = (torch.arange(n) % 3 != 0).float() if weighted else None
    c2w, Ks = _cameras(2)
    args = (invert_pose(c2w).float(), Ks.float(), W, H, torch.tensor([[0.2, 0.5, 0.9]]).expand(2, 3), 0.01, 1e10)
    plain = rasterize_numba.rasterize(*scene, *args, depth_weights=d)
    out = rasterize_numba.rasterize(*scene, *args, depth_weights=d, median=True)
    ref = rasterize_torch.rasterize(*scene, *args, depth_weights=d, median=True)
    alone = rasterize_torch.median_depths(scene[0], scene[1], scene[2], *args[:4], *args[5:], depth_weights=d)
    assert torch.equal(alone[0], ref[2]) and (d is None or torch.equal(alone[1], ref[3]))  # gsplat's depth pass
    # the reference in blocks of a few pairs: each pixel's layer carried from block to block
    blocks = rasterize_torch.median_depths(scene[0], scene[1], scene[2], *args[:4], *args[5:], depth_weights=d,
                                           max_pairs=97)
    assert (blocks[0] - ref[2]).abs().max().item() < 1e-5 * max(1.0, ref[2].abs().max().item())
    assert torch.equal(out[0], plain[0]) and torch.equal(out[1], plain[1])
    tol = 2e-4 if kind == "elongated" else 1e-5  # the float32 reference's projection (see the tests above)
    assert (out[2] - ref[2]).abs().max().item() < tol * max(1.0, ref[2].abs().max().item())
    cover = plain[1] if d is None else plain[3]
    assert torch.equal(out[2][cover < 0.5], plain[2][cover < 0.5])
    if kind in ("random", "dense"):  # layers apart in depth: the median is not the expected depth everywhere
        assert (out[2] - plain[2]).abs().max().item() > 0.05


def test_depth_weights_through_render_carry_no_gradient():
    """With gradients on, render(depth_weights=) gives the colours' gradients of a render without them (a second,
    forward-only pass gives the weighted depth) and none to the weights; they are checked."""
    means, covars, opac, colors = _scene("random")
    d = (torch.arange(len(means)) % 2).float().requires_grad_()
    c2w, Ks = _cameras(1)
    leaves = [t.clone().requires_grad_() for t in (means, covars, opac, colors)]
    out = render(*leaves, c2w, Ks, W, H, depth_weights=d)
    with torch.no_grad():
        alone = render(*leaves, c2w, Ks, W, H, depth_weights=d)
    assert torch.equal(out.depths, alone.depths) and torch.equal(out.depth_alphas, alone.depth_alphas)
    assert not out.depths.requires_grad and not out.depth_alphas.requires_grad
    out.colors.sum().backward()
    grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    render(*leaves, c2w, Ks, W, H).colors.sum().backward()
    assert all(torch.equal(a, t.grad) for a, t in zip(grads, leaves)) and d.grad is None
    assert render(*leaves, c2w, Ks, W, H).depth_alphas is None
    with pytest.raises(ValueError, match="one weight per Gaussian"):
        render(means, covars, opac, colors, c2w, Ks, W, H, depth_weights=torch.ones(3))


def test_scene_features_are_exercised():
    """The parity scenes hit what they are named for: stops on the 1e-4 rule, huge and clipped boxes."""
    _, (_, alpha, _) = _both(_scene("dense"))
    assert (alpha > 0.9998).float().mean().item() > 0.3  # T stopped just above 1e-4
    _, (_, alpha, _) = _both(_scene("large"), width=W, height=H)
    assert (alpha > 0).float().mean().item() > 0.95
    (_, alpha, _), _ = _both(_scene("near"))
    assert alpha.max().item() > 0.1


def test_equal_on_sizes_and_cameras():
    scene = _scene("random")
    for width, height, C in ((16, 16, 1), (17, 33, 3), (1, 5, 1), (64, 8, 2)):
        (rgb, alpha, depth), (rgb_t, alpha_t, depth_t) = _both(scene, C=C, width=width, height=height)
        assert (rgb - rgb_t).abs().max().item() < 1e-5
        assert (alpha - alpha_t).abs().max().item() < 1e-5
        assert (depth - depth_t).abs().max().item() < 1e-4


def test_two_pass_projection_equals_one_pass(monkeypatch):
    """Above ONE_PASS_PAIRS (camera, Gaussian) pairs the projection counts, then writes: the same pixels, bitwise,
    with chunks that start inside a camera's run of Gaussians."""
    scene = _scene("random")
    one = _both(scene, C=3)[0]
    monkeypatch.setattr(rasterize_numba, "ONE_PASS_PAIRS", 0)
    two = _both(scene, C=3)[0]
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_near_far_cut_matches():
    scene = _scene("random")
    for near, far in ((1.9, 1e10), (0.01, 2.1), (1.8, 2.2)):
        (rgb, alpha, _), (rgb_t, alpha_t, _) = _both(scene, near=near, far=far)
        assert (rgb - rgb_t).abs().max().item() < 1e-5 and (alpha - alpha_t).abs().max().item() < 1e-5
        assert 0.0 < alpha_t.mean().item() < 0.9


def _grads(rasterize, scene, C, seed=0):
    """Gradients of a random weighted sum of colour, alpha and depth w.r.t. means, covars, opacities, colors
    and the background."""
    c2w, Ks = _cameras(C)
    dtype = scene[0].dtype
    leaves = [t.clone().requires_grad_() for t in scene]
    bg = torch.tensor([[0.2, 0.5, 0.9]], dtype=dtype).repeat(C, 1).requires_grad_()
    out = rasterize(*leaves, invert_pose(c2w).to(dtype), Ks.to(dtype), W, H, bg, 0.01, 1e10)
    g = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=dtype)).sum() for o in out)
    loss.backward()
    return [t.grad for t in leaves] + [bg.grad]


@pytest.mark.parametrize("kind", ["random", "dense", "elongated", "large", "offscreen"])
def test_gradients_equal_the_reference(kind):
    scene = _scene(kind)
    fast = _grads(rasterize_numba.rasterize, scene, C=2)
    ref = _grads(rasterize_torch.rasterize, scene, C=2)
    for name, a, b in zip(["means", "covars", "opacities", "colors", "background"], fast, ref):
        scale = b.abs().max().item()
        assert scale > 0, name
        assert (a - b).abs().max().item() <= 1e-4 * scale, name


def test_gradients_of_an_empty_scene_are_zero():
    for kind in ("empty", "invisible"):
        grads = _grads(rasterize_numba.rasterize, _scene(kind), C=1)
        assert all(g.abs().max().item() == 0.0 for g in grads[:4] if g.numel())
        assert grads[4].abs().min().item() > 0  # the background still is every pixel


def test_gradcheck_float64():
    means, covars, opac, colors = _random(6, 11, torch.float64, spread=0.2, scale=0.05)
    means[:2] = torch.tensor([[0.05, 0.05, 1.8], [0.5 / 18 * 2.2, 0.5 / 18 * 2.2, 2.2]], dtype=torch.float64)
    covars[:2] = torch.eye(3, dtype=torch.float64) * 0.003
    opac[:2] = 1.0  # an opaque pair on one axis: central pixels stop on the transmittance rule
    c2w, _ = _cameras(2)
    K = torch.tensor([[18.0, 0, 6.5], [0, 18.0, 5.5], [0, 0, 1]], dtype=torch.float64).expand(2, 3, 3)
    bg = torch.tensor([[0.2, 0.3, 0.4], [1.0, 1.0, 1.0]], dtype=torch.float64)

    def fn(m, c, o, col, b):
        return rasterize_numba.rasterize(m, c, o, col, invert_pose(c2w), K, 14, 12, b, 0.01, 1e10)

    out = fn(means, covars, opac, colors, bg)
    assert abs(out[1][0, 6, 7, 0].item() - 0.999) < 1e-6  # the opaque pair's stop
    inputs = tuple(t.clone().requires_grad_() for t in (means, covars, opac, colors, bg))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_threads_do_not_change_the_result():
    scene = _scene("dense")
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append([*_both(scene, C=2)[0], *_grads(rasterize_numba.rasterize, scene, C=2)])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)  # each (entry, tile) pair has its own gradient row: no order depends on threads


def test_scenes_alive_together_keep_their_own_state():
    """Training renders several targets before their backward passes: scenes held at once (the rasterizer reuses
    its scratch arrays from call to call) give the gradients each gives alone."""
    scenes = [_scene("random"), _scene("dense")]
    alone = [_grads(rasterize_numba.rasterize, s, C=2, seed=i) for i, s in enumerate(scenes)]
    c2w, Ks = _cameras(2)
    losses, leaves, bgs = [], [], []
    for i, scene in enumerate(scenes):  # both forwards first, then both backwards (in reverse)
        lv = [t.clone().requires_grad_() for t in scene]
        bg = torch.tensor([[0.2, 0.5, 0.9]]).repeat(2, 1).requires_grad_()
        out = rasterize_numba.rasterize(*lv, invert_pose(c2w).float(), Ks.float(), W, H, bg, 0.01, 1e10)
        g = torch.Generator().manual_seed(i)
        losses.append(sum((o * torch.randn(o.shape, generator=g)).sum() for o in out))
        leaves.append(lv)
        bgs.append(bg)
    for loss in reversed(losses):
        loss.backward()
    for i in range(2):
        for a, b in zip(alone[i], [t.grad for t in leaves[i]] + [bgs[i].grad]):
            assert torch.equal(a, b)


def test_first_render_keeps_torchs_thread_count():
    """numba's OpenMP threading layer, started by the first render, sets the process's OpenMP thread count to
    NUMBA_NUM_THREADS (every core), which torch's intra-op threads follow: the rasterizer puts torch's back."""
    code = ("import torch; torch.set_num_threads(1)\n"
            "from lrm4d_ros.render import rasterize_numba\n"
            "rasterize_numba.warm_up()\n"
            "print(torch.get_num_threads())\n")
    assert fresh_python(code)[-1] == "1"


def test_camera_gradients_go_through_the_reference():
    scene = _scene("random")
    c2w, Ks = _cameras(1)
    viewmats = invert_pose(c2w).float().requires_grad_()
    out = rasterize_numba.rasterize(*scene, viewmats, Ks.float(), W, H, torch.zeros(1, 3), 0.01, 1e10)
    out[0].sum().backward()
    assert viewmats.grad is not None and viewmats.grad.abs().max().item() > 0


def test_render_uses_the_compiled_backend_on_cpu():
    assert cpu_backend()[0] == "numba"
    scene = _scene("random")
    c2w, Ks = _cameras(1)
    out = render(*scene, c2w, Ks, W, H)
    ref = rasterize_torch.rasterize(*scene, invert_pose(c2w).float(), Ks.float(), W, H, torch.zeros(1, 3), 0.01,
                                    1e10)
    assert (out.colors - ref[0]).abs().max().item() < 1e-5


def test_fallback_to_the_reference_warns_once(monkeypatch):
    monkeypatch.setattr(render_pkg, "_cpu", [])
    for name in ("lrm4d_ros.render.rasterize_numba", "lrm4d_ros.render.numba_kernels"):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(render_pkg, "rasterize_numba")
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    scene = _scene("random")
    c2w, Ks = _cameras(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = render(*scene, c2w, Ks, W, H)
        second = render(*scene, c2w, Ks, W, H)
    ours = [w for w in caught if "compiled CPU rasterizer unavailable" in str(w.message)]
    assert len(ours) == 1 and issubclass(ours[0].category, RuntimeWarning)
    assert "ImportError" in str(ours[0].message) or "ModuleNotFoundError" in str(ours[0].message)
    assert cpu_backend()[0] == "torch"
    ref = rasterize_torch.rasterize(*scene, invert_pose(c2w).float(), Ks.float(), W, H, torch.zeros(1, 3), 0.01,
                                    1e10)
    for out in (first, second):
        assert torch.equal(out.colors, ref[0]) and torch.equal(out.alphas, ref[1])


def test_uncacheable_kernels_still_compile():
    """Where numba finds no writable cache directory, the kernels are compiled without a cache."""
    from lrm4d_ros.render import numba_kernels

    namespace = {}
    exec("def double(x):\n    return 2 * x\n", namespace)  # source file '<string>': numba cannot cache it
    fn = numba_kernels._jit(namespace["double"])
    assert fn(21) == 42
