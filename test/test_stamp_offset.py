"""stamp_offset.py and focal_scale.py: poses read along a camera's track, and what a still, lone or turned camera
tells (nothing). What they find on a moving head rig: test_check_bag, test_pipeline, test_ros_depth."""
import math

import torch

from lrm4d_ros.geometry import rotmat_to_quat
from lrm4d_ros.stamp_offset import pair_offset, poses_at, stamp_offsets
from lrm4d_ros.views import ViewSet


def _yawing(t: float) -> torch.Tensor:
    """A camera turning at 0.8 rad/s about z and moving at (0.5, -0.2, 0.1) m/s: exact for slerp and lerp."""
    a = 0.8 * t
    T = torch.eye(4, dtype=torch.float64)
    T[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    T[:3, 3] = torch.tensor([0.5 * t, -0.2 * t, 0.1 * t])
    return T


def test_poses_along_a_track_between_and_beyond_its_frames():
    stamps = torch.tensor([0.0, 0.1, 0.25, 0.4], dtype=torch.float64)
    track = torch.stack([_yawing(float(t)) for t in stamps])
    query = torch.tensor([0.0, 0.05, 0.2, 0.4, -0.03, 0.47], dtype=torch.float64)  # and 30 / 70 ms beyond its ends
    got = poses_at(track, stamps, query)
    want = torch.stack([_yawing(float(t)) for t in query])
    torch.testing.assert_close(got, want, atol=1e-7, rtol=0)  # (arccos near 1: ~2e-8)
    assert torch.allclose(rotmat_to_quat(got[:, :3, :3]).norm(dim=-1), torch.ones(6, dtype=torch.float64))


def _views(moving: bool) -> ViewSet:
    """Two cameras, three frames each, 32x32 with depth; still ones, or the first yawing."""
    V, H, W = 6, 32, 32
    K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]], dtype=torch.float64).expand(V, 3, 3)
    stamps = torch.tensor([0, 0, 1, 1, 2, 2]) * 50_000_000
    c2w = torch.eye(4, dtype=torch.float64).repeat(V, 1, 1)
    c2w[1::2, 0, 3] = 0.2
    if moving:
        c2w[0::2] = torch.stack([_yawing(0.05 * f) for f in range(3)])
    g = torch.Generator().manual_seed(0)
    return ViewSet(torch.rand(V, H, W, 3, generator=g), K.clone(), c2w, stamps.long(), torch.tensor([0, 1] * 3),
                   depths=torch.full((V, H, W), 2.0))


def test_still_cameras_a_lone_camera_and_no_depth_tell_nothing():
    still = _views(False)
    assert pair_offset(still, 0, 1) is None and stamp_offsets(still) == {}
    one = still.select(torch.tensor([0, 2, 4]))
    assert stamp_offsets(one) == {}
    assert stamp_offsets(ViewSet(still.images, still.Ks, still.camtoworlds, still.stamps_ns, still.camera_ids)) == {}
    assert pair_offset(_views(True), 1, 0) is None  # camera 1 does not move: its stamps cannot be read


def test_a_focal_length_is_read_only_between_cameras_looking_the_same_way():
    """focal_scale: two cameras 0.2 m apart looking the same way read each other; turned 90° apart, or without
    depth, nothing. (Its readings on a head rig: test_check_bag, test_pipeline, test_ros_depth.)"""
    from dataclasses import replace

    from lrm4d_ros.focal_scale import focal_scales, pair_scale

    views = _views(False)
    assert pair_scale(views, 0, 1) is not None  # 0.2 m apart, both facing a wall 2 m away
    turned = views.camtoworlds.clone()
    turned[1::2, :3, :3] = _yawing(math.pi / 2 / 0.8)[:3, :3] @ torch.tensor(
        [[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64)  # optical axis 90° away
    assert pair_scale(replace(views, camtoworlds=turned), 0, 1) is None
    assert focal_scales(ViewSet(views.images, views.Ks, views.camtoworlds, views.stamps_ns, views.camera_ids)) == {}


def test_with_offsets_re_reads_a_cameras_poses_along_its_track():
    """rig_reading.with_offsets: camera 0 (yawing) at its stamps + 20 ms, camera 1 (still, 0 ms) as it was."""
    from lrm4d_ros.rig_reading import with_offsets

    views = _views(True)
    moved = with_offsets(views, {"cam0": 0.02, "cam1": 0.0})
    want = torch.stack([_yawing(0.05 * f + 0.02) for f in range(3)])
    torch.testing.assert_close(moved.camtoworlds[0::2], want, atol=1e-7, rtol=0)
    assert torch.equal(moved.camtoworlds[1::2], views.camtoworlds[1::2])


def test_colour_errors_of_a_batch_are_each_readings_own_and_least_as_given(monkeypatch):
    """CameraPair.errors carries every pair's pixels through S readings at once: each reading's error is what it
    reads alone, and on exact depth, poses and intrinsics the reading as given agrees best (a wall's texture seen by
    two cameras 0.2 m apart)."""
    from lrm4d_ros.colour_agreement import camera_pair

    views = _views(False)
    u, v = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="xy")
    for k in range(len(views)):  # each view of a textured wall 2 m ahead, as its camera sees it
        x = float(views.camtoworlds[k, 0, 3]) + (u - 15.5) / 30.0 * 2.0
        y = (v - 15.5) / 30.0 * 2.0
        views.images[k] = torch.stack([0.5 + 0.4 * torch.sin(7 * x) * torch.cos(5 * y), 0.5 + 0.4 * torch.sin(4 * y),
                                       0.5 + 0.4 * torch.cos(6 * x + 3 * y)], -1)
    pair = camera_pair(views, 0, 1)
    Ks = pair.Ks.repeat(5, 1, 1, 1)
    for k, s in enumerate((1.0, 0.9, 0.97, 1.03, 1.1)):
        Ks[k, :pair.n_a, :2, :2] *= s
    together, landed = pair.errors(Ks=Ks)
    for k in range(5):
        alone, n = pair.errors(Ks=Ks[k:k + 1])
        assert int(n[0]) == int(landed[k]) > 0
        torch.testing.assert_close(alone[0], together[k], rtol=1e-12, atol=0)
    assert int(together.argmin()) == 0 and bool((together[1:] > together[0] * 1.2).all())
    from lrm4d_ros import colour_agreement

    monkeypatch.setattr(colour_agreement, "MAX_CARRIED", int(landed.max()))  # readings in chunks: the same
    chunked, n_chunked = pair.errors(Ks=Ks)
    assert torch.equal(n_chunked, landed)
    torch.testing.assert_close(chunked, together, rtol=1e-12, atol=0)
    monkeypatch.undo()
    poses = pair.camtoworlds.repeat(2, 1, 1, 1)
    poses[1, :pair.n_a, 0, 3] += 0.05  # camera a 5 cm off to the side
    by_pose, _ = pair.errors(camtoworlds=poses)
    torch.testing.assert_close(by_pose[0], together[0], rtol=1e-12, atol=0)
    assert float(by_pose[1]) > 1.2 * float(by_pose[0])
