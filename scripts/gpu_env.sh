# Sourced by scripts/gpu_train.sh and scripts/gpu_checks.sh: the package from this checkout on PYTHONPATH and,
# where Python packages it needs are missing (a GPU machine without internet), the wheels carried in .whl/
# (scripts/gpu_wheels.sh) installed under $WHEEL_SITE (default /tmp/lrm4d_site). Fails with the names of what is
# still missing. NEED (an array) may be set before sourcing, and WANT (packages whose absence is reported, not
# fatal); gsplat installs with the wheels where carried.
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
# gsplat's first-use CUDA build: every core, and only the lent GPUs' architecture (H100/H200: sm_90)
export MAX_JOBS=${MAX_JOBS:-$(nproc)} TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
[ -n "${NEED+x}" ] || NEED=(torch numpy numba cv2 safetensors rosbags tqdm)
[ -n "${WANT+x}" ] || WANT=()
_missing() {
    python3 -c "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if u.find_spec(m) is None])" "$@"
}
missing=$(_missing "${NEED[@]}" "${WANT[@]}")
if [ -n "$missing" ] && ls .whl/*.whl >/dev/null 2>&1; then
    site=${WHEEL_SITE:-/tmp/lrm4d_site}
    # wheels for another Python or platform fail here: the check below then names what is still missing
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
        .whl/*.whl || echo "$(basename "$0"): the wheels in .whl/ do not install here" >&2
    export PYTHONPATH="$PYTHONPATH:$site"
fi
missing=$(_missing "${NEED[@]}")
wanting=$([ ${#WANT[@]} -eq 0 ] || _missing "${WANT[@]}")
[ -z "$wanting" ] || echo "$(basename "$0"): not installed: $wanting (the steps that need it will fail)" >&2
if [ -n "$missing" ]; then
    echo "$(basename "$0"): missing Python packages: $missing (run scripts/gpu_wheels.sh where pip works and" \
        "carry .whl/)" >&2
    exit 1
fi
