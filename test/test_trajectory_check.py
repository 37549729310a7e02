"""sim2real.trajectory_check: the envelope applied to every sample of a planned motion (pure, no ROS)."""
import numpy as np
import pytest

from sim2real.safety import SafetyEnvelope
from sim2real.trajectory_check import MotionLimits, TrajectorySamples, check_trajectory

ENV = SafetyEnvelope()
DOWN = np.array([0.0, 0.0, 0.0, 1.0])


def line(a, b, n=11, duration=1.0, quat=DOWN):
    a, b = np.asarray(a, float), np.asarray(b, float)
    f = np.linspace(0, 1, n)[:, None]
    xyz = a + f * (b - a)
    joints = np.hstack([xyz, np.zeros((n, 3))])  # any joint rows moving with the tool
    return TrajectorySamples(np.linspace(0, duration, n), xyz, np.tile(quat, (n, 1)), joints)


def test_a_slow_motion_inside_the_envelope_passes():
    verdict = check_trajectory(line([0.4, 0.0, 0.2], [0.6, 0.1, 0.2]), ENV)
    assert verdict.ok and verdict.reasons == ()


@pytest.mark.parametrize("field, value, reason", [
    ("tcp_xyz", np.nan, "position"),
    ("tcp_xyz", np.inf, "position"),
    ("tcp_quat_xyzw", np.nan, "non-finite"),
    ("joints", np.nan, "non-finite"),
    ("times_s", np.nan, "non-finite"),
])
def test_non_finite_samples_fail_closed(field, value, reason):
    s = line([0.4, 0.0, 0.2], [0.6, 0.1, 0.2])
    arr = np.array(getattr(s, field), float)
    arr[5] = value
    bad = TrajectorySamples(**{**s.__dict__, field: arr})
    verdict = check_trajectory(bad, ENV)
    assert not verdict.ok


def test_zero_and_non_unit_quaternions_are_refused():
    for q in ([0, 0, 0, 0], [0, 0, 0, 2.0], [1e-200, 0, 0, 1e-200]):
        verdict = check_trajectory(line([0.4, 0, 0.2], [0.5, 0, 0.2], quat=np.array(q, float)), ENV, holding=False)
        assert not verdict.ok and "unit quaternion" in verdict.reasons[0]


def test_time_going_backwards_and_moving_in_zero_time_are_refused():
    s = line([0.4, 0, 0.2], [0.5, 0, 0.2])
    t = s.times_s.copy()
    t[3] = t[2] - 0.1
    assert "backwards" in check_trajectory(TrajectorySamples(**{**s.__dict__, "times_s": t}), ENV).reasons[0]
    t = s.times_s.copy()
    t[4] = t[3]
    verdict = check_trajectory(TrajectorySamples(**{**s.__dict__, "times_s": t}), ENV)
    assert any("infinite speed" in r for r in verdict.reasons)


def test_tool_speed_and_joint_speed_are_measured():
    fast = line([0.4, 0, 0.2], [0.6, 0, 0.2], duration=0.1)  # 2 m/s
    verdict = check_trajectory(fast, ENV)
    assert any("tool point speed 2.000 m/s" in r for r in verdict.reasons)
    assert any("joint speed" in r for r in verdict.reasons)
    slow = line([0.4, 0, 0.2], [0.6, 0, 0.2], duration=1.0)
    stated = np.full_like(slow.joints, 5.0)  # the trajectory says it runs its joints at 5 rad/s
    verdict = check_trajectory(TrajectorySamples(**{**slow.__dict__, "joint_velocities": stated}), ENV)
    assert any("joint speed 5.000 rad/s" in r for r in verdict.reasons)
    assert check_trajectory(slow, ENV, limits=MotionLimits(max_joint_velocity=0.1)).ok is False


def test_home_region_checks_floor_and_ceiling_not_the_box():
    outside = line([0.1, -0.6, 0.3], [0.1, -0.7, 0.3])  # out of the box and inside reach_min: the way home
    assert not check_trajectory(outside, ENV).ok
    assert check_trajectory(outside, ENV, region="home").ok
    under = line([0.1, -0.6, 0.3], [0.1, -0.7, -0.05])
    assert any("below the minimum" in r for r in check_trajectory(under, ENV, region="home").reasons)


def test_many_violations_are_summarised():
    verdict = check_trajectory(line([0.4, 0, -0.1], [0.6, 0, -0.1], n=50), ENV)
    assert len(verdict.reasons) == 7 and verdict.reasons[-1].startswith("... and 44 more")


def test_malformed_samples_are_a_refusal():
    s = line([0.4, 0, 0.2], [0.5, 0, 0.2])
    assert not check_trajectory(TrajectorySamples(s.times_s, s.tcp_xyz[:, :2], s.tcp_quat_xyzw, s.joints), ENV).ok
    empty = TrajectorySamples(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 6)))
    assert "no samples" in check_trajectory(empty, ENV).reasons[0]
