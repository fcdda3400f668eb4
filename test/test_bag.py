"""Contract-bag IO: round trips, decoding of every encoding, and a clear BagError for each broken bag."""
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.generator import SceneConfig, generate
from lrm4d_ros.io.bag import BagError, read_bag, write_bag
from lrm4d_ros.io.messages import (TYPESTORE, Image, MessageError, camera_info_msg, depth_msg, deserialize,
                                   header_msg, image_depth, image_msg, image_rgb, matrix_to_quat, pose_msg,
                                   quat_to_matrix, serialize, stamp_ns)

CFG = SceneConfig(frames=3, cameras=3, height=24, width=32, num_primitives=(2, 3), rig_kinds=("moving",))
STAMP = 1_700_000_123_456_789_012


@pytest.mark.parametrize("storage, encoding", [("mcap", "rgb8"), ("sqlite3", "bgra8")])
def test_round_trip_is_exact(tmp_path, storage, encoding):
    views = generate(4, CFG)
    views.images = (views.images * 255).round() / 255  # 8-bit content survives bit-exactly
    back = read_bag(write_bag(views, tmp_path / "bag", storage=storage, encoding=encoding))
    order = sorted(range(len(views)), key=lambda i: (int(views.stamps_ns[i]), int(views.camera_ids[i])))
    ref = views.select(order)
    assert back.camera_names == ["cam0", "cam1", "cam2"]
    assert torch.equal(back.stamps_ns, ref.stamps_ns) and torch.equal(back.camera_ids, ref.camera_ids)
    assert torch.equal(back.images, ref.images)
    torch.testing.assert_close(back.Ks, ref.Ks, atol=1e-9, rtol=0)
    torch.testing.assert_close(back.camtoworlds, ref.camtoworlds, atol=1e-9, rtol=0)
    only = read_bag(tmp_path / "bag", cameras=["cam2"])
    assert only.camera_names == ["cam2"] and len(only) == 3 and (only.camera_ids == 0).all()
    with pytest.raises(FileExistsError):
        write_bag(views, tmp_path / "bag")


def test_quaternion_round_trip_near_180_degrees():
    for angle in (0.0, 1.0, np.pi - 1e-9, np.pi):
        axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
        Kx = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + np.sin(angle) * Kx + (1 - np.cos(angle)) * Kx @ Kx
        np.testing.assert_allclose(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-12)


def test_depth_messages_round_trip():
    rng = np.random.default_rng(0)
    d = (rng.random((5, 7)) * 4).astype(np.float32)
    d[0, 0], d[1, 1], d[2, 2], d[3, 3] = np.nan, 0.0, np.inf, -1.0
    expect = np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float32)
    back = image_depth(deserialize(serialize(depth_msg(d, STAMP, "cam0")), "sensor_msgs/msg/Image"))
    assert back.dtype == np.float32 and np.array_equal(back, expect)  # 32FC1: bit-exact
    mm = image_depth(deserialize(serialize(depth_msg(d, STAMP, "cam0", "16UC1")), "sensor_msgs/msg/Image"))
    assert np.array_equal(mm, (np.rint(expect.astype(np.float64) * 1000) / 1000).astype(np.float32))
    # A big-endian 16UC1 with padded rows decodes to the same millimetres.
    raw = np.zeros((5, 10), ">u2")
    raw[:, :7] = np.rint(expect * 1000)
    msg = Image(header=header_msg(STAMP, "cam0"), height=5, width=7, encoding="16UC1", is_bigendian=1, step=20,
                data=np.frombuffer(raw.tobytes(), np.uint8).copy())
    assert np.array_equal(image_depth(msg), mm)
    with pytest.raises(MessageError, match="16UC1"):
        depth_msg(np.full((2, 2), 70.0), STAMP, "cam0", "16UC1")
    with pytest.raises(MessageError, match="unsupported depth encoding"):
        image_depth(image_msg(np.zeros((2, 2, 3)), STAMP, "cam0"))
    # an OpenGL camera's z, negative in front of it: refused, not read as an image without measurements
    with pytest.raises(MessageError, match="35 of the depth image's 35 measured pixels are negative"):
        image_depth(Image(header=header_msg(STAMP, "cam0"), height=5, width=7, encoding="32FC1", is_bigendian=0,
                          step=28, data=np.frombuffer((-(expect + 1.0)).astype("<f4").tobytes(), np.uint8).copy()))


def test_encodings_decode_to_the_same_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8"):
        np.testing.assert_array_equal(image_rgb(image_msg(rgb, STAMP, "c", enc)), rgb)
    bgr = image_msg(rgb, STAMP, "c", "bgr8")
    np.testing.assert_array_equal(bgr.data.reshape(5, 7, 3), rgb[..., ::-1])
    grey = image_rgb(image_msg(rgb, STAMP, "c", "mono8"))
    expect = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    np.testing.assert_array_equal(grey, np.repeat(expect[..., None], 3, -1))
    # Row padding (step > width·channels) is skipped, whatever its bytes hold.
    msg = image_msg(rgb, STAMP, "c", "rgba8")
    padded = np.full((5, 7 * 4 + 6), 77, np.uint8)
    padded[:, :28] = msg.data.reshape(5, 28)
    msg.step, msg.data = 34, padded.reshape(-1)
    np.testing.assert_array_equal(image_rgb(msg), rgb)


def _raw(px: np.ndarray, encoding: str, bigendian: bool = False) -> Image:
    """An Image of pixels (H,W[,C]) as a camera driver sends them, rows unpadded."""
    h, w = px.shape[:2]
    body = px.astype(px.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    return Image(header=header_msg(STAMP, "c"), height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                 step=body.shape[1], data=body.reshape(-1).copy())


def test_camera_encodings_decode_as_cv_bridge_does():
    # Bayer mosaics, each 2x2 tile as ROS names it from its top-left pixel: one colour demosaics to itself
    r, g, b = 200, 90, 30
    tiles = {"bayer_rggb8": [[r, g], [g, b]], "bayer_bggr8": [[b, g], [g, r]], "bayer_gbrg8": [[g, b], [r, g]],
             "bayer_grbg8": [[g, r], [b, g]]}
    for enc, tile in tiles.items():
        out = image_rgb(_raw(np.tile(np.array(tile, np.uint8), (4, 5)), enc))
        assert out.shape == (8, 10, 3), enc
        np.testing.assert_array_equal(out[1:-1, 1:-1], np.broadcast_to([r, g, b], (6, 8, 3)), err_msg=enc)
    # YUV 4:2:2, BT.601 video range: the standard's red, green, blue, black and white (one pixel pair each)
    yuv = [(81, 90, 240), (145, 54, 34), (41, 240, 110), (16, 128, 128), (235, 128, 128)]
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0], [255, 255, 255]])
    uyvy = np.array([[[u, y], [v, y]] for y, u, v in yuv], np.uint8).reshape(1, 10, 2)
    yuyv = np.array([[[y, u], [y, v]] for y, u, v in yuv], np.uint8).reshape(1, 10, 2)
    for enc, px in (("yuv422", uyvy), ("yuv422_yuy2", yuyv)):
        out = image_rgb(_raw(px, enc)).reshape(5, 2, 3).astype(int)
        assert np.abs(out - rgb[:, None]).max() <= 1, (enc, out)
    with pytest.raises(MessageError, match="width must be even"):
        image_rgb(_raw(np.zeros((2, 3, 2), np.uint8), "yuv422"))
    # 16 bits per channel, either byte order, scaled to 8 bits (v / 257, rounded)
    rgb8 = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    # + 100: rounding (not truncation) gives rgb8 back
    wide = np.minimum(rgb8.astype(np.int64) * 257 + 100, 65535).astype(np.uint16)
    for enc, px, big in (("rgb16", wide, False), ("bgr16", wide[..., ::-1], True),
                         ("rgba16", np.concatenate([wide, np.full((3, 4, 1), 7, np.uint16)], 2), True),
                         ("mono16", wide[..., :1], False)):
        want = np.repeat(rgb8[..., :1], 3, 2) if enc == "mono16" else rgb8
        np.testing.assert_array_equal(image_rgb(_raw(np.ascontiguousarray(px), enc, big)), want, err_msg=enc)
    with pytest.raises(MessageError, match="supported: .*bayer_rggb8.*yuv422.*mono16"):
        image_rgb(_raw(np.zeros((2, 2), np.uint8), "8UC1"))


def _write(path, entries):
    """entries: (topic, msg) -> a bag with connections in first-use order, bag time = header stamp."""
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {}
        for topic, msg in entries:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msg.__msgtype__, typestore=TYPESTORE)
            s = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            w.write(conns[topic], s, serialize(msg))
    return path


def _camera(stamp, image=None, info_size=(4, 3), info_stamp=None, pose_stamp=None):
    img = image if image is not None else image_msg(np.zeros((3, 4, 3), np.uint8), stamp, "cam0_optical_frame")
    K = np.array([[5.0, 0, 1.5], [0, 5.0, 1.0], [0, 0, 1]])
    out = [("/cam0/image_raw", img)]
    if info_stamp is not False:
        out.append(("/cam0/camera_info", camera_info_msg(K, *info_size, info_stamp or stamp, "cam0_optical_frame")))
    if pose_stamp is not False:
        out.append(("/cam0/pose", pose_msg(np.eye(4), pose_stamp or stamp)))
    return out


def _bad_image(encoding="rgb8", data_len=36, step=12):
    return Image(header=header_msg(STAMP, "cam0_optical_frame"), height=3, width=4, encoding=encoding,
                 is_bigendian=0, step=step, data=np.zeros(data_len, np.uint8))


@pytest.mark.parametrize("case, entries, pattern", [
    ("missing camera_info", _camera(STAMP, info_stamp=STAMP + 1), r"/cam0/image_raw at stamp {s} ns: no /cam0/camera_info"),
    ("missing pose", _camera(STAMP, pose_stamp=STAMP - 1), r"/cam0/image_raw at stamp {s} ns: no /cam0/pose"),
    ("unknown encoding", _camera(STAMP, image=_bad_image("8UC3")), r"/cam0/image_raw at stamp {s} ns: .*'8UC3'"),
    ("size vs camera_info", _camera(STAMP, info_size=(5, 3)),
     r"/cam0/image_raw at stamp {s} ns: image is 4x3 but /cam0/camera_info says 5x3"),
    ("data length", _camera(STAMP, image=_bad_image(data_len=20)), r"/cam0/image_raw at stamp {s} ns: data has 20"),
    ("pose topic absent", _camera(STAMP, pose_stamp=False), r"/cam0/pose: topic missing"),
])
def test_bad_bags_name_topic_and_stamp(tmp_path, case, entries, pattern):
    bag = _write(tmp_path / "bad", entries)
    with pytest.raises(BagError, match=pattern.format(s=STAMP)):
        read_bag(bag)


def test_good_minimal_bag_and_missing_path(tmp_path):
    views = read_bag(_write(tmp_path / "ok", _camera(STAMP)))
    assert len(views) == 1 and int(views.stamps_ns[0]) == STAMP and views.camera_names == ["cam0"]
    assert views.Ks[0, 0, 2] == 1.5
    with pytest.raises(BagError, match="no such bag"):
        read_bag(tmp_path / "nothing")
    with pytest.raises(BagError, match=re.escape("cameras ['cam9'] not in the bag")):
        read_bag(tmp_path / "ok", cameras=["cam9"])


def test_make_bag_writes_a_readable_bag_and_a_sheet(tmp_path, capsys):
    from lrm4d_ros.cli import main

    assert main(["make-bag", "--seed", "2", "--out", str(tmp_path), "--frames", "2", "--cameras", "3",
                 "--resolution", "32", "--rig", "workcell"]) == 0
    views = read_bag(tmp_path / "scene_2")
    assert len(views) == 6 and views.camera_names == ["cam0", "cam1", "cam2"] and views.height == 32
    sheet = (tmp_path / "scene_2_sheet.png")
    assert sheet.stat().st_size > 1000
    import imageio.v3 as iio
    assert iio.imread(sheet).shape[1] >= 2 * 32  # two frames per row
    assert "wrote bag" in capsys.readouterr().out


def test_make_bag_refuses_bad_arguments_with_one_line(tmp_path, capsys):
    from lrm4d_ros.cli import main

    (tmp_path / "afile").write_text("x")
    for argv, text in ((["--out", str(tmp_path / "afile")], "is a file"),
                       (["--out", str(tmp_path), "--ground", "1.5"], "probabilities in [0, 1]"),
                       (["--out", str(tmp_path), "--frames", "0"], "must be >= 1"),
                       (["--out", str(tmp_path), "--robot", "--depth", "clean", "--depth-encoding", "32FC1"],
                        "--robot records depth as a RealSense driver does (16UC1 millimetres)")):
        assert main(["make-bag", "--seed", "2", "--resolution", "16", *argv]) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err


def _make_bag(tmp_path, name, *extra):
    from lrm4d_ros.cli import main

    argv = ["make-bag", "--seed", "5", "--out", str(tmp_path / name), "--frames", "2", "--cameras", "3",
            "--resolution", "32", "--rig", "workcell", "--ground", "1", *extra]
    assert main(argv) == 0
    return read_bag(tmp_path / name / "scene_5"), argv


def test_depth_round_trip_through_make_bag(tmp_path):
    import argparse

    from lrm4d_ros.data import make_bag

    clean, argv = _make_bag(tmp_path, "clean", "--depth", "clean")
    parser = argparse.ArgumentParser()
    make_bag.add_arguments(parser)
    _, exact = make_bag.render_scene(parser.parse_args(argv[1:]))
    order = sorted(range(len(exact)), key=lambda i: (int(exact.stamps_ns[i]), int(exact.camera_ids[i])))
    exact = exact.select(order)
    assert torch.equal(clean.stamps_ns, exact.stamps_ns) and (exact.depths > 0).float().mean() > 0.5
    assert clean.depths.dtype == torch.float32 and torch.equal(clean.depths, exact.depths)  # 32FC1: bit-exact
    mm, _ = _make_bag(tmp_path, "mm", "--depth", "clean", "--depth-encoding", "16UC1")
    expect = (np.rint(exact.depths.numpy().astype(np.float64) * 1000) / 1000).astype(np.float32)
    assert np.array_equal(mm.depths.numpy(), expect)  # 16UC1: the float32 nearest to the millimetres
    sensor, _ = _make_bag(tmp_path, "sensor", "--depth", "sensor")
    sensor_mm, _ = _make_bag(tmp_path, "sensor_mm", "--depth", "sensor", "--depth-encoding", "16UC1")
    measured = sensor.depths > 0
    assert 0.5 < float(measured.float().mean()) < float((exact.depths > 0).float().mean())  # dropouts
    err = (sensor.depths - exact.depths)[measured]
    assert 0.001 < float(err.std()) < 0.05  # ~z² noise at 2-5 m
    expect = (np.rint(sensor.depths.numpy().astype(np.float64) * 1000) / 1000).astype(np.float32)
    assert np.array_equal(sensor_mm.depths.numpy(), expect)  # the same seeded measurement
    none, _ = _make_bag(tmp_path, "none")
    assert none.depths is None and torch.equal(none.images, clean.images)


def _rgbd_camera(cam, stamp, depth=None, depth_stamp=None):
    """A camera's image, camera_info and pose at `stamp` (4x3 pixels), plus a depth Image if given."""
    K = np.array([[5.0, 0, 1.5], [0, 5.0, 1.0], [0, 0, 1]])
    frame = f"{cam}_optical_frame"
    out = [(f"/{cam}/image_raw", image_msg(np.full((3, 4, 3), 40, np.uint8), stamp, frame)),
           (f"/{cam}/camera_info", camera_info_msg(K, 4, 3, stamp, frame)), (f"/{cam}/pose", pose_msg(np.eye(4), stamp))]
    if depth is not None:
        out.append((f"/{cam}/depth", depth if not isinstance(depth, np.ndarray) else
                    depth_msg(depth, depth_stamp or stamp, frame, "16UC1")))
    return out


def test_depth_for_some_cameras_and_frames_only(tmp_path):
    d = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.25  # metres; 0 at one pixel
    entries = _rgbd_camera("a", STAMP, d) + _rgbd_camera("b", STAMP) + _rgbd_camera("a", STAMP + 10) \
        + _rgbd_camera("b", STAMP + 10)  # camera a's second depth frame was dropped
    views = read_bag(_write(tmp_path / "bag", entries))
    assert views.camera_names == ["a", "b"] and views.depths.shape == (4, 3, 4)
    assert np.array_equal(views.depths[0].numpy(), d)  # a at STAMP
    assert not views.depths[1:].any()  # b has no depth topic; a's dropped frame has no measurement
    assert read_bag(tmp_path / "bag", cameras=["b"]).depths is None


def test_a_camera_without_an_image_topic_is_skipped_with_a_warning(tmp_path):
    import warnings

    from lrm4d_ros.io.bag import BagWarning

    d = np.ones((3, 4), np.float32)
    orphan = [e for e in _rgbd_camera("b", STAMP, d) if e[0] != "/b/image_raw"]  # its depth, info and pose kept
    bag = _write(tmp_path / "bag", _rgbd_camera("a", STAMP, d) + orphan)
    with pytest.warns(BagWarning) as caught:
        views = read_bag(bag)
    assert [str(w.message) for w in caught] == ["camera 'b' has /b/camera_info, /b/depth, /b/pose but no /b/image_raw "
                                                "(nor /b/image_raw/compressed): skipped"]
    assert views.camera_names == ["a"] and len(views) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for camera a only: nothing to say about b
        assert read_bag(bag, cameras=["a"]).camera_names == ["a"]


@pytest.mark.parametrize("case, depth, depth_stamp, pattern", [
    ("size", np.ones((2, 4), np.float32), None, r"/a/depth at stamp {s} ns: depth image is 4x2 but the colour image is 4x3"),
    ("stamp", np.ones((3, 4), np.float32), STAMP + 1, r"/a/depth at stamp {s1} ns: no /a/image_raw message with that stamp"),
    ("encoding", image_msg(np.zeros((3, 4, 3)), STAMP, "a_optical_frame"), None,
     r"/a/depth at stamp {s} ns: unsupported depth encoding 'rgb8'"),
])
def test_bad_depth_names_topic_and_stamp(tmp_path, case, depth, depth_stamp, pattern):
    bag = _write(tmp_path / case, _rgbd_camera("a", STAMP, depth, depth_stamp))
    with pytest.raises(BagError, match=pattern.format(s=STAMP, s1=STAMP + 1)):
        read_bag(bag)


def test_a_dropped_colour_frame_skips_its_depth_with_a_warning(tmp_path):
    from lrm4d_ros.io.bag import BagWarning

    views = generate(4, CFG)
    bag = write_bag(views, tmp_path / "full", depth_encoding="32FC1")
    # the same bag without one colour frame of cam0 (its depth, pose and camera_info kept): a recorder dropped it
    dropped = int(views.stamps_ns[views.camera_ids == 0][1])
    src, dst = Reader(bag), tmp_path / "dropped"
    src.open()
    with Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in src.connections}
        for c, t, raw in src.messages():
            if c.topic == "/cam0/image_raw" and stamp_ns(deserialize(raw, c.msgtype).header) == dropped:
                continue
            w.write(conns[c.id], t, raw)
    src.close()
    with pytest.warns(BagWarning, match=r"/cam0/depth: 1 of \d+ depth images have no colour image"):
        got = read_bag(dst)
    assert len(got) == len(views) - 1 and dropped not in got.stamps_ns[got.camera_ids == 0].tolist()


def test_write_bag_refuses_depth_beyond_16uc1_before_writing(tmp_path):
    views = generate(4, CFG)
    views.depths[2, 0, 0] = 70.0
    with pytest.raises(ValueError, match=r"/cam\d/depth at stamp \d+ ns: depth 70.000 m does not fit 16UC1"):
        write_bag(views, tmp_path / "bag", depth_encoding="16UC1")
    assert not (tmp_path / "bag").exists()
    with pytest.raises(ValueError, match="has no depths"):
        write_bag(views.select([0]).__class__(**{**views.__dict__, "depths": None}), tmp_path / "b", depth_encoding="32FC1")


def test_a_part_of_a_bag_is_read_alone(tmp_path, recwarn):
    """--start / --duration: only the images in that span (and their depth) are kept, counted from the first image;
    nothing outside warns as an unpaired depth."""
    from lrm4d_ros.io.bag import bag_size

    views = with_depth(generate(4, replace(CFG, frames=5, synchronized=True, fps_range=(10.0, 10.0))), "clean", 4)
    bag = write_bag(views, tmp_path / "b", depth_encoding="32FC1")
    first = int(views.stamps_ns.min())
    whole = read_bag(bag)
    for start, duration in ((0.1, 0.15), (0.3, None), (0.0, 0.12)):
        part = read_bag(bag, start_s=start, duration_s=duration)
        hi = math.inf if duration is None else first + (start + duration) * 1e9
        keep = [i for i, s in enumerate(whole.stamps_ns.tolist()) if first + start * 1e9 <= s <= hi]
        assert 0 < len(keep) < len(whole) and part.stamps_ns.tolist() == whole.stamps_ns[keep].tolist()
        assert torch.equal(part.images, whole.images[keep]) and torch.equal(part.depths, whole.depths[keep])
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    with pytest.raises(BagError, match="no images .* from 5.0 s after the first"):
        read_bag(bag, start_s=5.0)
    size = bag_size(bag)
    assert size == {"images": 15, "seconds": pytest.approx(0.4, abs=0.01), "pixels": 24 * 32, "depth": True,
                    "start_ns": size["start_ns"], "end_ns": size["end_ns"]}
    assert (size["end_ns"] - size["start_ns"]) * 1e-9 == pytest.approx(size["seconds"], abs=1e-9)


def test_commands_refuse_a_bag_that_does_not_fit_in_memory(tmp_path, capsys, monkeypatch):
    from lrm4d_ros.cli import main
    from lrm4d_ros.io import bag as bag_io

    size = {"images": 10, "seconds": 2.0, "pixels": 100, "depth": True}
    assert bag_io.memory_needed(size) == 2 * 10 * 100 * 4 * 4
    assert bag_io.memory_needed(size, start_s=1.5) == bag_io.memory_needed(size) / 4
    assert bag_io.memory_needed(size, duration_s=0.5) == bag_io.memory_needed(size) / 4
    write_bag(generate(4, CFG), tmp_path / "b")
    monkeypatch.setattr(bag_io, "available_memory", lambda: 1000.0)
    assert main(["reconstruct", str(tmp_path / "b"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GiB are available: reconstruct a part of it (--start / --duration" in err[0]
    assert main(["evaluate", str(tmp_path / "b"), "--protocol", "rig"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GiB are available: evaluate a shorter recording" in err[0]


def test_a_bag_write_that_stops_part_way_leaves_no_bag(tmp_path):
    """An error or Ctrl-C while a bag is written (make-bag, convert-bag, write_entries) removes the bag
    directory: nothing half-written is left to look finished or to refuse a rerun."""
    from lrm4d_ros.io.bag import write_entries
    from lrm4d_ros.io.messages import time_msg

    def entries():
        yield 1, "/a", time_msg(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_entries(tmp_path / "bag", entries())
    assert not (tmp_path / "bag").exists()
    write_entries(tmp_path / "bag", [(1, "/a", time_msg(1))])
    assert (tmp_path / "bag" / "metadata.yaml").is_file()


def test_what_is_wrong_with_a_bag_is_said_with_what_to_do(tmp_path):
    """A contract bag with one camera's pose or camera_info missing points to the cameras that can be read; a
    folder without metadata.yaml and a file cut short say what they are; a bag's metadata.yaml opens its bag."""
    from rosbags.rosbag2 import Reader, Writer

    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import BagError, read_bag, write_bag

    src = write_bag(generate(2, SceneConfig(frames=2, cameras=3, height=16, width=16)), tmp_path / "bag")
    assert len(read_bag(src / "metadata.yaml")) == 6

    def without(topic: str) -> Path:
        out = tmp_path / topic.replace("/", "_")
        with Reader(src) as r, Writer(out, version=9) as w:
            conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in r.connections
                     if c.topic != topic}
            for c, t, raw in r.messages():
                if c.id in conns:
                    w.write(conns[c.id], t, raw)
        return out

    with pytest.raises(BagError, match=r"/cam0/pose: topic missing .*read them alone \(reconstruct --cameras "
                                       r"cam1,cam2\)$"):
        read_bag(without("/cam0/pose"))
    with pytest.raises(BagError, match=r"/cam1/camera_info: topic missing .*--cameras cam0,cam2\)$"):
        read_bag(without("/cam1/camera_info"))
    (mcap,) = src.glob("*.mcap")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "metadata.yaml").write_bytes((src / "metadata.yaml").read_bytes())
    (cut / mcap.name).write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])
    with pytest.raises(BagError, match="the file ends early .*`mcap recover`"):
        read_bag(cut)
    (cut / "metadata.yaml").unlink()
    with pytest.raises(BagError, match="the folder has no metadata.yaml .*`ros2 bag reindex`"):
        read_bag(cut)


def test_an_output_bag_read_as_input_says_what_it_is(tmp_path):
    """`lrm4d view OUT/bag` or `lrm4d reconstruct OUT/bag` after a reconstruction: the bag holds renders, not a
    recording; the error says to open its folder instead (not to convert a robot's recording)."""
    from lrm4d_ros.gaussians import Gaussians3D
    from lrm4d_ros.io.output_bag import GAUSSIANS_TOPIC, TOPIC_PREFIX, OutputBag

    g = Gaussians3D(torch.zeros(1, 3), torch.eye(3)[None] * 1e-4, torch.ones(1), torch.ones(1, 3))
    K = torch.tensor([[10.0, 0, 3.5], [0, 10.0, 3.5], [0, 0, 1]], dtype=torch.float64)
    with OutputBag(tmp_path / "out" / "bag") as bag:
        bag.write_view(f"{TOPIC_PREFIX}/cam0", torch.zeros(8, 8, 3), torch.ones(8, 8), K, torch.eye(4), 10**9)
        bag.write_gaussians(GAUSSIANS_TOPIC, g, 10**9)
    with pytest.raises(BagError) as err:
        read_bag(tmp_path / "out" / "bag")
    assert "output bag of `lrm4d reconstruct`" in str(err.value) and "`lrm4d view OUT`" in str(err.value)
    assert "convert-bag" not in str(err.value)


def test_cameras_of_different_sizes_are_read_at_the_size_most_images_have(tmp_path):
    """A head camera at 32x24 and a wrist camera at 16x12 (half the size, half the focal length: the same rays):
    the wrist camera's images and depth come back at 32x24 with K scaled, where the bag used to be refused (a
    ViewSet has one resolution), with one warning naming it; everything else as written."""
    from lrm4d_ros.io.bag import BagWarning, write_entries
    from lrm4d_ros.io.messages import depth_msg as dmsg

    views = with_depth(generate(4, CFG), "clean")
    views.images = (views.images * 255).round() / 255
    small = views.resized(12, 16)
    entries = []
    for i in range(len(views)):
        s, cam = int(views.stamps_ns[i]), views.camera_names[int(views.camera_ids[i])]
        v = small if cam == "cam1" else views
        img = (v.images[i].numpy() * 255).round().astype(np.uint8)
        frame = f"{cam}_optical_frame"
        entries += [(s, f"/{cam}/image_raw", image_msg(img, s, frame)),
                    (s, f"/{cam}/camera_info", camera_info_msg(v.Ks[i].numpy(), v.width, v.height, s, frame)),
                    (s, f"/{cam}/pose", pose_msg(v.camtoworlds[i].numpy(), s, "world")),
                    (s, f"/{cam}/depth", dmsg(v.depths[i].numpy(), s, frame))]
    with pytest.warns(BagWarning, match=r"camera cam1 resized to 32x24, the size most images have"):
        back = read_bag(write_entries(tmp_path / "bag", entries))
    order = sorted(range(len(views)), key=lambda i: (int(views.stamps_ns[i]), int(views.camera_ids[i])))
    ref = views.select(order)
    assert (back.height, back.width) == (24, 32) and torch.equal(back.stamps_ns, ref.stamps_ns)
    assert torch.equal(back.camera_ids, ref.camera_ids)
    big = back.camera_ids != 1
    assert torch.equal(back.images[big], ref.images[big]) and torch.equal(back.depths[big], ref.depths[big])
    # the wrist camera's K scaled back to the head camera's, its pixels upsampled from half the size
    torch.testing.assert_close(back.Ks, ref.Ks, atol=1e-9, rtol=0)
    wrist = ~big
    assert float((back.images[wrist] - ref.images[wrist]).abs().mean()) < 0.08
    assert torch.equal(back.depths[wrist][:, ::2, ::2], small.select(order).depths[wrist])
