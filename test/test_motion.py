"""The pure pick-and-place plan and its executor (no simulator)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from sim2real.errors import MotionStopped, PlanningError, SafetyError
from sim2real.motion import (SEGMENTS, ExecutionResult, MotionConfig, Speeds, estimate_held_height, execute_plan,
                             go_home, plan_pick_place)
from sim2real.robot import DryRunRobot, RobotState
from sim2real.safety import SafetyEnvelope

ENV = SafetyEnvelope()

Q0 = np.array([0.0, 0.0, 0.0, 1.0])


def test_plan_has_the_eight_segments_with_their_speeds_and_heights():
    cfg = MotionConfig(approach_height=0.1, lift_height=0.2, release_clearance=0.005,
                       speeds=Speeds(approach=0.3, descend=0.04, lift=0.1, transit=0.5, place=0.06, retreat=0.2))
    plan = plan_pick_place(((0.5, 0.1, 0.04), Q0), ((0.4, -0.2, 0.0), Q0), cfg, held_height=0.04)
    assert [w.segment for w in plan] == list(SEGMENTS)
    by = {w.segment: w for w in plan}
    np.testing.assert_allclose(by["approach"].xyz, [0.5, 0.1, 0.14])
    np.testing.assert_allclose(by["descend"].xyz, [0.5, 0.1, 0.04])
    np.testing.assert_allclose(by["lift"].xyz, [0.5, 0.1, 0.24])
    # release: object bottom 5 mm above the place surface, the tool on the object's top
    np.testing.assert_allclose(by["place"].xyz, [0.4, -0.2, 0.045])
    assert by["transit"].xyz[2] >= 0.24 and by["retreat"].xyz[2] == pytest.approx(0.145)
    assert [by[s].speed for s in ("approach", "descend", "lift", "transit", "place", "retreat")] == \
        [0.3, 0.04, 0.1, 0.5, 0.06, 0.2]
    assert by["grasp"].tool == "grasp" and by["release"].tool == "release"
    assert by["descend"].linear and by["place"].linear and not by["transit"].linear


def test_gripper_grasp_depth_lowers_grasp_and_release_points():
    cfg = MotionConfig(grasp_depth=0.02, release_clearance=0.0)
    plan = plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.5, 0.2, 0.0), Q0), cfg, held_height=0.04)
    assert plan[1].xyz[2] == pytest.approx(0.02)
    assert plan[5].xyz[2] == pytest.approx(0.02)


def test_bad_pose_is_a_planning_error():
    with pytest.raises(PlanningError, match="pick pose"):
        plan_pick_place(((0.5, np.nan, 0.0), Q0), ((0.5, 0.0, 0.0), Q0), MotionConfig())


@given(st.floats(0.0, 0.2), st.floats(-0.3, 0.3))
def test_place_point_tracks_held_height_clamped(held, dz):
    cfg = MotionConfig()
    plan = plan_pick_place(((0.5, 0.0, 0.1), Q0), ((0.5, 0.2, 0.05), Q0), cfg, held_height=held)
    h = min(max(held, cfg.min_held_height), cfg.max_held_height)
    assert plan[5].xyz[2] == pytest.approx(0.05 + h + cfg.release_clearance)


def test_held_height_is_top_minus_lowest_surface_around():
    hm = np.zeros((320, 160), np.float32)
    hm[100:113, 50:63] = 0.04
    assert estimate_held_height(hm, (106, 56), 0.003125) == pytest.approx(0.04)
    hm[:, :] += 0.04  # a block standing on a wider platform: the window sees the platform
    assert estimate_held_height(hm, (106, 56), 0.003125, radius_m=0.01) == pytest.approx(0.0)


def test_execute_plan_runs_every_segment_and_stops_in_finally():
    robot = DryRunRobot()
    plan = plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.4, 0.0, 0.0), Q0), MotionConfig(), 0.04)
    result = execute_plan(robot, plan)
    cmds = [c["cmd"] for c in robot.commands]
    assert cmds == ["move_to", "move_to", "set_suction", "move_to", "move_to", "move_to", "set_suction", "move_to", "stop"]
    assert len(result.executed) == 8 and robot.stopped == 1


class _EmptyGrasp(DryRunRobot):
    def state(self):
        s = super().state()
        return RobotState(s.tcp_xyz, s.tcp_quat_xyzw, s.joints, s.suction, None, holding=False)


def test_empty_grasp_skips_transit_and_place_like_cliport():
    robot = _EmptyGrasp()
    plan = plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.4, 0.0, 0.0), Q0), MotionConfig(), 0.04)
    result = execute_plan(robot, plan)
    assert result.aborted == "not_grasped" and result.grasped is False
    assert [w["segment"] for w in result.executed] == ["approach", "descend", "grasp", "lift", "release", "retreat"]


class _FailAt(DryRunRobot):
    """Fails the ``fail_at``-th move_to (0-based) half-way there, like a real arm that stops on a fault."""

    def __init__(self, fail_at, error=None, **kw):
        super().__init__(**kw)
        self.fail_at, self.moves, self.error = fail_at, 0, error or PlanningError("motion_failed: test")

    def move_to(self, pose, speed, linear=False):
        k, self.moves = self.moves, self.moves + 1
        if k == self.fail_at:
            self.commands.append({"cmd": "failed_move"})
            self._xyz = (self._xyz + np.asarray(pose[0], dtype=np.float64)) / 2
            self.failed_xyz = self._xyz.copy()
            raise self.error
        super().move_to(pose, speed, linear)


PLAN = plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.4, 0.0, 0.0), Q0), MotionConfig(), 0.04)
# move_to calls: 0 approach, 1 descend, 2 lift, 3 transit, 4 place, 5 retreat


def _after_failure(robot):
    i = next(i for i, c in enumerate(robot.commands) if c["cmd"] == "failed_move")
    return robot.commands[i + 1:]


def test_failure_before_the_grasp_makes_sure_the_tool_is_off():
    robot, result = _FailAt(1), ExecutionResult()
    with pytest.raises(PlanningError):
        execute_plan(robot, PLAN, ENV, result=result)
    assert [c["cmd"] for c in _after_failure(robot)] == ["stop", "set_suction", "stop"]
    assert result.holding is False and "nothing held" in result.recovery


@pytest.mark.parametrize("fail_at, height", [(2, PLAN[2].xyz[2]), (4, PLAN[6].xyz[2])])
def test_failure_while_holding_over_the_pick_or_place_lowers_straight_down_then_releases(fail_at, height):
    robot, result = _FailAt(fail_at), ExecutionResult()
    with pytest.raises(PlanningError, match="motion_failed"):
        execute_plan(robot, PLAN, ENV, result=result)
    after = _after_failure(robot)
    assert [c["cmd"] for c in after] == ["stop", "move_to", "set_suction", "stop"]
    lower = after[1]
    assert lower["linear"] and lower["xyz"][2] == pytest.approx(height)
    assert lower["xyz"][:2] == pytest.approx(robot.failed_xyz[:2])  # straight down from where it stopped
    assert after[2] == {"cmd": "set_suction", "on": False}
    assert result.holding is False and "released" in result.recovery


def test_failure_in_transit_holds_the_object_and_reports():
    robot, result = _FailAt(3), ExecutionResult()
    with pytest.raises(PlanningError):
        execute_plan(robot, PLAN, ENV, result=result)
    after = _after_failure(robot)
    assert [c["cmd"] for c in after] == ["stop", "stop"]  # no release in mid-air
    assert result.holding is None and "holding" in result.recovery and "not over" in result.recovery


def test_failure_where_lowering_leaves_the_envelope_holds():
    strict = SafetyEnvelope(min_height_m=0.1)  # the release point (46 mm) is now below the floor
    robot, result = _FailAt(4), ExecutionResult()
    with pytest.raises(PlanningError):
        execute_plan(robot, PLAN, strict, result=result)
    assert [c["cmd"] for c in _after_failure(robot)] == ["stop", "stop"]
    assert "holding" in result.recovery and "below the minimum" in result.recovery


def test_grasp_feedback_empty_after_failure_just_releases():
    class Dropped(_FailAt):
        def state(self):
            s = super().state()
            return RobotState(s.tcp_xyz, s.tcp_quat_xyzw, s.joints, s.suction, None,
                              holding=None if self.moves <= 3 else False)
    robot, result = Dropped(3), ExecutionResult()
    with pytest.raises(PlanningError):
        execute_plan(robot, PLAN, ENV, result=result)
    assert [c["cmd"] for c in _after_failure(robot)] == ["stop", "set_suction", "stop"]
    assert result.holding is False


def test_grasp_feedback_is_used_after_the_lift():
    robot = DryRunRobot(holding=True)
    result = execute_plan(robot, PLAN, ENV)
    assert result.grasped is True and result.holding is False
    robot = DryRunRobot(holding=False)
    result = execute_plan(robot, PLAN, ENV)
    assert result.grasped is False and result.aborted == "not_grasped"


def test_operator_stop_holds_where_it_is():
    robot, result = _FailAt(4, error=MotionStopped("stop pressed")), ExecutionResult()
    with pytest.raises(MotionStopped):
        execute_plan(robot, PLAN, ENV, result=result)
    assert [c["cmd"] for c in _after_failure(robot)] == ["stop"]
    assert "stopped" in result.recovery and result.holding is None


def test_unreadable_state_after_failure_holds():
    class Blind(_FailAt):
        def state(self):
            if self.moves > self.fail_at:
                raise RuntimeError("no joint states")
            return super().state()
    robot, result = Blind(4), ExecutionResult()
    with pytest.raises(PlanningError):
        execute_plan(robot, PLAN, ENV, result=result)
    assert [c["cmd"] for c in _after_failure(robot)] == ["stop", "stop"] and "holding" in result.recovery


# -- homing goes through the envelope ------------------------------------------------------------------------
def test_go_home_lifts_straight_up_first_when_low_then_homes():
    robot = DryRunRobot()  # home is (0.3, 0, 0.4)
    robot.move_to(((0.5, 0.1, 0.05), Q0), 0.1)  # e.g. after an aborted step, low over the table
    robot.commands.clear()
    go_home(robot, ENV, clearance=0.15)
    cmds = robot.commands
    assert [c["cmd"] for c in cmds] == ["move_to", "home"]
    assert cmds[0]["xyz"] == pytest.approx([0.5, 0.1, 0.15]) and cmds[0]["linear"]
    robot.commands.clear()
    go_home(robot, ENV, clearance=0.15)  # already high (at home): just the joint move
    assert [c["cmd"] for c in robot.commands] == ["home"]


def test_go_home_refuses_an_unsafe_lift_or_unknown_pose():
    robot = DryRunRobot(home_xyz=(0.9, 0.0, 0.05))  # outside the box: the lift is not checked safe
    with pytest.raises(SafetyError, match="outside the workspace"):
        go_home(robot, ENV, clearance=0.15)
    robot = DryRunRobot(home_xyz=(np.nan, 0.0, 0.05))
    with pytest.raises(SafetyError, match="finite"):
        go_home(robot, ENV, clearance=0.15)
    assert robot.commands == []


def test_estimate_held_height_off_grid_is_a_planning_error():
    hm = np.zeros((320, 160))
    for pixel in ((-500, 3), (10, 10_000), (np.nan, 3), (1e300, 0)):
        with pytest.raises(PlanningError, match="pixel"):
            estimate_held_height(hm, pixel, 0.003125)


def test_go_home_names_a_robot_without_home():
    class Legacy:
        tool = "suction"

        def state(self):
            return DryRunRobot().state()
    from sim2real.errors import HardwareError

    with pytest.raises(HardwareError, match="Legacy has no home"):
        go_home(Legacy(), ENV, clearance=0.15)


def test_a_tripped_stop_latch_refuses_every_command_until_reset():
    """StopLatch: the operator's stop holds between motions; the routine stop() of a finally does not."""
    from sim2real.robot import StopLatch

    inner = DryRunRobot()
    robot = StopLatch(inner)
    plan = plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.4, 0.0, 0.0), Q0), MotionConfig(), 0.04)
    execute_plan(robot, plan)  # its finally stop() is routine: the next plan runs
    execute_plan(robot, plan)
    assert [c["cmd"] for c in inner.commands].count("move_to") == 12 and not robot.tripped
    n = len(inner.commands)
    robot.trip()
    assert robot.tripped and inner.commands[n:] == [{"cmd": "stop"}]
    for command in (lambda: robot.move_to(((0.5, 0.0, 0.2), Q0), 0.1), robot.home, lambda: robot.set_suction(False),
                    lambda: robot.set_gripper(False)):
        with pytest.raises(MotionStopped, match="operator stopped"):
            command()
    with pytest.raises(MotionStopped):
        execute_plan(robot, plan)
    assert all(c["cmd"] == "stop" for c in inner.commands[n:])  # nothing moved, nothing released
    assert robot.commands is inner.commands and robot.tool == inner.tool  # the rest is the wrapped robot's
    robot.reset()
    robot.move_to(((0.5, 0.0, 0.2), Q0), 0.1)
    assert inner.commands[-1]["cmd"] == "move_to"
