"""launch_testing: the executor drives a UR5 on ros2_control mock hardware through MoveIt
(moveit_py): the ~/home service plans and executes a joint move. Needs ROS 2 with moveit_py,
ur_robot_driver and ur_moveit_config; skipped otherwise.

Run with ``launch_test test/launch/test_mock_robot_launch.py`` or ``colcon test``.
"""
import os
import tempfile
import time
import unittest

import pytest

launch_testing = pytest.importorskip("launch_testing")
pytest.importorskip("rclpy")
pytest.importorskip("moveit.planning")
ament = pytest.importorskip("ament_index_python.packages")
for _pkg in ("ur_robot_driver", "ur_moveit_config", "sim2real"):
    try:
        ament.get_package_share_directory(_pkg)
    except ament.PackageNotFoundError:
        pytest.skip(f"ROS package {_pkg} is not installed", allow_module_level=True)

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing.actions  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription, OpaqueFunction, TimerAction  # noqa: E402
from launch.launch_description_sources import AnyLaunchDescriptionSource  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from sim2real.robot_config import load_robot_config  # noqa: E402
from sim2real.ros.launch_plan import moveit_params_file, robot_includes, ros_distro  # noqa: E402


def _robot_and_executor(context):
    config = load_robot_config("ur5")
    share = ament.get_package_share_directory("sim2real")
    actions = []
    for spec in robot_includes(config, use_sim_robot=True, distro=ros_distro()):
        path = os.path.join(ament.get_package_share_directory(spec.package), "launch", spec.file)
        actions.append(IncludeLaunchDescription(AnyLaunchDescriptionSource(path),
                                                launch_arguments=list(spec.args.items())))
    path = tempfile.NamedTemporaryFile(prefix="sim2real_moveit_", suffix=".yaml", delete=False).name
    moveit = moveit_params_file(config, path, context, share, fake=True)
    executor = launch_ros.actions.Node(package="sim2real", executable="executor_node", name="executor",
                                       parameters=[{"robot": "ur5", "mode": "auto", "go_home": False}, moveit],
                                       output="screen")
    # give the controllers time to come up before MoveItPy reads the robot state
    actions.append(TimerAction(period=10.0, actions=[executor]))
    return actions


@pytest.mark.launch_test
def generate_test_description():
    return launch.LaunchDescription([OpaqueFunction(function=_robot_and_executor),
                                     launch_testing.actions.ReadyToTest()])


class TestMockRobot(unittest.TestCase):
    def test_home_moves_through_moveit(self):
        rclpy.init()
        node = rclpy.create_node("sim2real_mock_robot_test")
        try:
            client = node.create_client(Trigger, "/executor/home")
            self.assertTrue(client.wait_for_service(timeout_sec=90.0), "executor ~/home never appeared")
            future = client.call_async(Trigger.Request())
            deadline = time.monotonic() + 90.0
            while not future.done() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.2)
            self.assertTrue(future.done(), "home did not finish")
            self.assertTrue(future.result().success, future.result().message)
        finally:
            node.destroy_node()
            rclpy.shutdown()
