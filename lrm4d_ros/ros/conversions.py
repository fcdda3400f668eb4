"""ROS messages ⇄ numpy at the node's edge: Image, CameraInfo, Pose, Time and the Gaussians PointCloud2.

Written here because sensor_msgs_py and ROS 2 cv_bridge are not on PyPI. Errors are `ValueError`s whose text is
meant for logs and service responses. Quaternions are wxyz inside the package and xyzw in ROS messages.
"""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from ..io.messages import matrix_to_quat
from ..io.output_bag import GAUSSIAN_DTYPE, GAUSSIAN_FIELDS, gaussian_points
from ..window import pose_matrix

# encoding -> (channels, numpy dtype); colour encodings are converted to RGB.
ENCODINGS = {
    "rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "rgba8": (4, np.uint8), "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8), "32FC1": (1, np.float32), "16UC1": (1, np.uint16),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    ns = int(ns)
    if ns < 0:
        raise ValueError(f"negative stamp {ns} ns")
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image -> (H,W,C) array in the encoding's dtype, honouring `step` (row padding) and `is_bigendian`."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (supported: {', '.join(ENCODINGS)})")
    channels, dtype = ENCODINGS[msg.encoding]
    h, w = int(msg.height), int(msg.width)
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if h <= 0 or w <= 0:
        raise ValueError(f"image has no pixels ({w}x{h})")
    if msg.step < row:
        raise ValueError(f"image step {msg.step} < width*channels*bytes {row} for {msg.encoding}")
    if len(msg.data) < msg.step * (h - 1) + row:
        raise ValueError(f"image data has {len(msg.data)} bytes, {w}x{h} {msg.encoding} with step {msg.step} "
                         f"needs {msg.step * (h - 1) + row}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row), strides=(int(msg.step), 1))
    big = ">" if msg.is_bigendian else "<"
    out = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(big) if itemsize > 1 else dtype)
    return out.reshape(h, w, channels).astype(dtype, copy=False)


def image_to_rgb8(msg: Image) -> np.ndarray:
    """A colour Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H,W,3) uint8 RGB."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} is not a colour encoding "
                         f"(supported: {', '.join(COLOR_ENCODINGS)})")
    a = image_to_numpy(msg)
    if msg.encoding == "mono8":
        return np.repeat(a, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        a = a[..., 2::-1]
    return np.ascontiguousarray(a[..., :3])


def numpy_to_image(a: np.ndarray, encoding: str, stamp=None, frame_id: str = "") -> Image:
    """(H,W) or (H,W,C) array -> Image with a tight step; float colour in [0,1] is quantised for rgb8."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}")
    channels, dtype = ENCODINGS[encoding]
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] != channels:
        raise ValueError(f"{encoding} needs (H,W,{channels}), got {a.shape}")
    if dtype == np.uint8 and a.dtype != np.uint8:
        a = np.clip(np.rint(np.asarray(a, np.float32) * 255.0), 0, 255)
    a = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * channels * a.dtype.itemsize)
    msg.data = array.array("B", a.tobytes())
    return msg


def camera_info_to_K(msg: CameraInfo) -> tuple[np.ndarray, int, int]:
    """CameraInfo -> (K (3,3) float64, width, height); raises for zero size or a non-positive focal length."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        raise ValueError(f"camera_info has no size ({w}x{h})")
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
        raise ValueError(f"camera_info K is not a pinhole matrix with fx, fy > 0: {K.reshape(-1).tolist()}")
    return K, w, h


def K_to_camera_info(K: np.ndarray, width: int, height: int, stamp=None, frame_id: str = "") -> CameraInfo:
    """Intrinsics (3,3) -> CameraInfo (no distortion, identity rectification, P = [K | 0])."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.concatenate([K, np.zeros((3, 1))], axis=1).reshape(-1).tolist()
    return msg


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> (4,4) float64; raises for non-finite values or a non-unit quaternion."""
    p, q = pose.position, pose.orientation
    return pose_matrix((p.x, p.y, p.z), (q.w, q.x, q.y, q.z))


def matrix_to_pose(T: np.ndarray) -> Pose:
    T = np.asarray(T, dtype=np.float64)
    w, x, y, z = matrix_to_quat(T[:3, :3])
    msg = Pose()
    msg.position.x, msg.position.y, msg.position.z = (float(v) for v in T[:3, 3])
    msg.orientation.w, msg.orientation.x, msg.orientation.y, msg.orientation.z = float(w), float(x), float(y), float(z)
    return msg


def gaussians_to_pointcloud2(g, stamp=None, frame_id: str = "world") -> PointCloud2:
    """Gaussians3D in world units -> PointCloud2, the layout of io/output_bag.py (GAUSSIAN_FIELDS, float32):
    x y z metres, rgb packed 0x00RRGGBB, opacity, scale_0..2 (standard deviations, metres), rot_0..3 (wxyz)."""
    pts = gaussian_points(g)
    msg = PointCloud2()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = 1, len(pts)
    msg.fields = [PointField(name=name, offset=GAUSSIAN_DTYPE.fields[name][1], datatype=PointField.FLOAT32,
                             count=1) for name in GAUSSIAN_FIELDS]
    msg.is_bigendian = False
    msg.point_step = GAUSSIAN_DTYPE.itemsize
    msg.row_step = msg.point_step * len(pts)
    msg.is_dense = bool(np.isfinite(pts.view(np.float32)).all())
    msg.data = array.array("B", pts.tobytes())
    return msg


_POINTFIELD_DTYPES = {PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2",
                      PointField.UINT16: "u2", PointField.INT32: "i4", PointField.UINT32: "u4",
                      PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}


def pointcloud2_to_array(msg: PointCloud2) -> np.ndarray:
    """PointCloud2 -> structured array (height*width,) with one field per PointField (count 1 fields)."""
    end = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [end + _POINTFIELD_DTYPES[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    n = msg.width * msg.height
    return np.frombuffer(msg.data, dtype=dtype, count=n)
