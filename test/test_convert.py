"""`lrm4d convert-bag`: a robot's bag (its own topic names, poses as TF, depth stamped by the depth camera,
compressed and distorted images) becomes a contract bag whose poses, pixels and depth are what they should be."""
import math

import cv2
import numpy as np
import pytest

from lrm4d_ros.cli import main
from lrm4d_ros.io.bag import read_bag, write_entries
from lrm4d_ros.io.compressed import compressed_image_msg
from lrm4d_ros.io.convert import ConvertError, convert_bag
from lrm4d_ros.io.messages import (TYPESTORE, camera_info_msg, depth_msg, image_msg, rosbags_types,
                                   transform_msg)
from lrm4d_ros.io.rectify import info_topic_for
from lrm4d_ros.io.tf_tree import TransformTree
from lrm4d_ros.window import RejectedInput

T0 = 1_700_000_000_000_000_000
H, W = 24, 32
FRAMES = 4
K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
OPTICAL = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], np.float64)  # REP-103 optical frame


def yaw(a, p):
    T = np.eye(4)
    T[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    T[:3, 3] = p
    return T


def base_pose(t_ns):
    """odom -> base_link: constant velocity and yaw rate, so linear + SLERP interpolation is exact."""
    t = (t_ns - T0) * 1e-9
    return yaw(0.4 * t, [0.5 * t, 0.2 - 0.1 * t, 0.0])


FRONT_LINK = yaw(0.3, [0.2, 0.05, 1.1])
SIDE_OPTICAL = yaw(-math.pi / 2, [0.0, -0.15, 1.3]) @ OPTICAL


def pattern(u, v, Kp):
    """A smooth colour pattern over normalised pinhole coordinates: what a camera with intrinsics Kp sees."""
    x, y = (u - Kp[0, 2]) / Kp[0, 0], (v - Kp[1, 2]) / Kp[1, 1]
    return np.stack([0.5 + 0.4 * np.sin(6 * x) * np.cos(5 * y), 0.5 + 0.3 * np.cos(4 * x + 2 * y),
                     0.4 + 0.3 * np.sin(3 * y)], -1)


def write_robot_bag(path, tf_end_ns, side_distortion=None):
    t = rosbags_types()
    entries = []  # (log time, topic, msg)
    rng = np.random.default_rng(0)
    for f in range(FRAMES):
        s = T0 + f * 100_000_000
        front = (rng.random((H, W, 3)) * 255).astype(np.uint8)
        entries.append((s, "/robot/front/color/image_raw/compressed",
                        compressed_image_msg(front, s, "front_color_optical_frame", "png")))
        entries.append((s, "/robot/front/color/camera_info", camera_info_msg(K, W, H, s, "front_color_optical_frame")))
        depth = rng.uniform(0.5, 4.0, (H, W)).astype(np.float32)
        entries.append((s + 3_000_000, "/robot/front/aligned_depth_to_color/image_raw",
                        depth_msg(depth, s + 3_000_000, "front_color_optical_frame", "16UC1")))
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        if side_distortion is None:
            side = pattern(u, v, K)
        else:  # each distorted pixel shows what its undistorted ray sees (OpenCV's iterative inverse)
            und = cv2.undistortPoints(np.stack([u, v], -1).reshape(-1, 1, 2), K, side_distortion, P=K).reshape(H, W, 2)
            side = pattern(und[..., 0], und[..., 1], K)
        side_msg = image_msg(side, s + 1_000, "side_optical", "bgr8")
        info = camera_info_msg(K, W, H, s + 1_000, "side_optical")
        if side_distortion is not None:
            info.d = np.asarray(side_distortion, np.float64)
        entries.append((s + 1_000, "/robot/side/image_raw", side_msg))
        entries.append((s + 1_000, "/robot/side/camera_info", info))
        entries.append((s + 2_000, "/robot/joint_noise", camera_info_msg(K, W, H, s, "x")))  # unrelated topic
    for k in range(-5, 1000):
        s = T0 + k * 10_000_000
        if s > tf_end_ns:
            break
        entries.append((s, "/tf", t.TFMessage(transforms=[transform_msg(base_pose(s), s, "odom", "base_link")])))
    statics = [transform_msg(FRONT_LINK, T0, "base_link", "front_link"),
               transform_msg(OPTICAL, T0, "front_link", "front_color_optical_frame"),
               transform_msg(SIDE_OPTICAL, T0, "base_link", "side_optical")]
    entries.append((T0 - 100, "/tf_static", t.TFMessage(transforms=statics)))
    return write_entries(path, entries)


CAMS = {"front": "/robot/front/color/image_raw/compressed", "side": "/robot/side/image_raw"}


def test_robot_bag_becomes_a_contract_bag(tmp_path):
    src = write_robot_bag(tmp_path / "robot", tf_end_ns=T0 + 230_000_000)  # TF stops 70 ms before frame 3
    summary = convert_bag(src, tmp_path / "contract", CAMS,
                          depths={"front": "/robot/front/aligned_depth_to_color/image_raw"})
    assert summary["world_frame"] == "odom" and summary["views"] == 2 * 3
    assert summary["skipped"] == {"no_pose": 2}, summary["text"]
    views = read_bag(tmp_path / "contract")
    assert views.camera_names == ["front", "side"]
    for i in range(len(views)):
        cam, s = views.camera_names[int(views.camera_ids[i])], int(views.stamps_ns[i])
        truth = base_pose(s) @ (FRONT_LINK @ OPTICAL if cam == "front" else SIDE_OPTICAL)
        np.testing.assert_allclose(views.camtoworlds[i].numpy(), truth, atol=1e-9)
        np.testing.assert_allclose(views.Ks[i].numpy(), K)
    # pixels and depth byte for byte from the robot bag; the depth moved to its colour image's stamp
    rng = np.random.default_rng(0)
    front = [i for i in range(len(views)) if views.camera_names[int(views.camera_ids[i])] == "front"]
    for f, i in enumerate(front):
        assert int(views.stamps_ns[i]) == T0 + f * 100_000_000
        img = (rng.random((H, W, 3)) * 255).astype(np.uint8)
        depth = rng.uniform(0.5, 4.0, (H, W)).astype(np.float32)
        np.testing.assert_array_equal((views.images[i].numpy() * 255).round().astype(np.uint8), img)
        np.testing.assert_allclose(views.depths[i].numpy(), np.rint(depth.astype(np.float64) * 1000) / 1000,
                                   atol=1e-6)
    side = [i for i in range(len(views)) if views.camera_names[int(views.camera_ids[i])] == "side"]
    assert all(float(views.depths[i].abs().max()) == 0 for i in side)  # no depth topic for it


def test_a_time_offset_moves_a_cameras_stamps_before_it_is_posed(tmp_path, capsys):
    """--time-offset front=-0.03: the front camera's images (and their depth) are stamped 30 ms earlier and posed
    from TF there; the side camera keeps its stamps."""
    src = write_robot_bag(tmp_path / "robot", tf_end_ns=T0 + 400_000_000)
    assert main(["convert-bag", str(src), "--out", str(tmp_path / "contract"), "--camera", f"front={CAMS['front']}",
                 "--camera", f"side={CAMS['side']}", "--depth", "front=/robot/front/aligned_depth_to_color/image_raw",
                 "--time-offset", "front=-0.03"]) == 0
    assert "front: stamps moved by -30 ms (--time-offset)" in capsys.readouterr().out
    views = read_bag(tmp_path / "contract")
    for i in range(len(views)):
        cam, s = views.camera_names[int(views.camera_ids[i])], int(views.stamps_ns[i])
        f = round((s - T0) / 1e8)
        assert s == T0 + f * 100_000_000 + (-30_000_000 if cam == "front" else 1_000)
        truth = base_pose(s) @ (FRONT_LINK @ OPTICAL if cam == "front" else SIDE_OPTICAL)
        np.testing.assert_allclose(views.camtoworlds[i].numpy(), truth, atol=1e-9)
    front = views.camera_ids == views.camera_names.index("front")
    assert int(front.sum()) == FRAMES and bool((views.depths[front].flatten(1) > 0).all(1).all())
    for bad in ("front=x", "front", "rear=0.1", "front=20"):
        assert main(["convert-bag", str(src), "--out", str(tmp_path / "no"), "--camera", f"front={CAMS['front']}",
                     "--time-offset", bad]) == 2
        assert "--time-offset" in capsys.readouterr().err


def test_distorted_camera_is_rectified_to_its_pinhole(tmp_path):
    D = np.array([-0.4, 0.1, 0.001, -0.002, 0.0])
    src = write_robot_bag(tmp_path / "robot", tf_end_ns=T0 + 10**9, side_distortion=D)
    convert_bag(src, tmp_path / "contract", {"side": CAMS["side"]})
    views = read_bag(tmp_path / "contract")
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    truth = pattern(u, v, K)  # P = K: the rectified image is what the ideal pinhole sees
    inner = (slice(3, H - 3), slice(3, W - 3))
    err = np.abs(views.images[0].numpy()[inner] - truth[inner]).mean()
    assert err < 0.002, err  # bilinear resampling and 8-bit pixels (0.0012 here)
    # the input as recorded is 10x farther from the pinhole's view: the rectification did the work
    und = cv2.undistortPoints(np.stack([u, v], -1).reshape(-1, 1, 2), K, D, P=K).reshape(H, W, 2)
    distorted = pattern(und[..., 0], und[..., 1], K)
    assert np.abs(distorted[inner] - truth[inner]).mean() > 0.01
    assert not views.Ks.isnan().any() and np.allclose(views.Ks[0].numpy(), K)


def test_bad_requests_are_one_line_errors(tmp_path, capsys):
    src = write_robot_bag(tmp_path / "robot", tf_end_ns=T0 + 10**9)
    with pytest.raises(ConvertError, match=r"topic /robot/rear/image_raw is not in the bag"):
        convert_bag(src, tmp_path / "a", {"rear": "/robot/rear/image_raw"})
    with pytest.raises(ConvertError, match="is sensor_msgs/msg/CameraInfo, expected"):
        convert_bag(src, tmp_path / "b", {"x": "/robot/front/color/camera_info"})
    with pytest.raises(ConvertError, match="--world-frame 'map' is not in the TF tree"):
        convert_bag(src, tmp_path / "c", CAMS, world_frame="map")
    with pytest.raises(ConvertError, match="--depth names cameras"):
        convert_bag(src, tmp_path / "d", CAMS, depths={"rear": "/robot/front/aligned_depth_to_color/image_raw"})
    with pytest.raises(ConvertError, match="camera side's depth topic /robot/side/image_raw is camera side's colour"):
        convert_bag(src, tmp_path / "d1", CAMS, depths={"side": CAMS["side"]})
    with pytest.raises(ConvertError, match=r"no images from 5 s after the first: the cameras' images span 0.300 s"):
        convert_bag(src, tmp_path / "d2", CAMS, start_s=5.0)
    assert not (tmp_path / "d2").exists()
    assert main(["convert-bag", str(src), "--out", str(tmp_path / "e"), "--camera", "front"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrm4d convert-bag: error: --camera 'front': expected NAME=/topic") and err.count("\n") == 1
    assert main(["convert-bag", str(tmp_path / "nothing"), "--out", str(tmp_path / "f"), "--camera", "a=/x"]) == 2
    assert "no such bag" in capsys.readouterr().err
    assert main(["convert-bag", str(src), "--out", str(tmp_path / "g"), "--camera", f"side={CAMS['side']}",
                 "--world-frame", "base_link", "--duration", "0.15"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "2 of 2 images" in out and "'base_link'" in out
    # a --depth topic whose images all fail (another camera's colour): written without it, and the exit status says so
    assert main(["convert-bag", str(src), "--out", str(tmp_path / "g2"), "--camera", f"side={CAMS['side']}",
                 "--depth", f"side={CAMS['front']}", "--world-frame", "base_link"]) == 1
    captured = capsys.readouterr()
    assert "side: depth with 0 of its images" in captured.out and "(bad_depth)" in captured.out, captured.out
    assert captured.err == (f"lrm4d convert-bag: error: no depth image was written for side (--depth): "
                            f"{tmp_path / 'g2'} holds their colour only\n")
    assert read_bag(tmp_path / "g2").depths is None
    # the robot's bag handed to a command that reads contract bags: the error says to convert it first
    assert main(["reconstruct", str(src), "--out", str(tmp_path / "h")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "looks like a robot's own recording (/tf and /tf_static" in err
    assert "`lrm4d convert-bag BAG --out OUT` lists its cameras" in err


def test_transform_tree_composes_and_explains():
    tree = TransformTree(tolerance_ns=10, max_gap_ns=1000)
    a, b = yaw(0.5, [1, 2, 3]), yaw(-0.2, [0, 1, 0])
    tree.add("world", "base", 0, np.eye(4))
    tree.add("world", "base", 1000, yaw(0.2, [1.0, 0, 0]))
    tree.add("base", "cam", 0, a, static=True)
    tree.add("world", "tower", 0, b, static=True)
    np.testing.assert_allclose(tree.lookup("world", "cam", 500), yaw(0.1, [0.5, 0, 0]) @ a, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("tower", "cam", 0), np.linalg.inv(b) @ a, atol=1e-12)
    with pytest.raises(RejectedInput, match="'world' -> 'base'.*newer than the newest"):
        tree.lookup("world", "cam", 2000)
    tree.add("elsewhere", "thing", 0, np.eye(4), static=True)
    with pytest.raises(RejectedInput, match="not connected"):
        tree.lookup("world", "thing", 0)
    with pytest.raises(ValueError, match="two parents"):
        tree.add("tower", "cam", 0, np.eye(4), static=True)


def test_camera_info_beside_its_image():
    assert info_topic_for("/cam/color/image_raw") == "/cam/color/camera_info"
    assert info_topic_for("/cam/color/image_raw/compressed") == "/cam/color/camera_info"
    assert info_topic_for("/image") == "/camera_info"


def test_a_generated_scene_recorded_robot_style_converts_to_its_contract_bag(tmp_path):
    """Poses only as /tf (a base per camera under a static link -> optical mount), compressed images, 16UC1 depth
    2 ms late under a RealSense's names (io/robot_bag.py): the converted bag reads as the contract bag written
    directly (pixels and depth exact, poses to 1e-9)."""
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag
    from lrm4d_ros.io.robot_bag import robot_topics, write_robot_bag

    views = with_depth(generate(6, SceneConfig(frames=3, cameras=2, height=H, width=W, num_primitives=(2, 3))),
                       "sensor", seed=6)
    direct = read_bag(write_bag(views, tmp_path / "direct", depth_encoding="16UC1"))
    write_robot_bag(views, tmp_path / "robot", world_frame="map", depth_lag_ns=2_000_000)
    names = views.camera_names
    topics = {n: robot_topics(n, compressed=True) for n in names}
    summary = convert_bag(tmp_path / "robot", tmp_path / "converted", {n: topics[n]["image"] for n in names},
                          depths={n: topics[n]["depth"] for n in names})
    assert summary["views"] == len(views) and not summary["skipped"], summary["text"]
    assert summary["world_frame"] == "map"
    got = read_bag(tmp_path / "converted")
    assert got.camera_names == direct.camera_names and (got.stamps_ns == direct.stamps_ns).all()
    assert (got.camera_ids == direct.camera_ids).all() and (got.images == direct.images).all()
    assert (got.depths == direct.depths).all() and (got.Ks == direct.Ks).all()
    np.testing.assert_allclose(got.camtoworlds.numpy(), direct.camtoworlds.numpy(), atol=1e-9)


def test_make_bag_robot_converts_back_with_the_suggested_command(tmp_path, capsys):
    """`lrm4d make-bag --robot` and the command convert-bag suggests for it give the contract bag make-bag writes."""
    scene = ["--seed", "7", "--frames", "2", "--cameras", "2", "--resolution", "24", "--supersample", "1",
             "--depth", "clean"]
    assert main(["make-bag", *scene, "--out", str(tmp_path / "robot"), "--robot", "--compression", "png"]) == 0
    assert "recorded as a robot does" in capsys.readouterr().out
    # /tf_static offered as tf2's static broadcaster offers it: `ros2 bag play` replays it latched, so that tf2
    # listeners and RViz (transient local) receive it; the other topics as recorded (volatile)
    from rosbags.interfaces import QosDurability, QosReliability
    from rosbags.rosbag2 import Reader

    with Reader(tmp_path / "robot" / "scene_7") as reader:
        qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    assert [(q.durability, q.reliability) for q in qos["/tf_static"]] == \
        [(QosDurability.TRANSIENT_LOCAL, QosReliability.RELIABLE)]
    assert all(not q for topic, q in qos.items() if topic != "/tf_static")
    assert main(["make-bag", *scene, "--out", str(tmp_path / "direct"), "--depth-encoding", "16UC1"]) == 0
    assert main(["convert-bag", str(tmp_path / "robot" / "scene_7"), "--out", str(tmp_path / "out")]) == 2
    command = capsys.readouterr().out.split("(check the names and the depth pairing):\n")[1]
    assert main(command.replace("\\\n", " ").split()[1:]) == 0
    got, want = read_bag(tmp_path / "out"), read_bag(tmp_path / "direct" / "scene_7")
    assert got.camera_names == want.camera_names and (got.images == want.images).all()
    assert (got.depths == want.depths).all() and (got.stamps_ns == want.stamps_ns).all()
    np.testing.assert_allclose(got.camtoworlds.numpy(), want.camtoworlds.numpy(), atol=1e-9)


def test_rectification_rules():
    """image_rect topics take P as they are; raw topics with P unlike K are remapped onto P; unknown models refused."""
    from lrm4d_ros.io.messages import MessageError
    from lrm4d_ros.io.rectify import Rectification, rectified_topic

    assert rectified_topic("/cam/image_rect_color") and rectified_topic("/cam/image_rect/compressed")
    assert not rectified_topic("/cam/image_raw") and not rectified_topic("/cam/rect/image_raw")
    info = camera_info_msg(K, W, H, T0, "f")
    plain = Rectification(info)
    assert plain.maps is None and np.allclose(plain.K, K)
    P = K.copy()
    P[0, 0], P[0, 2] = 36.0, 15.0  # zoomed in: every rectified pixel comes from inside the raw image
    info.p = np.concatenate([P, np.zeros((3, 1))], 1).reshape(-1)
    assert np.allclose(Rectification(info, rectified=True).K, P) and Rectification(info, rectified=True).maps is None
    moved = Rectification(info)  # raw image, P unlike K: a remap onto P even without distortion
    assert moved.maps is not None and np.allclose(moved.K, P)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    raw = (pattern(u, v, K) * 255).round().astype(np.uint8)
    inner = (slice(3, H - 3), slice(3, W - 3))
    assert np.abs(moved.colour(raw)[inner] / 255.0 - pattern(u, v, P)[inner]).mean() < 0.003
    info.d = np.array([0.1, -0.02, 0.0, 0.0])
    info.distortion_model = "equidistant"
    assert Rectification(info).maps is not None
    info.distortion_model = "double_sphere"
    with pytest.raises(MessageError, match="'double_sphere' cannot be rectified"):
        Rectification(info)
    off = Rectification(info, rectify=False)  # rectify: off takes any camera as a pinhole with K
    assert off.maps is None and np.allclose(off.K, K)


def test_a_contract_bag_with_distortion_warns(tmp_path):
    from test_bag import _camera, _write

    from lrm4d_ros.io.bag import BagWarning

    entries = _camera(T0)
    entries[1][1].d = np.array([-0.2, 0.0, 0.0, 0.0, 0.0])
    with pytest.warns(BagWarning, match="lens distortion .* convert-bag --rectify auto"):
        assert len(read_bag(_write(tmp_path / "b", entries))) == 1


def _plane_depth(K, cam_in_ref, size, n, c):
    """z-depth (H,W) of the plane n·x = c (reference frame) seen by a camera (intrinsics K, pose cam_in_ref)."""
    Wd, Hd = size
    v, u = np.mgrid[0:Hd, 0:Wd].astype(np.float64)
    dirs = cam_in_ref[:3, :3] @ (np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)]))
    return ((c - n @ cam_in_ref[:3, 3]) / (n @ dirs)).reshape(Hd, Wd)


DEPTH_IN_COLOUR = yaw(0.0, [0.05, 0.0, 0.0]) @ np.array([[math.cos(0.08), 0, math.sin(0.08), 0], [0, 1, 0, 0],
                                                           [-math.sin(0.08), 0, math.cos(0.08), 0], [0, 0, 0, 1]])
PLANE_N, PLANE_C = np.array([0.2, -0.3, 1.0]) / np.linalg.norm([0.2, -0.3, 1.0]), 1.5


def test_register_depth_onto_the_colour_camera():
    from lrm4d_ros.io.register import register_depth

    Kc, Kd = np.array([[300., 0, 159.5], [0, 300., 119.5], [0, 0, 1]]), np.array([[120., 0, 79.5], [0, 120., 59.5],
                                                                                   [0, 0, 1]])
    depth = _plane_depth(Kd, DEPTH_IN_COLOUR, (160, 120), PLANE_N, PLANE_C)
    truth = _plane_depth(Kc, np.eye(4), (320, 240), PLANE_N, PLANE_C)
    reg = register_depth(depth, Kd, DEPTH_IN_COLOUR, Kc, (320, 240))
    m = reg > 0
    assert m.mean() > 0.95  # a 2.5x finer colour image, filled by each depth pixel's footprint
    assert np.median(np.abs(reg[m] / truth[m] - 1)) < 0.002 and np.abs(reg[m] / truth[m] - 1).max() < 0.01
    # a nearer surface wins where two land on one pixel; nothing measured, nothing registered
    both = register_depth(np.stack([depth[:, :80], 0.5 * depth[:, :80]], 1).reshape(120, 160), Kd,
                          np.eye(4), Kd, (160, 120))
    assert both.max() > 0 and (register_depth(np.zeros((4, 4)), Kd, np.eye(4), Kc, (8, 6)) == 0).all()


def test_the_compiled_registration_equals_numpys():
    """The numba kernel against register_depth_reference, bit for bit: depth finer and coarser than the colour
    image, turned and shifted, with dropouts, a NaN and points behind the colour camera."""
    from lrm4d_ros.io.register import register_depth, register_depth_reference

    rng = np.random.default_rng(3)
    Kc = np.array([[80., 0, 39.5], [0, 80., 29.5], [0, 0, 1]])
    for scale, turn in ((1.0, 0.0), (0.4, 0.15), (2.5, -0.3)):
        Kd = np.array([[60. * scale, 0, 50 * scale - 0.5], [0, 60. * scale, 40 * scale - 0.5], [0, 0, 1]])
        d = rng.uniform(0.2, 5.0, (int(80 * scale), int(100 * scale)))
        d[rng.random(d.shape) < 0.2], d[0, 0] = 0.0, np.nan
        pose = yaw(turn, [0.05, -0.02, -0.5])  # half a metre ahead: some points land behind the colour camera
        a = register_depth(d, Kd, pose, Kc, (80, 60))
        np.testing.assert_array_equal(a, register_depth_reference(d, Kd, pose, Kc, (80, 60)))
        assert 0.2 < (a > 0).mean() < 1.0


def test_registration_falls_back_to_numpy_with_one_warning(monkeypatch):
    import warnings

    from lrm4d_ros.io import register

    def broken(*args):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(register, "_STATE", [])
    monkeypatch.setattr(register, "_register", broken)
    Kd = np.array([[30., 0, 15.5], [0, 30., 11.5], [0, 0, 1]])
    d = np.random.default_rng(4).uniform(0.5, 3.0, (24, 32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [register.register_depth(d, Kd, np.eye(4), Kd, (32, 24)) for _ in range(2)]
    ours = [w for w in caught if "compiled depth registration unavailable" in str(w.message)]
    assert len(ours) == 1 and "no compiler here" in str(ours[0].message) and "numpy's is used" in str(ours[0].message)
    for a in got:
        np.testing.assert_array_equal(a, register.register_depth_reference(d, Kd, np.eye(4), Kd, (32, 24)))


def test_a_depth_camera_in_its_own_frame_is_registered(tmp_path):
    """A colour camera and a depth camera 5 cm apart (TF static between their optical frames), depth at a quarter
    of the colour's pixels and 4 ms late: the contract bag's depth is the plane's depth in the colour camera."""
    t = rosbags_types()
    Kc = np.array([[60., 0, 31.5], [0, 60., 23.5], [0, 0, 1]])
    Kd = np.array([[30., 0, 15.5], [0, 30., 11.5], [0, 0, 1]])
    colour_in_world = yaw(0.0, [0.0, 0.0, 0.0])
    entries = [(T0 - 10, "/tf_static", t.TFMessage(transforms=[
        transform_msg(colour_in_world, T0, "world", "cam_color_optical"),
        transform_msg(DEPTH_IN_COLOUR, T0, "cam_color_optical", "cam_depth_optical")]))]
    depth = _plane_depth(Kd, DEPTH_IN_COLOUR, (32, 24), PLANE_N, PLANE_C).astype(np.float32)
    for f in range(2):
        s = T0 + f * 100_000_000
        entries += [(s, "/cam/color/image_raw", image_msg(np.full((48, 64, 3), 0.5), s, "cam_color_optical")),
                    (s, "/cam/color/camera_info", camera_info_msg(Kc, 64, 48, s, "cam_color_optical")),
                    (s + 4_000_000, "/cam/depth/image_rect_raw", depth_msg(depth, s + 4_000_000, "cam_depth_optical")),
                    (s + 4_000_000, "/cam/depth/camera_info", camera_info_msg(Kd, 32, 24, s, "cam_depth_optical"))]
    write_entries(tmp_path / "robot", entries)
    summary = convert_bag(tmp_path / "robot", tmp_path / "contract", {"cam": "/cam/color/image_raw"},
                          depths={"cam": "/cam/depth/image_rect_raw"})
    assert summary["views"] == 2 and "registered from frame 'cam_depth_optical'" in summary["text"], summary["text"]
    views = read_bag(tmp_path / "contract")
    truth = _plane_depth(Kc, np.eye(4), (64, 48), PLANE_N, PLANE_C)
    # the colour pixels whose surface point the depth camera sees (it is turned 4.6 degrees: not all of them)
    v, u = np.mgrid[0:48, 0:64].astype(np.float64)
    points = np.linalg.inv(Kc) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)]) * truth.ravel()
    in_depth = np.linalg.inv(DEPTH_IN_COLOUR) @ np.vstack([points, np.ones(u.size)])
    ud, vd = (Kd @ in_depth[:3])[:2] / in_depth[2]
    seen = ((ud > 0) & (ud < 31) & (vd > 0) & (vd < 23)).reshape(48, 64)
    for d in views.depths.numpy():
        m = d > 0
        assert m[seen].mean() > 0.97 and 0.7 < seen.mean() < 0.95
        assert np.abs(d[m] / truth[m] - 1).max() < 0.02
    with pytest.raises(ConvertError, match="needs the depth camera's camera_info"):
        convert_bag(tmp_path / "robot", tmp_path / "c2", {"cam": "/cam/color/image_raw"},
                    depths={"cam": "/cam/depth/image_rect_raw"}, depth_infos={"cam": "/cam/color/camera_info"})


def test_without_cameras_it_lists_the_bag_and_its_suggestion_converts(tmp_path, capsys):
    src = write_robot_bag(tmp_path / "robot", tf_end_ns=T0 + 10**9)
    assert main(["convert-bag", str(src), "--out", str(tmp_path / "out")]) == 2
    text = capsys.readouterr().out
    assert "colour  /robot/side/image_raw  (Image bgr8, frame 'side_optical', 4 messages)" in text
    assert "TF      5 frames, root(s) ['odom']" in text
    command = text.split("a command for this bag (check the names and the depth pairing):\n")[1]
    argv = command.replace("\\\n", " ").split()
    assert argv[:2] == ["lrm4d", "convert-bag"] and "--depth" in argv
    assert "front=/robot/front/color/image_raw/compressed" in argv and "side=/robot/side/image_raw" in argv
    assert "front=/robot/front/aligned_depth_to_color/image_raw" in argv
    assert main(argv[1:]) == 0  # the suggestion runs as printed
    views = read_bag(tmp_path / "out")
    assert views.camera_names == ["front", "side"] and len(views) == 2 * FRAMES
    assert float(views.depths[views.camera_ids == 0].max()) > 0


def test_poses_from_odometry_and_pose_topics(tmp_path):
    """No /tf for the moving base: its odometry (nav_msgs/Odometry) joins the tree through --pose-topic; a
    PoseStamped of a frame needs that frame's name."""
    entries = _side_camera_on_odometry(3, 25, mocap=True)
    write_entries(tmp_path / "robot", entries)
    cams = {"side": "/robot/side/image_raw"}
    # without them only the static mount is known: the poses are the camera's in the base's frame
    assert convert_bag(tmp_path / "robot", tmp_path / "a", cams)["world_frame"] == "base_link"
    with pytest.raises(ConvertError, match=r"names no child frame: give it as /mocap/rig=FRAME"):
        convert_bag(tmp_path / "robot", tmp_path / "b", cams, pose_topics={"/mocap/rig": ""})
    for topics in ({"/odom": ""}, {"/mocap/rig": "base_link"}):
        out = tmp_path / f"c{len(list(tmp_path.iterdir()))}"
        summary = convert_bag(tmp_path / "robot", out, cams, pose_topics=topics)
        assert summary["views"] == 3 and summary["world_frame"] == "odom", summary["text"]
        views = read_bag(out)
        for i in range(3):
            np.testing.assert_allclose(views.camtoworlds[i].numpy(), base_pose(int(views.stamps_ns[i])) @ SIDE_OPTICAL,
                                       atol=1e-9)
    assert main(["convert-bag", str(tmp_path / "robot"), "--out", str(tmp_path / "d"), "--camera",
                 f"side={cams['side']}", "--pose-topic", "/odom"]) == 0


def test_a_bag_without_poses_is_refused(tmp_path):
    s = T0
    write_entries(tmp_path / "robot", [(s, "/cam/image_raw", image_msg(np.zeros((H, W, 3)), s, "cam")),
                                        (s, "/cam/camera_info", camera_info_msg(K, W, H, s, "cam"))])
    with pytest.raises(ConvertError, match=r"no /tf or /tf_static .* and no --pose-topic was given"):
        convert_bag(tmp_path / "robot", tmp_path / "out", {"cam": "/cam/image_raw"})


def test_cameras_in_separate_tf_trees_are_refused_and_the_listing_says_why(tmp_path, capsys):
    """A bag recorded without /tf keeps only /tf_static's per-camera trees: converting cameras of two trees is
    refused, naming each camera's root (before, one camera's tree became the world and the other camera's images
    were skipped with exit 0); one tree's cameras convert; the listing warns of the split."""
    t = rosbags_types()
    entries = [(T0 - 100, "/tf_static", t.TFMessage(transforms=[
        transform_msg(OPTICAL, T0, f"{c}_link", f"{c}_optical") for c in ("a", "b")]))]
    for f in range(2):
        s = T0 + f * 100_000_000
        for c in ("a", "b"):
            entries += [(s, f"/{c}/image_raw", image_msg(np.full((H, W, 3), 0.3), s, f"{c}_optical")),
                        (s, f"/{c}/camera_info", camera_info_msg(K, W, H, s, f"{c}_optical"))]
    write_entries(tmp_path / "robot", entries)
    cams = {"a": "/a/image_raw", "b": "/b/image_raw"}
    with pytest.raises(ConvertError, match=r"not all connected to the world frame 'a_link' .*: camera b is under "
                                           r"'b_link' \(roots \['a_link', 'b_link'\]\)"):
        convert_bag(tmp_path / "robot", tmp_path / "ab", cams)
    assert not (tmp_path / "ab").exists()
    assert convert_bag(tmp_path / "robot", tmp_path / "a", {"a": cams["a"]})["views"] == 2
    assert main(["convert-bag", str(tmp_path / "robot"), "--out", str(tmp_path / "x")]) == 2
    assert "the TF tree falls apart into several trees" in capsys.readouterr().out


def test_the_listing_knows_a_contract_bag_and_suggests_pose_topics(tmp_path, capsys):
    """convert-bag on a contract bag says it needs no converting; on a bag whose moving base is on odometry, the
    suggested command takes that topic (and runs as printed)."""
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag

    write_bag(generate(1, SceneConfig(frames=2, cameras=2, height=H, width=W)), tmp_path / "contract")
    assert main(["convert-bag", str(tmp_path / "contract"), "--out", str(tmp_path / "c")]) == 2
    assert "is a contract bag already (cameras ['cam0', 'cam1']" in capsys.readouterr().out

    entries = _side_camera_on_odometry(2, 15)
    write_entries(tmp_path / "robot", entries)
    assert main(["convert-bag", str(tmp_path / "robot"), "--out", str(tmp_path / "out")]) == 2
    text = capsys.readouterr().out
    assert "pose    /odom  (Odometry, frame 'odom' -> 'base_link', 17 messages)" in text
    argv = text.split("a command for this bag (check the names and the depth pairing):\n")[1].replace("\\\n", " ")
    assert "--pose-topic /odom" in argv
    assert main(argv.split()[1:]) == 0
    assert read_bag(tmp_path / "out").camera_names == ["robot_side"]
    capsys.readouterr()


def _side_camera_on_odometry(frames: int, odometry_to: int, mocap: bool = False) -> list:
    """Entries of a bag whose side camera is mounted on base_link (/tf_static) and whose base moves on /odom
    (nav_msgs/Odometry, odom -> base_link; with mocap, also on /mocap/rig, a PoseStamped of base_link): no /tf."""
    from lrm4d_ros.io.messages import header_msg, pose_msg

    t, types = rosbags_types(), TYPESTORE.types
    Odometry, PWC = types["nav_msgs/msg/Odometry"], types["geometry_msgs/msg/PoseWithCovariance"]
    Twist, TwistWC, Vector3 = types["geometry_msgs/msg/Twist"], types["geometry_msgs/msg/TwistWithCovariance"], \
        types["geometry_msgs/msg/Vector3"]
    entries = [(T0 - 100, "/tf_static", t.TFMessage(transforms=[transform_msg(SIDE_OPTICAL, T0, "base_link",
                                                                              "side_optical")]))]
    for f in range(frames):
        s = T0 + f * 100_000_000
        entries += [(s, "/robot/side/image_raw", image_msg(np.full((H, W, 3), 0.3), s, "side_optical")),
                    (s, "/robot/side/camera_info", camera_info_msg(K, W, H, s, "side_optical"))]
    zero = Vector3(x=0.0, y=0.0, z=0.0)
    for k in range(-2, odometry_to):
        s = T0 + k * 10_000_000
        pose = pose_msg(base_pose(s), s, "odom").pose
        entries.append((s, "/odom", Odometry(header=header_msg(s, "odom"), child_frame_id="base_link",
                                             pose=PWC(pose=pose, covariance=np.zeros(36)),
                                             twist=TwistWC(twist=Twist(linear=zero, angular=zero),
                                                           covariance=np.zeros(36)))))
        if mocap:
            entries.append((s, "/mocap/rig", pose_msg(base_pose(s), s, "odom")))
    return entries
