"""Pick and place as a pure waypoint plan, shared by the real robot and the twin.

``plan_pick_place`` turns a pick pose and a place pose into the segments approach, descend,
grasp, lift, transit, place, release, retreat, each with its own speed. It touches no hardware:
the plan is checked by ``sim2real.safety.check_plan`` before any motion, then ``execute_plan``
sends it to a :class:`~sim2real.robot.RobotPort` and always stops the arm in a ``finally``.

Heights (CLIPort semantics): the pick z is the top of the object under the pick pixel (the
heightmap height there); the place z is the surface the object goes onto (the heightmap height
at the place pixel). The held object's height (pick z minus the surface it stood on) lifts the
release point so the object is set down, not pushed into the surface. CLIPort's simulator
descends until contact instead; a real arm has no such sensor, so the plan uses the heightmap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from sim2real.config import require
from sim2real.errors import PlanningError
from sim2real.safety import unit_quaternion

SEGMENTS = ("approach", "descend", "grasp", "lift", "transit", "place", "release", "retreat")


@dataclass(frozen=True)
class Speeds:
    """Tool-point speed of each moving segment, m/s."""

    approach: float = 0.25
    descend: float = 0.05
    lift: float = 0.1
    transit: float = 0.25
    place: float = 0.05
    retreat: float = 0.1

    def validate(self, where: str) -> None:
        for name in ("approach", "descend", "lift", "transit", "place", "retreat"):
            require(0 < getattr(self, name) <= 2.0, f"{where}.{name}", f"must be in (0, 2] m/s (got {getattr(self, name)})")


@dataclass(frozen=True)
class MotionConfig:
    """Geometry and speeds of the pick-and-place primitive.

    Attributes:
        approach_height: metres above the pick / place point where the tool arrives and leaves.
        lift_height: metres above the pick point after grasping (transit height floor).
        grasp_depth: how far below the object's top the tool point goes to grasp (0 for suction;
            a few cm for a parallel gripper, whose fingers must straddle the object).
        release_clearance: gap in metres left under the held object when it is released.
        min_held_height, max_held_height: clamp of the held object's estimated height (m).
        speeds: per-segment speeds.
    """

    approach_height: float = 0.15
    lift_height: float = 0.15
    grasp_depth: float = 0.0
    release_clearance: float = 0.006
    min_held_height: float = 0.004
    max_held_height: float = 0.15
    speeds: Speeds = field(default_factory=Speeds)

    def validate(self, where: str) -> None:
        require(0.02 <= self.approach_height <= 0.6, f"{where}.approach_height", "must be in [0.02, 0.6] m")
        require(0.02 <= self.lift_height <= 0.6, f"{where}.lift_height", "must be in [0.02, 0.6] m")
        require(0 <= self.grasp_depth <= 0.1, f"{where}.grasp_depth", "must be in [0, 0.1] m")
        require(0 <= self.release_clearance <= 0.05, f"{where}.release_clearance", "must be in [0, 0.05] m")
        require(0 <= self.min_held_height < self.max_held_height, f"{where}.min_held_height",
                "must be >= 0 and < max_held_height")


@dataclass(frozen=True)
class Waypoint:
    """One segment of a plan.

    Attributes:
        segment: one of :data:`SEGMENTS`.
        xyz: (3,) tool point target, metres, base frame (for grasp/release: where the tool is).
        quat_xyzw: (4,) tool orientation (CLIPort convention).
        speed: m/s (0 for tool actions).
        linear: straight-line tool-point motion.
        tool: None for a motion, 'grasp' or 'release' for a tool action.
    """

    segment: str
    xyz: np.ndarray
    quat_xyzw: np.ndarray
    speed: float = 0.0
    linear: bool = False
    tool: Optional[str] = None

    @property
    def pose(self):
        return (self.xyz, self.quat_xyzw)

    def to_dict(self) -> dict:
        return {"segment": self.segment, "xyz": [float(v) for v in self.xyz],
                "quat_xyzw": [float(v) for v in self.quat_xyzw], "speed": float(self.speed),
                "linear": self.linear, "tool": self.tool}


def plan_pick_place(pick_pose, place_pose, config: MotionConfig, held_height: float = 0.0) -> list[Waypoint]:
    """The waypoint plan of one pick and place.

    Args:
        pick_pose: (xyz (3,), quat_xyzw (4,)): top of the object to pick.
        place_pose: (xyz, quat): surface point where the object goes; the quaternion is the
            tool orientation at release (CLIPort: yaw -theta).
        config: geometry and speeds.
        held_height: height of the picked object in metres (clamped to the config's range).

    Returns:
        8 waypoints, in :data:`SEGMENTS` order.
    """
    p0, q0 = _pose(pick_pose, "pick")
    p1, q1 = _pose(place_pose, "place")
    held = float(np.clip(held_height, config.min_held_height, config.max_held_height))
    s = config.speeds
    up = np.array([0.0, 0.0, 1.0])
    grasp = p0 - config.grasp_depth * up
    # Release: object bottom at the place surface + clearance; the tool is held_height - grasp_depth above it.
    release = p1 + (held - config.grasp_depth + config.release_clearance) * up
    lift = p0 + config.lift_height * up
    transit = np.array([p1[0], p1[1], max(lift[2], release[2] + config.approach_height)])
    return [
        Waypoint("approach", p0 + config.approach_height * up, q0, s.approach, False),
        Waypoint("descend", grasp, q0, s.descend, True),
        Waypoint("grasp", grasp, q0, tool="grasp"),
        Waypoint("lift", lift, q0, s.lift, True),
        Waypoint("transit", transit, q1, s.transit, False),
        Waypoint("place", release, q1, s.place, True),
        Waypoint("release", release, q1, tool="release"),
        Waypoint("retreat", release + config.approach_height * up, q1, s.retreat, True),
    ]


def plan_from_action(action, config: MotionConfig, held_height: float = 0.0) -> list[Waypoint]:
    """:func:`plan_pick_place` of a :class:`~sim2real.action.PickPlaceAction`."""
    return plan_pick_place((action.pick.xyz, action.pick.quat_xyzw), (action.place.xyz, action.place.quat_xyzw),
                           config, held_height)


def estimate_held_height(height: np.ndarray, pixel, pixel_size: float, radius_m: float = 0.045) -> float:
    """Height (m) of the object under ``pixel``: its top minus the lowest surface around it.

    Args:
        height: (rows, cols) heightmap, metres above the table.
        pixel: (row, col) of the pick.
        pixel_size: metres per cell.
        radius_m: half-size of the square window searched for the supporting surface.
    """
    r = max(1, int(round(radius_m / pixel_size)))
    u, v = int(pixel[0]), int(pixel[1])
    rows, cols = height.shape
    win = height[max(0, u - r):min(rows, u + r + 1), max(0, v - r):min(cols, v + r + 1)]
    top = float(height[min(max(u, 0), rows - 1), min(max(v, 0), cols - 1)])
    return max(0.0, top - float(win.min()))


@dataclass
class ExecutionResult:
    """What happened while executing a plan.

    Attributes:
        executed: the waypoints reached, in order (dicts).
        grasped: whether the robot reported holding something after the lift (None if unknown).
        aborted: 'not_grasped' when the place was skipped because nothing was held, else None.
    """

    executed: list = field(default_factory=list)
    grasped: Optional[bool] = None
    aborted: Optional[str] = None


def execute_plan(robot, plan: list[Waypoint]) -> ExecutionResult:
    """Send ``plan`` to ``robot``; on an empty grasp, release and retreat (CLIPort's primitive does
    the same). The arm is stopped in a ``finally`` whatever happens.

    Raises:
        PlanningError / SafetyError / HardwareError from the robot; the arm is stopped first.
    """
    from sim2real.robot import set_tool

    result = ExecutionResult()
    try:
        skip_to_release = False
        for wp in plan:
            if skip_to_release and wp.segment in ("transit", "place"):
                continue
            if wp.tool is not None:
                set_tool(robot, wp.tool == "grasp")
            else:
                robot.move_to(wp.pose, wp.speed, linear=wp.linear)
            result.executed.append(wp.to_dict())
            if wp.segment == "lift":
                result.grasped = robot.state().holding
                if result.grasped is False:
                    result.aborted, skip_to_release = "not_grasped", True
    except Exception:
        # Never leave the tool engaged on a failure mid-plan: release, then stop (in finally).
        try:
            set_tool(robot, False)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        raise
    finally:
        robot.stop()
    return result


def _pose(pose, name: str):
    try:
        xyz, quat = (np.asarray(v, dtype=np.float64).reshape(-1) for v in pose)
    except (TypeError, ValueError):
        raise PlanningError(f"{name} pose must be (xyz, quat_xyzw), got {pose!r}") from None
    if xyz.shape != (3,) or quat.shape != (4,) or not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(quat))):
        raise PlanningError(f"{name} pose must be finite xyz (3,) and quat_xyzw (4,), got {xyz}, {quat}")
    unit, why = unit_quaternion(quat)
    if unit is None:
        raise PlanningError(f"{name} pose: {why}; the policy must output a rotation (e.g. quat_xyzw_from_theta)")
    return xyz, unit
