"""Publish a ViewSet on the bag-contract topics (docs/design.md §4): /<cam>/image_raw, /<cam>/camera_info, /<cam>/pose
and, where the views have depth, /<cam>/depth (32FC1); or compressed as image_transport's plugins publish them
(/<cam>/image_raw/compressed, /<cam>/depth/compressedDepth); optionally /clock at each view's stamp, as
`ros2 bag play --clock` does, for a node with use_sim_time.

Used to feed the reconstruct node from generated scenes (tests, benchmarks, demos without a bag).
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..io.compressed import compressed_depth_msg, compressed_image_msg
from ..io.messages import camera_info_msg, depth_msg, image_msg, pose_msg, time_msg
from ..views import ViewSet
from .conversions import RCLPY


class ViewSetPublisher:
    """Publishers of one ViewSet's cameras on `node`; `publish(i)` sends view i's camera_info, pose, depth (with
    depth=True, where the views have it) and image. clock: also publish /clock = the view's stamp first.
    compression "png" or "jpeg": images as CompressedImage on /<cam>/image_raw/compressed and depth as PNG
    compressedDepth (32FC1) on /<cam>/depth/compressedDepth."""

    def __init__(self, node: Node, views: ViewSet, world_frame: str = "world", qos_depth: int = 10,
                 clock: bool = False, depth: bool = False, compression: str | None = None):
        self.node, self.views, self.world_frame, self.compression = node, views, world_frame, compression
        image_type, image_suffix, depth_suffix = ((Image, "", "") if compression is None else
                                                  (CompressedImage, "/compressed", "/compressedDepth"))
        self.pubs = {name: (node.create_publisher(CameraInfo, f"/{name}/camera_info", qos_depth),
                            node.create_publisher(PoseStamped, f"/{name}/pose", qos_depth),
                            node.create_publisher(image_type, f"/{name}/image_raw{image_suffix}", qos_depth))
                     for name in views.camera_names}
        self.depth_pubs = ({} if views.depths is None or not depth else
                           {name: node.create_publisher(image_type, f"/{name}/depth{depth_suffix}", qos_depth)
                            for name in views.camera_names})
        self.clock_pub = node.create_publisher(Clock, "/clock", 10) if clock else None

    def messages(self, i: int, stamp_ns: int | None = None) -> tuple[CameraInfo, PoseStamped, Image]:
        """View i as (CameraInfo, PoseStamped, rgb8 Image or CompressedImage), stamped with its capture time (or
        `stamp_ns`)."""
        v = self.views
        name = v.camera_names[int(v.camera_ids[i])]
        stamp = int(v.stamps_ns[i]) if stamp_ns is None else int(stamp_ns)
        frame = f"{name}_optical_frame"
        rgb = np.asarray(v.images[i].numpy(), np.float32)
        return (camera_info_msg(v.Ks[i].numpy(), v.width, v.height, stamp, frame, RCLPY),
                pose_msg(v.camtoworlds[i].numpy(), stamp, self.world_frame, RCLPY),
                image_msg(rgb, stamp, frame, types=RCLPY) if self.compression is None else
                compressed_image_msg(rgb, stamp, frame, self.compression, types=RCLPY))

    def depth_message(self, i: int, stamp_ns: int | None = None) -> Image:
        """View i's depth as a 32FC1 Image (metres, 0 = none), or compressedDepth (32FC1, PNG)."""
        v = self.views
        stamp = int(v.stamps_ns[i]) if stamp_ns is None else int(stamp_ns)
        frame = f"{v.camera_names[int(v.camera_ids[i])]}_optical_frame"
        if self.compression is not None:
            return compressed_depth_msg(v.depths[i].numpy(), stamp, frame, "32FC1", types=RCLPY)
        return depth_msg(v.depths[i].numpy(), stamp, frame, types=RCLPY)

    def publish_clock(self, stamp_ns: int) -> None:
        self.clock_pub.publish(Clock(clock=time_msg(stamp_ns, RCLPY)))

    def publish(self, i: int, stamp_ns: int | None = None, depth: bool = True) -> None:
        name = self.views.camera_names[int(self.views.camera_ids[i])]
        stamp = int(self.views.stamps_ns[i]) if stamp_ns is None else int(stamp_ns)
        if self.clock_pub is not None:
            self.publish_clock(stamp)
        info, pose, image = self.messages(i, stamp)
        self.pubs[name][0].publish(info)
        self.pubs[name][1].publish(pose)
        if depth and self.depth_pubs:
            self.depth_pubs[name].publish(self.depth_message(i, stamp))
        self.pubs[name][2].publish(image)
