#!/usr/bin/env bash
# Blender (Cycles) robot workcells as contract bags with sensor depth: a third renderer for `lrm4d evaluate`
# (scripts/blender_scenes.py says what the scenes hold). Blender's Python module lives in a venv of its own
# (bpy needs numpy < 2); it is made on first use.
# Usage: bash scripts/make_blender_bags.sh OUT_DIR [SEED ...]   (default seeds 0-3; ~1 min a scene on 2 cores)
# Writes OUT_DIR/blender_<seed> (bag, 32FC1 depth as a depth camera measures it) and OUT_DIR/blender_<seed>.png
# (contact sheet: a row per frame, a column per camera, then frame 0's depth).
set -eo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/make_blender_bags.sh OUT_DIR [SEED ...]}
shift
seeds=${*:-0 1 2 3}
venv=${BPY_VENV:-$HOME/.cache/lrm4d_ros/bpy-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import bpy, PIL" 2>/dev/null; then
    echo "making Blender's venv at $venv (bpy is a ~370 MB wheel)"
    python -m venv "$venv"
    "$venv/bin/pip" install -q bpy "numpy<2" pillow
fi
mkdir -p "$out"
# shellcheck disable=SC2086
"$venv/bin/python" scripts/blender_scenes.py --out "$out/npz" --seeds $seeds
python - "$out" $seeds <<'PY'
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from lrm4d_ros.data.depth_sensor import with_depth
from lrm4d_ros.io.bag import write_bag
from lrm4d_ros.views import ViewSet
sys.path.insert(0, "scripts")
from make_mujoco_bags import contact_sheet  # noqa: E402

out = Path(sys.argv[1])
for seed in sys.argv[2:]:
    d = np.load(out / "npz" / f"blender_{seed}.npz")
    ids = torch.from_numpy(d["camera_ids"])
    C = int(ids.max()) + 1
    views = ViewSet(images=torch.from_numpy(d["images"]).float() / 255.0, Ks=torch.from_numpy(d["Ks"]),
                    camtoworlds=torch.from_numpy(d["camtoworlds"]), stamps_ns=torch.from_numpy(d["stamps_ns"]),
                    camera_ids=ids, camera_names=[f"cam{c}" for c in range(C)],
                    depths=torch.from_numpy(d["depths"]))
    views = with_depth(views, "sensor", seed=int(seed))
    bag = out / f"blender_{seed}"
    if bag.exists():
        print(f"{bag} exists: left as it is")
        continue
    write_bag(views, bag, depth_encoding="32FC1")
    cv2.imwrite(str(out / f"blender_{seed}.png"), contact_sheet(views, len(views) // C, C)[..., ::-1])
    print(f"wrote {bag}")
PY
