"""SpaceTimeWindow: pose interpolation against closed forms, buffering, expiry, selection, bad input."""
import math
import threading

import numpy as np
import pytest
import torch

from lrm4d_ros.cameras import scale_K
from lrm4d_ros.selection import select_views
from lrm4d_ros.window import PoseBuffer, RejectedInput, SpaceTimeWindow, pose_matrix, slerp

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S  # absolute stamps: never assume they start at 0
K = np.array([[50.0, 0, 15.5], [0, 50.0, 11.5], [0, 0, 1]])


def rot_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def pose(angle=0.0, pos=(0.0, 0.0, 0.0)):
    T = np.eye(4)
    T[:3, :3] = rot_z(angle)
    T[:3, 3] = pos
    return T


def image(value=0, h=24, w=32):
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_slerp_halfway_and_shorter_arc():
    q0 = np.array([1.0, 0, 0, 0])
    q1 = np.array([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)])  # 90° about z
    q = slerp(q0, q1, 0.5)
    np.testing.assert_allclose(q, [math.cos(math.pi / 8), 0, 0, math.sin(math.pi / 8)], atol=1e-12)
    # -q1 is the same rotation: the result must still be the 45° rotation (up to sign)
    q_neg = slerp(q0, -q1, 0.5)
    np.testing.assert_allclose(abs(np.dot(q_neg, q)), 1.0, atol=1e-12)


def test_pose_interpolation_matches_closed_form():
    buf = PoseBuffer(capacity=8, tolerance_ns=10_000_000, max_gap_ns=S)
    buf.add(T0, pose(0.0, (0, 0, 0)))
    buf.add(T0 + S // 2, pose(math.pi / 2, (1.0, 2.0, -4.0)))
    T = buf.lookup(T0 + S // 8)  # a quarter of the way: 22.5°, position / 4
    np.testing.assert_allclose(T[:3, :3], rot_z(math.pi / 8), atol=1e-9)
    np.testing.assert_allclose(T[:3, 3], [0.25, 0.5, -1.0], atol=1e-12)
    # exact stamps return the stored poses; within tolerance past the end the last pose is held
    np.testing.assert_allclose(buf.lookup(T0 + S // 2 + 5_000_000), pose(math.pi / 2, (1.0, 2.0, -4.0)),
                               atol=1e-9)


def test_pose_lookup_reasons():
    buf = PoseBuffer(capacity=8, tolerance_ns=10_000_000, max_gap_ns=S // 10)
    with pytest.raises(RejectedInput, match="no pose received yet"):
        buf.lookup(T0)
    buf.add(T0, pose())
    buf.add(T0 + S, pose(0.1))
    with pytest.raises(RejectedInput, match="older than the oldest"):
        buf.lookup(T0 - S)
    with pytest.raises(RejectedInput, match="newer than the newest"):
        buf.lookup(T0 + 2 * S)
    with pytest.raises(RejectedInput, match="1.000 s apart"):
        buf.lookup(T0 + S // 2)
    with pytest.raises(RejectedInput, match="out of order"):
        buf.add(T0 + S, pose())


def test_pose_matrix_rejects_bad_quaternions():
    with pytest.raises(RejectedInput, match="not unit length"):
        pose_matrix((0, 0, 0), (1.0, 0.1, 0, 0))
    with pytest.raises(RejectedInput, match="non-finite"):
        pose_matrix((0, float("nan"), 0), (1.0, 0, 0, 0))
    T = pose_matrix((1, 2, 3), (math.cos(0.3), 0, 0, math.sin(0.3)))
    np.testing.assert_allclose(T[:3, :3], rot_z(0.6), atol=1e-12)


def test_views_posed_by_interpolation_and_pending_until_pose_arrives():
    w = SpaceTimeWindow(["a"], window_s=5.0, max_views=10, pose_max_gap_s=2.0)
    w.add_pose("a", T0, position=(0, 0, 0), quat_wxyz=(1, 0, 0, 0))
    assert w.add_view("a", image(10), K, T0 + S // 2) == "pending"  # no pose after it yet
    assert w.stats.pending == 1
    assert w.add_pose("a", T0 + S, position=(2.0, 0, 0), quat_wxyz=(1, 0, 0, 0)) == 1
    vs = w.snapshot()
    assert len(vs) == 1 and w.stats.pending == 0
    np.testing.assert_allclose(vs.camtoworlds[0, :3, 3].numpy(), [1.0, 0, 0], atol=1e-12)
    assert vs.stamps_ns.tolist() == [T0 + S // 2]
    np.testing.assert_allclose(vs.images[0].numpy(), 10 / 255.0, atol=1e-7)


def test_bad_views_rejected_with_reasons_and_counted():
    w = SpaceTimeWindow(["a"], window_s=5.0, pending_size=1)
    good = pose()
    w.add_view("a", image(), K, T0 + S, camtoworld=good)
    cases = [
        (dict(camera="b", image=image(), K=K, stamp_ns=T0 + 2 * S, camtoworld=good), "unknown camera"),
        (dict(camera="a", image=image(), K=K, stamp_ns=T0, camtoworld=good), "out of order"),
        (dict(camera="a", image=np.zeros((4, 4), np.uint8), K=K, stamp_ns=T0 + 2 * S, camtoworld=good), "(H,W,3)"),
        (dict(camera="a", image=image().astype(np.int32), K=K, stamp_ns=T0 + 2 * S, camtoworld=good), "dtype"),
        (dict(camera="a", image=image(), K=np.zeros((3, 3)), stamp_ns=T0 + 2 * S, camtoworld=good), "fx, fy > 0"),
        (dict(camera="a", image=image(), K=K, stamp_ns=T0 + 2 * S, camtoworld=np.full((4, 4), np.nan)), "finite"),
    ]
    for kwargs, reason in cases:
        with pytest.raises(RejectedInput, match=reason.replace("(", r"\(").replace(")", r"\)")):
            w.add_view(**kwargs)
    st = w.stats
    assert st.rejected == len(cases) and st.received == 1 and "finite" in st.last_error
    # images waiting for a pose that never comes are rejected once the pending queue overflows
    w.add_view("a", image(), K, T0 + 3 * S)
    w.add_view("a", image(), K, T0 + 4 * S)
    assert w.stats.rejected == len(cases) + 1 and "never got a pose" in w.stats.last_error
    # later good input still works
    w.add_view("a", image(), K, T0 + 5 * S, camtoworld=good)
    assert len(w.snapshot()) == 2


def test_buffer_drops_and_window_expiry():
    w = SpaceTimeWindow(["a", "b"], window_s=1.0, buffer_size=3, max_views=100)
    for k in range(5):  # 0.1 s apart: all within 1 s, but the buffer holds 3
        w.add_view("a", image(k), K, T0 + k * S // 10, camtoworld=pose())
    assert w.stats.dropped == 2 and w.stats.per_camera["a"] == 3
    w.add_view("b", image(), K, T0 + 13 * S // 10, camtoworld=pose())  # newest 1.3 s: a's views < 0.3 s expire
    st = w.stats
    assert st.per_camera == {"a": 2, "b": 1} and st.expired == 1
    vs = w.snapshot()
    assert vs.stamps_ns.tolist() == [T0 + 3 * S // 10, T0 + 4 * S // 10, T0 + 13 * S // 10]
    assert vs.camera_ids.tolist() == [0, 0, 1] and vs.camera_names == ["a", "b"]

    wf = SpaceTimeWindow(["a"], window_s=None, window_frames=2)
    for k in range(4):
        wf.add_view("a", image(), K, T0 + k * S, camtoworld=pose())
    assert wf.snapshot().stamps_ns.tolist() == [T0 + 2 * S, T0 + 3 * S]


def test_selection_policies():
    # 3 cameras × 5 frames at 0.1 s
    cands = [(T0 + f * S // 10, c) for f in range(5) for c in range(3)]
    latest = select_views(cands, 4, "latest")
    assert sorted((cands[i][0] - T0) * 10 // S for i in latest) == [3, 4, 4, 4]  # newest of each camera first
    assert {cands[i][1] for i in latest} == {0, 1, 2}
    uni = select_views([(T0 + k * S, 0) for k in range(11)], 3, "uniform")
    assert uni == [0, 5, 10]
    assert select_views(cands, 100, "uniform") == list(range(len(cands)))


def test_snapshot_resizes_to_newest_size_and_scales_K():
    w = SpaceTimeWindow(["a", "b"], window_s=10.0)
    w.add_view("a", image(255, 48, 64), K, T0, camtoworld=pose())
    w.add_view("b", image(0, 24, 32), K, T0 + S, camtoworld=pose())
    vs = w.snapshot()
    assert vs.images.shape == (2, 24, 32, 3)
    torch.testing.assert_close(vs.Ks[0], scale_K(torch.as_tensor(K), 0.5, 0.5))
    torch.testing.assert_close(vs.Ks[1], torch.as_tensor(K))
    assert float(vs.images[0].min()) == 1.0 and float(vs.images[1].max()) == 0.0


def test_concurrent_producers_and_snapshots_keep_counts_consistent():
    w = SpaceTimeWindow([f"c{i}" for i in range(4)], window_s=None, window_frames=1000, buffer_size=20,
                        max_views=8)
    n = 200

    def produce(cam):
        for k in range(n):
            w.add_view(cam, image(), K, T0 + k * 1000, camtoworld=pose())

    threads = [threading.Thread(target=produce, args=(f"c{i}",)) for i in range(4)]
    snaps = []
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        vs = w.snapshot()
        if vs is not None:
            snaps.append(len(vs))
    for t in threads:
        t.join()
    st = w.stats
    assert st.received == 4 * n and st.dropped == 4 * (n - 20) and sum(st.per_camera.values()) == 80
    assert all(1 <= s <= 8 for s in snaps) and len(w.snapshot()) == 8


def test_constructor_validates():
    with pytest.raises(ValueError, match="policy"):
        SpaceTimeWindow(policy="random")
    with pytest.raises(ValueError, match="window_s and/or window_frames"):
        SpaceTimeWindow(window_s=None)
