"""The node with depth topics (issue 14): depth paired with its colour image by stamp reaches the model as
ViewSet.depths; the node keeps reconstructing when depth stops, takes depth that arrives late, and refuses
malformed depth with a counted reason while the colour view still goes in. Real rclpy, sim time from /clock."""
import time

import numpy as np
import pytest
import torch

from conftest import require_ros_interfaces

require_ros_interfaces()
from lrm4d_ros.ros.inprocess import InProcessSession, wait_for  # noqa: E402

from lrm4d_ros.checkpoint import save_model  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.io.messages import depth_msg, image_msg  # noqa: E402
from lrm4d_ros.model import LRM4D, LRM4DConfig  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402

DOMAIN_ID = 74
FRAMES, CAMS, H, W = 8, 3, 32, 48


def reasons(st) -> dict:
    return dict(zip(st.rejection_reasons, st.rejection_counts))


def test_node_reconstructs_with_depth_and_survives_missing_late_and_bad_depth(tmp_path):
    scene = generate(3, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, synchronized=True,
                                    fps_range=(10.0, 10.0), num_primitives=(2, 3), ground_prob=1.0))
    assert scene.depths is not None and float(scene.depths.max()) > 0
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": CAMS, "max_input_views": FRAMES * CAMS, "window_seconds": 30.0,
              "input_queue_depth": 50, "virtual_camera_names": [],
              **{f"cameras.{c}.depth_topic": f"{c}/depth" for c in scene.camera_names}}
    session = InProcessSession(DOMAIN_ID, scene, params)
    seen = []  # the ViewSets the model was given
    original = session.node.reconstructor.reconstruct
    session.node.reconstructor.reconstruct = lambda views, norm=None: (seen.append(views), original(views, norm))[1]
    key = {(int(s), int(c)): i for i, (s, c) in enumerate(zip(scene.stamps_ns, scene.camera_ids))}
    pub = session.publisher

    def frame(f):
        return range(f * CAMS, (f + 1) * CAMS)

    def newest_from(indices):
        """The latest reconstruction whose newest view is one of the scene's views `indices`."""
        stamps = {int(scene.stamps_ns[i]) for i in indices}
        return wait_for(lambda: next((v for v in reversed(seen) if int(v.stamps_ns.max()) in stamps), None), 30.0,
                        f"a reconstruction reaching views {list(indices)}")

    def depth_of(views):
        """scene index -> depth map the model got, for every view."""
        return {key[(int(s), int(c))]: d for s, c, d in zip(views.stamps_ns, views.camera_ids, views.depths)}

    try:
        session.publish_camera_infos()
        # 1. colour + depth: the model gets the depth bit-exactly (32FC1), paired by stamp. A view's depth message
        # follows its colour: the node may reconstruct in between and again once the depth is attached (part 3),
        # so wait for the reconstruction that has every depth, and for its status.
        for f in range(2):
            for i in frame(f):
                pub.publish(i)
        views = wait_for(lambda: next((v for v in reversed(seen) if len(v) == 2 * CAMS and all(
            float(depth_of(v)[i].max()) > 0 for i in range(2 * CAMS))), None), 30.0,
            "a reconstruction of the first two frames with their depth")
        got = depth_of(views)
        for i in range(2 * CAMS):
            np.testing.assert_array_equal(got[i].numpy(), scene.depths[i].numpy())
        st = session.wait_status(lambda s: s.views_used == 2 * CAMS and sum(s.depth_views_per_camera) == 2 * CAMS,
                                 20.0, "a status of that reconstruction")
        assert list(st.depth_views_per_camera) == [2] * CAMS

        # 2. depth stops: colour views still go in; while most of a camera's views have depth the model gets those
        # and, to reach the newest moment, the newest view without (selection.with_depth_first)
        for i in frame(2):
            pub.publish(i, depth=False)
        got = depth_of(newest_from(frame(2)))
        assert len(got) == 2 * CAMS + 1 and all(float(got[i].max()) > 0.0 for i in (*frame(0), *frame(1)))
        assert [float(got[i].abs().max()) for i in frame(2) if i in got] == [0.0]

        # 3. depth arrives late (after its colour view was reconstructed): it is attached and reconstructed again
        for i in frame(3):
            pub.publish(i, depth=False)
        newest_from(frame(3))
        n_before = len(seen)
        for i in frame(3):
            pub.depth_pubs[scene.camera_names[int(scene.camera_ids[i])]].publish(pub.depth_message(i))
        views = wait_for(lambda: next((v for v in seen[n_before:] if all(
            float(depth_of(v).get(i, torch.zeros(1)).max()) > 0 for i in frame(3))), None), 30.0,
            "a reconstruction with the late depth")
        for i in frame(3):
            np.testing.assert_array_equal(depth_of(views)[i].numpy(), scene.depths[i].numpy())
        assert not set(frame(2)) & depth_of(views).keys()  # the views without depth stay out where others have it

        # 4. malformed depth: wrong size, a colour encoding, no measurement at all; each colour view still goes in
        st0 = session.status()
        kept0 = sum(st0.kept_per_camera)
        bad = [depth_msg(np.ones((H // 2, W // 2), np.float32), 0, "", types=RCLPY),
               image_msg(np.zeros((H, W, 3), np.uint8), 0, "", types=RCLPY),
               depth_msg(np.full((H, W), np.nan, np.float32), 0, "", types=RCLPY)]
        for i, msg in zip(frame(4), bad):
            name = scene.camera_names[int(scene.camera_ids[i])]
            msg.header.stamp = pub.messages(i)[2].header.stamp
            pub.publish(i, depth=False)
            pub.depth_pubs[name].publish(msg)
        st = session.wait_status(lambda s: sum(s.kept_per_camera) == kept0 + CAMS
                                 and reasons(s).get("depth_size", 0) == reasons(st0).get("depth_size", 0) + 1
                                 and reasons(s).get("depth_invalid", 0) == reasons(st0).get("depth_invalid", 0) + 2,
                                 20.0, "the bad depths counted and their colour views kept")
        assert st.views_rejected == st0.views_rejected  # no colour view was refused for its depth
        got = depth_of(newest_from(frame(4)))
        assert [float(got[i].abs().max()) for i in frame(4) if i in got] == [0.0]
    finally:
        session.close()


def test_a_frame_waits_for_depth_that_follows_its_colour(tmp_path):
    """Depth published after its colour image (an aligning node downstream of the camera driver): the node used to
    reconstruct the newest frame at once, without its depth, and again once it came; now a depth camera's newest
    view waits for its depth (at most gather_s), and the first reconstruction of a frame already has it."""
    scene = generate(5, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, synchronized=True,
                                    fps_range=(10.0, 10.0), num_primitives=(2, 3), ground_prob=1.0))
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": CAMS, "max_input_views": FRAMES * CAMS, "window_seconds": 30.0, "gather_s": 3.0,
              "input_queue_depth": 50, "virtual_camera_names": [],
              **{f"cameras.{c}.depth_topic": f"{c}/depth" for c in scene.camera_names}}
    session = InProcessSession(DOMAIN_ID, scene, params)
    seen = []
    original = session.node.reconstructor.reconstruct
    session.node.reconstructor.reconstruct = lambda views, norm=None: (seen.append(views), original(views, norm))[1]
    pub = session.publisher
    try:
        session.publish_camera_infos()
        for f in range(2):  # depth with its colour: the cameras are depth cameras whose depth comes
            for i in range(f * CAMS, (f + 1) * CAMS):
                pub.publish(i)
            wait_for(lambda: any(len(v) == (f + 1) * CAMS for v in seen), 30.0, f"frame {f} reconstructed")
        n = len(seen)
        frame = range(2 * CAMS, 3 * CAMS)
        for i in frame:
            pub.publish(i, depth=False)
        time.sleep(0.5)  # the depth half a second later (within gather_s)
        assert len(seen) == n, "frame 2 was reconstructed before its depth came"
        for i in frame:
            pub.depth_pubs[scene.camera_names[int(scene.camera_ids[i])]].publish(pub.depth_message(i))
        views = wait_for(lambda: next((v for v in seen[n:] if len(v) == 3 * CAMS), None), 30.0,
                         "frame 2 reconstructed")
        assert views.depths is not None and all(float(d.max()) > 0 for d in views.depths)
    finally:
        session.close()


def test_depth_in_its_own_frame_is_registered_onto_the_colour_image(tmp_path):
    """A depth camera as a RealSense publishes it by default: its own optical frame (5 cm and 4.6 deg off the colour
    camera's, on /tf_static), half the colour's resolution, its own camera_info beside its image, stamped 4 ms
    apart. The node registers it (io/register.py) onto the colour image: the plane's depth in the colour camera;
    a depth that comes before its camera_info is held for it."""
    from lrm4d_ros.ros.tf_listener import TF_STATIC_QOS
    from lrm4d_ros.io.messages import camera_info_msg, transform_msg
    from sensor_msgs.msg import CameraInfo, Image
    from test_convert import DEPTH_IN_COLOUR, PLANE_C, PLANE_N, _plane_depth

    scene = generate(4, SceneConfig(frames=2, cameras=1, height=H, width=W, num_primitives=(1, 1)))
    Kc = scene.Ks[0].numpy()
    Kd = np.array([[Kc[0, 0] / 2, 0, (W / 2 - 1) / 2], [0, Kc[1, 1] / 2, (H / 2 - 1) / 2], [0, 0, 1]])
    truth = _plane_depth(Kc, np.eye(4), (W, H), PLANE_N, PLANE_C)
    depth = _plane_depth(Kd, DEPTH_IN_COLOUR, (W // 2, H // 2), PLANE_N, PLANE_C).astype(np.float32)
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": ["cam0"], "checkpoint": str(ckpt), "device": "cpu", "min_views": 2,
              "window_seconds": 30.0, "virtual_camera_names": [], "depth_tolerance_s": 0.01,
              "cameras.cam0.depth_topic": "cam0/depth/image_rect_raw"}
    session = InProcessSession(82, scene, params)
    client = session.client
    depth_pub = client.create_publisher(Image, "/cam0/depth/image_rect_raw", 10)
    info_pub = client.create_publisher(CameraInfo, "/cam0/depth/camera_info", 10)
    client.create_publisher(RCLPY.TFMessage, "/tf_static", TF_STATIC_QOS).publish(RCLPY.TFMessage(transforms=[
        transform_msg(DEPTH_IN_COLOUR, 0, "cam0_optical_frame", "cam0_depth_optical_frame", RCLPY)]))
    try:
        wait_for(lambda: depth_pub.get_subscription_count() and info_pub.get_subscription_count(), 20.0,
                 "the node's depth subscriptions")
        session.publish_camera_infos()
        stamps = [int(s) for s in scene.stamps_ns]
        # before the depth camera's camera_info (a node starting up): held, then registered once it comes
        session.publisher.publish(0, depth=False)
        depth_pub.publish(depth_msg(depth, stamps[0] + 4_000_000, "cam0_depth_optical_frame", types=RCLPY))
        time.sleep(0.3)
        info_pub.publish(camera_info_msg(Kd, W // 2, H // 2, stamps[1], "cam0_depth_optical_frame", RCLPY))
        session.publisher.publish(1, depth=False)
        depth_pub.publish(depth_msg(depth, stamps[1] + 4_000_000, "cam0_depth_optical_frame", types=RCLPY))
        snap = wait_for(lambda: (v := session.node.window.snapshot()) is not None and v.depths is not None
                        and len(v) == 2 and float(v.depths.flatten(1).amax(1).min()) > 0 and v, 20.0,
                        "both views' registered depth in the window")
        v, u = np.mgrid[0:H, 0:W].astype(np.float64)
        p = np.linalg.inv(DEPTH_IN_COLOUR) @ np.stack([*(np.linalg.inv(Kc) @ np.stack([u, v, np.ones_like(u)]).reshape(
            3, -1)) * truth.ravel(), np.ones(H * W)])
        x, y = Kd[0, 0] * p[0] / p[2] + Kd[0, 2], Kd[1, 1] * p[1] / p[2] + Kd[1, 2]
        seen = ((x > 1) & (x < W // 2 - 2) & (y > 1) & (y < H // 2 - 2)).reshape(H, W)  # a pixel inside
        for got in snap.depths.numpy():
            m = got > 0
            # the colour pixels whose surface point the depth camera sees get a depth (the colour image is twice
            # as fine: each depth pixel's footprint fills its colour pixels)
            assert m[seen].mean() > 0.99 and seen.mean() > 0.6
            # each colour pixel holds the depth of the depth pixel over it (piecewise constant, as
            # depth_image_proc's)
            err = np.abs(got[m] / truth[m] - 1)
            assert np.median(err) < 0.01 and err.max() < 0.03
        assert "depth_frame" not in session.status().rejection_reasons

        # a depth frame TF never names: held, the oldest refused once 8 more wait, saying what is missing
        for k in range(9):
            depth_pub.publish(depth_msg(depth, stamps[1] + 5_000_000 + k, "elsewhere_depth_frame", types=RCLPY))
        st = session.wait_status(lambda s: "depth_frame" in s.rejection_reasons, 20.0, "the depth refused")
        assert "no TF cam0_optical_frame <- elsewhere_depth_frame" in st.last_error
        assert reasons(st)["depth_frame"] == 1
        # the 8 still held are refused too once held STALLED x pose_wait_s (nothing more comes: a short stream)
        st = session.wait_status(lambda s: reasons(s)["depth_frame"] == 9, 20.0, "the held depths refused")
        assert "elsewhere_depth_frame" in st.last_error and "(held " in st.last_error
    finally:
        session.close()


@pytest.mark.filterwarnings("ignore:the depth images:RuntimeWarning")  # what the test makes them hold
def test_the_status_names_what_the_inputs_held_unlike_the_training_data(tmp_path):
    """Depth written in millimetres along each pixel's ray (a renderer's distance_to_camera, scaled wrong): the
    node reconstructs with it mended and its status says both, for every reconstruction (input_findings)."""
    from dataclasses import replace

    from lrm4d_ros.measured_depth import ray_lengths

    h, w = 64, 96  # (at 32x48 a window's planar tiles and partner pixels are too few to tell)
    scene = generate(3, SceneConfig(frames=2, cameras=CAMS, height=h, width=w, synchronized=True,
                                    fps_range=(10.0, 10.0), num_primitives=(2, 3), ground_prob=1.0))
    written = replace(scene, depths=scene.depths * ray_lengths(scene.Ks, h, w).float() * 1000)
    torch.manual_seed(0)  # (a tiny model taking 64-pixel views: the checks read the model's input size)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1, image_size=64)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": 2 * CAMS, "max_input_views": 2 * CAMS, "window_seconds": 30.0,
              "virtual_camera_names": [], **{f"cameras.{c}.depth_topic": f"{c}/depth" for c in scene.camera_names}}
    session = InProcessSession(DOMAIN_ID, written, params)
    try:
        session.publish_camera_infos()
        for i in range(len(written)):
            session.publisher.publish(i)
        st = session.wait_status(lambda s: s.views_used == 2 * CAMS and len(s.input_findings) >= 2, 30.0,
                                 "a reconstruction of both frames that names its findings")
        told = list(st.input_findings)
        assert any("multiplied by 0.001" in t for t in told), told
        assert any("distance along its ray" in t and "converted to z" in t for t in told), told
    finally:
        session.close()


def test_the_status_names_cameras_whose_stamps_or_focal_length_are_off_the_others(tmp_path):
    """A moving head rig (validation scene 1002141) whose camera cam0 is posed 20 ms behind its images and whose
    cam2's fx, fy are 5 % long: the node's reading of its rig (rig_check_s) names both in ~/status, with what to set,
    and no other camera."""
    from stamp_support import head_rig

    late = head_rig(0.02, focal=1.05)
    torch.manual_seed(0)  # (a tiny model taking 128-pixel views: the reading is at the model's input size)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1, image_size=128)))
    params = {"camera_names": list(late.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": 24, "max_input_views": 24, "window_seconds": 30.0, "rig_check_s": 0.2,
              "refine_steps": 0, "virtual_camera_names": [],
              **{f"cameras.{c}.depth_topic": f"{c}/depth" for c in late.camera_names}}
    session = InProcessSession(DOMAIN_ID, late, params)
    try:
        session.publish_camera_infos()
        for i in range(len(late)):
            session.publisher.publish(i)
        late_text = "camera cam0's images agree with the other cameras' at its stamps +20 ms"
        focal_text = "camera cam2's images agree with the other cameras' with its camera_info fx, fy x0.951"

        def both(s):  # (a reading of the first views, before every frame is in, may read 1 % or 5 ms off)
            told = [t for t in s.input_findings if "images agree" in t]
            return s.views_used == 24 and len(told) == 2 and told[0].startswith(late_text) \
                and told[1].startswith(focal_text)

        st = session.wait_status(both, 60.0, "a reconstruction whose status names the late and the mis-focused camera")
        assert "cameras.cam0.time_offset_s: 0.02" in st.input_findings[-2]
    finally:
        session.close()
