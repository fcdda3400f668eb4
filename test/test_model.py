"""LRM4D model, checkpoints and Reconstructor: shapes, bit-exact round trips, overfitting, window checks."""
import math

import pytest
import torch

from lrm4d_ros.cameras import SceneNormalization, TimeWindow, fov_to_K
from lrm4d_ros.checkpoint import (load_config, load_model, load_training_state, save_model,
                                  save_training_state)
from lrm4d_ros.metrics import psnr, ssim
from lrm4d_ros.model import LRM4D, LRM4DConfig, model_input
from lrm4d_ros.reconstructor import Reconstructor, predict, render_at_times
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


def blob_scene(c2w: torch.Tensor, times: torch.Tensor, res: int) -> torch.Tensor:
    """Ground-truth images (V,res,res,3) of three coloured Gaussians, the red one moving along x with time."""
    K = fov_to_K(0.9, res, res).float()
    imgs = []
    for v in range(c2w.shape[0]):
        means = torch.tensor([[0.4 * float(times[v]), 0.0, 0.0], [0.0, 0.4, 0.2], [0.0, -0.3, -0.3]])
        covars = torch.diag_embed(torch.tensor([[0.04, 0.04, 0.04], [0.02, 0.05, 0.02], [0.06, 0.02, 0.03]])) / 4
        colors = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0]])
        out = render(means, covars, torch.full((3,), 0.9), colors, c2w[v:v + 1].float(), K[None], res, res,
                     torch.tensor([0.1, 0.1, 0.1]))
        imgs.append(out.colors[0])
    return torch.stack(imgs)


@pytest.mark.parametrize("views,height,width,free", [(1, 8, 8, 0), (3, 16, 24, 0), (2, 32, 16, 5)])
def test_output_shapes_for_any_views_resolution_and_free_tokens(views, height, width, free):
    model = LRM4D(LRM4DConfig.preset("tiny", n_free_tokens=free))
    x = torch.randn(2, views, 10, height, width)
    pix, fr = model(x)
    assert pix.shape == (2, views, height, width, 20)
    assert fr.shape == (2, free, 20)


def test_bad_inputs_raise():
    model = LRM4D(LRM4DConfig.preset("tiny"))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 1, 10, 12, 16))
    with pytest.raises(ValueError, match="input must be"):
        model(torch.randn(1, 1, 9, 16, 16))
    with pytest.raises(ValueError, match="n_head"):
        LRM4DConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown preset"):
        LRM4DConfig.preset("huge")


def test_unpatchify_is_pixel_aligned():
    """Changing one input pixel's colour changes only the output tokens of its own patch."""
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny")).eval()
    x = torch.randn(1, 2, 10, 16, 16)
    y = x.clone()
    y[0, 1, :3, 3, 12] += 1.0  # pixel (row 3, col 12) of view 1 -> patch (0, 1)
    a, _ = model(x)
    b, _ = model(y)
    changed = (a - b).abs().amax(-1)[0]  # (V,H,W)
    # Attention spreads the change to every token, but the residual stream keeps it in the pixel's own patch.
    own = changed[1, 0:8, 8:16].mean()
    others = torch.cat([changed[0].flatten(), changed[1, 8:].flatten(), changed[1, :8, :8].flatten()])
    assert own > 100 * others.mean()
    torch.testing.assert_close(model_input(torch.zeros(1, 1, 2, 2, 3), torch.zeros(1, 1, 2, 2, 6),
                                           torch.tensor([[0.5]]))[0, 0, :, 0, 0],
                               torch.tensor([-1.0] * 3 + [0.0] * 6 + [0.5]))


def test_initial_gaussians_are_sensible():
    model = LRM4D(LRM4DConfig.preset("tiny"))
    c2w = ring(2).float()
    K = fov_to_K(0.9, 16, 16).expand(2, 3, 3).float()
    with torch.no_grad():
        pred = predict(model, torch.rand(2, 16, 16, 3), K, c2w, torch.tensor([-1.0, 1.0]))
    g = pred.gaussians
    assert len(g) == 2 * 16 * 16
    # exp(-2 - 2.3) = 0.0136 combined with the half-pixel floor 0.5·δ/f at δ ≈ 2.3
    f = float(K[0, 0, 0])
    expect = (math.exp(-4.3) ** 2 + (0.5 * 2.3 / f) ** 2) ** 0.5
    assert abs(float(g.scales.median()) - expect) < 0.05 * expect
    # time centres start at their own view's time (offset channel ≈ 0)
    torch.testing.assert_close(g.times.view(2, -1).median(dim=1).values, torch.tensor([-1.0, 1.0]), atol=0.01, rtol=0)
    assert 0.015 < float(g.opacities.median()) < 0.021  # sigmoid(-2 - 2)
    assert float(g.scale_t.min()) > 0.5  # visible over the whole window at init
    # ray depth ≈ midpoint 2.3 of [0.1, 4.5]: the centre pixels' means start near the scene centre (z ≈ 2.3 · cos)
    assert 2.1 < float(pred.pixel_depths[:, 7:9, 7:9].median()) < 2.31
    assert float(g.means.abs().max()) <= 1.0


def test_color_skip_with_a_zeroed_colour_head_starts_at_the_input_pixels():
    model = LRM4D(LRM4DConfig.preset("tiny", color_skip=True))
    c2w = ring(2).float()
    K = fov_to_K(0.9, 16, 16).expand(2, 3, 3).float()
    images = torch.rand(2, 16, 16, 3) * 0.9 + 0.05
    with torch.no_grad():
        before = predict(model, images, K, c2w, torch.tensor([-1.0, 1.0])).gaussians.colors
        model.zero_color_head()
        after = predict(model, images, K, c2w, torch.tensor([-1.0, 1.0])).gaussians.colors
    assert (before - images.reshape(-1, 3)).abs().max() > 1e-3  # a random head perturbs the colours a little
    torch.testing.assert_close(after, images.reshape(-1, 3), atol=1e-5, rtol=0)


def test_time_floor_is_a_multiple_of_the_view_spacing():
    torch.manual_seed(0)
    c2w = ring(3).float()
    K = fov_to_K(0.9, 16, 16).expand(3, 3, 3).float()
    images, times = torch.rand(3, 16, 16, 3), torch.tensor([-1.0, 0.2, 1.0])  # spacing (1 - -1)/2 = 1
    for floor in (0.0, 0.5):
        # init_scale_t -50: untrained lifetimes ~0, so the floor alone remains
        model = LRM4D(LRM4DConfig.preset("tiny", init_scale_t=-50.0, time_floor=floor))
        with torch.no_grad():
            g = predict(model, images, K, c2w, times).gaussians
        assert abs(float(g.scale_t.median()) - floor) < 1e-3


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", n_free_tokens=3))
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
        loss = model(torch.randn(1, 1, 10, 8, 8, generator=torch.Generator().manual_seed(1)))[0].square().mean()
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


def test_tiny_model_overfits_one_dynamic_scene():
    """100 AdamW steps at 24² reproduce a scene with a moving blob at > 25 dB PSNR (reaches ~34 dB)."""
    torch.manual_seed(0)
    res = 24
    c2w = ring(4).float()
    K = fov_to_K(0.9, res, res).expand(4, 3, 3).float()
    times = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])
    target = blob_scene(c2w, times, res)
    model = LRM4D(LRM4DConfig.preset("tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95))
    for _ in range(100):
        g = predict(model, target, K, c2w, times).gaussians
        out = render_at_times(g, c2w, K, res, res, times)
        loss = (out.colors - target).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        g = predict(model, target, K, c2w, times).gaussians
        out = render_at_times(g, c2w, K, res, res, times)
    assert float(psnr(out.colors, target).mean()) > 25.0
    assert float(ssim(out.colors, target).mean()) > 0.8


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
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=16)), device="cpu").reconstruct(views)
    assert rec.window == TimeWindow(base, base + 100_000_000)
    assert len(rec.gaussians) == 3 * 16 * 16  # views resized to the model's 16² input
    # scene normalised: centre at the rig's focus, cameras at distance 2 in canonical units
    torch.testing.assert_close(rec.normalization.center, torch.tensor([10.0, -3.0, 1.0], dtype=torch.float64))
    out = rec.render(c2w[:2], views.Ks[:2], 20, 12, views.stamps_ns[:2])
    assert out.colors.shape == (2, 12, 20, 3) and out.depths.shape == (2, 12, 20, 1)
    d = out.depths[out.alphas > 1e-3]
    # initial means sit ~2.3 canonical units along each ray = 2.3 / 2 · 5 m ≈ 5.75 m, clipped by the cube
    assert d.numel() > 0 and 3.0 < float(d.median()) < 7.0
    g = rec.slice(base + 50_000_000)
    assert (g.means - rec.normalization.center.float()).norm(dim=-1).max() < 2.6 * 3 ** 0.5
    with pytest.raises(ValueError, match=rf"\[{base}, {base + 100_000_000}\]"):
        rec.render(c2w[:1], views.Ks[:1], 8, 8, torch.tensor([base + 200_000_000]))
    with pytest.raises(ValueError, match="outside the reconstructed window"):
        rec.slice(base - 20_000_000)
    rec.slice(base - 4_000_000)  # within tolerance (10 ms)


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
    loss, m = scene_loss(model, item["inputs"], item["targets"], 0.2, 1.0, alpha_weight=1.0, mask_weight=1.0,
                         time_weight=0.1, color_weight=1.0)
    loss.backward()
    assert {"mse", "psnr", "psnr_bg", "ssim", "depth_l1", "alpha_bce", "mask_bce", "color_l1", "time_l1"} <= set(m)
    total = m["mse"] + 0.2 * (1 - m["ssim"]) + m["depth_l1"] + m["alpha_bce"] + m["mask_bce"] + m["color_l1"] \
        + 0.1 * m["time_l1"]
    assert math.isclose(m["loss"], total, rel_tol=1e-4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.unpatchify.weight.grad.abs().sum() > 0

    class Args:
        lr, warmup, min_lr_ratio = 1e-3, 10, 0.1
    assert math.isclose(lr_at(0.0, 0, Args), 1e-4)  # warmup: (step + 1) / warmup
    assert math.isclose(lr_at(0.0, 10, Args), 1e-3) and math.isclose(lr_at(1.0, 10, Args), 1e-4)
    assert math.isclose(lr_at(0.5, 10, Args), 1e-4 + 0.5 * 0.9e-3)
