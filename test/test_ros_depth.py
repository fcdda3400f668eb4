"""The node with depth topics (issue 14): depth paired with its colour image by stamp reaches the model as
ViewSet.depths; the node keeps reconstructing when depth stops, takes depth that arrives late, and refuses
malformed depth with a counted reason while the colour view still goes in. Real rclpy, sim time from /clock."""
import numpy as np
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

    def last_input(n_views):
        return wait_for(lambda: next((v for v in reversed(seen) if len(v) == n_views), None), 30.0,
                        f"a reconstruction of {n_views} views")

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

        # 2. depth stops: colour views still go in, their depth maps are empty
        for i in frame(2):
            pub.publish(i, depth=False)
        got = depth_of(last_input(3 * CAMS))
        assert all(float(got[i].abs().max()) == 0.0 for i in frame(2))
        assert all(float(got[i].max()) > 0.0 for i in frame(1))

        # 3. depth arrives late (after its colour view was reconstructed): it is attached and reconstructed again
        for i in frame(3):
            pub.publish(i, depth=False)
        last_input(4 * CAMS)
        n_before = len(seen)
        for i in frame(3):
            pub.depth_pubs[scene.camera_names[int(scene.camera_ids[i])]].publish(pub.depth_message(i))
        views = wait_for(lambda: next((v for v in seen[n_before:] if len(v) == 4 * CAMS and all(
            float(depth_of(v)[i].max()) > 0 for i in frame(3))), None), 30.0, "a reconstruction with the late depth")
        for i in frame(3):
            np.testing.assert_array_equal(depth_of(views)[i].numpy(), scene.depths[i].numpy())

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
        got = depth_of(last_input(5 * CAMS))
        assert all(float(got[i].abs().max()) == 0.0 for i in frame(4))
    finally:
        session.close()
