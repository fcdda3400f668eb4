"""launch_testing: reconstruct.launch.py brings the node up with /render_view advertised and shuts it down
cleanly. Needs a ROS install with launch_testing and launch_ros (not on PyPI), the colcon build sourced and
the shipped checkpoint; skipped otherwise."""
import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip("launch_testing", reason="launch_testing is not installed (not on PyPI)")
pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on PyPI)")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from lrm4d_ros.checkpoint import shipped_checkpoint_path  # noqa: E402

if not shipped_checkpoint_path().is_file():
    pytest.skip("the shipped checkpoint is not present", allow_module_level=True)

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "reconstruct.launch.py"


@pytest.mark.launch_test
def generate_test_description():
    include = launch.actions.IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH)),
                                                      launch_arguments={"device": "cpu"}.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestNodeComesUp(unittest.TestCase):
    def test_render_service_is_advertised(self, proc_output):
        from lrm4d_ros.ros.interfaces import RenderView

        proc_output.assertWaitFor("render service /render_view", timeout=60)
        rclpy.init()
        try:
            node = rclpy.create_node("lrm4d_launch_probe")
            client = node.create_client(RenderView, "/render_view")
            self.assertTrue(client.wait_for_service(timeout_sec=30.0))
            node.destroy_node()
        finally:
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
