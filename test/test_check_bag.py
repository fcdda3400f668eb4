"""`lrm4d check-bag` on a robot validation scene's bag as written (nothing found, exit 0) and as other renderers write
it (each mistake found once, with its windows, exit 1), and on a bag that is not there (exit 2)."""
import json
from dataclasses import replace

import pytest
import torch

from lrm4d_ros.cli import main
from lrm4d_ros.io.bag import write_bag
from lrm4d_ros.measured_depth import ray_lengths


@pytest.fixture(scope="module")
def views():
    from lrm4d_ros.data import eval_scenes as es
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import generate

    seed, layout, rig = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED + 40, 1)[0]
    return with_depth(generate(seed, es.robot_scene_config(layout, rig, supersample=1)), "sensor", seed=seed)


def _check(bag, tmp_path, capsys) -> tuple[int, str, dict]:
    out = tmp_path / "check.json"
    rc = main(["check-bag", str(bag), "--json", str(out)])
    return rc, capsys.readouterr().out, json.loads(out.read_text()) if out.is_file() else {}


def test_a_bag_as_written_holds_nothing_to_tell(views, tmp_path, capsys):
    rc, text, report = _check(write_bag(views, tmp_path / "bag", depth_encoding="32FC1"), tmp_path, capsys)
    assert rc == 0 and "nothing found" in text
    assert len(report["windows"]) == 2 and report["findings"] == []  # 12 frames: windows of 8 every 4
    for w in report["windows"]:
        assert w["units_factor"] == 1.0 and w["frame"] is None and w["ray_t"] < -8 and w["tilt_deg"] < 1
        assert w["agreement"] == w["optical_agreement"] > 0.15 and 0.001 < w["noise"] < 0.003


def test_a_renderers_mistakes_are_each_told_once_with_their_windows(views, tmp_path, capsys):
    # millimetres along each pixel's ray, and poses of OpenGL's camera frame (z back)
    gl = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    bad = replace(views, depths=views.depths * ray_lengths(views.Ks, views.height, views.width).float() * 1000,
                  camtoworlds=(views.camtoworlds.double() @ gl).to(views.camtoworlds.dtype))
    rc, text, report = _check(write_bag(bad, tmp_path / "bag", depth_encoding="32FC1"), tmp_path, capsys)
    assert rc == 1
    told = [f["text"] for f in report["findings"]]
    assert len(told) == 4, told
    assert any("distance along its ray" in t for t in told)
    assert any("multiplied by 0.001" in t for t in told)
    assert any("only with the poses read as OpenGL's camera frame" in t for t in told)
    assert any("world frame's z is 180.0°" in t for t in told)  # such poses look upside down too
    assert all(f["where"] == [1, 2] for f in report["findings"])
    assert "4 findings:" in text and text.count("[windows 1-2]") == 4
    for w in report["windows"]:
        assert w["units_factor"] == 0.001 and w["ray_t"] > 8 and w["frame"].startswith("with the poses read as OpenGL")


def test_a_part_of_a_bag_is_checked_alone(views, tmp_path, capsys):
    """--start / --duration (seconds from the first image): only that part is read, as `reconstruct` reads it, so a
    part of a bag too long for memory can be checked."""
    bag = write_bag(views, tmp_path / "bag", depth_encoding="32FC1")
    first = sorted(views.stamps_ns[views.camera_ids == 0].tolist())
    frame_s = (first[1] - first[0]) * 1e-9
    out = tmp_path / "part.json"
    assert main(["check-bag", str(bag), "--start", f"{2.5 * frame_s}", "--duration", f"{4 * frame_s}",
                 "--window", "4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    cams = len(views.camera_names)
    assert f": {4 * cams} views from {cams} cameras" in text and ", 4 frames," in text  # frames 3-6
    assert len(json.loads(out.read_text())["windows"]) == 1
    assert main(["check-bag", str(bag), "--duration", "0"]) == 2
    assert "--duration > 0 seconds" in capsys.readouterr().err


def test_a_missing_bag_checkpoint_or_unwritable_json_is_an_error(views, tmp_path, capsys):
    bag = write_bag(views.select(torch.arange(6)), tmp_path / "bag")
    for argv, says in (([str(tmp_path / "nothing")], "nothing"),
                       ([str(bag), "--checkpoint", str(tmp_path / "none.safetensors")], "checkpoint not found"),
                       ([str(bag), "--json", str(tmp_path)], "--json")):
        assert main(["check-bag", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lrm4d check-bag: error:") and says in err, err


def test_a_camera_stamping_late_and_one_with_a_wrong_focal_length_are_told(tmp_path, capsys):
    """A moving head rig (validation scene 1002141) whose camera cam0 is posed 20 ms behind its images (its driver
    stamps frames late, or its poses lag) and whose cam2's camera_info has fx, fy 5 % long: told as +20 ms and x0.951
    against the other cameras, with what to set; as written nothing (every camera 0 ms, x1)."""
    from stamp_support import head_rig

    rc, text, report = _check(write_bag(head_rig(), tmp_path / "bag", depth_encoding="32FC1"), tmp_path, capsys)
    assert rc == 0 and "stamps against the rig's cam0 +0 ms" in text and "focal lengths against the rig's cam0 x1.00" \
        in text, text
    assert all(set(w["stamp_offsets"].values()) == {0.0} for w in report["windows"])
    assert all(set(w["focal_scales"].values()) == {1.0} for w in report["windows"])
    rc, text, report = _check(write_bag(head_rig(0.02, focal=1.05), tmp_path / "late", depth_encoding="32FC1"),
                              tmp_path, capsys)
    assert rc == 1
    assert [f["text"] for f in report["findings"]] == [
        "camera cam0's images agree with the other cameras' at its stamps +20 ms (its driver stamps them early, or "
        "the others' do): set cameras.cam0.time_offset_s: 0.02 (convert-bag --time-offset cam0=0.02). What all "
        "cameras share cannot be read this way",
        "camera cam2's images agree with the other cameras' with its camera_info fx, fy x0.951 (long by 5%): check "
        "its calibration (a camera_info of another resolution, or an uncalibrated default)"]
    assert all(f["where"] == [1, 2] for f in report["findings"])
    for w in report["windows"]:
        assert w["stamp_offsets"] == {"cam0": 0.02, **{f"cam{c}": 0.0 for c in range(1, 6)}}
        assert w["focal_scales"] == {"cam2": 0.951, **{f"cam{c}": 1.0 for c in (0, 1, 3, 4, 5)}}


def test_the_summary_says_which_cameras_have_depth_on_some_frames_and_what_the_model_gets(views):
    """A dropped depth frame or depth at a lower rate than colour: the model is given a camera's views with depth
    where it has depth at least every other frame (selection.with_depth_first), all its views where it has less."""
    from lrm4d_ros.check_bag import depth_line

    depths = views.depths.clone()
    rank = torch.zeros(len(views), dtype=torch.long)
    for c in range(len(views.camera_names)):
        at = torch.nonzero(views.camera_ids == c)[:, 0]
        rank[at[torch.argsort(views.stamps_ns[at])]] = torch.arange(len(at))
    depths[(views.camera_ids == 0) & (rank % 2 == 1)] = 0  # cam0: every other frame
    depths[(views.camera_ids == 1) & (rank % 3 != 0)] = 0  # cam1: every third
    n = len(views) // len(views.camera_names)
    assert depth_line(replace(views, depths=depths)) == (
        f"depth on {len(views) - n // 2 - (n - (n + 2) // 3)} views ({views.camera_names[0]} {n - n // 2} of {n}: the "
        f"model is given those with depth; {views.camera_names[1]} {(n + 2) // 3} of {n}: the model is given all, "
        "most without depth)")
    assert depth_line(views) == f"depth on {len(views)} views"
    assert depth_line(replace(views, depths=None)) == "depth on 0 views"
