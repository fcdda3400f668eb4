"""The reconstruct node's parameters (defaults and meaning in config/reconstruct.yaml), declared and validated."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node
from rcl_interfaces.msg import IntegerRange, ParameterDescriptor

from ..cameras import fov_to_K
from ..selection import POLICIES
from ..window import RejectedInput, pose_matrix

POSE_SOURCES = ("topic", "tf")
QOS_CHOICES = ("sensor_data", "reliable")
NORMALIZATIONS = ("auto", "fixed")

# name -> default; the type of each parameter is that of its default.
SCALARS = {
    "world_frame": "world",
    "pose_source": "topic",
    "pose_tolerance_s": 0.02,
    "pose_max_gap_s": 0.5,
    "input_qos": "sensor_data",
    "input_queue_depth": 5,
    "window_seconds": 2.0,
    "window_frames": 0,
    "buffer_size": 64,
    "max_input_views": 12,
    "selection_policy": "uniform",
    "image_height": 0,
    "image_width": 0,
    "min_views": 2,
    "checkpoint": "",
    "device": "",
    "reconstruction_rate_hz": 2.0,
    "normalization": "auto",
    "normalization_center": [0.0, 0.0, 0.0],
    "normalization_scale": 1.0,
    "publish_gaussians": True,
    "gaussians_min_opacity": 0.0,
    "render_service": "~/render_view",
    "max_concurrent_renders": 1,
    "max_render_pixels": 4_194_304,
    "virtual_rate_hz": 2.0,
}
DEFAULT_CAMERAS = ["cam0", "cam1", "cam2", "cam3"]


@dataclass(frozen=True)
class CameraTopics:
    name: str
    image_topic: str
    info_topic: str
    pose_topic: str
    frame_id: str  # optical frame for TF lookups; "" = the image's header.frame_id


@dataclass(frozen=True)
class VirtualCamera:
    """A camera rendered continuously: camtoworld (4,4) metres, intrinsics K (3,3), size, time offset (s)."""

    name: str
    camtoworld: np.ndarray
    K: np.ndarray
    width: int
    height: int
    time_offset_s: float


@dataclass(frozen=True)
class NodeConfig:
    cameras: list[CameraTopics]
    virtual_cameras: list[VirtualCamera]
    values: dict  # the SCALARS, validated

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _string_list(node: Node, name: str, default: list[str]) -> list[str]:
    # Dynamically typed: an empty list ([] in YAML or a launch file) arrives typed as a byte array.
    value = node.declare_parameter(name, None, ParameterDescriptor(dynamic_typing=True)).value
    if value is None:
        return list(default)
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"parameter {name} must be a list of strings, got {value!r}")
    return list(value)


def declare_and_load(node: Node) -> NodeConfig:
    """Declare every parameter on `node` and return them validated; raises ValueError naming the bad one."""
    v = {name: node.declare_parameter(name, default).value for name, default in SCALARS.items()}
    for name, choices in (("pose_source", POSE_SOURCES), ("input_qos", QOS_CHOICES),
                          ("selection_policy", POLICIES), ("normalization", NORMALIZATIONS)):
        if v[name] not in choices:
            raise ValueError(f"parameter {name} must be one of {choices}, got {v[name]!r}")
    for name in ("reconstruction_rate_hz", "virtual_rate_hz", "normalization_scale", "pose_tolerance_s",
                 "pose_max_gap_s"):
        if not (math.isfinite(v[name]) and v[name] > 0):
            raise ValueError(f"parameter {name} must be > 0, got {v[name]}")
    for name in ("input_queue_depth", "buffer_size", "max_input_views", "min_views", "max_concurrent_renders",
                 "max_render_pixels"):
        if v[name] < 1:
            raise ValueError(f"parameter {name} must be >= 1, got {v[name]}")
    if v["window_seconds"] <= 0 and v["window_frames"] <= 0:
        raise ValueError("window_seconds and window_frames are both disabled (<= 0): the window would be unbounded")
    if (v["image_height"] > 0) != (v["image_width"] > 0):
        raise ValueError("set both image_height and image_width, or neither")
    if len(v["normalization_center"]) != 3:
        raise ValueError(f"normalization_center must have 3 values, got {v['normalization_center']}")

    v["viewer_port"] = node.declare_parameter("viewer_port", 0, ParameterDescriptor(
        description="port of the browser 4D viewer of the newest reconstruction (http://localhost:PORT); 0 = off",
        integer_range=[IntegerRange(from_value=0, to_value=65535, step=1)], read_only=True)).value

    names = _string_list(node, "camera_names", DEFAULT_CAMERAS)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"camera_names must be non-empty and unique, got {names}")
    cameras = []
    for n in names:
        p = f"cameras.{n}."
        cameras.append(CameraTopics(
            n, node.declare_parameter(p + "image_topic", f"/{n}/image_raw").value,
            node.declare_parameter(p + "info_topic", f"/{n}/camera_info").value,
            node.declare_parameter(p + "pose_topic", f"/{n}/pose").value,
            node.declare_parameter(p + "frame_id", "").value))

    virtual = []
    for n in _string_list(node, "virtual_camera_names", []):
        p = f"virtual_cameras.{n}."
        position = node.declare_parameter(p + "position", [0.0, 0.0, 0.0]).value
        quat = node.declare_parameter(p + "orientation_wxyz", [1.0, 0.0, 0.0, 0.0]).value
        width = node.declare_parameter(p + "width", 160).value
        height = node.declare_parameter(p + "height", 120).value
        fov = node.declare_parameter(p + "fov_y_deg", 50.0).value
        offset = node.declare_parameter(p + "time_offset_s", 0.0).value
        try:
            T = pose_matrix(position, quat)
        except RejectedInput as exc:
            raise ValueError(f"virtual camera {n}: {exc}") from None
        if width < 1 or height < 1 or width * height > v["max_render_pixels"] or not 0 < fov < 180:
            raise ValueError(f"virtual camera {n}: bad size {width}x{height} or fov_y_deg {fov}")
        K = fov_to_K(math.radians(fov), width, height).numpy()
        virtual.append(VirtualCamera(n, T, K, int(width), int(height), float(offset)))
    return NodeConfig(cameras, virtual, v)
