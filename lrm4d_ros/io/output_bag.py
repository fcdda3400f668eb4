"""Write reconstruction results as a ROS 2 bag (MCAP by default) with rosbags: rendered colour (rgb8) and depth
(32FC1, metres) Image topics with their CameraInfo, /tf for the rendered cameras, and the sliced Gaussians as a
sensor_msgs/PointCloud2 that RViz and Foxglove display (layout: io/messages.py, GAUSSIAN_FIELDS).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from rosbags.rosbag2 import StoragePlugin, Writer

from ..gaussians import Gaussians3D
from .messages import (TYPESTORE, camera_info_msg, depth_msg, image_msg, pointcloud2_msg, rosbags_types,
                       serialize, transform_msg)

TOPIC_PREFIX = "/lrm4d"  # `lrm4d reconstruct`'s bag: /lrm4d/<cam>/{image,depth,camera_info} and the Gaussians
GAUSSIANS_TOPIC = f"{TOPIC_PREFIX}/gaussians"


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


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

    def __exit__(self, exc_type, *_) -> None:
        """Close the bag; one that an error or an interruption left without a message is removed (a rerun is not
        refused for it). One with messages stays, closed and readable: the caller says it is partial."""
        try:
            self._writer.close()
        finally:
            if exc_type is not None and not self.counts:
                shutil.rmtree(self.path, ignore_errors=True)

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
        and its pose on /tf (world -> `<prefix>_optical_frame` without the leading slash, e.g.
        lrm4d/cam0_optical_frame: a name of the output's own, where `cam0_optical_frame` may be the robot's frame,
        which the rendered camera's /tf would give a second parent when both are played)."""
        frame = f"{prefix.strip('/')}_optical_frame"
        color = _numpy(color)
        H, W = color.shape[:2]
        self.write(f"{prefix}/image", image_msg(color, stamp_ns, frame), stamp_ns)
        if depth is not None:
            self.write(f"{prefix}/depth", depth_msg(_numpy(depth), stamp_ns, frame), stamp_ns)
        self.write(f"{prefix}/camera_info", camera_info_msg(_numpy(K), W, H, stamp_ns, frame), stamp_ns)
        tf = rosbags_types().TFMessage(transforms=[transform_msg(_numpy(camtoworld), stamp_ns, self.world_frame,
                                                                 frame)])
        self.write("/tf", tf, stamp_ns)

    def write_gaussians(self, topic: str, g: Gaussians3D, stamp_ns: int) -> None:
        self.write(topic, pointcloud2_msg(g, stamp_ns, self.world_frame), stamp_ns)
