"""The safety envelope applied to a whole planned motion, not just its end points.

A planner (MoveIt's OMPL, Pilz LIN) returns a joint trajectory; between the 8 checked targets of a
pick and place it can swing the tool out of the workspace, under the table, tilt what is held or
move faster than asked. This module checks *sampled* poses of the planned trajectory (the caller
samples it: forward kinematics of the joint trajectory, see
:meth:`sim2real.ros.moveit_adapter.MoveItAdapter.trajectory_samples`) and returns one verdict.
It is pure: no ROS, no robot; nothing moves.

Checks, on every sample (tool point, workspace frame, CLIPort orientation: identity = down):

* the tool pose is finite and the quaternion is a unit quaternion;
* inside the envelope (``region='workspace'``: box, floor, ceiling, reach; per point the same
  :func:`sim2real.safety.check_target` the waypoint plan uses), or for a move home
  (``region='home'``, home is outside the camera's view and so outside the box) the floor and
  ceiling only;
* tool tilt within ``max_tilt_deg`` while something is (or may be) held;
* joint speed (the trajectory's own velocities and the finite differences of its positions) at
  most ``max_joint_velocity`` rad/s, and tool-point speed (finite differences of the sampled
  positions) at most the envelope's ``max_speed`` m/s: measured on the trajectory, not the
  speed that was requested.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sim2real.safety import SafetyEnvelope, SafetyVerdict, check_target, tilt_deg, unit_quaternion

MAX_JOINT_VELOCITY_RAD_S = 1.0
"""Default joint speed limit (rad/s) of a checked trajectory: about a third of a UR5's / xArm's
joint limit (3.14 rad/s), above what the configs' velocity scaling (0.2) plans."""

CALIBRATION_JOINT_VELOCITY_RAD_S = 0.5
"""Joint speed limit while calibrating (slow: the arm moves near a person and a tripod)."""

MAX_REASONS = 6
"""Reasons listed per verdict; the rest are counted (a bad trajectory fails at many samples)."""

_IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


@dataclass(frozen=True)
class MotionLimits:
    """Limits measured on a trajectory.

    Attributes:
        max_joint_velocity: rad/s, every joint.
        max_tcp_speed: m/s of the tool point; None = the envelope's ``max_speed``.
    """

    max_joint_velocity: float = MAX_JOINT_VELOCITY_RAD_S
    max_tcp_speed: Optional[float] = None


@dataclass(frozen=True, eq=False)
class TrajectorySamples:
    """A planned trajectory, sampled.

    Attributes:
        times_s: (N,) time from the start of each sample, seconds, non-decreasing.
        tcp_xyz: (N, 3) tool point, metres, in the envelope's (workspace) frame.
        tcp_quat_xyzw: (N, 4) tool orientation, CLIPort convention (identity = pointing down).
        joints: (N, n) joint positions, radians.
        joint_velocities: (N, n) rad/s as the trajectory states them, or None.
    """

    times_s: np.ndarray
    tcp_xyz: np.ndarray
    tcp_quat_xyzw: np.ndarray
    joints: np.ndarray
    joint_velocities: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(np.asarray(self.times_s).shape[0])


def _shape_problem(s: TrajectorySamples) -> Optional[str]:
    n = len(s)
    t, x, q, j = (np.asarray(a, dtype=np.float64) for a in (s.times_s, s.tcp_xyz, s.tcp_quat_xyzw, s.joints))
    if n < 1:
        return "the trajectory has no samples"
    if t.shape != (n,) or x.shape != (n, 3) or q.shape != (n, 4) or j.ndim != 2 or j.shape[0] != n:
        return (f"malformed samples: times {t.shape}, positions {x.shape}, orientations {q.shape}, "
                f"joints {j.shape}")
    if s.joint_velocities is not None and np.asarray(s.joint_velocities).shape != j.shape:
        return f"joint velocities {np.asarray(s.joint_velocities).shape} do not match the joints {j.shape}"
    if not all(np.all(np.isfinite(a)) for a in (t, x, q, j)):
        return "the trajectory has non-finite times, poses or joint positions"
    if np.any(np.diff(t) < 0):
        return "the trajectory's times go backwards"
    return None


def _home_reasons(xyz, quat, env: SafetyEnvelope, label: str) -> list[str]:
    """Floor and ceiling only: the way home leaves the workspace box on purpose."""
    height = float(xyz[2] - env.workspace.bounds[2, 0])
    reasons = []
    if not height >= env.min_height_m:  # `not >=` so NaN fails
        reasons.append(f"{label}: {height * 1000:.1f} mm above the table is below the minimum "
                       f"{env.min_height_m * 1000:.1f} mm")
    if not height <= env.max_height_m:
        reasons.append(f"{label}: {height:.3f} m above the table is above the maximum {env.max_height_m:.3f} m")
    return reasons


def _pose_reasons(xyz, quat, env: SafetyEnvelope, holding: bool, region: str, label: str) -> list[str]:
    unit, why = unit_quaternion(quat)
    if unit is None:
        return [f"{label}: orientation: {why}"]
    quat = unit
    # Tilt only matters while something is held (it would spill or drop); without a load the
    # planner may turn the wrist, so the tilt check sees the identity (down) then.
    q = quat if holding else _IDENTITY
    if region == "home":
        reasons = _home_reasons(xyz, q, env, label)
        tilt = tilt_deg(q)
        if not tilt <= env.max_tilt_deg:
            reasons.append(f"{label}: tool tilted {tilt:.1f} deg from vertical while holding (max {env.max_tilt_deg:.1f})")
        return reasons
    return check_target(xyz, q, 0.0, env, label)  # the quaternion is a finite unit one here


def check_trajectory(samples: TrajectorySamples, envelope: SafetyEnvelope, *, holding: bool = True,
                     region: str = "workspace", limits: MotionLimits = MotionLimits(),
                     label: str = "trajectory") -> SafetyVerdict:
    """Check every sample of a planned trajectory (see the module doc); never moves anything.

    Args:
        samples: the sampled trajectory (workspace frame).
        envelope: the safety envelope (the same one the waypoint plan is checked against).
        holding: True when something is or may be held (grasp feedback unknown): tilt is checked.
        region: 'workspace' (box, floor, ceiling, reach) or 'home' (floor and ceiling only).
        limits: joint and tool-point speed limits.
        label: prefix of every reason (e.g. 'transit trajectory').

    Returns:
        SafetyVerdict: ok, and reasons (at most :data:`MAX_REASONS`, then a count).
    """
    if region not in ("workspace", "home"):
        raise ValueError(f"region must be 'workspace' or 'home', got {region!r}")
    problem = _shape_problem(samples)
    if problem is not None:
        return SafetyVerdict(False, (f"{label}: {problem}",))
    t = np.asarray(samples.times_s, dtype=np.float64)
    xyz = np.asarray(samples.tcp_xyz, dtype=np.float64)
    quat = np.asarray(samples.tcp_quat_xyzw, dtype=np.float64)
    joints = np.asarray(samples.joints, dtype=np.float64)
    reasons: list[str] = []
    for i in range(len(samples)):
        reasons += _pose_reasons(xyz[i], quat[i], envelope, holding, region, f"{label} sample {i} (t={t[i]:.2f} s)")
    reasons += _speed_reasons(t, xyz, joints, samples.joint_velocities, envelope, limits, label)
    if len(reasons) > MAX_REASONS:
        reasons = reasons[:MAX_REASONS] + [f"... and {len(reasons) - MAX_REASONS} more violations"]
    return SafetyVerdict(not reasons, tuple(reasons))


def _speed_reasons(t, xyz, joints, joint_velocities, env: SafetyEnvelope, limits: MotionLimits, label: str) -> list:
    reasons = []
    max_tcp = env.max_speed if limits.max_tcp_speed is None else float(limits.max_tcp_speed)
    qd_max = 0.0
    if joint_velocities is not None:
        qd = np.asarray(joint_velocities, dtype=np.float64)
        if not np.all(np.isfinite(qd)):
            return [f"{label}: non-finite joint velocities"]
        qd_max = float(np.abs(qd).max(initial=0.0))
    dt = np.diff(t)
    moving = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
    dq = np.abs(np.diff(joints, axis=0)).max(axis=1) if joints.shape[1] else np.zeros(len(dt))
    if np.any((dt <= 0) & ((moving > 1e-6) | (dq > 1e-6))):
        reasons.append(f"{label}: the arm moves between two samples with no time between them (infinite speed)")
    ok = dt > 0
    if np.any(ok):
        tcp_speed = float((moving[ok] / dt[ok]).max())
        qd_max = max(qd_max, float((dq[ok] / dt[ok]).max()))
        if not tcp_speed <= max_tcp:
            reasons.append(f"{label}: tool point speed {tcp_speed:.3f} m/s exceeds {max_tcp:.3f} m/s")
    if not qd_max <= limits.max_joint_velocity:
        reasons.append(f"{label}: joint speed {qd_max:.3f} rad/s exceeds {limits.max_joint_velocity:.3f} rad/s")
    return reasons


__all__ = ["check_trajectory", "TrajectorySamples", "MotionLimits", "MAX_JOINT_VELOCITY_RAD_S",
           "CALIBRATION_JOINT_VELOCITY_RAD_S"]
