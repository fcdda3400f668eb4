"""Compressed images as image_transport's plugins write them (io/compressed.py): colour JPEG / PNG, depth PNG / RVL
with compressed_depth_image_transport's header and quantisation, and bags recorded that way read like raw ones."""
import struct

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.io.bag import BagError, read_bag, write_bag
from lrm4d_ros.io.compressed import (compressed_depth, compressed_depth_msg, compressed_image_msg, compressed_rgb,
                                     rvl_decode, rvl_encode)
from lrm4d_ros.io.messages import CompressedImage, MessageError, camera_info_msg, header_msg, pose_msg

STAMP = 1_700_000_000_123_456_789


def _msg(fmt: str, data: bytes):
    return CompressedImage(header=header_msg(STAMP, "cam0_optical_frame"), format=fmt,
                           data=np.frombuffer(data, np.uint8).copy())


def _smooth_rgb(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.clip(np.stack([0.2 + 0.6 * x, 0.8 - 0.5 * y, 0.5 + 0.3 * np.sin(6 * x * y)], -1) * 255, 0,
                   255).round().astype(np.uint8)


def test_colour_png_is_exact_and_jpeg_close():
    rgb = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)
    msg = compressed_image_msg(rgb, STAMP, "f", "png")
    assert msg.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(compressed_rgb(msg), rgb)
    smooth = _smooth_rgb()
    msg = compressed_image_msg(smooth, STAMP, "f", "jpeg", quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8" and len(msg.data) < smooth.nbytes / 4
    err = compressed_rgb(msg).astype(np.float64) - smooth
    assert 10 * np.log10(255.0 ** 2 / np.mean(err ** 2)) > 38.0
    # channel order: a pure red image stays red
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    assert (compressed_rgb(compressed_image_msg(red, STAMP, "f", "jpeg"))[..., 0] > 240).all()


@pytest.mark.parametrize("fmt", ["bgr8; png compressed bgr8", "rgb8; png compressed bgr8", "png", "jpeg"])
def test_formats_other_publishers_write(fmt):
    """The payload is an OpenCV file of BGR pixels whatever the original encoding; bare formats too."""
    rgb = _smooth_rgb(16, 20)
    ok, buf = cv2.imencode(".png", rgb[..., ::-1].copy())
    np.testing.assert_array_equal(compressed_rgb(_msg(fmt, buf.tobytes())), rgb)


def test_grey_and_broken_colour_images():
    grey = (np.arange(12 * 10) % 256).astype(np.uint8).reshape(12, 10)
    ok, buf = cv2.imencode(".png", grey)
    out = compressed_rgb(_msg("mono8; png compressed mono8", buf.tobytes()))
    assert out.shape == (12, 10, 3) and all((out[..., c] == grey).all() for c in range(3))
    with pytest.raises(MessageError, match="cannot decode"):
        compressed_rgb(_msg("rgb8; jpeg compressed bgr8", b"\xff\xd8 not a jpeg"))
    with pytest.raises(MessageError, match="no data"):
        compressed_rgb(_msg("jpeg", b""))
    with pytest.raises(MessageError, match="compressed depth image, not a colour one"):
        compressed_rgb(_msg("16UC1; compressedDepth png", buf.tobytes()))


def _depth_msg(fmt, A, B, v: np.ndarray):
    ok, buf = cv2.imencode(".png", v.astype(np.uint16))
    return _msg(fmt, struct.pack("<iff", 0, A, B) + buf.tobytes())


def test_compressed_depth_decodes_as_compressed_depth_image_transport():
    """A message built by hand as the plugin writes it: 12-byte header (format, A, B), then a 16-bit PNG."""
    v = np.array([[0, 1, 1010, 9091], [20000, 65535, 0, 5000]], np.uint16)
    A = np.float32(100.0 * 101.0)
    B = np.float32(1.0 - A / np.float32(10.0))
    d = compressed_depth(_depth_msg("32FC1; compressedDepth png", float(A), float(B), v))
    expect = np.where(v > 0, A / (v.astype(np.float32) - B), 0).astype(np.float32)
    np.testing.assert_array_equal(d, expect)
    # v = 1 is depth_max (10 m), 9091 is 1 m, 0 is none
    assert abs(d[0, 1] - 10.0) < 1e-3 and abs(d[0, 3] - 1.0) < 1e-3 and d[0, 0] == 0 and d[1, 2] == 0
    mm = compressed_depth(_depth_msg("16UC1; compressedDepth", 0.0, 0.0, v))  # older format string: PNG
    np.testing.assert_array_equal(mm, np.where(v > 0, (v / 1000.0).astype(np.float32), 0))
    with pytest.raises(MessageError, match="unsupported compressed depth format"):
        compressed_depth(_depth_msg("16UC1; compressedDepth zstd", 0.0, 0.0, v))
    with pytest.raises(MessageError, match="not 16UC1 or 32FC1"):
        compressed_depth(_depth_msg("mono8; compressedDepth png", 0.0, 0.0, v))
    with pytest.raises(MessageError, match="header"):
        compressed_depth(_msg("16UC1; compressedDepth png", b"\x00" * 12))
    with pytest.raises(MessageError, match="16-bit"):
        ok, buf = cv2.imencode(".png", v.astype(np.uint8))
        compressed_depth(_msg("16UC1; compressedDepth png", struct.pack("<iff", 0, 0, 0) + buf.tobytes()))


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_depth_round_trips_within_the_quantisation(codec):
    rng = np.random.default_rng(1)
    d = rng.uniform(0.2, 12.0, (30, 40)).astype(np.float32)
    d[::5] = 0
    d[2, 3], d[4, 4] = np.nan, np.inf
    measured = np.isfinite(d) & (d > 0) & (d < 10.0)  # the plugin's depth_max (10 m) drops the rest
    mm = compressed_depth(compressed_depth_msg(d, STAMP, "f", "16UC1", codec))
    np.testing.assert_array_equal(mm[measured], (np.rint(d[measured].astype(np.float64) * 1000.0) / 1000.0)
                                  .astype(np.float32))  # millimetres, rounded
    assert (mm[~measured] == 0).all()
    inv = compressed_depth(compressed_depth_msg(d, STAMP, "f", "32FC1", codec))
    A = 100.0 * 101.0
    err = inv[measured].astype(np.float64) - d[measured]
    # v = floor(A/d + B) rounds the inverse depth down: the depth comes back at most one step (d²/A) farther
    assert (err >= -1e-5 * d[measured]).all() and (err <= d[measured] ** 2 / A * 1.01 + 1e-5).all()
    assert (inv[~measured] == 0).all()


# [0, 0, 5, 6, 0]: runs (2 zeros, 2 values, 1 zero, 0 values), values as zig-zag deltas 10 = 0b1010 (two nibbles:
# 010 + continuation, then 1) and 2: nibbles 2 2 A 1 2 1 0, one nibble of padding, one word 0x22A12100.
# [7, 3]: 0 zeros, 2 values: 14 = 0b1110 (E, 1) and delta −4 -> 7: nibbles 0 2 E 1 7 -> word 0x02E17000.
RVL_CASES = [(np.array([[0, 0, 5, 6, 0]], np.uint16), "05000000" "01000000" "0021a122"),
             (np.array([[7], [3]], np.uint16), "01000000" "02000000" "0070e102")]


@pytest.mark.parametrize("image, stream", RVL_CASES)
def test_rvl_stream_by_hand(image, stream):
    np.testing.assert_array_equal(rvl_decode(np.frombuffer(bytes.fromhex(stream), np.uint8)), image)
    assert rvl_encode(image).tobytes().hex() == stream


def test_rvl_round_trip_and_corrupt_streams():
    rng = np.random.default_rng(2)
    v = (rng.integers(1, 65535, (40, 50)) * (rng.random((40, 50)) > 0.4)).astype(np.uint16)
    v[5] = 0
    np.testing.assert_array_equal(rvl_decode(rvl_encode(v)), v)
    stream = rvl_encode(v)
    with pytest.raises(MessageError, match="ends before"):
        rvl_decode(stream[:len(stream) // 2])
    with pytest.raises(MessageError, match="corrupt"):
        rvl_decode(np.frombuffer(struct.pack("<II", 4000, 4000) + b"\x00" * 16, np.uint8))


def _scene():
    views = generate(4, SceneConfig(frames=2, cameras=2, height=24, width=32, num_primitives=(2, 3)))
    return with_depth(views, "sensor", seed=4)


@pytest.mark.parametrize("depth_encoding", ["16UC1", "32FC1"])
def test_bags_recorded_compressed_read_like_raw_ones(tmp_path, depth_encoding):
    views = _scene()
    raw = read_bag(write_bag(views, tmp_path / "raw", depth_encoding=depth_encoding))
    png_bag = write_bag(views, tmp_path / "png", depth_encoding=depth_encoding, compression="png")
    with Reader(png_bag) as r:
        types = {c.topic: c.msgtype for c in r.connections}
    assert types["/cam0/image_raw/compressed"] == types["/cam0/depth/compressedDepth"] == \
        "sensor_msgs/msg/CompressedImage" and "/cam0/image_raw" not in types
    png = read_bag(png_bag)
    assert png.camera_names == raw.camera_names and (png.stamps_ns == raw.stamps_ns).all()
    assert (png.images == raw.images).all()  # PNG: lossless
    measured = raw.depths > 0
    assert ((png.depths > 0) == measured).all()
    step = raw.depths ** 2 / (100.0 * 101.0) * 1.01 if depth_encoding == "32FC1" else 0.0  # 16UC1: exact
    assert ((png.depths - raw.depths).abs() <= step + 1e-6).all()
    jpeg = read_bag(write_bag(views, tmp_path / "jpeg", depth_encoding=depth_encoding, compression="jpeg"))
    mse = float(((jpeg.images - raw.images) ** 2).mean())
    assert 10 * np.log10(1.0 / mse) > 25.0  # 29 dB: JPEG at quality 95 on 24x32 textured frames (4:2:0 chroma)


def test_compressed_image_of_another_size_than_its_camera_info(tmp_path):
    from test_bag import _write

    K = np.array([[5.0, 0, 1.5], [0, 5.0, 1.0], [0, 0, 1]])
    entries = [("/cam0/image_raw/compressed", compressed_image_msg(np.zeros((3, 4, 3), np.uint8), STAMP, "f")),
               ("/cam0/camera_info", camera_info_msg(K, 5, 3, STAMP, "f")), ("/cam0/pose", pose_msg(np.eye(4), STAMP))]
    with pytest.raises(BagError, match=f"/cam0/image_raw/compressed at stamp {STAMP} ns: image decodes to 4x3 but "
                                       "/cam0/camera_info says 5x3"):
        read_bag(_write(tmp_path / "bad", entries))
    entries[0] = ("/cam0/image_raw/compressed", _msg("jpeg", b"broken"))
    entries[1] = ("/cam0/camera_info", camera_info_msg(K, 4, 3, STAMP, "f"))
    with pytest.raises(BagError, match=f"/cam0/image_raw/compressed at stamp {STAMP} ns: cannot decode"):
        read_bag(_write(tmp_path / "broken", entries))


def test_make_bag_compression_flag(tmp_path, capsys):
    from lrm4d_ros.cli import main

    argv = ["make-bag", "--seed", "5", "--frames", "2", "--cameras", "2", "--resolution", "24", "--depth", "sensor",
            "--depth-encoding", "16UC1"]
    assert main(argv + ["--out", str(tmp_path / "raw")]) == 0
    assert main(argv + ["--out", str(tmp_path / "png"), "--compression", "png"]) == 0
    assert "(mcap, png)" in capsys.readouterr().out
    raw, png = read_bag(tmp_path / "raw" / "scene_5"), read_bag(tmp_path / "png" / "scene_5")
    assert (raw.images == png.images).all() and (raw.depths == png.depths).all()
