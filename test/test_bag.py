"""Contract-bag IO: round trips, decoding of every encoding, and a clear BagError for each broken bag."""
import re

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer

from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.io.bag import BagError, read_bag, write_bag
from lrm4d_ros.io.messages import (TYPESTORE, Image, MessageError, camera_info_msg, depth_msg, deserialize,
                                   header_msg, image_depth, image_msg, image_rgb, matrix_to_quat, pose_msg,
                                   quat_to_matrix, serialize)

CFG = SceneConfig(frames=3, cameras=3, height=24, width=32, num_primitives=(2, 3), rig_kinds=("moving",))
STAMP = 1_700_000_123_456_789_012


@pytest.mark.parametrize("storage, encoding", [("mcap", "rgb8"), ("sqlite3", "bgra8")])
def test_round_trip_is_exact(tmp_path, storage, encoding):
    views = generate(4, CFG)
    views.images = (views.images * 255).round() / 255  # 8-bit content survives bit-exactly
    back = read_bag(write_bag(views, tmp_path / "bag", storage=storage, encoding=encoding))
    order = sorted(range(len(views)), key=lambda i: (int(views.stamps_ns[i]), int(views.camera_ids[i])))
    ref = views.select(order)
    assert back.camera_names == ["cam0", "cam1", "cam2"]
    assert torch.equal(back.stamps_ns, ref.stamps_ns) and torch.equal(back.camera_ids, ref.camera_ids)
    assert torch.equal(back.images, ref.images)
    torch.testing.assert_close(back.Ks, ref.Ks, atol=1e-9, rtol=0)
    torch.testing.assert_close(back.camtoworlds, ref.camtoworlds, atol=1e-9, rtol=0)
    only = read_bag(tmp_path / "bag", cameras=["cam2"])
    assert only.camera_names == ["cam2"] and len(only) == 3 and (only.camera_ids == 0).all()
    with pytest.raises(FileExistsError):
        write_bag(views, tmp_path / "bag")


def test_quaternion_round_trip_near_180_degrees():
    for angle in (0.0, 1.0, np.pi - 1e-9, np.pi):
        axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
        Kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + np.sin(angle) * Kx + (1 - np.cos(angle)) * Kx @ Kx
        np.testing.assert_allclose(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-12)


def test_depth_messages_round_trip():
    rng = np.random.default_rng(0)
    d = (rng.random((5, 7)) * 4).astype(np.float32)
    d[0, 0], d[1, 1], d[2, 2], d[3, 3] = np.nan, 0.0, np.inf, -1.0
    expect = np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float32)
    back = image_depth(deserialize(serialize(depth_msg(d, STAMP, "cam0")), "sensor_msgs/msg/Image"))
    assert back.dtype == np.float32 and np.array_equal(back, expect)  # 32FC1: bit-exact
    mm = image_depth(deserialize(serialize(depth_msg(d, STAMP, "cam0", "16UC1")), "sensor_msgs/msg/Image"))
    assert np.array_equal(mm, (np.rint(expect.astype(np.float64) * 1000) / 1000).astype(np.float32))
    # A big-endian 16UC1 with padded rows decodes to the same millimetres.
    raw = np.zeros((5, 10), ">u2")
    raw[:, :7] = np.rint(expect * 1000)
    msg = Image(header=header_msg(STAMP, "cam0"), height=5, width=7, encoding="16UC1", is_bigendian=1, step=20,
                data=np.frombuffer(raw.tobytes(), np.uint8).copy())
    assert np.array_equal(image_depth(msg), mm)
    with pytest.raises(MessageError, match="16UC1"):
        depth_msg(np.full((2, 2), 70.0), STAMP, "cam0", "16UC1")
    with pytest.raises(MessageError, match="unsupported depth encoding"):
        image_depth(image_msg(np.zeros((2, 2, 3)), STAMP, "cam0"))


def test_encodings_decode_to_the_same_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8"):
        np.testing.assert_array_equal(image_rgb(image_msg(rgb, STAMP, "c", enc)), rgb)
    bgr = image_msg(rgb, STAMP, "c", "bgr8")
    np.testing.assert_array_equal(bgr.data.reshape(5, 7, 3), rgb[..., ::-1])
    grey = image_rgb(image_msg(rgb, STAMP, "c", "mono8"))
    expect = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    np.testing.assert_array_equal(grey, np.repeat(expect[..., None], 3, -1))
    # Row padding (step > width·channels) is skipped, whatever its bytes hold.
    msg = image_msg(rgb, STAMP, "c", "rgba8")
    padded = np.full((5, 7 * 4 + 6), 77, np.uint8)
    padded[:, :28] = msg.data.reshape(5, 28)
    msg.step, msg.data = 34, padded.reshape(-1)
    np.testing.assert_array_equal(image_rgb(msg), rgb)


def _write(path, entries):
    """entries: (topic, msg) -> a bag with connections in first-use order, bag time = header stamp."""
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for topic, msg in entries:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msg.__msgtype__, typestore=TYPESTORE)
            s = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            w.write(conns[topic], s, serialize(msg))
    return path


def _camera(stamp, image=None, info_size=(4, 3), info_stamp=None, pose_stamp=None):
    img = image if image is not None else image_msg(np.zeros((3, 4, 3), np.uint8), stamp, "cam0_optical_frame")
    K = np.array([[5.0, 0, 1.5], [0, 5.0, 1.0], [0, 0, 1]])
    out = [("/cam0/image_raw", img)]
    if info_stamp is not False:
        out.append(("/cam0/camera_info", camera_info_msg(K, *info_size, info_stamp or stamp, "cam0_optical_frame")))
    if pose_stamp is not False:
        out.append(("/cam0/pose", pose_msg(np.eye(4), pose_stamp or stamp)))
    return out


def _bad_image(encoding="rgb8", data_len=36, step=12):
    return Image(header=header_msg(STAMP, "cam0_optical_frame"), height=3, width=4, encoding=encoding,
                 is_bigendian=0, step=step, data=np.zeros(data_len, np.uint8))


@pytest.mark.parametrize("case, entries, pattern", [
    ("missing camera_info", _camera(STAMP, info_stamp=STAMP + 1), r"/cam0/image_raw at stamp {s} ns: no /cam0/camera_info"),
    ("missing pose", _camera(STAMP, pose_stamp=STAMP - 1), r"/cam0/image_raw at stamp {s} ns: no /cam0/pose"),
    ("unknown encoding", _camera(STAMP, image=_bad_image("yuv422")), r"/cam0/image_raw at stamp {s} ns: .*'yuv422'"),
    ("size vs camera_info", _camera(STAMP, info_size=(5, 3)),
     r"/cam0/image_raw at stamp {s} ns: image is 4x3 but /cam0/camera_info says 5x3"),
    ("data length", _camera(STAMP, image=_bad_image(data_len=20)), r"/cam0/image_raw at stamp {s} ns: data has 20"),
    ("pose topic absent", _camera(STAMP, pose_stamp=False), r"/cam0/pose: topic missing"),
])
def test_bad_bags_name_topic_and_stamp(tmp_path, case, entries, pattern):
    bag = _write(tmp_path / "bad", entries)
    with pytest.raises(BagError, match=pattern.format(s=STAMP)):
        read_bag(bag)


def test_good_minimal_bag_and_missing_path(tmp_path):
    views = read_bag(_write(tmp_path / "ok", _camera(STAMP)))
    assert len(views) == 1 and int(views.stamps_ns[0]) == STAMP and views.camera_names == ["cam0"]
    assert views.Ks[0, 0, 2] == 1.5
    with pytest.raises(BagError, match="no such bag"):
        read_bag(tmp_path / "nothing")
    with pytest.raises(BagError, match=re.escape("cameras ['cam9'] not in the bag")):
        read_bag(tmp_path / "ok", cameras=["cam9"])


def test_make_bag_writes_a_readable_bag_and_a_sheet(tmp_path, capsys):
    from lrm4d_ros.cli import main

    assert main(["make-bag", "--seed", "2", "--out", str(tmp_path), "--frames", "2", "--cameras", "3",
                 "--resolution", "32", "--rig", "workcell"]) == 0
    views = read_bag(tmp_path / "scene_2")
    assert len(views) == 6 and views.camera_names == ["cam0", "cam1", "cam2"] and views.height == 32
    sheet = (tmp_path / "scene_2_sheet.png")
    assert sheet.stat().st_size > 1000
    import imageio.v3 as iio
    assert iio.imread(sheet).shape[1] >= 2 * 32  # two frames per row
    assert "wrote bag" in capsys.readouterr().out
