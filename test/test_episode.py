"""The episode loop with fake ports: every way a step can end is recorded, nothing raises."""
import json

import numpy as np
import pytest

from sim2real.action import PickPlaceAction, PixelPose, quat_xyzw_from_theta
from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.episode import run_episode
from sim2real.errors import HardwareError, MotionStopped, PlanningError
from sim2real.robot import DryRunRobot
from sim2real.twin.camera import look_at
from sim2real.workspace import GENSIM_WORKSPACE

K = CameraIntrinsics(64, 48, 60.0, 60.0, 32.0, 24.0)


def _motions(robot):
    """Commands that move the arm or the tool towards the scene (homing excluded)."""
    return [c for c in robot.commands if c["cmd"] not in ("home", "stop")]


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
    assert _motions(robot) == [] and not steps[0].safety["ok"]
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
    assert res.reason == "ik_failed" and robot.stopped >= 1
    assert robot.commands[-1]["cmd"] == "home"  # nothing held: it leaves the camera's view again


def test_without_success_check_the_operator_labels():
    res = run_episode(FlatCamera(), FixedPolicy(), DryRunRobot(), "g", max_steps=2)
    assert res.success is None and res.steps == 2 and res.reason == "done"


def test_already_done_scene_takes_no_step():
    robot = DryRunRobot()
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=3, success_check=lambda: (True, 1.0))
    assert (res.success, res.steps, res.reason) == (True, 0, "success") and robot.commands == []


# -- issue 10: bad actions never raise out of the loop ---------------------------------------------------------
class RawPolicy:
    """Returns a hand-made action (or anything else) without validation."""

    name = "raw"

    def __init__(self, action):
        self.action = action

    def act(self, obs, goal, **kw):
        return self.action


def _pp(pixel=(160, 80), xyz=(0.5, 0.0, 0.04), quat=(0, 0, 0, 1.0)):
    return PixelPose(pixel, 0.0, np.asarray(xyz, dtype=float), np.asarray(quat, dtype=float))


GOOD_PLACE = _pp((100, 80), (0.4, 0.0, 0.0))


@pytest.mark.parametrize("action, reason, fragment", [
    (PickPlaceAction(_pp(pixel=(-40, 9999)), GOOD_PLACE), "planning_failed", "off the 320x160"),
    (PickPlaceAction(_pp(pixel=(np.nan, 3)), GOOD_PLACE), "planning_failed", "off the"),
    (PickPlaceAction(_pp(quat=(0, 0, 0, 0)), GOOD_PLACE), "planning_failed", "unit quaternion"),
    (PickPlaceAction(_pp(quat=(0, 0, 1e-200, 1e-200)), GOOD_PLACE), "planning_failed", "unit quaternion"),
    (PickPlaceAction(_pp(), _pp((100, 80), (0.4, np.inf, 0.0))), "planning_failed", "finite"),
    (PickPlaceAction(_pp(), _pp((100, 80), (0.4, 0.0, 0.0), (0.3, 0, 0, 0.95))), "planning_failed", "unit quaternion"),
    (PickPlaceAction(_pp(), _pp((100, 80), (0.4, 0.0, 0.0), np.array([0.3, 0, 0, 0.95]) / np.hypot(0.3, 0.95))),
     "safety_stop", "tilted"),
    (None, "policy_error", "invalid action"),
    ("pick the red block", "policy_error", "invalid action"),
])
def test_bad_actions_end_the_step_with_a_recorded_reason(action, reason, fragment):
    robot, steps = DryRunRobot(), []
    res = run_episode(FlatCamera(), RawPolicy(action), robot, "g", max_steps=3, success_check=lambda: (False, 0.0),
                      on_step=steps.append)
    assert res.reason == reason and res.steps == 1 and _motions(robot) == []
    assert fragment in steps[0].error, steps[0].error
    json.dumps(steps[0].to_dict())  # a bad action is still loggable


class BrokenDriver(DryRunRobot):
    def move_to(self, pose, speed, linear=False):
        if pose[0][2] < 0.1:
            raise RuntimeError("driver: connection reset")
        super().move_to(pose, speed, linear)


def test_a_robot_fault_that_is_not_ours_is_recorded_not_raised():
    robot, steps = BrokenDriver(), []
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=3, success_check=lambda: (False, 0.0),
                      on_step=steps.append)
    assert res.reason == "robot_error" and "connection reset" in steps[0].error and robot.stopped >= 1


class Interrupted(DryRunRobot):
    def move_to(self, pose, speed, linear=False):
        raise KeyboardInterrupt


def test_keyboard_interrupt_propagates_after_stopping_the_arm():
    robot = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=3)
    assert robot.commands[-1]["cmd"] == "stop"


# -- issue 10: capture only with the arm at home and still -------------------------------------------------------
class WatchingCamera(FlatCamera):
    """Records, at every read, the robot's last motion command (must be a finished home)."""

    def __init__(self, robot):
        super().__init__()
        self.robot, self.seen = robot, []

    def read(self, timeout_s=1.0):
        moves = [c["cmd"] for c in self.robot.commands if c["cmd"] in ("home", "move_to")]
        self.seen.append(moves[-1] if moves else None)
        return super().read(timeout_s)


def test_home_before_the_first_capture_and_after_every_step():
    robot = DryRunRobot()
    camera = WatchingCamera(robot)
    res = run_episode(camera, FixedPolicy(), robot, "g", max_steps=3)
    assert res.steps == 3 and camera.seen == ["home", "home", "home"]
    assert [c["cmd"] for c in robot.commands].count("home") == 4
    assert robot.commands[0]["cmd"] == "home"


class StopsOnPlace(DryRunRobot):
    def move_to(self, pose, speed, linear=False):
        if len([c for c in self.commands if c["cmd"] == "move_to"]) == 4:
            self.commands.append({"cmd": "move_to", "xyz": list(pose[0])})
            raise MotionStopped("move_to interrupted by stop()")
        super().move_to(pose, speed, linear)


def test_operator_stop_ends_with_reason_stopped_and_nothing_moves_after():
    robot, steps = StopsOnPlace(), []
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=3, on_step=steps.append)
    assert res.reason == "stopped" and res.steps == 1
    after = robot.commands[[i for i, c in enumerate(robot.commands) if c["cmd"] == "move_to"][-1] + 1:]
    assert [c["cmd"] for c in after] == ["stop"]  # no release, no homing
    assert "stopped" in steps[0].info["recovery"] and steps[0].info["holding"] is None


def test_homing_refused_before_the_first_capture_takes_no_step():
    robot = DryRunRobot(home_xyz=(np.nan, 0.0, 0.1))
    camera = FlatCamera()
    res = run_episode(camera, FixedPolicy(), robot, "g", max_steps=3, success_check=lambda: (False, 0.0))
    assert res.reason == "safety_stop" and res.steps == 0 and camera.reads == 0
    assert "homing" in res.info["error"]
