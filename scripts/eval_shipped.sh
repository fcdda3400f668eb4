#!/usr/bin/env bash
# Every evaluation figure of the model card in one command: writes the evaluation bags if they are missing, then
# scores a checkpoint (default: the shipped one) on
#   - the 8 procedural robot scenes (rig protocol, sensor depth), RGB-D and RGB only,
#   - the 5 MuJoCo robot bags (rig protocol, sensor depth), RGB-D and RGB only, with contact sheets (the jaco arm's copied to docs/),
#   - both robot sets from RGB only again, told the floor's world height (--floor-z 0),
#   - the 8 object-centric scenes (the paper's alternating and novel-camera protocols), with contact sheets (one copied to docs/).
# Results: benchmarks/results/eval_<set>_<protocol>[_depth-on|off].{json,txt}; every sheet: BAGS_DIR/sheets/.
# Usage: bash scripts/eval_shipped.sh [BAGS_DIR] [CHECKPOINT]    (about 15 min on one CPU thread)
set -eo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
bags=${1:-/tmp/lrm4d_eval_bags}
ckpt=${2:+--checkpoint $2}
threads=${THREADS:-1}
res=benchmarks/results
[ -d "$bags/robot/scene_1002007" ] || python benchmarks/eval_scenes.py --robot --out "$bags/robot"
[ -d "$bags/objects/scene_1000107" ] || python benchmarks/eval_scenes.py --out "$bags/objects"
[ -d "$bags/mujoco/humanoid_workcell_floor" ] || \
    MUJOCO_GL=${MUJOCO_GL:-osmesa} python scripts/make_mujoco_bags.py --preset robots --out "$bags/mujoco"
mujoco=$(ls -d "$bags"/mujoco/*_workcell_floor)

evaluate() {  # NAME PROTOCOL DEPTH BAGS... [-- EXTRA...]
    local name=$1 protocol=$2 depth=$3
    shift 3
    local out=$res/eval_${name}_${protocol}${depth:+_depth-$depth}
    echo "+ lrm4d evaluate ($name, $protocol${depth:+, depth $depth})"
    python -m lrm4d_ros.cli evaluate "$@" --protocol "$protocol" ${depth:+--depth $depth} --threads "$threads" \
        $ckpt --json "$out.json" | tee "$out.txt"
}
for depth in on off; do
    evaluate robot rig $depth "$bags"/robot/scene_*[0-9]
    evaluate mujoco rig $depth $mujoco --sheets "$bags/sheets"
done
# RGB-only rigs told where the floor is (the generators put it at world z = 0; Reconstructor floor_z, --floor-z)
evaluate robot-floor-z0 rig off "$bags"/robot/scene_*[0-9] --floor-z 0
evaluate mujoco-floor-z0 rig off $mujoco --floor-z 0
for protocol in alternating novel-camera; do
    evaluate objects $protocol "" "$bags"/objects/scene_*[0-9] --sheets "$bags/sheets"
done
cp "$bags"/sheets/jaco_workcell_floor_rig_depth-{on,off}.png docs/
cp "$bags"/sheets/scene_1000100_novel-camera_depth-on.png docs/objects_scene_1000100_novel-camera.png
