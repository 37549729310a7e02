"""`connect_moveit_robot` (the real arm for `sim2real run --robot ur5`) against fake rclpy / moveit_py."""
import sys
import types

import numpy as np
import pytest

from sim2real.robot_config import load_robot_config
from sim2real.ros import RosNotAvailableError, grippers, launch_plan
from sim2real.ros import moveit_adapter as ma
from sim2real.ros.moveit_robot import FrameRobot, MoveItRobot, connect_moveit_robot


@pytest.fixture
def fake_ros(monkeypatch):
    calls = []

    class Executor:
        def add_node(self, node):
            calls.append("add_node")

        def spin(self):
            pass

        def shutdown(self, timeout_sec=None):
            calls.append("executor_shutdown")

    class Node:
        def destroy_node(self):
            calls.append("destroy_node")

    rclpy = types.ModuleType("rclpy")
    rclpy.ok = lambda: False
    rclpy.init = lambda args=None: calls.append("init")
    rclpy.create_node = lambda name: (calls.append(("node", name)), Node())[1]
    rclpy.try_shutdown = lambda: calls.append("rclpy_shutdown")
    executors = types.ModuleType("rclpy.executors")
    executors.MultiThreadedExecutor = Executor
    monkeypatch.setitem(sys.modules, "rclpy", rclpy)
    monkeypatch.setitem(sys.modules, "rclpy.executors", executors)

    class Adapter:
        def __init__(self, config, api=None, config_dict=None, envelope=None, T_base_workspace=None, **kw):
            self.config, self.api, self.config_dict = config, api, config_dict
            self.envelope, self.T_base_workspace = envelope, T_base_workspace

        def connect(self):
            calls.append("moveit_connect")
            return self

        def stop(self):
            calls.append("arm_stop")

    monkeypatch.setattr(ma, "load_moveit_api", lambda: "moveit-api")
    monkeypatch.setattr(ma, "MoveItAdapter", Adapter)
    monkeypatch.setattr(launch_plan, "moveit_params", lambda cfg: {"robot_description": cfg.name})
    monkeypatch.setattr(grippers, "make_gripper", lambda node, cfg: ("gripper", cfg.driver))
    return calls


def test_builds_node_moveit_and_gripper_and_closes_in_order(fake_ros):
    T = np.eye(4)
    T[:3, 3] = (0.1, 0.0, 0.0)
    robot, close = connect_moveit_robot(load_robot_config("ur5"), T)
    assert isinstance(robot, FrameRobot) and isinstance(robot.robot, MoveItRobot)
    assert robot.robot.adapter.api == "moveit-api" and robot.robot.adapter.config_dict == {"robot_description": "ur5"}
    assert robot.robot.gripper[0] == "gripper" and robot.T is not None
    # every trajectory is checked against the robot config's envelope, in the workspace frame
    assert robot.robot.adapter.envelope == load_robot_config("ur5").safety_envelope().in_frame(T)  # reach from the base
    np.testing.assert_allclose(robot.robot.adapter.T_base_workspace, T)
    assert fake_ros[:4] == ["init", ("node", "sim2real_run"), "add_node", "moveit_connect"]
    close()
    assert fake_ros[-4:] == ["arm_stop", "executor_shutdown", "destroy_node", "rclpy_shutdown"]


def test_missing_moveit_config_packages_fail_cleanly_and_release_nothing(fake_ros, monkeypatch):
    def no_builder(cfg):
        raise ImportError("No module named 'moveit_configs_utils'")

    monkeypatch.setattr(launch_plan, "moveit_params", no_builder)
    with pytest.raises(RosNotAvailableError, match="moveit_configs_utils.*ros2 launch sim2real deploy.launch.py"):
        connect_moveit_robot(load_robot_config("xarm6"))
    assert "init" not in fake_ros


def test_a_failing_moveit_start_shuts_the_node_down(fake_ros, monkeypatch):
    def boom(self):
        raise RuntimeError("moveit_py could not load the robot description")

    monkeypatch.setattr(ma.MoveItAdapter, "connect", boom)
    with pytest.raises(RuntimeError, match="robot description"):
        connect_moveit_robot(load_robot_config("ur5"))
    assert fake_ros[-3:] == ["executor_shutdown", "destroy_node", "rclpy_shutdown"]


def test_sim2real_run_checks_the_real_arm_against_the_calibrated_workspace(monkeypatch):
    """`sim2real run --robot ur5` hands MoveIt the envelope on the calibration's workspace, reach from the base."""
    import argparse

    import numpy as np

    from sim2real.cli import run as run_cli
    from sim2real.ros import moveit_robot
    from sim2real.workspace import Workspace

    seen = {}

    def fake_connect(cfg, T_base_workspace, envelope=None, **kw):
        seen["envelope"] = envelope
        return "robot", (lambda: None)

    monkeypatch.setattr(moveit_robot, "connect_moveit_robot", fake_connect)
    workspace = Workspace(bounds=np.array([[0.0, 0.4], [-0.3, 0.3], [0.0, 0.2]]), pixel_size=0.003125)
    T = np.eye(4)
    T[0, 3] = 0.25
    run_cli._robot_setup(argparse.Namespace(robot="ur5", robot_config=None), T, workspace)
    env = seen["envelope"]
    assert env is not None
    np.testing.assert_allclose(np.asarray(env.workspace.bounds), workspace.bounds)
    from sim2real.safety import check_target

    # x = 0.1 m is inside the calibrated box (not GenSim's default 0.25..0.75), and reach is measured
    # from the base, 0.25 m behind the workspace origin
    assert not [r for r in check_target((0.1, 0.0, 0.1), (0, 0, 0, 1), 0.1, env, "t") if "workspace" in r]
    assert abs(env.reach_of(np.array([0.0, 0.0, 0.1])) - 0.25) < 1e-9
