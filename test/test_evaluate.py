"""Metrics against closed forms, the baselines' view choice, and `lrm4d evaluate` end to end on a small bag."""
import json
import math
from dataclasses import replace

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lrm4d_ros.baselines import background_only, nearest_input, nearest_input_index
from lrm4d_ros.cameras import fov_to_K
from lrm4d_ros.evaluate import seen_by_inputs
from lrm4d_ros.checkpoint import save_model
from lrm4d_ros.metrics import depth_scores, depth_sums, pooled_psnr, psnr, ssim
from lrm4d_ros.model import LRM4D, LRM4DConfig
from lrm4d_ros.views import ViewSet


def test_psnr_of_a_constant_offset():
    a = torch.rand(2, 16, 16, 3) * 0.8
    torch.testing.assert_close(psnr(a + 0.1, a), torch.full((2,), 20.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(psnr(a + 0.01, a), torch.full((2,), 40.0), atol=1e-3, rtol=0)
    assert torch.isinf(psnr(a, a)).all()
    # pooled over pixels from summed squared errors (the budgets' figure): one image's pixels give its PSNR
    se = ((a[0] + 0.1 - a[0]) ** 2).mean(-1)
    assert pooled_psnr(float(se.sum()), se.numel()) == pytest.approx(20.0, abs=1e-4)
    assert pooled_psnr(0.0, 10) == math.inf


def test_ssim_closed_forms():
    # Constant images a, b: variances vanish, so SSIM = (2ab + C1) / (a² + b² + C1).
    a, b, c1 = 0.3, 0.5, 0.01 ** 2
    x, y = torch.full((1, 20, 20, 3), a), torch.full((1, 20, 20, 3), b)
    torch.testing.assert_close(ssim(x, y), torch.tensor([(2 * a * b + c1) / (a * a + b * b + c1)]))
    z = torch.rand(3, 24, 24, 3)
    torch.testing.assert_close(ssim(z, z), torch.ones(3))
    # Contrast inversion about the mean drives the structure term negative.
    assert float(ssim(z, 1 - z).mean()) < 0
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 8, 3))
    with pytest.raises(ValueError, match="must both be"):
        psnr(torch.rand(1, 8, 8, 3), torch.rand(1, 8, 9, 3))


def _rig_views(cams, stamps, centres, names=("a", "b", "c"), res=16):
    V = len(cams)
    c2w = torch.eye(4, dtype=torch.float64).repeat(V, 1, 1)
    c2w[:, :3, 3] = torch.tensor(centres, dtype=torch.float64)
    images = torch.arange(V, dtype=torch.float32).view(V, 1, 1, 1).expand(V, res, res, 3) / 10
    return ViewSet(images=images.clone(), Ks=fov_to_K(1.0, res, res).expand(V, 3, 3).clone(), camtoworlds=c2w,
                   stamps_ns=torch.tensor(stamps, dtype=torch.int64), camera_ids=torch.tensor(cams),
                   camera_names=list(names))


def test_depth_scores_closed_forms():
    """AbsRel, δ<1.25 and coverage of a rendered depth against a measured one, pixels pooled over views."""
    true = torch.full((2, 4, 4), 2.0)
    true[0, 0] = 0.0  # a row the camera did not measure: not scored, whatever is rendered there
    true[1, 0, 0] = float("inf")  # REP 117's no return: not a measurement either
    pred = true.clone()
    pred[0, 1] = 2.2  # +10 %: within δ₁
    pred[0, 2] = 3.0  # +50 %: outside it
    pred[0, 0] = 40.0
    alpha = torch.ones(2, 4, 4)
    alpha[1, 3] = 0.4  # below DEPTH_MIN_ALPHA: not covered (a faint pixel's depth says little)
    pred[1, 3] = 99.0
    pred[1, 2, 0] = 0.0  # nothing rendered at all there
    sums = depth_sums(pred, alpha, true)
    measured = [12, 15]
    covered = [12, 15 - 4 - 1]
    assert sums[:, 0].tolist() == measured and sums[:, 1].tolist() == covered
    assert math.isclose(float(sums[0, 2]), 4 * 0.1 + 4 * 0.5, rel_tol=1e-6)
    assert sums[0, 3] == 8 and sums[1, 3] == 10 and sums[1, 2] == 0
    s = depth_scores(sums)
    assert s["pixels"] == 27 and math.isclose(s["coverage"], 22 / 27)
    assert math.isclose(s["abs_rel"], 2.4 / 22, rel_tol=1e-6) and math.isclose(s["delta1"], 18 / 22)
    assert depth_scores(sums[1:])["abs_rel"] == 0.0
    # nothing covered: no AbsRel or δ₁ to give, coverage 0; nothing measured: no figure at all
    none = depth_scores(depth_sums(pred, torch.zeros_like(alpha), true))
    assert none["abs_rel"] is None and none["delta1"] is None and none["coverage"] == 0.0
    assert depth_scores(depth_sums(pred, alpha, torch.zeros_like(true)))["coverage"] is None
    with pytest.raises(ValueError, match="must all be"):
        depth_sums(pred, alpha[:1], true)


def test_nearest_input_prefers_same_camera_then_time_then_centre():
    base = 1_700_000_000_000_000_000
    ms = 1_000_000
    inputs = _rig_views(cams=[0, 1, 0], stamps=[base, base + 100 * ms, base + 300 * ms],
                        centres=[[0, 0, 0], [5, 0, 0], [0, 0, 0]])
    targets = _rig_views(cams=[0, 0, 2, 2], stamps=[base + 140 * ms, base + 160 * ms, base + 90 * ms, base],
                         centres=[[0, 0, 0], [0, 0, 0], [4, 0, 0], [4, 0, 0]])
    # camera a: nearest a-input in time (0 ms vs 300 ms); camera c has no inputs: nearest time, then centre.
    assert nearest_input_index(inputs, targets).tolist() == [0, 2, 1, 0]
    pred = nearest_input(inputs, targets.resized(8, 8))
    assert pred.shape == (4, 8, 8, 3)
    torch.testing.assert_close(pred[:, 0, 0, 0], torch.tensor([0.0, 0.2, 0.1, 0.0]))
    # two inputs at the same instant: the nearer camera centre wins
    inputs2 = _rig_views(cams=[0, 1], stamps=[base, base], centres=[[0, 0, 0], [3.9, 0, 0]])
    assert nearest_input_index(inputs2, targets.select([3])).tolist() == [1]


def test_background_only_is_the_border_colour():
    imgs = torch.zeros(2, 16, 16, 3)
    imgs[:] = torch.tensor([0.2, 0.4, 0.6])
    imgs[:, 4:12, 4:12] = 1.0  # object in the middle, background on the border
    v = ViewSet(images=imgs, Ks=fov_to_K(1.0, 16, 16).expand(2, 3, 3).clone(),
                camtoworlds=torch.eye(4, dtype=torch.float64).repeat(2, 1, 1),
                stamps_ns=torch.tensor([1, 2]), camera_ids=torch.tensor([0, 1]))
    bg = background_only(v, v.resized(8, 8))
    assert bg.shape == (2, 8, 8, 3)
    torch.testing.assert_close(bg, torch.tensor([0.2, 0.4, 0.6]).expand(2, 8, 8, 3))


def test_evaluate_cli_on_a_generated_bag(tmp_path, capsys):
    from lrm4d_ros.cli import main
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag

    cfg = SceneConfig(frames=4, cameras=4, height=32, width=32, rig_kinds=("orbit",), ground_prob=0.0,
                      backdrop_prob=0.0, num_primitives=(2, 3))
    write_bag(generate(1_000_003, cfg), tmp_path / "bag", depth_encoding="32FC1")  # an RGB-D rig, exact depth
    torch.manual_seed(0)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    torch.nn.init.zeros_(model.unpatchify.weight)  # untrained head: the splat of the inputs at their depth
    ckpt = save_model(tmp_path / "tiny.safetensors", model)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(tmp_path / "bag"), "--protocol", "novel-camera", "--checkpoint", str(ckpt),
                 "--resolution", "24", "--json", str(out), "--device", "cpu", "--per-scene-steps", "30"]) == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "novel-camera"
    (row,) = result["per_bag"]
    # 4 frames, 4 cameras: inputs are cameras 0, 2, 0, 2 at frames 0..3; targets cameras 1 and 3 at every frame
    assert row["num_inputs"] == 4 and row["num_targets"] == 8 and row["resolution"] == [24, 24]
    assert row["num_gaussians"] == 4 * 16 * 16
    for m in [result["model"], *result["baselines"].values()]:
        assert 5.0 < m["psnr"] < 60.0 and -1.0 <= m["ssim"] <= 1.0
    # The untrained model splats the inputs at their measured depth: far better than drawing the background, and
    # close to the non-learned depth reference (which splats only the nearest input frame, over the border colour).
    assert result["model"]["psnr"] > result["baselines"]["background"]["psnr"] + 2.0
    assert abs(result["model"]["psnr"] - result["baselines"]["depth_reference"]["psnr"]) < 3.0
    assert row["model_depth"] is True
    # Its rendered depth against the targets' exact depth: the inputs' measured depth (MEASURED_OFFSET beyond it),
    # as the reference's, within a few per cent on objects a few pixels wide
    d = result["rendered_depth"]
    model_depth, ref_depth = d["model"], d["baselines"]["depth_reference"]
    assert model_depth["pixels"] == ref_depth["pixels"] == row["rendered_depth"]["model"]["pixels"] > 0
    assert model_depth["abs_rel"] < 0.1 and model_depth["delta1"] > 0.95 and model_depth["coverage"] > 0.5
    assert ref_depth["abs_rel"] < 0.1 and ref_depth["delta1"] > 0.95
    assert abs(model_depth["abs_rel"] - ref_depth["abs_rel"]) < 0.02
    ps = row["baselines"]["per_scene"]
    assert ps["steps"] == 30 and ps["init"] == "rays" and ps["fit_s"] > 0
    assert result["baselines"]["per_scene"]["steps"] == 30
    printed = capsys.readouterr().out
    assert "lrm4d" in printed and "per_scene" in printed
    assert "model depth input on\n" in printed  # the bag has depth
    # the same bag without its depth topics: the table says the model saw colour only
    write_bag(replace(generate(1_000_003, cfg), depths=None), tmp_path / "rgb_bag")
    assert main(["evaluate", str(tmp_path / "rgb_bag"), "--protocol", "novel-camera", "--checkpoint", str(ckpt),
                 "--resolution", "24", "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "model depth input on (no bag has depth: colour only)\n" in printed
    assert "rendered_depth" not in json.loads(out.read_text()) and "rendered depth" not in printed  # nothing to score


def test_a_bag_that_cannot_be_scored_leaves_the_others_scored(tmp_path, capsys):
    """Three bags: one camera (no protocol holds out a camera of one), cameras not synchronised (a held-out
    camera's last frame after the last input's: left out and counted, not extrapolated), and two bags of one name
    in two folders (their contact sheets apart). The run scores what it can, says what it did not (exit 1, JSON
    not_scored)."""
    from lrm4d_ros.cli import main
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag

    cfg = SceneConfig(frames=4, cameras=4, height=24, width=24, rig_kinds=("orbit",), ground_prob=0.0,
                      backdrop_prob=0.0, num_primitives=(2, 3))
    views = generate(1_000_003, cfg)
    late = views.stamps_ns + views.camera_ids * 100_000_000  # camera k 100 ms x k after camera 0
    write_bag(replace(views, stamps_ns=late), tmp_path / "a" / "scene", depth_encoding="32FC1")
    write_bag(views, tmp_path / "b" / "scene", depth_encoding="32FC1")
    write_bag(views.select(views.camera_ids == 0), tmp_path / "one", depth_encoding="32FC1")
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", image_size=16)))
    out = tmp_path / "eval.json"
    bags = [str(tmp_path / "a" / "scene"), str(tmp_path / "one"), str(tmp_path / "b" / "scene")]
    assert main(["evaluate", *bags, "--protocol", "novel-camera", "--checkpoint", str(ckpt), "--resolution", "24",
                 "--device", "cpu", "--json", str(out), "--sheets", str(tmp_path / "sheets")]) == 1
    printed = capsys.readouterr()
    assert f"lrm4d evaluate: error: {bags[1]}: novel-camera needs at least 2 cameras" in printed.err
    assert "1 of 3 bags not scored (above): the table is the other 2's" in printed.err
    result = json.loads(out.read_text())
    assert [r["bag"] for r in result["per_bag"]] == [bags[0], bags[2]]
    assert [r["bag"] for r in result["not_scored"]] == [bags[1]]
    # inputs cameras 0, 2, 0, 2 at frames 0..3: camera 3 (300 ms later than 0) lies after the last at frame 3
    first, second = result["per_bag"]
    assert first["outside_window"] == 1 and first["num_targets"] == 7 and "outside_window" not in second
    assert "1 targets outside the inputs' time span left out" in printed.out
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir()) == ["a_scene_novel-camera_depth-on.png",
                                                                        "b_scene_novel-camera_depth-on.png"]
    with pytest.raises(ValueError, match="alternating needs at least 2 cameras"):
        from lrm4d_ros.data.protocols import protocol_groups
        protocol_groups(replace(views.select(views.camera_ids == 0), camera_names=["cam0"]), "alternating")


def test_evaluate_rig_protocol_with_depth(tmp_path, capsys):
    from lrm4d_ros.cli import main
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag

    cfg = SceneConfig(frames=8, cameras=4, height=32, width=32, rig_kinds=("workcell",), ground_prob=1.0,
                      backdrop_prob=0.0, num_primitives=(2, 3))
    write_bag(generate(1_000_007, cfg), tmp_path / "bag", depth_encoding="32FC1")
    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", image_size=16)))
    results = {}
    for depth in ("on", "off"):
        out = tmp_path / f"eval_{depth}.json"
        assert main(["evaluate", str(tmp_path / "bag"), "--protocol", "rig", "--checkpoint", str(ckpt),
                     "--resolution", "24", "--json", str(out), "--device", "cpu", "--depth", depth,
                     "--sheets", str(tmp_path / "sheets")]) == 0
        results[depth] = json.loads(out.read_text())
    on, off = results["on"], results["off"]
    (row,) = on["per_bag"]
    # T=8, C=4: s = ceil(8*2/12) = 2, input frames 0,2,4,6 of cameras 0,2; other frames 1,3,5 within the span.
    assert row["num_inputs"] == 8 and row["input_depth"] > 0.5 and row["model_depth"] is True
    assert {g: e["num_targets"] for g, e in row["groups"].items()} == \
        {"novel_view": 8, "novel_view_time": 6, "time_interp": 6, "self": 8}
    assert row["num_targets"] == 20  # held-out: every group but self
    for g, e in on["groups"].items():
        assert set(e["baselines"]) == ({"background", "depth_reference"} if g == "self" else
                                       {"nearest", "background", "depth_reference"})
        assert 5.0 < e["model"]["psnr"] < 60.0 and e["bags"] == 1
    # The reference re-renders its own inputs from their measured depth (the sky, with no depth, gets the
    # estimated background colour): well above drawing the background alone.
    self_group = on["groups"]["self"]["baselines"]
    assert self_group["depth_reference"]["psnr"] > self_group["background"]["psnr"] + 2.5
    # Held-out figures are the target-weighted mean of the three held-out groups.
    held = [on["groups"][g] for g in ("novel_view", "novel_view_time", "time_interp")]
    expect = sum(e["baselines"]["background"]["psnr"] * e["num_targets"] for e in held) / 20
    assert math.isclose(on["baselines"]["background"]["psnr"], expect, rel_tol=1e-9)
    assert off["depth"] == "off" and off["per_bag"][0]["model_depth"] is False
    assert off["baselines"]["depth_reference"] == on["baselines"]["depth_reference"]  # the reference keeps depth
    # Rendered depth, scored against the targets' measured depth in both runs (the reference's the same in both):
    # the reference re-renders its own inputs' measured depth at their cameras ("self") but at their edges (targets
    # of 24 px resized from 32 take the nearest pixel's depth); the held-out figures pool the held-out groups' pixels.
    assert off["rendered_depth"]["baselines"] == on["rendered_depth"]["baselines"]
    ref_self = on["groups"]["self"]["rendered_depth"]["baselines"]["depth_reference"]
    assert ref_self["abs_rel"] < 0.1 and ref_self["delta1"] > 0.9 and ref_self["coverage"] > 0.98  # (24 px of 32)
    pixels = [on["groups"][g]["rendered_depth"]["model"]["pixels"] for g in ("novel_view", "novel_view_time",
                                                                             "time_interp")]
    assert row["rendered_depth"]["model"]["pixels"] == sum(pixels) > 0
    for result in (on, off):
        m = result["rendered_depth"]["model"]
        assert 0 <= m["abs_rel"] and 0 <= m["delta1"] <= 1 and 0 < m["coverage"] <= 1
    printed = capsys.readouterr().out
    assert "novel_view_time" in printed and "depth_reference" in printed
    assert printed.count("rendered depth against the bags' measured depth (1 of 1 bags)") == 2
    # each run's per-bag line says what the model got: depth, or colour only with the bag's depth unused by it
    assert printed.count("(held-out; model depth input on") == 1 and printed.count("RGB-only model inputs") == 1
    # Contact sheets: ground truth, lrm4d, nearest, background, depth reference; 6 of the 8 novel_view targets,
    # the first of them camera 1 at frame 0 as the bag holds it.
    from lrm4d_ros.data.protocols import protocol_groups
    from lrm4d_ros.io.bag import read_bag
    from lrm4d_ros.video import GAP, LABEL_HEIGHT, to_uint8

    sheet = iio.imread(tmp_path / "sheets" / "bag_rig_depth-on.png")
    assert sheet.shape == (GAP + 5 * (LABEL_HEIGHT + 24 + GAP), GAP + 6 * (24 + GAP), 3)
    views = read_bag(tmp_path / "bag")
    first = views.select(protocol_groups(views, "rig")[1]["novel_view"][:1]).resized(24, 24).images[0]
    tile = sheet[GAP + LABEL_HEIGHT:GAP + LABEL_HEIGHT + 24, GAP:GAP + 24]
    assert np.array_equal(tile, to_uint8(first))
    assert (tmp_path / "sheets" / "bag_rig_depth-off.png").exists()


def _flat_views(poses: list[torch.Tensor], depths: torch.Tensor) -> ViewSet:
    V, H, W = depths.shape
    return ViewSet(images=torch.zeros(V, H, W, 3), Ks=fov_to_K(math.radians(60.0), W, H).expand(V, 3, 3).clone(),
                   camtoworlds=torch.stack(poses).double(), stamps_ns=torch.arange(V, dtype=torch.int64),
                   camera_ids=torch.arange(V), depths=depths)


def test_seen_by_inputs_frustum_occlusion_and_sky():
    """A wall 2 m before a camera: a target at the input's pose sees what it saw; turned around, nothing; where
    the input's view is blocked by a nearer box, or the target hits nothing (sky), it is unseen."""
    H = W = 16
    ahead = torch.eye(4)
    behind = torch.diag(torch.tensor([-1.0, 1.0, -1.0, 1.0]))  # rotated 180° about y: looks the other way
    wall = torch.full((1, H, W), 2.0)
    inputs = _flat_views([ahead], wall)
    assert seen_by_inputs(_flat_views([ahead], wall), inputs).all()
    assert not seen_by_inputs(_flat_views([behind], wall), inputs).any()
    boxed = wall.clone()
    boxed[:, :, : W // 2] = 1.0  # a box hides the left half of the wall from the input
    sky = wall.clone()
    sky[:, : H // 4] = 0.0  # the target hits nothing in its top rows
    seen = seen_by_inputs(_flat_views([ahead], sky), _flat_views([ahead], boxed))[0]
    assert not seen[:, : W // 2].any() and not seen[: H // 4].any()
    assert seen[H // 4:, W // 2:].all()
    # a 4 % nearer surface is still the one the input saw (SEEN_TOLERANCE 5 %), 10 % is not
    assert seen_by_inputs(_flat_views([ahead], wall * 1.04), inputs).all()
    assert not seen_by_inputs(_flat_views([ahead], wall * 1.1), inputs).any()


def test_evaluate_refuses_bad_arguments_before_evaluating(tmp_path, capsys):
    from lrm4d_ros.cli import main

    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.io.bag import write_bag

    write_bag(generate(3, SceneConfig(frames=2, cameras=2, height=16, width=16)), tmp_path / "bag")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "notabag").mkdir()
    base = ["evaluate", str(tmp_path / "bag"), "--protocol", "rig"]
    for argv, text in ((["--threads", "-1"], "--threads must be >= 1"),
                       (["--json", str(tmp_path)], "is a directory"),
                       (["--sheets", str(tmp_path / "afile")], "is a file"),
                       (["--checkpoint", str(tmp_path / "nope.safetensors")], "checkpoint not found"),
                       (["--checkpoint", str(tmp_path / "afile")], "is not a safetensors checkpoint"),
                       (["--device", "foo"], "device 'foo'")):
        assert main(base + argv) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "missing"), "--protocol", "rig"]) == 2
    assert "no such bag" in capsys.readouterr().err
    # a bag that cannot be opened is refused before the first (good) one is evaluated
    assert main(["evaluate", str(tmp_path / "bag"), str(tmp_path / "notabag"), "--protocol", "rig"]) == 2
    out, err = capsys.readouterr()
    assert "cannot open as a ROS 2 bag" in err and "lrm4d" not in out


def test_summary_says_on_how_many_bags_a_baseline_was_scored():
    """depth_reference exists only for bags with depth: its row (and the JSON) say over how many of the bags it
    is averaged, while the other rows cover them all."""
    from lrm4d_ros.evaluate import format_table, summarize

    def row(psnr, depth_ref=None):
        m = {"nearest": {"psnr": psnr + 3, "ssim": 0.9}, "background": {"psnr": 12.0, "ssim": 0.6}}
        if depth_ref is not None:
            m["depth_reference"] = {"psnr": depth_ref, "ssim": 0.8}
        return {"model": {"psnr": psnr, "ssim": 0.9}, "baselines": m, "reconstruct_s": 1.0, "render_s_per_view": 0.1,
                "input_depth": 0.0 if depth_ref is None else 0.9}

    result = summarize([row(30.0), row(34.0, depth_ref=17.0)], "alternating")
    assert result["baselines"]["depth_reference"] == {"psnr": 17.0, "ssim": 0.8, "bags": 1, "of_bags": 2}
    assert result["baselines"]["nearest"] == {"psnr": 35.0, "ssim": 0.9}
    assert format_table(result).splitlines()[1:6] == [
        "method                         PSNR (dB)    SSIM",
        "lrm4d                              32.00  0.9000",
        "nearest                            35.00  0.9000",
        "background                         12.00  0.6000",
        "depth_reference (1 of 2 bags)      17.00  0.8000"]


def test_a_capped_psnr_says_it_is_an_exact_copy():
    """Views that equal their target score PSNR_CAP; a summary says how many of its views were such copies (a
    still camera's in-between moments: its own frames), in the per-bag line and under the table."""
    import torch

    from lrm4d_ros.evaluate import PSNR_CAP, _db, _mean, format_table, summarize

    m = _mean(torch.tensor([[PSNR_CAP, 1.0], [PSNR_CAP, 1.0], [20.0, 0.5]], dtype=torch.float64))
    assert m["exact"] == 2 and abs(m["psnr"] - (2 * PSNR_CAP + 20) / 3) < 1e-12
    assert _db(m, 3) == "46.67 dB (2 of 3 exact)" and _db({"psnr": PSNR_CAP, "exact": 3}, 3) == "60.00 dB (exact)"
    assert _db({"psnr": 12.345, "exact": 0}, 3) == "12.35 dB"
    rows = [{"model": m, "baselines": {"nearest": {"psnr": 55.0, "ssim": 0.9, "exact": 1}},
             "reconstruct_s": 1.0, "render_s_per_view": 0.1}] * 2
    table = format_table(summarize(rows, "rig"))
    assert "(exact copies of their target, each counted as 60 dB: lrm4d 4 of the held-out targets, nearest 2 of " \
           "the held-out targets; the lines per bag show where)" in table


def _evaluation_robot_scene(tmp_path, index: int):
    """Evaluation robot scene `index` as `benchmarks/eval_scenes.py --robot` writes its bag, read back (8-bit
    images, as evaluated), and the shipped model's Reconstructor; skips where the checkpoint is missing."""
    from lrm4d_ros.checkpoint import shipped_checkpoint_path
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.eval_scenes import ROBOT_EVAL_SCENES, render_robot_scenes
    from lrm4d_ros.io.bag import read_bag, write_bag
    from lrm4d_ros.reconstructor import Reconstructor

    if not shipped_checkpoint_path().is_file():
        pytest.skip("the shipped checkpoint is not present")
    seed = ROBOT_EVAL_SCENES[index][0]
    views = with_depth(render_robot_scenes([ROBOT_EVAL_SCENES[index]])[0], "sensor", seed=seed)
    return read_bag(write_bag(views, tmp_path / "bag", depth_encoding="32FC1")), Reconstructor.from_checkpoint(
        device="cpu")


def test_shipped_checkpoint_on_an_evaluation_robot_scene(tmp_path):
    """A guard on the headline figures (benchmarks/results/eval_robot_rig_depth-{on,off}.json): evaluation scene
    1002001 scored as `lrm4d evaluate --protocol rig` scores it. Committed: novel_view 32.93 dB from RGB-D, 32.33
    from RGB, the nearest input 13.34 and the depth reference 19.46. A change that costs 2 dB of either fails here."""
    from lrm4d_ros.evaluate import evaluate_views

    from lrm4d_ros.data.eval_scenes import ROBOT_EVAL_SCENES

    assert ROBOT_EVAL_SCENES[1] == (1002001, "workcell", "head")
    views, rec = _evaluation_robot_scene(tmp_path, 1)
    rows = {depth: evaluate_views(rec, views, "rig", depth=depth) for depth in (True, False)}
    nv = {depth: row["groups"]["novel_view"] for depth, row in rows.items()}
    assert rows[True]["input_findings"] == rows[False]["input_findings"] == []  # written as the contract says
    assert nv[True]["baselines"]["nearest"]["psnr"] == pytest.approx(13.34, abs=0.01)
    assert nv[True]["model"]["psnr"] > 31.0 and nv[False]["model"]["psnr"] > 30.4
    assert nv[True]["model"]["psnr"] > nv[True]["baselines"]["depth_reference"]["psnr"] + 10


def test_a_world_whose_z_is_not_up_reconstructs_as_well(tmp_path):
    """Evaluation scene 1002000 (cameras around the scene) with its world frame turned (poses only; images and
    depths as they were): y up, as many renderers and a SLAM map started at a camera's pose have it, and tilted 3°
    about x, a floor not quite level in odom. Unlevelled, y up scored 20.57 / 13.70 dB (RGB-D / RGB novel_view)
    and a 2° tilt 22.17 from RGB-D. The cameras level y up (SceneNormalization.from_cameras) and the depth the
    tilt (level_by_depth): novel_view within 0.05 dB of the committed 25.83 / 17.70 (eval_robot_rig_depth-*.json)."""
    from dataclasses import replace

    from lrm4d_ros.evaluate import evaluate_views

    from lrm4d_ros.data.eval_scenes import ROBOT_EVAL_SCENES

    assert ROBOT_EVAL_SCENES[0][0] == 1002000
    views, rec = _evaluation_robot_scene(tmp_path, 0)

    def turned(axis_angle_deg):
        a = math.radians(axis_angle_deg)
        T = torch.eye(4, dtype=torch.float64)
        T[1, 1], T[1, 2], T[2, 1], T[2, 2] = math.cos(a), -math.sin(a), math.sin(a), math.cos(a)
        return replace(views, camtoworlds=T.to(views.camtoworlds) @ views.camtoworlds)

    def novel_view(v, depth):
        rec.forget()
        return evaluate_views(rec, v, "rig", depth=depth)["groups"]["novel_view"]["model"]["psnr"]

    y_up = turned(-90.0)
    with pytest.warns(RuntimeWarning, match=r"the world frame's z is 90\.0° from the up"):
        assert novel_view(y_up, True) == pytest.approx(25.83, abs=0.05)
    assert novel_view(y_up, False) == pytest.approx(17.70, abs=0.05)
    assert novel_view(turned(3.0), True) == pytest.approx(25.83, abs=0.05)


def test_a_head_rig_in_a_world_whose_z_is_not_up_is_levelled_by_its_depth_or_its_floor(tmp_path):
    """Evaluation scene 1002001's head rig: its cameras all face one way, so their x axes leave up open, and its
    depth levels the floor about their image up (reconstructor.level_by_depth): in a y-up world, and in the frame a
    SLAM map started at its first camera's pose has (z forward, y down), RGB-D novel_view within 0.2 dB of the
    committed 32.93 (unlevelled, y up scored 31.71). From colour alone its floor, matched through planes turned
    about the cameras' x axis (Reconstructor._level_by_colour), does: RGB novel_view within 0.2 dB of the
    committed 32.33 (unlevelled 29.17 / 29.03)."""
    from dataclasses import replace

    from lrm4d_ros.data.eval_scenes import ROBOT_EVAL_SCENES
    from lrm4d_ros.evaluate import evaluate_views
    from lrm4d_ros.reconstructor import Reconstructor

    assert ROBOT_EVAL_SCENES[1] == (1002001, "workcell", "head")
    views, _ = _evaluation_robot_scene(tmp_path, 1)
    y_up = torch.eye(4, dtype=torch.float64)
    y_up[1:3, 1:3] = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    for T in (y_up, torch.linalg.inv(views.camtoworlds[0].double())):
        rec = Reconstructor.from_checkpoint(device="cpu")  # each warns once
        turned = replace(views, camtoworlds=T.to(views.camtoworlds) @ views.camtoworlds)
        with pytest.warns(RuntimeWarning, match=r"the world frame's z is \d+\.\d° from the up"):
            novel_view = evaluate_views(rec, turned, "rig")["groups"]["novel_view"]["model"]["psnr"]
        assert novel_view == pytest.approx(32.93, abs=0.2)
        rec = Reconstructor.from_checkpoint(device="cpu")
        with pytest.warns(RuntimeWarning, match=r"the world frame's z is \d+\.\d° from the up"):
            rgb = evaluate_views(rec, turned, "rig", depth=False)["groups"]["novel_view"]["model"]["psnr"]
        assert rgb == pytest.approx(32.33, abs=0.2)


def test_rendered_depth_leaves_out_what_the_model_guessed():
    """A robot validation scene with the training sensor's depth (sky and floor beyond its range, dropouts): its input
    cameras re-rendered at their own moments drew the model's far guess for the pixels the sensor gave no depth (a
    shell ~25 m out) and mixed it into their neighbours' depth. Now those Gaussians count in no depth: a pixel the
    sensor missed gets the depth other views measured there, or none (0) where they make most of it; the measured
    pixels their depth; the in-between moments gain most (a dropout of either frame was mixed in); colours unchanged.
    From colour alone, what nothing located and the model left far has no depth either."""
    from lrm4d_ros.data import eval_scenes as es
    from lrm4d_ros.data.depth_sensor import with_depth
    from lrm4d_ros.data.generator import generate
    from lrm4d_ros.data.protocols import protocol_groups
    from lrm4d_ros.reconstructor import Reconstructor

    seed, layout, rig = es.robot_recipe(es.ROBOT_PROTOCOL_VAL_FIRST_SEED + 40, 1)[0]
    exact = generate(seed, es.robot_scene_config(layout, rig, supersample=1))
    views = with_depth(exact, "sensor", seed=seed)
    in_idx, groups = protocol_groups(views, "rig")
    inputs, truth = views.select(in_idx), exact.select(in_idx).depths
    rec = Reconstructor.from_checkpoint(device="cpu").reconstruct(inputs)
    assert rec.guessed is not None and rec.guessed.float().mean() > 0.05
    before = replace(rec, guessed=None)  # every Gaussian in the depth, as before
    with torch.no_grad():
        out, old = (r.render(inputs.camtoworlds, inputs.Ks, inputs.width, inputs.height, inputs.stamps_ns)
                    for r in (rec, before))
    assert torch.equal(out.colors, old.colors) and torch.equal(out.alphas, old.alphas)
    z, z_old, measured = out.depths[..., 0], old.depths[..., 0], inputs.depths > 0
    missed = ~measured & (out.alphas[..., 0] > 0.5)
    assert float((z_old[missed] > 10.0).float().mean()) > 0.8  # the far shell, metres (85 % of them)
    near_truth = (z - truth).abs() <= 0.05 * truth  # (the rest mostly depth edges, where the sensor drops pixels)
    assert float(((z[missed] == 0) | near_truth[missed]).float().mean()) > 0.9
    assert float(near_truth[missed & (z > 0)].float().mean()) > 0.6 and bool((missed & (z > 0)).any())
    rel = ((z - inputs.depths).abs() / inputs.depths.clamp_min(1e-6))[measured]
    assert float(rel.median()) < 0.02 and float((z[measured] > 0).float().mean()) > 0.98
    targets = views.select(groups["time_interp"])
    with torch.no_grad():
        mid, mid_old = (r.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
                        for r in (rec, before))
    now, then = (depth_scores(depth_sums(m.depths[..., 0], m.alphas[..., 0], targets.depths)) for m in (mid, mid_old))
    assert now["abs_rel"] < 0.5 * then["abs_rel"] and now["delta1"] > then["delta1"], (now, then)
    # The point cloud leaves the guesses out: no shell of points ~25 m out (most of them are not in a slice at all:
    # hidden past the floor, their own camera alone shows them)
    stamp = int(inputs.stamps_ns[0])
    cloud, every = rec.slice(stamp, measured=True, guessed=False), rec.slice(stamp, measured=True)
    reach = [torch.cdist(c.means.double(), inputs.camtoworlds[:, :3, 3].double()).amin(1) for c in (cloud, every)]
    assert len(cloud) < len(every) and float(reach[0].max()) < 8.0 < 20.0 < float(reach[1].max())  # (5.4, 22.9 m)
    # From colour alone, on this scene matching finds no floor: every pixel's depth is the model's far guess (AbsRel
    # 2.5, δ<1.25 0.1 % on the held-out cameras), now none at all; the colours the same
    rgb = Reconstructor.from_checkpoint(device="cpu").reconstruct(replace(inputs, depths=None))
    targets = views.select(groups["novel_view"])
    with torch.no_grad():
        out, old = (r.render(targets.camtoworlds, targets.Ks, targets.width, targets.height, targets.stamps_ns)
                    for r in (rgb, replace(rgb, guessed=None)))
    assert torch.equal(out.colors, old.colors) and bool(rgb.guessed.all())
    now, then = (depth_scores(depth_sums(m.depths[..., 0], (m.depths[..., 0] > 0).float(), targets.depths))
                 for m in (out, old))
    assert then["coverage"] > 0.3 and then["delta1"] < 0.05 and now["coverage"] == 0.0, (now, then)
