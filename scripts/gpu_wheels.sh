#!/usr/bin/env bash
# Fetch, where pip works, the wheels that a GPU machine without internet lacks for scripts/gpu_train.sh and
# scripts/gpu_checks.sh, into .whl/ (ignored by git; about 13 MB, 6.5 of them gsplat's): rosbags and the
# packages it needs (the evaluation bags are written and read there), plyfile, and gsplat (optional for training:
# without it CUDA renders with the package's PyTorch rasterizer; with it, gsplat builds its CUDA kernels on first
# use, which takes minutes). Both GPU scripts install .whl/ themselves where a package is missing
# (scripts/gpu_env.sh). The interpreter there is CPython 3.12 on x86-64 Linux (the device machine's image);
# PYTHON_VERSION overrides.
# Usage: bash scripts/gpu_wheels.sh [--no-gsplat]
set -eo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON_VERSION:-3.12}
# every version pinned, and .whl/ emptied first: two versions of a package, or a gsplat wheel left from an earlier
# run after --no-gsplat, stop the whole install there
pkgs=(rosbags==0.11.9 apsw==3.54.1.0 backports.zstd==1.8.0 lz4==4.4.5 ruamel.yaml==0.19.1 ruamel.yaml.clib==0.2.15
      plyfile==1.1.5)
[ "${1:-}" = "--no-gsplat" ] || pkgs+=(gsplat==1.5.3)
rm -rf .whl
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pkgs[@]}"
ls -l .whl
du -sh .whl
