"""LRM4D model, checkpoints and Reconstructor: shapes, bit-exact round trips, overfitting, window checks."""
import math
from dataclasses import replace

import pytest
import torch

from lrm4d_ros.cameras import SceneNormalization, TimeWindow, fov_to_K
from lrm4d_ros.checkpoint import (load_config, load_model, load_training_state, save_model,
                                  save_training_state)
from lrm4d_ros.gaussians import TRAIN_MIN_MARGINAL
from lrm4d_ros.metrics import psnr
from lrm4d_ros.model import LRM4D, LRM4DConfig
from lrm4d_ros.pixel_gaussians import DROPOUT_DEPTH, RGB_DEPTH, SIGMA_T0, sum_of_outer, z_rays
from lrm4d_ros.render.projection import EPS2D
from lrm4d_ros import reconstructor
from lrm4d_ros.reconstruction import fill_footprints, render_at_times
from lrm4d_ros.reconstructor import MEASURED_OFFSET, SPARSE_GAP, Reconstructor, predict, sparse_time_factor
from lrm4d_ros.render import render
from lrm4d_ros.views import ViewSet


def ring(n: int, radius: float = 2.0, height: float = 0.5, center=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """(n,4,4) float64 optical-frame cameras on a ring looking at `center`."""
    center = torch.tensor(center, dtype=torch.float64)
    poses = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = center + torch.tensor([radius * math.cos(a), radius * math.sin(a), height], dtype=torch.float64)
        z = (center - eye) / (center - eye).norm()
        x = torch.linalg.cross(z, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        x = x / x.norm()
        y = torch.linalg.cross(z, x)
        T = torch.eye(4, dtype=torch.float64)
        T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
        poses.append(T)
    return torch.stack(poses)


def blob_scene(c2w: torch.Tensor, times: torch.Tensor, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth images (V,res,res,3) of three coloured Gaussians, the red one moving along x with time, and
    their z-depths (V,res,res) where the blobs cover a pixel at least half (0 elsewhere: nothing measured)."""
    K = fov_to_K(0.9, res, res).float()
    imgs, depths = [], []
    for v in range(c2w.shape[0]):
        means = torch.tensor([[0.4 * float(times[v]), 0.0, 0.0], [0.0, 0.4, 0.2], [0.0, -0.3, -0.3]])
        covars = torch.diag_embed(torch.tensor([[0.04, 0.04, 0.04], [0.02, 0.05, 0.02], [0.06, 0.02, 0.03]])) / 4
        colors = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0]])
        out = render(means, covars, torch.full((3,), 0.9), colors, c2w[v:v + 1].float(), K[None], res, res,
                     torch.tensor([0.1, 0.1, 0.1]))
        imgs.append(out.colors[0])
        depths.append(torch.where(out.alphas[0, ..., 0] > 0.5, out.depths[0, ..., 0], 0.0))
    return torch.stack(imgs), torch.stack(depths)


def _inputs(V, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    c2w = ring(V).float()
    K = fov_to_K(0.9, W, H).expand(V, 3, 3).float()
    from lrm4d_ros.cameras import plucker_rays
    return (torch.rand(V, H, W, 3, generator=g), plucker_rays(K.double(), c2w.double(), H, W).float(),
            torch.linspace(-1, 1, V), K, c2w)


def _model_inputs(V, H, W, seed=0):
    """(images, plucker, times): what the model itself takes besides depth."""
    return _inputs(V, H, W, seed)[:3]


@pytest.mark.parametrize("views,height,width,head", [(1, 8, 8, "surfel"), (3, 16, 24, "surfel"),
                                                     (2, 32, 16, "paper")])
def test_output_shapes_for_any_views_and_resolution(views, height, width, head):
    model = LRM4D(LRM4DConfig.preset("tiny", head=head))
    out = model(*_model_inputs(views, height, width), depths=torch.rand(views, height, width))
    assert out.raw.shape == (views, height, width, 8 if head == "surfel" else 20)
    assert model.patch_embed.in_features == 12 * 64  # RGB 3 + Plücker 6 + time + depth, mask


def test_bad_inputs_raise():
    model = LRM4D(LRM4DConfig.preset("tiny"))
    with pytest.raises(ValueError, match="divisible"):
        model(*_model_inputs(1, 12, 16))
    images, plucker, times = _model_inputs(2, 16, 16)
    with pytest.raises(ValueError, match="need images"):
        model(images, plucker[..., :5], times)
    with pytest.raises(ValueError, match="depths must be"):
        model(images, plucker, times, torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match="n_head"):
        LRM4DConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown preset"):
        LRM4DConfig.preset("huge")
    with pytest.raises(ValueError, match="head in"):
        LRM4DConfig(head="splat")
    with pytest.raises(ValueError, match="predates the surfel head"):
        LRM4DConfig.from_dict({"n_layer": 2})
    with pytest.raises(ValueError, match="plane-sweep depth prior, since removed"):
        LRM4DConfig.from_dict({**LRM4DConfig().to_dict(), "prior_planes": 32})
    assert LRM4DConfig.from_dict({**LRM4DConfig().to_dict(), "prior_planes": 0}) == LRM4DConfig()


def test_unpatchify_is_pixel_aligned():
    """Changing one input pixel's colour changes only the output of its own patch (beyond attention's leak)."""
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny")).eval()
    images, plucker, times = _model_inputs(2, 16, 16)
    other = images.clone()
    other[1, 3, 12] += 1.0  # pixel (row 3, col 12) of view 1 -> patch (0, 1)
    with torch.no_grad():
        a = model(images, plucker, times).raw
        b = model(other, plucker, times).raw
    changed = (a - b).abs().amax(-1)  # (V,H,W)
    own = changed[1, 0:8, 8:16].mean()
    others = torch.cat([changed[0].flatten(), changed[1, 8:].flatten(), changed[1, :8, :8].flatten()])
    assert own > 100 * others.mean()


def test_untrained_surfels_sit_at_the_measured_depth_with_the_pixels_colours():
    """Zero head output is the non-learned splat: measured depth, input colours, view time, no motion."""
    model = LRM4D(LRM4DConfig.preset("tiny"))
    torch.nn.init.zeros_(model.unpatchify.weight)
    images, _, times, K, c2w = _inputs(2, 16, 16)
    depths = torch.full((2, 16, 16), 1.7)
    depths[0, :4] = 0.0  # a depth camera's dropouts: far (DROPOUT_DEPTH)
    with torch.no_grad():
        pred = predict(model, images, K, c2w, times, depths)
    g = pred.gaussians
    assert len(g) == 2 * 16 * 16
    torch.testing.assert_close(pred.pixel_depths[depths > 0], depths[depths > 0])
    torch.testing.assert_close(pred.pixel_depths[0, :4], torch.full((4, 16), DROPOUT_DEPTH))
    # the Reconstructor's offset moves the measured pixels along their rays by exp(offset), nothing else
    with torch.no_grad():
        moved = predict(model, images, K, c2w, times, depths, measured_offset=0.01)
    torch.testing.assert_close(moved.pixel_depths[depths > 0], depths[depths > 0] * math.exp(0.01))
    torch.testing.assert_close(moved.pixel_depths[0, :4], torch.full((4, 16), DROPOUT_DEPTH))
    torch.testing.assert_close(moved.gaussians.colors, g.colors)
    # a colour camera's pixels start at RGB_DEPTH, in a rig with depth cameras or without
    depths[1] = 0.0
    with torch.no_grad():
        mixed = predict(model, images, K, c2w, times, depths).pixel_depths
        rgb = predict(model, images, K, c2w, times, match_floor=False).pixel_depths
    torch.testing.assert_close(mixed[1], torch.full((16, 16), RGB_DEPTH))
    torch.testing.assert_close(rgb, torch.full((2, 16, 16), RGB_DEPTH))
    # colours are the pixels (clamped to [0.001, 0.999] before the logit)
    torch.testing.assert_close(g.colors, images.reshape(-1, 3).clamp(1e-3, 1 - 1e-3), atol=1e-5, rtol=0)
    torch.testing.assert_close(g.times, times[:, None].expand(2, 256).reshape(-1))
    assert float(g.velocities.abs().max()) == 0.0
    torch.testing.assert_close(g.opacities, torch.full_like(g.opacities, torch.sigmoid(torch.tensor(2.0)).item()))
    # a fronto-parallel surfel spans 0.3 pixel along both image axes: project its covariance into its own camera
    f = float(K[0, 0, 0])
    R = c2w[1, :3, :3]
    cov_cam = R.T @ g.covars[256 + 8 * 16 + 8] @ R
    J = torch.tensor([[f / 1.7, 0.0, 0.0], [0.0, f / 1.7, 0.0]])
    torch.testing.assert_close(J @ cov_cam @ J.T, torch.eye(2) * 0.09, atol=1e-3, rtol=0)
    assert isinstance(pred.environment.colors, torch.Tensor)


def test_sum_of_outer_is_the_summed_outer_products_forward_and_backward():
    g = torch.Generator().manual_seed(3)
    vs = [torch.randn(2, 5, 4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    ridge = torch.rand(2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    eye = torch.eye(3, dtype=torch.float64)
    ref = sum(v[..., :, None] * v[..., None, :] for v in vs) + ridge[..., None, None] * eye
    out = sum_of_outer(tuple(vs), ridge)
    assert out.shape == (2, 5, 4, 3, 3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * w).sum(), [*vs, ridge])
    ref_grads = torch.autograd.grad((ref * w).sum(), [*vs, ridge])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_paper_head_starts_small_long_lived_and_faint():
    model = LRM4D(LRM4DConfig.preset("tiny", head="paper", depth_input=False))
    images, _, times, K, c2w = _inputs(2, 16, 16)
    with torch.no_grad():
        g = predict(model, images, K, c2w, times).gaussians
    scales, scale_t, _, _ = g.rotations()
    f = float(K[0, 0, 0])
    expect = (math.exp(-4.3) ** 2 + (0.5 * 2.3 / f) ** 2) ** 0.5  # exp(-2 - 2.3) with the ½-pixel floor
    assert abs(float(scales.median()) - expect) < 0.05 * expect
    assert 0.015 < float(g.opacities.median()) < 0.021  # sigmoid(-2 - 2)
    assert float(scale_t.min()) > 0.5
    assert float(g.means.abs().max()) <= 1.0


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny"))
    path = save_model(tmp_path / "m.safetensors", model, info={"steps": 7})
    loaded = load_model(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    cfg, info = load_config(path)
    assert cfg == model.cfg and info == {"steps": 7}
    # bf16 export: weights rounded once, config kept
    half = load_model(save_model(tmp_path / "h.safetensors", model, dtype=torch.bfloat16))
    w = model.patch_embed.weight
    assert torch.equal(half.patch_embed.weight, w.to(torch.bfloat16).float())


def test_training_state_resumes_exactly(tmp_path):
    torch.manual_seed(0)

    def step(model, opt):
        loss = model(*_model_inputs(2, 8, 8, seed=1)).raw.square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()

    a = LRM4D(LRM4DConfig.preset("tiny"))
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
    step(a, opt_a)
    path = save_training_state(tmp_path / "s.safetensors", a, opt_a, step=1, extra={"elapsed_s": 2.5})
    b = LRM4D(LRM4DConfig.preset("tiny"))
    opt_b = torch.optim.AdamW(b.parameters(), lr=5.0)
    assert load_training_state(path, b, opt_b) == (1, {"elapsed_s": 2.5})
    step(a, opt_a)
    step(b, opt_b)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_not_a_checkpoint_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not an lrm4d_ros checkpoint"):
        load_model(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


def test_tiny_model_learns_unseen_cameras_of_a_dynamic_scene():
    """Two RGB-D input views (cameras 0 and 2) of a scene with a moving blob; 80 AdamW steps on the other two
    cameras at their own times, each near an input's time, lift their PSNR far above the untrained splat's
    (26.8 -> 55.2 dB: the pixels nothing measured start far away, off these cameras' images)."""
    torch.manual_seed(0)
    res = 24
    c2w = ring(4).float()
    K = fov_to_K(0.9, res, res).expand(4, 3, 3).float()
    times = torch.tensor([-1.0, -0.8, 0.8, 1.0])  # each target near an input's time: within the surfels' σ_t
    target, depths = blob_scene(c2w, times, res)
    inp, tgt = [0, 2], [1, 3]
    model = LRM4D(LRM4DConfig.preset("tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95))

    def novel():
        g = predict(model, target[inp], K[inp], c2w[inp], times[inp], depths[inp]).gaussians
        return render_at_times(g, c2w[tgt], K[tgt], res, res, times[tgt], torch.tensor([0.1, 0.1, 0.1]),
                              min_marginal=TRAIN_MIN_MARGINAL)

    with torch.no_grad():
        before = float(psnr(novel().colors, target[tgt]).mean())
    for _ in range(80):
        loss = (novel().colors - target[tgt]).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        after = float(psnr(novel().colors, target[tgt]).mean())
    assert after > before + 10.0, (before, after)


def _views(c2w, stamps, res=16):
    V = c2w.shape[0]
    return ViewSet(images=torch.rand(V, res, res, 3), Ks=fov_to_K(0.9, res, res).expand(V, 3, 3).clone(),
                   camtoworlds=c2w, stamps_ns=torch.as_tensor(stamps, dtype=torch.int64),
                   camera_ids=torch.arange(V))


def test_reconstructor_world_units_and_window():
    torch.manual_seed(0)
    base = 1_700_000_000_000_000_000
    c2w = ring(3, radius=5.0, center=(10.0, -3.0, 1.0))  # metres, far from the origin
    views = _views(c2w, [base, base + 50_000_000, base + 100_000_000], res=24)
    views.depths = torch.full((3, 24, 24), 4.0)  # an RGB-D rig measuring a wall 4 m ahead of every camera
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    torch.nn.init.zeros_(model.unpatchify.weight)  # the untrained splat: surfels at the measured depth
    rec = Reconstructor(model, device="cpu").reconstruct(views)
    assert rec.window == TimeWindow(base, base + 100_000_000)
    assert len(rec.gaussians) == 3 * 16 * 16  # views resized to the model's 16² input
    # scene normalised: centre at the rig's focus, cameras at distance 2 in canonical units
    torch.testing.assert_close(rec.normalization.center, torch.tensor([10.0, -3.0, 1.0], dtype=torch.float64))
    out = rec.render(c2w[:2], views.Ks[:2], 20, 12, views.stamps_ns[:2])
    assert out.colors.shape == (2, 12, 20, 3) and out.depths.shape == (2, 12, 20, 1)
    # rendered from its own camera, the wall comes back at 4 m less the measured depths' offset (depth in metres,
    # not canonical units; the other cameras' walls blend in a little where they cross this view)
    centre, wall = out.depths[0, 4:8, 7:13], 4.0 * math.exp(MEASURED_OFFSET)
    assert abs(float(centre.median()) - wall) < 0.002 and float((centre - wall).abs().max()) < 0.1
    g = rec.slice(base + 50_000_000)
    # every surfel lies 4 m along its ray: within 5 m (camera ring radius) + 4 m of the centre
    assert float((g.means - rec.normalization.center.float()).norm(dim=-1).max()) < 9.0
    # for metric use, sliced at the measurement: every camera's surfels at z-depth 4 m in that camera's frame
    # (as the model put them: 4 m times exp(MEASURED_OFFSET) and the head's residual, zero here)
    for measured, want in ((False, 4.0 * math.exp(MEASURED_OFFSET)), (True, 4.0)):
        for v in range(3):  # each view's surfels alone live at its moment (the others' marginal < MIN_MARGINAL)
            means = rec.slice(int(views.stamps_ns[v]), measured=measured).means.double()
            z = (means - c2w[v, :3, 3]) @ c2w[v, :3, 2]
            assert len(z) == 16 * 16
            torch.testing.assert_close(z, torch.full_like(z, want), atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=rf"\[{base}, {base + 100_000_000}\]"):
        rec.render(c2w[:1], views.Ks[:1], 8, 8, torch.tensor([base + 200_000_000]))
    with pytest.raises(ValueError, match="outside the reconstructed window"):
        rec.slice(base - 20_000_000)
    rec.slice(base - 4_000_000)  # within tolerance (10 ms)
    # mismatched arguments are named, not reported from deep inside (an unbatched pose was taken as 4 cameras)
    for bad in ((c2w[:1], views.Ks[:2], [base]), (c2w[0], views.Ks[0], [base]), (c2w[:2], views.Ks[:2], [base]),
                (c2w[:0], views.Ks[:0], [])):
        with pytest.raises(ValueError, match=r"render takes C >= 1 cameras: camtoworlds \(C,4,4\)"):
            rec.render(bad[0], bad[1], 8, 8, torch.tensor(bad[2], dtype=torch.int64))
    # Renders reuse cached slices: asked again after more distinct instants than the cache holds, and in a
    # batch mixing cached and new instants, a camera's pixels are the same as a fresh reconstruction's.
    fresh = Reconstructor(model, device="cpu").reconstruct(views)
    stamps = torch.tensor([base + k * 10_000_000 for k in range(7)] + [base])
    for s in stamps:
        rec.render(c2w[:1], views.Ks[:1], 20, 12, s.reshape(1))
    mixed = torch.tensor([base, base + 3_000_000, base + 90_000_000])
    torch.testing.assert_close(rec.render(c2w, views.Ks, 20, 12, mixed).colors,
                               fresh.render(c2w, views.Ks, 20, 12, mixed).colors, rtol=0, atol=0)


def test_finer_renders_widen_pixel_gaussians_towards_their_input_pixel():
    """A depth camera measuring a wall 2 m ahead, reconstructed at 16² and rendered from its own pose at 4x the
    resolution: without the footprint filter its pixel Gaussians (0.3 px wide at 16²) are dots with gaps between
    them; with it (`fill_footprints`) the wall is covered as at 16². At the input resolution and pose nothing
    changes; a camera of the input's resolution standing 1.2 m nearer (the wall's input pixels 2.5x larger) sees the
    wall covered too, where its measured pixels' splats left gaps, and the Gaussians of guessed depth are left as
    they are there."""
    base = 1_700_000_000_000_000_000
    views = _views(ring(1), [base], res=16)
    views.depths = torch.full((1, 16, 16), 2.0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    torch.nn.init.zeros_(model.unpatchify.weight)
    rec = Reconstructor(model, device="cpu", refine_steps=0).reconstruct(views)
    # each pixel Gaussian's footprint: its canonical z-depth over the focal length
    f = float(views.Ks[0, 0, 0])
    side = 2.0 * math.exp(MEASURED_OFFSET) / f * float(rec.normalization.scale)
    torch.testing.assert_close(rec.footprints, torch.tensor([[side, f]]).expand(256, 2), rtol=1e-5, atol=0)
    plain = replace(rec, footprints=None)
    K4 = views.Ks.clone()
    K4[:, :2] *= 4
    filled = rec.render(views.camtoworlds, K4, 64, 64, views.stamps_ns).alphas[0, 8:-8, 8:-8, 0]
    dotted = plain.render(views.camtoworlds, K4, 64, 64, views.stamps_ns).alphas[0, 8:-8, 8:-8, 0]
    assert float(dotted.min()) < 0.5 and float(filled.min()) > 0.8
    # at the inputs' own resolution and distance the footprints add nothing: the same pixels
    torch.testing.assert_close(rec.render(views.camtoworlds, views.Ks, 16, 16, views.stamps_ns).colors,
                               plain.render(views.camtoworlds, views.Ks, 16, 16, views.stamps_ns).colors, rtol=0, atol=0)
    nearer = views.camtoworlds.clone()
    nearer[:, :3, 3] += 1.2 * nearer[:, :3, 2]
    close = rec.render(nearer, views.Ks, 16, 16, views.stamps_ns).alphas[0, 2:-2, 2:-2, 0]
    gaps = plain.render(nearer, views.Ks, 16, 16, views.stamps_ns).alphas[0, 2:-2, 2:-2, 0]
    assert float(gaps.min()) < 0.5 and float(close.min()) > 0.85  # (0.47 against 0.91)
    guessed = replace(rec, guessed=torch.ones_like(rec.guessed))
    torch.testing.assert_close(guessed.render(nearer, views.Ks, 16, 16, views.stamps_ns).alphas[0, 2:-2, 2:-2, 0],
                               gaps, rtol=0, atol=0)
    # a viewer draws them at its screen's resolution: sliced, each is at least its input pixel's EPS2D blur wide
    sliced = rec.slice(base).covars
    unsmoothed = plain.slice(base).covars
    pixel_m = 2.0 * math.exp(MEASURED_OFFSET) / f  # the input pixel at the wall, metres
    torch.testing.assert_close(sliced - unsmoothed, torch.eye(3).expand_as(sliced) * EPS2D * pixel_m ** 2,
                               rtol=1e-4, atol=1e-9)


def test_cameras_no_input_looks_like_are_drawn_twice_as_fine(monkeypatch):
    """A held-out camera of a generated scene (anti-aliased ground truth, 3x3 rays a pixel) at the inputs'
    resolution meets the pixel Gaussians of several views, each off by a fraction of a pixel: point-sampled at its
    pixel centres it aliases. Drawn NOVEL_FINENESS times as fine as the inputs and area-averaged it comes closer to
    the truth (0.14-0.45 dB over three scenes here); an input's own viewpoint and a camera already finer than the
    inputs are drawn as they are."""
    from lrm4d_ros import reconstruction
    from lrm4d_ros.cameras import scale_K
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import SceneConfig, generate

    gains = []
    for seed in (1, 2, 3):
        views = with_depth(generate(seed, SceneConfig(frames=3, cameras=4, height=64, width=64, num_primitives=(3, 4),
                                                      ground_prob=1.0, supersample=3)), "clean", seed=seed)
        inputs = views.select(torch.nonzero(torch.arange(len(views)) % 4 != 3).squeeze(1))
        held = views.select(torch.tensor([7]))  # the fourth camera at the middle frame
        torch.manual_seed(0)
        model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
        torch.nn.init.zeros_(model.unpatchify.weight)
        rec = Reconstructor(model, device="cpu").reconstruct(inputs)
        novel = torch.tensor([True])
        assert rec.supersampling(held.Ks, novel).tolist() == [reconstruction.NOVEL_FINENESS] == [2]
        assert rec.supersampling(scale_K(held.Ks, 2, 2), novel).tolist() == [1]  # finer than the inputs already
        assert rec.supersampling(inputs.Ks[:2], torch.tensor([False, False])).tolist() == [1, 1]
        fine = rec.render(held.camtoworlds, held.Ks, 64, 64, held.stamps_ns)
        monkeypatch.setattr(reconstruction, "NOVEL_FINENESS", 1)
        point = rec.render(held.camtoworlds, held.Ks, 64, 64, held.stamps_ns)
        monkeypatch.undo()
        gains.append(float(psnr(fine.colors, held.images) - psnr(point.colors, held.images)))
        # an input camera from its own viewpoint is drawn as it was
        own = rec.render(inputs.camtoworlds[:1], inputs.Ks[:1], 64, 64, inputs.stamps_ns[:1])
        monkeypatch.setattr(reconstruction, "NOVEL_FINENESS", 1)
        torch.testing.assert_close(rec.render(inputs.camtoworlds[:1], inputs.Ks[:1], 64, 64, inputs.stamps_ns[:1])
                                   .colors, own.colors, rtol=0, atol=0)
        monkeypatch.undo()
    assert min(gains) > 0.05 and sum(gains) / 3 > 0.2, gains  # 0.32, 0.14, 0.45 dB


def test_coarser_renders_average_the_pixels_they_cover():
    """A generated scene seen by three depth cameras at 64², each re-rendered from its own pose and time at 32²: a
    target pixel covers four input pixels, so the truth is their mean. Point-sampled, the nearest pixel Gaussian a
    target pixel meets covers it and the render aliases; drawn twice as fine and area-averaged
    (`Reconstruction.supersampling`) it comes back as the mean. At the inputs' resolution nothing changes."""
    from lrm4d_ros.cameras import scale_K
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import SceneConfig, generate

    views = with_depth(generate(1, SceneConfig(frames=2, cameras=3, height=64, width=64, num_primitives=(3, 4),
                                               ground_prob=1.0)), "clean", seed=1)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=64))
    torch.nn.init.zeros_(model.unpatchify.weight)
    rec = Reconstructor(model, device="cpu").reconstruct(views)
    plain = replace(rec, footprints=None)  # nothing says what the inputs' pixels were: point-sampled
    half = scale_K(views.Ks, 0.5, 0.5)
    assert rec.supersampling(half).tolist() == [2] * len(views) and rec.supersampling(views.Ks).tolist() == [1] * 6
    truth = torch.nn.functional.avg_pool2d(views.images.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
    averaged = rec.render(views.camtoworlds, half, 32, 32, views.stamps_ns)
    aliased = plain.render(views.camtoworlds, half, 32, 32, views.stamps_ns)
    got, before = float(psnr(averaged.colors, truth).mean()), float(psnr(aliased.colors, truth).mean())
    assert got > 35.0 and got > before + 10.0, (got, before)  # 40.2 against 16.7 dB
    for w in (0, 32.5):  # (32.5 once rendered at 32: drawn 2x finer, it came to a whole 65)
        with pytest.raises(ValueError, match=f"integer width and height >= 1 \\(pixels\\), got {w} x 32"):
            rec.render(views.camtoworlds, half, w, 32, views.stamps_ns)
    with pytest.raises(ValueError, match=r"background must be \(3,\) or \(C,3\) = \(C=6, 3\) RGB"):
        rec.render(views.camtoworlds, half, 32, 32, views.stamps_ns, background=torch.zeros(4))
    # a pixel budget (the node's max_render_pixels) below the finer drawing's 64² draws it at 32²: point-sampled
    bounded = rec.render(views.camtoworlds, half, 32, 32, views.stamps_ns, max_pixels=64 * 64 - 1)
    torch.testing.assert_close(bounded.colors, aliased.colors, rtol=0, atol=0)
    torch.testing.assert_close(rec.render(views.camtoworlds, half, 32, 32, views.stamps_ns, max_pixels=64 * 64).colors,
                               averaged.colors, rtol=0, atol=0)
    # depth: one of the four's, the median by coverage (every Gaussian counted in the depth: the sky's, which the depth
    # cameras did not measure, too): a block on a depth edge reads the surface that covers most of it, not a mean of
    # the two; where the four agree, their depth
    full = rec.render(views.camtoworlds, views.Ks, 64, 64, views.stamps_ns)
    torch.testing.assert_close(full.colors, plain.render(views.camtoworlds, views.Ks, 64, 64, views.stamps_ns).colors,
                               rtol=0, atol=0)
    every = replace(rec, guessed=None)
    four = every.render(views.camtoworlds, views.Ks, 64, 64, views.stamps_ns).depths[..., 0]
    four = four.reshape(len(views), 32, 2, 32, 2).permute(0, 1, 3, 2, 4).reshape(len(views), 32, 32, 4)
    got = every.render(views.camtoworlds, half, 32, 32, views.stamps_ns).depths
    assert bool((four == got).any(-1).all())
    flat = (four.amax(-1) - four.amin(-1) < 0.01 * four.mean(-1)) & (four.amin(-1) > 0)
    edge = four.amax(-1) > 1.5 * four.amin(-1)
    assert float(flat.float().mean()) > 0.3 and bool(edge.any())  # (43 %: the floor recedes)
    torch.testing.assert_close(got[..., 0][flat], four.mean(-1)[flat], rtol=0.01, atol=0)


def test_the_fill_reaches_each_gaussian_through_every_slice_path():
    """Random depths (every Gaussian its own footprint), rendered 3x zoomed from an input pose (faded views: their
    own slices) and a novel pose (the cached slice), twice: the same pixels as the Gaussians with the camera's fill
    applied to all of them beforehand, so each sliced Gaussian got its own footprint and its own distance."""
    torch.manual_seed(5)
    base = 1_700_000_000_000_000_000
    views = _views(ring(3), [base, base + 5_000_000, base + 10_000_000], res=16)
    views.depths = 1.5 + torch.rand(3, 16, 16)
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=16)), device="cpu",
                        refine_steps=0).reconstruct(views)
    K3 = views.Ks[:1].clone()
    K3[:, :2] *= 3
    assert float(rec.footprints[:, 0].std()) > 0.1 * float(rec.footprints[:, 0].mean())
    for pose in (views.camtoworlds[:1], ring(6)[1:2]):
        c2w = rec.normalization.poses_to_canonical(pose.to(torch.float64)).float()[0]
        g = rec.gaussians
        covars = fill_footprints(g.covars, rec.footprints, K3[0], c2w, g.means, ~rec.guessed)
        prefilled = replace(rec, gaussians=replace(g, covars=covars), footprints=None)
        for _ in range(2):  # the second from the slice cache
            got = rec.render(pose, K3, 48, 48, views.stamps_ns[1:2]).colors
            torch.testing.assert_close(got, prefilled.render(pose, K3, 48, 48, views.stamps_ns[1:2]).colors,
                                       rtol=0, atol=0)


def test_measured_slice_puts_measured_pixels_on_their_rays():
    """A trained-like head moves a depth camera's pixels off the measurement (its bounded residual, per pixel):
    `to_measured` takes each measured pixel's Gaussian exactly to o + d·r, its ray at the measured z-depth, and
    leaves the unmeasured ones where they are."""
    torch.manual_seed(3)
    base = 1_700_000_000_000_000_000
    views = _views(ring(2), [base, base + 10_000_000], res=16)
    views.depths = torch.linspace(1.5, 2.5, 16)[None, :, None].expand(2, 16, 16).clone()  # a tilted surface
    views.depths[:, :4] = 0.0
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))  # random head: residuals differ pixel by pixel
    rec = Reconstructor(model, device="cpu", refine_steps=0).reconstruct(views)
    c2w = rec.normalization.poses_to_canonical(views.camtoworlds.double()).float()
    o, d = z_rays(views.Ks.float(), c2w, 16, 16)
    want = o + (views.depths * float(rec.normalization.scale))[..., None] * d
    moved = (rec.gaussians.means + rec.to_measured).view(2, 16, 16, 3)
    assert float(rec.to_measured.view(2, 16, 16, 3)[:, 4:].norm(dim=-1).min()) > 1e-4  # the head did move them
    torch.testing.assert_close(moved[:, 4:], want[:, 4:], rtol=0, atol=1e-5)
    torch.testing.assert_close(moved[:, :4], rec.gaussians.means.view(2, 16, 16, 3)[:, :4], rtol=0, atol=0)


def test_measured_pixels_live_across_sparse_instants(monkeypatch):
    """Two synchronized frames 1 s apart (normalised gap 2): a depth camera's measured pixels live 2 / SPARSE_GAP
    times the model's σ_t, so a novel view a quarter of the way between the frames shows the measured surface
    instead of fading to the environment; unmeasured pixels keep the model's σ_t, as do windows whose instants
    are no farther apart than SPARSE_GAP."""
    assert sparse_time_factor(torch.linspace(-1, 1, 4)) == 1.0  # the rig protocol's 4 instants
    assert sparse_time_factor(torch.linspace(-1, 1, 12)) == 1.0
    assert sparse_time_factor(torch.tensor([0.0])) == 1.0
    # stamps within INSTANT_MERGE of an instant's first are that instant (an unsynchronized rig's frame)
    assert sparse_time_factor(torch.tensor([-1.0, -0.99, 1.0, 0.98])) == pytest.approx(1.98 / SPARSE_GAP)
    base = 1_700_000_000_000_000_000
    views = _views(ring(3).repeat(2, 1, 1), [base] * 3 + [base + 1_000_000_000] * 3)
    views.camera_ids = torch.arange(3).repeat(2)
    views.depths = torch.full((6, 16, 16), 2.0)
    views.depths[:, :4] = 0.0  # the top rows unmeasured
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    torch.nn.init.zeros_(model.unpatchify.weight)  # σ_t = SIGMA_T0 everywhere
    rec = Reconstructor(model, device="cpu", refine_steps=0).reconstruct(views)
    scale_t = rec.gaussians.scale_t.view(6, 16, 16)
    torch.testing.assert_close(scale_t[:, 4:], torch.full((6, 12, 16), SIGMA_T0 * 2.0 / SPARSE_GAP))
    torch.testing.assert_close(scale_t[:, :4], torch.full((6, 4, 16), SIGMA_T0))
    novel, quarter = ring(6)[1:2], torch.tensor([base + 250_000_000])
    shown = rec.render(novel, views.Ks[:1], 16, 16, quarter).alphas[0, 6:, :, 0]
    at_frame = rec.render(novel, views.Ks[:1], 16, 16, torch.tensor([base])).alphas[0, 6:, :, 0]
    monkeypatch.setattr(reconstructor, "SPARSE_GAP", math.inf)  # the model's σ_t alone
    faded = Reconstructor(model, device="cpu", refine_steps=0).reconstruct(views).render(
        novel, views.Ks[:1], 16, 16, quarter).alphas[0, 6:, :, 0]
    assert float(faded.max()) < 0.01  # 3.6 σ_t out (NOVEL_SIGMA_T × SIGMA_T0 = 0.14): culled
    assert float(shown.mean()) > 0.7 and float(at_frame.mean()) > 0.8


def test_reconstructor_runs_the_transformer_in_bf16_as_it_trained():
    # bf16 autocast for the transformer alone (its matrix products; rays, covariances and renders stay float32):
    # the reconstruction comes back as the float32 one would, to within bf16's rounding of the network's output
    torch.manual_seed(0)
    c2w = ring(3, radius=3.0)
    views = _views(c2w, [0, 50_000_000, 100_000_000], res=16)
    views.depths = torch.full((3, 16, 16), 2.5)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    seen = []
    hook = model.unpatchify.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    renders = {}
    for bf16 in (False, True):
        rec = Reconstructor(model, device="cpu", bf16=bf16).reconstruct(views)
        assert rec.gaussians.means.dtype == torch.float32
        renders[bf16] = rec.render(c2w, views.Ks, 16, 16, views.stamps_ns)
    hook.remove()
    assert seen == [torch.float32, torch.bfloat16]
    assert float(psnr(renders[True].colors, renders[False].colors).min()) > 35.0
    torch.testing.assert_close(renders[True].depths, renders[False].depths, rtol=0.02, atol=0.02)
    assert not torch.equal(renders[True].colors, renders[False].colors)  # it did run in bf16


def test_a_reconstruction_pickles_and_deep_copies_and_renders_the_same():
    """A Reconstruction crosses process boundaries (a pool of renderers) and copy.deepcopy: its lock and slice cache
    stay behind, a fresh lock comes with the copy, and the copy renders the same pixels."""
    import copy
    import pickle

    torch.manual_seed(0)
    base = 1_700_000_000_000_000_000
    c2w = ring(3, radius=2.0)
    views = _views(c2w, [base, base + 50_000_000, base + 100_000_000], res=16)
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=16)), device="cpu").reconstruct(views)
    novel = ring(7, radius=2.0)[1:3]  # novel cameras: their slices are cached (an input camera's are its own)
    want = rec.render(novel, views.Ks[:2], 16, 16, views.stamps_ns[:2])
    assert rec._slices
    for copied in (pickle.loads(pickle.dumps(rec)), copy.deepcopy(rec)):
        assert not copied._slices and copied._lock is not rec._lock
        got = copied.render(novel, views.Ks[:2], 16, 16, views.stamps_ns[:2])
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    assert rec._slices  # the original keeps its cache


def test_reconstructor_keeps_explicit_normalization():
    c2w = ring(2)
    views = _views(c2w, [5, 5])
    norm = SceneNormalization(torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64), 0.9)
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=16)), device="cpu").reconstruct(views, norm)
    assert rec.normalization is norm
    assert rec.window.start_ns == rec.window.end_ns == 5
    rec.render(c2w[:1], views.Ks[:1], 8, 8, torch.tensor([5]))


def test_training_loss_on_a_procedural_scene_has_every_term_and_gradients():
    from lrm4d_ros.data.generator import SceneConfig
    from lrm4d_ros.data.sampler import SceneSampler
    from lrm4d_ros.train import lr_at, object_centric, scene_loss

    cfg = object_centric(SceneConfig(frames=4, cameras=4, height=16, width=16, background=None))
    item = SceneSampler(cfg, num_inputs=3, num_targets=2).sample(3)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    loss, m = scene_loss(model, item["inputs"], item["targets"], 0.2, input_depths=item["inputs"].depths)
    loss.backward()
    assert {"mse", "psnr", "psnr_bg", "ssim", "depth_l1"} <= set(m)
    assert m["depth_in"] == 1.0
    total = m["mse"] + 0.2 * (1 - m["ssim"])
    assert math.isclose(m["loss"], total, rel_tol=1e-4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.unpatchify.weight.grad.abs().sum() > 0

    class Args:
        lr, warmup, min_lr_ratio = 1e-3, 10, 0.1
    assert math.isclose(lr_at(0.0, 0, Args), 1e-4)  # warmup: (step + 1) / warmup
    assert math.isclose(lr_at(0.0, 10, Args), 1e-3) and math.isclose(lr_at(1.0, 10, Args), 1e-4)
    assert math.isclose(lr_at(0.5, 10, Args), 1e-4 + 0.5 * 0.9e-3)


def test_view_weighting_fades_other_views_for_a_target_on_an_input_axis():
    from lrm4d_ros.gaussians import Gaussians4D
    from lrm4d_ros.reconstruction import FADE_FALLOFF, FADE_GATE_DEG, FADE_SIGMA_T, ViewWeighting

    # Two input views at time 0, one pixel Gaussian each, both on the target's optical axis: view 0 looks the
    # target's way (+z) and holds a red splat at depth 2; view 1 looks along +x and holds a green one at depth 1.5.
    wt = ViewWeighting(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.zeros(2), pixels=1)
    z = torch.tensor([0.0, 0.0, 2.0])
    fade = math.exp(-1.0 / FADE_FALLOFF)  # cosine 1 for view 0, 0 for view 1
    torch.testing.assert_close(wt.opacity_scale(z, 0.0, 3), torch.tensor([1.0, fade, 1.0]))
    torch.testing.assert_close(wt.opacity_scale(torch.tensor([1.0, 0.0, 0.0]), 0.0, 2), torch.tensor([fade, 1.0]))
    # half-way through the angular gate, and one FADE_SIGMA_T away in time: the exponent scales with the gate
    a = math.radians(FADE_GATE_DEG / 2)
    c_gate = math.cos(math.radians(FADE_GATE_DEG))
    gate = (math.cos(a) - c_gate) / (1 - c_gate) * math.exp(-0.5)
    lasting = ViewWeighting(wt.axes, wt.times, pixels=1, scales_t=torch.full((2,), 4.0))  # alive all window long
    half = lasting.opacity_scale(torch.tensor([math.sin(a), 0.0, math.cos(a)]), FADE_SIGMA_T, 2)
    torch.testing.assert_close(half, torch.tensor([1.0, math.exp(-gate * (math.cos(a) - math.sin(a)) / FADE_FALLOFF)]))
    # a view whose Gaussians have faded out by then (σ_t 0.2, one unit later) stands in for nothing: no fading
    assert wt.opacity_scale(torch.tensor([math.sin(a), 0.0, math.cos(a)]), FADE_SIGMA_T, 2) is None
    a = math.radians(2 * FADE_GATE_DEG)  # a novel viewpoint, or an input's axis long after its time: no fading
    assert wt.opacity_scale(torch.tensor([math.sin(a), 0.0, math.cos(a)]), 0.0, 2) is None
    assert wt.opacity_scale(z, 5 * FADE_SIGMA_T, 2) is None
    n = 2
    g = Gaussians4D(means=torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 1.5]]), times=torch.zeros(n),
                    velocities=torch.zeros(n, 3), covars=torch.eye(3).expand(n, 3, 3) * 0.5, scale_t=torch.ones(n),
                    opacities=torch.tensor([0.9, 0.9]), colors=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    c2w, K = torch.eye(4)[None].repeat(2, 1, 1), fov_to_K(0.9, 16, 16).expand(2, 3, 3)
    c2w[1, :3, 3] = torch.tensor([0.0, 0.0, -0.5])  # the same axis, further back: faded too
    plain = render_at_times(g, c2w, K, 16, 16, torch.zeros(2))
    faded = render_at_times(g, c2w, K, 16, 16, torch.zeros(2), weighting=wt)
    # front to back at the centre pixels: green (opacity 0.9, or 0.9·fade) over red (0.9)
    for out, a_g in ((plain, 0.9), (faded, 0.9 * fade)):
        for cam in range(2):
            c = out.colors[cam, 7:9, 7:9].mean((0, 1))
            assert abs(float(c[1]) - a_g) < 0.02 and abs(float(c[0]) - (1 - a_g) * 0.9) < 0.02, (cam, c, a_g)


def test_novel_viewpoints_are_softened_by_their_gate(monkeypatch):
    from lrm4d_ros import reconstruction
    from lrm4d_ros.reconstruction import FADE_GATE_DEG, NOVEL_BLUR, NOVEL_MEDIAN, ViewWeighting, soften

    # soften: a share of the 3×3 median, then of the binomial blur; amount 0 leaves a camera untouched
    img = torch.zeros(2, 5, 5, 3)
    img[:, 2, 2] = 1.0  # a lone bright pixel: speckle, which the median takes out
    out = soften(img, torch.tensor([0.0, 1.0]))
    assert torch.equal(out[0], img[0])
    a, b = NOVEL_MEDIAN, NOVEL_BLUR
    centre = (1 - a) * ((1 - b) + b * 4 / 16)
    torch.testing.assert_close(out[1, 2, 2], torch.full((3,), centre))
    torch.testing.assert_close(out[1, 2, 1], torch.full((3,), (1 - a) * b * 2 / 16))
    torch.testing.assert_close(out[1, 1, 1], torch.full((3,), (1 - a) * b / 16))
    edge = torch.zeros(1, 6, 6, 3)
    edge[:, :, 3:] = 1.0  # a straight edge: the median keeps it, the blur softens it by b only
    soft = soften(edge, torch.tensor([1.0]))
    torch.testing.assert_close(soft[0, :, 2], torch.full((6, 3), b * 4 / 16))
    torch.testing.assert_close(soft[0, :, 0], torch.zeros(6, 3))
    flat = torch.full((1, 4, 6, 3), 0.3)
    torch.testing.assert_close(soften(flat, torch.tensor([1.0])), flat)
    # the median network equals sorting each replicated-edge 3×3 window, ties included
    from lrm4d_ros.reconstruction import _median3x3
    for x in (torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(1)),
              torch.randint(0, 3, (1, 3, 8, 8), generator=torch.Generator().manual_seed(2)).float()):
        windows = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1)
        assert torch.equal(_median3x3(x), windows.reshape(*x.shape, 9).median(-1).values)
    # the gate: 1 along an input's axis at its time, 0 from a novel viewpoint (beyond FADE_GATE_DEG)
    wt = ViewWeighting(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.zeros(2), pixels=1)
    assert wt.gate(torch.tensor([0.0, 0.0, 1.0]), 0.0) == pytest.approx(1.0)
    ang = math.radians(2 * FADE_GATE_DEG)
    assert wt.gate(torch.tensor([math.sin(ang), 0.0, math.cos(ang)]), 0.0) == 0.0
    # a reconstruction renders an input's own camera untouched and a novel camera fully softened
    torch.manual_seed(0)
    c2w = ring(3, radius=3.0)
    views = _views(c2w, [0, 50_000_000, 100_000_000], res=16)
    views.depths = torch.full((3, 16, 16), 2.5)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    rec = Reconstructor(model, device="cpu", refine_steps=0).reconstruct(views)  # colours stay within [0, 1]
    novel = ring(12, radius=3.0)[1:2]  # 30° from the nearest input
    own = rec.render(c2w[:1], views.Ks[:1], 16, 16, views.stamps_ns[:1])
    seen = rec.render(novel, views.Ks[:1], 16, 16, views.stamps_ns[:1])
    expected = {}
    for name in ("NOVEL_MEDIAN", "NOVEL_BLUR"):
        expected[name] = getattr(reconstruction, name)
        monkeypatch.setattr(reconstruction, name, 0.0)
    bare_own = rec.render(c2w[:1], views.Ks[:1], 16, 16, views.stamps_ns[:1])
    bare = rec.render(novel, views.Ks[:1], 16, 16, views.stamps_ns[:1])
    for name, value in expected.items():
        monkeypatch.setattr(reconstruction, name, value)
    torch.testing.assert_close(seen.colors, soften(bare.colors, torch.tensor([1.0])))
    assert float((seen.colors - bare.colors).abs().max()) > 0.01
    assert torch.equal(own.colors, bare_own.colors)
    torch.testing.assert_close(seen.depths, bare.depths, rtol=0, atol=0)  # colours only


def test_render_at_times_plan_reuses_slices_for_new_colours():
    """A plan made by one call renders the next call's colours exactly as a fresh call would (refine_colours)."""
    from dataclasses import replace

    from lrm4d_ros.environment import Environment
    from lrm4d_ros.gaussians import Gaussians4D
    from lrm4d_ros.reconstruction import ViewWeighting

    gen = torch.Generator().manual_seed(3)
    n = 400
    g = Gaussians4D(means=torch.rand(n, 3, generator=gen) - 0.5 + torch.tensor([0.0, 0.0, 2.0]),
                    times=torch.rand(n, generator=gen) * 2 - 1, velocities=torch.randn(n, 3, generator=gen) * 0.05,
                    covars=torch.eye(3).expand(n, 3, 3) * 0.002, scale_t=torch.full((n,), 0.3),
                    opacities=torch.rand(n, generator=gen) * 0.9, colors=torch.rand(n, 3, generator=gen))
    c2w, K = torch.eye(4)[None].repeat(3, 1, 1), fov_to_K(0.9, 16, 16).expand(3, 3, 3)
    c2w[2, :3, 3] = torch.tensor([0.3, 0.0, 0.0])
    times = torch.tensor([-0.5, 0.0, 0.0])
    wt = ViewWeighting(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.tensor([-0.5, 0.5]), pixels=200)
    env = Environment.constant(torch.tensor([0.2, 0.4, 0.6]))
    plan: dict = {}
    first = render_at_times(g, c2w, K, 16, 16, times, env, weighting=wt, fill=True, plan=plan)
    assert plan["slices"] and "background" in plan
    unplanned = render_at_times(g, c2w, K, 16, 16, times, env, weighting=wt, fill=True)
    torch.testing.assert_close(first.colors, unplanned.colors, rtol=0, atol=0)
    recoloured = replace(g, colors=torch.rand(n, 3, generator=gen))
    again = render_at_times(recoloured, c2w, K, 16, 16, times, env, weighting=wt, fill=True, plan=plan)
    fresh = render_at_times(recoloured, c2w, K, 16, 16, times, env, weighting=wt, fill=True)
    assert (again.colors - first.colors).abs().max() > 0.05  # the new colours show
    for a, b in zip(again, fresh):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="slicer"):
        render_at_times(g, c2w, K, 16, 16, times, env, plan={}, slicer=lambda ts: [g.slice_kept(t) for t in ts])


def test_area_average_weights_depth_by_what_the_depth_counts():
    """A 2×2 block drawn finer: its depth is the median of its pixels' depths weighted by each pixel's depth coverage
    (depth_alphas where the render had depth weights, else alphas; as a pixel's median depth, one surface, not a mean
    of two), 0 where nothing covers it; colours, alphas and depth_alphas by their plain mean."""
    from lrm4d_ros.reconstruction import _area_average
    from lrm4d_ros.render import RenderOutput

    colors = torch.rand(1, 2, 2, 3)
    alphas = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(1, 2, 2, 1)
    depths = torch.tensor([2.0, 4.0, 8.0, 0.0]).view(1, 2, 2, 1)
    plain = _area_average(RenderOutput(colors, alphas, depths), 2)
    assert torch.allclose(plain.colors, colors.mean((1, 2), keepdim=True)) and plain.depth_alphas is None
    assert torch.allclose(plain.alphas, torch.tensor(0.75))
    assert torch.equal(plain.depths, torch.tensor(4.0).view(1, 1, 1, 1))
    cover = torch.tensor([0.0, 0.4, 1.0, 0.0]).view(1, 2, 2, 1)  # the first pixel: all a sensor's no return
    weighted = _area_average(RenderOutput(colors, alphas, depths, cover), 2)
    assert torch.equal(weighted.depths, torch.tensor(8.0).view(1, 1, 1, 1))
    assert torch.allclose(weighted.depth_alphas, torch.tensor(0.35))
    nothing = _area_average(RenderOutput(colors, alphas, depths, torch.zeros_like(cover)), 2)
    assert torch.equal(nothing.depths, torch.zeros(1, 1, 1, 1))
    assert torch.equal(weighted.alphas, plain.alphas) and torch.equal(weighted.colors, plain.colors)
