"""The node's ingest policy without rclpy (lrm4d_ros/io/ingest.py): rosbags' messages through Ingest into a
SpaceTimeWindow, every refusal with its reason. The node's own tests (test_ros_*.py) drive the same code over DDS."""
import time
from dataclasses import replace

import numpy as np
import pytest

from lrm4d_ros.geometry import rigid_matrix
from lrm4d_ros.io.ingest import INFO_WAIT, CameraTopics, Inbox, Ingest
from lrm4d_ros.io.compressed import compressed_image_msg
from lrm4d_ros.io.messages import camera_info_msg, depth_msg, image_msg, pose_msg
from lrm4d_ros.io.tf_tree import TransformTree
from lrm4d_ros.window import SpaceTimeWindow

H, W = 12, 16
K = np.array([[14.0, 0, 7.5], [0, 14.0, 5.5], [0, 0, 1]])
S = 1_000_000_000  # a stamp's second


def Cam(name: str, frame_id: str = "") -> CameraTopics:
    return CameraTopics(name, f"{name}/image_raw", f"{name}/info", f"{name}/pose", f"{name}/depth", frame_id)


def pose(x: float) -> np.ndarray:
    return rigid_matrix(np.array([x, 0.0, -2.0]), np.array([1.0, 0, 0, 0]))


def rgb(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


class Rig:
    """Two cameras' Ingest into a window; refusals and accepted() calls recorded."""

    def __init__(self, **kw):
        self.refused, self.accepted, self.logged = [], 0, []
        self.window = SpaceTimeWindow(["cam0", "cam1"], window_s=10.0, max_lead_s=None, max_age_s=None,
                                      pose_wait_s=kw.pop("window_pose_wait_s", 1.0))
        self.ingest = Ingest(self.window, [Cam("cam0", frame_id=kw.pop("frame_id", "")), Cam("cam1")],
                             refuse=self._refuse, accepted=self._accept, info=self.logged.append, **kw)

    def _refuse(self, reason, text, cam=None, counted=False, camera=""):
        self.refused.append((reason, cam, camera, text))

    def _accept(self):
        self.accepted += 1

    def send(self, cam: int, kind: str, msg, arrival: float | None = None):
        self.ingest.handle(cam, kind, msg, time.monotonic() if arrival is None else arrival)

    def reasons(self):
        return [r for r, *_ in self.refused]


def test_inbox_drops_the_oldest_under_overload_and_counts_images():
    box = Inbox(cameras=2, size=3)
    for k in range(5):
        box.put(0, "image", f"img{k}")
    box.put(0, "pose", "pose5")
    box.put(1, "image", "other")
    assert not box.idle()
    items = box.take(timeout=0.0)
    assert [(cam, kind, msg) for _, cam, kind, msg, _ in items] == [(0, "image", "img3"), (0, "image", "img4"),
                                                                   (0, "pose", "pose5"), (1, "image", "other")]
    assert box.received_images == [5, 1] and box.dropped_images == [3, 0] and box.take(timeout=0.0) == []
    assert box.idle()


def test_images_before_their_camera_info_are_held_then_taken_in_order():
    rig = Rig()
    for j in range(INFO_WAIT + 2):  # the two oldest refused beyond INFO_WAIT
        rig.send(0, "image", image_msg(rgb(10 * j), S + j * 10**6, ""))
    assert rig.reasons() == ["no_camera_info"] * 2 and rig.refused[0][1] == 0  # counted as camera 0's image
    assert "no camera_info received yet on cam0/info" in rig.refused[0][3]
    assert rig.ingest.pending() == [INFO_WAIT, 0] and rig.window.snapshot() is None
    rig.send(0, "info", camera_info_msg(K, W, H, S, ""))
    rig.send(0, "pose", pose_msg(pose(0.5), S))
    views = rig.window.snapshot()
    assert rig.ingest.pending() == [0, 0] and len(views) == INFO_WAIT
    # in the order they came, at their own stamps, posed by the pose topic
    assert views.stamps_ns.tolist() == [S + j * 10**6 for j in range(2, INFO_WAIT + 2)]
    np.testing.assert_allclose(views.images[:, 0, 0, 0].numpy() * 255, [10 * j for j in range(2, INFO_WAIT + 2)],
                               atol=1e-4)
    np.testing.assert_allclose(views.camtoworlds[0].numpy(), pose(0.5), atol=1e-6)
    np.testing.assert_allclose(views.Ks[0].numpy(), K)
    assert rig.accepted >= 1 and rig.ingest.arrival(0, S + 2 * 10**6) is not None
    first, last = rig.ingest.image_times()
    assert first is not None and last[1] == -np.inf


def test_bad_images_are_refused_with_their_reason():
    rig = Rig()
    rig.send(0, "info", camera_info_msg(K, W, H, S, ""))
    rig.send(0, "image", image_msg(np.zeros((H + 1, W, 3), np.uint8), S, ""))
    rig.send(0, "image", depth_msg(np.ones((H, W), np.float32), S + 1, ""))  # a depth image on the colour topic
    short = image_msg(rgb(0), S + 2, "")
    short.data = short.data[:-5]
    rig.send(0, "image", short)
    rig.send(0, "image", compressed_image_msg(np.zeros((H, W + 2, 3), np.uint8), S + 3, ""))
    rig.send(1, "info", camera_info_msg(np.eye(3) * [1, 1, 0], W, H, S, ""))
    assert rig.reasons() == ["size_mismatch", "bad_encoding", "bad_image", "size_mismatch", "bad_camera_info"]
    assert [cam for _, cam, *_ in rig.refused[:4]] == [0] * 4  # camera 0's refused images, counted per camera
    assert "image is 16x13 but camera_info says 16x12" in rig.refused[0][3]
    assert rig.window.snapshot() is None and rig.accepted == 0
    # a compressed image of the right size goes in, posed later
    rig.send(0, "image", compressed_image_msg(rgb(200), S + 4, ""))
    rig.send(0, "pose", pose_msg(pose(0.0), S + 4))
    assert len(rig.window.snapshot()) == 1 and len(rig.refused) == 5


def test_a_pose_in_another_frame_is_mapped_by_tf_or_refused():
    rig = Rig()
    rig.send(0, "info", camera_info_msg(K, W, H, S, ""))
    rig.send(0, "image", image_msg(rgb(50), S, ""))
    rig.send(0, "pose", pose_msg(pose(0.0), S, "mocap"))  # no TF at all
    assert rig.reasons() == ["pose_frame"] and "tf2_msgs is not installed" in rig.refused[0][3]
    tree = TransformTree()
    rig.ingest.tf = tree
    rig.send(0, "pose", pose_msg(pose(0.0), S, "mocap"))  # TF without the mocap frame
    assert rig.reasons() == ["pose_frame"] * 2 and "is not in the TF tree" in rig.refused[1][3]
    world_mocap = rigid_matrix(np.array([1.0, 2.0, 0.0]), np.array([np.cos(0.3), 0, 0, np.sin(0.3)]))
    tree.add("world", "mocap", 0, world_mocap, static=True)
    rig.send(0, "pose", pose_msg(pose(0.0), S, "mocap"))
    np.testing.assert_allclose(rig.window.snapshot().camtoworlds[0].numpy(), world_mocap @ pose(0.0), atol=1e-6)


def test_images_wait_for_their_tf_and_are_refused_when_it_never_comes():
    tree = TransformTree()
    rig = Rig(pose_source="tf", pose_wait_s=0.5, tf=tree, frame_id="cam0_optical")
    rig.send(0, "info", camera_info_msg(K, W, H, S, ""))
    tree.add("world", "base", S - 10**8, pose(0.0))
    tree.add("base", "cam0_optical", 0, np.eye(4), static=True)
    rig.send(0, "image", image_msg(rgb(80), S, ""))  # its TF (base at S) has not come yet: it waits
    assert rig.window.snapshot() is None and rig.ingest.pending() == [1, 0] and not rig.refused
    tree.add("world", "base", S + 10**8, pose(1.0))
    assert rig.ingest.tf_arrived()  # something waits: the node wakes the ingest thread
    rig.ingest.poll()
    views = rig.window.snapshot()
    assert rig.ingest.pending() == [0, 0] and len(views) == 1
    np.testing.assert_allclose(views.camtoworlds[0, :3, 3].numpy(), [0.5, 0, -2.0], atol=1e-6)  # interpolated
    assert not rig.ingest.tf_arrived()  # nothing waits now
    # an image whose transform never comes is refused once it waited pose_wait_s (here: came 10 s ago)
    rig.send(0, "image", image_msg(rgb(90), S + 5 * S, ""), arrival=time.monotonic() - 10.0)
    assert rig.reasons() == ["no_pose"] and rig.refused[0][1] == 0 and "waited" in rig.refused[0][3]
    # an image without a frame to look up is refused at once
    rig.ingest.cameras[0] = replace(rig.ingest.cameras[0], frame_id="")
    rig.send(0, "image", image_msg(rgb(90), S + 2, ""))
    assert rig.reasons() == ["no_pose"] * 2 and "no header.frame_id" in rig.refused[1][3]


def test_a_cameras_time_offset_moves_its_image_and_depth_stamps_before_they_are_posed():
    """cameras.<name>.time_offset_s: a camera stamping frames on arrival, 100 ms late, is posed where it was 100 ms
    before its stamp (TF and pose topics alike), windowed at that moment, and its depth still pairs with it."""
    tree = TransformTree()
    rig = Rig(pose_source="tf", tf=tree, frame_id="cam0_optical")
    rig.ingest.cameras[0] = replace(rig.ingest.cameras[0], time_offset_s=-0.1)
    tree.add("world", "base", S, pose(0.0))
    tree.add("world", "base", S + S // 2, pose(1.0))
    tree.add("base", "cam0_optical", 0, np.eye(4), static=True)
    rig.send(0, "info", camera_info_msg(K, W, H, S, ""))
    rig.send(0, "image", image_msg(rgb(80), S + 3 * S // 10, "cam0_optical"))
    rig.send(0, "depth", depth_msg(np.full((H, W), 2.0, np.float32), S + 3 * S // 10, "cam0_optical"))
    views = rig.window.snapshot()
    assert not rig.refused and len(views) == 1
    assert int(views.stamps_ns[0]) == S + 2 * S // 10
    np.testing.assert_allclose(views.camtoworlds[0, :3, 3].numpy(), [0.4, 0, -2.0], atol=1e-6)  # not 0.6
    assert views.depths is not None and float(views.depths[0].mean()) == pytest.approx(2.0)
    # pose topics: the image at S + 0.3 s is posed from the pose track at S + 0.2 s
    rig = Rig()
    rig.ingest.cameras[1] = replace(rig.ingest.cameras[1], time_offset_s=-0.1)
    rig.send(1, "info", camera_info_msg(K, W, H, S, ""))
    rig.send(1, "pose", pose_msg(pose(0.0), S, ""))
    rig.send(1, "pose", pose_msg(pose(1.0), S + S // 2, ""))
    rig.send(1, "image", image_msg(rgb(80), S + 3 * S // 10, ""))
    views = rig.window.snapshot()
    assert not rig.refused and int(views.stamps_ns[0]) == S + 2 * S // 10
    np.testing.assert_allclose(views.camtoworlds[0, :3, 3].numpy(), [0.4, 0, -2.0], atol=1e-6)


def test_depth_in_its_own_frame_is_held_until_it_can_be_registered():
    tree = TransformTree()
    rig = Rig(tf=tree)
    rig.send(0, "info", camera_info_msg(K, W, H, S, "cam0_colour"))
    rig.send(0, "pose", pose_msg(pose(0.0), S))
    rig.send(0, "image", image_msg(rgb(120), S, "cam0_colour"))
    depth = np.full((H, W), 2.0, np.float32)
    rig.send(0, "depth", depth_msg(depth, S, "cam0_depth"))  # no depth camera_info, no TF yet: held
    assert not rig.refused and rig.window.snapshot().depths is None
    rig.send(0, "depth_info", camera_info_msg(K, W, H, S, "cam0_depth"))  # retried: still no TF
    assert not rig.refused and rig.window.snapshot().depths is None
    tree.add("cam0_colour", "cam0_depth", 0, np.eye(4), static=True)
    assert rig.ingest.tf_arrived()
    rig.ingest.poll()
    views = rig.window.snapshot()
    assert not rig.refused and views.depths is not None
    # the same camera at the same place: registered depth is the depth (where a pixel's centre maps back onto one)
    d = views.depths[0].numpy()
    assert (d > 0).mean() > 0.9 and np.allclose(d[d > 0], 2.0, atol=1e-5)


def test_depth_of_the_wrong_size_or_invalid_is_refused():
    rig = Rig()
    rig.send(0, "info", camera_info_msg(K, W, H, S, ""))
    rig.send(0, "depth", depth_msg(np.ones((H, W + 1), np.float32), S, ""))
    bad = depth_msg(np.ones((H, W), np.float32), S, "")
    bad.encoding = "8UC3"
    rig.send(0, "depth", bad)
    assert rig.reasons() == ["depth_size", "depth_invalid"]
    assert all(cam is None for _, cam, *_ in rig.refused)  # a depth is no image: not counted as camera 0's


@pytest.mark.parametrize("wait", [0.05])
def test_depth_held_for_a_frame_that_never_comes_expires_with_its_reason(wait):
    rig = Rig(pose_wait_s=wait)
    rig.send(0, "info", camera_info_msg(K, W, H, S, "cam0_colour"))
    rig.send(0, "depth", depth_msg(np.ones((H, W), np.float32), S, "cam0_depth"), arrival=time.monotonic() - 1.0)
    assert not rig.refused
    rig.ingest.poll()
    assert rig.reasons() == ["depth_frame"] and "needs the depth camera's camera_info" in rig.refused[0][3]


def test_a_distorted_camera_is_rectified_and_said_once():
    rig = Rig()
    info = camera_info_msg(K, W, H, S, "")
    info.distortion_model, info.d = "plumb_bob", np.array([0.1, 0.0, 0.0, 0.0, 0.0])
    for j in range(3):
        info.header.stamp.nanosec = j  # drivers send one per frame
        rig.send(0, "info", info)
    assert len(rig.logged) == 1 and "lens distortion (plumb_bob)" in rig.logged[0]
