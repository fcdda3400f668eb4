"""Shared test helpers."""
import os
import subprocess
import sys

import pytest

REQUIRE_ROS = os.environ.get("LRM4D_REQUIRE_ROS") == "1"  # set by .ci/run: a broken ROS build must fail


def require_ros_interfaces() -> None:
    """Call at the top of a ROS test module: skips it when rclpy or the generated interfaces (lrm4d_ros.msg,
    lrm4d_ros.srv; `scripts/build_ros.sh` + `source install/setup.bash`) are missing, or fails it when
    LRM4D_REQUIRE_ROS=1."""
    import importlib

    try:
        importlib.import_module("rclpy")
        importlib.import_module("lrm4d_ros.ros.interfaces")
    except ImportError as exc:
        if REQUIRE_ROS:
            pytest.fail(f"LRM4D_REQUIRE_ROS=1 but the ROS interfaces cannot be imported: {exc}", pytrace=False)
        pytest.skip(str(exc), allow_module_level=True)


def fresh_python(code: str) -> list[str]:
    """Run `code` in a fresh interpreter (a process-wide first, such as numba starting its threads, happens there)
    -> the words it printed; fails the test with its stderr where it exits nonzero."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()
