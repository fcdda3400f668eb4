"""Lens distortion out, as ROS's image_proc rectify node takes it out: the model assumes pinhole cameras.

A CameraInfo describes the raw image (K, D, R) and the rectified one (P): image_proc remaps the raw image onto P's
intrinsics with OpenCV's undistortion maps, and publishes the result as image_rect beside the same CameraInfo. So
a raw image whose CameraInfo has distortion (or whose P differs from K) is rectified here with those maps
(colour bilinear, depth nearest: a depth between two surfaces is neither), and an image already rectified is used
with P's intrinsics as it is. `rectified_topic` tells them apart by image_proc's topic names (and
`info_topic_for` names an image topic's camera_info). No learned parameters.
"""
from __future__ import annotations

import re

import cv2
import numpy as np

from .messages import MessageError, camera_info_K

MODELS = ("plumb_bob", "rational_polynomial", "equidistant")


def info_topic_for(image_topic: str) -> str:
    """image_transport's camera_info beside an image topic: /ns/image_raw[/compressed] -> /ns/camera_info."""
    base = re.sub(r"/(compressed|compressedDepth|theora|zstd)$", "", image_topic)
    return base.rsplit("/", 1)[0] + "/camera_info"


def rectified_topic(topic: str) -> bool:
    """True for image_proc's rectified outputs (image_rect, image_rect_color, …/image_rect/compressed)."""
    return any(part.startswith("image_rect") for part in topic.split("/"))


def info_key(info) -> tuple:
    """What of a CameraInfo a Rectification depends on: drivers publish one per frame, mostly unchanged."""
    return (int(info.width), int(info.height), str(info.distortion_model),
            *(tuple(np.asarray(getattr(info, f), np.float64).reshape(-1).tolist()) for f in ("k", "d", "r", "p")))


class Rectification:
    """How one camera's images reach the model: `K` (3,3) their pinhole intrinsics, `size` (width, height), and for
    raw distorted images the OpenCV maps that rectify them (`maps` None: used as they are)."""

    def __init__(self, info, rectified: bool = False, rectify: bool = True):
        """info: a CameraInfo (rosbags or rclpy); rectified: the images are image_proc's image_rect (P's
        intrinsics, no remap); rectify False: every image is taken as a pinhole with K, as it is (the node's
        `rectify: off`). MessageError for a CameraInfo that cannot describe a pinhole or a model OpenCV cannot
        undo."""
        K, w, h = camera_info_K(info)
        self.size = (w, h)
        self.maps = None
        if not rectify:
            self.K = K
            return
        D = np.asarray(info.d, np.float64).reshape(-1)
        R = np.asarray(info.r, np.float64).reshape(-1)
        R = np.eye(3) if R.size != 9 or not R.any() else R.reshape(3, 3)
        P = np.asarray(info.p, np.float64).reshape(-1)
        P = P.reshape(3, 4)[:, :3] if P.size == 12 and P[0] > 0 and P[5] > 0 else K
        if rectified:
            self.K = P.copy()
            return
        self.K = K
        if not (np.abs(D).max(initial=0.0) > 1e-12 or not np.allclose(R, np.eye(3)) or not np.allclose(P, K)):
            return
        model = info.distortion_model or "plumb_bob"
        if model not in MODELS:
            raise MessageError(f"distortion model {model!r} cannot be rectified here (supported: {list(MODELS)})")
        if model == "equidistant":
            self.maps = cv2.fisheye.initUndistortRectifyMap(K, D[:4], R, P, (w, h), cv2.CV_32FC1)
        else:
            self.maps = cv2.initUndistortRectifyMap(K, D, R, P, (w, h), cv2.CV_32FC1)
        self.K = P.copy()

    def colour(self, rgb: np.ndarray) -> np.ndarray:
        """(H,W,3) uint8 rectified (bilinear; outside the lens's view black)."""
        if self.maps is None:
            return rgb
        return cv2.remap(rgb, *self.maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def depth(self, depth: np.ndarray) -> np.ndarray:
        """(H,W) float32 metres rectified (nearest neighbour; outside the lens's view 0 = none)."""
        return depth if self.maps is None else cv2.remap(depth, *self.maps, cv2.INTER_NEAREST,
                                                         borderMode=cv2.BORDER_CONSTANT)
