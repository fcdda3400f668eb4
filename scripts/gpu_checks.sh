#!/usr/bin/env bash
# Every figure that needs a GPU, in one go, meant to fit one 10-minute call (not yet run on a GPU: none was lent):
# reconstruct + render for small/base/large, gsplat against the torch rasteriser, and render speed (each step runs
# whether or not the one before it failed; the call exits 1 naming those that did).
# Results land in benchmarks/results/ (gsplat_parity.txt, render_cuda.txt, model_cuda.txt) and, if given, are
# copied to OUTDIR with the log. Needs CUDA, PyTorch and gsplat importable; the package itself may run from the
# checkout (PYTHONPATH=.) where it cannot be pip-installed, e.g. a machine without internet that has torch.
# Usage: bash scripts/gpu_checks.sh [OUTDIR]
# Offline GPU machine: gsplat 1.5.3 is a 6.5 MB pure-Python wheel that JIT-builds with nvcc and ninja (its first
# use takes minutes); it and the other packages missing there come from `bash scripts/gpu_wheels.sh` run where pip
# works: carry .whl/ and this script installs it (scripts/gpu_env.sh).
set -eo pipefail
cd "$(dirname "$0")/.."
NEED=(torch numpy numba cv2 safetensors rosbags tqdm)
WANT=(gsplat)
out=${1:-}
[ -n "$out" ] && mkdir -p "$out"
log=${out:+$out/gpu_checks.log}
failed=()
run() {  # a step, timed; its results file copied to OUTDIR at once, so a later step's timeout keeps it. A step that
    # fails is reported and the next one runs: one call must bring back every figure it can (gsplat's first build
    # against the device's CUDA has never been tried; the model benchmark needs no gsplat)
    local result=$1
    shift
    echo "+ $*"
    local t=$SECONDS
    if "$@"; then
        echo "# $(($SECONDS - t)) s"
        if [ -n "$out" ]; then cp "benchmarks/results/$result" "$out"/; fi
    else
        echo "# FAILED after $(($SECONDS - t)) s (exit $?): $result not written"
        failed+=("$result")
    fi
}
{
    source scripts/gpu_env.sh  # inside the log: what it installs, or what is missing
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
        echo "nvidia-smi failed: no NVIDIA driver here?"
    python3 -c "import torch; print('torch', torch.__version__, '- CUDA',
                'available' if torch.cuda.is_available() else 'NOT available: the steps below will fail')"
    python3 -c "import gsplat; print('gsplat', gsplat.__version__)" || echo "gsplat does not import"
    run model_cuda.txt python3 benchmarks/bench_model.py --device cuda --repeats 3
    run gsplat_parity.txt python3 scripts/gsplat_parity.py
    run render_cuda.txt python3 benchmarks/bench_render.py --gsplat --repeats 5 \
        --output benchmarks/results/render_cuda.txt
    if [ ${#failed[@]} -gt 0 ]; then echo "failed: ${failed[*]}"; exit 1; fi
} 2>&1 | tee "${log:-/dev/null}"
