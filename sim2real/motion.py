"""Pick and place as a pure waypoint plan, shared by the real robot and the twin.

``plan_pick_place`` turns a pick pose and a place pose into the segments approach, descend,
grasp, lift, transit, place, release, retreat, each with its own speed. It touches no hardware:
the plan is checked by ``sim2real.safety.check_plan`` before any motion, then ``execute_plan``
sends it to a :class:`~sim2real.robot.RobotPort` and always stops the arm in a ``finally``.
``go_home`` sends the arm to its capture pose the same way (a checked straight lift first).

A failure mid-plan never drops what is held: the arm is stopped, and if it holds (or may hold)
an object it is lowered straight down to the pick or place height (a target the envelope
checks) before the tool lets go; when that is not safe the tool stays engaged and the result
says so. An operator stop (MotionStopped) holds everything where it is.

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
from sim2real.errors import HardwareError, MotionStopped, PlanningError, SafetyError
from sim2real.safety import check_target, unit_quaternion

OVER_POINT_TOL_M = 0.01
"""How far (horizontally) the tool may be from the pick / place point for an abort to lower the
held object straight down onto it; anywhere else the surface underneath is not known."""

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
    rows, cols = height.shape
    try:
        u, v = (float(pixel[0]), float(pixel[1]))
    except (TypeError, ValueError, IndexError):
        raise PlanningError(f"pick pixel {pixel!r} is not a (row, col) pair") from None
    if not (0 <= u < rows and 0 <= v < cols):  # also refuses NaN / inf
        raise PlanningError(f"pick pixel ({u}, {v}) is off the {rows}x{cols} heightmap grid; the policy must "
                            "pick inside the workspace")
    r = max(1, int(round(radius_m / pixel_size)))
    u, v = int(u), int(v)
    win = height[max(0, u - r):min(rows, u + r + 1), max(0, v - r):min(cols, v + r + 1)]
    top = float(height[u, v])
    held = top - float(np.min(win))
    return held if np.isfinite(held) and held > 0 else 0.0


@dataclass
class ExecutionResult:
    """What happened while executing a plan.

    Attributes:
        executed: the waypoints reached, in order (dicts).
        grasped: whether the robot reported holding something after the lift (None if unknown).
        aborted: 'not_grasped' when the place was skipped because nothing was held, else None.
        holding: after the plan (or its abort): False = the tool is released, None = it may
            still hold an object (the tool stays engaged), True = the robot reports one held.
        recovery: what was done after a failure mid-plan (None when nothing failed).
    """

    executed: list = field(default_factory=list)
    grasped: Optional[bool] = None
    aborted: Optional[str] = None
    holding: Optional[bool] = False
    recovery: Optional[str] = None


def execute_plan(robot, plan: list[Waypoint], envelope=None, result: Optional[ExecutionResult] = None) -> ExecutionResult:
    """Send ``plan`` to ``robot``; the arm is stopped in a ``finally`` whatever happens.

    An empty grasp (the robot's grasp feedback ``state().holding`` is False after the lift) skips
    transit and place, then releases and retreats (CLIPort's primitive does the same). On a
    failure mid-plan the arm is stopped and the tool released only where that drops nothing (see
    the module doc and :func:`_recover`); ``result.recovery`` says what was done.

    Args:
        robot: a RobotPort.
        plan: waypoints from :func:`plan_pick_place` (already checked by the safety envelope).
        envelope: the SafetyEnvelope the recovery's lowering target is re-checked against.
        result: filled in place when given (so the caller has it when this raises).

    Raises:
        PlanningError / SafetyError / HardwareError / MotionStopped from the robot, after recovery.
    """
    from sim2real.robot import set_tool

    result = result if result is not None else ExecutionResult()
    engaged = False
    try:
        skip_to_release = False
        for wp in plan:
            if skip_to_release and wp.segment in ("transit", "place"):
                continue
            if wp.tool is not None:
                engaged = wp.tool == "grasp"  # set before the call: a failing grasp may have engaged
                set_tool(robot, engaged)
                result.holding = None if engaged else False
            else:
                robot.move_to(wp.pose, wp.speed, linear=wp.linear)
            result.executed.append(wp.to_dict())
            if wp.segment == "lift":
                result.grasped = robot.state().holding
                if result.grasped is False:
                    result.aborted, skip_to_release = "not_grasped", True
                elif result.grasped:
                    result.holding = True
    except MotionStopped:
        # The operator asked for a stop: no further motion, and nothing released in mid-air.
        result.recovery = ("stopped by the operator: the arm holds where it stopped"
                           + (", the tool stays engaged" if engaged else ""))
        raise
    except Exception:
        result.holding, result.recovery = _recover(robot, plan, result, engaged, envelope)
        raise
    finally:
        robot.stop()
    return result


def _recover(robot, plan: list[Waypoint], result: ExecutionResult, engaged: bool, envelope):
    """After a failure mid-plan: stop; if something is (maybe) held, lower it straight down onto the
    pick or place point when the tool is over one and the envelope allows, then release.

    Returns:
        (holding, what was done): holding False once released, None while the tool stays engaged.
    """
    from sim2real.robot import set_tool

    def hold(why: str):
        return None, f"holding: {why}; the tool stays engaged - take the object from the tool, then re-home"

    try:
        robot.stop()
    except Exception as e:  # noqa: BLE001 - keep going: the tool must not let go blindly
        return hold(f"stop failed ({type(e).__name__}: {e})") if engaged else (None, f"stop failed: {e}")
    if not engaged:
        return _release(robot, set_tool, "nothing held: tool released")
    try:
        state = robot.state()
        xyz = np.asarray(state.tcp_xyz, dtype=np.float64)
        quat, _ = unit_quaternion(state.tcp_quat_xyzw)
    except Exception as e:  # noqa: BLE001 - an unreadable state means: do not move, do not release
        return hold(f"the robot state cannot be read ({type(e).__name__}: {e})")
    if state.holding is False:
        return _release(robot, set_tool, "nothing held (grasp feedback): tool released")
    if xyz.shape != (3,) or not np.all(np.isfinite(xyz)) or quat is None:
        return hold("the tool pose is not known")
    done = {w["segment"] for w in result.executed}
    # Where the object can go: back onto its pick point until transit starts, then the place point.
    if "transit" not in done:
        targets = [w for w in plan if w.segment == "grasp"]
    else:
        targets = [w for w in plan if w.segment == "release"]
    if not targets:
        return hold("the plan has no pick or place point")
    point = targets[0]
    name = "pick" if point.segment == "grasp" else "place"
    if np.hypot(*(xyz[:2] - point.xyz[:2])) > OVER_POINT_TOL_M:
        return hold(f"the tool is not over the {name} point (stopped at {np.round(xyz, 3).tolist()})")
    target = np.array([xyz[0], xyz[1], point.xyz[2]])
    if xyz[2] > target[2] + 1e-4:
        speed = min((w.speed for w in plan if w.segment in ("descend", "place")), default=0.05)
        if envelope is not None:
            reasons = check_target(target, quat, speed, envelope, f"lowering to the {name} height")
            if reasons:
                return hold("; ".join(reasons))
        try:
            robot.move_to((target, quat), speed, linear=True)
        except Exception as e:  # noqa: BLE001
            return hold(f"lowering to the {name} height failed ({type(e).__name__}: {e})")
    return _release(robot, set_tool, f"lowered straight down to the {name} height and released")


def _release(robot, set_tool, what: str):
    try:
        set_tool(robot, False)
    except Exception as e:  # noqa: BLE001 - the original error matters more
        return None, f"release failed ({type(e).__name__}: {e})"
    return False, what


def go_home(robot, envelope, clearance: float, speed: Optional[float] = None, lift_speed: float = 0.1) -> None:
    """Send the arm to its capture pose through the envelope.

    When the tool point is less than ``clearance`` above the table (after an aborted step), it is
    first lifted straight up to that height, a target checked by ``envelope``; then the robot's
    joint-space ``home()`` (which returns once the arm is at home and still).

    Args:
        robot: a RobotPort.
        envelope: SafetyEnvelope of the plans (its workspace gives the table height).
        clearance: metres above the table (e.g. MotionConfig.approach_height).
        speed: home() speed fraction (None: the robot's default).
        lift_speed: m/s of the straight lift.

    Raises:
        SafetyError: the tool pose is unknown / non-finite, or the lift leaves the envelope;
            the arm did not move.
        PlanningError / HardwareError / MotionStopped from the robot.
    """
    if not callable(getattr(robot, "home", None)):
        raise HardwareError(f"{type(robot).__name__} has no home(): every robot must implement "
                            "sim2real.robot.RobotPort.home (the arm is sent home before each capture)")
    state = robot.state()
    xyz = np.asarray(state.tcp_xyz, dtype=np.float64).reshape(-1)
    quat, why = unit_quaternion(state.tcp_quat_xyzw)
    if xyz.shape != (3,) or not np.all(np.isfinite(xyz)) or quat is None:
        raise SafetyError(f"homing refused, the arm did not move: the tool pose {xyz.tolist()} is not finite or "
                          f"its orientation is not known ({why or 'ok'}); move the arm home by hand")
    table_z = float(envelope.workspace.bounds[2, 0])
    if xyz[2] - table_z < clearance - 1e-3:
        lift = np.array([xyz[0], xyz[1], table_z + clearance])
        reasons = check_target(lift, quat, lift_speed, envelope, "lift before homing")
        if reasons:
            raise SafetyError("homing refused, the arm did not move: " + "; ".join(reasons))
        robot.move_to((lift, quat), lift_speed, linear=True)
    if speed is None:
        robot.home()
    else:
        robot.home(speed)


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
