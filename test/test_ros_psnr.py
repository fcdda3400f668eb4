"""End to end over real rclpy with the shipped checkpoint: the inputs of the "novel-camera" protocol
(docs/design.md §5: even cameras in turn) of a generated held-out scene are replayed on the contract topics, the node
reconstructs the window, and render_view renders the never-seen odd cameras at their capture times. Their mean PSNR against ground truth
must beat the copy-the-nearest-input baseline."""
import pytest

from conftest import require_ros_interfaces  # noqa: E402

require_ros_interfaces()
from lrm4d_ros.ros.inprocess import InProcessSession  # noqa: E402

from lrm4d_ros.baselines import nearest_input  # noqa: E402
from lrm4d_ros.checkpoint import shipped_checkpoint_path  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.data.protocols import split_protocol  # noqa: E402
from lrm4d_ros.metrics import psnr  # noqa: E402

DOMAIN_ID = 72
FRAMES, CAMS, SIZE = 12, 6, 64
SEED = 1_000_011  # training uses seeds < 1e6


def test_render_view_beats_nearest_input_with_shipped_checkpoint():
    path = shipped_checkpoint_path()
    if not path.is_file():
        pytest.skip(f"shipped checkpoint not present at {path}")
    scene = generate(SEED, SceneConfig(frames=FRAMES, cameras=CAMS, height=SIZE, width=SIZE))
    inputs, targets = split_protocol(scene, "novel-camera")
    targets = targets.select(slice(0, None, 3))  # every third target keeps the test short
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(path), "device": "cpu",
              "min_views": len(inputs), "max_input_views": len(inputs), "window_seconds": 30.0,
              "reconstruction_rate_hz": 5.0, "input_queue_depth": 50, "render_service": "/render_view",
              "virtual_camera_names": []}
    session = InProcessSession(DOMAIN_ID, inputs, params)
    try:
        session.publish_camera_infos()
        for i in range(len(inputs)):
            session.publisher.publish(i)
        session.wait_status(lambda s: s.views_used == len(inputs), 60.0,
                            f"a reconstruction of all {len(inputs)} input views")
        preds = session.render_views(targets)
    finally:
        session.close()
    model_psnr = psnr(preds, targets.images)
    base_psnr = psnr(nearest_input(inputs, targets), targets.images)
    model, base = float(model_psnr.mean()), float(base_psnr.mean())
    print(f"held-out PSNR over {len(targets)} views: render_view {model:.2f} dB, nearest input {base:.2f} dB")
    assert model > base, (model, base)
