#!/usr/bin/env bash
# Train lrm4d on one GPU for MINUTES and evaluate the result, all in one call (the GPU runbook; see README
# "Training"). Writes under OUT: train.log, model.safetensors / best.safetensors (float32),
# lrm4d_small.safetensors (bf16, the best weights by the rig validation, ready to ship), eval_rig_depth-on.json,
# eval_rig_depth-off.json, eval_alternating.json and eval_novel-camera.json (on the bags under BAGS/robot and
# BAGS/objects, BAGS=OUT/bags by default: the model card's evaluation bags are written there unless some are
# there already), and gpu_train.log with the machine, the rasterizer and each phase's seconds. Scenes are
# generated on the GPU (--data-device).
#
# Usage: bash scripts/gpu_train.sh OUT MINUTES [extra lrm4d train args, e.g. --init lrm4d_ros/checkpoints/...]
#   DEVICE=cpu runs the same on the CPU (a dry run of the runbook; MINUTES may be a fraction).
#
# A GPU machine without internet lacks rosbags (bag IO) and gsplat: run `bash scripts/gpu_wheels.sh` where pip
# works, carry .whl/, and this script installs it first. Without gsplat (`gpu_wheels.sh --no-gsplat`), CUDA
# renders with the package's PyTorch rasterizer and nothing is built; with it, gsplat builds its kernels on first
# use (minutes, timed in gpu_train.log). Budget: training MINUTES, plus about 2 minutes for the bags and the
# evaluation. Files to bring back (the device tool returns at most 8, each up to 16 MiB: the float32 weights are
# larger), e.g.:
#   bash scripts/gpu_train.sh /tmp/g 6 && cp /tmp/g/{lrm4d_small.safetensors,train.log,gpu_train.log,eval_*.json} $OUT/
set -eo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_train.sh OUT MINUTES [train args]}
minutes=${2:?usage: gpu_train.sh OUT MINUTES [train args]}
shift 2
device=${DEVICE:-cuda}
mkdir -p "$out"
out=$(cd "$out" && pwd)
bags=${BAGS:-$out/bags}
source scripts/gpu_env.sh
log="$out/gpu_train.log"
{
    phase() { echo "# $1: $((SECONDS - t)) s"; t=$SECONDS; }
    t=$SECONDS
    python3 - "$device" <<'EOF'
import sys
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "| device", sys.argv[1],
      torch.cuda.get_device_name() if sys.argv[1] == "cuda" else "")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_train.sh: CUDA is not available here (DEVICE=cpu for a dry run on the CPU)")
EOF
    if [ "$device" = cuda ]; then
        python3 - <<'EOF'
import torch
from lrm4d_ros.render import render, gsplat_available
m = torch.rand(100, 3, device="cuda") - 0.5
pose = torch.eye(4, device="cuda")[None].clone()
pose[0, 2, 3] = -2.0
out = render(m, torch.eye(3, device="cuda").expand(100, 3, 3) * 1e-3, torch.full((100,), 0.5, device="cuda"),
             torch.rand(100, 3, device="cuda"), pose, torch.tensor([[[64.0, 0, 32], [0, 64, 32], [0, 0, 1]]],
                                                                   device="cuda"), 64, 64)
torch.cuda.synchronize()
assert out.alphas.max() > 0.1, "the first CUDA render drew nothing"
print("rasterizer on CUDA:", "gsplat" if gsplat_available() else "the PyTorch reference (gsplat not carried)")
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
