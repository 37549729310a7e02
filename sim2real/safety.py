"""The safety envelope: every target of a plan is checked before the arm moves at all.

Checks per motion waypoint: inside the workspace box grown by a margin (x, y), at least
``min_height_m`` above the table and at most ``max_height_m``, tool tilt from vertical at most
``max_tilt_deg``, horizontal distance from the robot base within [reach_min_m, reach_max_m],
speed at most ``max_speed``, and optionally an IK solution (``reachable`` callable). A plan with
any violation is refused as a whole; the verdict lists every reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.config import require
from sim2real.errors import SafetyError
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
        base_xy: (x, y) of the robot base axis.
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

    def validate(self, where: str) -> None:
        require(-0.2 <= self.margin_m <= 0.2, f"{where}.margin_m", "must be in [-0.2, 0.2] m")
        require(self.min_height_m >= 0, f"{where}.min_height_m", "must be >= 0 m (the table)")
        require(self.max_height_m > self.min_height_m, f"{where}.max_height_m", "must be > min_height_m")
        require(0 <= self.max_tilt_deg <= 90, f"{where}.max_tilt_deg", "must be in [0, 90] degrees")
        require(0 <= self.reach_min_m < self.reach_max_m, f"{where}.reach_max_m", "need 0 <= reach_min_m < reach_max_m")
        require(self.max_speed > 0, f"{where}.max_speed", "must be > 0 m/s")

    def with_workspace(self, workspace: Workspace) -> "SafetyEnvelope":
        from dataclasses import replace

        return replace(self, workspace=workspace)


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


def check_target(xyz, quat_xyzw, speed: float, env: SafetyEnvelope, label: str = "target",
                 reachable: Optional[Callable] = None) -> list[str]:
    """Violations of one tool-point target (empty list = safe)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    reasons = []
    if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
        return [f"{label}: position {xyz.tolist()} is not 3 finite numbers"]
    b, m = env.workspace.bounds, env.margin_m
    if not (b[0, 0] - m <= xyz[0] <= b[0, 1] + m and b[1, 0] - m <= xyz[1] <= b[1, 1] + m):
        reasons.append(f"{label}: x,y ({xyz[0]:.3f}, {xyz[1]:.3f}) m is outside the workspace "
                       f"x [{b[0, 0] - m:.3f}, {b[0, 1] + m:.3f}] y [{b[1, 0] - m:.3f}, {b[1, 1] + m:.3f}]")
    height = xyz[2] - b[2, 0]
    if height < env.min_height_m:
        reasons.append(f"{label}: {height * 1000:.1f} mm above the table is below the minimum {env.min_height_m * 1000:.1f} mm")
    if height > env.max_height_m:
        reasons.append(f"{label}: {height:.3f} m above the table is above the maximum {env.max_height_m:.3f} m")
    tilt = tilt_deg(quat_xyzw)
    if tilt > env.max_tilt_deg:
        reasons.append(f"{label}: tool tilted {tilt:.1f} deg from vertical (max {env.max_tilt_deg:.1f})")
    r = float(np.hypot(xyz[0] - env.base_xy[0], xyz[1] - env.base_xy[1]))
    if not env.reach_min_m <= r <= env.reach_max_m:
        reasons.append(f"{label}: {r:.3f} m from the base axis is outside the reach [{env.reach_min_m}, {env.reach_max_m}] m")
    if speed > env.max_speed:
        reasons.append(f"{label}: speed {speed:.3f} m/s exceeds {env.max_speed} m/s")
    if not reasons and reachable is not None and not reachable((xyz, np.asarray(quat_xyzw, dtype=np.float64))):
        reasons.append(f"{label}: no inverse-kinematics solution (unreachable pose)")
    return reasons


def tilt_deg(quat_xyzw) -> float:
    """Angle in degrees between the tool axis and straight down (CLIPort convention: identity = down)."""
    z = Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64)).apply([0.0, 0.0, 1.0])
    return float(np.degrees(np.arccos(np.clip(z[2], -1.0, 1.0))))


def check_plan(plan, envelope: SafetyEnvelope, reachable: Optional[Callable] = None) -> SafetyVerdict:
    """Check every waypoint of ``plan`` (see module doc); never moves anything."""
    reasons = []
    for i, wp in enumerate(plan):
        reasons += check_target(wp.xyz, wp.quat_xyzw, wp.speed, envelope, f"{wp.segment} (waypoint {i})", reachable)
    return SafetyVerdict(not reasons, tuple(reasons))
