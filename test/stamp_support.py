"""A moving rig for the stamp-offset tests (test_check_bag, test_pipeline, test_ros_depth): validation scene
1002141 (a workcell head rig, 6 cameras x 12 frames at 128², sensor depth), as written, with camera cam0 posed
`lag_s` behind its images (its driver stamps them late, or its poses lag), and with camera cam2's camera_info fx, fy
times `focal` (a wrong calibration)."""
import torch


def head_rig(lag_s: float = 0.0, focal: float = 1.0):
    from dataclasses import replace

    from lrm4d_ros.data import eval_scenes as es
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import generate
    from lrm4d_ros.stamp_offset import poses_at

    seed, layout, rig = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED + 40, 2)[1]
    assert rig == "head"
    views = with_depth(generate(seed, es.robot_scene_config(layout, rig, supersample=1)), "sensor", seed=seed)
    cam0, cam2 = torch.where(views.camera_ids == 0)[0], torch.where(views.camera_ids == 2)[0]
    t = (views.stamps_ns[cam0] - views.stamps_ns[cam0][0]).double() * 1e-9
    c2w, Ks = views.camtoworlds.clone(), views.Ks.clone()
    if lag_s:
        c2w[cam0] = poses_at(views.camtoworlds[cam0], t, t - lag_s).to(c2w.dtype)
    Ks[cam2, 0, 0] *= focal
    Ks[cam2, 1, 1] *= focal
    return replace(views, camtoworlds=c2w, Ks=Ks)
