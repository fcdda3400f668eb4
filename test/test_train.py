"""`lrm4d train` end to end on a tiny model: it logs finite losses and validation (random scenes, and the rig
protocol against nearest-input on robot scenes drawn like the evaluation's), keeps the best protocol weights,
resumes where it stopped, and exports bf16 weights that load with their config; and it runs under torchrun."""
import json
import math

import torch

from lrm4d_ros.baselines import nearest_input
from lrm4d_ros.checkpoint import load_config, load_model, shipped_checkpoint_path
from lrm4d_ros.cli import main
from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.data.eval_scenes import (ROBOT_EVAL_SCENES, ROBOT_PROTOCOL_VAL_FIRST_SEED, render_robot_scenes,
                                        robot_recipe)
from lrm4d_ros.data.protocols import split_protocol
from lrm4d_ros.data.sampler import VAL_SEED_START
from lrm4d_ros.metrics import psnr
from lrm4d_ros.model import LRM4D, LRM4DConfig
from lrm4d_ros.train import validate_protocol

ARGS = ["--preset", "tiny", "--image-size", "16", "--resolution", "16", "--frames", "4", "--cameras", "4",
        "--inputs", "2,3", "--targets", "2", "--self-targets", "1", "--val-every", "3", "--val-scenes", "1",
        "--threads", "1", "--device", "cpu", "--supersample", "3", "--ckpt-minutes", "0",
        "--val-protocol-scenes", "1"]


def _rows(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_train_logs_resumes_and_exports(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "4", *ARGS]) == 0
    # each validation is announced (the last after the bar closed); no progress bar where stderr is not a terminal
    printed = capsys.readouterr()
    assert [line for line in printed.out.splitlines() if "validating" in line] == \
        ["step 3: validating on 1 scene and 1 rig scene ...", "step 4: validating on 1 scene and 1 rig scene ..."]
    assert "step/s" not in printed.err and "s/step" not in printed.err
    rows = _rows(out / "train.log")
    steps = [r for r in rows if "step" in r and "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    for r in steps:
        assert math.isfinite(r["loss"]) and r["loss"] > 0 and 0 < r["psnr"] < 60 and r["grad_norm"] >= 0
    vals = [r["val"] for r in steps if "val" in r]
    assert len(vals) == 2 and all(5 < v["psnr"] < 60 for v in vals)  # at step 3 and at the end
    assert rows[-1] == {"event": "end", "step": 4}

    # The protocol validation scores the rig split of a robot scene drawn like the evaluation's (another seed,
    # with a depth camera's measurements) exactly as `lrm4d evaluate` does, from RGB-D and from RGB: its
    # nearest-input figure is that baseline's PSNR on the same views, recomputed here.
    scene = robot_recipe(ROBOT_PROTOCOL_VAL_FIRST_SEED, 1)
    assert scene[0][0] >= VAL_SEED_START and not {s for s, *_ in scene} & {s for s, *_ in ROBOT_EVAL_SCENES}
    views = with_depth(render_robot_scenes(scene, resolution=16)[0], "sensor", seed=0)
    inputs, targets = split_protocol(views, "rig")
    nearest = float(psnr(nearest_input(inputs, targets), targets.images).clamp(max=60).mean())
    pvals = [r["val_protocol"] for r in steps if "val_protocol" in r]
    assert len(pvals) == 2
    for v in pvals:
        assert math.isclose(v["nearest"], nearest, abs_tol=1e-4) and 5 < v["psnr"] < 60
        assert math.isclose(v["psnr"], (v["rgbd"]["psnr"] + v["rgb"]["psnr"]) / 2, abs_tol=1e-9)
        assert math.isclose(v["gain"], v["psnr"] - v["nearest"], abs_tol=1e-9)
    # best.safetensors holds the weights of the best protocol score, and reproduces it.
    best_cfg, best_info = load_config(out / "best.safetensors")
    assert math.isclose(best_info["val_protocol_psnr"], max(v["psnr"] for v in pvals), abs_tol=1e-9)
    again = validate_protocol(load_model(out / "best.safetensors"), [views], "rig")
    assert math.isclose(again["psnr"], best_info["val_protocol_psnr"], abs_tol=1e-3)

    # Resume continues from step 4 (state.safetensors holds weights, AdamW state and the step).
    export = tmp_path / "final.safetensors"
    assert main(["train", "--out", str(out), "--steps", "6", "--resume", "--export", str(export), *ARGS]) == 0
    rows = _rows(out / "train.log")
    assert [r["step"] for r in rows if "loss" in r][-2:] == [5, 6]
    assert rows[-1] == {"event": "end", "step": 6}

    cfg, info = load_config(export)
    assert cfg.n_layer == 2 and cfg.n_embd == 64 and cfg.image_size == 16 and info["steps"] == 6
    full, half = load_model(out / "model.safetensors"), load_model(export)
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items()):
        torch.testing.assert_close(b, a.to(torch.bfloat16).float(), rtol=0, atol=0, msg=name)


def _ranks_said(stderr: str) -> str:
    """What failed ranks wrote before the launcher's summary (which fills the end of stderr), then the summary."""
    head, _, summary = stderr.rpartition("Traceback (most recent call last):\n  File \"<frozen runpy>\"")
    return head[-4000:] + "\n...\n" + summary[-1500:]


def test_torchrun_two_ranks_stay_identical_and_draw_different_scenes(tmp_path):
    """Training beyond one process is real: two gloo ranks under torchrun on the CPU end with identical weights
    (DDP averages their gradients) after training on disjoint scenes."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lrm4d_ros.cli", "train", "--out", str(out), "--steps", "3", *ARGS, "--val-protocol", "none"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, _ranks_said(proc.stderr)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["step"] == 3 for r in ranks)
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert len(ranks[0]["scene_seeds"]) == len(ranks[1]["scene_seeds"]) == 3
    assert not set(ranks[0]["scene_seeds"]) & set(ranks[1]["scene_seeds"])
    # and they trained: the weights moved away from rank 0's seeded initialisation, which DDP broadcast
    torch.manual_seed(0)
    init = LRM4D(LRM4DConfig.preset("tiny", image_size=16))
    trained = load_model(out / "model.safetensors")
    assert not torch.equal(init.unpatchify.weight, trained.unpatchify.weight)
    # With a time budget the ranks agree each step on the elapsed time and on stopping: each had stopped on its
    # own clock, one a step before the other, which then died in DDP's all-reduce with nothing saved.
    out = tmp_path / "budget"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "lrm4d_ros.cli", "train", "--out", str(out), "--steps", "1000", "--time-budget", "0.1", *ARGS,
           "--val-protocol", "none", "--val-every", "1000"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, _ranks_said(proc.stderr)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] > 1 and ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    assert (out / "state.safetensors").is_file()


def test_a_non_finite_gradient_skips_its_update(tmp_path, monkeypatch):
    """One scene whose loss is NaN (a degenerate draw) must not poison the weights: its update is skipped and
    counted, and training goes on with finite weights and losses."""
    import lrm4d_ros.train as train

    real, calls = train.scene_loss, []

    def flaky(*args, **kwargs):
        loss, m = real(*args, **kwargs)
        calls.append(1)
        return (loss * float("nan"), m) if len(calls) == 2 else (loss, m)

    monkeypatch.setattr(train, "scene_loss", flaky)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "3", *ARGS, "--val-every", "100"]) == 0
    steps = [r for r in _rows(out / "train.log") if "loss" in r]
    assert [r["skipped_steps"] for r in steps] == [0, 1, 1]
    assert math.isfinite(steps[2]["loss"]) and not math.isfinite(steps[1]["grad_norm"])
    assert all(bool(torch.isfinite(p).all()) for p in load_model(out / "model.safetensors").parameters())


def test_counts_that_must_be_positive_are_refused_with_a_message(capsys):
    """--val-every 0 used to crash the first step with a ZeroDivisionError; zero or negative counts are refused by
    the parser, naming the option."""
    import pytest

    for option, value in (("--val-every", "0"), ("--steps", "-3"), ("--batch", "0"), ("--val-scenes", "x")):
        with pytest.raises(SystemExit) as exc:
            main(["train", option, value])
        assert exc.value.code == 2
        assert f"argument {option}" in capsys.readouterr().err


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for extra, text in ((["--lr", "-1"], "--lr must be > 0"),
                        (["--clip", "-1"], "--clip must be > 0"),
                        (["--targets", "0"], "--targets must be >= 1 (validation scores held-out views)"),
                        (["--targets", "17"], "--targets 17: a scene has only 4 x 4 views"),
                        (["--inputs", "5,3"], "--inputs: expected N or 'min,max' with 1 <= min <= max"),
                        (["--export", str(tmp_path)], "--export"),
                        (["--image-size", "30"], "not a multiple of patch_size 8"),
                        (["--device", "foo"], "device 'foo'"),
                        (["--depth-drop-view", "1.5"], "probabilities in [0, 1]"),
                        (["--init", str(tmp_path / "nope.safetensors")], "checkpoint not found"),
                        (["--init", str(shipped_checkpoint_path())], "another shape than --preset tiny with these options (n_layer 6 (saved) != 2")):
        assert main(["train", "--out", str(tmp_path / "run"), "--steps", "2", *ARGS, *extra]) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err, err
        assert not (tmp_path / "run").exists()
    assert main(["train", "--out", str(tmp_path / "afile"), "--steps", "2", *ARGS]) == 2
    assert "is a file" in capsys.readouterr().err


def test_an_interrupted_run_saves_and_resumes_and_a_run_is_never_overwritten(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import lrm4d_ros.train as train

    real, calls = train.scene_loss, []

    def interrupted(*args, **kwargs):  # Ctrl-C arrives during the second step
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "scene_loss", interrupted)
    out = tmp_path / "run"
    run = ["train", "--out", str(out), *ARGS, "--ckpt-minutes", "60", "--val-every", "100"]
    assert main(run + ["--steps", "5"]) == 128 + signal.SIGINT
    assert "interrupted at step 2" in capsys.readouterr().err
    assert train.training_state_info(out / "state.safetensors")[1] == 2
    assert load_config(out / "model.safetensors")[1]["steps"] == 2
    monkeypatch.setattr(train, "scene_loss", real)
    # the same command again without --resume would overwrite the run: refused
    assert main(run + ["--steps", "5"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    # another model configuration cannot continue it
    assert main(run + ["--steps", "5", "--resume", "--no-depth-input"]) == 2
    assert "another model configuration (depth_input True (saved) != False)" in capsys.readouterr().err
    assert main(run + ["--steps", "5", "--resume", "--lr", "3e-4"]) == 0
    assert "--lr 0.0003 (was 0.0006)" in capsys.readouterr().err
    assert [r["step"] for r in _rows(out / "train.log") if "loss" in r] == [1, 2, 3, 4, 5]
    assert main(run + ["--steps", "5", "--resume"]) == 0  # nothing left to train
    assert "nothing to train" in capsys.readouterr().err
    seeds = json.loads((out / "rank0.json").read_text())["scene_seeds"]
    assert len(seeds) == 5 and len(set(seeds)) == 5  # both segments' scenes, none drawn twice
    # the run's files as checkpoints: the state and the folder are refused, naming the weights to use
    import pytest

    with pytest.raises(ValueError, match="is a training state .* use .*model.safetensors"):
        load_model(out / "state.safetensors")
    with pytest.raises(ValueError, match="is a directory: give .*best.safetensors"):
        load_model(out)
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == "0o644"


def test_init_weights_are_scored_before_they_are_fine_tuned(tmp_path, capsys):
    """--init: the starting weights are validated at step 0, so best.safetensors is never worse than the start (a
    learning rate too small to move a weight leaves it at step 0's); the weights' info names the --init file."""
    first = tmp_path / "first"
    assert main(["train", "--out", str(first), "--steps", "1", *ARGS]) == 0
    capsys.readouterr()
    out = tmp_path / "ft"
    assert main(["train", "--out", str(out), "--steps", "1", "--init", str(first / "model.safetensors"),
                 "--lr", "1e-30", *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "step 0: validating" in printed and "(best) (the --init weights)" in printed
    rows = [r for r in _rows(out / "train.log") if "val_protocol" in r]
    assert [r["step"] for r in rows] == [0, 1] and rows[0]["val_protocol"]["psnr"] == rows[1]["val_protocol"]["psnr"]
    info = load_config(out / "best.safetensors")[1]
    assert info["steps"] == 0 and info["init"] == str(first / "model.safetensors")
    assert load_config(out / "model.safetensors")[1]["init"] == str(first / "model.safetensors")


def test_a_validation_that_ends_past_the_time_budget_is_the_last(tmp_path, monkeypatch, capsys):
    """--time-budget: where a validation takes the rest of the budget, the run stops there (saving its state),
    not after one more step and a second validation."""
    import time

    import lrm4d_ros.train as train

    real = train.validate

    def slow(*args, **kwargs):
        result = real(*args, **kwargs)
        time.sleep(3.0)  # past the 2.4 s budget whatever the step took
        return result

    monkeypatch.setattr(train, "validate", slow)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "50", "--time-budget", "0.04", *ARGS,
                 "--val-every", "1"]) == 0
    rows = _rows(out / "train.log")
    assert [r["step"] for r in rows if "val" in r] == [1] and rows[-1] == {"event": "end", "step": 1}
    assert train.training_state_info(out / "state.safetensors")[1] == 1


def test_a_run_killed_outright_resumes_with_each_step_logged_once(tmp_path, capsys):
    """SIGKILL leaves train.log rows past the last saved state (and maybe a torn line); the resumed run trains
    those steps again and its log holds each step once. A resume says where it starts."""
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "2", *ARGS, "--val-every", "100"]) == 0
    log = out / "train.log"
    # what a kill after step 4 leaves: rows for steps 3 and 4 whose state was never saved, the last one torn
    log.write_text(log.read_text() + '{"step": 3, "loss": 0.1}\n{"step": 4, "lo')
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--steps", "4", "--resume", *ARGS, "--val-every", "100"]) == 0
    assert f"lrm4d train: resuming {out} at step 2 with --steps 4 (was 2)" in capsys.readouterr().err
    assert [r["step"] for r in _rows(log) if "loss" in r] == [1, 2, 3, 4]


def test_a_run_killed_before_its_first_state_starts_afresh_with_each_step_logged_once(tmp_path, capsys):
    """Killed before any state was saved, a run left only log rows; started again (with or without --resume, which
    says there is nothing to resume) it logs steps 1.. once, not after the dead run's."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "train.log").write_text('{"event": "start", "step": 0}\n{"step": 1, "loss": 0.1}\n'
                                   '{"step": 2, "loss": 0.1}\n')
    assert main(["train", "--out", str(out), "--steps", "2", "--resume", *ARGS, "--val-every", "100"]) == 0
    assert "no state in" in capsys.readouterr().err
    assert [r["step"] for r in _rows(out / "train.log") if "loss" in r] == [1, 2]


def test_a_resume_applies_a_changed_weight_decay_and_a_finished_run_exports(tmp_path, capsys):
    """--weight-decay changed on resume is said and applied (the saved optimiser groups kept the old one); a run
    already at --steps, resumed with --export, writes its weights in bf16 instead of doing nothing."""
    from lrm4d_ros.checkpoint import load_training_state
    from lrm4d_ros.train import _optimizer

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "2", *ARGS, "--val-every", "100"]) == 0
    assert main(["train", "--out", str(out), "--steps", "3", "--resume", "--weight-decay", "0.5", *ARGS,
                 "--val-every", "100"]) == 0
    assert "--weight-decay 0.5 (was 0.05)" in capsys.readouterr().err
    cfg, _ = load_config(out / "model.safetensors")
    model = LRM4D(cfg)
    opt = _optimizer(model, type("A", (), {"weight_decay": 0.05, "lr": 1e-3})(), torch.device("cpu"))
    load_training_state(out / "state.safetensors", model, opt)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.5, 0.0]  # as the resumed run stepped and saved
    export = tmp_path / "again.safetensors"
    assert main(["train", "--out", str(out), "--steps", "3", "--resume", "--weight-decay", "0.5",
                 "--export", str(export), *ARGS]) == 0
    assert "nothing to train" in capsys.readouterr().err
    full, half = load_model(out / "model.safetensors"), load_model(export)
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items()):
        torch.testing.assert_close(b, a.to(torch.bfloat16).float(), rtol=0, atol=0, msg=name)


def test_without_a_terminal_progress_comes_as_lines(tmp_path, monkeypatch, capsys):
    """In a pipe or a log (no tqdm bar) a progress line comes every PROGRESS_EVERY_S: step, share done, loss,
    rate."""
    import re

    import lrm4d_ros.train as train

    monkeypatch.setattr(train, "PROGRESS_EVERY_S", 0.0)
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "2", *ARGS, "--val-every", "100"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ") and "loss" in line]
    assert [line.split(" (")[0] for line in lines] == ["step 1/2", "step 2/2"]
    assert re.fullmatch(r"step 2/2 \(100 %\), loss \d+\.\d{4}, psnr \d+\.\d\d, lr \S+, \d+\.\d steps/min, "
                        r"elapsed \d+ s", lines[1]), lines[1]


def test_rank_records_keep_up_with_the_saved_state(tmp_path, monkeypatch):
    """rank<r>.json is written with each saved state, not only when the process ends: a process that dies
    mid-run (here an exception nothing catches, standing in for SIGKILL) leaves it at the state's step, with
    that many scene seeds."""
    import pytest

    import lrm4d_ros.train as train

    class Died(BaseException):
        pass

    real, calls = train.scene_loss, []

    def dies_in_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Died
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "scene_loss", dies_in_step_3)
    out = tmp_path / "run"
    with pytest.raises(Died):
        main(["train", "--out", str(out), "--steps", "5", *ARGS, "--val-every", "100"])  # --ckpt-minutes 0
    record = json.loads((out / "rank0.json").read_text())
    assert record["step"] == 2 == train.training_state_info(out / "state.safetensors")[1]
    assert len(record["scene_seeds"]) == 2
