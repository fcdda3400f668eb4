"""Publish a ViewSet on the bag-contract topics (DESIGN.md §4): /<cam>/image_raw, /<cam>/camera_info, /<cam>/pose.

Used to feed the reconstruct node from generated scenes (tests, benchmarks, demos without a bag).
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ..views import ViewSet
from .conversions import K_to_camera_info, matrix_to_pose, ns_to_stamp, numpy_to_image


class ViewSetPublisher:
    """Publishers of one ViewSet's cameras on `node`; `publish(i)` sends view i's camera_info, pose and image."""

    def __init__(self, node: Node, views: ViewSet, world_frame: str = "world", qos_depth: int = 10):
        self.node, self.views, self.world_frame = node, views, world_frame
        self.pubs = {name: (node.create_publisher(CameraInfo, f"/{name}/camera_info", qos_depth),
                            node.create_publisher(PoseStamped, f"/{name}/pose", qos_depth),
                            node.create_publisher(Image, f"/{name}/image_raw", qos_depth))
                     for name in views.camera_names}

    def messages(self, i: int) -> tuple[CameraInfo, PoseStamped, Image]:
        """View i as (CameraInfo, PoseStamped, rgb8 Image), all stamped with its capture time."""
        v = self.views
        name = v.camera_names[int(v.camera_ids[i])]
        stamp = ns_to_stamp(int(v.stamps_ns[i]))
        frame = f"{name}_optical_frame"
        info = K_to_camera_info(v.Ks[i].numpy(), v.width, v.height, stamp, frame)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.world_frame
        pose.pose = matrix_to_pose(v.camtoworlds[i].numpy())
        image = numpy_to_image(np.asarray(v.images[i].numpy(), np.float32), "rgb8", stamp, frame)
        return info, pose, image

    def publish(self, i: int) -> None:
        name = self.views.camera_names[int(self.views.camera_ids[i])]
        for pub, msg in zip(self.pubs[name], self.messages(i)):
            pub.publish(msg)
