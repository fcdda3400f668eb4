"""A ViewSet recorded as a robot's drivers record it: what `lrm4d convert-bag` takes in, and what the node reads with
`pose_source: tf` (config/robot_realsense_tf.yaml's layout). For trying the robot path without a robot, and for
testing convert-bag and the node against known poses, pixels and depth.

Per camera `<cam>`, under namespace `ns` (RealSense's names, as realsense2_camera publishes them):
- `<ns>/<cam>/color/image_raw` (rgb8), or `.../image_raw/compressed` (PNG or JPEG) as image_transport records it;
- `<ns>/<cam>/color/camera_info` (frame `<cam>_color_optical_frame`);
- `<ns>/<cam>/aligned_depth_to_color/image_raw` (16UC1 millimetres, the colour image's frame and size; 32FC1 metres
  where some depth is beyond 16UC1's 65.535 m), where the views have depth;
- poses only as TF: `/tf_static` <cam>_link -> <cam>_color_optical_frame (REP-103: the optical frame's z along the
  link's x), recorded once before everything; `/tf` world_frame -> <cam>_link at each of the camera's views (the
  robot's base moving so that the optical frame has the view's pose), each recorded after its image, as TF arrives.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..views import ViewSet
from .compressed import compressed_image_msg
from .messages import camera_info_msg, depth_msg, image_msg, rosbags_types, transform_msg

# <cam>_link -> <cam>_color_optical_frame: x right = -y, y down = -z, z forward = x of the link (REP-103)
LINK_TO_OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], np.float64)
TF_LAG_NS = 2_000_000  # a transform is recorded this long after its image (a robot's TF comes after the camera)


def robot_topics(camera: str, ns: str = "/robot", compressed: bool = False) -> dict[str, str]:
    """{"image", "info", "depth"} topics of `camera` in a robot-style bag."""
    base = f"{ns.rstrip('/')}/{camera}"
    return {"image": f"{base}/color/image_raw" + ("/compressed" if compressed else ""),
            "info": f"{base}/color/camera_info", "depth": f"{base}/aligned_depth_to_color/image_raw"}


def write_robot_bag(views: ViewSet, path: str | Path, world_frame: str = "odom", ns: str = "/robot",
                    compression: str | None = "png", storage: str = "mcap", depth_lag_ns: int = 0) -> Path:
    """Write `views` at directory `path` (must not exist) as the module docstring lays out. compression: "png",
    "jpeg" or None (raw rgb8). depth_lag_ns: each depth image stamped (and recorded) this much after its colour
    image, as a depth sensor stamps its own frames. Returns the bag directory."""
    from .bag import _bag_to_write, write_entries

    if compression not in (None, "png", "jpeg"):
        raise ValueError(f"compression must be None, 'png' or 'jpeg', got {compression!r}")
    path, v, images = _bag_to_write(path, views, "write_robot_bag")
    t = rosbags_types()
    stamps, cams = v.stamps_ns.tolist(), v.camera_ids.tolist()
    names = [v.camera_names[c] for c in sorted(set(cams))]
    far = 0.0 if v.depths is None else float(torch.nan_to_num(v.depths, posinf=0.0).max())
    depth_encoding = "16UC1" if far <= 65.5 else "32FC1"
    entries = [(min(stamps) - 1, "/tf_static", t.TFMessage(transforms=[
        transform_msg(LINK_TO_OPTICAL, min(stamps), f"{n}_link", f"{n}_color_optical_frame") for n in names]))]
    for i in range(len(v)):
        n, s = v.camera_names[cams[i]], stamps[i]
        topics, frame = robot_topics(n, ns, compression is not None), f"{n}_color_optical_frame"
        entries.append((s, topics["image"], image_msg(images[i], s, frame) if compression is None else
                        compressed_image_msg(images[i], s, frame, compression)))
        entries.append((s, topics["info"], camera_info_msg(v.Ks[i].numpy(), v.width, v.height, s, frame)))
        if v.depths is not None:
            d = s + int(depth_lag_ns)
            entries.append((d, topics["depth"], depth_msg(v.depths[i].numpy(), d, frame, depth_encoding)))
        link = v.camtoworlds[i].numpy() @ np.linalg.inv(LINK_TO_OPTICAL)
        entries.append((s + TF_LAG_NS, "/tf", t.TFMessage(transforms=[transform_msg(link, s, world_frame,
                                                                                    f"{n}_link")])))
    return write_entries(path, entries, storage)


def node_params(camera_names: list[str], ns: str = "/robot", compressed: bool = True, depth: bool = True,
                floor_z: float | None = None, world_frame: str = "odom") -> str:
    """The reconstruct node's parameter YAML for a bag write_robot_bag wrote (its topics, TF poses in world_frame;
    floor_z: the scene's floor height there, None = let the node find it): `--params-file` it and play the bag."""
    lines = ["# the reconstruct node's parameters for a bag `lrm4d make-bag --robot` wrote (io/robot_bag.py)",
             "/**:", "  ros__parameters:", f'    world_frame: "{world_frame}"', '    pose_source: "tf"',
             f"    camera_names: {list(camera_names)!r}".replace("'", '"'), "    cameras:"]
    for n in camera_names:
        t = robot_topics(n, ns, compressed)
        lines += [f"      {n}:", f'        image_topic: "{t["image"].removesuffix("/compressed")}"',
                  f'        info_topic: "{t["info"]}"'] + ([f'        depth_topic: "{t["depth"]}"'] if depth else [])
    lines += [f'    image_transport: "{"compressed" if compressed else "raw"}"',
              f"    floor_known: {'true' if floor_z is not None else 'false'}",
              f"    floor_z: {0.0 if floor_z is None else float(floor_z):.6f}", '    render_service: "/render_view"']
    return "\n".join(lines) + "\n"
