"""The safety envelope: every target of a plan is checked before the arm moves at all.

Checks per motion waypoint: inside the workspace box grown by a margin (x, y), at least
``min_height_m`` above the table and at most ``max_height_m``, tool tilt from vertical at most
``max_tilt_deg``, horizontal distance from the robot base within [reach_min_m, reach_max_m],
speed at most ``max_speed``, and optionally an IK solution (``reachable`` callable). A plan with
any violation is refused as a whole; the verdict lists every reason.

Every check fails closed: a value that is not finite, a quaternion that is not unit (zero, tiny
enough that its squared norm underflows, NaN, inf), a NaN speed are refusals with a reason, and
each comparison is written so that NaN lands on the refusing side. Reach is measured from the
robot base in the frame the plan is in: :meth:`SafetyEnvelope.in_frame` takes the calibration's
``T_base_workspace`` (plans are in the workspace frame once a workspace frame is calibrated).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from sim2real.config import require
from sim2real.errors import InputError, SafetyError
from sim2real.workspace import GENSIM_WORKSPACE, Workspace


@dataclass(frozen=True)
class SafetyEnvelope:
    """Limits on motion targets (metres, degrees, m/s; base frame).

    Attributes:
        margin_m: the allowed x-y box is the workspace bounds grown by this (negative shrinks).
        min_height_m: lowest tool point above the table (workspace z-min).
        max_height_m: highest tool point above the table.
        max_tilt_deg: largest angle between the tool axis and straight down.
        reach_min_m, reach_max_m: horizontal distance of the tool point from the base axis.
        max_speed: fastest allowed segment speed, m/s.
        base_xy: (x, y) of the robot base axis in the plan's frame (set by :meth:`in_frame`).
        T_base_plan: (4, 4) nested tuple, plan frame -> robot base frame (None: the plan is in the
            base frame, whose axis is at ``base_xy``). Reach is then measured in the base frame.
    """

    margin_m: float = 0.02
    min_height_m: float = 0.003
    max_height_m: float = 0.6
    max_tilt_deg: float = 10.0
    reach_min_m: float = 0.15
    reach_max_m: float = 0.85
    max_speed: float = 1.0
    base_xy: tuple = (0.0, 0.0)
    workspace: Workspace = field(default=GENSIM_WORKSPACE, compare=False)
    T_base_plan: Optional[tuple] = None

    def validate(self, where: str) -> None:
        require(-0.2 <= self.margin_m <= 0.2, f"{where}.margin_m", "must be in [-0.2, 0.2] m")
        require(self.min_height_m >= 0, f"{where}.min_height_m", "must be >= 0 m (the table)")
        require(self.max_height_m > self.min_height_m, f"{where}.max_height_m", "must be > min_height_m")
        require(0 <= self.max_tilt_deg <= 90, f"{where}.max_tilt_deg", "must be in [0, 90] degrees")
        require(0 <= self.reach_min_m < self.reach_max_m, f"{where}.reach_max_m", "need 0 <= reach_min_m < reach_max_m")
        require(self.max_speed > 0, f"{where}.max_speed", "must be > 0 m/s")

    def with_workspace(self, workspace: Workspace) -> "SafetyEnvelope":
        return replace(self, workspace=workspace)

    def in_frame(self, T_base_plan) -> "SafetyEnvelope":
        """This envelope for plans in a frame whose pose in the robot base frame is ``T_base_plan``.

        Args:
            T_base_plan: (4, 4) plan frame -> base frame (the calibration's ``T_base_workspace``),
                or None to leave the envelope as it is (plans in the base frame).

        Raises:
            InputError: ``T_base_plan`` is not a finite rigid transform.
        """
        if T_base_plan is None:
            return self
        T = np.asarray(T_base_plan, dtype=np.float64)
        R = T[:3, :3] if T.shape == (4, 4) else None
        if R is None or not np.all(np.isfinite(T)) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6) \
                or not np.allclose(T[3], (0, 0, 0, 1)):
            raise InputError("T_base_plan must be a finite 4x4 rigid transform (the calibration's T_base_workspace); "
                             "re-run `sim2real calibrate table`")
        base_in_plan = -R.T @ T[:3, 3]
        return replace(self, base_xy=(float(base_in_plan[0]), float(base_in_plan[1])),
                       T_base_plan=tuple(map(tuple, T.tolist())))

    def reach_of(self, xyz) -> float:
        """Horizontal distance (m) of ``xyz`` (plan frame) from the base axis, in the base frame."""
        xyz = np.asarray(xyz, dtype=np.float64)
        if self.T_base_plan is None:
            return float(np.hypot(xyz[0] - self.base_xy[0], xyz[1] - self.base_xy[1]))
        T = np.asarray(self.T_base_plan)
        p = T[:3, :3] @ xyz + T[:3, 3]
        return float(np.hypot(p[0], p[1]))


@dataclass(frozen=True)
class SafetyVerdict:
    """ok, and one human-readable reason per violation (empty when ok)."""

    ok: bool
    reasons: tuple = ()

    def to_dict(self) -> dict:
        return {"ok": self.ok, "reasons": list(self.reasons)}

    def raise_if_unsafe(self) -> None:
        if not self.ok:
            raise SafetyError("unsafe plan refused, the arm did not move: " + "; ".join(self.reasons))


QUAT_NORM_TOL = 1e-3
"""Largest | |q| - 1 | accepted as a unit quaternion (float32 round-off is ~1e-7)."""


def unit_quaternion(quat_xyzw) -> tuple[Optional[np.ndarray], str]:
    """(the exactly normalised (4,) quaternion, "") or (None, why it is not a unit quaternion).

    The norm is ``math.hypot``'s, which scales internally: components around 1e-200 (whose squared
    norm underflows to 0) give a norm of ~1e-200 and a refusal, never a division by 0 or an inf.
    """
    try:
        q = [float(v) for v in np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError):
        return None, f"quaternion {quat_xyzw!r} is not a unit quaternion (not numbers)"
    if len(q) != 4 or not all(map(math.isfinite, q)):
        return None, f"quaternion {q} is not a unit quaternion (need 4 finite numbers)"
    norm = math.hypot(*q)
    if not abs(norm - 1.0) <= QUAT_NORM_TOL:
        return None, f"quaternion {q} is not a unit quaternion (norm {norm:.6g})"
    return np.array(q) / norm, ""


def check_target(xyz, quat_xyzw, speed: float, env: SafetyEnvelope, label: str = "target",
                 reachable: Optional[Callable] = None) -> list[str]:
    """Violations of one tool-point target (empty list = safe). Fails closed on any NaN / inf."""
    try:
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return [f"{label}: position {xyz!r} is not 3 finite numbers"]
    reasons = []
    if xyz.shape != (3,) or not all(map(math.isfinite, xyz.tolist())):
        return [f"{label}: position {xyz.tolist()} is not 3 finite numbers"]
    quat, why = unit_quaternion(quat_xyzw)
    if quat is None:
        reasons.append(f"{label}: {why}")
    b, m = env.workspace.bounds, env.margin_m
    if not (b[0, 0] - m <= xyz[0] <= b[0, 1] + m and b[1, 0] - m <= xyz[1] <= b[1, 1] + m):
        reasons.append(f"{label}: x,y ({xyz[0]:.3f}, {xyz[1]:.3f}) m is outside the workspace "
                       f"x [{b[0, 0] - m:.3f}, {b[0, 1] + m:.3f}] y [{b[1, 0] - m:.3f}, {b[1, 1] + m:.3f}]")
    height = xyz[2] - b[2, 0]
    if not height >= env.min_height_m:
        reasons.append(f"{label}: {height * 1000:.1f} mm above the table is below the minimum {env.min_height_m * 1000:.1f} mm")
    if not height <= env.max_height_m:
        reasons.append(f"{label}: {height:.3f} m above the table is above the maximum {env.max_height_m:.3f} m")
    if quat is not None:
        tilt = tilt_deg(quat)
        if not tilt <= env.max_tilt_deg:
            reasons.append(f"{label}: tool tilted {tilt:.1f} deg from vertical (max {env.max_tilt_deg:.1f})")
    with np.errstate(over="ignore", invalid="ignore"):
        r = env.reach_of(xyz)
    if not env.reach_min_m <= r <= env.reach_max_m:
        reasons.append(f"{label}: {r:.3f} m from the base axis is outside the reach [{env.reach_min_m}, {env.reach_max_m}] m")
    try:
        speed = float(speed)
    except (TypeError, ValueError):
        speed = float("nan")
    if not 0.0 <= speed <= env.max_speed:
        reasons.append(f"{label}: speed {speed:.3f} m/s is not in [0, {env.max_speed}] m/s (exceeds the limit or is not a number)")
    if not reasons and reachable is not None and not reachable((xyz, quat)):
        reasons.append(f"{label}: no inverse-kinematics solution (unreachable pose)")
    return reasons


def tilt_deg(quat_xyzw) -> float:
    """Angle in degrees between the tool axis and straight down (CLIPort convention: identity = down).

    NaN for anything that is not a unit quaternion, so a ``tilt <= max`` test refuses it.
    """
    q, _ = unit_quaternion(quat_xyzw)
    if q is None:
        return float("nan")
    x, y = float(q[0]), float(q[1])
    z_down = 1.0 - 2.0 * (x * x + y * y)  # (R @ [0, 0, 1])[2] of the unit quaternion
    return math.degrees(math.acos(min(1.0, max(-1.0, z_down))))


def check_plan(plan, envelope: SafetyEnvelope, reachable: Optional[Callable] = None) -> SafetyVerdict:
    """Check every waypoint of ``plan`` (see module doc); never moves anything."""
    reasons = []
    for i, wp in enumerate(plan):
        reasons += check_target(wp.xyz, wp.quat_xyzw, wp.speed, envelope, f"{wp.segment} (waypoint {i})", reachable)
    return SafetyVerdict(not reasons, tuple(reasons))
