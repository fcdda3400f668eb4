"""Camera conventions, rays and normalisations."""
import math

import pytest
import torch

from lrm4d_ros.cameras import (SceneNormalization, TimeWindow, camera_up, fov_to_K, invert_pose, levelling,
                               pixel_rays, plucker_rays, scale_K)
from lrm4d_ros.views import ViewSet


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """Camera-to-world in the optical convention (z forward, y down)."""
    eye, target, up = (torch.as_tensor(v, dtype=torch.float64) for v in (eye, target, up))
    z = torch.nn.functional.normalize(target - eye, dim=0)
    x = torch.nn.functional.normalize(torch.linalg.cross(z, up), dim=0)
    y = torch.linalg.cross(z, x)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def test_fov_to_K_and_principal_ray():
    K = fov_to_K(math.radians(60), 64, 48)
    assert K[0, 2] == 31.5 and K[1, 2] == 23.5
    assert abs(float(K[1, 1]) - 24 / math.tan(math.radians(30))) < 1e-9
    c2w = look_at((0, -3, 0), (0, 0, 0))
    o, d = pixel_rays(K[None], c2w[None], 48, 64)
    # A ray through the principal point (between pixels 31/32, 23/24) is the optical axis: average the four.
    centre = d[0, 23:25, 31:33].mean((0, 1))
    torch.testing.assert_close(torch.nn.functional.normalize(centre, dim=0), c2w[:3, 2], atol=1e-4, rtol=0)
    # The top-left pixel's ray reprojects onto pixel (0, 0).
    p = (invert_pose(c2w)[:3, :3] @ d[0, 0, 0])
    uv = (K @ (p / p[2]))[:2]
    torch.testing.assert_close(uv, torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0)


def test_plucker_nearest_point_form():
    K = fov_to_K(0.8, 8, 8)
    c2w = look_at((1.0, -2.0, 0.5), (0, 0, 0))
    pl = plucker_rays(K[None], c2w[None], 8, 8)[0]
    d, m = pl[..., :3], pl[..., 3:]
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(8, 8, dtype=torch.float64))
    torch.testing.assert_close((m * d).sum(-1), torch.zeros(8, 8, dtype=torch.float64), atol=1e-12, rtol=0)
    # m lies on the ray: m = o + s d for some s.
    rel = m - c2w[:3, 3]
    torch.testing.assert_close(torch.linalg.cross(rel, d, dim=-1).norm(dim=-1),
                               torch.zeros(8, 8, dtype=torch.float64), atol=1e-12, rtol=0)


def test_invert_pose():
    T = look_at((1.0, 2.0, 3.0), (0.2, 0.1, -0.3))
    torch.testing.assert_close(invert_pose(T) @ T, torch.eye(4, dtype=torch.float64))


def test_scale_K_matches_resized_pixel_grid():
    K = fov_to_K(1.0, 128, 128)
    K2 = scale_K(K, 0.5, 0.5)
    assert float(K2[0, 2]) == 31.5 and abs(float(K2[0, 0]) - float(K[0, 0]) / 2) < 1e-12


def test_scene_normalization_from_ring_of_cameras():
    centre = torch.tensor([5.0, -1.0, 2.0], dtype=torch.float64)
    poses = torch.stack([look_at(centre + torch.tensor([4 * math.cos(a), 4 * math.sin(a), 1.0]), centre)
                         for a in torch.linspace(0, 2 * math.pi, 7)[:-1].tolist()])
    norm = SceneNormalization.from_cameras(poses, radius=2.0)
    torch.testing.assert_close(norm.center, centre, atol=1e-9, rtol=0)
    canon = norm.poses_to_canonical(poses)
    torch.testing.assert_close(canon[:, :3, 3].norm(dim=-1), torch.full((6,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(norm.poses_to_world(canon), poses)
    x = torch.randn(10, 3, dtype=torch.float64)
    torch.testing.assert_close(norm.points_to_world(norm.points_to_canonical(x)), x)


def _turn(axis: int, deg: float) -> torch.Tensor:
    """(3,3) rotation about world axis 0/1/2 by `deg` degrees."""
    a = math.radians(deg)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = torch.eye(3, dtype=torch.float64)
    R[i, i], R[i, j], R[j, i], R[j, j] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
    return R


def test_levelling_takes_up_to_z():
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(levelling(z), torch.eye(3, dtype=torch.float64))
    for up in [torch.randn(3, dtype=torch.float64) for _ in range(5)] + [-z, torch.tensor([0.0, 1.0, 0.0]).double()]:
        R = levelling(up)
        torch.testing.assert_close(R @ (up / up.norm()), z, atol=1e-12, rtol=0)
        torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
        assert float(torch.det(R)) > 0


def test_scene_normalization_levels_a_world_whose_z_is_not_up():
    """A ring of roll-free cameras over a z-up world keeps the identity (bit for bit the old normalisation); the
    same rig in a y-up world, or one tilted 20°, is turned so that canonical z is the world's up again, and every
    conversion is inverted by its partner."""
    centre = torch.tensor([5.0, -1.0, 2.0], dtype=torch.float64)
    poses = torch.stack([look_at(centre + torch.tensor([4 * math.cos(a), 4 * math.sin(a), 1.5]), centre)
                         for a in torch.linspace(0, 2 * math.pi, 5)[:-1].tolist()])
    flat = SceneNormalization.from_cameras(poses)
    assert torch.equal(flat.rotation, torch.eye(3, dtype=torch.float64))
    assert flat.heights_to_world(flat.heights_to_canonical(0.3)) == pytest.approx(0.3)
    for R in (_turn(0, -90.0), _turn(0, 20.0) @ _turn(2, 35.0), _turn(1, 7.0)):
        T = torch.eye(4, dtype=torch.float64)
        T[:3, :3] = R
        turned = T @ poses
        norm = SceneNormalization.from_cameras(turned)
        torch.testing.assert_close(norm.up, R[:, 2], atol=1e-9, rtol=0)  # world z turned: its up
        # the canonical frame is the unturned one's, up to a turn about z
        canon, canon_flat = norm.poses_to_canonical(turned), flat.poses_to_canonical(poses)
        torch.testing.assert_close(canon[:, 2, 3], canon_flat[:, 2, 3], atol=1e-9, rtol=0)  # heights
        torch.testing.assert_close(canon[:, 2, :3], canon_flat[:, 2, :3], atol=1e-9, rtol=0)  # tilt of each axis
        torch.testing.assert_close(norm.poses_to_world(canon), turned)
        x = torch.randn(10, 3, dtype=torch.float64)
        torch.testing.assert_close(norm.points_to_world(norm.points_to_canonical(x)), x)
        # displacements and covariances: a point cloud's offsets and covariance carried to the world agree
        pts = torch.randn(4000, 3, dtype=torch.float64) * torch.tensor([0.3, 0.1, 0.02]).double()
        world = norm.points_to_world(pts)
        torch.testing.assert_close(norm.vectors_to_world(pts[1:] - pts[:-1]), world[1:] - world[:-1])
        torch.testing.assert_close(norm.covars_to_world(pts.T.cov()), world.T.cov())
        lowest = float(norm.heights_to_world(float(canon[:, 2, 3].min())))
        assert lowest == pytest.approx(float((turned[:, :3, 3] @ norm.up).min()))


def test_camera_up_needs_headings_apart():
    """Cameras that all face one way (a forward-looking stereo pair) leave up open: None, and world z stays."""
    pair = torch.stack([look_at((x, 0.0, 1.0), (x, 5.0, 0.0)) for x in (-0.1, 0.1)])
    assert camera_up(pair) is None
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = _turn(0, 30.0)
    assert torch.equal(SceneNormalization.from_cameras(T @ pair).rotation, torch.eye(3, dtype=torch.float64))


def test_scene_normalization_single_camera_falls_back_ahead():
    pose = look_at((0, 0, 0), (0, 5, 0))
    norm = SceneNormalization.from_cameras(pose[None])
    assert norm.center[1] > 0.5 and math.isfinite(norm.scale)


def test_time_window_absolute_stamps():
    t0 = 1_763_900_000_123_456_789
    w = TimeWindow(t0, t0 + 2_000_000_000)
    s = torch.tensor([t0, t0 + 1_000_000_000, t0 + 2_000_000_000, t0 + 500_000_001])
    torch.testing.assert_close(w.normalize(s), torch.tensor([-1.0, 0.0, 1.0, -0.5]), atol=1e-6, rtol=0)
    assert (w.denormalize(w.normalize(s).double()) - s).abs().max() < 200  # float32 time resolution
    assert w.contains(s).all() and not w.contains(t0 - 1) and w.contains(t0 - 1, tolerance_ns=1)
    assert (TimeWindow(t0, t0).normalize(s) == 0).all()


def test_viewset_refuses_or_mends_what_users_get_wrong():
    """NaN pixels or poses, integer depth and intrinsics, and ViewSet.stack's inputs as a user's code makes them
    (a BGR->RGB view, lists of different lengths, float seconds for stamps, millimetre depth, a depth of another
    size): a clear error naming the field, or the value as it is meant."""
    import numpy as np

    V, H, W = 2, 6, 8
    K = fov_to_K(1.0, W, H).expand(V, 3, 3).clone()
    base = dict(images=torch.rand(V, H, W, 3), Ks=K, camtoworlds=torch.eye(4, dtype=torch.float64).expand(V, 4, 4),
                stamps_ns=torch.tensor([0, 1]), camera_ids=torch.tensor([0, 1]))
    nan = base["images"].clone()
    nan[1, 2, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="got NaN values"):
        ViewSet(**{**base, "images": nan})
    pose = base["camtoworlds"].clone()
    pose[1, 0, 3] = float("inf")
    with pytest.raises(ValueError, match=r"camtoworlds must be finite, got NaN or inf in view\(s\) \[1\]"):
        ViewSet(**{**base, "camtoworlds": pose})
    with pytest.raises(TypeError, match="16-bit millimetres"):
        ViewSet(**{**base, "depths": torch.ones(V, H, W, dtype=torch.int16)})
    assert ViewSet(**{**base, "Ks": K.round().long()}).Ks.dtype == torch.float64  # a hand-typed integer K
    images = [np.full((H, W, 3), 10 * i, np.uint8) for i in range(V)]
    bgr = [im[..., ::-1] for im in images]
    Ks = [np.array([[8, 0, 3.5], [0, 8, 2.5], [0, 0, 1]]) for _ in range(V)]  # integers as typed
    poses = [np.eye(4)] * V
    mm = [np.full((H, W), 1500, np.uint16), None]
    vs = ViewSet.stack(bgr, Ks, poses, [0, 10], [0, 1], ["a", "b"], mm, (H, W))
    assert vs.Ks.dtype == torch.float64 and float(vs.depths[0, 0, 0]) == 1.5 and float(vs.depths[1].max()) == 0
    with pytest.raises(ValueError, match="2 images but 1 Ks"):
        ViewSet.stack(images, Ks[:1], poses, [0, 10], [0, 1], ["a", "b"], None, (H, W))
    with pytest.raises(TypeError, match=r"integer nanoseconds, got 0.5 \(float; seconds: round\(s \* 1e9\)\)"):
        ViewSet.stack(images, Ks, poses, [0, 0.5], [0, 1], ["a", "b"], None, (H, W))
    with pytest.raises(ValueError, match=r"view 1's depth is \(3, 4\), its image \(6, 8\)"):
        ViewSet.stack(images, Ks, poses, [0, 10], [0, 1], ["a", "b"], [None, np.ones((3, 4), np.float32)], (H, W))


def test_viewset_resize_and_select():
    V, H, W = 3, 16, 20
    K = fov_to_K(1.0, W, H).expand(V, 3, 3).clone()
    vs = ViewSet(images=torch.rand(V, H, W, 3), Ks=K, camtoworlds=torch.eye(4, dtype=torch.float64).expand(V, 4, 4),
                 stamps_ns=torch.tensor([3, 1, 2]), camera_ids=torch.tensor([0, 1, 0]),
                 depths=torch.rand(V, H, W))
    small = vs.resized(8, 10)
    assert small.images.shape == (V, 8, 10, 3) and small.depths.shape == (V, 8, 10)
    torch.testing.assert_close(small.images[0, 0, 0], vs.images[0, :2, :2].mean((0, 1)))
    sub = vs.select([2, 0])
    assert sub.stamps_ns.tolist() == [2, 3] and sub.camera_names == ["cam0", "cam1"]
    try:
        ViewSet(images=torch.rand(2, 4, 4, 3), Ks=K[:1], camtoworlds=vs.camtoworlds[:2], stamps_ns=vs.stamps_ns[:2],
                camera_ids=vs.camera_ids[:2])
    except ValueError as e:
        assert "Ks" in str(e)
    else:
        raise AssertionError("mismatched Ks accepted")
