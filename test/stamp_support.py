"""A moving rig for the stamp-offset tests (test_check_bag, test_pipeline, test_ros_depth): validation scene
1002141 (a workcell head rig, 6 cameras x 12 frames at 128², sensor depth), as written, with camera cam0 posed
`lag_s` behind its images (its driver stamps them late, or its poses lag), and with camera cam2's camera_info fx, fy
times `focal` (a wrong calibration)."""


def head_rig(lag_s: float = 0.0, focal: float = 1.0):
    from lrm4d_ros.data.eval_scenes import moving_head_rig
    from lrm4d_ros.rig_reading import with_offsets, with_scales

    return with_scales(with_offsets(moving_head_rig(), {"cam0": -lag_s}), {"cam2": focal})
