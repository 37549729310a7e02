"""The safety envelope refuses bad targets before anything moves."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from sim2real.errors import SafetyError
from sim2real.motion import MotionConfig, plan_pick_place
from sim2real.safety import SafetyEnvelope, check_plan, check_target, tilt_deg
from sim2real.action import quat_xyzw_from_theta

Q0 = np.array([0.0, 0.0, 0.0, 1.0])
ENV = SafetyEnvelope(margin_m=0.02, min_height_m=0.003, max_height_m=0.6, max_tilt_deg=10, reach_min_m=0.15,
                     reach_max_m=0.85, max_speed=1.0)


def test_good_plan_passes():
    plan = plan_pick_place(((0.5, 0.1, 0.04), Q0), ((0.4, -0.2, 0.0), quat_xyzw_from_theta(1.0)), MotionConfig(), 0.04)
    v = check_plan(plan, ENV)
    assert v.ok and v.reasons == ()


@pytest.mark.parametrize("xyz, quat, speed, fragment", [
    ((0.9, 0.0, 0.1), Q0, 0.1, "outside the workspace"),
    ((0.5, -0.6, 0.1), Q0, 0.1, "outside the workspace"),
    ((0.5, 0.0, 0.001), Q0, 0.1, "below the minimum"),
    ((0.5, 0.0, 0.7), Q0, 0.1, "above the maximum"),
    ((0.5, 0.0, 0.1), (np.sin(0.25), 0.0, 0.0, np.cos(0.25)), 0.1, "tilted"),
    ((0.74, 0.5, 0.1), Q0, 0.1, "outside the reach"),
    ((0.5, 0.0, 0.1), Q0, 3.0, "exceeds"),
    ((0.5, np.nan, 0.1), Q0, 0.1, "not 3 finite"),
])
def test_each_violation_is_named(xyz, quat, speed, fragment):
    reasons = check_target(xyz, quat, speed, ENV, "t")
    assert any(fragment in r for r in reasons), reasons


def test_unreachable_by_ik_is_refused_and_verdict_raises():
    plan = plan_pick_place(((0.5, 0.1, 0.04), Q0), ((0.4, -0.2, 0.0), Q0), MotionConfig(), 0.04)
    v = check_plan(plan, ENV, reachable=lambda pose: pose[0][1] > 0)
    assert not v.ok and all("inverse-kinematics" in r for r in v.reasons)
    assert len(v.reasons) == 4  # transit, place, release, retreat are at y = -0.2
    with pytest.raises(SafetyError, match="did not move"):
        v.raise_if_unsafe()


@given(st.floats(0.27, 0.73), st.floats(-0.48, 0.48), st.floats(0.004, 0.59), st.floats(-np.pi, np.pi))
def test_any_level_target_inside_the_box_and_reach_is_safe(x, y, z, yaw):
    reasons = check_target((x, y, z), quat_xyzw_from_theta(yaw), 0.5, ENV)
    in_reach = 0.15 <= np.hypot(x, y) <= 0.85
    assert (reasons == []) == in_reach


def test_tilt_of_level_tool_is_zero_for_any_yaw():
    for yaw in np.linspace(-3, 3, 7):
        assert tilt_deg(quat_xyzw_from_theta(yaw)) == pytest.approx(0.0, abs=1e-6)


# -- issue 10: every check fails closed -------------------------------------------------------------------
TINY = np.array([0.0, 0.0, 1e-200, 1e-200])  # finite, but its squared norm underflows to 0


@pytest.mark.parametrize("quat, fragment", [
    (TINY, "unit quaternion"),
    ((0.0, 0.0, 0.0, 0.0), "unit quaternion"),
    ((0.0, 0.0, 0.0, 2.0), "unit quaternion"),
    ((0.0, 0.0, 0.0, 0.5), "unit quaternion"),
    ((np.nan, 0.0, 0.0, 1.0), "unit quaternion"),
    ((np.inf, 0.0, 0.0, 1.0), "unit quaternion"),
    ((5e-324, 0.0, 0.0, 5e-324), "unit quaternion"),
    ((0.0, 0.0, 1.0), "unit quaternion"),
])
def test_degenerate_quaternions_are_refused(quat, fragment):
    reasons = check_target((0.5, 0.0, 0.1), quat, 0.1, ENV, "t")
    assert reasons and any(fragment in r for r in reasons), reasons


@pytest.mark.parametrize("xyz, speed", [
    ((np.inf, 0.0, 0.1), 0.1), ((0.5, 0.0, -np.inf), 0.1), ((1e308, 1e308, 0.1), 0.1),
    ((0.5, 0.0, 0.1), np.nan), ((0.5, 0.0, 0.1), np.inf), ((0.5, 0.0, 0.1), -0.1),
])
def test_non_finite_or_huge_values_are_refused(xyz, speed):
    assert check_target(xyz, Q0, speed, ENV, "t")


def test_tilt_of_degenerate_quaternion_is_not_a_number_that_passes():
    for q in (TINY, (0, 0, 0, 0), (np.nan, 0, 0, 1)):
        t = tilt_deg(q)
        assert not t <= 10.0  # NaN (or inf): any "tilt <= max" comparison refuses


def test_plan_of_underflowing_quaternion_is_refused_not_inf():
    from sim2real.errors import PlanningError

    with pytest.raises(PlanningError, match="unit quaternion"):
        plan_pick_place(((0.5, 0.0, 0.04), TINY), ((0.4, 0.0, 0.0), Q0), MotionConfig())
    with pytest.raises(PlanningError, match="unit quaternion"):
        plan_pick_place(((0.5, 0.0, 0.04), Q0), ((0.4, 0.0, 0.0), (0, 0, 0, 0)), MotionConfig())
    # a unit quaternion that is slightly off (float32 round-off) is renormalised exactly
    plan = plan_pick_place(((0.5, 0.0, 0.04), np.float32([0, 0, 0.6, 0.8])), ((0.4, 0.0, 0.0), Q0), MotionConfig())
    assert abs(np.linalg.norm(plan[0].quat_xyzw) - 1.0) < 1e-12


# -- issue 10: reach from the real base ---------------------------------------------------------------------
def _offset_T(dx, dy=0.0):
    T = np.eye(4)
    T[:2, 3] = (dx, dy)
    return T


def test_reach_is_measured_from_the_base_in_the_plan_frame():
    """`calibrate table --offset 0.25,0`: workspace x = 0.765 is 1.015 m from a UR5's base."""
    from sim2real.robot_config import load_robot_config

    ur5 = load_robot_config("ur5").safety_envelope()
    T_bw = _offset_T(0.25)  # workspace frame -> base frame
    target = (0.765, 0.0, 0.1)
    assert (T_bw @ (*target, 1.0))[0] == pytest.approx(1.015)
    assert check_target(target, Q0, 0.1, ur5) == []  # without the calibration it looked fine
    env = ur5.in_frame(T_bw)
    reasons = check_target(target, Q0, 0.1, env)
    assert any("1.015 m from the base axis" in r for r in reasons), reasons
    assert env.base_xy == pytest.approx((-0.25, 0.0))
    # a target right in front of the real base is fine, and so is the identity calibration
    assert check_target((0.3, 0.0, 0.1), Q0, 0.1, env) == []
    assert ur5.in_frame(None) == ur5 and check_target(target, Q0, 0.1, ur5.in_frame(np.eye(4))) == []


def test_reach_uses_the_calibration_rotation_too():
    yaw = np.eye(4)
    yaw[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # workspace x is the base's y
    yaw[:3, 3] = (0.0, 0.3, 0.0)
    env = ENV.in_frame(yaw)
    # workspace (0.6, 0) -> base (0, 0.9): 0.9 m out
    assert any("0.900 m from the base axis" in r for r in check_target((0.6, 0.0, 0.1), Q0, 0.1, env))
    with pytest.raises(Exception, match="T_base_plan"):
        ENV.in_frame(np.full((4, 4), np.nan))


@given(st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: np.linalg.norm(q) > 0.1))
def test_tilt_matches_scipy_for_any_rotation(q):
    from scipy.spatial.transform import Rotation

    q = np.asarray(q) / np.linalg.norm(q)
    z = Rotation.from_quat(q).apply([0.0, 0.0, 1.0])
    assert tilt_deg(q) == pytest.approx(np.degrees(np.arccos(np.clip(z[2], -1, 1))), abs=1e-5)
