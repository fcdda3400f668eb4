"""rclpy's message classes for the package's one conversion layer (lrm4d_ros.io.messages).

Every decode and encode lives in io/messages.py; the node passes `types=RCLPY` to build rclpy messages instead of
rosbags' ones. tf2_msgs is not on PyPI: RCLPY.TFMessage is None where neither a ROS install nor this repository's
vendor/tf2_msgs (scripts/build_ros.sh) provides it.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Transform, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header

from ..io.messages import MessageTypes

try:
    from tf2_msgs.msg import TFMessage
except ImportError:  # pragma: no cover - depends on the environment (a ROS install has it; PyPI has no wheel)
    TFMessage = None

# rclpy stores uint8[] as array('B'); from bytes that is one copy, from a numpy array an element-wise check.
RCLPY = MessageTypes(Time=Time, Header=Header, Image=Image, CompressedImage=CompressedImage,
                     CameraInfo=CameraInfo, RegionOfInterest=RegionOfInterest, PoseStamped=PoseStamped, Pose=Pose,
                     Point=Point, Quaternion=Quaternion, PointCloud2=PointCloud2, PointField=PointField,
                     TransformStamped=TransformStamped, Transform=Transform, Vector3=Vector3, TFMessage=TFMessage,
                     byte_array=lambda a: np.ascontiguousarray(a, dtype=np.uint8).tobytes())
