"""lrm4d_ros: 4D-LRM (feed-forward space-time Gaussian reconstruction) for ROS 2.

Everything in this package except `lrm4d_ros.ros` is plain Python + PyTorch and imports no ROS module.
"""
__version__ = "0.1.0"
