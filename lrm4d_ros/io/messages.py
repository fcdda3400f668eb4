"""The package's one ROS message layer (no rclpy, no ROS install): decode and encode Image (colour and depth),
CameraInfo, PoseStamped/Pose, Time, TF and the Gaussians' PointCloud2 layout, for the bag IO and the node alike.

Decoding is duck-typed on the message fields, which rosbags' and rclpy's classes share (arrays are numpy or
array.array there), so a message from either works. Encoding builds the classes of a `MessageTypes`: rosbags'
(the default, for bags; its typestore is built on first use) or rclpy's (`lrm4d_ros.ros.conversions.RCLPY`).
Bad messages raise `MessageError` with what is wrong; callers add topic and stamp. Quaternions are wxyz in the
package and xyzw in messages.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..geometry import QUAT_UNIT_TOLERANCE, matrix_to_quat, quat_to_matrix, rigid_matrix

_ROSBAGS_NAMES = {"Time": "builtin_interfaces/msg/Time", "Header": "std_msgs/msg/Header",
                  "Image": "sensor_msgs/msg/Image", "CompressedImage": "sensor_msgs/msg/CompressedImage",
                  "CameraInfo": "sensor_msgs/msg/CameraInfo",
                  "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest",
                  "PoseStamped": "geometry_msgs/msg/PoseStamped", "Pose": "geometry_msgs/msg/Pose",
                  "Point": "geometry_msgs/msg/Point", "Quaternion": "geometry_msgs/msg/Quaternion",
                  "PointCloud2": "sensor_msgs/msg/PointCloud2", "PointField": "sensor_msgs/msg/PointField",
                  "TransformStamped": "geometry_msgs/msg/TransformStamped",
                  "Transform": "geometry_msgs/msg/Transform", "Vector3": "geometry_msgs/msg/Vector3",
                  "TFMessage": "tf2_msgs/msg/TFMessage"}

__all__ = ["MessageTypes", "rosbags_types", "MessageError", "ENCODINGS", "DEPTH_ENCODINGS", "COLOUR_ENCODINGS",
           "time_msg", "time_ns", "stamp_ns", "header_msg", "to_uint8", "image_msg", "image_rgb", "depth_msg",
           "float_image_msg", "image_depth", "camera_info_msg", "camera_info_K", "pose_msg", "pose_matrix",
           "transform_msg",
           "GAUSSIAN_FIELDS", "GAUSSIAN_DTYPE", "pack_rgb", "unpack_rgb", "gaussian_points", "pointcloud2_msg",
           "pointcloud2_array", "serialize", "deserialize",
           # geometry, re-exported for the bag code
           "QUAT_UNIT_TOLERANCE", "matrix_to_quat", "quat_to_matrix", "rigid_matrix"]


@dataclass(frozen=True)
class MessageTypes:
    """Message classes that the encoders build (each takes its fields as keyword arguments) and how a uint8[]
    field wants its bytes. TFMessage may be None where tf2_msgs is not installed."""

    Time: Any
    Header: Any
    Image: Any
    CompressedImage: Any
    CameraInfo: Any
    RegionOfInterest: Any
    PoseStamped: Any
    Pose: Any
    Point: Any
    Quaternion: Any
    PointCloud2: Any
    PointField: Any
    TransformStamped: Any
    Transform: Any
    Vector3: Any
    TFMessage: Any
    byte_array: Callable[[np.ndarray], Any]


@functools.lru_cache(maxsize=None)
def _typestore():
    from rosbags.typesys import Stores, get_typestore  # building the typestore takes a while: only on use

    return get_typestore(Stores.ROS2_KILTED)


@functools.lru_cache(maxsize=None)
def rosbags_types() -> MessageTypes:
    """rosbags' classes (bags); uint8[] fields take numpy arrays."""
    types = _typestore().types
    return MessageTypes(**{k: types[v] for k, v in _ROSBAGS_NAMES.items()},
                        byte_array=lambda a: np.ascontiguousarray(a, dtype=np.uint8).reshape(-1))


def __getattr__(name: str):
    """TYPESTORE and the rosbags classes (Image, CameraInfo, ...) as module attributes, built on first use."""
    if name == "TYPESTORE":
        return _typestore()
    if name in _ROSBAGS_NAMES:
        return getattr(rosbags_types(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _types(types: MessageTypes | None) -> MessageTypes:
    return rosbags_types() if types is None else types


# encoding -> channels (the channel order is CV_TO_RGB's / FROM_RGB's; mono8 is replicated to grey RGB)
ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
CV_TO_RGB = {"bgr8": "COLOR_BGR2RGB", "rgba8": "COLOR_RGBA2RGB", "bgra8": "COLOR_BGRA2RGB",
             "mono8": "COLOR_GRAY2RGB"}  # OpenCV's vectorised shuffles for the other ENCODINGS
FROM_RGB = {"bgr8": "COLOR_RGB2BGR", "rgba8": "COLOR_RGB2RGBA", "bgra8": "COLOR_RGB2BGRA"}  # and back (alpha 255)
DEPTH_ENCODINGS = ("32FC1", "16UC1")  # metres (0 or NaN: no measurement) / millimetres (0: none), REP-118
# Raw camera encodings read as cv_bridge converts them (cameras publish these without a debayer/format node):
# Bayer mosaics, demosaicked bilinearly (ROS names the 2x2 pattern from the top-left pixel, OpenCV from the second
# row's second pixel); packed YUV 4:2:2 (yuv422 = UYVY, yuv422_yuy2 = YUYV; BT.601); 16 bits per channel.
BAYER = {"bayer_rggb8": "BayerBG", "bayer_bggr8": "BayerRG", "bayer_gbrg8": "BayerGR", "bayer_grbg8": "BayerGB"}
YUV422 = {"yuv422": "UYVY", "yuv422_yuy2": "YUYV"}
WIDE_ENCODINGS = {"mono16": (1, (0, 0, 0)), "rgb16": (3, (0, 1, 2)), "bgr16": (3, (2, 1, 0)),
                  "rgba16": (4, (0, 1, 2)), "bgra16": (4, (2, 1, 0))}
COLOUR_ENCODINGS = tuple(ENCODINGS) + tuple(BAYER) + tuple(YUV422) + tuple(WIDE_ENCODINGS)


class MessageError(ValueError):
    """A message that cannot be converted (unknown encoding, inconsistent sizes, ...)."""


class UnsupportedEncoding(MessageError):
    """An image in an encoding that is not a colour one this package reads (its layout is not judged)."""


# -- time --------------------------------------------------------------------------------------------------
def time_msg(stamp_ns: int, types: MessageTypes | None = None):
    """builtin_interfaces/Time of int nanoseconds (>= 0)."""
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise MessageError(f"negative stamp {stamp_ns} ns")
    return _types(types).Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)


def time_ns(stamp) -> int:
    """int nanoseconds of a builtin_interfaces/Time (exact)."""
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def stamp_ns(header) -> int:
    """int nanoseconds of a Header's stamp (exact)."""
    return time_ns(header.stamp)


def header_msg(stamp: int, frame_id: str, types: MessageTypes | None = None):
    return _types(types).Header(stamp=time_msg(stamp, types), frame_id=frame_id)


# -- images ------------------------------------------------------------------------------------------------
def to_uint8(rgb) -> np.ndarray:
    """(H,W,3) float in [0,1] (rounded) or uint8 -> contiguous uint8."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _image(px: np.ndarray, encoding: str, stamp: int, frame_id: str, types) -> Any:
    """Image of pixels (H,W,C) already in the encoding's little-endian dtype, rows unpadded."""
    t = _types(types)
    H, W = px.shape[:2]
    return t.Image(header=header_msg(stamp, frame_id, t), height=H, width=W, encoding=encoding, is_bigendian=0,
                   step=px[0].nbytes, data=t.byte_array(np.ascontiguousarray(px).view(np.uint8).reshape(-1)))


def image_msg(rgb, stamp: int, frame_id: str, encoding: str = "rgb8", types: MessageTypes | None = None):
    """Image message of an (H,W,3) RGB array (uint8, or float in [0,1]) in any of ENCODINGS, rows unpadded."""
    a = to_uint8(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise MessageError(f"expected an (H,W,3) RGB array, got shape {a.shape}")
    if encoding not in ENCODINGS:
        raise MessageError(f"unsupported encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    if encoding == "mono8":
        px = np.rint(a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    elif encoding == "rgb8":
        px = a.copy()  # the message's own pixels
    else:  # OpenCV's shuffles (alpha 255): 0.1 ms a 720p image against 0.7 through numpy's channel index lists
        import cv2

        px = cv2.cvtColor(a, getattr(cv2, FROM_RGB[encoding]))
    return _image(px, encoding, stamp, frame_id, types)


def _rows(msg, itemsize_per_pixel: int) -> np.ndarray:
    """(H, W·bytes) uint8 pixel rows of an Image, honouring `step` padding; MessageError for bad sizes."""
    H, W, step = int(msg.height), int(msg.width), int(msg.step)
    row = W * itemsize_per_pixel
    if H < 1 or W < 1:
        raise MessageError(f"image has no pixels ({W}x{H})")
    if step < row:
        raise MessageError(f"step {step} is less than width {W} x {itemsize_per_pixel} bytes ({msg.encoding})")
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if data.size < step * (H - 1) + row or data.size > step * H:
        raise MessageError(f"data has {data.size} bytes; {H} rows of step {step} need {step * H}")
    if data.size < step * H:  # the last row's padding may be left out
        data = np.concatenate([data, np.zeros(step * H - data.size, np.uint8)])
    return data.reshape(H, step)[:, :row]


def image_rgb(msg) -> np.ndarray:
    """(H,W,3) uint8 RGB of a colour Image in any of COLOUR_ENCODINGS (honours `step` row padding and, for 16-bit
    channels, `is_bigendian`; mono is replicated to grey RGB; 16-bit channels are scaled to 8 bits, v / 257)."""
    enc, H, W = msg.encoding, int(msg.height), int(msg.width)
    if enc in ENCODINGS:
        ch = ENCODINGS[enc]
        px = _rows(msg, ch).reshape(H, W, ch)
        # one copy into an array of its own; numpy's gather by channel index lists took 4.8 ms a 720p image
        if enc == "rgb8":
            return px.copy()
        import cv2

        return cv2.cvtColor(px, getattr(cv2, CV_TO_RGB[enc]))
    if enc in WIDE_ENCODINGS:
        ch, order = WIDE_ENCODINGS[enc]
        px = np.ascontiguousarray(_rows(msg, 2 * ch)).view(">u2" if msg.is_bigendian else "<u2").reshape(H, W, ch)
        return np.ascontiguousarray(np.rint(px[..., list(order)] / 257.0).astype(np.uint8))
    import cv2

    if enc in BAYER:
        if H < 2 or W < 2:
            raise MessageError(f"a Bayer image needs at least 2x2 pixels, got {W}x{H}")
        return cv2.cvtColor(np.ascontiguousarray(_rows(msg, 1)), getattr(cv2, f"COLOR_{BAYER[enc]}2RGB"))
    if enc in YUV422:
        if W % 2:
            raise MessageError(f"{enc} packs pixel pairs: the width must be even, got {W}")
        px = np.ascontiguousarray(_rows(msg, 2)).reshape(H, W, 2)
        return cv2.cvtColor(px, getattr(cv2, f"COLOR_YUV2RGB_{YUV422[enc]}"))
    raise UnsupportedEncoding(f"unsupported image encoding {enc!r} (not a colour encoding); supported: "
                       f"{list(COLOUR_ENCODINGS)}")


def depth_msg(depth_m, stamp: int, frame_id: str, encoding: str = "32FC1", types: MessageTypes | None = None):
    """Image message of an (H,W) z-depth in metres (0 or non-finite: no measurement).

    32FC1 keeps the float32 values, missing as NaN (REP 118: depth_image_proc and RViz's DepthCloud take any finite
    value, 0 too, for a point, which a 0 puts at the camera's centre); 16UC1 stores rounded millimetres, missing as
    0, and depths beyond 65.535 m cannot be stored (MessageError).
    """
    d = np.asarray(depth_m, dtype=np.float32)
    if d.ndim != 2:
        raise MessageError(f"expected an (H,W) depth array, got shape {d.shape}")
    d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0)).astype(np.float32)
    if encoding == "32FC1":
        px = np.where(d > 0, d, np.float32(np.nan)).astype("<f4")
    elif encoding == "16UC1":
        mm = np.rint(d.astype(np.float64) * 1000.0)
        if mm.max(initial=0) > 65535:
            raise MessageError(f"depth {float(d.max()):.3f} m does not fit 16UC1 millimetres (max 65.535 m)")
        px = mm.astype("<u2")
    else:
        raise MessageError(f"unsupported depth encoding {encoding!r}; supported: {list(DEPTH_ENCODINGS)}")
    return _image(px, encoding, stamp, frame_id, types)


def float_image_msg(a, stamp: int, frame_id: str, types: MessageTypes | None = None):
    """32FC1 Image of an (H,W) float array kept as is (rendered depth in metres, alpha in [0,1])."""
    a = np.asarray(a, dtype="<f4")
    if a.ndim != 2:
        raise MessageError(f"expected an (H,W) array, got shape {a.shape}")
    return _image(a, "32FC1", stamp, frame_id, types)


def image_depth(msg) -> np.ndarray:
    """(H,W) float32 z-depth in metres of a 32FC1 / 16UC1 Image; 0 where there is no measurement (0, NaN, inf,
    negative). Honours `step` row padding and `is_bigendian`. MessageError where most measured pixels are negative
    (a renderer's camera looking down its -z axis)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise MessageError(f"unsupported depth encoding {msg.encoding!r}; supported: {list(DEPTH_ENCODINGS)}")
    itemsize = 4 if msg.encoding == "32FC1" else 2
    rows = np.ascontiguousarray(_rows(msg, itemsize))
    order = ">" if msg.is_bigendian else "<"
    kind = "f4" if msg.encoding == "32FC1" else "u2"
    d = rows.view(np.dtype(order + kind)).reshape(int(msg.height), int(msg.width))
    # millimetres -> the float32 nearest to mm / 1000 (division in float64 is exact to that rounding)
    d = (d.astype(np.float64) / 1000.0).astype(np.float32) if msg.encoding == "16UC1" else d.astype(np.float32)
    measured = np.isfinite(d) & (d != 0)
    negative = int((measured & (d < 0)).sum())
    if negative * 2 > int(measured.sum()):  # a stray negative value is no measurement; most of them, a convention
        raise MessageError(f"{negative} of the depth image's {int(measured.sum())} measured pixels are negative: ROS "
                           "depth is z along the optical axis, positive in front of the camera (REP 118; an OpenGL "
                           "camera's z is negative there)")
    return np.where(measured & (d > 0), d, np.float32(0.0)).astype(np.float32)


# -- cameras and poses -------------------------------------------------------------------------------------
def camera_info_msg(K, width: int, height: int, stamp: int, frame_id: str, types: MessageTypes | None = None):
    """CameraInfo for pinhole intrinsics K (3,3) (ROS convention), no distortion, P = [K | 0]."""
    t = _types(types)
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return t.CameraInfo(header=header_msg(stamp, frame_id, t), height=int(height), width=int(width),
                        distortion_model="plumb_bob", d=np.zeros(5), k=K.reshape(-1).copy(),
                        r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
                        roi=t.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def camera_info_K(msg) -> tuple[np.ndarray, int, int]:
    """(K (3,3) float64, width, height) of a CameraInfo; MessageError unless it has a size and K is a pinhole
    matrix with fx, fy > 0."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        raise MessageError(f"camera_info has no size ({w}x{h})")
    if K.size != 9 or not np.isfinite(K).all() or K[0] <= 0 or K[4] <= 0 or K[8] != 1.0:
        raise MessageError(f"camera_info K is not a pinhole matrix with fx, fy > 0: {K.tolist()}")
    return K.reshape(3, 3), w, h


def pose_msg(T, stamp: int, frame_id: str = "world", types: MessageTypes | None = None):
    """PoseStamped of a rigid 4×4 transform (the camera optical frame in `frame_id`); `.pose` is the Pose."""
    t = _types(types)
    T = np.asarray(T, dtype=np.float64)
    w, x, y, z = (float(v) for v in matrix_to_quat(T[:3, :3]))
    return t.PoseStamped(header=header_msg(stamp, frame_id, t),
                         pose=t.Pose(position=t.Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                                     orientation=t.Quaternion(x=x, y=y, z=z, w=w)))


def pose_matrix(msg) -> np.ndarray:
    """4×4 float64 of a PoseStamped, Pose or Transform(Stamped); MessageError for non-finite values or a
    quaternion whose squared norm is off 1 by more than 0.01 (as tf2 allows)."""
    pose = getattr(msg, "pose", getattr(msg, "transform", msg))
    q = pose.orientation if hasattr(pose, "orientation") else pose.rotation
    t = pose.position if hasattr(pose, "position") else pose.translation
    try:
        return rigid_matrix((t.x, t.y, t.z), (q.w, q.x, q.y, q.z))
    except ValueError as exc:
        raise MessageError(str(exc)) from None


def transform_msg(camtoworld, stamp: int, parent: str, child: str, types: MessageTypes | None = None):
    """TransformStamped parent -> child from a camera-to-world (4,4) pose."""
    t = _types(types)
    T = np.asarray(camtoworld, dtype=np.float64).reshape(4, 4)
    w, x, y, z = (float(v) for v in matrix_to_quat(T[:3, :3]))
    return t.TransformStamped(
        header=header_msg(stamp, parent, t), child_frame_id=child,
        transform=t.Transform(translation=t.Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                              rotation=t.Quaternion(x=x, y=y, z=z, w=w)))


# -- the Gaussians as PointCloud2 --------------------------------------------------------------------------
# Layout (all FLOAT32, little-endian, point_step 48 bytes, world units): x y z (metres), rgb (0x00RRGGBB packed
# into the float's bits, as RViz expects), opacity in [0,1], scale_0..2 (standard deviations along the
# principal axes, metres — linear, unlike the log scales of PLY), rot_0..3 (principal-axes rotation, wxyz).
GAUSSIAN_FIELDS = ("x", "y", "z", "rgb", "opacity", "scale_0", "scale_1", "scale_2",
                   "rot_0", "rot_1", "rot_2", "rot_3")
GAUSSIAN_DTYPE = np.dtype([(name, "<f4") for name in GAUSSIAN_FIELDS])
_POINTFIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}  # REP sensor_msgs
FLOAT32 = 7


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N,3) RGB in [0,1] -> (N,) float32 whose bits are the uint32 0x00RRGGBB."""
    c = (np.clip(colors, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Inverse of pack_rgb: (N,) float32 -> (N,3) uint8."""
    u = np.ascontiguousarray(rgb, dtype=np.float32).view(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], -1).astype(np.uint8)


def gaussian_points(g) -> np.ndarray:
    """Gaussians3D (world units) -> (N,) structured array with GAUSSIAN_DTYPE, ready to be a PointCloud2 body."""
    scales, quats = g.scales_quats()
    pts = np.empty(len(g), GAUSSIAN_DTYPE)
    means = g.means.detach().cpu().numpy()
    for i, axis in enumerate("xyz"):
        pts[axis] = means[:, i]
    pts["rgb"] = pack_rgb(g.colors.detach().cpu().numpy())
    pts["opacity"] = g.opacities.detach().cpu().numpy()
    for i in range(3):
        pts[f"scale_{i}"] = scales[:, i].detach().cpu().numpy()
    for i in range(4):
        pts[f"rot_{i}"] = quats[:, i].detach().cpu().numpy()
    return pts


def pointcloud2_msg(g, stamp: int, frame_id: str = "world", types: MessageTypes | None = None):
    """Unorganised (height 1) PointCloud2 of Gaussians3D in world units, layout GAUSSIAN_FIELDS."""
    t = _types(types)
    pts = gaussian_points(g)
    fields = [t.PointField(name=n, offset=GAUSSIAN_DTYPE.fields[n][1], datatype=FLOAT32, count=1)
              for n in GAUSSIAN_FIELDS]
    return t.PointCloud2(header=header_msg(stamp, frame_id, t), height=1, width=len(pts), fields=fields,
                         is_bigendian=False, point_step=GAUSSIAN_DTYPE.itemsize,
                         row_step=GAUSSIAN_DTYPE.itemsize * len(pts), data=t.byte_array(pts.view(np.uint8)),
                         is_dense=bool(np.isfinite(pts.view(np.float32)).all()))


def pointcloud2_array(msg) -> np.ndarray:
    """PointCloud2 -> structured array (height·width,) with one field per PointField (count-1 fields)."""
    end = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": [f.name for f in msg.fields],
                      "formats": [end + _POINTFIELD_DTYPES[int(f.datatype)] for f in msg.fields],
                      "offsets": [int(f.offset) for f in msg.fields], "itemsize": int(msg.point_step)})
    return np.frombuffer(np.asarray(msg.data, dtype=np.uint8), dtype=dtype, count=int(msg.width * msg.height))


# -- bag bytes (rosbags' CDR) ------------------------------------------------------------------------------
def serialize(msg) -> bytes:
    return _typestore().serialize_cdr(msg, msg.__msgtype__)


def deserialize(raw: bytes, msgtype: str):
    return _typestore().deserialize_cdr(raw, msgtype)
