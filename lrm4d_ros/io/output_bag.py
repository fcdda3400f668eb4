"""Write reconstruction results as a ROS 2 bag (MCAP by default) with rosbags: rendered colour (rgb8) and depth
(32FC1, metres) Image topics with their CameraInfo, /tf for the rendered cameras, and the sliced Gaussians as a
sensor_msgs/PointCloud2 that RViz and Foxglove display.

PointCloud2 layout (`GAUSSIAN_FIELDS`, all FLOAT32, little-endian, point_step 48 bytes, world units):
x y z (metres), rgb (0x00RRGGBB packed into the float's bits, as RViz expects), opacity in [0,1],
scale_0..2 (standard deviations along the principal axes, metres — linear, unlike the log scales of PLY),
rot_0..3 (principal-axes rotation, quaternion wxyz).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from rosbags.rosbag2 import StoragePlugin, Writer

from ..gaussians import Gaussians3D
from .messages import TYPESTORE, camera_info_msg, depth_msg, header_msg, image_msg, matrix_to_quat, serialize

_T = TYPESTORE.types
GAUSSIAN_FIELDS = ("x", "y", "z", "rgb", "opacity", "scale_0", "scale_1", "scale_2",
                   "rot_0", "rot_1", "rot_2", "rot_3")
GAUSSIAN_DTYPE = np.dtype([(name, "<f4") for name in GAUSSIAN_FIELDS])


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N,3) RGB in [0,1] -> (N,) float32 whose bits are the uint32 0x00RRGGBB."""
    c = (np.clip(colors, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Inverse of pack_rgb: (N,) float32 -> (N,3) uint8."""
    u = np.ascontiguousarray(rgb, dtype=np.float32).view(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], -1).astype(np.uint8)


def gaussian_points(g: Gaussians3D) -> np.ndarray:
    """Gaussians (world units) -> (N,) structured array with GAUSSIAN_DTYPE, ready to be a PointCloud2 body."""
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


def pointcloud2_msg(g: Gaussians3D, stamp_ns: int, frame_id: str = "world"):
    """A rosbags sensor_msgs/PointCloud2 (unorganised, height 1) of the Gaussians, layout GAUSSIAN_FIELDS."""
    PointField = _T["sensor_msgs/msg/PointField"]
    pts = gaussian_points(g)
    fields = [PointField(name=n, offset=GAUSSIAN_DTYPE.fields[n][1], datatype=PointField.FLOAT32, count=1)
              for n in GAUSSIAN_FIELDS]
    return _T["sensor_msgs/msg/PointCloud2"](
        header=header_msg(stamp_ns, frame_id), height=1, width=len(pts), fields=fields, is_bigendian=False,
        point_step=GAUSSIAN_DTYPE.itemsize, row_step=GAUSSIAN_DTYPE.itemsize * len(pts),
        data=pts.view(np.uint8).reshape(-1), is_dense=bool(np.isfinite(pts.view(np.float32)).all()))


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def transform_msg(camtoworld, stamp_ns: int, parent: str, child: str):
    """TransformStamped parent -> child from a camera-to-world (4,4) pose."""
    T = _numpy(camtoworld).astype(np.float64).reshape(4, 4)
    w, x, y, z = matrix_to_quat(T[:3, :3])
    return _T["geometry_msgs/msg/TransformStamped"](
        header=header_msg(stamp_ns, parent), child_frame_id=child,
        transform=_T["geometry_msgs/msg/Transform"](
            translation=_T["geometry_msgs/msg/Vector3"](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            rotation=_T["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w))))


class OutputBag:
    """Context manager writing result messages; topics are created on first use.

    `path` is the bag directory rosbags creates (it must not exist unless overwrite=True, which deletes it).
    """

    def __init__(self, path, storage: str = "mcap", overwrite: bool = False, world_frame: str = "world"):
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise FileExistsError(f"output bag {self.path} already exists (remove it or pass --overwrite)")
            shutil.rmtree(self.path)
        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise ValueError(f"storage must be one of {sorted(plugins)}, got {storage!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.world_frame = world_frame
        self.counts: dict[str, int] = {}
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self._connections = {}

    def __enter__(self) -> "OutputBag":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write(self, topic: str, msg, stamp_ns: int) -> None:
        """Serialise and write one message at log time `stamp_ns`."""
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msg.__msgtype__, typestore=TYPESTORE)
            self._connections[topic] = conn
        self._writer.write(conn, int(stamp_ns), serialize(msg))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write_view(self, prefix: str, color, depth, K, camtoworld, stamp_ns: int) -> None:
        """One rendered camera: `<prefix>/image` rgb8, `<prefix>/depth` 32FC1 metres, `<prefix>/camera_info`,
        and its pose on /tf (world -> `<name>_optical_frame`, name = last part of the prefix)."""
        frame = f"{prefix.rstrip('/').rsplit('/', 1)[-1]}_optical_frame"
        color = _numpy(color)
        H, W = color.shape[:2]
        self.write(f"{prefix}/image", image_msg(color, stamp_ns, frame), stamp_ns)
        if depth is not None:
            # the contract's depth (DESIGN §4): 32FC1 metres, 0 where nothing was rendered
            self.write(f"{prefix}/depth", depth_msg(_numpy(depth), stamp_ns, frame), stamp_ns)
        self.write(f"{prefix}/camera_info", camera_info_msg(_numpy(K), W, H, stamp_ns, frame), stamp_ns)
        tf = _T["tf2_msgs/msg/TFMessage"](transforms=[transform_msg(camtoworld, stamp_ns, self.world_frame, frame)])
        self.write("/tf", tf, stamp_ns)

    def write_gaussians(self, topic: str, g: Gaussians3D, stamp_ns: int) -> None:
        self.write(topic, pointcloud2_msg(g, stamp_ns, self.world_frame), stamp_ns)
