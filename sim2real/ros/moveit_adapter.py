"""MoveIt 2 through ``moveit_py``, behind one small adapter that hides the Humble / Jazzy split.

One ``MoveItPy`` per process (it owns a C++ node, its executor thread and calls the global
``rclcpp::shutdown()`` when destroyed, moveit/moveit2#3839), held by an rclpy node that owns this
adapter; the adapter is not a node itself.

API differences absorbed here (moveit2 ``moveit_py`` on the ``humble`` backport vs ``jazzy``):

=========================  ===========================================  ==========================================
call                       Jazzy / main                                 Humble backport
=========================  ===========================================  ==========================================
PlanRequestParameters      ``PlanRequestParameters(robot, "")``         ``PlanRequestParameters(robot)``
plan                       ``pc.plan(single_plan_parameters=p)``        ``pc.plan(parameters=p)``
execute                    ``robot.execute(traj, controllers=[])``      ``robot.execute(group, traj, blocking=True)``
=========================  ===========================================  ==========================================

Free-space moves use the configured pipeline (OMPL); descents and lifts (``linear=True``) use
Pilz ``LIN`` (pipeline ``pilz_industrial_motion_planner``), a straight line of the tip. MoveIt
error codes become typed :class:`~sim2real.errors.PlanningError` subclasses carrying the episode
end reason. The arm is stopped in a ``finally`` whenever an execution does not finish cleanly.

The moveit_py API is injected (``api=``), so the logic is tested here with a fake module.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from types import SimpleNamespace
from typing import Optional

import numpy as np

from sim2real.errors import ConfigError, PlanningError
from sim2real.robot_config import RobotConfig

# moveit_msgs/msg/MoveItErrorCodes values
MOVEIT_ERROR_CODES = {
    1: "SUCCESS", 99999: "FAILURE", -1: "PLANNING_FAILED", -2: "INVALID_MOTION_PLAN",
    -3: "MOTION_PLAN_INVALIDATED_BY_ENVIRONMENT_CHANGE", -4: "CONTROL_FAILED",
    -5: "UNABLE_TO_AQUIRE_SENSOR_DATA", -6: "TIMED_OUT", -7: "PREEMPTED",
    -10: "START_STATE_IN_COLLISION", -11: "START_STATE_VIOLATES_PATH_CONSTRAINTS",
    -12: "GOAL_IN_COLLISION", -13: "GOAL_VIOLATES_PATH_CONSTRAINTS", -14: "GOAL_CONSTRAINTS_VIOLATED",
    -15: "INVALID_GROUP_NAME", -16: "INVALID_GOAL_CONSTRAINTS", -17: "INVALID_ROBOT_STATE",
    -18: "INVALID_LINK_NAME", -19: "INVALID_OBJECT_NAME", -21: "FRAME_TRANSFORM_FAILURE",
    -22: "COLLISION_CHECKING_UNAVAILABLE", -23: "ROBOT_STATE_STALE", -24: "SENSOR_INFO_STALE",
    -25: "COMMUNICATION_FAILURE", -26: "START_STATE_INVALID", -27: "GOAL_STATE_INVALID",
    -28: "UNRECOGNIZED_GOAL_TYPE", -29: "CRASH", -30: "ABORT", -31: "NO_IK_SOLUTION",
}
"""moveit_msgs/MoveItErrorCodes: value -> name."""


class MoveItError(PlanningError):
    """A MoveIt planning or execution failure; the arm did not (or no longer does) move.

    Attributes:
        code: MoveItErrorCodes value (None when the failure had no code).
        code_name: its name, e.g. 'NO_IK_SOLUTION'.
        reason: the episode end reason recorded with the trial.
    """

    reason = "planning_failed"

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.code_name = MOVEIT_ERROR_CODES.get(code, "UNKNOWN") if code is not None else None


class PlanningFailedError(MoveItError):
    """No plan was found (PLANNING_FAILED, TIMED_OUT, INVALID_MOTION_PLAN, FAILURE...)."""


class IKFailedError(MoveItError):
    """The target pose has no inverse-kinematics solution (out of reach or bad orientation)."""

    reason = "ik_failed"


class CollisionError(MoveItError):
    """Start or goal state in collision (e.g. the TCP inside the table)."""


class InvalidRequestError(MoveItError):
    """A configuration problem: unknown group / link, TF failure, bad constraints. Fix the config."""

    reason = "config_error"


class ExecutionError(MoveItError):
    """The controller failed, aborted or was preempted while executing."""

    reason = "execution_failed"


_CODE_CLASSES = {
    -31: IKFailedError,
    -10: CollisionError, -12: CollisionError, -3: CollisionError,
    -15: InvalidRequestError, -16: InvalidRequestError, -18: InvalidRequestError, -19: InvalidRequestError,
    -21: InvalidRequestError, -28: InvalidRequestError, -17: InvalidRequestError,
    -4: ExecutionError, -7: ExecutionError, -29: ExecutionError, -30: ExecutionError, -25: ExecutionError,
}

_CODE_HINTS = {
    -31: "the pose is out of reach or the orientation is not achievable; check the workspace bounds, the "
         "calibration and tcp_offset",
    -10: "the arm starts in collision; move it clear (e.g. teach pendant) and check the table collision box",
    -12: "the goal is in collision (often the TCP inside the table); check table.center/size and tcp_offset",
    -15: "the planning group does not exist; check planning_group in the robot config",
    -18: "a link name is unknown; check tip_frame / base_frame in the robot config",
    -21: "a frame transform failed; check base_frame and that robot_state_publisher runs",
    -6: "planning timed out; raise moveit.planning_time",
    -4: "the controller failed; check the driver / teach pendant (protective stop? External Control running?)",
}


def error_from_code(code, context: str) -> MoveItError:
    """The typed exception for a MoveItErrorCodes value (int or message with ``.val``)."""
    value = getattr(code, "val", code)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return PlanningFailedError(f"{context} failed (no error code: {code!r})")
    name = MOVEIT_ERROR_CODES.get(value, "UNKNOWN")
    hint = _CODE_HINTS.get(value)
    message = f"{context} failed: MoveIt error {value} {name}" + (f"; {hint}" if hint else "")
    return _CODE_CLASSES.get(value, PlanningFailedError)(message, value)


def detect_flavour(requested: str = "auto") -> str:
    """'humble' or 'jazzy' moveit_py API: explicit, else from $ROS_DISTRO (humble -> humble, else jazzy)."""
    if requested in ("humble", "jazzy"):
        return requested
    if requested != "auto":
        raise ConfigError(f"moveit_api must be auto, humble or jazzy, got {requested!r}")
    return "humble" if os.environ.get("ROS_DISTRO", "").strip().lower() == "humble" else "jazzy"


def load_moveit_api() -> SimpleNamespace:
    """The real moveit_py classes (imported here, never at module level)."""
    from sim2real.ros import require_ros

    planning = require_ros("moveit.planning", "the MoveIt adapter (apt install ros-jazzy-moveit-py)")
    robot_state = require_ros("moveit.core.robot_state", "the MoveIt adapter")
    return SimpleNamespace(MoveItPy=planning.MoveItPy, PlanRequestParameters=planning.PlanRequestParameters,
                           RobotState=robot_state.RobotState)


def load_scene_msgs() -> SimpleNamespace:
    """moveit_msgs / shape_msgs / geometry_msgs classes for the table collision object."""
    from sim2real.ros import require_ros

    moveit_msgs = require_ros("moveit_msgs.msg", "the table collision object")
    shape_msgs = require_ros("shape_msgs.msg", "the table collision object")
    geometry_msgs = require_ros("geometry_msgs.msg", "the table collision object")
    return SimpleNamespace(CollisionObject=moveit_msgs.CollisionObject, SolidPrimitive=shape_msgs.SolidPrimitive,
                           Pose=geometry_msgs.Pose)


_INSTANCES: dict = {}
_INSTANCES_LOCK = threading.Lock()


class MoveItAdapter:
    """Plan and execute with moveit_py for one robot config.

    Args:
        config: the robot config (group, frames, TCP, speeds, planners, table).
        api: namespace with MoveItPy, PlanRequestParameters, RobotState (default: the real ones).
        msg_types: :class:`sim2real.ros.conversions.MsgTypes` for PoseStamped goals (default rclpy).
        scene_msgs: namespace with CollisionObject, SolidPrimitive, Pose (default: real ones).
        flavour: 'auto' | 'humble' | 'jazzy' (see :func:`detect_flavour`).
        node_name: name of MoveItPy's internal node; its parameters come from a params file keyed
            by this name (deploy.launch.py writes it) or from ``config_dict``.
        config_dict: MoveIt parameters (MoveItConfigsBuilder(...).to_dict()), optional.
        logger: a logging-like object (rclpy node logger or ``logging.Logger``).
    """

    def __init__(self, config: RobotConfig, *, api=None, msg_types=None, scene_msgs=None, flavour: str = "auto",
                 node_name: str = "moveit_py", config_dict: Optional[dict] = None, logger=None):
        self.config = config
        self.flavour = detect_flavour(flavour)
        self._api = api
        self._msg_types = msg_types
        self._scene_msgs = scene_msgs
        self.node_name = node_name
        self.config_dict = config_dict
        self.log = logger or logging.getLogger("sim2real.moveit")
        self.robot = None
        self.component = None

    # -- lifecycle ---------------------------------------------------------------------------

    def connect(self) -> "MoveItAdapter":
        """Create (or reuse) the process's MoveItPy, get the planning component, add the table."""
        if self.robot is not None:
            return self
        if self._api is None:
            self._api = load_moveit_api()
        if self._msg_types is None:
            from sim2real.ros.conversions import MsgTypes

            self._msg_types = MsgTypes.from_rclpy()
        with _INSTANCES_LOCK:
            robot = _INSTANCES.get(self._api.MoveItPy)
            if robot is None:
                kwargs = {"node_name": self.node_name}
                if self.config_dict is not None:
                    kwargs["config_dict"] = self.config_dict
                robot = self._api.MoveItPy(**kwargs)
                _INSTANCES[self._api.MoveItPy] = robot
            else:
                self.log.info("reusing this process's MoveItPy instance (one per process)")
        self.robot = robot
        self.component = robot.get_planning_component(self.config.planning_group)
        self.add_table()
        return self

    def _require(self):
        if self.robot is None:
            raise PlanningError("the MoveIt adapter is not connected; call connect() first")

    # -- planning scene ------------------------------------------------------------------------

    def add_table(self) -> None:
        """Add (or replace) the table box from the robot config as collision object 'table'."""
        self._require()
        msgs = self._scene_msgs or load_scene_msgs()
        self._scene_msgs = msgs
        table = self.config.table
        pose = msgs.Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in table.center)
        pose.orientation.w = 1.0
        box = msgs.SolidPrimitive()
        box.type = msgs.SolidPrimitive.BOX
        box.dimensions = [float(v) for v in table.size]
        obj = msgs.CollisionObject()
        obj.header.frame_id = self.config.base_frame
        obj.id = "table"
        obj.primitives = [box]
        obj.primitive_poses = [pose]
        obj.operation = msgs.CollisionObject.ADD
        with self.robot.get_planning_scene_monitor().read_write() as scene:
            scene.apply_collision_object(obj)
            scene.current_state.update()
        self.log.info(f"table collision box {list(table.size)} m at {list(table.center)} in {self.config.base_frame}")

    # -- parameters ----------------------------------------------------------------------------

    def plan_parameters(self, linear: bool, speed: float = 1.0):
        """PlanRequestParameters for a free-space (OMPL) or straight-line (Pilz LIN) move.

        ``speed`` in (0, 1] scales the config's velocity / acceleration scaling factors.
        """
        if not 0.0 < float(speed) <= 1.0:
            raise ConfigError(f"speed must be a fraction in (0, 1] of the configured scaling, got {speed}")
        if self.flavour == "jazzy":
            params = self._api.PlanRequestParameters(self.robot, "")
        else:
            params = self._api.PlanRequestParameters(self.robot)
        mc, sp = self.config.moveit, self.config.speeds
        if linear:
            params.planning_pipeline, params.planner_id = mc.linear_pipeline, mc.linear_planner_id
            vel, acc = sp.linear_velocity_scaling, sp.linear_acceleration_scaling
        else:
            params.planning_pipeline, params.planner_id = mc.pipeline, mc.planner_id
            vel, acc = sp.velocity_scaling, sp.acceleration_scaling
        params.planning_time = float(mc.planning_time)
        params.planning_attempts = int(mc.planning_attempts)
        params.max_velocity_scaling_factor = float(vel) * float(speed)
        params.max_acceleration_scaling_factor = float(acc) * float(speed)
        return params

    # -- planning ------------------------------------------------------------------------------

    def _plan(self, params, context: str):
        self.component.set_start_state_to_current_state()
        if self.flavour == "jazzy":
            result = self.component.plan(single_plan_parameters=params)
        else:
            result = self.component.plan(parameters=params)
        if not result:
            raise error_from_code(getattr(result, "error_code", None), context)
        return result.trajectory

    def plan_to_pose(self, xyz, quat_xyzw, *, linear: bool = False, speed: float = 1.0):
        """Plan the TCP to a base-frame pose; returns the RobotTrajectory (nothing moves).

        Raises:
            MoveItError subclass: no plan (IK, collision, timeout...).
        """
        self._require()
        from sim2real.ros.conversions import pose_stamped_msg

        tip_xyz, tip_quat = self.config.tip_pose(xyz, quat_xyzw)
        goal = pose_stamped_msg(self._msg_types, tip_xyz, tip_quat, self.config.base_frame)
        self.component.set_goal_state(pose_stamped_msg=goal, pose_link=self.config.tip_frame)
        kind = "straight-line (Pilz LIN)" if linear else "free-space"
        where = ", ".join(f"{v:.3f}" for v in np.asarray(xyz, dtype=float))
        return self._plan(self.plan_parameters(linear, speed), f"{kind} plan to TCP [{where}] m")

    def plan_to_joints(self, joints, *, speed: float = 1.0):
        """Plan to joint positions (radians, the group's order); returns the RobotTrajectory."""
        self._require()
        q = np.asarray(joints, dtype=np.float64)
        if q.shape != (self.config.dof,):
            raise ConfigError(f"{self.config.planning_group} has {self.config.dof} joints, got {q.shape[0]} values")
        state = self._api.RobotState(self.robot.get_robot_model())
        state.set_joint_group_positions(self.config.planning_group, q)
        state.update()
        self.component.set_goal_state(robot_state=state)
        return self._plan(self.plan_parameters(False, speed), "joint-space plan")

    # -- execution -----------------------------------------------------------------------------

    def execute(self, trajectory) -> None:
        """Execute a planned trajectory (blocking); the arm is stopped unless it finished cleanly.

        Raises:
            ExecutionError: the controller did not report success.
        """
        self._require()
        finished = False
        try:
            if self.flavour == "jazzy":
                status = self.robot.execute(trajectory, controllers=[])
            else:
                status = self.robot.execute(self.config.planning_group, trajectory, blocking=True)
            if status is not None and not bool(status):
                text = getattr(status, "status", status)
                raise ExecutionError(f"trajectory execution failed: {text}; check the controller and the "
                                     "driver (protective stop, External Control program, enabled servos)")
            finished = True
        finally:
            if not finished:
                self.stop()

    def move_to_pose(self, xyz, quat_xyzw, *, linear: bool = False, speed: float = 1.0) -> None:
        """Plan then execute a TCP move (see :meth:`plan_to_pose` and :meth:`execute`)."""
        self.execute(self.plan_to_pose(xyz, quat_xyzw, linear=linear, speed=speed))

    def move_to_joints(self, joints, *, speed: float = 1.0) -> None:
        """Plan then execute a joint-space move (e.g. home)."""
        self.execute(self.plan_to_joints(joints, speed=speed))

    def go_home(self, speed: float = 1.0) -> None:
        """Move to the config's home joints."""
        self.move_to_joints(self.config.home_joints, speed=speed)

    def ik_reachable(self, tcp_xyz, tcp_quat_xyzw, timeout_s: float = 0.1) -> bool:
        """True when the TCP pose (base frame) has an IK solution for the tip frame (nothing moves)."""
        self._require()
        from sim2real.ros.conversions import pose_msg

        tip_xyz, tip_quat = self.config.tip_pose(tcp_xyz, tcp_quat_xyzw)
        state = self._api.RobotState(self.robot.get_robot_model())
        goal = pose_msg(self._msg_types, tip_xyz, tip_quat)
        return bool(state.set_from_ik(self.config.planning_group, goal, self.config.tip_frame, timeout_s))

    def current_state(self) -> tuple:
        """(tip_xyz (3,), tip_quat_xyzw (4,), joints (n,)) of the monitored current state, base frame."""
        self._require()
        from sim2real.ros.conversions import pose_from_msg

        with self.robot.get_planning_scene_monitor().read_only() as scene:
            state = scene.current_state
            xyz, quat = pose_from_msg(state.get_pose(self.config.tip_frame))
            joints = np.asarray(state.get_joint_group_positions(self.config.planning_group), dtype=np.float64)
        return xyz, quat, joints

    def stop(self) -> None:
        """Stop any trajectory in execution (never raises: it runs inside ``finally`` blocks)."""
        if self.robot is None:
            return
        try:
            getter = (getattr(self.robot, "get_trajectory_execution_manager", None)
                      or getattr(self.robot, "get_trajactory_execution_manager", None))  # upstream typo
            if getter is None:
                self.log.error("moveit_py has no trajectory execution manager binding; cannot stop the arm "
                               "from Python, use the teach pendant / emergency stop")
                return
            getter().stop_execution(True)
        except Exception as e:  # noqa: BLE001 - stopping must never mask the original error
            self.log.error(f"stopping the arm failed: {e}")

    @contextlib.contextmanager
    def motion(self):
        """Context manager: whatever happens inside, the arm is stopped on the way out."""
        try:
            yield self
        finally:
            self.stop()


def forget_instances() -> None:
    """Drop the per-process MoveItPy registry (tests only; real processes keep one for life)."""
    with _INSTANCES_LOCK:
        _INSTANCES.clear()
