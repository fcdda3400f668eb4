#!/usr/bin/env bash
# Build the ROS 2 side (interfaces in msg/ and srv/, the node, launch/config/rviz) with colcon at the
# repository root, using the PyPI ROS 2 wheels (pip install -e ".[ros-build]") or a system ROS install.
# Usage: scripts/build_ros.sh [extra colcon build args]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# The PyPI wheels install their CMake configs under the interpreter's prefix (<prefix>/share/<pkg>/cmake).
PREFIX="$("$PYTHON" -c 'import sys; print(sys.prefix)')"
export CMAKE_PREFIX_PATH="${PREFIX}${CMAKE_PREFIX_PATH:+:${CMAKE_PREFIX_PATH}}"
# rosidl finds its type supports through the ament index, i.e. AMENT_PREFIX_PATH (colcon warns that this prefix
# has no local_setup files: harmless).
export AMENT_PREFIX_PATH="${PREFIX}${AMENT_PREFIX_PATH:+:${AMENT_PREFIX_PATH}}"

# TF (the node's pose_source tf, the virtual cameras' /tf_static, lrm4d play's /tf) needs tf2_msgs, which a ROS
# install has and PyPI does not: build the vendored copy of its TFMessage only where no other is installed.
paths=(.)
have_tf2_msgs=0
IFS=: read -ra prefixes <<< "${AMENT_PREFIX_PATH}"
for p in "${prefixes[@]}"; do
  if [ -n "$p" ] && [ "$p" != "$(pwd)/install" ] && [ "${p#"$(pwd)"/install/}" = "$p" ] \
      && [ -e "$p/share/ament_index/resource_index/packages/tf2_msgs" ]; then
    have_tf2_msgs=1
  fi
done
[ "$have_tf2_msgs" = 1 ] || paths+=(vendor/tf2_msgs)

colcon build --base-paths "${paths[@]}" \
  --cmake-args -DPython3_EXECUTABLE="$("$PYTHON" -c 'import sys; print(sys.executable)')" -DBUILD_TESTING=OFF \
  "$@"

cat <<MSG

Built. To use it in this shell:
    source $(pwd)/install/setup.bash
then for example:
    python3 -c "from lrm4d_ros.srv import RenderView; print(RenderView.Request())"
    python3 -m lrm4d_ros.ros.reconstruct_node --ros-args --params-file $(pwd)/config/reconstruct.yaml
    ros2 launch lrm4d_ros reconstruct.launch.py      # where ros2cli and launch_ros are installed
MSG
