"""The node's browser viewer (`viewer_port`) under real rclpy, seen through headless Chromium: empty until the
first reconstruction, then the node's newest reconstruction as splats in the scene's colours, and its time slider
changes what is drawn. The scene: posed views of a red disc that crosses the images over the window, on grey."""
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("rclpy")
try:
    from lrm4d_ros.ros.inprocess import InProcessSession, wait_for
except ImportError as exc:  # the generated interfaces need `scripts/build_ros.sh` + `source install/setup.bash`
    pytest.skip(str(exc), allow_module_level=True)

from lrm4d_ros.checkpoint import shipped_checkpoint_path  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from viewer_support import (changed, palette_distance, pinkish, require_chromium, require_viser,  # noqa: E402
                            save)

DOMAIN_ID = 76
FRAMES, CAMS, H, W = 3, 2, 48, 64
RED = torch.tensor([0.9, 0.05, 0.05])
PALETTE = [(0.5, 0.5, 0.5), (0.9, 0.05, 0.05)]  # the painted scene: grey, and a red disc
FOREIGN = [(0.05, 0.1, 0.9), (0.1, 0.8, 0.1)]  # colours it does not have


def drawn_in_palette(img, empty, palette) -> float:
    """Fraction of the clearly coloured pixels that the splats drew (changed from the empty scene, not near
    white) within 0.05 of what `palette` blended over the white page gives."""
    drawn = changed(img, empty) & (np.linalg.norm(img / 255.0 - 1.0, axis=-1) > 0.15)
    return float((palette_distance(img, palette)[drawn] < 0.05).mean())


def painted_views():
    """A generated rig's poses and stamps; each image grey with a red disc moving left to right over time."""
    views = generate(5, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, fps_range=(10.0, 10.0)))
    u = (views.stamps_ns - views.stamps_ns.min()).double() / float(views.stamps_ns.max() - views.stamps_ns.min())
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    images = torch.full((len(views), H, W, 3), 0.5)
    for i in range(len(views)):
        disc = (xx - (0.2 + 0.6 * float(u[i])) * W) ** 2 + (yy - H / 2) ** 2 < (H / 3) ** 2
        images[i][disc] = RED
    return replace(views, images=images)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_node_viewer_shows_the_newest_reconstruction_and_its_time_slider(tmp_path):
    require_viser()
    require_chromium()
    from lrm4d_ros.viewer.browser import HeadlessPage

    ckpt = shipped_checkpoint_path()
    if not ckpt.is_file():
        pytest.skip(f"shipped checkpoint not present at {ckpt}")
    views = painted_views()
    port = free_port()
    params = {"camera_names": list(views.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "min_views": len(views), "max_input_views": len(views), "window_seconds": 30.0,
              "reconstruction_rate_hz": 5.0, "input_queue_depth": 50, "virtual_camera_names": [],
              "viewer_port": port}
    session = InProcessSession(DOMAIN_ID, views, params)
    try:
        assert session.node.get_parameter("viewer_port").value == port
        with HeadlessPage(f"http://127.0.0.1:{port}", width=800, height=600) as page:
            empty = page.settled_screenshot(lambda im: "waiting for a reconstruction" in page.text())
            session.publish_camera_infos()
            for i in range(len(views)):
                session.publisher.publish(i)
            session.wait_status(lambda s: s.views_used == len(views), 60.0, "a reconstruction of every view")
            session.wait_settled()
            rec = session.node._latest[0]
            viewer = session.node._viewer
            wait_for(lambda: viewer.draws and viewer.draws[-1].stamp_ns == rec.window.end_ns, 30.0,
                     "the viewer drawing the newest stamp")
            assert viewer.draws[-1].gaussians == len(rec.slice(rec.window.end_ns))
            wait_for(lambda: set(viewer._frustums) == set(views.camera_names), 30.0, "a frustum per camera")
            page.click("cameras")  # the frustums show the input images: hide them, so only splats are compared
            wait_for(lambda: not viewer._frustums, 30.0, "the frustums removed")
            end = page.settled_screenshot(lambda im: f"stamp {rec.window.end_ns} ns" in page.text()
                                          and changed(im, empty).sum() > 2000)
            save(tmp_path, empty=empty, end=end)
            scene_colours = drawn_in_palette(end, empty, PALETTE)
            assert changed(end, empty).sum() > 5000
            # the colours drawn are the scene's, not others': far more pixels on a blend of the scene's palette over
            # the page than on a blend of colours it does not have. Not an absolute share: the shipped model's
            # splats are pixel-sized surfels whose anti-aliased edges mix grey and red (0.46-0.57 of the drawn
            # pixels on a palette blend, 0.001 on a foreign one, with the checkpoints of 2026-12-02)
            foreign = drawn_in_palette(end, empty, FOREIGN)
            assert scene_colours > 0.3 and foreign < 0.05 and scene_colours > 20 * foreign, (scene_colours, foreign)
            assert (pinkish(end) & ~pinkish(empty)).sum() > 100  # the disc's red among the grey

            page.slider_key("time (s)", "Home")
            start = page.settled_screenshot(lambda im: f"stamp {rec.window.start_ns} ns" in page.text())
            save(tmp_path, start=start)
            assert viewer.draws[-1].stamp_ns == rec.window.start_ns
            assert viewer.draws[-1].gaussians == len(rec.slice(rec.window.start_ns))
            # the early views' splats replace the late ones' (the disc, a hole in the grey, moved): the scene changed
            # (a share of what is drawn: pixel-sized surfels draw ~8000 pixels here, blurrier splats drew more)
            moved = changed(start, end)
            assert moved.sum() > max(1000, 0.15 * changed(end, empty).sum()), (moved.sum(), changed(end, empty).sum())
            # what changed is white page or the scene's colours: 0.55-0.58 of the moved pixels lie within 0.05 of a
            # blend of its palette over the page with the checkpoint of 2026-12-03 (0.6 and more before); the rest
            # are blends of grey and red at splat edges
            assert (palette_distance(start, PALETTE)[moved] < 0.05).mean() > 0.5
    finally:
        session.close()


def test_node_refuses_a_viewer_port_in_use_or_out_of_range():
    require_viser()
    import rclpy
    from rclpy.parameter import Parameter

    from lrm4d_ros.ros.reconstruct_node import ReconstructNode

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        with socket.socket() as s:
            s.bind(("0.0.0.0", 0))
            s.listen()
            port = s.getsockname()[1]
            with pytest.raises(ValueError, match=f"port {port} is in use"):
                ReconstructNode(context=context, parameter_overrides=[Parameter("viewer_port", value=port)])
        with pytest.raises(ValueError, match="parameter viewer_port: .*out of range"):
            ReconstructNode(context=context, parameter_overrides=[Parameter("viewer_port", value=70000)])
    finally:
        rclpy.try_shutdown(context=context)
