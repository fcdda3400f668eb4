"""Message ⇄ numpy conversions against hand-built messages (no DDS traffic)."""
import array
import math

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy")
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from lrm4d_ros.gaussians import Gaussians3D  # noqa: E402
from lrm4d_ros.io.output_bag import unpack_rgb  # noqa: E402
from lrm4d_ros.ros.conversions import (K_to_camera_info, camera_info_to_K, gaussians_to_pointcloud2,  # noqa: E402
                                       image_to_numpy, image_to_rgb8, matrix_to_pose, ns_to_stamp,
                                       numpy_to_image, pointcloud2_to_array, pose_to_matrix, stamp_to_ns)
from lrm4d_ros.window import RejectedInput  # noqa: E402


def raw_image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    """An Image with `pad` junk bytes at the end of every row (step > width * bytes per pixel)."""
    h, w = pixels.shape[:2]
    body = pixels.astype(pixels.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([body, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1])
    msg.data = array.array("B", rows.tobytes())
    return msg


def test_colour_encodings_to_rgb_honour_step():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(image_to_rgb8(raw_image(rgb, "rgb8", pad=3)), rgb)
    np.testing.assert_array_equal(image_to_rgb8(raw_image(rgb[..., ::-1].copy(), "bgr8", pad=1)), rgb)
    alpha = np.full((5, 7, 1), 9, np.uint8)
    np.testing.assert_array_equal(image_to_rgb8(raw_image(np.concatenate([rgb, alpha], 2), "rgba8", 4)), rgb)
    bgra = np.concatenate([rgb[..., ::-1], alpha], 2)
    np.testing.assert_array_equal(image_to_rgb8(raw_image(bgra, "bgra8", 2)), rgb)
    mono = rgb[..., :1].copy()
    np.testing.assert_array_equal(image_to_rgb8(raw_image(mono, "mono8", 5)), np.repeat(mono, 3, 2))


def test_float_depth_big_endian_and_roundtrip():
    depth = np.linspace(0.5, 4.0, 12, dtype=np.float32).reshape(3, 4, 1)
    np.testing.assert_array_equal(image_to_numpy(raw_image(depth, "32FC1", pad=4, bigendian=True)), depth)
    msg = numpy_to_image(depth[..., 0], "32FC1")
    assert msg.step == 16 and len(msg.data) == 48
    np.testing.assert_array_equal(image_to_numpy(msg)[..., 0], depth[..., 0])
    col = numpy_to_image(np.array([[[0.0, 0.5, 1.0]]], np.float32), "rgb8")
    assert list(col.data) == [0, 128, 255]


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: setattr(m, "encoding", "yuv422"), "yuv422.*not a colour encoding"),
    (lambda m: setattr(m, "step", 2), "step"),
    (lambda m: setattr(m, "data", array.array("B", bytes(10))), "needs"),
    (lambda m: setattr(m, "width", 0), "no pixels"),
])
def test_bad_images_rejected(mutate, reason):
    msg = raw_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(ValueError, match=reason):
        image_to_rgb8(msg)
    with pytest.raises(ValueError, match="not a colour encoding"):
        image_to_rgb8(raw_image(np.zeros((2, 2, 1), np.float32), "32FC1"))


def test_camera_info_roundtrip_and_validation():
    K = np.array([[100.0, 0, 31.5], [0, 90.0, 23.5], [0, 0, 1]])
    info = K_to_camera_info(K, 64, 48)
    K2, w, h = camera_info_to_K(info)
    np.testing.assert_array_equal(K2, K)
    assert (w, h) == (64, 48) and list(info.p)[:3] == [100.0, 0.0, 31.5]
    with pytest.raises(ValueError, match="no size"):
        camera_info_to_K(CameraInfo())
    bad = K_to_camera_info(np.zeros((3, 3)), 64, 48)
    with pytest.raises(ValueError, match="fx, fy > 0"):
        camera_info_to_K(bad)


def test_pose_and_stamp_roundtrip():
    c, s = math.cos(0.4), math.sin(0.4)
    T = np.array([[c, -s, 0, 1.0], [s, c, 0, -2.0], [0, 0, 1, 0.5], [0, 0, 0, 1]])
    msg = matrix_to_pose(T)
    assert msg.orientation.z == pytest.approx(math.sin(0.2)) and msg.orientation.w == pytest.approx(math.cos(0.2))
    np.testing.assert_allclose(pose_to_matrix(msg), T, atol=1e-12)
    msg.orientation.w = 2.0
    with pytest.raises(RejectedInput, match="not unit length"):
        pose_to_matrix(msg)
    ns = 1_700_000_000_123_456_789
    assert stamp_to_ns(ns_to_stamp(ns)) == ns and ns_to_stamp(ns).nanosec == 123_456_789


def test_pointcloud2_fields_and_values():
    n = 5
    g = Gaussians3D.from_scales_quats(
        means=torch.arange(3 * n, dtype=torch.float32).reshape(n, 3),
        scales=torch.tensor([[0.1, 0.2, 0.3]]).repeat(n, 1),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        opacities=torch.linspace(0.1, 0.9, n), colors=torch.tensor([[1.0, 0.5, 0.0]]).repeat(n, 1))
    msg = gaussians_to_pointcloud2(g, ns_to_stamp(5), "map")
    names = [f.name for f in msg.fields]
    assert names == ["x", "y", "z", "rgb", "opacity", "scale_0", "scale_1", "scale_2",
                     "rot_0", "rot_1", "rot_2", "rot_3"]
    assert msg.point_step == 48 and msg.width == n and msg.header.frame_id == "map"
    pts = pointcloud2_to_array(msg)
    np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], 1), g.means.numpy())
    np.testing.assert_array_equal(unpack_rgb(pts["rgb"]), [[255, 128, 0]] * n)
    np.testing.assert_allclose(np.sort(np.stack([pts[f"scale_{i}"] for i in range(3)], 1), 1),
                               [[0.1, 0.2, 0.3]] * n, rtol=1e-5)
    np.testing.assert_allclose(np.abs(pts["rot_0"]), 1.0, atol=1e-6)
    np.testing.assert_allclose(pts["opacity"], g.opacities.numpy())
