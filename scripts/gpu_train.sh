#!/usr/bin/env bash
# Train lrm4d on one GPU for MINUTES and evaluate the result, all in one call (the GPU runbook; see README
# "Training"). Writes under OUT: train.log, model.safetensors / best.safetensors (float32), lrm4d_small.safetensors
# (bf16, ready to ship), eval_<protocol>.json for the rig protocol (RGB-D and RGB) and the paper's protocols, and
# gpu_train.log with gsplat's first-use build time. Scenes are generated on the GPU (--data-device cuda).
# Usage: bash scripts/gpu_train.sh OUT MINUTES [extra lrm4d train args, e.g. --init lrm4d_ros/checkpoints/...]
# Offline GPU machine: carry gsplat as a wheel (pip download --no-deps --only-binary=:all: --python-version 3.12
# --implementation cp --platform manylinux2014_x86_64 -d .whl gsplat==1.5.3 where pip works), then
# pip install --no-index --no-deps --target /tmp/site .whl/*.whl && PYTHONPATH=/tmp/site bash scripts/gpu_train.sh ...
set -eo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: gpu_train.sh OUT MINUTES [train args]}
minutes=${2:?usage: gpu_train.sh OUT MINUTES [train args]}
shift 2
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
log="$out/gpu_train.log"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    # gsplat JIT-builds its CUDA kernels on first use: time that apart from training.
    t=$SECONDS
    python -c "
import torch
from lrm4d_ros.render import render, gsplat_available
assert gsplat_available(), 'gsplat is not importable: see the header of scripts/gpu_train.sh'
m = torch.rand(100, 3, device='cuda') - 0.5
render(m, torch.eye(3, device='cuda').expand(100, 3, 3) * 1e-3, torch.full((100,), 0.5, device='cuda'),
       torch.rand(100, 3, device='cuda'), torch.eye(4, device='cuda')[None] + torch.tensor(
           [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, -2.0], [0, 0, 0, 0]], device='cuda')[None],
       torch.tensor([[[64.0, 0, 32], [0, 64, 32], [0, 0, 1]]], device='cuda'), 64, 64)
torch.cuda.synchronize()
print('gsplat first render ok')"
    echo "# gsplat first use (build included): $((SECONDS - t)) s"
    t=$SECONDS
    python -m lrm4d_ros.cli train --out "$out" --device cuda --data-device cuda --preset small \
        --image-size 128 --resolution 128 --time-budget "$minutes" --val-every 500 \
        --export "$out/lrm4d_small.safetensors" "$@"
    echo "# training: $((SECONDS - t)) s"
    ckpt="$out/best.safetensors"
    [ -f "$ckpt" ] || ckpt="$out/model.safetensors"
    python benchmarks/eval_scenes.py --robot --out "$out/bags" --quiet
    for depth in on off; do
        python -m lrm4d_ros.cli evaluate "$out"/bags/robot_* --protocol rig --depth "$depth" --checkpoint "$ckpt" \
            --json "$out/eval_rig_depth-$depth.json"
    done
    python benchmarks/eval_scenes.py --out "$out/bags" --quiet
    for protocol in alternating novel-camera; do
        python -m lrm4d_ros.cli evaluate "$out"/bags/scene_* --protocol "$protocol" --checkpoint "$ckpt" \
            --json "$out/eval_$protocol.json"
    done
} 2>&1 | tee "$log"
