"""pose_source "tf": images are posed by a tf2_ros lookup of world <- the image's optical frame at its stamp.

tf2_ros is not on PyPI, so this test stands in a minimal buffer with tf2_ros's lookup interface (test-only),
serving the generated scene's exact poses; everything else is the real node over real rclpy.
"""
import types

import numpy as np
import torch

from conftest import require_ros_interfaces  # noqa: E402

require_ros_interfaces()
from lrm4d_ros.ros import reconstruct_node  # noqa: E402
from lrm4d_ros.ros.inprocess import InProcessSession  # noqa: E402

from geometry_msgs.msg import TransformStamped  # noqa: E402

from lrm4d_ros.checkpoint import save_model  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.model import LRM4D, LRM4DConfig  # noqa: E402
from lrm4d_ros.io.messages import image_msg, pose_msg  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402

DOMAIN_ID = 75


def fake_tf2_ros(transforms: dict) -> types.SimpleNamespace:
    """tf2_ros's Buffer/TransformListener/exception names over a dict (target, source, stamp_ns) -> (4,4)."""
    class LookupException(Exception):
        pass

    class ExtrapolationException(Exception):
        pass

    class Buffer:
        def lookup_transform(self, target, source, time):
            key = (target, source, time.nanoseconds)
            if key not in transforms:
                raise ExtrapolationException(f"no transform {target} <- {source} at {time.nanoseconds}")
            p = pose_msg(transforms[key], 0, target, RCLPY).pose
            tf = TransformStamped()
            tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = \
                p.position.x, p.position.y, p.position.z
            tf.transform.rotation = p.orientation
            return tf

    return types.SimpleNamespace(Buffer=Buffer, TransformListener=lambda buffer, node: None,
                                 LookupException=LookupException, ConnectivityException=LookupException,
                                 ExtrapolationException=ExtrapolationException)


def test_tf_pose_source(tmp_path, monkeypatch):
    scene = generate(2, SceneConfig(frames=2, cameras=3, height=32, width=32))
    transforms = {("world", f"{scene.camera_names[int(c)]}_optical_frame", int(s)): T.numpy()
                  for c, s, T in zip(scene.camera_ids, scene.stamps_ns, scene.camtoworlds)}
    monkeypatch.setattr(reconstruct_node, "tf2_ros", fake_tf2_ros(transforms))
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "pose_source": "tf", "min_views": len(scene), "max_input_views": len(scene),
              "window_seconds": 30.0, "input_queue_depth": 50, "virtual_camera_names": [],
              "reconstruction_rate_hz": 10.0}
    session = InProcessSession(DOMAIN_ID, scene, params)
    try:
        session.publish_camera_infos()
        for i in range(len(scene)):
            info, _, image = session.publisher.messages(i)  # poses travel over TF only
            pubs = session.publisher.pubs[scene.camera_names[int(scene.camera_ids[i])]]
            pubs[2].publish(image)
        st = session.wait_status(lambda s: s.views_used == len(scene), 30.0, "all views posed by TF")
        assert st.views_rejected == 0
        snap = session.node.window.snapshot()
        order = [int(torch.nonzero(scene.stamps_ns == s)[0]) for s in snap.stamps_ns]
        np.testing.assert_allclose(snap.camtoworlds.numpy(), scene.camtoworlds[order].numpy(), atol=1e-9)

        late = int(scene.stamps_ns.max()) + 10**9
        pubs = session.publisher.pubs[scene.camera_names[0]]
        pubs[2].publish(image_msg(np.zeros((32, 32, 3), np.uint8), late, f"{scene.camera_names[0]}_optical_frame",
                                  types=RCLPY))
        session.wait_status(lambda s: s.views_rejected == 1 and "no TF world <- cam0_optical_frame" in s.last_error,
                            20.0, "the TF lookup failure")
    finally:
        session.close()
