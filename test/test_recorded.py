"""Fine-tuning on recorded bags (`lrm4d train --bags`, lrm4d_ros.data.recorded): the recording is read as written
(in parts or whole, the same views), cut into training windows that stop before the held-out validation tail,
and each draw holds views out as targets within the inputs' time span; the depth goes in as recorded."""
import json
import math
from dataclasses import replace

import pytest
import torch

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.checkpoint import load_config
from lrm4d_ros.cli import main
from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.eval_scenes import render_robot_scenes, robot_recipe
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.data.recorded import RecordedScenes, read_recording
from lrm4d_ros.io.bag import read_bag, write_bag
from lrm4d_ros.metrics import psnr
from lrm4d_ros.views import frame_indices

ARGS = ["--preset", "tiny", "--image-size", "16", "--resolution", "16", "--frames", "4", "--inputs", "2,3",
        "--targets", "2", "--self-targets", "1", "--val-every", "2", "--val-scenes", "1", "--threads", "1",
        "--device", "cpu", "--ckpt-minutes", "0"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Two recordings of one robot scene kind (12 frames x 6 cameras, sensor depth), written as contract bags at
    32x32 (the training size here is 16)."""
    root = tmp_path_factory.mktemp("recorded")
    paths = []
    for i, seed in enumerate((2_000_000, 2_000_001)):
        views = with_depth(render_robot_scenes(robot_recipe(seed, 1), resolution=32)[0], "sensor", seed=i)
        paths.append(write_bag(views, root / "cell" / f"take_{i}", depth_encoding="32FC1"))
    return root / "cell", paths


def _keys(views):
    return {(int(s), int(c)) for s, c in zip(views.stamps_ns, views.camera_ids)}


def test_a_recording_read_in_parts_is_the_recording_read_whole(bags, monkeypatch):
    _, (bag, _) = bags
    said = []
    whole = read_recording(bag, 16, log=said.append)
    assert not said  # read whole: nothing to say
    from lrm4d_ros.io import bag as bag_io

    calls = []
    monkeypatch.setattr(bag_io, "available_memory", lambda: 250_000.0)  # 0.4 of it: 100 kB a part
    monkeypatch.setattr(bag_io, "read_bag", lambda *a, **k: calls.append(k) or read_bag(*a, **k))
    said = []
    parts = read_recording(bag, 16, log=said.append)
    assert len(calls) == 12 and "read in 12 parts" in said[0]  # 1.2 MB read as 12 parts of the bag's time
    spans = [c["log_span"] for c in calls]
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # that tile it: each image is read once
    assert (whole.height, whole.width, len(whole)) == (16, 16, 72)
    assert torch.equal(parts.stamps_ns, whole.stamps_ns) and torch.equal(parts.camera_ids, whole.camera_ids)
    assert torch.equal(parts.images, whole.images) and torch.equal(parts.depths, whole.depths)
    as_written = read_bag(bag).resized(16, 16)
    assert torch.equal(whole.images, as_written.images)


def test_training_windows_stop_before_the_held_out_tail_and_draws_hold_views_out(bags):
    folder, (bag, _) = bags
    scenes = RecordedScenes([bag], None, frames=4, resolution=16, log=lambda *a: None)
    # 12 frames: the last max(4, 20 %) = 4 are validation, frames 0-7 give windows of 4 frames every 2
    train = [scenes.window(k) for k in range(len(scenes.train))]
    assert len(train) == 3 and len(scenes.val) == 1
    assert all(len(w) == 4 * 6 for w in train + scenes.val)
    val = scenes.val[0]
    assert not _keys(val) & set().union(*(_keys(w) for w in train))
    assert max(int(w.stamps_ns.max()) for w in train) < int(val.stamps_ns.min())
    source = read_bag(bag).resized(16, 16)
    by_key = {k: i for i, k in enumerate(zip(source.stamps_ns.tolist(), source.camera_ids.tolist()))}
    for seed in range(40):
        item = scenes.sample(seed, 3, 2)
        inp, tgt = item["inputs"], item["targets"]
        assert 1 <= len(inp) <= 3 and 1 <= len(tgt) <= 2 and item["measured"]
        assert not _keys(inp) & _keys(tgt)
        assert set(inp.camera_ids.tolist()) != set(range(6))  # a camera is always held out
        lo, hi = int(inp.stamps_ns.min()), int(inp.stamps_ns.max())  # targets within the span a reconstruction
        tol = max(int(0.1 * (hi - lo)), 10_000_000)  # of these inputs renders (Reconstruction.covers)
        assert lo - tol <= tgt.stamps_ns.min() and tgt.stamps_ns.max() <= hi + tol
        assert torch.all(inp.stamps_ns[1:] >= inp.stamps_ns[:-1])
        # the views are the recording's own: pixels and depth as the bag holds them
        for views in (inp, tgt):
            idx = torch.tensor([by_key[k] for k in zip(views.stamps_ns.tolist(), views.camera_ids.tolist())])
            assert torch.equal(views.images, source.images[idx]) and torch.equal(views.depths, source.depths[idx])
        again = scenes.sample(seed, 3, 2)
        assert _keys(again["inputs"]) == _keys(inp) and _keys(again["targets"]) == _keys(tgt)
    # a folder of recordings is each recording in it; validation bags replace the held-out tail
    both = RecordedScenes([folder], None, frames=4, resolution=16, log=lambda *a: None)
    assert len(both.train) == 6 and len(both.val) == 2
    apart = RecordedScenes([bag], [bags[1][1]], frames=4, resolution=16, log=lambda *a: None)
    assert len(apart.train) == 5 and len(apart.val) == 3
    for same in (bag / "metadata.yaml", next(bag.glob("*.mcap"))):  # the bag, named by its files
        with pytest.raises(ValueError, match="also in --bags: validation on training data"):
            RecordedScenes([folder], [same], frames=4, resolution=16, log=lambda *a: None)


def test_cameras_out_of_step_are_validated_and_drawn(bags, tmp_path):
    """Camera 1 stamped 0.6 of a frame late (a rig not synchronised): each validation window holds every camera at
    the same number of frames, as the rig protocol pairs them, and the protocol can score it; a draw of one input
    still finds a target (the views nearest its moment)."""
    from lrm4d_ros.train import _scorable

    _, (bag, _) = bags
    views = read_bag(bag)
    period = int(torch.median(torch.diff(torch.sort(views.stamps_ns[views.camera_ids == 0]).values)))
    late = views.stamps_ns + (views.camera_ids == 1).long() * int(0.6 * period)
    shifted = write_bag(replace(views, stamps_ns=late), tmp_path / "late", depth_encoding="32FC1")
    scenes = RecordedScenes([shifted], None, frames=4, resolution=16, log=lambda *a: None)
    for w in scenes.val:
        counts = {int((w.camera_ids == c).sum()) for c in range(len(w.camera_names))}
        assert len(counts) == 1 and counts.pop() >= 3 and _scorable(w, "rig")
    for seed in range(20):
        item = scenes.sample(seed, 1, 2)
        assert len(item["inputs"]) == 1 and len(item["targets"]) >= 1


def test_windows_are_stretches_of_time_where_a_camera_dropped_frames(bags, tmp_path):
    """A camera that dropped frames 3-6 of 12 (a driver's hiccup): windows stay one stretch of time of every camera
    (by frame count, that camera's later frames would pair with others' earlier ones), and no training view is
    stamped in the held-out tail."""
    _, (bag, _) = bags
    views = read_bag(bag)
    ranks = frame_indices(views)  # each view's frame number within its camera
    keep = ~((views.camera_ids == 2) & (ranks >= 3) & (ranks <= 6))
    dropped = write_bag(views.select(keep.nonzero()[:, 0]), tmp_path / "dropped", depth_encoding="32FC1")
    lines = []
    scenes = RecordedScenes([dropped], None, frames=4, resolution=16, log=lines.append)
    period = float(torch.median(torch.diff(torch.sort(views.stamps_ns[views.camera_ids == 0]).values)))
    train = [scenes.window(k) for k in range(len(scenes.train))]
    assert train and all(int(w.stamps_ns.max() - w.stamps_ns.min()) < 4.2 * period for w in train)
    assert max(int(w.stamps_ns.max()) for w in train) < min(int(v.stamps_ns.min()) for v in scenes.val)
    assert "68 views of 6 cameras" in lines[0]


def test_a_recording_too_short_to_hold_out_its_tail_is_refused(bags):
    _, (bag, _) = bags
    with pytest.raises(ValueError, match="cannot give a training window and a validation window of 8 frames"):
        RecordedScenes([bag], None, frames=8, resolution=16, log=lambda *a: None)


def test_train_on_bags_fine_tunes_with_the_depth_as_recorded_and_validates_on_held_out_windows(bags, tmp_path,
                                                                                                 monkeypatch, capsys):
    from lrm4d_ros import train

    folder, (bag, other) = bags
    monkeypatch.setattr(train, "sensor_depth", lambda *a: pytest.fail("a recorded depth got simulated noise"))
    out = tmp_path / "ft"
    assert main(["train", "--out", str(out), "--steps", "2", "--bags", str(bag), "--val-bags", str(other),
                 *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "take_0: 72 views of 6 cameras at" in printed and "5 training and 0 validation windows" in printed
    assert "validation: 3 of 3 windows scored by the rig protocol" in printed
    assert "validating on 1 scene and 3 rig scenes" in printed
    rows = [json.loads(line) for line in (out / "train.log").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(math.isfinite(r["loss"]) for r in steps)
    # the protocol validation is the rig protocol on the validation recording's windows, as `lrm4d evaluate`
    # scores a bag: its nearest-input figure recomputed here on the three windows of 4 frames
    windows = RecordedScenes([bag], [other], frames=4, resolution=16, log=lambda *a: None).val
    nearest = []
    for w in windows:
        inputs, targets = split_protocol(w, "rig")
        nearest.append(float(psnr(nearest_input(inputs, targets), targets.images).clamp(max=60).mean()))
    v = steps[-1]["val_protocol"]
    assert math.isclose(v["nearest"], sum(nearest) / len(nearest), abs_tol=1e-4) and 5 < v["psnr"] < 60
    assert "rgbd" in v and "rgb" in v
    assert load_config(out / "model.safetensors")[1]["data"] == f"recorded bags: {bag}"


def test_bag_arguments_that_cannot_work_are_refused_before_anything_is_written(bags, tmp_path, capsys):
    folder, (bag, other) = bags
    cases = [(["--val-bags", str(other)], "--val-bags validates a fine-tune on --bags: pass --bags too"),
             (["--bags", str(tmp_path / "nothing")], "--bags: " + str(tmp_path / "nothing") + ": no such bag"),
             (["--bags", str(tmp_path)], "neither a bag (no metadata.yaml) nor a folder holding bags"),
             (["--bags", str(bag), "--inputs", "24"],
              "--inputs 24: no training window gives 24 inputs with a camera held out as the target (the richest "
              "gives 20): pass fewer --inputs or more --frames")]
    for extra, message in cases:
        out = tmp_path / "refused"
        assert main(["train", "--out", str(out), "--steps", "1", *ARGS, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused" / "train.log").exists()


def test_a_resume_validating_on_other_recordings_does_not_compare_their_scores(bags, tmp_path, capsys):
    """best.safetensors records what it was validated on; a resume that validates on other recordings starts
    its best afresh (a score on other windows says nothing of the kept one)."""
    from lrm4d_ros.checkpoint import load_config

    _, (bag, other) = bags
    out = tmp_path / "ft"
    assert main(["train", "--out", str(out), "--steps", "1", "--bags", str(bag), *ARGS]) == 0
    first = load_config(out / "best.safetensors")[1]
    assert first["val_data"] == f"the last fifth of --bags {bag} (up to 8 windows of 4 frames at 16 px)"
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--steps", "2", "--resume", "--bags", str(bag), "--val-bags",
                 str(other), *ARGS]) == 0
    err = capsys.readouterr().err
    assert "was chosen by another validation" in err and "this run's first validation replaces it" in err
    kept = load_config(out / "best.safetensors")[1]
    assert kept["val_data"] == f"--val-bags {other} (up to 8 windows of 4 frames at 16 px)" and kept["steps"] == 2


def test_a_recorded_scene_is_given_to_the_model_as_inference_gives_it(bags, monkeypatch):
    """The fine-tune's inputs come from Reconstructor.inputs (the depth camera made like the training sensor's,
    the frame levelled by its floor), the depth dropped before it as an RGB-only or mixed rig would lack it: the
    model gets exactly what `lrm4d reconstruct` and the node will give it."""
    import argparse

    from lrm4d_ros import train
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor

    _, (bag, _) = bags
    scenes = RecordedScenes([bag], None, frames=4, resolution=16, log=lambda *a: None)
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    reconstructor = Reconstructor(model, "cpu")
    model.train()
    given, made = [], []
    real_predict, real_inputs = train.predict, Reconstructor.inputs
    monkeypatch.setattr(train, "predict", lambda m, images, Ks, c2w, times, depths, **k:
                        given.append(depths) or real_predict(m, images, Ks, c2w, times, depths, **k))
    monkeypatch.setattr(Reconstructor, "inputs", lambda self, views, *a: made.append((views, real_inputs(
        self, views, *a))) or made[-1][1])
    args = argparse.Namespace(self_targets=0, ssim_weight=0.2, batch=1, depth_drop_scene=0.0, depth_drop_view=0.0)
    item = scenes.sample(0, 3, 2)
    train._backward_scene(model, item, args, False, torch.Generator().manual_seed(0), reconstructor)
    (views, prepared), = made
    assert torch.equal(views.depths, item["inputs"].depths)  # the recorded depth as it is
    assert given[0] is prepared.depths and bool((prepared.depths > 0).any())
    args.depth_drop_scene = 1.0  # an RGB-only rig: inputs made without depth, the model given none
    train._backward_scene(model, item, args, False, torch.Generator().manual_seed(0), reconstructor)
    assert made[-1][0].depths is None and given[-1] is None
    assert sum(p.grad is not None for p in model.parameters()) > 0


def test_a_camera_at_half_the_rate_is_drawn_at_the_moments_of_the_others(bags, tmp_path, monkeypatch):
    """Camera 0 keeps every other frame (15 Hz beside 30 Hz cameras): a draw's span is a stretch of time, so its
    views of camera 0 lie among the other cameras' (by frame rank, camera 0's k-th frame would stand for the
    others' k-th, twice as late)."""
    from lrm4d_ros.data import recorded

    _, (bag, other) = bags
    views = read_bag(bag)
    rank = frame_indices(views)
    half = write_bag(views.select((~((views.camera_ids == 0) & (rank % 2 == 1))).nonzero()[:, 0]),
                     tmp_path / "half", depth_encoding="32FC1")
    scenes = RecordedScenes([half], [other], frames=8, resolution=16, log=lambda *a: None)
    period = scenes.periods[0]
    pools = []
    real = recorded.select_views
    monkeypatch.setattr(recorded, "select_views",
                        lambda cands, n, policy, flags=None: pools.append(cands) or real(cands, n, policy, flags))
    checked = 0
    for seed in range(60):
        scenes.sample(seed, 6, 2)
        stamps = {c: [s for s, cam in pools[-1] if cam == c] for c in {cam for _, cam in pools[-1]}}
        others = [s for c, ss in stamps.items() if c != 0 for s in ss]
        if 0 in stamps and others and len(set(others)) > 2:
            checked += 1
            assert min(others) - period // 2 <= min(stamps[0]) and max(stamps[0]) <= max(others) + period // 2
    assert checked >= 10
