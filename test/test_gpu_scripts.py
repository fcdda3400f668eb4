"""The GPU runbook run end to end on the CPU: scripts/gpu_train.sh with DEVICE=cpu on two small bags trains,
exports bf16 weights the package loads, and scores them with each protocol; scripts/gpu_env.sh names the Python
packages a machine lacks instead of failing later."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from safetensors import safe_open

from lrm4d_ros.checkpoint import load_config, load_model

ROOT = Path(__file__).resolve().parents[1]


def _make_bag(out: Path, seed: int, *extra: str) -> None:
    subprocess.run([sys.executable, "-m", "lrm4d_ros.cli", "make-bag", "--seed", str(seed), "--out", str(out),
                    "--frames", "4", "--cameras", "4", "--resolution", "64", "--supersample", "1", *extra],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)


def test_gpu_train_runbook_dry_runs_on_the_cpu(tmp_path):
    bags, out = tmp_path / "bags", tmp_path / "run"
    _make_bag(bags / "robot", 7, "--rig", "workcell", "--ground", "1", "--depth", "sensor")
    _make_bag(bags / "objects", 8, "--rig", "orbit", "--ground", "0", "--backdrop", "0")
    env = {**os.environ, "DEVICE": "cpu", "BAGS": str(bags)}
    proc = subprocess.run(["bash", "scripts/gpu_train.sh", str(out), "1", "--steps", "1", "--val-every", "1000",
                           "--val-protocol", "none", "--val-scenes", "1", "--frames", "4", "--cameras", "4",
                           "--threads", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "gpu_train.log").read_text()
    assert "# training:" in log and "# evaluation bags:" in log and "# evaluation:" in log
    shipped = out / "lrm4d_small.safetensors"
    with safe_open(str(shipped), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.bfloat16"}
    load_model(shipped)
    assert load_config(shipped)[1].get("steps") == 1  # the training info travels with the bf16 weights
    scores = {}
    for name in ("rig_depth-on", "rig_depth-off", "alternating", "novel-camera"):
        result = json.loads((out / f"eval_{name}.json").read_text())
        scores[name] = result["model"]["psnr"], result["baselines"]["background"]["psnr"]
        assert math.isfinite(scores[name][0]), (name, result["model"])
    # one step from scratch is the non-learned splat of the inputs at measured depth: far above the background
    model, background = scores["rig_depth-on"]
    assert model > background + 3, scores


def test_gpu_env_names_missing_packages():
    proc = subprocess.run(["bash", "-c", "NEED=(numpy no_such_module_xyz); source scripts/gpu_env.sh; echo reached"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "reached" not in proc.stdout
    assert "missing Python packages: no_such_module_xyz" in proc.stderr


def test_gpu_env_reports_a_wanted_package_and_goes_on():
    """WANT (gpu_checks.sh's gsplat): missing, it is named and the script goes on to the steps that do not need it."""
    proc = subprocess.run(["bash", "-c", "NEED=(numpy); WANT=(no_such_module_xyz); source scripts/gpu_env.sh; "
                           "echo reached"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "reached" in proc.stdout
    assert "not installed: no_such_module_xyz (the steps that need it will fail)" in proc.stderr
