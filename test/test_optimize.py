"""Per-scene optimisation (lrm4d_ros.optimize): it fits its input views, respects its budget and checks input."""
import pytest
import torch

from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.metrics import psnr
from lrm4d_ros.optimize import FitConfig, fit


@pytest.fixture(scope="module")
def scene():
    torch.manual_seed(0)
    cfg = SceneConfig(frames=4, cameras=4, height=32, width=32, rig_kinds=("orbit",), ground_prob=0.0,
                      backdrop_prob=0.0, num_primitives=(2, 3), motion_kinds=("rigid",))
    return split_protocol(generate(1_000_011, cfg), "novel-camera")


def test_fit_reproduces_its_inputs(scene):
    inputs, _ = scene
    res = fit(inputs, FitConfig(steps=120, image_size=32, stride=1, views_per_step=2))
    assert res.steps == 120
    # The uninformed start (every splat on the centre plane, opacity 0.1) is far from the views; 120 Adam steps
    # on 4 views of 32² must bring them up sharply.
    assert res.input_psnr > res.init_psnr + 6.0, (res.init_psnr, res.input_psnr)
    assert res.input_psnr > 24.0
    rec = res.reconstruction
    with torch.no_grad():
        out = rec.render(inputs.camtoworlds, inputs.Ks, 32, 32, inputs.stamps_ns)
    torch.testing.assert_close(float(psnr(out.colors.clamp(0, 1), inputs.images).mean()), res.input_psnr,
                               atol=0.05, rtol=0)
    assert out.depths.shape == (len(inputs), 32, 32, 1) and torch.isfinite(out.depths).all()


def test_fit_stops_at_a_time_budget(scene):
    inputs, _ = scene
    res = fit(inputs, FitConfig(steps=None, seconds=0.5, image_size=16))
    assert 1 <= res.steps and 0.5 <= res.seconds < 5.0


def test_fit_config_and_input_checks(scene):
    with pytest.raises(ValueError, match="budget"):
        FitConfig(steps=None, seconds=None)
    with pytest.raises(ValueError, match="positive"):
        FitConfig(steps=0)
    with pytest.raises(ValueError, match="at least one"):
        fit(scene[0].select([]), FitConfig(steps=1))
