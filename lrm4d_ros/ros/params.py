"""The reconstruct node's parameters: typed, described, with ranges, read-only where a change needs a restart
(`DYNAMIC` ones are honoured at run time), validated into a NodeConfig. Defaults and comments: config/reconstruct.yaml.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.node import Node
from rclpy.validate_topic_name import validate_topic_name

from ..cameras import fov_to_K
from ..io.ingest import CameraTopics
from ..io.rectify import info_topic_for
from ..model import BF16_CHOICES
from ..reconstructor import REFINE_STEPS
from ..selection import DEFAULT_POLICY, POLICIES
from ..window import RejectedInput, checked_pose

POSE_SOURCES = ("topic", "tf")
IMAGE_TRANSPORTS, DEPTH_TRANSPORTS = ("raw", "compressed"), ("raw", "compressedDepth")
QOS_CHOICES = ("sensor_data", "reliable")
NORMALIZATIONS = ("auto", "fixed")
BIG = 1e9

# name -> (default, description, range (lo, hi) or choices, or None). The type of each is that of its default.
SCALARS = {
    "world_frame": ("world", "frame of the Gaussians and the render requests, and of the input poses (a pose topic in "
                             "another frame is mapped into it by TF)", None),
    "pose_source": ("topic", "camera poses from PoseStamped topics, or from TF (/tf, /tf_static): world_frame <- "
                               "the image's optical frame at its stamp", POSE_SOURCES),
    "pose_tolerance_s": (0.02, "an image may be this far before the first / after the last pose [s]", (0.0, 10.0)),
    "pose_max_gap_s": (0.5, "longest gap between two poses that is interpolated [s]", (0.001, 60.0)),
    "pose_wait_s": (1.0, "an image newer than every pose (with pose_source tf: whose transform has not come) waits "
                           "this long for one, then is refused [s]",
                    (0.0, 60.0)),
    "max_stamp_lead_s": (1.0, "stamps further ahead of the node's clock are refused; 0 disables (then a stamp more "
                               "than the window ahead of every other camera's latest image is) [s]", (0.0, BIG)),
    "max_stamp_age_s": (10.0, "stamps further behind the node's clock are refused; 0 disables [s]", (0.0, BIG)),
    "rig_check_s": (60.0, "how often depth cameras' stamps (moving ones) and focal lengths (those looking the same "
                          "way) are read against each other's after a reconstruction (~0.3 s of CPU for a moving "
                          "3-camera head rig's 12 inputs); a camera off the others is named in ~/status "
                          "input_findings with what to set; 0: never [s]", (0.0, BIG)),
    "image_transport": ("raw", "colour images as sensor_msgs/Image on image_topic, or as image_transport's "
                               "compressed plugin publishes them: sensor_msgs/CompressedImage (JPEG, PNG) on "
                               "image_topic + '/compressed'", IMAGE_TRANSPORTS),
    "depth_transport": ("raw", "depth images as sensor_msgs/Image on depth_topic, or "
                               "compressed_depth_image_transport's CompressedImage (PNG, RVL) on depth_topic + "
                               "'/compressedDepth'", DEPTH_TRANSPORTS),
    "rectify": ("auto", "auto: raw images whose camera_info has lens distortion are rectified onto P's pinhole as "
                        "image_proc does, image_rect topics taken with P's intrinsics; off: every image is a pinhole "
                        "with camera_info's K", ("auto", "off")),
    "input_qos": ("sensor_data", "input QoS: best effort (also receives reliable publishers) or reliable",
                  QOS_CHOICES),
    "input_queue_depth": (10, "history depth of each input subscription", (1, 10000)),
    "ingest_queue_size": (64, "messages per camera queued for decoding; beyond it the oldest is dropped and "
                              "counted", (1, 100000)),
    "window_seconds": (2.0, "views no older than this before the newest are kept; 0 disables [s]", (0.0, BIG)),
    "window_frames": (0, "newest frames kept per camera; 0 disables", (0, 100000)),
    "buffer_size": (64, "views buffered per camera (oldest dropped and counted)", (1, 100000)),
    "max_input_views": (12, "most views given to the model per reconstruction", (1, 1024)),
    "selection_policy": (DEFAULT_POLICY, "which views the model sees: every camera at instants spread over the "
                         "window (frames), the cameras taking turns over it (uniform), or the newest (latest)",
                         POLICIES),
    "image_height": (0, "model input height; 0 = the newest view's size", (0, 16384)),
    "image_width": (0, "model input width; 0 = the newest view's size", (0, 16384)),
    "min_views": (2, "no reconstruction with fewer views", (1, 1024)),
    "depth_tolerance_s": (0.001, "a depth image pairs with the colour image this close in stamp [s]",
                          (0.0, 1.0)),
    "checkpoint": ("", "safetensors checkpoint; empty = the shipped one", None),
    "device": ("", "torch device (cpu, cuda, cuda:1); empty = CUDA when available", None),
    "bf16": ("auto", "the transformer under bf16 autocast: auto = where the hardware computes it natively (CUDA, "
                     "AVX512-BF16/AMX CPUs), as the shipped model trained", tuple(BF16_CHOICES)),
    "refine_steps": (REFINE_STEPS, "colour refinement passes per reconstruction (0 = the model's colours; each "
                     "re-renders the input views: about 0.06 s for 12 views of 128^2 on two CPU cores)", (0, 100)),
    "floor_known": (False, "the floor's world height is known (floor_z); false = found from depth or by matching "
                           "the views", None),
    "floor_z": (0.0, "world height of a horizontal floor under the rig, used when floor_known (a ground robot's "
                     "odom/map frame: 0, REP-105; depth cameras check it) [m]", (-BIG, BIG)),
    "reconstruction_rate_hz": (10.0, "most reconstructions per second; each starts when new views arrive",
                               (0.01, 1000.0)),
    "gather_s": (0.05, "after a new view, wait at most this long for the other cameras' views of the same "
                       "instant and for a depth camera's depth of it [s]", (0.0, 10.0)),
    "normalization": ("auto", "canonical frame from the input poses, or fixed center/scale", NORMALIZATIONS),
    "normalization_center": ([0.0, 0.0, 0.0], "fixed normalization: canonical = (world - center) * scale", None),
    "normalization_scale": (1.0, "fixed normalization scale", (1e-9, BIG)),
    "publish_gaussians": (True, "publish ~/gaussians after each reconstruction", None),
    "gaussians_min_opacity": (0.0, "drop sliced Gaussians below this opacity in ~/gaussians", (0.0, 1.0)),
    "gaussians_max_range": (0.0, "drop Gaussians farther than this from every input camera in ~/gaussians; "
                                 "0 = keep all [m]", (0.0, BIG)),
    "gaussians_guessed": (False, "also publish in ~/gaussians the Gaussians whose depth the model guessed (a depth "
                                 "camera's pixels that measured nothing, far out; a colour camera's that nothing "
                                 "located): not a measurement", None),
    "render_service": ("~/render_view", "name of the render_view service", None),
    "render_frame_id": ("render_view_optical_frame", "frame_id of render_view images when the request names none",
                        None),
    "max_concurrent_renders": (1, "further simultaneous render requests are refused at once (busy)", (1, 64)),
    "max_render_pixels": (4_194_304, "width * height limit of one render request, and of the pixels it is drawn at "
                                     "(a camera coarser than the inputs, or one no input looks like, is drawn finer "
                                     "only within it)", (1, 1 << 30)),
    "virtual_rate_hz": (2.0, "how often the virtual cameras look for a new reconstruction to render [Hz]",
                        (0.01, 1000.0)),
    "viewer_port": (0, "port of the browser 4D viewer of the newest reconstruction (http://<this machine>:PORT, "
                       "all interfaces); 0 = off", (0, 65535)),
}
# Honoured at run time (`ros2 param set`); every other parameter is read-only.
DYNAMIC = ("reconstruction_rate_hz", "gather_s", "max_input_views", "selection_policy", "min_views",
           "publish_gaussians", "gaussians_min_opacity", "gaussians_max_range", "gaussians_guessed",
           "max_render_pixels")
# what `ros2 param describe` says of every other parameter (rclpy refuses a set with only "read-only")
READ_ONLY_HINT = "read-only: set it in the params file or with -p NAME:=VALUE and restart the node"
DEFAULT_CAMERAS = ["cam0", "cam1", "cam2", "cam3"]


@dataclass(frozen=True)
class VirtualCamera:
    """A camera rendered for each reconstruction: camtoworld (4,4) metres, intrinsics K (3,3), size, time offset
    (s)."""

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
    values: dict  # the SCALARS, validated; DYNAMIC ones are updated in place

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def descriptor(name: str, description: str, limits, read_only: bool) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=description, read_only=read_only)
    if isinstance(limits, tuple) and len(limits) == 2 and all(isinstance(x, (int, float)) for x in limits):
        if isinstance(limits[0], int) and isinstance(limits[1], int):
            d.integer_range = [IntegerRange(from_value=limits[0], to_value=limits[1], step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(limits[0]), to_value=float(limits[1]),
                                                         step=0.0)]
    elif limits:
        d.additional_constraints = f"one of {list(limits)}"
    if read_only:  # rclpy's refusal of a set says only "read-only": `ros2 param describe` says what to do instead
        d.additional_constraints = "; ".join(filter(None, [d.additional_constraints, READ_ONLY_HINT]))
    return d


def _declare(node: Node, name: str, default, description: str, limits=None, read_only: bool = True):
    try:
        return node.declare_parameter(name, default, descriptor(name, description, limits, read_only)).value
    except ParameterException as exc:  # out of range or wrong type in a YAML / override
        raise ValueError(f"parameter {name}: {exc}") from None


def _string_list(node: Node, name: str, default: list[str], description: str) -> list[str]:
    # Dynamically typed: an empty list ([] in YAML or a launch file) arrives typed as a byte array.
    d = descriptor(name, description, None, read_only=True)
    d.dynamic_typing = True
    # declared with its default where it has one, so that `ros2 param get` shows what the node uses
    value = node.declare_parameter(name, list(default) or None, d).value
    if value is None:
        return list(default)
    if len(value) == 0:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"parameter {name} must be a list of strings, got {value!r}")
    return list(value)


def check(name: str, value) -> None:
    """Raise ValueError if `value` is not allowed for scalar parameter `name` (choices and cross-checks that
    ranges cannot express)."""
    limits = SCALARS[name][2]
    if isinstance(limits, tuple) and limits and isinstance(limits[0], str) and value not in limits:
        raise ValueError(f"parameter {name} must be one of {limits}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"parameter {name} must be finite, got {value}")


def check_together(values: dict) -> None:
    """Raise ValueError where parameters contradict each other (at start-up and for each set at run time)."""
    if values["min_views"] > values["max_input_views"]:
        raise ValueError(f"min_views {values['min_views']} > max_input_views {values['max_input_views']}: the model is "
                         "never given that many views, so no reconstruction would run")


def _check_topic(what: str, topic: str) -> str:
    """`topic` if it is a valid ROS topic name (relative, absolute or private), else ValueError naming `what`."""
    try:
        validate_topic_name(topic)
    except NameValidationException as exc:
        raise ValueError(f"{what}: {str(exc).splitlines()[0]} {topic!r}") from None
    return topic


def declare_and_load(node: Node) -> NodeConfig:
    """Declare every parameter on `node` and return them validated; raises ValueError naming the bad one."""
    v = {}
    for name, (default, description, limits) in SCALARS.items():
        v[name] = _declare(node, name, default, description, limits, read_only=name not in DYNAMIC)
        check(name, v[name])
    check_together(v)
    if v["window_seconds"] <= 0 and v["window_frames"] <= 0:
        raise ValueError("window_seconds and window_frames are both disabled (<= 0): the window would be unbounded")
    if (v["image_height"] > 0) != (v["image_width"] > 0):
        raise ValueError("set both image_height and image_width, or neither")
    if len(v["normalization_center"]) != 3:
        raise ValueError(f"normalization_center must have 3 values, got {v['normalization_center']}")

    names = _string_list(node, "camera_names", DEFAULT_CAMERAS, "input cameras, in camera-id order")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"camera_names must be non-empty and unique, got {names}")
    cameras = []
    for n in names:
        # a camera's name makes its topics and parameter names: refuse one ROS cannot use, before declaring
        _check_topic(f"camera name {n!r}", f"{n}/image_raw")
        p = f"cameras.{n}."

        def topic(key, default, what, p=p, n=n):
            value = _declare(node, p + key, default, what)
            return _check_topic(f"camera {n} {key}", value) if value and key.endswith("_topic") else value
        cameras.append(CameraTopics(
            n, topic("image_topic", f"{n}/image_raw", "colour image topic (relative: remappable)"),
            topic("info_topic", f"{n}/camera_info", "CameraInfo topic"),
            topic("pose_topic", f"{n}/pose", "PoseStamped topic of the optical frame in world_frame"),
            (depth := topic("depth_topic", "", "depth image topic (32FC1 m / 16UC1 mm), registered to the colour "
                                                   "image or in its own frame (registered here); empty = none")),
            topic("frame_id", "", "optical frame for pose_source tf and depth registration; empty = the image's "
                                  "(and camera_info's) header.frame_id"),
            (topic("depth_info_topic", "", "the depth camera's CameraInfo, for depth in another frame than the "
                                           "colour image's; empty = the depth topic's sibling camera_info")
             or info_topic_for(depth)) if depth else "",
            float(_declare(node, p + "time_offset_s", 0.0, "seconds added to this camera's image and depth stamps "
                                                           "before they are posed and windowed: -latency for a "
                                                           "camera stamping frames on arrival", (-10.0, 10.0)))))

    virtual = []
    for n in _string_list(node, "virtual_camera_names", [], "cameras rendered for each reconstruction"):
        _check_topic(f"virtual camera name {n!r}", f"~/{n}/image")
        p = f"virtual_cameras.{n}."
        position = _declare(node, p + "position", [0.0, 0.0, 0.0], "[x, y, z] metres in world_frame")
        quat = _declare(node, p + "orientation_wxyz", [1.0, 0.0, 0.0, 0.0], "optical frame orientation w x y z")
        width = _declare(node, p + "width", 160, "pixels", (1, 16384))
        height = _declare(node, p + "height", 120, "pixels", (1, 16384))
        fov = _declare(node, p + "fov_y_deg", 50.0, "vertical field of view [deg]", (0.1, 179.9))
        offset = _declare(node, p + "time_offset_s", 0.0, "render at newest input stamp + offset, <= 0 (a moment in "
                          "the window: a reconstruction does not extrapolate) [s]", (-BIG, 0.0))
        try:
            T = checked_pose(position, quat)
        except RejectedInput as exc:
            raise ValueError(f"virtual camera {n}: {exc}") from None
        if width * height > v["max_render_pixels"]:
            raise ValueError(f"virtual camera {n}: {width}x{height} exceeds max_render_pixels")
        K = fov_to_K(math.radians(fov), width, height).numpy()
        virtual.append(VirtualCamera(n, T, K, int(width), int(height), float(offset)))
    return NodeConfig(cameras, virtual, v)


def unknown_parameters(node: Node, cfg: NodeConfig) -> list[str]:
    """One line per parameter given to `node` (YAML, -p) that it never declared, with the nearest declared name:
    rclpy ignores them, so a misspelt one would silently keep its default."""
    import difflib

    declared = set(node._parameters)
    listed = {"cameras": ("camera_names", [c.name for c in cfg.cameras]),
              "virtual_cameras": ("virtual_camera_names", [v.name for v in cfg.virtual_cameras])}
    lines = []
    for name in sorted(set(node._parameter_overrides) - declared):
        if name.startswith("qos_overrides."):  # rclpy's own
            continue
        part = name.split(".")
        if part[0] in listed and len(part) == 3 and part[1] not in listed[part[0]][1]:
            lines.append(f"parameter {name!r} is for camera {part[1]!r}, which {listed[part[0]][0]} does not list "
                         f"({listed[part[0]][1]}), ignored")
            continue
        near = difflib.get_close_matches(name, declared, n=1)
        lines.append(f"parameter {name!r} is not one of this node's, ignored" +
                     (f" (did you mean {near[0]!r}?)" if near else ""))
    return lines
