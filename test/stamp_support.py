"""A moving rig for the stamp-offset tests (test_check_bag, test_pipeline, test_ros_depth): validation scene
1002141 (a workcell head rig, 6 cameras x 12 frames at 128², sensor depth), as written, with camera cam0 posed
`lag_s` behind its images (its driver stamps them late, or its poses lag), and with camera cam2's camera_info fx, fy
times `focal` (a wrong calibration)."""


def head_rig(lag_s: float = 0.0, focal: float = 1.0):
    from lrm4d_ros.data import eval_scenes as es
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import generate
    from lrm4d_ros.rig_reading import with_offsets, with_scales

    seed, layout, rig = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED + 40, 2)[1]
    assert rig == "head"
    views = with_depth(generate(seed, es.robot_scene_config(layout, rig, supersample=1)), "sensor", seed=seed)
    return with_scales(with_offsets(views, {"cam0": -lag_s}), {"cam2": focal})
