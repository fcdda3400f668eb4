"""4D Gaussian parameterisation and slicing against closed forms."""
import math

import pytest
import torch

from conftest import fresh_python
from lrm4d_ros.cameras import SceneNormalization, TimeWindow
from lrm4d_ros.gaussians import (Gaussians3D, Gaussians4D, rotation_4d, rotation_4d_to_quats, rotmat_to_quat,
                                 quat_to_rotmat)



@pytest.fixture(autouse=True)
def float64_default():
    """Closed-form checks run in float64; restore the default so other test modules are unaffected."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def make(n=1, scales=(0.1, 0.2, 0.3), scale_t=0.5, ql=(1, 0, 0, 0), qr=(1, 0, 0, 0), t=0.0, means=None,
         times=None):
    ones = torch.ones(n)
    return Gaussians4D.from_rotations(
        means=torch.zeros(n, 3) if means is None else means, times=t * ones if times is None else times,
        scales=torch.tensor(scales).expand(n, 3).clone(), scale_t=scale_t * ones,
        quats_l=torch.nn.functional.normalize(torch.tensor(ql, dtype=torch.float64), dim=-1).expand(n, 4).clone(),
        quats_r=torch.nn.functional.normalize(torch.tensor(qr, dtype=torch.float64), dim=-1).expand(n, 4).clone(),
        opacities=0.8 * ones, colors=torch.full((n, 3), 0.5))


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
    R = rotation_4d(torch.tensor([q]), torch.tensor([q]))[0]
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
    g = make(n=3, scale_t=0.1, times=torch.tensor([0.0, 0.2, 0.9]))
    s = g.slice(0.0)
    # p = exp(-½ (Δt/0.1)²): 1, exp(-2)=0.135, exp(-40.5) -> the third is culled at 0.05
    assert len(s) == 2
    torch.testing.assert_close(s.opacities, 0.8 * torch.tensor([1.0, math.exp(-2.0)]))


def test_slice_for_a_renderer_drops_only_what_it_would_not_draw():
    """min_opacity = the renderer's 1/255 cut: Gaussians whose sliced opacity falls below it leave the slice, and the
    render (float32, the compiled CPU rasterizer) is bitwise the same as with them."""
    from lrm4d_ros.cameras import fov_to_K
    from lrm4d_ros.render import render
    from lrm4d_ros.render.projection import ALPHA_THRESHOLD

    g = torch.Generator().manual_seed(3)
    n = 400
    means = torch.randn(n, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 2.0])
    opac = torch.rand(n, generator=g) * 0.05  # a fifth of them under 1/255 at full presence
    g4 = Gaussians4D.from_rotations(means, torch.rand(n, generator=g) * 0.4 - 0.2,
                                    torch.rand(n, 3, generator=g) * 0.05 + 0.01, torch.full((n,), 0.3),
                                    torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
                                    torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1), opac,
                                    torch.rand(n, 3, generator=g)).to(dtype=torch.float32)
    keep_all, all_ = g4.slice_kept(0.1)
    keep_cut, cut = g4.slice_kept(0.1, min_opacity=ALPHA_THRESHOLD)
    assert len(cut) < len(all_) - 50
    assert bool((all_.opacities[~torch.isin(keep_all, keep_cut)] < ALPHA_THRESHOLD).all())
    K, c2w = fov_to_K(math.radians(60), 48, 48)[None].float(), torch.eye(4)[None]
    a = render(all_.means, all_.covars, all_.opacities, all_.colors, c2w, K, 48, 48)
    b = render(cut.means, cut.covars, cut.opacities, cut.colors, c2w, K, 48, 48)
    assert a.alphas.max() > 0.1
    for x, y in zip(a[:3], b[:3]):
        assert torch.equal(x, y)


def test_conditional_form_round_trips_the_paper_form():
    torch.manual_seed(1)
    n = 40
    unit = lambda: torch.nn.functional.normalize(torch.randn(n, 4), dim=-1)  # noqa: E731
    g = Gaussians4D.from_rotations(torch.randn(n, 3), torch.rand(n), torch.rand(n, 3) * 0.3 + 0.01,
                                   torch.rand(n) * 0.5 + 0.01, unit(), unit(), torch.rand(n), torch.rand(n, 3))
    cov = g.covariance()
    # covariance() rebuilds Σ from the stored (velocity, conditional covariance, σ_t) exactly
    back = Gaussians4D.from_covariance(g.means, g.times, cov, g.opacities, g.colors)
    torch.testing.assert_close(back.velocities, g.velocities)
    torch.testing.assert_close(back.covars, g.covars)
    scales, scale_t, ql, qr = g.rotations()
    again = Gaussians4D.from_rotations(g.means, g.times, scales, scale_t, ql, qr, g.opacities, g.colors)
    torch.testing.assert_close(again.covariance(), cov, atol=1e-12, rtol=1e-9)
    # a static Gaussian's temporal scale is the paper's scale_t
    static = make(n=3, scales=(0.1, 0.2, 0.3), scale_t=0.7)
    torch.testing.assert_close(static.rotations()[1], torch.full((3,), 0.7))
    torch.testing.assert_close(static.velocities, torch.zeros(3, 3))


def test_velocity_moves_the_slice_and_leaves_the_covariance():
    g = make(n=1, scale_t=0.5, t=0.2)
    g.velocities = torch.tensor([[0.3, -0.1, 0.0]])
    for t in (-0.4, 0.2, 0.9):
        s = g.slice(t, 0.0)
        torch.testing.assert_close(s.means[0], torch.tensor([0.3, -0.1, 0.0]) * (t - 0.2))
        torch.testing.assert_close(s.covars[0], torch.diag(torch.tensor([0.01, 0.04, 0.09])))
    # the same Gaussian in the paper's form moves identically
    s2, st2, ql, qr = g.rotations()
    p = Gaussians4D.from_rotations(g.means, g.times, s2, st2, ql, qr, g.opacities, g.colors)
    torch.testing.assert_close(p.slice(0.9, 0.0).means, g.slice(0.9, 0.0).means)


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
    g = Gaussians4D.from_rotations(torch.rand(n, 3) - 0.5, torch.rand(n) * 2 - 1, torch.rand(n, 3) * 0.2 + 0.01,
                                   torch.rand(n) * 0.5 + 0.05, torch.nn.functional.normalize(torch.randn(n, 4), dim=-1),
                                   torch.nn.functional.normalize(torch.randn(n, 4), dim=-1), torch.rand(n),
                                   torch.rand(n, 3))
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


def test_to_world_of_a_one_instant_window_keeps_its_instant_at_zero_seconds():
    # a synchronized rig's single frame: every view at one stamp (TimeWindow.normalize maps it to 0)
    torch.manual_seed(0)
    n = 10
    g = Gaussians4D.from_rotations(torch.rand(n, 3) - 0.5, torch.zeros(n), torch.rand(n, 3) * 0.2 + 0.01,
                                   torch.rand(n) * 0.5 + 0.05, torch.nn.functional.normalize(torch.randn(n, 4), dim=-1),
                                   torch.nn.functional.normalize(torch.randn(n, 4), dim=-1), torch.rand(n),
                                   torch.rand(n, 3))
    norm = SceneNormalization(torch.tensor([1.0, -2.0, 0.5]), 0.25)
    w = g.to_world(norm, TimeWindow(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert torch.equal(w.times, torch.zeros(n)) and bool(torch.isfinite(w.scale_t).all() & (w.scale_t > 0).all())
    a, b = g.slice(0.0, 0.0).to_world(norm), w.slice(0.0, 0.0)
    torch.testing.assert_close(b.means, a.means, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(b.opacities, a.opacities, atol=1e-9, rtol=1e-9)


def test_principal_axes_keeps_torchs_thread_count():
    """The kernel is numba's first parallel one in a process that exports before it renders: numba's threads start
    there, and torch's thread count stays what the process set."""
    code = ("import torch; torch.set_num_threads(1)\n"
            "from lrm4d_ros.sym3 import principal_axes\n"
            "principal_axes(torch.eye(3).expand(10, 3, 3).contiguous())\n"
            "import numba; print(torch.get_num_threads(), numba.get_num_threads())\n")
    assert fresh_python(code)[-2:] == ["1", "1"]


def test_principal_axes_kernel_reproduces_covariances_like_the_torch_route():
    """Gaussians3D.scales_quats on the CPU (one numba pass): R(q) diag(s²) R(q)ᵀ is the covariance, q unit with
    w ≥ 0, scales equal the torch route's (eigh + rotmat_to_quat), for random, repeated, zero and rank-deficient
    covariances and the empty set."""
    from lrm4d_ros.gaussians import _spd_factor
    from lrm4d_ros.geometry import quat_to_rotmat
    from lrm4d_ros.sym3 import principal_axes

    g = torch.Generator().manual_seed(1)
    a = torch.randn(2000, 3, 3, generator=g, dtype=torch.float64)
    R = torch.linalg.qr(torch.randn(4, 3, 3, generator=g, dtype=torch.float64)).Q
    special = torch.stack([torch.zeros(3, 3), torch.eye(3) * 2.0, torch.diag(torch.tensor([3.0, 1.0, 2.0])),
                           torch.diag(torch.tensor([1e-8, 1.0, 1.0]))]).double()
    for cov in (a @ a.transpose(-1, -2), R @ special @ R.transpose(-1, -2), (a @ a.transpose(-1, -2)).float()):
        s, q = principal_axes(cov)
        tol = 1e-9 if cov.dtype == torch.float64 else 1e-4
        s_ref, R_ref = _spd_factor(cov)
        torch.testing.assert_close(s, s_ref, atol=tol * 10, rtol=tol)
        torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q), dtype=q.dtype), atol=tol, rtol=0)
        assert bool((q[:, 0] >= 0).all())
        Rq = quat_to_rotmat(q.double())
        torch.testing.assert_close(torch.linalg.det(Rq), torch.ones(len(q), dtype=torch.float64), atol=1e-6, rtol=0)
        torch.testing.assert_close((Rq @ torch.diag_embed(s.double() ** 2) @ Rq.transpose(-1, -2)).to(cov.dtype),
                                   cov, atol=tol * 10, rtol=tol)
        if cov.shape[0] > 4:  # distinct eigenvalues: the same principal axes as torch's eigh, up to each one's sign
            cos = (Rq.to(R_ref.dtype) * R_ref).sum(-2).abs()  # |column_j(R(q)) · column_j(R_ref)|
            torch.testing.assert_close(cos, torch.ones_like(cos), atol=tol * 10, rtol=0)
    s, q = principal_axes(torch.zeros(0, 3, 3))
    assert s.shape == (0, 3) and q.shape == (0, 4)
    g3 = Gaussians3D(torch.zeros(3, 3), torch.eye(3).expand(3, 3, 3) * 4.0, torch.ones(3), torch.ones(3, 3))
    torch.testing.assert_close(g3.scales_quats()[0], torch.full((3, 3), 2.0))
