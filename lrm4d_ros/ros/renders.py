"""What the node renders, as messages: a `render_view` request answered from a reconstruction, and a virtual
camera's image, depth and camera_info. The node (reconstruct_node.py) decides when, on its render threads."""
from __future__ import annotations

import numpy as np
import torch

from ..io.messages import (camera_info_K, camera_info_msg, depth_msg, float_image_msg, image_msg, pose_matrix, time_msg,
                           time_ns)
from .conversions import RCLPY


def requested_camera(req, max_pixels: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A RenderView request's camera: camtoworld (4,4) metres, K (3,3), width, height (its camera_info where that
    has a width, else its fx fy cx cy and size). ValueError saying what is wrong with it."""
    T = pose_matrix(req.camera_pose)
    if req.camera_info.width > 0:
        K, w, h = camera_info_K(req.camera_info)
    else:
        w, h = int(req.width), int(req.height)
        K = np.array([[req.fx, 0, req.cx], [0, req.fy, req.cy], [0, 0, 1.0]])
        if w < 1 or h < 1 or not np.isfinite(K).all() or req.fx <= 0 or req.fy <= 0:
            raise ValueError(f"intrinsics need width, height >= 1 and finite fx, fy > 0 "
                             f"(got {w}x{h}, fx {req.fx}, fy {req.fy}, cx {req.cx}, cy {req.cy})")
    if w * h > max_pixels:
        raise ValueError(f"{w}x{h} exceeds max_render_pixels {max_pixels}")
    return T, K, w, h


def answer_render_view(rec, req, resp, max_pixels: int, default_frame: str):
    """Fill RenderView response `resp` for request `req` from Reconstruction `rec` (at the request's stamp, or its
    window's newest): colour (also where nothing is asked for), depth and alpha as asked, with their camera_info.
    ValueError for a request it cannot serve (bad camera, too many pixels, a time outside the window)."""
    T, K, w, h = requested_camera(req, max_pixels)
    stamp = time_ns(req.stamp) or rec.window.end_ns
    out = rec.render(torch.as_tensor(T)[None], torch.as_tensor(K)[None], w, h, torch.tensor([stamp], dtype=torch.int64),
                     max_pixels=max_pixels)  # (a short focal length would otherwise be drawn up to 16x the pixels)
    frame = req.frame_id or default_frame
    if req.return_color or not (req.return_depth or req.return_alpha):
        resp.color = image_msg(out.colors[0].cpu().numpy(), stamp, frame, types=RCLPY)
    if req.return_depth:
        resp.depth = depth_msg(out.depths[0, ..., 0].cpu().numpy(), stamp, frame, types=RCLPY)  # NaN: none
    if req.return_alpha:
        resp.alpha = float_image_msg(out.alphas[0, ..., 0].cpu().numpy(), stamp, frame, RCLPY)
    resp.camera_info = camera_info_msg(K, w, h, stamp, frame, RCLPY)
    resp.success, resp.message, resp.stamp_rendered = True, "", time_msg(stamp, RCLPY)
    return resp


def virtual_camera_messages(rec, vc, max_pixels: int | None = None) -> tuple:
    """(rgb8 Image, 32FC1 depth Image, CameraInfo) of virtual camera `vc` (params.VirtualCamera) rendered from
    Reconstruction `rec` at its window's newest stamp + vc.time_offset_s, in frame <name>_optical_frame, drawn with
    at most max_pixels pixels (Reconstruction.render)."""
    stamp = rec.window.end_ns + int(round(vc.time_offset_s * 1e9))
    out = rec.render(torch.as_tensor(vc.camtoworld)[None], torch.as_tensor(vc.K)[None], vc.width, vc.height,
                     torch.tensor([stamp], dtype=torch.int64), max_pixels=max_pixels)
    frame = f"{vc.name}_optical_frame"
    return (image_msg(out.colors[0].cpu().numpy(), stamp, frame, types=RCLPY),
            depth_msg(out.depths[0, ..., 0].cpu().numpy(), stamp, frame, types=RCLPY),
            camera_info_msg(vc.K, vc.width, vc.height, stamp, frame, RCLPY))
