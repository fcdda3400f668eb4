"""The node on compressed streams (image_transport "compressed" / "compressedDepth"): it subscribes to
<image_topic>/compressed and <depth_topic>/compressedDepth, the model gets the pixels a raw stream would give (PNG:
exactly; depth within the 32FC1 quantisation), and a message that does not decode, or decodes to another size than
its camera_info, is refused with a counted reason while the node runs on. Real rclpy, sim time from /clock."""
import numpy as np
import torch

from conftest import require_ros_interfaces

require_ros_interfaces()
from lrm4d_ros.ros.inprocess import InProcessSession, wait_for  # noqa: E402

from lrm4d_ros.checkpoint import save_model  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.io.compressed import compressed_depth_msg, compressed_image_msg  # noqa: E402
from lrm4d_ros.io.messages import to_uint8  # noqa: E402
from lrm4d_ros.model import LRM4D, LRM4DConfig  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402

DOMAIN_ID = 78
FRAMES, CAMS, H, W = 3, 2, 32, 48


def reasons(st) -> dict:
    return dict(zip(st.rejection_reasons, st.rejection_counts))


def test_node_takes_compressed_images_and_depth(tmp_path):
    scene = generate(5, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, synchronized=True,
                                    fps_range=(10.0, 10.0), num_primitives=(2, 3), ground_prob=1.0))
    assert scene.depths is not None
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": CAMS, "max_input_views": FRAMES * CAMS, "window_seconds": 30.0,
              "input_queue_depth": 50, "virtual_camera_names": [], "image_transport": "compressed",
              "depth_transport": "compressedDepth",
              **{f"cameras.{c}.depth_topic": f"{c}/depth" for c in scene.camera_names}}
    session = InProcessSession(DOMAIN_ID, scene, params, compression="png")
    seen = []
    original = session.node.reconstructor.reconstruct
    session.node.reconstructor.reconstruct = lambda views, norm=None: (seen.append(views), original(views, norm))[1]
    key = {(int(s), int(c)): i for i, (s, c) in enumerate(zip(scene.stamps_ns, scene.camera_ids))}
    pub = session.publisher
    assert pub.pubs[scene.camera_names[0]][2].topic_name == f"/{scene.camera_names[0]}/image_raw/compressed"
    try:
        session.publish_camera_infos()
        for i in range(2 * CAMS):
            pub.publish(i)
        views = wait_for(lambda: next((v for v in reversed(seen) if len(v) == 2 * CAMS and all(
            float(d.max()) > 0 for d in v.depths)), None), 30.0, "a reconstruction of two frames with their depth")
        for s, c, img, d in zip(views.stamps_ns, views.camera_ids, views.images, views.depths):
            i = key[(int(s), int(c))]
            expect = torch.from_numpy(to_uint8(scene.images[i].numpy())).float() / 255.0
            assert torch.equal(img, expect)  # PNG is lossless: what a raw rgb8 stream gives
            truth = scene.depths[i]
            measured = (truth > 0) & (truth < 10.0)
            assert torch.equal(d > 0, measured)
            step = truth[measured] ** 2 / (100.0 * 101.0) * 1.01 + 1e-5  # the 32FC1 inverse-depth quantisation
            assert ((d[measured] - truth[measured]).abs() <= step).all()

        # a colour image that does not decode, and a depth that decodes to another size: refused and counted,
        # the colour view of the second camera still goes in
        st0 = session.wait_status(lambda s: True, 20.0, "a first status")  # one may not have come yet
        cam0, cam1 = (scene.camera_names[int(scene.camera_ids[i])] for i in (2 * CAMS, 2 * CAMS + 1))
        info, pose, good = pub.messages(2 * CAMS)
        broken = compressed_image_msg(np.zeros((H, W, 3), np.uint8), 0, good.header.frame_id, types=RCLPY)
        broken.header.stamp, broken.data = good.header.stamp, b"\x89PNG broken"
        pub.pubs[cam0][1].publish(pose)
        pub.pubs[cam0][2].publish(broken)
        info, pose, good = pub.messages(2 * CAMS + 1)
        pub.pubs[cam1][1].publish(pose)
        pub.pubs[cam1][2].publish(good)
        small = compressed_depth_msg(np.ones((H // 2, W // 2), np.float32), 0, good.header.frame_id, "32FC1",
                                     types=RCLPY)
        small.header.stamp = good.header.stamp
        pub.depth_pubs[cam1].publish(small)
        st = session.wait_status(lambda s: reasons(s).get("bad_image", 0) == reasons(st0).get("bad_image", 0) + 1
                                 and reasons(s).get("depth_size", 0) == reasons(st0).get("depth_size", 0) + 1
                                 and s.views_used == 2 * CAMS + 1, 20.0,
                                 "the broken image and the wrong-size depth counted, the good view used")
        assert session.node.window.snapshot() is not None and len(session.node.window.snapshot()) == 2 * CAMS + 1
        assert st.views_used == 2 * CAMS + 1
    finally:
        session.close()


def test_node_rectifies_a_distorted_camera(tmp_path):
    """A camera_info with lens distortion: the model gets the image remapped onto P's pinhole (what io/rectify.py
    gives, which test_convert checks against the ideal pinhole) and P's intrinsics; the other camera is untouched."""
    from lrm4d_ros.io.messages import camera_info_msg
    from lrm4d_ros.io.rectify import Rectification

    scene = generate(6, SceneConfig(frames=2, cameras=2, height=H, width=W, synchronized=True,
                                    fps_range=(10.0, 10.0), num_primitives=(2, 3)))
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": 2, "max_input_views": 8, "window_seconds": 30.0, "virtual_camera_names": []}
    session = InProcessSession(DOMAIN_ID + 1, scene, params)
    seen = []
    original = session.node.reconstructor.reconstruct
    session.node.reconstructor.reconstruct = lambda views, norm=None: (seen.append(views), original(views, norm))[1]
    pub = session.publisher
    cam0 = scene.camera_names[int(scene.camera_ids[0])]
    K = scene.Ks[0].numpy().astype(np.float64)
    P = K.copy()
    P[0, 0] *= 0.9  # image_proc's new camera matrix may differ from K
    try:
        info = pub.messages(0)[0]
        distorted = camera_info_msg(K, W, H, 0, info.header.frame_id, types=RCLPY)
        distorted.header.stamp = info.header.stamp
        distorted.d = [-0.3, 0.08, 0.0, 0.0, 0.0]
        distorted.p = [P[0, 0], 0.0, P[0, 2], 0.0, 0.0, P[1, 1], P[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
        for _ in range(3):
            pub.pubs[cam0][0].publish(distorted)
        rectify = session.node._ingest._rectify
        wait_for(lambda: cam0 in rectify and rectify[cam0][1].maps is not None, 20.0, "the distorted camera_info")
        for i in range(4):  # cam0's views without their (undistorted) camera_info
            if scene.camera_names[int(scene.camera_ids[i])] == cam0:
                _, pose_i, image_i = pub.messages(i)
                pub.pubs[cam0][1].publish(pose_i)
                pub.pubs[cam0][2].publish(image_i)
            else:
                pub.publish(i)
        views = wait_for(lambda: next((v for v in reversed(seen) if len(v) == 4), None), 30.0, "four views")
        i0 = next(i for i in range(4) if views.camera_names[int(views.camera_ids[i])] == cam0
                  and int(views.stamps_ns[i]) == int(scene.stamps_ns[0]))
        expect = Rectification(distorted).colour(to_uint8(scene.images[0].numpy()))
        assert np.abs(expect.astype(int) - to_uint8(scene.images[0].numpy())).mean() > 1.0  # the remap did move pixels
        np.testing.assert_array_equal((views.images[i0].numpy() * 255).round().astype(np.uint8), expect)
        np.testing.assert_allclose(views.Ks[i0].numpy(), P, rtol=1e-6)
        other = next(i for i in range(4) if views.camera_names[int(views.camera_ids[i])] != cam0)
        np.testing.assert_allclose(views.Ks[other].numpy(), scene.Ks[1].numpy(), rtol=1e-6)
    finally:
        session.close()
