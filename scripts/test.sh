#!/usr/bin/env bash
# Builds the ROS interfaces with colcon, then runs the whole test suite against that build.
# Usage: bash scripts/test.sh [pytest args]   (after: pip install torch==2.13.0 -e ".[test,ros-build]")
set -eo pipefail
cd "$(dirname "$0")/.."
# The viewer's screenshot tests need Chromium; they skip without it unless LRM4D_REQUIRE_BROWSER=1 (CI), which
# installs Debian's chromium here when it is missing.
if [ "${LRM4D_REQUIRE_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium for the viewer's screenshot tests (LRM4D_REQUIRE_BROWSER=1)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/build_ros.sh
# colcon's setup script puts the generated interfaces (lrm4d_ros.msg / lrm4d_ros.srv) on PYTHONPATH.
set +u
# shellcheck disable=SC1091
source install/setup.bash
# -rs: list every skipped test and why
exec python -m pytest -q -rs test "$@"
