"""The one conversion layer (io/messages.py) on rclpy's message classes: what the node builds decodes back
exactly, also after rclpy's CDR serialization read by rosbags (the bag side), and hand-built rclpy messages with
row padding and big-endian depth decode right."""
import array
import math

import numpy as np
import pytest
import torch

from conftest import require_ros_interfaces  # noqa: E402

require_ros_interfaces()
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from lrm4d_ros.gaussians import Gaussians3D  # noqa: E402
from lrm4d_ros.io import messages as M  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402

STAMP = 1_700_000_000 * 10**9 + 123_456_789


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An rclpy Image with `pad` junk bytes at the end of every row (step > width * bytes per pixel)."""
    h, w = pixels.shape[:2]
    body = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([body, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1])
    msg.data = array.array("B", rows.tobytes())
    return msg


def via_cdr(msg, cls):
    """The message through rclpy's serializer, read back by rclpy and by rosbags (the bag IO's reader)."""
    raw = serialize_message(msg)
    return deserialize_message(raw, cls), M.deserialize(raw, msg.__class__.__module__.split(".")[0] + "/msg/"
                                                           + msg.__class__.__name__)


def test_colour_encodings_honour_step_and_survive_cdr():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(M.image_rgb(raw_image(rgb, "rgb8", pad=3)), rgb)
    np.testing.assert_array_equal(M.image_rgb(raw_image(rgb[..., ::-1].copy(), "bgr8", pad=1)), rgb)
    alpha = np.full((5, 7, 1), 9, np.uint8)
    np.testing.assert_array_equal(M.image_rgb(raw_image(np.concatenate([rgb, alpha], 2), "rgba8", 4)), rgb)
    mono = rgb[..., :1].copy()
    np.testing.assert_array_equal(M.image_rgb(raw_image(mono, "mono8", 5)), np.repeat(mono, 3, 2))
    # a camera's own formats, padded rows too: a one-colour Bayer mosaic, 16-bit big-endian mono
    mosaic = np.tile(np.array([[200, 90], [90, 30]], np.uint8), (3, 4))
    np.testing.assert_array_equal(M.image_rgb(raw_image(mosaic, "bayer_rggb8", 2))[1:-1, 1:-1],
                                  np.broadcast_to([200, 90, 30], (4, 6, 3)))
    wide = (mono.astype(np.uint16) * 257)
    np.testing.assert_array_equal(M.image_rgb(raw_image(wide, "mono16", 6, bigendian=True)), np.repeat(mono, 3, 2))
    for encoding in ("rgb8", "bgra8"):
        msg = M.image_msg(rgb, STAMP, "cam0_optical_frame", encoding, types=RCLPY)
        assert isinstance(msg, Image) and msg.header.frame_id == "cam0_optical_frame"
        for back in via_cdr(msg, Image):
            np.testing.assert_array_equal(M.image_rgb(back), rgb)
            assert M.stamp_ns(back.header) == STAMP


def test_depth_big_endian_padding_and_float_images():
    depth = np.linspace(0.5, 4.0, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(M.image_depth(raw_image(depth[..., None], "32FC1", pad=4, bigendian=True)), depth)
    mm = np.array([[0, 1234], [65535, 7]], np.uint16)
    np.testing.assert_array_equal(M.image_depth(raw_image(mm[..., None], "16UC1", pad=2)),
                                  (mm / 1000.0).astype(np.float32))
    msg = M.float_image_msg(depth, STAMP, "f", RCLPY)
    assert msg.step == 16 and len(msg.data) == 48 and msg.encoding == "32FC1"
    for back in via_cdr(msg, Image):
        np.testing.assert_array_equal(M.image_depth(back), depth)
    assert list(M.image_msg(np.array([[[0.0, 0.5, 1.0]]], np.float32), 0, "", types=RCLPY).data) == [0, 128, 255]


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: setattr(m, "encoding", "8UC3"), "8UC3.*not a colour encoding"),
    (lambda m: setattr(m, "step", 2), "step"),
    (lambda m: setattr(m, "data", array.array("B", bytes(10))), "need"),
    (lambda m: setattr(m, "width", 0), "no pixels"),
])
def test_bad_images_rejected(mutate, reason):
    msg = raw_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(M.MessageError, match=reason):
        M.image_rgb(msg)


def test_camera_info_roundtrip_and_validation():
    K = np.array([[100.0, 0, 63.5], [0, 101.0, 47.5], [0, 0, 1]])
    msg = M.camera_info_msg(K, 128, 96, STAMP, "cam0_optical_frame", RCLPY)
    assert list(msg.p) == [100.0, 0, 63.5, 0, 0, 101.0, 47.5, 0, 0, 0, 1, 0]
    for back in via_cdr(msg, CameraInfo):
        K2, w, h = M.camera_info_K(back)
        np.testing.assert_array_equal(K2, K)
        assert (w, h) == (128, 96)
    bad = M.camera_info_msg(K, 128, 96, STAMP, "", RCLPY)
    bad.k = [0.0] * 9
    with pytest.raises(M.MessageError, match="fx, fy > 0"):
        M.camera_info_K(bad)
    bad = M.camera_info_msg(K, 0, 96, STAMP, "", RCLPY)
    with pytest.raises(M.MessageError, match="no size"):
        M.camera_info_K(bad)


def test_pose_and_stamp_roundtrip():
    angle = 0.7
    T = np.eye(4)
    T[:3, :3] = [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    T[:3, 3] = [1.0, -2.0, 3.5]
    msg = M.pose_msg(T, STAMP, "world", RCLPY)
    np.testing.assert_allclose(M.pose_matrix(msg), T, atol=1e-12)
    np.testing.assert_allclose(M.pose_matrix(msg.pose), T, atol=1e-12)
    np.testing.assert_allclose(M.pose_matrix(M.transform_msg(T, STAMP, "world", "cam", RCLPY)), T, atol=1e-12)
    assert M.time_ns(M.time_msg(STAMP, RCLPY)) == STAMP
    msg.pose.orientation.w = 2.0
    with pytest.raises(M.MessageError, match="not unit length"):
        M.pose_matrix(msg)


def test_pointcloud2_fields_and_values():
    torch.manual_seed(0)
    n = 5
    g = Gaussians3D(means=torch.randn(n, 3), covars=torch.eye(3).repeat(n, 1, 1) * 0.01,
                    opacities=torch.rand(n), colors=torch.rand(n, 3))
    msg = M.pointcloud2_msg(g, STAMP, "world", RCLPY)
    assert isinstance(msg, PointCloud2) and msg.point_step == 48 and msg.width == n
    for back in via_cdr(msg, PointCloud2):
        pts = M.pointcloud2_array(back)
        assert pts.dtype.names == M.GAUSSIAN_FIELDS
        np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], 1), g.means.numpy(), rtol=1e-6)
        np.testing.assert_allclose(pts["scale_0"], 0.1, rtol=1e-5)
        np.testing.assert_array_equal(M.unpack_rgb(pts["rgb"]), M.unpack_rgb(M.pack_rgb(g.colors.numpy())))
