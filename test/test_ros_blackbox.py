"""Black box: the reconstruct node as its own process (`python -m lrm4d_ros.ros.reconstruct_node`, a small
random model), this test as a separate rclpy process streaming a generated 5-camera synchronized scene at 10 Hz
stamped with the wall clock, hostile messages and render requests mixed in. The node must stay up, use every
camera, accept every camera again after the hostile phase, keep >= 99 % of the good views, count every refusal
by reason, and answer render_view throughout."""
import math
import time

import numpy as np
import torch

from conftest import require_ros_interfaces

require_ros_interfaces()
from lrm4d_ros.ros.live import StreamClient, start_node, stop_node  # noqa: E402

from lrm4d_ros.checkpoint import save_model  # noqa: E402
from lrm4d_ros.data.generator import SceneConfig, generate  # noqa: E402
from lrm4d_ros.io.messages import camera_info_msg, float_image_msg, image_msg, pose_msg, time_msg  # noqa: E402
from lrm4d_ros.model import LRM4D, LRM4DConfig  # noqa: E402
from lrm4d_ros.ros.conversions import RCLPY  # noqa: E402
from lrm4d_ros.ros.interfaces import RenderView  # noqa: E402

DOMAIN_ID = 77
CAMS, FRAMES, H, W, HZ = 5, 20, 48, 64, 10.0
S = 10**9


def reasons(st) -> dict:
    return dict(zip(st.rejection_reasons, st.rejection_counts))


def render_request(scene, i, stamp_ns=0) -> RenderView.Request:
    req = RenderView.Request()
    req.camera_pose = pose_msg(scene.camtoworlds[i].numpy(), 0, "world", RCLPY).pose
    K = scene.Ks[i].numpy()
    req.fx, req.fy, req.cx, req.cy, req.width, req.height = K[0, 0], K[1, 1], K[0, 2], K[1, 2], W, H
    req.stamp = time_msg(stamp_ns, RCLPY)
    req.return_color = req.return_depth = True
    req.frame_id = "probe_optical_frame"
    return req


def hostile(client: StreamClient, scene, k: int, last_good: int) -> None:
    """The k-th hostile message (categories in turn), on camera k mod CAMS."""
    name = scene.camera_names[k % CAMS]
    info_pub, pose_pub, image_pub = client.publisher.pubs[name]
    now = time.time_ns()
    zeros = np.zeros((H, W, 3), np.uint8)
    kind = k % 12
    if kind == 0:
        image_pub.publish(float_image_msg(np.zeros((H, W), np.float32), now, "", RCLPY))  # depth on colour
    elif kind == 1:
        image_pub.publish(image_msg(np.zeros((H // 2, W // 2, 3), np.uint8), now, "", types=RCLPY))  # size
    elif kind == 2:
        msg = image_msg(zeros, now, "", types=RCLPY)
        msg.data = bytes(10)  # truncated
        image_pub.publish(msg)
    elif kind == 3:
        msg = pose_msg(np.eye(4), now, "world", RCLPY)
        msg.pose.orientation.w = float("nan")
        pose_pub.publish(msg)
    elif kind == 4:
        msg = pose_msg(np.eye(4), now, "world", RCLPY)
        msg.pose.orientation.w = 0.0  # zero quaternion
        pose_pub.publish(msg)
    elif kind == 5:
        image_pub.publish(image_msg(zeros, now + 10**6 * S, "", types=RCLPY))  # far future
    elif kind == 6:
        pose_pub.publish(pose_msg(np.eye(4), now + 10**6 * S, "world", RCLPY))
    elif kind == 7:
        image_pub.publish(image_msg(zeros, S, "", types=RCLPY))  # far past: 1 s after the epoch
    elif kind == 8:
        pose_pub.publish(pose_msg(np.eye(4), 2 * S, "world", RCLPY))
    elif kind == 9:
        image_pub.publish(image_msg(zeros, last_good, "", types=RCLPY))  # duplicate of the last good stamp
    elif kind == 10:
        info = camera_info_msg(np.eye(3), W, H, now, "", RCLPY)
        info.k = [0.0] * 9  # fx = fy = 0
        info_pub.publish(info)
    else:
        info_pub.publish(camera_info_msg(np.diag([50.0, 50.0, 1.0]), 0, 0, now, "", RCLPY))  # no size


BAD_RENDERS = [
    (lambda r: setattr(r.camera_pose.position, "x", float("nan")), "non-finite"),
    (lambda r: setattr(r, "fx", 0.0), "fx, fy > 0"),
    (lambda r: (setattr(r, "width", 50000), setattr(r, "height", 50000)), "max_render_pixels"),
    (lambda r: setattr(r, "stamp", time_msg(S, RCLPY)), "outside the reconstructed window"),
]


def test_node_process_under_a_hostile_stream(tmp_path):
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    scene = generate(11, SceneConfig(frames=FRAMES, cameras=CAMS, height=H, width=W, synchronized=True,
                                     fps_range=(HZ, HZ), num_primitives=(2, 3)))
    params = {"camera_names": list(scene.camera_names), "checkpoint": str(ckpt), "device": "cpu",
              "max_input_views": 12, "min_views": CAMS, "render_service": "/render_view",
              "max_concurrent_renders": 4, "virtual_camera_names": []}
    proc = start_node(params, DOMAIN_ID, tmp_path)
    client = StreamClient(DOMAIN_ID, scene)
    good = np.zeros(CAMS, dtype=np.int64)  # good colour images published after the baseline
    renders = {"good": 0, "good_ok": 0, "bad": 0, "bad_refused": 0, "errors": []}
    futures = []
    frame = [0]

    def publish_good(count: bool = True) -> int:
        f = frame[0] % FRAMES
        stamp = client.publish_frame(range(f * CAMS, (f + 1) * CAMS))
        frame[0] += 1
        if count:
            good[:] += 1
        return stamp

    def stream(seconds: float, hostile_per_frame: int = 0, render_every: int = 0) -> int:
        start, k, stamp = time.monotonic(), 0, 0
        while time.monotonic() - start < seconds:
            stamp = publish_good()
            for j in range(hostile_per_frame):
                hostile(client, scene, k * hostile_per_frame + j, stamp)
            if render_every and k % render_every == 0:
                i = (frame[0] - 1) % FRAMES * CAMS
                futures.append(("good", None, client.render.call_async(render_request(scene, i))))
                mutate, reason = BAD_RENDERS[(k // render_every) % len(BAD_RENDERS)]
                req = render_request(scene, i)
                mutate(req)
                futures.append(("bad", reason, client.render.call_async(req)))
            k += 1
            time.sleep(max(0.0, start + k / HZ - time.monotonic()))
        return stamp

    try:
        client.wait_ready(timeout=120.0)
        # warm-up: until every camera has a view in (camera_info first; DDS discovery may drop the very first)
        deadline = time.monotonic() + 60.0
        while not ((st := client.status()) is not None and min(st.kept_per_camera) >= 2):
            assert time.monotonic() < deadline, f"warm-up never completed; last status {client.status()}"
            publish_good(count=False)
            time.sleep(1.0 / HZ)
        time.sleep(2.2)  # a 1 Hz status that surely follows the last warm-up view
        base = client.status()  # (warm-up images may have beaten their first camera_info: not counted below)

        stream(2.0)  # clean
        stream(4.0, hostile_per_frame=3, render_every=5)  # 12 hostile messages cover each camera and category
        after_hostile = client.wait_status(lambda s: s.header.stamp.sec > 0, 5.0, "a status")
        n_rec = after_hostile.reconstructions
        stream(2.0, render_every=5)  # clean again
        time.sleep(1.5)
        final = client.wait_status(lambda s: s.reconstructions > n_rec, 10.0, "reconstructions after the hostile "
                                   "phase")
        time.sleep(1.2)
        final = client.status()
        assert proc.poll() is None, "the node process died"

        for kind, reason, fut in futures:
            assert fut.done() or _wait(fut), "a render_view request got no answer"
            resp = fut.result()
            renders[kind] += 1
            if kind == "good":
                renders["good_ok"] += resp.success
                if resp.success:
                    assert resp.color.header.frame_id == "probe_optical_frame" and resp.camera_info.width == W
            else:
                renders["bad_refused"] += (not resp.success and reason in resp.message)
    finally:
        client.close()
        code = stop_node(proc)
    log = (tmp_path / "node.log").read_text()

    kept = np.array(final.kept_per_camera, dtype=np.int64) - np.array(base.kept_per_camera, dtype=np.int64)
    kept_pct = 100.0 * kept / good
    per_reason = {k: v - reasons(base).get(k, 0) for k, v in reasons(final).items()}
    used_after = [s.views_per_camera for s in client.statuses if s.reconstructions > n_rec]
    print(f"\nblack box: {CAMS} cameras x {HZ:g} Hz, {int(good[0])} good frames after warm-up; views kept per "
          f"camera {kept.tolist()} of {good.tolist()} ({', '.join(f'{p:.1f} %' for p in kept_pct)}); "
          f"dropped {final.views_dropped - base.views_dropped}; refusals by reason {per_reason}; "
          f"views per camera in the last reconstruction {list(final.views_per_camera)}; render_view good "
          f"{renders['good_ok']}/{renders['good']} answered, bad {renders['bad_refused']}/{renders['bad']} refused")

    assert code == 0 and "Traceback" not in log, log[-3000:]
    assert (kept_pct >= 99.0).all(), (kept.tolist(), good.tolist())
    assert all(min(v) > 0 for v in used_after) and used_after, used_after  # every camera in every reconstruction
    assert (np.array(final.kept_per_camera) > np.array(after_hostile.kept_per_camera)).all()  # all accepted again
    for reason in ("bad_encoding", "bad_image", "size_mismatch", "bad_pose", "future_stamp", "stale_stamp",
                   "duplicate_stamp", "bad_camera_info"):
        assert per_reason.get(reason, 0) > 0, (reason, per_reason)
    assert renders["good"] >= 10 and renders["good_ok"] == renders["good"], renders
    assert renders["bad"] >= 10 and renders["bad_refused"] == renders["bad"], renders
    assert math.isfinite(final.reconstruction_time)


def _wait(fut, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while not fut.done() and time.monotonic() < end:
        time.sleep(0.02)
    return fut.done()

