#!/usr/bin/env bash
# Train lrm4d on one GPU for MINUTES and evaluate the result, all in one call (the GPU runbook; see README
# "Training runs"). Writes under OUT: train.log, model.safetensors / best.safetensors (float32),
# lrm4d_small.safetensors (bf16, the best weights by the rig validation, ready to ship), eval_rig_depth-on.json,
# eval_rig_depth-off.json, eval_alternating.json and eval_novel-camera.json (on the bags under BAGS/robot and
# BAGS/objects, BAGS=OUT/bags by default: the model card's evaluation bags are written there unless some are
# there already), and gpu_train.log with the machine, the rasterizer and each phase's seconds. Training scenes are
# ray-cast on the CPU (numba) and trained on the GPU.
#
# Usage: bash scripts/gpu_train.sh OUT MINUTES [extra lrm4d train args, e.g. --init lrm4d_ros/checkpoints/...]
#   DEVICE=cpu runs the same on the CPU (a dry run of the runbook; MINUTES may be a fraction).
#
# A GPU machine without internet lacks rosbags (bag IO) and gsplat: run `bash scripts/gpu_wheels.sh` where pip
# works, carry .whl/, and this script installs it first. Without gsplat (`gpu_wheels.sh --no-gsplat`), CUDA
# renders with the package's PyTorch rasterizer and nothing is built; with it, gsplat builds its kernels on first
# use (minutes, timed in gpu_train.log), and where that build fails CUDA renders with the PyTorch rasterizer (one
# warning) rather than the run stopping. Budget: training MINUTES, plus 1-1.5 minutes around it (numba compiles, the
# validation scenes, the last validation), about 2 for the bags and the evaluation, and gsplat's build where
# carried: one 600 s device call fits MINUTES 5 without gsplat, 3 with it. COPY_TO=DIR copies what is worth
# bringing back there when the script ends, however it ends (the device tool returns at most 8 files of up to
# 16 MiB from $OUT: the float32 weights and the state are larger, the bags are many): lrm4d_small.safetensors,
# train.log, gpu_train.log and the eval JSONs. E.g. (device call, carry [".whl"], timeout_s 600):
#   COPY_TO=$OUT bash scripts/gpu_train.sh /tmp/g 3
set -eo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_train.sh OUT MINUTES [train args]}
minutes=${2:?usage: gpu_train.sh OUT MINUTES [train args]}
shift 2
device=${DEVICE:-cuda}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bags=${BAGS:-$out/bags}
log="$out/gpu_train.log"
if [ -n "${COPY_TO:-}" ]; then
    mkdir -p "$COPY_TO"
    copy_back() {
        for f in lrm4d_small.safetensors train.log gpu_train.log eval_rig_depth-on.json eval_rig_depth-off.json \
                 eval_alternating.json eval_novel-camera.json; do
            [ -f "$out/$f" ] && cp "$out/$f" "$COPY_TO"/
        done
        return 0
    }
    trap copy_back EXIT
fi
{
    source scripts/gpu_env.sh  # inside the log: what it installs, or what is missing
    phase() { echo "# $1: $((SECONDS - t)) s"; t=$SECONDS; }
    t=$SECONDS
    python3 - "$device" <<'EOF'
import sys
import torch
cuda = sys.argv[1].split(":")[0] == "cuda"
if cuda and not torch.cuda.is_available():
    sys.exit("gpu_train.sh: CUDA is not available here (DEVICE=cpu for a dry run on the CPU)")
print("torch", torch.__version__, "cuda", torch.version.cuda, "| device", sys.argv[1],
      torch.cuda.get_device_name(sys.argv[1]) if cuda else "")
EOF
    if [ "${device%%:*}" = cuda ]; then
        python3 - "$device" <<'EOF'
import sys
import torch
from lrm4d_ros.render import cuda_backend, render
torch.cuda.set_device(sys.argv[1])
m = torch.rand(100, 3, device="cuda") - 0.5
pose = torch.eye(4, device="cuda")[None].clone()
pose[0, 2, 3] = -2.0
out = render(m, torch.eye(3, device="cuda").expand(100, 3, 3) * 1e-3, torch.full((100,), 0.5, device="cuda"),
             torch.rand(100, 3, device="cuda"), pose, torch.tensor([[[64.0, 0, 32], [0, 64, 32], [0, 0, 1]]],
                                                                   device="cuda"), 64, 64)
torch.cuda.synchronize()
assert out.alphas.max() > 0.1, "the first CUDA render drew nothing"
print("rasterizer on CUDA:", {"gsplat": "gsplat", "none": "the PyTorch reference (gsplat not carried)"}.get(
    cuda_backend()[0], "the PyTorch reference (gsplat's build failed: see the warning above)"))
EOF
        phase "first CUDA render (a gsplat build included, where carried)"
    fi
    python3 -m lrm4d_ros.cli train --out "$out" --device "$device" --data-device "$device" --preset small \
        --image-size 128 --resolution 128 --time-budget "$minutes" "$@"
    phase "training"
    ckpt="$out/best.safetensors"
    [ -f "$ckpt" ] || ckpt="$out/model.safetensors"
    python3 -c "import sys, torch; from lrm4d_ros.checkpoint import load_config, load_model, save_model
save_model(sys.argv[2], load_model(sys.argv[1]), torch.bfloat16, load_config(sys.argv[1])[1])" \
        "$ckpt" "$out/lrm4d_small.safetensors"  # the training info (steps, validation) kept in its metadata
    echo "shipped-format weights (bf16) of $ckpt: $out/lrm4d_small.safetensors"
    ls -d "$bags"/robot/scene_*[0-9] >/dev/null 2>&1 || python3 benchmarks/eval_scenes.py --robot --out "$bags/robot"
    ls -d "$bags"/objects/scene_*[0-9] >/dev/null 2>&1 || python3 benchmarks/eval_scenes.py --out "$bags/objects"
    phase "evaluation bags"
    for depth in on off; do
        python3 -m lrm4d_ros.cli evaluate "$bags"/robot/scene_*[0-9] --protocol rig --depth "$depth" \
            --device "$device" --checkpoint "$out/lrm4d_small.safetensors" --json "$out/eval_rig_depth-$depth.json"
    done
    for protocol in alternating novel-camera; do
        python3 -m lrm4d_ros.cli evaluate "$bags"/objects/scene_*[0-9] --protocol "$protocol" --device "$device" \
            --checkpoint "$out/lrm4d_small.safetensors" --json "$out/eval_$protocol.json"
    done
    phase "evaluation"
} 2>&1 | tee "$log"
