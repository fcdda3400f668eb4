"""End to end over real rclpy with the shipped checkpoint: a rig's input views sent as a robot's drivers send them
reconstruct as well as the same views handed to the Reconstructor directly. The robot way: poses only on /tf (each
camera on a moving base under a static mount, every transform published after its image), colour as PNG
CompressedImage, depth from a depth camera in its own optical frame (turned 90 degrees about the optical axis, so
its pixels are the colour's, transposed: registration is exact) with its own camera_info, registered by the node.
The held-out cameras (rig protocol) rendered by render_view score within 0.2 dB of the offline renders, and above
the nearest input."""
import time

import numpy as np
import pytest
import torch

from conftest import require_ros_interfaces  # noqa: E402

require_ros_interfaces()
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from lrm4d_ros.baselines import nearest_input  # noqa: E402
from lrm4d_ros.checkpoint import shipped_checkpoint_path  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.data.protocols import split_protocol  # noqa: E402
from lrm4d_ros.geometry import rigid_matrix  # noqa: E402
from lrm4d_ros.io.messages import camera_info_msg, depth_msg, transform_msg  # noqa: E402
from lrm4d_ros.metrics import psnr  # noqa: E402
from lrm4d_ros.reconstructor import Reconstructor  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402
from lrm4d_ros.ros.inprocess import InProcessSession, wait_for  # noqa: E402
from lrm4d_ros.ros.tf_listener import TF_QOS, TF_STATIC_QOS  # noqa: E402

DOMAIN_ID = 83
FRAMES, CAMS, SIZE = 4, 4, 64
SEED = 1_000_021  # training uses seeds < 1e6


def test_a_robots_streams_reconstruct_as_the_contract_views_do():
    path = shipped_checkpoint_path()
    if not path.is_file():
        pytest.skip(f"shipped checkpoint not present at {path}")
    scene = generate(SEED, SceneConfig(frames=FRAMES, cameras=CAMS, height=SIZE, width=SIZE, synchronized=True,
                                       ground_prob=1.0))
    assert scene.depths is not None
    inputs, targets = split_protocol(scene, "rig")
    names = list(inputs.camera_names)

    # offline: the contract path
    torch.manual_seed(0)
    rec = Reconstructor.from_checkpoint(path, device="cpu").reconstruct(inputs)
    with torch.no_grad():
        offline = rec.render(targets.camtoworlds, targets.Ks, SIZE, SIZE, targets.stamps_ns).colors.clamp(0, 1)

    params = {"camera_names": names, "checkpoint": str(path), "device": "cpu", "pose_source": "tf",
              "image_transport": "compressed", "depth_tolerance_s": 0.01, "min_views": len(inputs),
              "max_input_views": len(inputs), "window_seconds": 30.0, "reconstruction_rate_hz": 5.0,
              "input_queue_depth": 50, "render_service": "/render_view", "virtual_camera_names": [],
              **{f"cameras.{n}.depth_topic": f"{n}/depth/image_rect_raw" for n in names}}
    session = InProcessSession(DOMAIN_ID, inputs, params, compression="png")
    client = session.client
    tf_pub = client.create_publisher(RCLPY.TFMessage, "/tf", TF_QOS)
    static_pub = client.create_publisher(RCLPY.TFMessage, "/tf_static", TF_STATIC_QOS)
    depth_pubs = {n: (client.create_publisher(CameraInfo, f"/{n}/depth/camera_info", 10),
                      client.create_publisher(Image, f"/{n}/depth/image_rect_raw", 10)) for n in names}
    mounts = {n: rigid_matrix((0.2, 0.1 * k, 0.9), (np.cos(0.2 * k), 0.0, 0.0, np.sin(0.2 * k)))
              for k, n in enumerate(names)}
    # the depth camera: the colour camera turned +90 deg about its optical axis, same intrinsics (square pixels,
    # centred principal point): its pixel (u', v') = (v, SIZE - 1 - u) of the colour's (u, v)
    K = inputs.Ks[0].numpy()
    assert K[0, 0] == K[1, 1] and K[0, 2] == K[1, 2] == (SIZE - 1) / 2
    turn = rigid_matrix((0.0, 0.0, 0.0), (np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)))
    v, u = np.mgrid[0:SIZE, 0:SIZE]

    def depth_image(d):
        out = np.empty_like(d)
        out[SIZE - 1 - u, v] = d[v, u]
        return out
    try:
        static_pub.publish(RCLPY.TFMessage(transforms=[
            *(transform_msg(mounts[n], 0, f"{n}_base", f"{n}_optical_frame", RCLPY) for n in names),
            *(transform_msg(turn, 0, f"{n}_optical_frame", f"{n}_depth_optical_frame", RCLPY) for n in names)]))
        session.publish_camera_infos()

        def depth_infos_held():  # sent until the node holds them: one sent before discovery matched is lost
            for n in names:
                depth_pubs[n][0].publish(camera_info_msg(K, SIZE, SIZE, 0, f"{n}_depth_optical_frame", RCLPY))
            with session.node._lock:
                return all(n in session.node._ingest._depth_rectify for n in names)
        wait_for(depth_infos_held, 20.0, "the depth cameras' camera_info held by the node")
        for i in torch.argsort(inputs.stamps_ns).tolist():
            n, stamp = names[int(inputs.camera_ids[i])], int(inputs.stamps_ns[i])
            session.publisher.publish_clock(stamp)
            session.publisher.pubs[n][2].publish(session.publisher.messages(i)[2])
            depth_pubs[n][1].publish(depth_msg(depth_image(inputs.depths[i].numpy()), stamp + 3_000_000,
                                               f"{n}_depth_optical_frame", types=RCLPY))
            time.sleep(0.02)
            base = inputs.camtoworlds[i].numpy() @ np.linalg.inv(mounts[n])
            tf_pub.publish(RCLPY.TFMessage(transforms=[transform_msg(base, s, "world", f"{n}_base", RCLPY)
                                                       for s in (stamp - 5_000_000, stamp + 5_000_000)]))
        st = session.wait_status(lambda s: s.views_used == len(inputs) and sum(s.depth_views_per_camera) ==
                                 len(inputs), 60.0, "a reconstruction of every input view, each with its depth")
        assert st.views_rejected == 0
        snap = session.node.window.snapshot()  # the depth registered back onto the colour pixels, exactly
        for s_, c, d in zip(snap.stamps_ns, snap.camera_ids, snap.depths):
            i = int(torch.nonzero((inputs.stamps_ns == s_) & (inputs.camera_ids == c))[0])
            np.testing.assert_array_equal(d.numpy(), inputs.depths[i].numpy())
        preds = session.render_views(targets)
    finally:
        session.close()
    live = float(psnr(preds, targets.images).mean())
    contract = float(psnr(offline, targets.images).mean())
    nearest = float(psnr(nearest_input(inputs, targets), targets.images).mean())
    print(f"held-out PSNR over {len(targets)} views: robot streams {live:.2f} dB, contract views offline "
          f"{contract:.2f} dB, nearest input {nearest:.2f} dB")
    assert abs(live - contract) < 0.2 and live > nearest + 3.0, (live, contract, nearest)
