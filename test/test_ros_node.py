"""The reconstruct node under real rclpy (FastDDS, loopback, its own domain): a generated scene is replayed on
the contract topics, the node reconstructs with a small randomly initialised model, and the outputs, the
render_view service and every bad-input path are checked. The shipped-checkpoint PSNR test is test_ros_psnr.py.
"""
import math
import re
import threading
import time

import numpy as np
import pytest
import torch

from conftest import require_ros_interfaces  # noqa: E402

require_ros_interfaces()
from lrm4d_ros.ros.inprocess import InProcessSession, wait_for  # noqa: E402
from lrm4d_ros.io.ingest import INFO_WAIT  # noqa: E402
from lrm4d_ros.window import RejectedInput  # noqa: E402
from lrm4d_ros.ros.interfaces import RenderView  # noqa: E402

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from lrm4d_ros.checkpoint import save_model  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.io.messages import (camera_info_msg, float_image_msg, image_depth, image_msg, image_rgb,  # noqa: E402
                                   pack_rgb, pointcloud2_array, pose_msg, time_msg, unpack_rgb)
from lrm4d_ros.model import LRM4D, LRM4DConfig  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402

DOMAIN_ID = 71
FRAMES, CAMS, H, W = 4, 4, 48, 64
EXTRA_CAM = "camx"  # subscribed by the node, but no camera_info is ever published for it


@pytest.fixture(scope="module")
def scene():
    cfg = SceneConfig(frames=FRAMES + 3, cameras=CAMS, height=H, width=W, fps_range=(10.0, 10.0),
                      num_primitives=(2, 3))
    return generate(5, cfg)  # frame-major: view k*CAMS + c


@pytest.fixture(scope="module")
def session(scene, tmp_path_factory):
    torch.manual_seed(0)
    ckpt = save_model(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors",
                      LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {
        "camera_names": list(scene.camera_names) + [EXTRA_CAM],
        "checkpoint": str(ckpt), "device": "cpu",
        "reconstruction_rate_hz": 10.0, "min_views": 4, "max_input_views": 8, "window_seconds": 30.0,
        "input_queue_depth": 50, "render_service": "/render_view", "max_concurrent_renders": 1,
        "virtual_camera_names": ["overview"], "virtual_rate_hz": 10.0,
        "virtual_cameras.overview.position": [0.0, -3.0, 1.5],
        "virtual_cameras.overview.orientation_wxyz": [0.5257311, -0.8506508, 0.0, 0.0],
        "virtual_cameras.overview.width": 40, "virtual_cameras.overview.height": 30,
    }
    s = InProcessSession(DOMAIN_ID, scene, params)
    s.virtual = {}
    from sensor_msgs.msg import CameraInfo
    for topic, kind in (("image", Image), ("depth", Image), ("camera_info", CameraInfo)):
        s.client.create_subscription(kind, f"/lrm4d_reconstruct/overview/{topic}",
                                     lambda m, t=topic: s.virtual.__setitem__(t, m), 10)
    s.publish_camera_infos()
    for i in range(FRAMES * CAMS):
        s.publisher.publish(i)
    yield s
    s.close()


def stamp(ns: int):
    return time_msg(ns, RCLPY)


def request_for(scene, i, stamp_ns=None, **flags) -> RenderView.Request:
    req = RenderView.Request()
    req.camera_pose = pose_msg(scene.camtoworlds[i].numpy(), 0, "world", RCLPY).pose
    K = scene.Ks[i].numpy()
    req.fx, req.fy, req.cx, req.cy, req.width, req.height = K[0, 0], K[1, 1], K[0, 2], K[1, 2], W, H
    req.stamp = stamp(int(scene.stamps_ns[i]) if stamp_ns is None else stamp_ns)
    req.return_color, req.return_depth, req.return_alpha = flags.get("color", True), flags.get("depth", True), \
        flags.get("alpha", True)
    return req


def test_gaussians_and_status_published(session, scene):
    n = FRAMES * CAMS
    newest = stamp(int(scene.stamps_ns[:n].max()))
    st = session.wait_status(lambda s: s.views_kept == n and s.window_end == newest and s.views_used == 8,
                             40.0, f"{n} views received and a reconstruction of 8 up to the newest")
    assert st.camera_names == list(scene.camera_names) + [EXTRA_CAM]
    assert sum(st.views_per_camera) == 8 and st.views_per_camera[-1] == 0
    assert st.views_rejected == 0 and st.views_dropped == 0 and st.views_received == n
    assert list(st.kept_per_camera) == list(st.received_per_camera) == [FRAMES] * CAMS + [0]
    assert st.reconstruction_time > 0 and math.isfinite(st.latency) and st.latency >= st.reconstruction_time
    session.wait_settled()  # the status may predate the last view's arrival; compare with the final reconstruction
    rec = session.node._latest[0]
    g = rec.slice(rec.window.end_ns, guessed=False)  # the Gaussians whose depth the model guessed left out
    assert rec.guessed is not None and len(rec.slice(rec.window.end_ns)) > len(g)
    # An earlier reconstruction can share the end stamp: wait for the final one's cloud (its size) to arrive.
    cloud = wait_for_cloud(session, st, len(g))
    pts = pointcloud2_array(cloud)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "opacity", "scale_0", "scale_1", "scale_2",
                                              "rot_0", "rot_1", "rot_2", "rot_3"]
    assert cloud.header.frame_id == "world" and len(pts) > 0
    session.wait_status(lambda s: s.num_gaussians_published == len(pts) and s.num_gaussians_4d >= len(pts), 20.0,
                        "a status counting the final reconstruction's Gaussians")
    # the cloud is the node's own reconstruction sliced at the window end, in metres
    np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], 1), g.means.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(unpack_rgb(pts["rgb"]), unpack_rgb(pack_rgb(g.colors.numpy())))
    np.testing.assert_allclose(unpack_rgb(pts["rgb"]) / 255.0, g.colors.clamp(0, 1).numpy(), atol=0.5 / 255 + 1e-6)
    quat_norm = np.linalg.norm(np.stack([pts[f"rot_{i}"] for i in range(4)], 1), axis=1)
    np.testing.assert_allclose(quat_norm, 1.0, atol=1e-5)
    assert ((pts["opacity"] >= 0) & (pts["opacity"] <= 1)).all()
    assert st.window_start == stamp(int(scene.stamps_ns[:n].min()))  # the selection keeps both ends


def wait_for_cloud(session, st, points: int):
    """The newest cloud of `points` points stamped at the status' window end."""
    end = st.window_end.sec * 10**9 + st.window_end.nanosec
    return wait_for(lambda: next((c for c in reversed(session.clouds)
                                  if c.header.stamp.sec * 10**9 + c.header.stamp.nanosec == end
                                  and c.width * c.height == points), None),
                    20.0, "the Gaussians of the latest window")


def test_render_view_matches_reconstruction_at_the_newest_frame(session, scene):
    session.wait_status(lambda s: s.reconstructions >= 1, 40.0, "a reconstruction")
    session.wait_settled()  # no reconstruction may replace the one that serves the request below
    # camera 2 at the newest frame, where virtual cameras render, from the latest reconstruction (the default policy
    # gives this session's 4 cameras and 8 views the newest frame whole and two earlier instants of two cameras each)
    i = (FRAMES - 1) * CAMS + 2
    resp = session.call(request_for(scene, i))
    assert resp.success, resp.message
    assert (resp.color.encoding, resp.depth.encoding, resp.alpha.encoding) == ("rgb8", "32FC1", "32FC1")
    assert (resp.color.width, resp.color.height) == (W, H)
    assert resp.stamp_rendered == stamp(int(scene.stamps_ns[i]))
    rec = session.node._latest[0]
    out = rec.render(scene.camtoworlds[i:i + 1], scene.Ks[i:i + 1], W, H, scene.stamps_ns[i:i + 1])
    # rounded in float64 as image_msg rounds (a colour of exactly x.5 / 255 rounds differently in float32)
    expect = np.clip(np.rint(out.colors[0].numpy().astype(np.float64) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(image_rgb(resp.color), expect)
    np.testing.assert_allclose(image_depth(resp.depth), out.depths[0, ..., 0].numpy(), rtol=1e-6)
    alpha = image_depth(resp.alpha)
    np.testing.assert_allclose(alpha, out.alphas[0, ..., 0].numpy(), rtol=1e-6)
    assert alpha.max() > 0.1  # the camera sees the reconstruction

    # CameraInfo intrinsics, a zero stamp (= window end) and colour only
    req = request_for(scene, i, stamp_ns=0, depth=False, alpha=False)
    req.camera_info = camera_info_msg(scene.Ks[i].numpy(), W, H, 0, "", RCLPY)
    req.width = req.height = 0
    resp = session.call(req)
    assert resp.success and resp.depth.width == 0 and resp.color.width == W
    assert resp.stamp_rendered == stamp(rec.window.end_ns)


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: setattr(r, "stamp", stamp(1_000_000_000)), "outside the reconstructed window"),
    (lambda r: setattr(r.camera_pose.orientation, "w", 3.0), "not unit length"),
    (lambda r: setattr(r.camera_pose.position, "x", float("nan")), "non-finite"),
    (lambda r: setattr(r, "fx", 0.0), "fx, fy > 0"),
    (lambda r: (setattr(r, "width", 5000), setattr(r, "height", 5000)), "max_render_pixels"),
])
def test_render_view_bad_requests(session, scene, mutate, reason):
    session.wait_status(lambda s: s.reconstructions >= 1, 40.0, "a reconstruction")
    before = session.node._renders_refused
    req = request_for(scene, 0)
    mutate(req)
    resp = session.call(req)
    assert not resp.success and reason in resp.message and resp.color.width == 0
    assert session.node._renders_refused == before + 1
    assert session.call(request_for(scene, 0)).success  # and the node still serves


def test_flood_of_render_requests_is_refused_not_queued(session, scene):
    session.wait_status(lambda s: s.reconstructions >= 1, 40.0, "a reconstruction")
    req = request_for(scene, 0)
    req.width, req.height, req.fx, req.fy, req.cx, req.cy = 320, 240, 250.0, 250.0, 159.5, 119.5
    futures = [session.render.call_async(req) for _ in range(12)]
    wait_for(lambda: all(f.done() for f in futures), 60.0, "12 responses")
    results = [f.result() for f in futures]
    busy = [r for r in results if not r.success]
    assert any(r.success for r in results) and busy
    assert all(r.message.startswith("busy") for r in busy)
    assert session.call(request_for(scene, 0)).success


def reasons(st) -> dict:
    return dict(zip(st.rejection_reasons, st.rejection_counts))


def test_bad_input_is_rejected_with_reasons_and_good_input_still_works(session, scene):
    st0 = session.wait_status(lambda s: s.views_kept == FRAMES * CAMS and s.reconstructions >= 1, 40.0,
                              "the good views")
    cam = scene.camera_names[0]
    info_pub, pose_pub, image_pub = session.publisher.pubs[cam]
    later = int(scene.stamps_ns[-1]) + 10**9  # after every published view
    k = FRAMES * CAMS  # index of an unpublished view of camera 0 (frame FRAMES)
    expected = reasons(st0)

    def rejected_with(key, text):
        expected[key] = expected.get(key, 0) + 1
        return session.wait_status(lambda s: reasons(s) == expected and text in s.last_error, 20.0,
                                   f"rejection {key}: {text!r}")

    image_pub.publish(float_image_msg(np.zeros((H, W), np.float32), later, "", RCLPY))
    st = rejected_with("bad_encoding", "not a colour encoding")
    assert re.search(r"not a colour encoding.* \(\d+ s ago\)$", st.last_error), st.last_error  # and when
    image_pub.publish(image_msg(np.zeros((H // 2, W // 2, 3), np.uint8), later, "", types=RCLPY))
    rejected_with("size_mismatch", f"but camera_info says {W}x{H}")

    nan_pose = pose_msg(np.eye(4), later, "world", RCLPY)
    nan_pose.pose.orientation.w = float("nan")
    pose_pub.publish(nan_pose)
    rejected_with("bad_pose", "non-finite")
    skew = pose_msg(np.eye(4), later, "world", RCLPY)
    skew.pose.orientation.w, skew.pose.orientation.x = 1.0, 0.5
    pose_pub.publish(skew)
    rejected_with("bad_pose", "not unit length")

    image_pub.publish(image_msg(np.zeros((H, W, 3), np.uint8), int(scene.stamps_ns[CAMS]), "", types=RCLPY))
    rejected_with("out_of_order", "out of order")
    image_pub.publish(image_msg(np.zeros((H, W, 3), np.uint8), later + 10**12, "", types=RCLPY))
    rejected_with("future_stamp", "ahead of the clock")

    stray = session.client.create_publisher(Image, f"/{EXTRA_CAM}/image_raw", 10)
    wait_for(lambda: stray.get_subscription_count() > 0, 20.0, "the node's camx subscription")
    for j in range(INFO_WAIT + 1):  # held for a camera_info that never comes; the oldest beyond INFO_WAIT refused
        stray.publish(image_msg(np.zeros((H, W, 3), np.uint8), later + j * 10**6, "", types=RCLPY))
    rejected_with("no_camera_info", f"no camera_info received yet on /{EXTRA_CAM}/camera_info")

    # later good input is still accepted and reconstructed
    recon_before = session.status().reconstructions
    for i in range(k, k + CAMS):
        session.publisher.publish(i)
    newest = stamp(int(scene.stamps_ns[k:k + CAMS].max()))
    # A reconstruction may start while only some of the new views are in; the next one must reach the newest.
    st = session.wait_status(lambda s: s.views_kept == st0.views_kept + CAMS
                             and s.reconstructions > recon_before and s.window_end == newest, 40.0,
                             "the new frame reconstructed up to its newest view")
    assert st.views_rejected == st0.views_rejected + 5  # the images above (poses count only by reason)
    assert st.rejected_per_camera[0] == st0.rejected_per_camera[0] + 4 and st.rejected_per_camera[-1] == 1
    assert reasons(st) == expected


def test_images_that_come_before_their_camera_info_are_held_for_it(session, scene):
    # a driver publishes CameraInfo and Image together: the image's callback may run first
    camx = [c.name for c in session.node.cfg.cameras].index(EXTRA_CAM)
    held, window = session.node._ingest._awaiting_info, session.node.window
    stray = session.client.create_publisher(Image, f"/{EXTRA_CAM}/image_raw", 10)
    info = session.client.create_publisher(CameraInfo, f"/{EXTRA_CAM}/camera_info", 10)
    wait_for(lambda: stray.get_subscription_count() > 0 and info.get_subscription_count() > 0, 20.0,
             "the node's camx subscriptions")
    base = int(scene.stamps_ns[-1]) + 2 * 10**9
    for j in range(3):
        stray.publish(image_msg(np.zeros((H, W, 3), np.uint8), base + j * 10**6, "", types=RCLPY))
    last = time_msg(base + 2 * 10**6, RCLPY)
    wait_for(lambda: camx in held and held[camx][-1][1].header.stamp == last, 20.0,
             "camx's images held for its camera_info")
    n_held = len(held[camx])
    assert n_held <= INFO_WAIT and window.stats.per_camera[EXTRA_CAM].received == 0
    assert session.node._status().pending_per_camera[camx] == n_held  # held images count as pending
    info.publish(camera_info_msg(scene.Ks[0].numpy(), W, H, base, "", RCLPY))
    # every held image goes on to the window (which judges its stamp and pose as any other's)
    wait_for(lambda: camx not in held and window.stats.per_camera[EXTRA_CAM].received == n_held, 20.0,
             "camx's held images offered to the window")


def test_refusals_are_logged_per_reason_and_camera(session, monkeypatch):
    logged = []

    class Logger:
        def warning(self, text):
            logged.append(text)

    monkeypatch.setattr(session.node, "get_logger", lambda: Logger())
    node = session.node
    # one camera's stream of bad images must not hide another camera's, nor what the window drops later
    for _ in range(3):
        node._refuse("test_reason", "cam0 image: bad", 0, counted=True)
    node._refuse("test_reason", "cam2 image: bad", 2, counted=True)
    node.window.on_refusal("cam1", RejectedInput("image at 5 ns never got a pose", "test_reason"))
    assert logged == ["[test_reason] cam0 image: bad", "[test_reason] cam2 image: bad",
                      "[test_reason] cam1: image at 5 ns never got a pose"]


def test_a_frame_waits_for_live_cameras_that_have_no_view_yet(session, monkeypatch):
    # at start-up or after a pause longer than the window, the first cameras' views of an instant were the only
    # ones buffered and the frame counted as complete: the model got 2-3 of 4 synchronized cameras
    node = session.node
    names = [c.name for c in node.cfg.cameras]
    buffered = node.window.newest_per_camera()
    newest = max(buffered.values())
    monkeypatch.setattr(node.window, "newest_per_camera", lambda: {n: newest for n in buffered})
    now = time.monotonic()
    ingest = node._ingest
    monkeypatch.setattr(ingest, "_last_image_at", [now if n in buffered else -math.inf for n in names])
    monkeypatch.setattr(ingest, "_first_image_at", now - 60.0)  # long past start-up
    assert node._frame_complete()
    ingest._last_image_at[names.index(EXTRA_CAM)] = now - 1.0  # camx sent an image a second ago, none buffered
    assert EXTRA_CAM not in buffered and not node._frame_complete()
    ingest._last_image_at[names.index(EXTRA_CAM)] = now - 60.0  # a camera silent for a minute is not waited for
    assert node._frame_complete()
    # a configured camera never heard from is waited for only in the node's first seconds (start-up)
    ingest._last_image_at[names.index(EXTRA_CAM)] = -math.inf
    assert node._frame_complete()
    ingest._first_image_at = now - 1.0
    assert not node._frame_complete()


def test_the_rig_is_read_on_its_own_thread(session, scene, monkeypatch):
    """Reading a rig takes seconds on a CPU (benchmarks/results/rig_reading_cpu.txt): it runs on the rig reader's
    thread, so the reconstruction thread that asks for it goes on at once, and its findings reach ~/status. Windows
    that come while a reading is in flight are not dropped: the newest is read after it (a stream that stops
    would otherwise be told by an older window's reading; a loaded CI machine's ROS test read its first, partial
    window only)."""
    from dataclasses import replace

    from lrm4d_ros.ros import reconstruct_node

    node, started, release = session.node, threading.Event(), threading.Event()
    calls = []

    def slow_reading(views):
        calls.append((threading.current_thread().name, float(views.depths[0, 0, 0])))
        started.set()
        release.wait(10.0)
        late = "cam0" if len(calls) == 1 else "cam1"
        return {late: 0.02, "cam1" if late == "cam0" else "cam0": 0.0}, {}

    monkeypatch.setattr(reconstruct_node, "read_rig", slow_reading)
    monkeypatch.setattr(node, "_rig_read_at", -math.inf)
    t = time.perf_counter()
    node._read_rig(replace(scene, depths=torch.ones(len(scene), H, W)))
    assert time.perf_counter() - t < 1.0 and started.wait(10.0)
    for k in (2.0, 3.0):  # due again while one reading is in flight: the newest waits for it, the one before is
        node._rig_read_at = -math.inf  # superseded
        node._read_rig(replace(scene, depths=torch.full((len(scene), H, W), k)))
    release.set()
    wait_for(lambda: not node._rig_reading, 10.0, "the readings")
    assert calls == [("lrm4d_rig_0", 1.0), ("lrm4d_rig_0", 3.0)]
    assert node._rig_findings[0].startswith("camera cam1's images agree"), node._rig_findings
    with node._lock:
        node._rig_findings = ()


def test_virtual_camera_published(session):
    wait_for(lambda: len(session.virtual) == 3, 30.0, "the overview image, depth and camera_info")
    img, depth, info = session.virtual["image"], session.virtual["depth"], session.virtual["camera_info"]
    assert (img.width, img.height, img.encoding) == (40, 30, "rgb8")
    assert (depth.width, depth.height, depth.encoding) == (40, 30, "32FC1")
    assert (info.width, info.height) == (40, 30) and info.k[2] == pytest.approx(19.5)
    assert img.header.stamp == info.header.stamp == depth.header.stamp
    assert np.isfinite(image_depth(depth)).all() and depth.header.frame_id == "overview_optical_frame"


def test_a_failed_virtual_render_is_counted_once_per_reconstruction(session):
    """The virtual cameras' timer renders each new reconstruction once: one that fails is counted once (not at
    every tick) and reported, and the node goes on."""
    wait_for(lambda: len(session.virtual) == 3, 30.0, "the overview image, depth and camera_info")
    node = session.node

    class Broken:  # a Reconstruction whose renders fail
        window = node._latest[0].window
        findings = ()

        def render(self, *args, **kwargs):
            raise RuntimeError("simulated render failure")
    before = node._status().virtual_renders_failed
    with node._lock:
        kept, node._latest = node._latest, (Broken(), node._latest[1], -1)
    try:
        wait_for(lambda: node._status().virtual_renders_failed > before, 20.0, "the failed render counted")
        time.sleep(0.5)  # 5 more ticks of virtual_rate_hz 10: the same reconstruction is not tried again
        st = node._status()
        assert st.virtual_renders_failed == before + 1
        assert "virtual camera overview: RuntimeError: simulated render failure" in st.last_error
        assert "virtual_camera_failed" not in st.rejection_reasons  # not a refused input
    finally:
        with node._lock:
            if node._latest[2] == -1:
                node._latest = kept


def test_bad_parameters_refuse_to_start(session):
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode
    for name, value, reason in (("selection_policy", "random", "selection_policy"),
                                ("camera_names", ["a", "a"], "unique"),
                                ("camera_names", ["cam-0"], "camera name 'cam-0'.*Invalid topic name"),
                                ("virtual_camera_names", ["front view"], "virtual camera name"),
                                ("checkpoint", "/nonexistent.safetensors", "checkpoint not found"),
                                ("bf16", "yes", "bf16"),
                                ("min_views", 13, r"min_views 13 > max_input_views 12: the model is never given")):
        with pytest.raises((ValueError, FileNotFoundError), match=reason):
            ReconstructNode(context=session.context, parameter_overrides=[Parameter(name, value=value)])
    # a virtual camera ahead of the newest input: a reconstruction does not extrapolate, so it could never render
    with pytest.raises(ValueError, match="parameter virtual_cameras.ahead.time_offset_s"):
        ReconstructNode(context=session.context, parameter_overrides=[
            Parameter("virtual_camera_names", value=["ahead"]),
            Parameter("virtual_cameras.ahead.time_offset_s", value=0.5)])


def test_list_parameters_read_back_their_defaults(session, tmp_path):
    """camera_names left at its default reads back the cameras the node uses (it read back NOT_SET)."""
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.params import DEFAULT_CAMERAS
    from lrm4d_ros.ros.reconstruct_node import ReconstructNode

    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    node = ReconstructNode(context=session.context, parameter_overrides=[Parameter("checkpoint", value=str(ckpt)),
                                                                         Parameter("device", value="cpu")])
    try:
        assert node.get_parameter("camera_names").value == list(DEFAULT_CAMERAS) == [c.name for c in node.cfg.cameras]
    finally:
        node.destroy_node()


def test_misspelt_parameters_are_named_with_the_nearest_one(session):
    """rclpy ignores parameters a node never declares: the node says so, naming the one most like it."""
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.params import unknown_parameters
    from lrm4d_ros.ros.reconstruct_node import ReconstructNode

    node = ReconstructNode(context=session.context, parameter_overrides=[
        Parameter("depth_tolerence_s", value=0.02), Parameter("cameras.cam0.depth_topc", value="d"),
        Parameter("pose_wait_s", value=0.5), Parameter("cameras.cam9.image_topic", value="x")])
    try:
        assert unknown_parameters(node, node.cfg) == [
            "parameter 'cameras.cam0.depth_topc' is not one of this node's, ignored (did you mean "
            "'cameras.cam0.depth_topic'?)",
            "parameter 'cameras.cam9.image_topic' is for camera 'cam9', which camera_names does not list "
            "(['cam0', 'cam1', 'cam2', 'cam3']), ignored",
            "parameter 'depth_tolerence_s' is not one of this node's, ignored (did you mean 'depth_tolerance_s'?)"]
    finally:
        node.destroy_node()


def test_a_cameras_time_offset_parameter_reaches_its_ingest(session):
    """cameras.<name>.time_offset_s (test_ingest: what it does to stamps); out of its +-10 s range: refused."""
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode

    node = ReconstructNode(context=session.context, parameter_overrides=[
        Parameter("cameras.cam1.time_offset_s", value=-0.05)])
    try:
        assert [c.time_offset_s for c in node.cfg.cameras] == [0.0, -0.05, 0.0, 0.0]
        assert node._ingest.cameras[1].time_offset_ns == -50_000_000
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="cameras.cam1.time_offset_s"):
        ReconstructNode(context=session.context, parameter_overrides=[
            Parameter("cameras.cam1.time_offset_s", value=30.0)])


def test_a_camera_that_sends_nothing_is_named_with_its_topic(session):
    """A wrong topic name otherwise shows only as a smaller rig: the node warns, naming the topic and its publishers
    (none here), once per SILENT_REPEAT_S."""
    import types

    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode

    node = ReconstructNode(context=session.context, parameter_overrides=[Parameter("camera_names", value=["ghost"])])
    try:
        said = []
        node.get_logger = lambda: types.SimpleNamespace(warning=said.append)
        node._warn_silent_cameras()
        assert said == []  # too early to tell
        node._started -= 10.0
        node._warn_silent_cameras()
        node._warn_silent_cameras()
        assert len(said) == 1 and said[0].startswith("ghost: no image since the node started 10 s ago on ")
        assert "/ghost/image_raw (no publisher yet; if one should be there, check the topic name or remap it)" \
            in said[0]
    finally:
        node.destroy_node()


def test_a_camera_that_stops_while_others_send_is_named(session):
    """A driver that stops mid-run shows only as a smaller rig: the node warns once SILENT_S has passed without its
    images while another camera still sends, once per SILENT_REPEAT_S; a whole rig gone quiet is no camera's fault."""
    import types

    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import SILENT_S, ReconstructNode

    node = ReconstructNode(context=session.context, parameter_overrides=[Parameter("camera_names", value=["a", "b"])])
    try:
        said = []
        node.get_logger = lambda: types.SimpleNamespace(warning=said.append)
        node._started -= 60.0
        now = time.monotonic()
        node._inbox.received_images[:] = [10, 10]
        node._inbox.last_image[:] = [now - 1.0, now - 1.0]
        node._warn_silent_cameras()
        assert said == []  # both send
        node._inbox.last_image[:] = [now - 1.0, now - SILENT_S - 7.0]
        node._warn_silent_cameras()
        node._warn_silent_cameras()
        assert len(said) == 1 and said[0].startswith("b: no image for 12 s on /b/image_raw while other cameras still "
                                                     "send (0 publisher(s))"), said
        said.clear()
        node._silent_warned.clear()
        node._inbox.last_image[:] = [now - SILENT_S - 7.0, now - SILENT_S - 7.0]
        node._warn_silent_cameras()
        assert said == []  # the whole rig stopped (a bag ended): nothing to single out
    finally:
        node.destroy_node()


def test_a_known_floor_reaches_the_reconstructor(session):
    """floor_z counts only with floor_known (0.0 is a real height, not "unset")."""
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode
    for overrides, expected in (([], None), ([Parameter("floor_z", value=-0.25)], None),
                                ([Parameter("floor_known", value=True), Parameter("floor_z", value=-0.25)], -0.25),
                                ([Parameter("floor_known", value=True)], 0.0)):
        node = ReconstructNode(context=session.context, parameter_overrides=overrides)
        try:
            assert node.reconstructor.floor_z == expected
        finally:
            node.destroy_node()


def test_bf16_parameter_reaches_the_reconstructor(session):
    """auto: the transformer runs in bf16 where the hardware computes it natively; on / off force it."""
    from rclpy.parameter import Parameter

    from lrm4d_ros.model import bf16_native
    from lrm4d_ros.ros.reconstruct_node import ReconstructNode
    for value, expected in (("auto", bf16_native(torch.device("cpu"))), ("on", True), ("off", False)):
        node = ReconstructNode(context=session.context,
                               parameter_overrides=[Parameter("bf16", value=value), Parameter("device", value="cpu")])
        try:
            assert node.reconstructor.bf16 is expected
        finally:
            node.destroy_node()


def test_service_and_inputs_do_not_wait_for_reconstruction(session, scene):
    """While a (slowed) reconstruction runs, render_view still answers from the previous one."""
    session.wait_status(lambda s: s.reconstructions >= 1, 40.0, "a reconstruction")
    rec_obj = session.node.reconstructor
    original = rec_obj.reconstruct
    started, release = threading.Event(), threading.Event()

    def slow(views, normalization=None):
        started.set()
        release.wait(20.0)
        return original(views, normalization)

    rec_obj.reconstruct = slow
    try:
        k = (FRAMES + 1) * CAMS
        session.publisher.publish(k)  # a new view triggers a reconstruction
        assert started.wait(20.0)
        resp = session.call(request_for(scene, 0), timeout=10.0)
        assert resp.success, resp.message
    finally:
        release.set()
        rec_obj.reconstruct = original


def test_model_failure_is_reported_and_the_node_keeps_serving(session, scene):
    session.wait_status(lambda s: s.reconstructions >= 1, 40.0, "a reconstruction")
    rec_obj = session.node.reconstructor
    original = rec_obj.reconstruct

    def broken(views, normalization=None):
        raise RuntimeError("simulated out of memory")

    rec_obj.reconstruct = broken
    try:
        rejected = session.status().views_rejected
        frame = range((FRAMES + 2) * CAMS, (FRAMES + 3) * CAMS)  # the newest frame: it changes the window
        for i in frame:
            session.publisher.publish(i)
        st = session.wait_status(lambda s: "reconstruction failed: RuntimeError: simulated out of memory"
                                 in s.last_error, 20.0, "the failure in ~/status")
        assert st.views_rejected == rejected  # a model failure is not a rejected view
        assert st.reconstructions_failed >= 1
        assert session.call(request_for(scene, 0)).success  # the previous reconstruction is still served
    finally:
        rec_obj.reconstruct = original
    newest = stamp(int(scene.stamps_ns[list(frame)].max()))
    session.wait_status(lambda s: s.window_end == newest, 40.0, "the failed window reconstructed on a later tick")


def test_render_view_cli_writes_the_nodes_view(session, scene, tmp_path):
    """`lrm4d render-view` (an rclpy client without ros2cli) in its own process writes what the node renders."""
    import os
    import subprocess
    import sys

    import cv2

    from lrm4d_ros.geometry import matrix_to_quat
    from lrm4d_ros.io.messages import to_uint8

    session.wait_status(lambda s: s.reconstructions >= 1, 40.0, "a reconstruction")
    session.wait_settled()
    i = 1 * CAMS + 2
    T = scene.camtoworlds[i].numpy()
    K = scene.Ks[i].numpy()
    out = tmp_path / "view"
    args = [sys.executable, "-m", "lrm4d_ros.cli", "render-view", "--position", *map(str, T[:3, 3]),
            "--orientation", *map(str, matrix_to_quat(T[:3, :3])), "--width", str(W), "--height", str(H),
            "--fx", str(K[0, 0]), "--stamp", f"{int(scene.stamps_ns[i]) * 1e-9:.9f}", "--out", str(out)]
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    color = cv2.imread(f"{out}_color.png")[..., ::-1]
    depth = np.load(f"{out}_depth.npy")
    rec = session.node._latest[0]
    Kc = np.array([[K[0, 0], 0, (W - 1) / 2], [0, K[0, 0], (H - 1) / 2], [0, 0, 1.0]])
    stamp_ns = int(round(int(scene.stamps_ns[i]) * 1e-9 * 1e9))  # what the CLI sent, via float seconds
    expect = rec.render(torch.as_tensor(T)[None], torch.as_tensor(Kc)[None], W, H,
                        torch.tensor([stamp_ns], dtype=torch.int64))
    # the node's 8-bit conversion (float64, rounded): in float32 a value a hair from .5 can round the other way
    np.testing.assert_array_equal(color, to_uint8(expect.colors[0].numpy()))
    np.testing.assert_allclose(depth, expect.depths[0, ..., 0].numpy(), rtol=1e-5, atol=1e-6)
    mm = cv2.imread(f"{out}_depth.png", cv2.IMREAD_UNCHANGED)
    # rounded to the millimetre, from the node's float32 depth (2 ulp of slack: far pixels lie tens of metres away)
    assert mm.dtype == np.uint16 and (np.abs(mm / 1000.0 - depth) <= 0.0005 + 2.4e-7 * depth + 1e-6).all()


def test_parameters_read_only_or_honoured_at_run_time(session):
    from rclpy.parameter import Parameter

    node = session.node
    desc = node.describe_parameter("window_seconds")
    assert desc.read_only and "newest are kept" in desc.description and desc.floating_point_range[0].from_value == 0
    res = node.set_parameters([Parameter("window_seconds", value=5.0)])[0]
    assert not res.successful and "read-only" in res.reason
    # rclpy's refusal says no more than "read-only": `ros2 param describe` says how to change it instead
    for name in ("window_seconds", "camera_names", "cameras.cam0.image_topic", "device"):
        assert "restart the node" in node.describe_parameter(name).additional_constraints, name
    policies = node.describe_parameter("selection_policy").additional_constraints
    assert policies == "one of ['frames', 'latest', 'uniform']"
    res = node.set_parameters([Parameter("selection_policy", value="random")])[0]
    assert not res.successful and "one of" in res.reason
    res = node.set_parameters([Parameter("max_input_views", value=0)])[0]
    assert not res.successful and "out of range" in res.reason
    # views the model is never given: refused whichever of the two is set, alone or with the other
    res = node.set_parameters_atomically([Parameter("max_input_views", value=6), Parameter("min_views", value=7)])
    assert not res.successful and "min_views 7 > max_input_views 6" in res.reason
    res = node.set_parameters([Parameter("max_input_views", value=1)])[0]
    assert not res.successful and f"min_views {node.cfg.values['min_views']} > max_input_views 1" in res.reason
    # below a virtual camera's size: refused, as at start-up
    vc = node.cfg.virtual_cameras[0]
    res = node.set_parameters([Parameter("max_render_pixels", value=vc.width * vc.height - 1)])[0]
    assert not res.successful and res.reason == (f"max_render_pixels {vc.width * vc.height - 1} is below virtual "
                                                 f"camera {vc.name} ({vc.width}x{vc.height})")
    try:
        assert all(r.successful for r in node.set_parameters([Parameter("max_input_views", value=6),
                                                              Parameter("selection_policy", value="latest")]))
        assert node.window.max_views == 6 and node.window.policy == "latest"
        assert len(node.window.snapshot()) == 6
    finally:
        node.set_parameters([Parameter("max_input_views", value=8), Parameter("selection_policy", value="frames")])


def test_the_cloud_leaves_out_far_and_faint_gaussians_on_request():
    from lrm4d_ros.gaussians import Gaussians3D
    from lrm4d_ros.ros.reconstruct_node import cloud_gaussians

    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 4.0], [0.0, 0.0, 30.0], [9.0, 0.0, 0.5]])
    g = Gaussians3D(means, torch.eye(3).expand(4, 3, 3) * 1e-4, torch.tensor([0.9, 0.2, 0.9, 0.9]), torch.rand(4, 3))
    cams = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], dtype=torch.float64)
    assert len(cloud_gaussians(g, cams, 0.0, 0.0)) == 4  # the defaults keep everything
    kept = cloud_gaussians(g, cams, 0.5, 5.0)  # the faint one and the one 30 m from every camera go
    assert kept.means.tolist() == [[0.0, 0.0, 1.0], [9.0, 0.0, 0.5]]


def test_renders_in_flight_at_shutdown_are_answered_and_new_ones_refused(tmp_path):
    """main() spins on after a stop signal until the render requests being rendered are answered (they used to be
    rendered and never sent: the caller waited out its own timeout); a request after that is refused at once."""
    import rclpy
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode, make_executor

    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=88)  # its own: 72 is test_ros_psnr's
    node = client = executor = None
    try:
        node = ReconstructNode(context=context, parameter_overrides=[
            Parameter("checkpoint", value=str(ckpt)), Parameter("device", value="cpu"),
            Parameter("render_service", value="/render_view_drain")])
        started = threading.Event()

        def slow_render(req, resp):  # stands in for a large render
            started.set()
            time.sleep(1.0)
            resp.success, resp.message = True, "rendered"
            return resp

        node._render_view = slow_render
        client = rclpy.create_node("drain_client", context=context)
        cli = client.create_client(RenderView, "/render_view_drain")
        executor = make_executor(context)
        executor.add_node(node)
        executor.add_node(client)
        deadline = time.monotonic() + 20
        while not cli.service_is_ready() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        first = cli.call_async(RenderView.Request())
        while not started.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert started.is_set()
        node.finish_renders(executor, timeout_s=10.0)  # what main() does after the spin loop ends
        assert node._answers_owed == 0  # the response is sent: the executor may stop now
        later = cli.call_async(RenderView.Request())
        while not (first.done() and later.done()) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert first.result().success and first.result().message == "rendered"
        assert not later.result().success and later.result().message == "the node is shutting down"
    finally:
        if executor is not None:
            executor.shutdown()
        for n in (client, node):
            if n is not None:
                n.destroy_node()
        rclpy.try_shutdown(context=context)
