"""`sim2real run --robot <arm>`'s robot (FrameRobot over MoveItRobot) in the episode loop: the arm
homes through the checked MoveIt path after each step (fake moveit_py, test/moveit_fakes.py;
moveit_py is not installable here)."""
import dataclasses

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore
from scipy.spatial.transform import Rotation

from moveit_fakes import SCENE_MSGS, FakeWorld, joints_of
from sim2real.episode import run_episode
from sim2real.robot import RobotPort
from sim2real.robot_config import load_robot_config
from sim2real.ros import moveit_adapter as ma
from sim2real.ros.conversions import MsgTypes
from sim2real.ros.moveit_robot import FrameRobot, MoveItRobot
from sim2real.workspace import GENSIM_WORKSPACE
from test_episode import FixedPolicy, FlatCamera

FAKE_HOME = tuple(joints_of([0.4, 0.0, 0.45], Rotation.from_euler("x", np.pi).as_quat()))


@pytest.fixture(autouse=True)
def _fresh_registry():
    ma.forget_instances()
    yield
    ma.forget_instances()


class Gripper:
    def __init__(self):
        self.calls = []

    def set(self, closed):
        self.calls.append(closed)


def test_run_episode_homes_the_moveit_arm_after_each_step():
    world = FakeWorld("jazzy")
    config = dataclasses.replace(load_robot_config("ur5"), home_joints=FAKE_HOME)
    envelope = config.safety_envelope(GENSIM_WORKSPACE)
    adapter = ma.MoveItAdapter(config, api=world.api, msg_types=MsgTypes.from_typestore(get_typestore(
        Stores.ROS2_JAZZY)), scene_msgs=SCENE_MSGS, flavour="jazzy", envelope=envelope).connect()
    robot = FrameRobot(MoveItRobot(config, adapter, Gripper()), None)
    assert isinstance(robot, RobotPort)  # home() and stop() of the protocol
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", envelope=envelope, max_steps=1,
                      success_check=lambda: (False, 0.0))
    assert res.steps == 1
    goals = [c for c in world.calls if c[0] == "goal"]
    assert "robot_state" in goals[-1][1]  # the last motion is the joint-space move home ...
    np.testing.assert_allclose(goals[-1][1]["robot_state"].q, FAKE_HOME)
    np.testing.assert_allclose(world.current, FAKE_HOME)  # ... executed, and the arm is there
    assert sum(1 for g in goals if "pose_stamped_msg" in g[1]) >= 6  # after the pick and place itself
