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
