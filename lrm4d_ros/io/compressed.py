"""sensor_msgs/CompressedImage as ROS 2's image_transport plugins write it: colour images from
`compressed_image_transport` (JPEG, PNG) and depth images from `compressed_depth_image_transport` (PNG, RVL), for
bags and topics recorded compressed, which is how most robots record cameras.

Formats (image_transport_plugins, rolling):
- colour: `format` = "<encoding>; jpeg compressed bgr8" (or "png compressed bgr8", "... mono8" for grey), or a bare
  "jpeg" / "png" from other publishers; `data` is the file. OpenCV decodes it to BGR (grey replicated, alpha
  and 16 bits dropped to 8).
- depth: `format` = "<encoding>; compressedDepth png" (or "compressedDepth rvl"; older publishers wrote
  "<encoding>; compressedDepth"); `data` = a 12-byte ConfigHeader (int32 format, float32 depthParam[2],
  little-endian) then the image. 16UC1 stores millimetres as they are. 32FC1 stores a 16-bit inverse depth,
  v = ⌊A/d + B⌋ with A = q(q + 1), B = 1 − A/depth_max (q the depth_quantization parameter, default 100, depth_max
  10 m), 0 = none; it decodes as d = A / (v − B). RVL (Wilson 2017) is 8 bytes of width and height (uint32) then
  run lengths and zig-zag deltas in 4-bit variable-length codes, packed eight to a little-endian int32 word from its
  high nibble down.
Decoders return what messages.py's do for raw Images: (H,W,3) uint8 RGB; (H,W) float32 metres, 0 = none. Bad
messages raise MessageError. No learned parameters; cv2 (already a dependency) does JPEG and PNG.
"""
from __future__ import annotations

import struct

import cv2
import numpy as np
from numba import njit

from .messages import MessageError, MessageTypes, UnsupportedEncoding, _types, header_msg, to_uint8

COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
COLOR_CODECS = ("png", "jpeg")
DEPTH_CODECS = ("png", "rvl")
HEADER = struct.Struct("<iff")  # compressed_depth_image_transport's ConfigHeader: format (INV_DEPTH = 0), A, B
DEPTH_MAX, DEPTH_QUANTIZATION = 10.0, 100.0  # compressed_depth_image_transport's parameter defaults (m, -)


def _payload(msg) -> np.ndarray:
    data = np.frombuffer(bytes(msg.data), np.uint8) if not isinstance(msg.data, np.ndarray) else \
        np.ascontiguousarray(msg.data, dtype=np.uint8).reshape(-1)
    if data.size == 0:
        raise MessageError(f"compressed image ({msg.format!r}) has no data")
    return data


def compressed_rgb(msg) -> np.ndarray:
    """(H,W,3) uint8 RGB of a colour CompressedImage (JPEG, PNG, or anything else OpenCV reads)."""
    if "compresseddepth" in msg.format.lower():
        raise UnsupportedEncoding(f"format {msg.format!r} is a compressed depth image, not a colour one")
    bgr = cv2.imdecode(_payload(msg), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MessageError(f"cannot decode the compressed image (format {msg.format!r}, {len(msg.data)} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # numpy's reversed-stride copy took 2.4 of a 720p JPEG's 10 ms


def compressed_image_msg(rgb, stamp: int, frame_id: str, codec: str = "png", quality: int = 95,
                         types: MessageTypes | None = None):
    """CompressedImage of an (H,W,3) RGB array (uint8, or float in [0,1]) as compressed_image_transport publishes
    an rgb8 image: format "rgb8; <codec> compressed bgr8". PNG is lossless; JPEG at `quality` (0-100)."""
    a = to_uint8(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise MessageError(f"expected an (H,W,3) RGB array, got shape {a.shape}")
    if codec not in COLOR_CODECS:
        raise MessageError(f"unsupported codec {codec!r}; supported: {list(COLOR_CODECS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(".jpg" if codec == "jpeg" else ".png", np.ascontiguousarray(a[..., ::-1]), params)
    if not ok:
        raise MessageError(f"OpenCV could not encode a {a.shape[1]}x{a.shape[0]} image as {codec}")
    t = _types(types)
    return t.CompressedImage(header=header_msg(stamp, frame_id, t), format=f"rgb8; {codec} compressed bgr8",
                             data=t.byte_array(buf.reshape(-1)))


def _depth_format(fmt: str) -> tuple[str, str]:
    """(encoding, codec) of a compressed depth image's format string."""
    encoding, sep, rest = fmt.partition(";")
    encoding, rest = encoding.strip(), rest.strip()
    if encoding not in ("16UC1", "32FC1"):
        raise MessageError(f"compressed depth format {fmt!r}: encoding {encoding!r} is not 16UC1 or 32FC1")
    if not sep or rest == "compressedDepth":  # older compressed_depth_image_transport: PNG only
        return encoding, "png"
    for codec in DEPTH_CODECS:
        if rest == f"compressedDepth {codec}":
            return encoding, codec
    raise MessageError(f"unsupported compressed depth format {fmt!r}; supported: '<16UC1|32FC1>; compressedDepth "
                       f"<png|rvl>'")


def compressed_depth(msg) -> np.ndarray:
    """(H,W) float32 z-depth in metres of a compressedDepth CompressedImage; 0 where there is no measurement."""
    encoding, codec = _depth_format(msg.format)
    data = _payload(msg)
    if data.size <= HEADER.size:
        raise MessageError(f"compressed depth image ({msg.format!r}) has {data.size} bytes: no room for its "
                           f"{HEADER.size}-byte header and an image")
    _, A, B = HEADER.unpack(data[:HEADER.size].tobytes())
    body = data[HEADER.size:]
    if codec == "png":
        v = cv2.imdecode(body, cv2.IMREAD_UNCHANGED)
        if v is None or v.dtype != np.uint16 or v.ndim != 2:
            raise MessageError(f"compressed depth image ({msg.format!r}): the PNG does not decode to one 16-bit "
                               "channel")
    else:
        v = rvl_decode(body)
    if encoding == "16UC1":
        d = (v.astype(np.float64) / 1000.0).astype(np.float32)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (np.float32(A) / (v.astype(np.float32) - np.float32(B))).astype(np.float32)
        d[v == 0] = 0.0
    return np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0)).astype(np.float32)


def compressed_depth_msg(depth_m, stamp: int, frame_id: str, encoding: str = "16UC1", codec: str = "png",
                         depth_max: float = DEPTH_MAX, quantization: float = DEPTH_QUANTIZATION,
                         types: MessageTypes | None = None):
    """compressedDepth CompressedImage of an (H,W) z-depth in metres (0 or non-finite: none), as
    compressed_depth_image_transport writes it: 16UC1 rounded millimetres (depths beyond depth_max dropped, as it
    does), or 32FC1 as quantised inverse depth (module docstring)."""
    d = np.asarray(depth_m, dtype=np.float32)
    if d.ndim != 2:
        raise MessageError(f"expected an (H,W) depth array, got shape {d.shape}")
    if codec not in DEPTH_CODECS:
        raise MessageError(f"unsupported codec {codec!r}; supported: {list(DEPTH_CODECS)}")
    valid = np.isfinite(d) & (d > 0) & (d < depth_max)
    A = B = 0.0
    if encoding == "16UC1":
        v = np.where(valid, np.rint(np.where(valid, d, 0).astype(np.float64) * 1000.0), 0).astype(np.uint16)
    elif encoding == "32FC1":
        A = np.float32(quantization * (quantization + 1.0))
        B = np.float32(1.0 - A / np.float32(depth_max))
        with np.errstate(divide="ignore"):
            inv = A / np.where(valid, d, np.float32(1.0)) + B  # float32, truncated to uint16 as C++ converts
        v = np.where(valid, np.clip(inv, 0, 65535), 0).astype(np.uint16)
    else:
        raise MessageError(f"unsupported depth encoding {encoding!r}; supported: ['16UC1', '32FC1']")
    if codec == "png":
        ok, buf = cv2.imencode(".png", v, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise MessageError("OpenCV could not encode the depth image as PNG")
        body = buf.reshape(-1)
    else:
        body = rvl_encode(v)
    t = _types(types)
    data = np.concatenate([np.frombuffer(HEADER.pack(0, float(A), float(B)), np.uint8), body])
    return t.CompressedImage(header=header_msg(stamp, frame_id, t), format=f"{encoding}; compressedDepth {codec}",
                             data=t.byte_array(data))


# -- RVL ---------------------------------------------------------------------------------------------------
@njit(cache=True)
def _vle(words: np.ndarray, w: int, nib: int, word: int) -> tuple:
    """One variable-length value from the nibble stream at (word index w, nibbles left nib in `word`, whose next
    nibble sits in bits 28-31): (value, w, nib, word); value −1 where the stream ends or a code runs too long."""
    value, shift = 0, 0
    while True:
        if nib == 0:
            if w >= words.size:
                return -1, w, nib, word
            word, nib = int(words[w]), 8
            w += 1
        x = (word >> 28) & 15
        word = (word << 4) & 0xFFFFFFFF
        nib -= 1
        value |= (x & 7) << shift
        shift += 3
        if not x & 8:
            return value, w, nib, word
        if shift > 30:  # 10 nibbles hold any value a 32-bit codec writes
            return -1, w, nib, word


@njit(cache=True)
def _rvl_decode(words: np.ndarray, out: np.ndarray) -> bool:
    """Decode RVL code words (uint32) into out (N,) uint16: runs of zeros, then runs of non-zero values as zig-zag
    deltas from the previous one. False where the stream ends early or a run overruns out."""
    n, i, prev = out.size, 0, 0
    w, nib, word = 0, 0, 0
    while i < n:
        zeros, w, nib, word = _vle(words, w, nib, word)
        if zeros < 0 or i + zeros > n:
            return False
        out[i:i + zeros] = 0
        i += zeros
        count, w, nib, word = _vle(words, w, nib, word)
        if count < 0 or i + count > n:
            return False
        for _ in range(count):
            z, w, nib, word = _vle(words, w, nib, word)
            if z < 0:
                return False
            prev = (prev + ((z >> 1) ^ -(z & 1))) & 0xFFFF
            out[i] = prev
            i += 1
    return True


def rvl_decode(body: np.ndarray) -> np.ndarray:
    """(H,W) uint16 of an RVL stream: uint32 width, uint32 height, then the code words."""
    if body.size < 8:
        raise MessageError(f"RVL depth image of {body.size} bytes: no room for its size")
    W, H = struct.unpack("<II", body[:8].tobytes())
    # the codec's own sanity bound: RVL compresses at best 4:1, so a stream 10x smaller than its image is corrupt
    if W == 0 or H == 0 or W * H > 5 * body.size:
        raise MessageError(f"RVL depth image reports {W}x{H} pixels from {body.size} bytes: corrupt")
    raw = body[8:]
    words = np.zeros((raw.size + 3) // 4, np.uint32)
    words.view(np.uint8)[:raw.size] = raw
    out = np.empty(W * H, np.uint16)
    if not _rvl_decode(words, out):
        raise MessageError(f"RVL depth image of {W}x{H}: the stream ends before its pixels do")
    return out.reshape(H, W)


def rvl_encode(v: np.ndarray) -> np.ndarray:
    """RVL stream (uint8 bytes, with the width and height in front) of an (H,W) uint16 image: the encoder of
    compressed_depth_image_transport, for writing bags and for tests. Python loops: small images only."""
    nibbles: list[int] = []

    def vle(value: int) -> None:
        while True:
            x = value & 7
            value >>= 3
            nibbles.append(x | (8 if value else 0))
            if not value:
                return

    flat, i, prev = v.reshape(-1).astype(np.int64).tolist(), 0, 0
    while i < len(flat):
        j = i
        while j < len(flat) and flat[j] == 0:
            j += 1
        vle(j - i)
        k = j
        while k < len(flat) and flat[k] != 0:
            k += 1
        vle(k - j)
        for x in flat[j:k]:
            delta = x - prev
            vle((delta << 1) ^ (delta >> 31))  # zig-zag: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ...
            prev = x
        i = k
    nibbles += [0] * (-len(nibbles) % 8)
    words = [sum(n << (28 - 4 * s) for s, n in enumerate(nibbles[w:w + 8])) for w in range(0, len(nibbles), 8)]
    H, W = v.shape
    return np.concatenate([np.frombuffer(struct.pack("<II", W, H), np.uint8),
                           np.asarray(words, dtype="<u4").view(np.uint8)])
