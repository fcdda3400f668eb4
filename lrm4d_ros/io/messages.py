"""ROS message ⇄ array helpers on rosbags' message classes (no rclpy): Image ⇄ RGB array, CameraInfo ⇄ K,
PoseStamped ⇄ camera-to-world 4×4, stamps ⇄ int64 nanoseconds.

rosbags' classes use the same field names as rclpy's (arrays are numpy), so these helpers also document the
mapping the ROS adapter uses. Bad messages raise `MessageError` with what is wrong; callers add topic and stamp.
"""
from __future__ import annotations

import numpy as np
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
Header = TYPESTORE.types["std_msgs/msg/Header"]
Image = TYPESTORE.types["sensor_msgs/msg/Image"]
CameraInfo = TYPESTORE.types["sensor_msgs/msg/CameraInfo"]
RegionOfInterest = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"]
PoseStamped = TYPESTORE.types["geometry_msgs/msg/PoseStamped"]
Pose = TYPESTORE.types["geometry_msgs/msg/Pose"]
Point = TYPESTORE.types["geometry_msgs/msg/Point"]
Quaternion = TYPESTORE.types["geometry_msgs/msg/Quaternion"]

# encoding -> (channels, indices of R, G, B in a pixel); mono8 repeats its one channel.
ENCODINGS = {"rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0)),
             "mono8": (1, (0, 0, 0))}


class MessageError(ValueError):
    """A message that cannot be converted (unknown encoding, inconsistent sizes, ...)."""


def time_msg(stamp_ns: int):
    stamp_ns = int(stamp_ns)
    if stamp_ns < 0:
        raise MessageError(f"negative stamp {stamp_ns} ns")
    return Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)


def stamp_ns(header) -> int:
    """int nanoseconds of a Header's stamp (exact)."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def header_msg(stamp: int, frame_id: str):
    return Header(stamp=time_msg(stamp), frame_id=frame_id)


def to_uint8(rgb) -> np.ndarray:
    """(H,W,3) float in [0,1] (rounded) or uint8 -> contiguous uint8."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def image_msg(rgb, stamp: int, frame_id: str, encoding: str = "rgb8"):
    """Image message of an (H,W,3) RGB array (uint8, or float in [0,1]) in any of ENCODINGS, rows unpadded."""
    a = to_uint8(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise MessageError(f"expected an (H,W,3) RGB array, got shape {a.shape}")
    if encoding not in ENCODINGS:
        raise MessageError(f"unsupported encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    ch, order = ENCODINGS[encoding]
    if encoding == "mono8":
        px = np.rint(a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
    else:
        px = np.empty(a.shape[:2] + (ch,), np.uint8)
        px[..., list(order)] = a
        if ch == 4:
            px[..., 3] = 255
    H, W = a.shape[:2]
    return Image(header=header_msg(stamp, frame_id), height=H, width=W, encoding=encoding, is_bigendian=0,
                 step=W * ch, data=px.reshape(-1))


def image_rgb(msg) -> np.ndarray:
    """(H,W,3) uint8 RGB of an Image message (honours `step` row padding; mono8 is replicated to grey RGB)."""
    if msg.encoding not in ENCODINGS:
        raise MessageError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}")
    ch, order = ENCODINGS[msg.encoding]
    H, W, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if step < W * ch:
        raise MessageError(f"step {step} is less than width {W} x {ch} channels ({msg.encoding})")
    if data.size < step * (H - 1) + W * ch or data.size > step * H:
        raise MessageError(f"data has {data.size} bytes; {H} rows of step {step} need {step * H}")
    if data.size < step * H:  # the last row's padding may be left out
        data = np.concatenate([data, np.zeros(step * H - data.size, np.uint8)])
    px = data.reshape(H, step)[:, :W * ch].reshape(H, W, ch)
    return np.ascontiguousarray(px[..., list(order)])


DEPTH_ENCODINGS = ("32FC1", "16UC1")  # metres (0 or NaN: no measurement) / millimetres (0: none), REP-118


def depth_msg(depth_m, stamp: int, frame_id: str, encoding: str = "32FC1"):
    """Image message of an (H,W) z-depth in metres (0 or non-finite: no measurement).

    32FC1 keeps the float32 values (missing as 0); 16UC1 stores rounded millimetres, and depths beyond
    65.535 m cannot be stored (MessageError).
    """
    d = np.asarray(depth_m, dtype=np.float32)
    if d.ndim != 2:
        raise MessageError(f"expected an (H,W) depth array, got shape {d.shape}")
    d = np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0)).astype(np.float32)
    if encoding == "32FC1":
        px, itemsize = d.astype("<f4"), 4
    elif encoding == "16UC1":
        mm = np.rint(d.astype(np.float64) * 1000.0)
        if mm.max(initial=0) > 65535:
            raise MessageError(f"depth {float(d.max()):.3f} m does not fit 16UC1 millimetres (max 65.535 m)")
        px, itemsize = mm.astype("<u2"), 2
    else:
        raise MessageError(f"unsupported depth encoding {encoding!r}; supported: {list(DEPTH_ENCODINGS)}")
    H, W = d.shape
    return Image(header=header_msg(stamp, frame_id), height=H, width=W, encoding=encoding, is_bigendian=0,
                 step=W * itemsize, data=np.frombuffer(np.ascontiguousarray(px).tobytes(), np.uint8).copy())


def image_depth(msg) -> np.ndarray:
    """(H,W) float32 z-depth in metres of a 32FC1 / 16UC1 Image; 0 where there is no measurement (0, NaN, inf,
    negative). Honours `step` row padding and `is_bigendian`."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise MessageError(f"unsupported depth encoding {msg.encoding!r}; supported: {list(DEPTH_ENCODINGS)}")
    itemsize = 4 if msg.encoding == "32FC1" else 2
    H, W, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8).reshape(-1)
    if H < 1 or W < 1:
        raise MessageError(f"depth image has no pixels ({W}x{H})")
    if step < W * itemsize:
        raise MessageError(f"step {step} is less than width {W} x {itemsize} bytes ({msg.encoding})")
    if data.size < step * (H - 1) + W * itemsize or data.size > step * H:
        raise MessageError(f"data has {data.size} bytes; {H} rows of step {step} need {step * H}")
    if data.size < step * H:
        data = np.concatenate([data, np.zeros(step * H - data.size, np.uint8)])
    rows = np.ascontiguousarray(data.reshape(H, step)[:, :W * itemsize])
    order = ">" if msg.is_bigendian else "<"
    kind = "f4" if msg.encoding == "32FC1" else "u2"
    d = rows.view(np.dtype(order + kind)).reshape(H, W)
    # millimetres -> the float32 nearest to mm / 1000 (division in float64 is exact to that rounding)
    d = (d.astype(np.float64) / 1000.0).astype(np.float32) if msg.encoding == "16UC1" else d.astype(np.float32)
    return np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0)).astype(np.float32)


def camera_info_msg(K, width: int, height: int, stamp: int, frame_id: str):
    """CameraInfo for pinhole intrinsics K (3,3) (ROS convention), no distortion, P = [K | 0]."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(header=header_msg(stamp, frame_id), height=int(height), width=int(width),
                      distortion_model="plumb_bob", d=np.zeros(5), k=K.reshape(-1).copy(),
                      r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0,
                      roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def camera_info_K(msg) -> tuple[np.ndarray, int, int]:
    """(K (3,3) float64, width, height) of a CameraInfo."""
    K = np.asarray(msg.k, dtype=np.float64)
    if K.size != 9 or not np.isfinite(K).all() or K[0] <= 0 or K[4] <= 0:
        raise MessageError(f"invalid camera_info K {K.tolist()}")
    return K.reshape(3, 3), int(msg.width), int(msg.height)


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation (3,3) -> unit quaternion (w, x, y, z) with w >= 0 (Shepperd's method: stable for any angle)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + R[i, i] - R[j, j] - R[k, k], 1e-300))
        q = [0.0] * 4
        q[0] = (R[k, j] - R[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + k] = (R[k, i] + R[i, k]) / s
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def quat_to_matrix(q) -> np.ndarray:
    """Quaternion (w, x, y, z), normalised here -> rotation (3,3)."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def pose_msg(T, stamp: int, frame_id: str = "world"):
    """PoseStamped of a rigid 4×4 transform (the camera optical frame in `frame_id`)."""
    T = np.asarray(T, dtype=np.float64)
    w, x, y, z = matrix_to_quat(T[:3, :3])
    return PoseStamped(header=header_msg(stamp, frame_id),
                       pose=Pose(position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                                 orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w))))


QUAT_UNIT_TOLERANCE = 1e-3  # |‖q‖ − 1| beyond this is a malformed orientation, not rounding


def rigid_matrix(position, quat_wxyz) -> np.ndarray:
    """4×4 float64 from a position (3,) and a unit quaternion (4,) wxyz (renormalised).

    Raises MessageError for non-finite values or a quaternion whose norm is off 1 by more than 1e-3.
    """
    p = np.asarray(position, dtype=np.float64).reshape(3)
    q = np.asarray(quat_wxyz, dtype=np.float64).reshape(4)
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise MessageError(f"pose has non-finite values: position {p.tolist()}, quaternion {q.tolist()}")
    n = float(np.linalg.norm(q))
    if abs(n - 1.0) > QUAT_UNIT_TOLERANCE:
        raise MessageError(f"pose quaternion is not unit length (norm {n:.6f})")
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(q / n)
    T[:3, 3] = p
    return T


def pose_matrix(msg) -> np.ndarray:
    """4×4 float64 of a PoseStamped (or Pose); MessageError as `rigid_matrix`."""
    pose = getattr(msg, "pose", msg)
    q, t = pose.orientation, pose.position
    return rigid_matrix((t.x, t.y, t.z), (q.w, q.x, q.y, q.z))


def serialize(msg) -> bytes:
    return TYPESTORE.serialize_cdr(msg, msg.__msgtype__)


def deserialize(raw: bytes, msgtype: str):
    return TYPESTORE.deserialize_cdr(raw, msgtype)
