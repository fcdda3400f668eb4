"""`lrm4d demo` end to end on CPU with a tiny random model at 32x32 (a robot scene seen by a synchronized RGB-D
rig), and its novel-view orbit."""
import json
import math
from dataclasses import replace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from plyfile import PlyData

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.cli import main
from lrm4d_ros.cameras import SceneNormalization
from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.generator import generate, sample_scene
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.data.raycast import render_views
from lrm4d_ros.demo import DEMO_SEED, demo_scene_config, orbit_rig
from lrm4d_ros.metrics import psnr
from lrm4d_ros.pipeline import sweep_stamps
from lrm4d_ros.ply import FIELDS_3DGS, read_ply_3dgs, read_ply_4d, read_ply_stamp
from lrm4d_ros.reconstructor import load_reconstructor
from lrm4d_ros.video import GAP, LABEL_HEIGHT

R, T, C, N_VIDEO = 32, 4, 2, 6


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rc = main(["demo", "--config", "tiny", "--device", "cpu", "--out", str(out), "--frames", str(T),
               "--cameras", str(C), "--resolution", str(R), "--video-frames", str(N_VIDEO)])
    assert rc == 0
    return out


def test_demo_writes_a_decodable_video(demo_out):
    metrics = json.loads((demo_out / "metrics.json").read_text())
    frames = iio.imread(metrics["files"]["video"])
    # Prediction and ground truth side by side, one frame per orbit stamp.
    assert frames.shape == (N_VIDEO, R, 2 * R, 3)
    assert frames.dtype == np.uint8


def test_demo_ply_files_hold_the_reconstruction(demo_out):
    metrics = json.loads((demo_out / "metrics.json").read_text())
    inputs = T  # rig protocol with 2 cameras: camera 0 at every frame in, camera 1 held out
    assert metrics["inputs"] == inputs and metrics["held_out"] == T * C - inputs
    assert metrics["depth"] == "sensor" and metrics["seed"] == DEMO_SEED >= 1_000_000  # a held-out scene
    assert set(metrics["psnr_held_out"]) == {"model", "nearest_input", "background_only", "depth_reference"}
    # The tiny model sees 32x32 inputs and predicts one pixel-aligned Gaussian per input pixel.
    assert metrics["gaussians_4d"] == inputs * 32 * 32
    props = [p.name for p in PlyData.read(str(demo_out / "slice.ply"))["vertex"].properties]
    assert props == FIELDS_3DGS
    g3 = read_ply_3dgs(demo_out / "slice.ply")
    assert 0 < len(g3) == metrics["gaussians_slice"] <= metrics["gaussians_4d"]
    # sliced at an input moment (between two, every Gaussian would be half faded), which its header names
    views = generate(DEMO_SEED, demo_scene_config("tabletop", "poles", T, C, R))
    inputs, _ = split_protocol(views, "rig")
    assert read_ply_stamp(demo_out / "slice.ply") == metrics["slice_stamp_ns"] in inputs.stamps_ns.tolist()
    assert torch.isfinite(g3.means).all() and ((g3.opacities >= 0) & (g3.opacities <= 1)).all()
    g4 = read_ply_4d(demo_out / "gaussians_4d.ply")
    assert len(g4) == metrics["gaussians_4d"]
    # World units: times are seconds since the window start. Each pixel Gaussian is anchored at its input view's
    # stamp, so their times are the inputs' stamps (its camera's frames) relative to the first.
    inputs, _ = split_protocol(generate(DEMO_SEED, demo_scene_config("tabletop", "poles", T, C, R)), "rig")
    stamps_s = ((inputs.stamps_ns - inputs.stamps_ns.min()).double() * 1e-9).float()
    assert torch.allclose(torch.sort(g4.times).values, torch.sort(stamps_s.repeat_interleave(32 * 32)).values,
                          atol=1e-5)


def test_demo_contact_sheet_is_a_png_of_the_expected_size(demo_out):
    sheet = iio.imread(demo_out / "contact_sheet.png")
    cols = min(8, max(T, T * C - T))
    assert sheet.shape == (GAP + 4 * (LABEL_HEIGHT + R + GAP), GAP + cols * (R + GAP), 3)


def test_demo_video_shows_the_orbit_ground_truth_and_the_reported_psnr(demo_out):
    """The right half of the video is the exact ground truth of the orbit (re-rendered here), and the left half
    scores the printed orbit PSNR against it (up to H.264 loss)."""
    m = json.loads((demo_out / "metrics.json").read_text())
    frames = torch.from_numpy(iio.imread(m["files"]["video"])).float() / 255
    cfg = demo_scene_config("tabletop", "poles", T, C, R)
    inputs, _ = split_protocol(generate(DEMO_SEED, cfg), "rig")
    stamps = sweep_stamps(int(inputs.stamps_ns.min()), int(inputs.stamps_ns.max()), N_VIDEO)
    path = replace(sample_scene(DEMO_SEED, cfg), rig=orbit_rig(inputs, N_VIDEO))
    truth = render_views(path, torch.arange(N_VIDEO), stamps, R, R, supersample=cfg.supersample,
                         caster=cfg.caster).images
    # yuv420p halves the chroma resolution (~25 dB at 32x32 for the true frames); the neighbouring frames of the
    # orbit must score far lower.
    right = float(psnr(frames[:, :, R:], truth).mean())
    assert right > 20 and right > float(psnr(frames[1:, :, R:], truth[:-1]).mean()) + 3
    assert abs(float(psnr(frames[:, :, :R], truth).mean()) - m["psnr_orbit"]) < 1.5
    # the reported held-out figures are the scores of what was rendered, recomputed here (the same seeded model)
    views = with_depth(generate(DEMO_SEED, cfg), "sensor", seed=DEMO_SEED)
    inputs, targets = split_protocol(views, "rig")
    assert m["psnr_held_out"]["nearest_input"] == pytest.approx(
        float(psnr(nearest_input(inputs, targets), targets.images).mean()), abs=1e-3)
    rec = load_reconstructor(None, "tiny", "cpu", seed=m["seed"]).reconstruct(inputs)
    with torch.no_grad():
        pred = rec.render(targets.camtoworlds, targets.Ks, R, R, targets.stamps_ns).colors
    assert m["psnr_held_out"]["model"] == pytest.approx(float(psnr(pred, targets.images).mean()), abs=1e-3)


def test_orbit_is_one_novel_turn_about_the_rigs_point_of_interest():
    views = generate(DEMO_SEED, demo_scene_config("tabletop", "poles", T, 6, R))  # the demo's own rig
    rig = orbit_rig(views, 9)
    centre = SceneNormalization.from_cameras(views.camtoworlds).center
    eye = rig.camtoworlds[:, :3, 3] - centre
    dist = (views.camtoworlds[:, :3, 3] - centre).norm(dim=-1).mean()
    assert torch.allclose(eye.norm(dim=-1), dist.expand(9), atol=1e-9)
    assert torch.allclose(rig.camtoworlds[0], rig.camtoworlds[-1], atol=1e-9)  # a full turn
    az = torch.atan2(eye[:, 1], eye[:, 0])
    step = (az[1] - az[0]) % (2 * math.pi)
    assert math.isclose(float(step), 2 * math.pi / 8, abs_tol=1e-6)
    # every orbit camera looks at the point of interest, and none coincides with a rig camera: a novel view
    look = rig.camtoworlds[:, :3, 2]
    torch.testing.assert_close(look, -eye / eye.norm(dim=-1, keepdim=True), atol=1e-9, rtol=0)
    gap = (rig.camtoworlds[:, None, :3, 3] - views.camtoworlds[None, :, :3, 3]).norm(dim=-1).min()
    assert gap > 0.05 * dist


def test_video_falls_back_to_gif_and_pads_odd_sizes_for_h264(tmp_path, monkeypatch):
    import lrm4d_ros.video as video

    frames = np.random.default_rng(0).random((3, 15, 17, 3)).astype(np.float32)
    mp4 = video.write_video(tmp_path / "a.mp4", frames, fps=5)
    assert mp4.suffix == ".mp4" and iio.imread(mp4).shape == (3, 16, 18, 3)  # yuv420p needs even sizes
    monkeypatch.setattr(video, "ffmpeg_available", lambda: False)
    gif = video.write_video(tmp_path / "b.mp4", frames, fps=5)
    assert gif.suffix == ".gif"
    decoded = iio.imread(gif)
    assert decoded.shape[:3] == (3, 15, 17)
    # GIF quantises to a 256-colour palette: close to the frames, not equal.
    err = np.abs(decoded[..., :3].astype(np.float64) / 255 - frames).mean()
    assert err < 0.05


def test_demo_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for argv, text in ((["--out", str(tmp_path / "afile")], "is a file"),
                       (["--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "nope.safetensors")],
                        "checkpoint not found"),
                       (["--out", str(tmp_path / "o"), "--device", "cuda:7"], "not available"),
                       (["--out", str(tmp_path / "o"), "--cameras", "1"], "--cameras must be >= 2")):
        assert main(["demo", *argv]) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_video_ffmpeg_could_not_write_is_an_error_not_a_path(tmp_path):
    """imageio's ffmpeg plugin returns as if it had written a file ffmpeg could not open (a folder in its place):
    write_video raises instead of returning that path."""
    import lrm4d_ros.video as video

    if not video.ffmpeg_available():
        pytest.skip("no ffmpeg: videos are GIFs")
    (tmp_path / "v.mp4").mkdir()
    with pytest.raises(OSError, match="ffmpeg did not write the video"):
        video.write_video(tmp_path / "v.mp4", np.zeros((2, 16, 16, 3), np.float32))


def test_the_sheet_shows_every_input_camera_and_the_new_viewpoints():
    from lrm4d_ros.data.protocols import RIG_GROUPS, protocol_groups
    from lrm4d_ros.demo import SHEET_COLUMNS, sheet_tiles

    views = generate(DEMO_SEED, demo_scene_config("tabletop", "poles", 12, 6, R))  # the demo's own rig
    in_idx, groups = protocol_groups(views, "rig")
    held = [g for g in RIG_GROUPS if g != "self" and len(groups[g])]
    inputs = views.select(in_idx)
    targets = views.select(torch.cat([groups[g] for g in held]))
    shown_inputs, show = sheet_tiles(inputs, targets, [len(groups[g]) for g in held], held)
    assert len(shown_inputs) == len(show) == SHEET_COLUMNS
    assert set(inputs.camera_ids[shown_inputs].tolist()) == set(inputs.camera_ids.tolist())  # all three cameras
    assert inputs.stamps_ns[shown_inputs].max() > inputs.stamps_ns[shown_inputs].min()  # and several moments
    novel = set(torch.cat([groups["novel_view"], groups["novel_view_time"]]).tolist())
    assert {int(i) for i in torch.cat([groups[g] for g in held])[show]} <= novel
