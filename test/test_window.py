"""SpaceTimeWindow: pose interpolation against closed forms, buffering, expiry, selection, bad input."""
import math
import threading

import numpy as np
import pytest
import torch

from lrm4d_ros.cameras import scale_K
from lrm4d_ros.window import PoseBuffer, RejectedInput, SpaceTimeWindow, checked_pose, slerp

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


def test_checked_pose_rejects_bad_quaternions():
    with pytest.raises(RejectedInput, match="not unit length"):
        checked_pose((0, 0, 0), (1.0, 0.11, 0, 0))  # squared norm 1.0121: tf2 refuses it too
    # a quarter turn written to two decimals (squared norm 1.0082), as tf2 and RViz accept it: renormalised
    T = checked_pose((0, 0, 0), (0.71, 0.0, 0.0, 0.71))
    np.testing.assert_allclose(T[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    with pytest.raises(RejectedInput, match="non-finite"):
        checked_pose((0, float("nan"), 0), (1.0, 0, 0, 0))
    with pytest.raises(RejectedInput, match="from the world origin"):  # garbage that overflows float32 downstream
        checked_pose((1e30, 0, 0), (1.0, 0, 0, 0))
    assert checked_pose((5e6, 4e6, 0), (1.0, 0, 0, 0))[0, 3] == 5e6  # UTM-sized coordinates are fine
    T = checked_pose((1, 2, 3), (math.cos(0.3), 0, 0, math.sin(0.3)))
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
    assert st.rejected == len(cases) and st.kept == 1 and st.received == 1 + len(cases) and "finite" in st.last_error
    assert st.rejections == {"unknown_camera": 1, "out_of_order": 1, "bad_image": 2, "bad_intrinsics": 1,
                             "bad_pose": 1}
    assert st.per_camera["a"].received == len(cases) and st.per_camera["a"].rejected == len(cases) - 1
    # images waiting for a pose that never comes are rejected once the pending queue overflows
    w.add_view("a", image(), K, T0 + 3 * S)
    w.add_view("a", image(), K, T0 + 4 * S)
    assert w.stats.rejected == len(cases) + 1 and "never got a pose" in w.stats.last_error
    assert w.stats.rejections["no_pose"] == 1
    # later good input still works
    w.add_view("a", image(), K, T0 + 5 * S, camtoworld=good)
    assert len(w.snapshot()) == 2


def test_buffer_drops_and_window_expiry():
    w = SpaceTimeWindow(["a", "b"], window_s=1.0, buffer_size=3, max_views=100)
    for k in range(5):  # 0.1 s apart: all within 1 s, but the buffer holds 3
        w.add_view("a", image(k), K, T0 + k * S // 10, camtoworld=pose())
    assert w.stats.dropped == 2 and w.stats.per_camera["a"].buffered == 3 and w.stats.per_camera["a"].dropped == 2
    w.add_view("b", image(), K, T0 + 13 * S // 10, camtoworld=pose())  # newest 1.3 s: a's views < 0.3 s expire
    st = w.stats
    assert {n: c.buffered for n, c in st.per_camera.items()} == {"a": 2, "b": 1} and st.expired == 1
    vs = w.snapshot()
    assert vs.stamps_ns.tolist() == [T0 + 3 * S // 10, T0 + 4 * S // 10, T0 + 13 * S // 10]
    assert vs.camera_ids.tolist() == [0, 0, 1] and vs.camera_names == ["a", "b"]

    wf = SpaceTimeWindow(["a"], window_s=None, window_frames=2)
    for k in range(4):
        wf.add_view("a", image(), K, T0 + k * S, camtoworld=pose())
    assert wf.snapshot().stamps_ns.tolist() == [T0 + 2 * S, T0 + 3 * S]


def test_a_synchronized_rig_gets_whole_frames_by_default_the_newest_included():
    """The node's default selection (selection.DEFAULT_POLICY, frames): every camera at the same evenly spaced
    instants, so the newest moment, where virtual cameras render, is seen by all of them (ablation block 46)."""
    w = SpaceTimeWindow(["a", "b", "c"], window_s=2.0, max_views=12)
    for f in range(12):  # 10 Hz, 1.1 s
        for cam in ("a", "b", "c"):
            w.add_view(cam, image(f), K, T0 + f * S // 10, camtoworld=pose())
    vs = w.snapshot()
    frames = sorted(set(((vs.stamps_ns - T0) // (S // 10)).tolist()))
    assert frames == [0, 4, 7, 11] and len(vs) == 12  # linspace(0, 11, 4) = 0, 3.7, 7.3, 11
    assert all(sorted(vs.camera_ids[(vs.stamps_ns - T0) // (S // 10) == f].tolist()) == [0, 1, 2] for f in frames)


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
    assert st.kept == 4 * n and st.dropped == 4 * (n - 20) and sum(c.buffered for c in st.per_camera.values()) == 80
    assert all(1 <= s <= 8 for s in snaps) and len(w.snapshot()) == 8


def test_constructor_validates():
    with pytest.raises(ValueError, match="policy"):
        SpaceTimeWindow(policy="random")
    with pytest.raises(ValueError, match="window_s and/or window_frames"):
        SpaceTimeWindow(window_s=None)


class FakeClock:
    """A clock stand-in returning `now`: the node's ROS clock (ns, 0 = unknown: use_sim_time before the first
    /clock), or time.monotonic for the window's camera liveness (s)."""

    def __init__(self, now=0):
        self.now = now

    def __call__(self):
        return self.now


def test_stamps_bounded_by_clock_and_window_and_never_stored():
    clock = FakeClock(T0 + 10 * S)
    w = SpaceTimeWindow(["a", "b"], window_s=2.0, clock=clock, max_lead_s=1.0, max_age_s=5.0)
    w.add_pose("a", T0 + 9 * S, pose())
    with pytest.raises(RejectedInput, match="ahead of the clock") as exc:
        w.add_view("a", image(), K, T0 + 10**6 * S, camtoworld=pose())  # far future
    assert exc.value.reason == "future_stamp"
    with pytest.raises(RejectedInput, match="behind the clock .*use_sim_time and play the bag with --clock"):
        w.add_view("a", image(), K, S, camtoworld=pose())  # far past (1 s after the epoch): another clock's stamp
    with pytest.raises(RejectedInput, match="behind the clock .*; a stamp of 0: does the driver stamp its messages"):
        w.add_view("a", image(), K, 0, camtoworld=pose())  # a driver that leaves header.stamp at 0
    with pytest.raises(RejectedInput, match=r"ahead of the clock \(max lead 1.000 s\)$"):
        w.add_pose("a", T0 + 100 * S, pose())  # a future pose is refused too: the pose buffer stays usable
    w.add_view("b", image(), K, T0 + 10 * S, camtoworld=pose())
    with pytest.raises(RejectedInput, match="older than the newest view"):
        w.add_view("a", image(), K, T0 + 7 * S, camtoworld=pose())  # within max_age but outside the window
    # nothing refused was stored: camera a still takes its next good image, posed from its good pose
    assert w.add_view("a", image(), K, T0 + 9 * S) == "accepted"
    st = w.stats
    assert st.rejections == {"future_stamp": 2, "stale_stamp": 3} and st.rejected == 4 and st.kept == 2
    assert w.snapshot().stamps_ns.tolist() == [T0 + 9 * S, T0 + 10 * S]


def test_unknown_clock_then_a_future_view_is_purged_once_the_clock_is_known():
    clock = FakeClock(0)  # sim time before the first /clock
    w = SpaceTimeWindow(["a", "b"], window_s=2.0, clock=clock, max_lead_s=1.0)
    w.add_view("a", image(), K, T0 + 10**6 * S, camtoworld=pose())  # no clock yet: cannot be judged
    clock.now = T0 + 10 * S
    w.add_view("b", image(), K, T0 + 10 * S, camtoworld=pose())
    w.add_view("a", image(), K, T0 + 10 * S, camtoworld=pose())
    assert w.snapshot().stamps_ns.tolist() == [T0 + 10 * S, T0 + 10 * S]
    assert w.stats.rejections == {"future_stamp": 1}


def test_clock_jumping_back_drops_what_lies_ahead_of_it():
    clock = FakeClock(T0 + 10 * S)
    w = SpaceTimeWindow(["a"], window_s=2.0, clock=clock)
    w.add_view("a", image(), K, T0 + 10 * S, camtoworld=pose())
    clock.now = T0 + S  # a replayed bag started over
    w.add_view("a", image(), K, T0 + S, camtoworld=pose())
    st = w.stats  # what the first pass stored expired: it was good input, not refused
    assert st.rejections == {} and st.expired == 1 and st.rejected == 0
    assert w.snapshot().stamps_ns.tolist() == [T0 + S]
    # a short bag looped: its first pass's views within the lead of the new start are dropped too, or the second
    # pass's first second would be refused as out of order
    for t in (1.2, 1.8):
        clock.now = T0 + int(t * S)
        w.add_view("a", image(), K, clock.now, camtoworld=pose())
    clock.now = T0 + S // 2
    assert w.add_view("a", image(), K, T0 + int(0.6 * S), camtoworld=pose()) == "accepted"
    assert w.snapshot().stamps_ns.tolist() == [T0 + int(0.6 * S)]
    # a bag of a third of a second played again: its first image's stamp is the clock's, no duplicate
    clock.now = T0 + int(0.9 * S)
    w.add_view("a", image(), K, clock.now, camtoworld=pose())
    clock.now = T0 + int(0.6 * S)
    assert w.add_view("a", image(), K, clock.now, camtoworld=pose()) == "accepted"
    assert w.stats.rejections == {}


def test_duplicate_and_out_of_order_stamps_have_their_own_reasons():
    w = SpaceTimeWindow(["a"], window_s=5.0)
    w.add_view("a", image(), K, T0 + S, camtoworld=pose())
    for stamp, reason in ((T0 + S, "duplicate_stamp"), (T0 + S // 2, "out_of_order")):
        with pytest.raises(RejectedInput) as exc:
            w.add_view("a", image(), K, stamp, camtoworld=pose())
        assert exc.value.reason == reason
    assert w.stats.rejections == {"duplicate_stamp": 1, "out_of_order": 1}


def test_without_the_lead_bound_one_future_stamp_cannot_stall_the_other_cameras():
    # max_stamp_lead_s 0 (the node's "disabled"): a camera's one image stamped an hour ahead used to become the
    # window's newest view, so every other camera's images were refused as stale for that hour
    clock = FakeClock(T0 + 10 * S)
    w = SpaceTimeWindow(["a", "b", "c"], window_s=2.0, clock=clock, max_lead_s=None)
    for f in range(3):
        for cam in "abc":
            w.add_view(cam, image(), K, T0 + f * S // 10, camtoworld=pose())
    with pytest.raises(RejectedInput, match="ahead of every other camera") as exc:
        w.add_view("b", image(), K, T0 + 3600 * S, camtoworld=pose())
    assert exc.value.reason == "future_stamp"
    with pytest.raises(RejectedInput, match="ahead of every other camera"):
        w.add_pose("b", T0 + 3600 * S, pose())  # a jumped pose would leave b's images unposed for the hour
    for f in range(3, 6):
        for cam in "abc":
            assert w.add_view(cam, image(), K, T0 + f * S // 10, camtoworld=pose()) == "accepted"
    assert w.newest_per_camera() == {cam: T0 + 5 * S // 10 for cam in "abc"}
    assert w.stats.per_camera["b"].kept == 6 and w.stats.rejections == {"future_stamp": 2}


def test_without_a_clock_a_jumped_first_view_is_dropped_once_another_camera_streams():
    reports = []
    w = SpaceTimeWindow(["a", "b"], window_s=2.0, on_refusal=lambda cam, exc: reports.append((cam, exc.reason)))
    w.add_view("a", image(), K, T0 + 3600 * S, camtoworld=pose())  # nobody else live yet: cannot be judged
    w.add_view("b", image(), K, T0, camtoworld=pose())  # a's view is dropped, b's taken
    assert w.add_view("a", image(), K, T0 + S // 10, camtoworld=pose()) == "accepted"
    assert sorted(w.snapshot().stamps_ns.tolist()) == [T0, T0 + S // 10]
    assert reports == [("a", "future_stamp")] and w.stats.rejections == {"future_stamp": 1}


def test_without_a_clock_a_jump_every_camera_makes_goes_through():
    wall = FakeClock(100.0)
    w = SpaceTimeWindow(["a", "b"], window_s=2.0)
    w._wall = wall
    for cam in "ab":
        w.add_view(cam, image(), K, T0, camtoworld=pose())
    with pytest.raises(RejectedInput, match="ahead of every other camera"):
        w.add_view("a", image(), K, T0 + 30 * S, camtoworld=pose())  # alone, it looks like a glitch
    w.add_view("b", image(), K, T0 + 30 * S, camtoworld=pose())  # a second camera confirms it
    w.add_view("a", image(), K, T0 + 30 * S + S // 10, camtoworld=pose())
    assert sorted(w.snapshot().stamps_ns.tolist()) == [T0 + 30 * S, T0 + 30 * S + S // 10]
    # a camera that stopped sending bounds nobody: b alone, LIVE_S later, may move on
    wall.now += 10.0
    assert w.add_view("b", image(), K, T0 + 60 * S, camtoworld=pose()) == "accepted"


def test_image_waiting_for_a_pose_expires_and_the_camera_recovers():
    clock = FakeClock(T0)
    w = SpaceTimeWindow(["a"], window_s=5.0, clock=clock, pose_wait_s=0.5)
    w.on_refusal = lambda cam, exc: reports.append((cam, exc.reason, str(exc)))
    reports = []
    w.add_pose("a", T0 - S // 10, pose())
    assert w.add_view("a", image(), K, T0 + S // 10) == "pending"  # the pose stream stopped
    clock.now = T0 + S
    w.expire()  # the node calls this periodically
    st = w.stats
    assert st.pending == 0 and st.rejections == {"no_pose": 1} and "waited more than 0.500 s" in st.last_error
    assert len(reports) == 1 and reports[0][:2] == ("a", "no_pose")  # the node logs what the window drops itself
    w.add_pose("a", T0 + S, pose(0.3))  # poses resume
    w.add_pose("a", T0 + 13 * S // 10, pose(0.3))
    clock.now = T0 + 2 * S
    assert w.add_view("a", image(), K, T0 + 12 * S // 10) == "accepted"


def depth_map(value, h=24, w=32):
    d = np.full((h, w), value, np.float32)
    d[0, 0] = np.nan  # no measurement
    return d


def test_depth_paired_by_stamp_before_or_after_its_view_and_bad_depth_counted():
    w = SpaceTimeWindow(["a", "b"], window_s=5.0, max_views=10, depth_tolerance_s=0.001)
    assert w.add_depth("a", T0, depth_map(1.5)) == "waiting"  # depth first
    w.add_view("a", image(), K, T0, camtoworld=pose())
    w.add_view("a", image(), K, T0 + S, camtoworld=pose())
    assert w.add_depth("a", T0 + S + 500_000, depth_map(2.5)) == "attached"  # late, 0.5 ms off: same view
    w.add_view("b", image(), K, T0 + S, camtoworld=pose())  # camera b has no depth
    for depth, reason in ((np.full((24, 32), np.nan, np.float32), "no measurement"),
                          (depth_map(1.0, 12, 16), "depth is 16x12 but its image is 32x24"),
                          (np.ones((24, 32)), "float32")):
        w.add_view("b", image(), K, T0 + 2 * S + len(w.snapshot()) * 1000, camtoworld=pose(), depth=depth)
        with pytest.raises(RejectedInput, match=reason):
            w.add_depth("b", T0 + 2 * S + len(w.snapshot()) * 1000 - 1000, depth)
    with pytest.raises(RejectedInput, match="no colour view") as exc:
        w.add_depth("a", T0 + S // 2, depth_map(1.0))  # its image never came
    assert exc.value.reason == "depth_unmatched"
    st = w.stats
    assert st.rejections == {"depth_invalid": 4, "depth_size": 2, "depth_unmatched": 1} and st.rejected == 0
    assert st.per_camera["a"].with_depth == 2 and st.per_camera["b"].with_depth == 0
    vs = w.snapshot()
    assert len(vs) == 6 and vs.depths is not None
    got = {(int(s), int(c)): d for s, c, d in zip(vs.stamps_ns, vs.camera_ids, vs.depths)}
    expect = depth_map(1.5)
    expect[0, 0] = 0.0
    np.testing.assert_array_equal(got[(T0, 0)].numpy(), expect)
    assert float(got[(T0 + S, 0)][5, 5]) == 2.5 and float(got[(T0 + S, 1)].abs().max()) == 0.0


def test_a_newest_view_awaits_its_depth_only_where_depth_has_been_coming():
    """A depth camera whose depth follows its colour image (an aligning node downstream of the driver) has its
    newest view awaited until the depth is attached; a camera without depth, with depth for every other frame, or
    whose depth stopped is not (SpaceTimeWindow.awaiting_depth, what the node's gather waits on)."""
    w = SpaceTimeWindow(["rgbd", "rgb", "half"], window_s=30.0, max_views=64, clock=None)
    for f in range(10):
        t = T0 + f * S // 10
        w.add_view("rgbd", image(), K, t, camtoworld=pose(), depth=depth_map(1.0 + f) if f < 9 else None)
        w.add_view("rgb", image(), K, t, camtoworld=pose())
        w.add_view("half", image(), K, t, camtoworld=pose(), depth=depth_map(2.0) if f % 2 == 0 and f < 9 else None)
    assert w.awaiting_depth() == ["rgbd"]  # 9 of 9 older views with depth; half: 5 of 9
    assert w.add_depth("rgbd", T0 + 9 * S // 10, depth_map(10.0)) == "attached"
    assert w.awaiting_depth() == []
    w.add_view("rgbd", image(), K, T0 + S, camtoworld=pose())
    assert w.awaiting_depth() == ["rgbd"]
    for f in range(11, 13):  # its depth stopped: one missing in ten older views is still awaited, two are not
        w.add_view("rgbd", image(), K, T0 + f * S // 10, camtoworld=pose())
    assert w.awaiting_depth() == []


def test_the_snapshot_gives_a_depth_cameras_views_with_depth():
    """Depth at half the colour rate: the model gets that camera's frames with depth (and the window's newest view),
    not the colour frames between them, which cost held-out cameras more than they add (selection.with_depth_first)."""
    w = SpaceTimeWindow(["rgbd", "rgb"], window_s=30.0, max_views=64, clock=None)
    for f in range(8):
        t = T0 + f * S // 10
        w.add_view("rgbd", image(), K, t, camtoworld=pose(), depth=depth_map(2.0) if f % 2 == 0 else None)
        w.add_view("rgb", image(), K, t + 1000, camtoworld=pose())  # the newest view of all: rgb's frame 7
    vs = w.snapshot()
    rgbd = vs.camera_ids == 0
    assert int(rgbd.sum()) == 4 and bool((vs.depths[rgbd].flatten(1) > 0).any(1).all())
    assert int((vs.camera_ids == 1).sum()) == 8  # a colour camera offers all its views


def test_the_depth_of_a_refused_image_is_not_refused_again():
    """An image refused (a non-finite pose here; before the window: one that did not decode, or TF could not pose)
    takes its depth with it, whether that depth came before or after it: one refusal, and last_error keeps the
    image's reason rather than a 'depth never got its colour view'."""
    w = SpaceTimeWindow(["a"], window_s=5.0, max_views=10, depth_tolerance_s=0.001)
    assert w.add_depth("a", T0, depth_map(1.5)) == "waiting"  # depth first, then its image refused
    bad = pose()
    bad[0, 3] = np.nan
    with pytest.raises(RejectedInput, match="finite"):
        w.add_view("a", image(), K, T0, camtoworld=bad)
    w.add_view("a", image(), K, T0 + S, camtoworld=pose())  # a later view: the early depth is dropped quietly
    w.image_refused("a", T0 + 2 * S)  # refused before the window (say, a JPEG that did not decode)
    assert w.add_depth("a", T0 + 2 * S + 500_000, depth_map(2.5)) == "unmatched"  # its depth, after it
    st = w.stats
    assert st.rejections == {"bad_pose": 1} and st.rejected == 1, st.rejections
    assert "finite" in st.last_error
    with pytest.raises(RejectedInput, match="no colour view"):  # a depth whose image nobody refused still is
        w.add_depth("a", T0 + S // 2, depth_map(1.0))


def test_snapshot_depth_resized_nearest_with_its_view():
    w = SpaceTimeWindow(["a", "b"], window_s=5.0)
    d = np.zeros((48, 64), np.float32)
    d[:, 32:] = 4.0  # a depth edge: nearest resampling must not average across it
    w.add_view("a", image(0, 48, 64), K, T0, camtoworld=pose(), depth=d)
    w.add_view("b", image(0, 24, 32), K, T0 + S, camtoworld=pose())
    vs = w.snapshot()
    assert vs.depths.shape == (2, 24, 32)
    assert set(np.unique(vs.depths[0].numpy())) == {0.0, 4.0} and float(vs.depths[0, :, 16:].min()) == 4.0
    assert float(vs.depths[1].abs().max()) == 0.0


def test_late_processing_does_not_expire_an_image_whose_pose_follows():
    clock = FakeClock(T0 + 5 * S)  # the node's ingest is 5 s behind the clock (a busy CPU)
    w = SpaceTimeWindow(["a"], window_s=10.0, clock=clock, pose_wait_s=1.0)
    w.add_pose("a", T0 - S // 10, pose())
    assert w.add_view("a", image(), K, T0) == "pending"  # its pose is next in the queue
    assert w.add_pose("a", T0, pose()) == 1
    st = w.stats
    assert st.kept == 1 and st.rejections == {}
