"""4D Gaussian parameterisation and slicing against closed forms."""
import math

import pytest
import torch

from lrm4d_ros.cameras import SceneNormalization, TimeWindow
from lrm4d_ros.gaussians import (MIN_MARGINAL, RAW_CHANNELS, Gaussians3D, Gaussians4D, rotation_4d,
                                 rotation_4d_to_quats, rotmat_to_quat, quat_to_rotmat)



@pytest.fixture(autouse=True)
def float64_default():
    """Closed-form checks run in float64; restore the default so other test modules are unaffected."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def make(n=1, scales=(0.1, 0.2, 0.3), scale_t=0.5, ql=(1, 0, 0, 0), qr=(1, 0, 0, 0), t=0.0):
    ones = torch.ones(n)
    return Gaussians4D(means=torch.zeros(n, 3), times=t * ones, scales=torch.tensor(scales).expand(n, 3).clone(),
                       scale_t=scale_t * ones, quats_l=torch.tensor(ql, dtype=torch.float64).expand(n, 4).clone(),
                       quats_r=torch.tensor(qr, dtype=torch.float64).expand(n, 4).clone(), opacities=0.8 * ones,
                       colors=torch.full((n, 3), 0.5))


def test_rotation_is_orthonormal_and_identity_for_unit_quaternions():
    q = torch.nn.functional.normalize(torch.randn(50, 4), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(50, 4), dim=-1)
    R = rotation_4d(q, p)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(4).expand(50, 4, 4), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(50), atol=1e-12, rtol=0)
    I = torch.tensor([[1.0, 0, 0, 0]])
    torch.testing.assert_close(rotation_4d(I, I)[0], torch.eye(4))


def test_identity_rotation_gives_no_motion_and_separable_covariance():
    g = make(scales=(0.1, 0.2, 0.3), scale_t=0.4)
    cov = g.covariance()[0]
    torch.testing.assert_close(cov, torch.diag(torch.tensor([0.01, 0.04, 0.09, 0.16])))
    for t in (-0.7, 0.0, 0.3):
        s = g.slice(t, min_marginal=0.0)
        torch.testing.assert_close(s.means, g.means)  # no motion
        torch.testing.assert_close(s.covars[0], torch.diag(torch.tensor([0.01, 0.04, 0.09])))
        torch.testing.assert_close(s.opacities, 0.8 * torch.exp(torch.tensor([-0.5 * t * t / 0.16])))


def test_xt_coupled_rotation_moves_with_closed_form_velocity():
    theta = 0.3  # L(q)R(q) with q = (cos θ, 0, 0, sin θ) rotates the x–t plane by 2θ and leaves y, z alone
    q = (math.cos(theta), 0.0, 0.0, math.sin(theta))
    sx, st, phi = 0.2, 0.5, 2 * theta
    g = make(scales=(sx, 0.1, 0.1), scale_t=st, ql=q, qr=q, t=0.1)
    R = g.rotation()[0]
    torch.testing.assert_close(R[[1, 2]][:, [1, 2]], torch.eye(2), atol=1e-12, rtol=0)
    c, s = math.cos(phi), math.sin(phi)
    torch.testing.assert_close(R[0, 0], torch.tensor(c))
    torch.testing.assert_close(R[3, 0].abs(), torch.tensor(s))
    sxx = c * c * sx ** 2 + s * s * st ** 2
    stt = s * s * sx ** 2 + c * c * st ** 2
    sxt = R[0, 0] * R[3, 0] * sx ** 2 + R[0, 3] * R[3, 3] * st ** 2
    cov = g.covariance()[0]
    torch.testing.assert_close(cov[0, 0], torch.tensor(sxx))
    torch.testing.assert_close(cov[3, 3], torch.tensor(stt))
    torch.testing.assert_close(cov[0, 3], sxt)
    v = float(sxt) / stt
    assert abs(v) > 0.1  # the rotation really couples x and t
    for t in (-0.5, 0.1, 0.6):
        sl = g.slice(t, min_marginal=0.0)
        torch.testing.assert_close(sl.means[0], torch.tensor([v * (t - 0.1), 0.0, 0.0]))
        torch.testing.assert_close(sl.covars[0, 0, 0], torch.tensor(sxx - float(sxt) ** 2 / stt))
        torch.testing.assert_close(sl.opacities[0], torch.tensor(0.8 * math.exp(-0.5 * (t - 0.1) ** 2 / stt)))


def test_slice_culls_below_marginal_threshold():
    g = make(n=3, scale_t=0.1)
    g.times = torch.tensor([0.0, 0.2, 0.9])
    s = g.slice(0.0)
    # p = exp(-½ (Δt/0.1)²): 1, exp(-2)=0.135, exp(-40.5) -> the third is culled at 0.05
    assert len(s) == 2
    torch.testing.assert_close(s.opacities, 0.8 * torch.tensor([1.0, math.exp(-2.0)]))


def test_slice_conditions_only_what_survives_the_cull_with_the_same_result():
    torch.manual_seed(0)
    raw = torch.randn(4000, RAW_CHANNELS)
    g = Gaussians4D.from_raw(raw, torch.zeros(4000, 3), torch.nn.functional.normalize(torch.randn(4000, 3), dim=-1))
    g.times = torch.rand(4000) * 2 - 1
    g.scale_t = g.scale_t * 0.05  # short-lived: most are culled at any one time
    torch.testing.assert_close(g.temporal_variance(), g.covariance()[:, 3, 3], rtol=1e-5, atol=1e-9)
    ts = [-0.3, 0.45]
    for fast, full in zip(g.slice_many(ts), g._slice_all(ts, MIN_MARGINAL)):
        assert 0 < len(full) < 4000 // 2
        for f in ("means", "covars", "opacities", "colors"):
            assert torch.equal(getattr(fast, f), getattr(full, f)), f


def test_from_raw_applies_paper_activations():
    raw = torch.zeros(2, RAW_CHANNELS)
    raw[:, 7:10] = torch.tensor([0.0, 2.3, 10.0])  # exp(-2.3), exp(0)=1 -> 0.3 cap, cap
    raw[:, 10] = 10.0
    raw[1, 0:3] = 100.0  # w -> 1 -> depth 4.5
    o = torch.tensor([[0.0, 0.0, -0.5], [0.0, 0.0, -2.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    g = Gaussians4D.from_raw(raw, o, d)
    # w = σ(0) = ½ -> depth 2.3; -0.5 + 2.3 = 1.8 clipped to 1
    torch.testing.assert_close(g.means[:, 2], torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(g.scales[0], torch.tensor([math.exp(-2.3), 0.3, 0.3]))
    torch.testing.assert_close(g.scale_t, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(g.opacities, torch.sigmoid(torch.tensor([-2.0, -2.0])))
    torch.testing.assert_close(g.quats_l, torch.tensor([[1.0, 0, 0, 0]] * 2))  # zero raw -> identity
    raw[0, 11:15] = torch.tensor([1.0, 2.0, 0.0, 2.0])
    torch.testing.assert_close(Gaussians4D.from_raw(raw).quats_l[0], torch.tensor([2.0, 2.0, 0.0, 2.0]) / 12 ** 0.5)
    raw[0, 0:3] = torch.tensor([0.2, -0.3, 0.4])
    free = Gaussians4D.from_raw(raw[:1])
    torch.testing.assert_close(free.means[0], torch.tensor([0.2, -0.3, 0.4]))


def test_from_raw_time_offset_and_scale_floor():
    raw = torch.zeros(2, RAW_CHANNELS)
    raw[:, 3] = torch.tensor([0.0, 0.25])  # time offsets
    raw[:, 7:10] = -50.0  # raw scales -> ~0: the floor alone remains
    o = torch.zeros(2, 3)
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    g = Gaussians4D.from_raw(raw, o, d, view_times=torch.tensor([-0.5, 0.5]),
                             pixel_size=torch.tensor([0.01, 0.02]), scale_floor_px=0.5)
    torch.testing.assert_close(g.times, torch.tensor([-0.5, 0.75]))
    # depth 2.3 at zero raw xyz: floor = 0.5 · 2.3 · pixel_size on every axis
    torch.testing.assert_close(g.scales, torch.tensor([[0.0115] * 3, [0.023] * 3]))
    with pytest.raises(ValueError, match="pixel-aligned"):
        Gaussians4D.from_raw(raw, view_times=torch.zeros(2))


def test_from_raw_time_floor_widens_lifetimes():
    raw = torch.zeros(2, RAW_CHANNELS)
    raw[:, 10] = torch.tensor([-50.0, 2.3 + math.log(0.3)])  # temporal scales ~0 and 0.3
    o, d = torch.zeros(2, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(2, 3)
    g = Gaussians4D.from_raw(raw, o, d, time_floor=0.4)
    torch.testing.assert_close(g.scale_t, torch.tensor([0.4, 0.5]))  # sqrt(s² + 0.4²)
    # identity rotation: the marginal one floor away from μ_t is exp(-1/2)
    torch.testing.assert_close(g.marginal(0.4)[0], torch.tensor(math.exp(-0.5)))
    with pytest.raises(ValueError, match="pixel-aligned"):
        Gaussians4D.from_raw(raw, time_floor=0.4)


def test_from_raw_color_skip_is_a_residual_on_the_pixel():
    raw = torch.zeros(3, RAW_CHANNELS)
    raw[2, 4:7] = torch.tensor([1.0, -1.0, 0.0])
    pixels = torch.tensor([[0.2, 0.5, 0.9], [0.0, 1.0, 0.3], [0.2, 0.5, 0.9]])
    o, d = torch.zeros(3, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(3, 3)
    g = Gaussians4D.from_raw(raw, o, d, pixel_colors=pixels)
    # zero residual -> the pixel's colour (0 and 1 clamped to 0.001 / 0.999 before the logit)
    torch.testing.assert_close(g.colors[:2], torch.tensor([[0.2, 0.5, 0.9], [0.001, 0.999, 0.3]]))
    torch.testing.assert_close(g.colors[2], torch.sigmoid(torch.logit(pixels[2]) + raw[2, 4:7]))
    with pytest.raises(ValueError, match="pixel-aligned"):
        Gaussians4D.from_raw(raw, pixel_colors=pixels)


def test_quaternion_and_so4_factorisations_round_trip():
    q = torch.nn.functional.normalize(torch.randn(100, 4), dim=-1)
    R3 = quat_to_rotmat(q)
    q2 = rotmat_to_quat(R3)
    torch.testing.assert_close(q2, torch.where(q[:, :1] < 0, -q, q), atol=1e-10, rtol=0)
    a = torch.nn.functional.normalize(torch.randn(100, 4), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(100, 4), dim=-1)
    R = rotation_4d(a, b)
    a2, b2 = rotation_4d_to_quats(R)
    torch.testing.assert_close(rotation_4d(a2, b2), R, atol=1e-10, rtol=0)


def test_scales_quats_reproduce_covariance():
    g = make(n=20, ql=(0.9, 0.1, -0.3, 0.2), qr=(0.7, 0.2, 0.1, -0.4)).slice(0.0, 0.0)
    s, q = g.scales_quats()
    back = Gaussians3D.from_scales_quats(g.means, s, q, g.opacities, g.colors)
    torch.testing.assert_close(back.covars, g.covars, atol=1e-12, rtol=1e-9)


def test_to_world_preserves_rendered_geometry():
    torch.manual_seed(0)
    n = 30
    g = make(n=n)
    g.quats_l = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)
    g.quats_r = torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)
    g.means = torch.rand(n, 3) - 0.5
    g.times = torch.rand(n) * 2 - 1
    norm = SceneNormalization(torch.tensor([1.0, -2.0, 0.5]), 0.25)
    window = TimeWindow(1_700_000_000_000_000_000, 1_700_000_002_000_000_000)  # 2 s
    w = g.to_world(norm, window)
    t_norm = 0.3
    t_sec = (t_norm + 1) * 0.5 * window.duration_s
    a = g.slice(t_norm, 0.0).to_world(norm)
    b = w.slice(t_sec, 0.0)
    torch.testing.assert_close(b.means, a.means, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(b.covars, a.covars, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(b.opacities, a.opacities, atol=1e-9, rtol=1e-9)
