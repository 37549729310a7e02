"""The episode loop with fake ports: every way a step can end is recorded, nothing raises."""
import numpy as np

from sim2real.action import PickPlaceAction, PixelPose, quat_xyzw_from_theta
from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.episode import run_episode
from sim2real.errors import HardwareError, PlanningError
from sim2real.robot import DryRunRobot
from sim2real.twin.camera import look_at
from sim2real.workspace import GENSIM_WORKSPACE

K = CameraIntrinsics(64, 48, 60.0, 60.0, 32.0, 24.0)


class FlatCamera:
    """A camera 1 m above the workspace centre looking down at a flat table."""

    def __init__(self, fail=False):
        self.fail, self.reads = fail, 0

    def read(self, timeout_s=1.0):
        self.reads += 1
        if self.fail:
            raise HardwareError("no frame")
        return RGBDFrame(np.full((48, 64, 3), 128, np.uint8), np.ones((48, 64), np.float32), K,
                         T_base_camera=look_at((0.5, 0.0, 1.0), (0.5, 0.0, 0.0), up=(1, 0, 0)))

    def close(self):
        pass


class FixedPolicy:
    name = "fixed"

    def __init__(self, pick=(0.5, 0.0, 0.04), place=(0.4, 0.2, 0.0), error=None):
        self.pick, self.place, self.error, self.goals = pick, place, error, []

    def act(self, obs, goal, **kw):
        self.goals.append(goal)
        if self.error:
            raise self.error
        pp = lambda xyz: PixelPose(GENSIM_WORKSPACE.xyz_to_pix(xyz), 0.0, np.array(xyz), quat_xyzw_from_theta(0.0))
        return PickPlaceAction(pp(self.pick), pp(self.place))


def test_success_after_two_steps_records_every_step():
    calls, steps = [], []

    def check():
        calls.append(1)  # called once before the first step, then after each step
        return len(calls) >= 3, 0.5 * (len(calls) - 1)
    robot = DryRunRobot()
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "do it", max_steps=5, success_check=check, on_step=steps.append)
    assert (res.success, res.steps, res.reason) == (True, 2, "success")
    assert [s.step for s in steps] == [0, 1] and steps[0].safety["ok"] and steps[0].observation.height.shape == (320, 160)
    assert set(steps[0].timings) == {"capture_s", "heightmap_s", "policy_s", "motion_s"}
    assert robot.stopped == 2


def test_unsafe_action_is_refused_and_robot_never_commanded():
    robot, steps = DryRunRobot(), []
    res = run_episode(FlatCamera(), FixedPolicy(place=(0.9, 0.0, 0.0)), robot, "g", max_steps=5,
                      success_check=lambda: (False, 0.0), on_step=steps.append)
    assert res.reason == "safety_stop" and res.steps == 1 and res.success is False
    assert robot.commands == [] and not steps[0].safety["ok"]
    assert "outside the workspace" in steps[0].error


def test_policy_error_and_camera_loss_end_cleanly():
    res = run_episode(FlatCamera(), FixedPolicy(error=ValueError("boom")), DryRunRobot(), "g", max_steps=3,
                      success_check=lambda: (False, 0.0))
    assert res.reason == "policy_error" and res.success is False
    res = run_episode(FlatCamera(fail=True), FixedPolicy(), DryRunRobot(), "g", max_steps=3,
                      success_check=lambda: (False, 0.0))
    assert res.reason == "camera_lost"


class IKFailRobot(DryRunRobot):
    def move_to(self, pose, speed, linear=False):
        raise PlanningError("ik_failed: unreachable")


def test_ik_failure_ends_the_episode_with_its_reason():
    robot = IKFailRobot()
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=3, success_check=lambda: (False, 0.0))
    assert res.reason == "ik_failed" and robot.stopped == 1


def test_without_success_check_the_operator_labels():
    res = run_episode(FlatCamera(), FixedPolicy(), DryRunRobot(), "g", max_steps=2)
    assert res.success is None and res.steps == 2 and res.reason == "done"


def test_already_done_scene_takes_no_step():
    robot = DryRunRobot()
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=3, success_check=lambda: (True, 1.0))
    assert (res.success, res.steps, res.reason) == (True, 0, "success") and robot.commands == []
