"""Videos, GIFs and labelled contact sheets of rendered views (uint8 RGB on disk).

Frames come in as (N,H,W,3) float RGB in [0,1] (torch or numpy) or uint8. MP4 is H.264 through the ffmpeg binary
that imageio-ffmpeg ships; where no ffmpeg can be found the same frames are written as an animated GIF.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import imageio.v3 as iio
import numpy as np
import torch

LABEL_HEIGHT = 14  # px band above each contact-sheet row holding its label
GAP = 2  # px between tiles and around the sheet
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_uint8(images) -> np.ndarray:
    """(…,H,W,3) float in [0,1] (torch/numpy) or uint8 -> uint8 numpy array of the same shape."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.shape[-1:] != (3,):
        raise ValueError(f"expected RGB images (...,H,W,3), got shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    return (np.clip(images.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        return Path(imageio_ffmpeg.get_ffmpeg_exe()).exists()
    except (ImportError, RuntimeError):
        return False


def write_video(path, frames, fps: float = 12.0) -> Path:
    """Write frames (N,H,W,3) as an MP4 (H.264, yuv420p) or, without ffmpeg, as a GIF beside it.

    H.264 in yuv420p needs even sizes, so odd heights/widths are padded by one edge-replicated row/column.
    Returns the path actually written (suffix .mp4 or .gif); OSError where it could not be written.
    """
    frames = to_uint8(frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"write_video needs (N,H,W,3) frames with N >= 1, got shape {frames.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if ffmpeg_available():
        path = path.with_suffix(".mp4")
        pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
        if pad_h or pad_w:
            frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        if path.is_file():  # (so that a failed write below cannot leave an earlier video looking new)
            path.unlink()
        # macro_block_size=1: imageio would otherwise rescale every frame to a multiple of 16.
        iio.imwrite(path, frames, extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                    pixelformat="yuv420p", macro_block_size=1, quality=8)
        # imageio's ffmpeg plugin prints ffmpeg's failure to open or write its output (a folder in the way, a full
        # disk) and returns as if it had written it
        if not path.is_file() or path.stat().st_size == 0:
            raise OSError(f"ffmpeg did not write the video {path} (see its message above)")
    else:
        path = path.with_suffix(".gif")
        iio.imwrite(path, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def contact_sheet(rows: Sequence[tuple[str, object]], tile_labels: Sequence[Sequence[str]] | None = None,
                  ) -> np.ndarray:
    """Labelled grid: one row per (label, images (n,H,W,3)); all tiles share H×W, rows may differ in length.

    Size: height = GAP + Σ_rows (LABEL_HEIGHT + H + GAP), width = GAP + max_n · (W + GAP). Optional
    `tile_labels[r][i]` are drawn in the bottom-left corner of tile i of row r (e.g. the PSNR of a prediction).
    Returns (height, width, 3) uint8 on a white background.
    """
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    tiles = [to_uint8(images) for _, images in rows]
    H, W = tiles[0].shape[1:3]
    if any(t.ndim != 4 or t.shape[1:3] != (H, W) for t in tiles):
        raise ValueError(f"contact_sheet rows must all be (n,{H},{W},3); got {[t.shape for t in tiles]}")
    ncols = max(len(t) for t in tiles)
    sheet = np.full((GAP + len(rows) * (LABEL_HEIGHT + H + GAP), GAP + ncols * (W + GAP), 3), 255, np.uint8)
    y = GAP
    for r, ((label, _), row) in enumerate(zip(rows, tiles)):
        cv2.putText(sheet, label, (GAP + 1, y + LABEL_HEIGHT - 4), _FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        y += LABEL_HEIGHT
        for i, tile in enumerate(row):
            x = GAP + i * (W + GAP)
            sheet[y:y + H, x:x + W] = tile
            if tile_labels is not None and i < len(tile_labels[r]) and tile_labels[r][i]:
                _draw_tag(sheet, tile_labels[r][i], x, y + H)
        y += H + GAP
    return sheet


def _draw_tag(img: np.ndarray, text: str, x: int, bottom: int) -> None:
    """Small white-on-black tag at the bottom-left corner of a tile (readable on any content)."""
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.3, 1)
    cv2.rectangle(img, (x, bottom - th - base - 2), (x + tw + 2, bottom - 1), (0, 0, 0), -1)
    cv2.putText(img, text, (x + 1, bottom - base - 1), _FONT, 0.3, (255, 255, 255), 1, cv2.LINE_AA)


def write_png(path, image) -> Path:
    """(H,W,3) float [0,1] or uint8 -> PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, to_uint8(image), extension=".png")
    return path
