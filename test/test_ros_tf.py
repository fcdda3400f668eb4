"""pose_source "tf": the real node reads /tf and /tf_static over real rclpy and poses each image by world <- its
optical frame at its stamp, as a robot publishes them: a latched static mount per camera (base -> optical frame) and
a moving base on /tf that arrives *after* the camera's image. Also: what TF cannot pose is refused with the reason.
"""
import contextlib
import re
import time

import numpy as np
import pytest
import torch

from conftest import require_ros_interfaces  # noqa: E402

require_ros_interfaces()
from lrm4d_ros.ros.inprocess import InProcessSession, wait_for  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402
from lrm4d_ros.ros.tf_listener import TF_QOS, TF_STATIC_QOS  # noqa: E402

from lrm4d_ros.checkpoint import save_model  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.geometry import rigid_matrix  # noqa: E402
from lrm4d_ros.io.messages import image_msg, transform_msg  # noqa: E402
from lrm4d_ros.model import LRM4D, LRM4DConfig  # noqa: E402
from lrm4d_ros.window import RejectedInput  # noqa: E402

DOMAIN_ID = 75


@contextlib.contextmanager
def node_and_player(domain_id: int, args: list[str] | None = None, overrides: dict | None = None):
    """(the reconstruct node spun on its own executor as main() spins it, a bare node to play bags from) on a
    context of their own; everything torn down after."""
    import threading

    import rclpy
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode, make_executor

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id, args=args)
    node = ReconstructNode(context=context, parameter_overrides=[Parameter(k, value=v)
                                                                 for k, v in (overrides or {}).items()])
    player = rclpy.create_node("player", context=context)
    executor = make_executor(context)
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.02) for _ in iter(stop.is_set, True)])
    spinner.start()
    try:
        yield node, player
    finally:
        stop.set()
        spinner.join()
        executor.shutdown(timeout_sec=10.0)
        node.destroy_node()
        player.destroy_node()
        rclpy.try_shutdown(context=context)


def wait_for_views(node, n: int, timeout: float = 20.0, depth: bool = False):
    """The node's window snapshot once it holds n views (each with depth if `depth`); None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = node.window.snapshot()
        if v is not None and len(v) == n and (not depth or v.depths is not None):
            return v
        time.sleep(0.05)
    return None


def test_tf_pose_source(tmp_path):
    assert RCLPY.TFMessage is not None, "scripts/build_ros.sh builds vendor/tf2_msgs where no tf2_msgs is installed"
    scene = generate(2, SceneConfig(frames=3, cameras=3, height=32, width=32))
    names = list(scene.camera_names)
    # each camera on its own base: a fixed mount (static TF) under a base that moves (/tf)
    mounts = {n: rigid_matrix((0.1 * k, -0.05, 0.3), (np.cos(0.3 * k + 0.2), 0.0, np.sin(0.3 * k + 0.2), 0.0))
              for k, n in enumerate(names)}
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": names, "checkpoint": str(ckpt), "device": "cpu", "pose_source": "tf",
              "min_views": len(scene), "max_input_views": len(scene), "window_seconds": 30.0,
              "input_queue_depth": 50, "virtual_camera_names": [], "reconstruction_rate_hz": 10.0,
              "pose_wait_s": 1.0}
    session = InProcessSession(DOMAIN_ID, scene, params)
    tf_pub = session.client.create_publisher(RCLPY.TFMessage, "/tf", TF_QOS)
    static_pub = session.client.create_publisher(RCLPY.TFMessage, "/tf_static", TF_STATIC_QOS)

    def base_tf(i: int, stamp: int):
        n = names[int(scene.camera_ids[i])]
        base = scene.camtoworlds[i].numpy() @ np.linalg.inv(mounts[n])
        return transform_msg(base, stamp, "world", f"{n}_base", RCLPY)

    try:
        static_pub.publish(RCLPY.TFMessage(transforms=[
            transform_msg(mounts[n], 0, f"{n}_base", f"{n}_optical_frame", RCLPY) for n in names]))
        session.publish_camera_infos()
        order = torch.argsort(scene.stamps_ns).tolist()
        for i in order:
            n = names[int(scene.camera_ids[i])]
            stamp = int(scene.stamps_ns[i])
            session.publisher.pubs[n][2].publish(session.publisher.messages(i)[2])  # the image, before its TF
            time.sleep(0.05)
            # the base is still at the view's pose 5 ms either side: the interpolation at the stamp is exact
            tf_pub.publish(RCLPY.TFMessage(transforms=[base_tf(i, stamp - 5_000_000), base_tf(i, stamp + 5_000_000)]))
        st = session.wait_status(lambda s: s.views_used == len(scene), 30.0, "all views posed by TF")
        assert st.views_rejected == 0 and sum(st.pending_per_camera) == 0
        snap = session.node.window.snapshot()
        idx = [int(torch.nonzero(scene.stamps_ns == s)[0]) for s in snap.stamps_ns]
        np.testing.assert_allclose(snap.camtoworlds.numpy(), scene.camtoworlds[idx].numpy(), atol=1e-9)

        # a frame no transform names: held until pose_wait_s passed on the clock, then refused with the tree's reason
        later = int(scene.stamps_ns.max()) + 10_000_000
        for stamp in (later, later + 1_200_000_000):
            session.publisher.publish_clock(stamp)
            session.publisher.pubs[names[0]][2].publish(
                image_msg(np.zeros((32, 32, 3), np.uint8), stamp, "nowhere_optical_frame", types=RCLPY))
            time.sleep(0.3)
        # (the second follows in steady time, STALLED x pose_wait_s after it came: the clock stands still after it)
        st = session.wait_status(lambda s: s.views_rejected == 2, 20.0, "the unknown frame's images refused")
        assert "no TF world <- nowhere_optical_frame" in st.last_error and "not in the TF tree" in st.last_error
        assert re.search(r"\(waited \d\.\d\d s\)", st.last_error) and st.pending_per_camera[0] == 0
        assert dict(zip(st.rejection_reasons, st.rejection_counts))["no_pose"] == 2

        # a stamp between two transforms too far apart can never be served: refused at once, saying why
        n = names[1]
        i = next(k for k in order if names[int(scene.camera_ids[k])] == n)
        tf_pub.publish(RCLPY.TFMessage(transforms=[base_tf(i, later + 10**9), base_tf(i, later + 3 * 10**9)]))
        time.sleep(0.2)
        session.publisher.publish_clock(later + 2 * 10**9)
        session.publisher.pubs[n][2].publish(image_msg(np.zeros((32, 32, 3), np.uint8), later + 2 * 10**9,
                                                       f"{n}_optical_frame", types=RCLPY))
        st = session.wait_status(lambda s: s.views_rejected == 3, 20.0, "the stamp in a TF gap refused")
        assert "2.000 s apart (max gap 0.500 s)" in st.last_error and st.pending_per_camera[0] == 0

        # a transform that is not a rotation: refused as bad_tf, the node goes on
        bad = base_tf(i, later + 4 * 10**9)
        bad.transform.rotation.w = float("nan")
        tf_pub.publish(RCLPY.TFMessage(transforms=[bad]))
        st = session.wait_status(lambda s: "bad_tf" in s.rejection_reasons, 20.0, "the NaN transform refused")
        assert f"'world' -> '{n}_base'" in st.last_error

        # a stamp far ahead of the clock is refused before it waits for TF (it would hold its camera's images)
        session.publisher.pubs[names[2]][2].publish(image_msg(np.zeros((32, 32, 3), np.uint8), later + 9 * 10**9,
                                                              f"{names[2]}_optical_frame", types=RCLPY))
        st = session.wait_status(lambda s: "future_stamp" in s.rejection_reasons, 20.0, "the future stamp refused")
        assert st.pending_per_camera[2] == 0 and "ahead of the clock" in st.last_error

        # the clock standing still (a bag played to its end): an image TF cannot pose is refused in steady time
        n_refused = st.views_rejected
        session.publisher.pubs[names[2]][2].publish(image_msg(np.zeros((32, 32, 3), np.uint8), later + 2 * 10**9 + 1,
                                                              "nowhere_optical_frame", types=RCLPY))
        st = session.wait_status(lambda s: s.views_rejected == n_refused + 1, 20.0, "the unposed image refused")
        assert "not in the TF tree" in st.last_error and st.pending_per_camera[2] == 0
    finally:
        session.close()


def test_a_robot_bag_played_is_posed_by_its_tf(tmp_path):
    """A robot's recording (test_convert's: odom -> base_link on /tf at 100 Hz, the camera mounted by /tf_static,
    which is recorded once before everything) played by `lrm4d play --clock` into a node that starts before it: each
    image goes out before the /tf that brackets it, and comes out posed as the analytic motion says."""
    from lrm4d_ros.ros.play import play_bag
    from test_convert import FRAMES, SIDE_OPTICAL, T0, base_pose, write_robot_bag

    bag = write_robot_bag(tmp_path / "robot.mcap", tf_end_ns=T0 + FRAMES * 100_000_000)
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"use_sim_time": True, "camera_names": ["side"], "cameras.side.image_topic": "/robot/side/image_raw",
              "cameras.side.info_topic": "/robot/side/camera_info", "world_frame": "odom", "pose_source": "tf",
              "checkpoint": str(ckpt), "device": "cpu", "min_views": FRAMES, "window_seconds": 30.0,
              "virtual_camera_names": [], "input_qos": "reliable"}
    with node_and_player(81, overrides=params) as (node, player):  # 76 is test_ros_viewer's
        result = play_bag(bag, player, rate=0.5, clock=True, wait_subscribers_s=5.0, log=lambda _: None,
                          topics=["/robot/side/image_raw", "/robot/side/camera_info", "/tf", "/tf_static"])
        assert result["published"] > FRAMES * 2
        snap = wait_for_views(node, FRAMES)
        assert snap is not None, (node.window.stats, node._rejections, node._last_error)
        for s, T in zip(snap.stamps_ns.tolist(), snap.camtoworlds.numpy()):
            np.testing.assert_allclose(T, base_pose(s) @ SIDE_OPTICAL, atol=1e-9)
        assert sum(node.window.stats.rejections.values()) == 0 and node._rejections == {}


def test_pose_topics_in_another_frame_are_mapped_by_tf(tmp_path):
    """A motion-capture system's PoseStamped in its own frame ("mocap", placed in the world by /tf_static): the node
    maps each pose into world_frame; a frame TF does not know is refused pose_frame, saying so."""
    from lrm4d_ros.io.messages import pose_msg

    scene = generate(3, SceneConfig(frames=2, cameras=2, height=32, width=32))
    mocap = rigid_matrix((1.0, -2.0, 0.5), (np.cos(0.4), 0.0, 0.0, np.sin(0.4)))  # the mocap frame in the world
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": len(scene), "max_input_views": len(scene), "window_seconds": 30.0,
              "virtual_camera_names": []}
    session = InProcessSession(84, scene, params)
    try:
        session.client.create_publisher(RCLPY.TFMessage, "/tf_static", TF_STATIC_QOS).publish(RCLPY.TFMessage(
            transforms=[transform_msg(mocap, 0, "world", "mocap", RCLPY)]))
        session.publish_camera_infos()
        # the node holds the static transform before any pose in its frame arrives (a pose it cannot map is refused)
        wait_for(lambda: "mocap" in session.node._ingest.tf.tree.frames, 20.0, "the mocap frame in the node's TF")
        for i in torch.argsort(scene.stamps_ns).tolist():
            n, stamp = scene.camera_names[int(scene.camera_ids[i])], int(scene.stamps_ns[i])
            in_mocap = np.linalg.inv(mocap) @ scene.camtoworlds[i].numpy()
            session.publisher.pubs[n][1].publish(pose_msg(in_mocap, stamp, "mocap", RCLPY))
            session.publisher.pubs[n][2].publish(session.publisher.messages(i)[2])
        session.wait_status(lambda s: s.views_used == len(scene), 30.0, "every view posed through TF")
        snap = session.node.window.snapshot()
        idx = [int(torch.nonzero(scene.stamps_ns == s)[0]) for s in snap.stamps_ns]
        np.testing.assert_allclose(snap.camtoworlds.numpy(), scene.camtoworlds[idx].numpy(), atol=1e-9)
        n = scene.camera_names[0]
        session.publisher.pubs[n][1].publish(pose_msg(np.eye(4), int(scene.stamps_ns.max()) + 1, "odom", RCLPY))
        st = session.wait_status(lambda s: "pose_frame" in s.rejection_reasons, 20.0, "the unknown frame refused")
        assert "frame 'odom' is not world_frame 'world' and TF does not map it" in st.last_error
    finally:
        session.close()


def test_make_bag_robot_and_its_node_parameters_play_into_the_node(tmp_path):
    """`lrm4d make-bag --robot` writes a robot-style bag and the node's parameters for it; the node started on that
    file (as `--params-file`) and fed the bag by `lrm4d play --clock` takes every view, posed and with depth as the
    contract bag make-bag writes for the same seed."""
    from lrm4d_ros.cli import main
    from lrm4d_ros.io.bag import read_bag
    from lrm4d_ros.ros.play import play_bag

    scene = ["--seed", "5", "--frames", "3", "--cameras", "2", "--resolution", "24", "--supersample", "1",
             "--depth", "clean", "--ground", "1"]
    assert main(["make-bag", *scene, "--out", str(tmp_path / "robot"), "--robot", "--compression", "png"]) == 0
    assert main(["make-bag", *scene, "--out", str(tmp_path / "direct"), "--depth-encoding", "16UC1"]) == 0
    want = read_bag(tmp_path / "direct" / "scene_5")
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    args = ["--ros-args", "--params-file", str(tmp_path / "robot" / "scene_5_node.yaml"), "-p", "use_sim_time:=true",
            "-p", f"checkpoint:={ckpt}", "-p", "device:=cpu", "-p", "window_seconds:=30.0"]
    with node_and_player(86, args=args) as (node, player):
        assert node.cfg.pose_source == "tf" and node.reconstructor.floor_z is not None
        play_bag(tmp_path / "robot" / "scene_5", player, clock=True, wait_subscribers_s=5.0, log=lambda _: None)
        snap = wait_for_views(node, len(want), depth=True)
        assert snap is not None, (node.window.stats, node._rejections)
        assert snap.stamps_ns.tolist() == want.stamps_ns.tolist()
        np.testing.assert_allclose(snap.camtoworlds.numpy(), want.camtoworlds.numpy(), atol=1e-9)
        assert (snap.depths == want.depths).all() and (snap.images == want.images).all()


def test_a_clock_going_back_drops_the_tf_history():
    """A bag played again (`lrm4d play --loop --clock`): the clock goes back, and the /tf of the pass before is
    dropped (as tf2 does), the static mounts kept. Kept, a stamp of the new pass was posed between the two passes'
    transforms, and every new transform, older than the edge's newest, rebuilt the edge at each lookup."""
    import types

    from lrm4d_ros.ros.tf_listener import TfListener

    now = [None]
    jumps = []
    node = types.SimpleNamespace(create_subscription=lambda *a, **k: None)
    tf = TfListener(node, clock=lambda: now[0], on_jump=jumps.append)
    t0 = 1_000_000_000_000

    def send(stamp, x, parent="odom", child="base", static=False):
        T = rigid_matrix([x, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0])
        tf._add(RCLPY.TFMessage(transforms=[transform_msg(T, stamp, parent, child, RCLPY)]), static)

    send(t0, 0.0, "base", "cam", static=True)
    for k in range(20):  # first pass: the base moves 1 m a second, 10 Hz
        now[0] = t0 + k * 100_000_000
        send(now[0], 0.1 * k)
    np.testing.assert_allclose(tf.lookup("odom", "base", t0 + 1_850_000_000)[0, 3], 1.85, atol=1e-9)
    now[0] = t0  # played again from the start: a latched mount comes first
    send(t0, 0.0, "base", "cam", static=True)
    assert jumps == [pytest.approx(1.9)]
    assert tf.lookup("odom", "cam", t0, wait=True) is None  # no /tf yet since: waited for, not refused
    for k in range(5):  # the base now 10 m away
        now[0] = t0 + k * 100_000_000
        send(now[0], 10.0 + 0.1 * k)
    assert jumps == [pytest.approx(1.9)]
    np.testing.assert_allclose(tf.lookup("odom", "base", t0 + 250_000_000)[0, 3], 10.25, atol=1e-9)
    np.testing.assert_allclose(tf.lookup("odom", "cam", t0 + 250_000_000)[0, 3], 10.25, atol=1e-9)  # mount kept
    with pytest.raises(RejectedInput, match="newer"):  # the pass before is gone, not bracketing this one
        tf.lookup("odom", "base", t0 + 1_500_000_000)
