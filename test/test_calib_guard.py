"""Calibration moves go through the safety envelope (issue 10): the hand-eye poses and the touch
test are checked, slowed and confirmed; `calibrate` on a real robot starts MoveIt with its
parameters and the guard (fake rclpy / moveit_py: moveit_py is not installable here)."""
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import load_board
from sim2real.calibration.collect import collect_generated
from sim2real.calibration.guard import (CALIBRATION_SPEED_MPS, PROVISIONAL_ENVELOPE, GuardedRobot,
                                        console_confirm)
from sim2real.calibration.touch import touch_test, truth_measure
from sim2real.errors import SafetyError
from sim2real.robot import DryRunRobot
from sim2real.safety import SafetyEnvelope


def pose(xyz, tilt_deg=0.0):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("x", tilt_deg, degrees=True).as_matrix()
    T[:3, 3] = xyz
    return T


class BlankCamera:
    """A camera that sees no board (every sample is skipped after the move)."""

    def __init__(self):
        self.reads = 0

    def read(self, timeout_s=5.0):
        from sim2real.camera import CameraIntrinsics, RGBDFrame

        self.reads += 1
        intr = CameraIntrinsics(64, 48, 60.0, 60.0, 32.0, 24.0)
        return RGBDFrame(np.zeros((48, 64, 3), np.uint8), np.ones((48, 64), np.float32), intr, "cam", 0.0)


def moved_to(robot):
    return [c["xyz"] for c in robot.commands if c["cmd"] == "move_to"]


def test_generated_hand_eye_poses_are_checked_slowed_and_skipped_when_unsafe():
    robot = DryRunRobot()
    poses = [pose([0.5, 0.0, 0.3], 30), pose([0.5, 0.0, 0.01]),   # fine; 1 cm above the base plane
             pose([0.5, 0.9, 0.3]), pose([1.2, 0.0, 0.3]),        # outside the box; out of reach
             pose([np.nan, 0.0, 0.3]), pose([0.45, 0.1, 0.25], 20)]  # not finite; fine
    log = collect_generated(robot, BlankCamera(), load_board(None), poses, speed=0.5, settle_s=0.0, progress=False)
    np.testing.assert_allclose(moved_to(robot), [[0.5, 0.0, 0.3], [0.45, 0.1, 0.25]])
    assert all(c["speed"] == CALIBRATION_SPEED_MPS for c in robot.commands if c["cmd"] == "move_to")
    refused = {k: why for k, why in log.skipped if "unsafe calibration move" in why}
    assert sorted(refused) == [1, 2, 3, 4]
    assert "below the minimum 50.0 mm" in refused[1] and "outside the workspace" in refused[2]
    assert "reach" in refused[3] and "3 finite numbers" in refused[4]
    assert robot.commands[-1]["cmd"] == "stop"


def test_hand_eye_moves_wait_for_the_operator_on_a_real_robot():
    robot = DryRunRobot()
    answers = iter(["", "s", "a"])
    asked = []
    confirm = console_confirm(lambda text: (asked.append(text), next(answers))[1])
    poses = [pose([0.5, 0.0, 0.3]), pose([0.5, 0.1, 0.3]), pose([0.5, 0.2, 0.3]), pose([0.5, 0.3, 0.3])]
    log = collect_generated(robot, BlankCamera(), load_board(None), poses, settle_s=0.0, progress=False,
                            confirm=confirm)
    np.testing.assert_allclose([p[1] for p in moved_to(robot)], [0.0, 0.2, 0.3])  # the skipped one never moved
    assert len(asked) == 3 and "move the tool to [0.500, 0.000, 0.300]" in asked[0]  # 'a' approved the rest
    assert any(k == 1 and "declined by the operator" in why for k, why in log.skipped)


def test_touch_test_refuses_a_corner_under_the_table_and_stops():
    robot = DryRunRobot()
    env = SafetyEnvelope()
    targets = np.array([[0.5, 0.0, 0.0], [0.5, 0.1, -0.05]])  # the second "corner" is 5 cm under the table
    with pytest.raises(SafetyError, match="below the minimum"):
        touch_test(robot, [0, 1], targets, truth_measure(targets), hover_m=0.005, envelope=env)
    assert len(moved_to(robot)) == 1 and robot.commands[-1]["cmd"] == "stop"


def test_touch_targets_are_checked_in_the_workspace_frame():
    robot = DryRunRobot()
    T_workspace_base = np.eye(4)
    T_workspace_base[:3, 3] = [0.3, 0.0, 0.0]  # base x 0.5 is workspace x 0.8: outside the box
    targets = np.array([[0.5, 0.0, 0.0]])
    with pytest.raises(SafetyError, match="outside the workspace"):
        touch_test(robot, [0], targets, truth_measure(targets), envelope=SafetyEnvelope(),
                   T_workspace_base=T_workspace_base)
    assert moved_to(robot) == []


def test_provisional_envelope_is_conservative():
    PROVISIONAL_ENVELOPE.validate("provisional")
    default = SafetyEnvelope()
    assert PROVISIONAL_ENVELOPE.min_height_m > default.min_height_m
    assert PROVISIONAL_ENVELOPE.reach_max_m < default.reach_max_m
    assert PROVISIONAL_ENVELOPE.max_speed <= 0.05 and PROVISIONAL_ENVELOPE.margin_m <= 0.0


# ------------------------------------------------------------------------------------------ the real rig


@pytest.fixture
def real_rig_world(monkeypatch):
    """`_real_rig` against fake rclpy, the fake moveit_py, a fake gripper and a fake RealSense."""
    from moveit_fakes import SCENE_MSGS, FakeWorld
    from rosbags.typesys import Stores, get_typestore

    from sim2real.ros import grippers, launch_plan
    from sim2real.ros import moveit_adapter as ma
    from sim2real.ros.conversions import MsgTypes

    calls = []

    class Executor:
        def add_node(self, node):
            pass

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
    world = FakeWorld("jazzy", start=np.r_[0.45, 0.0, 0.4, np.pi, 0.0, 0.0])
    monkeypatch.setattr(ma, "load_moveit_api", lambda: world.api)
    monkeypatch.setattr(ma, "load_scene_msgs", lambda: SCENE_MSGS)
    monkeypatch.setattr(MsgTypes, "from_rclpy", classmethod(lambda cls: MsgTypes.from_typestore(
        get_typestore(Stores.ROS2_JAZZY))))
    monkeypatch.setattr(launch_plan, "moveit_params", lambda cfg: {"robot_description": f"<{cfg.name} urdf>"})
    monkeypatch.setattr(grippers, "make_gripper", lambda node, cfg: SimpleNamespace(set=lambda closed: None))

    import sim2real.realsense as rs

    class Camera:
        serial = "123"

        def __init__(self, config):
            pass

        def connect(self):
            return self

        def read(self, timeout_s=1.0):
            return SimpleNamespace(intrinsics="intrinsics")

        def close(self):
            calls.append("camera_close")

    monkeypatch.setattr(rs, "RealSenseCamera", Camera)
    ma.forget_instances()
    yield world, calls
    ma.forget_instances()


def test_real_rig_starts_moveit_with_its_parameters_behind_the_guard(real_rig_world, monkeypatch):
    from sim2real.cli.calibrate import _real_rig
    from sim2real.trajectory_check import CALIBRATION_JOINT_VELOCITY_RAD_S

    world, calls = real_rig_world
    rig = _real_rig(SimpleNamespace(serial=None), "ur5")
    assert world.config_dict == {"robot_description": "<ur5 urdf>"}  # the same MoveIt params as `run`
    assert ("MoveItPy", "moveit_py") in world.calls and ("node", "sim2real_calibrate") in calls
    assert isinstance(rig.robot, GuardedRobot) and rig.robot.envelope == PROVISIONAL_ENVELOPE
    assert rig.robot.confirm is not None  # the operator confirms each move
    adapter = rig.robot.robot.robot.adapter
    assert adapter.envelope == PROVISIONAL_ENVELOPE and adapter.T_workspace_base is None
    assert adapter.limits.max_joint_velocity == CALIBRATION_JOINT_VELOCITY_RAD_S
    monkeypatch.setattr("builtins.input", lambda text: "")
    board_pose = ([0.5, 0.0, 0.3], Rotation.from_euler("x", 30, degrees=True).as_quat())  # tilted board: allowed
    rig.robot.move_to(board_pose, speed=0.2)
    params = [c[1] for c in world.calls if c[0] == "plan"][-1]
    assert params.max_velocity_scaling_factor == pytest.approx(0.2 * CALIBRATION_SPEED_MPS / 0.25)  # slowed
    assert len(world.executed) == 1 and world.path_constraints == []  # nothing held: no tool-down constraint
    with pytest.raises(SafetyError, match="below the minimum"):
        rig.robot.move_to(([0.5, 0.0, 0.02], [0, 0, 0, 1]), speed=0.05)
    assert len(world.executed) == 1
    rig.close()
    assert calls[-4:] == ["camera_close", "executor_shutdown", "destroy_node", "rclpy_shutdown"]


def test_real_rig_uses_the_calibrations_envelope_for_the_touch_test(real_rig_world, tmp_path):
    from sim2real.calibration.storage import Calibration, save_calibration
    from sim2real.camera import CameraIntrinsics
    from sim2real.cli.calibrate import _real_rig
    from sim2real.robot_config import load_robot_config

    world, calls = real_rig_world
    T_bw = np.eye(4)
    T_bw[:3, 3] = [0.05, 0.0, 0.01]
    from sim2real.workspace import GENSIM_WORKSPACE

    cal = Calibration("c", np.eye(4), CameraIntrinsics(64, 48, 60.0, 60.0, 32.0, 24.0), workspace=GENSIM_WORKSPACE,
                      T_base_workspace=T_bw)
    path = save_calibration(cal, tmp_path / "c.yaml")
    rig = _real_rig(SimpleNamespace(serial=None, calibration=str(path)), "ur5")
    assert rig.robot.envelope == load_robot_config("ur5").safety_envelope().in_frame(T_bw)  # reach from the base
    np.testing.assert_allclose(rig.robot.T, np.linalg.inv(T_bw))
    np.testing.assert_allclose(rig.robot.robot.robot.adapter.T_workspace_base.translation, [-0.05, 0.0, -0.01])
    rig.close()
