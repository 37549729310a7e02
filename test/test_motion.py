"""The pure pick-and-place plan and its executor (no simulator)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from sim2real.errors import PlanningError
from sim2real.motion import SEGMENTS, MotionConfig, Speeds, estimate_held_height, execute_plan, plan_pick_place
from sim2real.robot import DryRunRobot, RobotState

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


class _Failing(DryRunRobot):
    def move_to(self, pose, speed, linear=False):
        if len(self.commands) > 3:
            raise PlanningError("ik_failed: test")
        super().move_to(pose, speed, linear)


def test_failure_mid_plan_releases_the_tool_and_stops():
    robot = _Failing()
    plan = plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.4, 0.0, 0.0), Q0), MotionConfig(), 0.04)
    with pytest.raises(PlanningError):
        execute_plan(robot, plan)
    assert robot.commands[-2] == {"cmd": "set_suction", "on": False} and robot.commands[-1]["cmd"] == "stop"
