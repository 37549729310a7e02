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

Nothing unchecked is executed: every planned trajectory is sampled (forward kinematics of its
joint states through moveit_py's ``RobotState``, densified to ``FK_STEP_RAD``) and checked
against the safety envelope by :func:`sim2real.trajectory_check.check_trajectory` before
``execute()``; a refused plan raises :class:`~sim2real.errors.SafetyError` and the arm does not
move (a free-space plan is re-planned up to ``SAFETY_REPLANS`` times first: OMPL is random).
An adapter without an envelope refuses to execute. While something is (or may be) held, free-
space plans carry an orientation path constraint keeping the tool pointing down (within the
envelope's ``max_tilt_deg``; yaw free). ``stop()`` (thread-safe) stops the trajectory through
the trajectory execution manager; the interrupted ``execute()`` raises ``MotionStopped``.

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

from sim2real.errors import ConfigError, MotionStopped, PlanningError, SafetyError
from sim2real.robot_config import RobotConfig
from sim2real.trajectory_check import MotionLimits, TrajectorySamples, check_trajectory

FK_STEP_RAD = 0.02
"""Largest joint step between two checked samples of a trajectory (rad): at 0.8 m from the base
about 1.6 cm of tool travel, so an excursion between the planner's waypoints is seen."""

SAFETY_REPLANS = 3
"""Free-space plans tried before a trajectory the envelope refuses is given up (OMPL is random)."""

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
                           Pose=geometry_msgs.Pose, Constraints=moveit_msgs.Constraints,
                           OrientationConstraint=moveit_msgs.OrientationConstraint)


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
        envelope: the :class:`sim2real.safety.SafetyEnvelope` every trajectory is checked against
            (in the workspace frame); without one nothing is executed (see :meth:`set_envelope`).
        T_base_workspace: (4, 4) workspace -> base of the calibration (None: the same frame).
        limits: joint / tool speed limits measured on each trajectory.
    """

    def __init__(self, config: RobotConfig, *, api=None, msg_types=None, scene_msgs=None, flavour: str = "auto",
                 node_name: str = "moveit_py", config_dict: Optional[dict] = None, logger=None,
                 envelope=None, T_base_workspace=None, limits: MotionLimits = MotionLimits()):
        self.config = config
        self.set_envelope(envelope, T_base_workspace, limits)
        self._stop_gen = 0
        self._stop_lock = threading.Lock()
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

    def set_envelope(self, envelope, T_base_workspace=None, limits: Optional[MotionLimits] = None) -> None:
        """The envelope (workspace frame), its frame and the speed limits every trajectory is checked against."""
        from sim2real.transforms import RigidTransform

        self.envelope = envelope
        self.T_workspace_base = (None if T_base_workspace is None else
                                 RigidTransform.from_matrix(T_base_workspace, "T_base_workspace").inverse())
        if limits is not None:
            self.limits = limits

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

    def plan_to_pose(self, xyz, quat_xyzw, *, linear: bool = False, speed: float = 1.0, holding: bool = True):
        """Plan the TCP to a base-frame pose; returns the RobotTrajectory (nothing moves).

        While ``holding`` (True when unknown), a free-space plan is constrained to keep the tool
        pointing down (:meth:`down_constraint`); Pilz LIN plans interpolate the orientation of two
        downward poses, and every plan is checked sample by sample before execution anyway.

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
        constrained = holding and not linear
        if constrained:
            self._set_path_constraints(self.down_constraint(tip_quat))
        try:
            return self._plan(self.plan_parameters(linear, speed), f"{kind} plan to TCP [{where}] m")
        finally:
            if constrained:
                self._set_path_constraints(None)

    def down_constraint(self, tip_quat_xyzw):
        """moveit_msgs/Constraints: the tip keeps ``tip_quat_xyzw`` within the envelope's tilt, yaw free."""
        msgs = self._scene_msgs or load_scene_msgs()
        self._scene_msgs = msgs
        tilt = np.radians(self.envelope.max_tilt_deg if self.envelope is not None else 10.0)
        oc = msgs.OrientationConstraint()
        oc.header.frame_id = self.config.base_frame
        oc.link_name = self.config.tip_frame
        q = np.asarray(tip_quat_xyzw, dtype=float)
        oc.orientation.x, oc.orientation.y, oc.orientation.z, oc.orientation.w = (float(v) for v in q)
        # Tolerances about the tip's own axes (rotation-vector parameterisation): tilting is
        # rotating about x or y; the yaw between pick and place turns about z, so z is free.
        oc.absolute_x_axis_tolerance = oc.absolute_y_axis_tolerance = float(tilt)
        oc.absolute_z_axis_tolerance = float(np.pi)
        oc.parameterization = 1  # moveit_msgs/OrientationConstraint.ROTATION_VECTOR
        oc.weight = 1.0
        constraints = msgs.Constraints()
        constraints.name = "sim2real_tool_down"
        constraints.orientation_constraints = [oc]
        return constraints

    def _set_path_constraints(self, constraints) -> None:
        setter = getattr(self.component, "set_path_constraints", None)
        if setter is None:
            if constraints is not None:
                self.log.warning("this moveit_py has no set_path_constraints; the tool-down constraint is enforced "
                                 "only by the trajectory check")
            return
        if constraints is None:
            msgs = self._scene_msgs or load_scene_msgs()
            constraints = msgs.Constraints()  # empty = no path constraints for the next plans
        setter(path_constraints=constraints)

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

    # -- checking ------------------------------------------------------------------------------

    def trajectory_samples(self, trajectory) -> TrajectorySamples:
        """Sample a planned RobotTrajectory: joint states densified to ``FK_STEP_RAD``, each put
        through the robot model's forward kinematics (moveit_py ``RobotState.get_pose``), the tip
        pose turned into the TCP's CLIPort pose in the workspace frame (the envelope's frame)."""
        group = self.config.planning_group
        states = list(trajectory)
        if not states:
            raise SafetyError("the planned trajectory has no waypoints; the arm did not move")
        q = np.array([np.asarray(s.get_joint_group_positions(group), dtype=np.float64) for s in states])
        qd = None
        if all(hasattr(s, "get_joint_group_velocities") for s in states):
            qd = np.array([np.asarray(s.get_joint_group_velocities(group), dtype=np.float64) for s in states])
            if qd.shape != q.shape:
                qd = None
        durations = np.asarray(list(trajectory.get_waypoint_durations()), dtype=np.float64).reshape(-1)
        if durations.shape != (len(states),):
            raise SafetyError(f"the planned trajectory has {len(states)} waypoints but {durations.shape[0]} durations; "
                              "the arm did not move")
        t = np.cumsum(durations) - durations[0]
        steps = [_subdivisions(q[k] - q[k - 1]) for k in range(1, len(q))]
        dense_t, dense_q = [t[:1]], [q[:1]]
        for k, n in enumerate(steps, start=1):
            f = np.arange(1, n + 1)[:, None] / n
            dense_q.append(q[k - 1] + f * (q[k] - q[k - 1]))
            dense_t.append(t[k - 1] + f[:, 0] * (t[k] - t[k - 1]))
        dense_t, dense_q = np.concatenate(dense_t), np.concatenate(dense_q)
        xyz, quat = self._forward_kinematics(dense_q)
        vel = None
        if qd is not None:  # stated velocities belong to the waypoints; samples between use the differences
            vel = np.zeros_like(dense_q)
            vel[np.concatenate([[0], np.cumsum(steps)]).astype(int)] = qd
        return TrajectorySamples(dense_t, xyz, quat, dense_q, vel)

    def _forward_kinematics(self, joints: np.ndarray):
        """(N, 3) TCP positions and (N, 4) CLIPort orientations, workspace frame, of joint rows.

        The tip pose of each row comes from the robot model (moveit_py ``RobotState``); the TCP
        offset, the CLIPort convention and the workspace frame are applied to all rows at once
        (the same maths as RobotConfig.tcp_pose / cliport_orientation). A row whose FK is not a
        finite pose with a unit quaternion becomes NaN, which the check refuses."""
        from scipy.spatial.transform import Rotation

        from sim2real.ros.conversions import pose_from_msg

        state = self._api.RobotState(self.robot.get_robot_model())
        n = len(joints)
        tip_xyz, tip_quat = np.full((n, 3), np.nan), np.full((n, 4), np.nan)
        for i, q in enumerate(joints):
            if not np.all(np.isfinite(q)):
                continue
            state.set_joint_group_positions(self.config.planning_group, q)
            state.update()
            try:
                tip_xyz[i], tip_quat[i] = pose_from_msg(state.get_pose(self.config.tip_frame))
            except Exception:  # noqa: BLE001 - a pose we cannot read is a refusal (NaN)
                continue
        ok = np.all(np.isfinite(tip_xyz), axis=1) & np.all(np.isfinite(tip_quat), axis=1)
        ok &= np.abs(np.linalg.norm(np.where(ok[:, None], tip_quat, 1.0), axis=1) - 1.0) < 1e-3
        xyz, quat = np.full((n, 3), np.nan), np.full((n, 4), np.nan)
        if np.any(ok):
            offset = self.config.tcp_offset.transform()
            R_tip = Rotation.from_quat(tip_quat[ok])
            p = tip_xyz[ok] + R_tip.apply(np.array(offset.translation))
            r = R_tip * offset.rotation * Rotation.from_euler("xyz", self.config.down_rpy).inv()
            if self.T_workspace_base is not None:
                p = self.T_workspace_base.rotation.apply(p) + np.array(self.T_workspace_base.translation)
                r = self.T_workspace_base.rotation * r
            xyz[ok], quat[ok] = p, r.as_quat()
        return xyz, quat

    def check(self, trajectory, *, holding: bool = True, region: str = "workspace", label: str = "trajectory"):
        """SafetyVerdict of a planned trajectory against the envelope (fails closed: no envelope,
        no samples or any error while sampling is a refusal). Nothing moves."""
        from sim2real.safety import SafetyVerdict

        if self.envelope is None:
            return SafetyVerdict(False, (f"{label}: no safety envelope is configured for the MoveIt adapter "
                                         "(MoveItAdapter(envelope=...) / set_envelope); nothing is executed",))
        try:
            samples = self.trajectory_samples(trajectory)
        except SafetyError as e:
            return SafetyVerdict(False, (f"{label}: {e}",))
        except Exception as e:  # noqa: BLE001 - a trajectory we cannot read is a trajectory we do not execute
            return SafetyVerdict(False, (f"{label}: cannot sample the planned trajectory ({type(e).__name__}: {e})",))
        return check_trajectory(samples, self.envelope, holding=holding, region=region, limits=self.limits, label=label)

    # -- execution -----------------------------------------------------------------------------

    def stop_generation(self) -> int:
        """A counter ``stop()`` increments: a motion compares it before and after to see a stop."""
        with self._stop_lock:
            return self._stop_gen

    def execute(self, trajectory, *, holding: bool = True, region: str = "workspace", label: str = "trajectory",
                stop_gen: Optional[int] = None) -> None:
        """Check the trajectory against the envelope, then execute it (blocking); the arm is stopped
        unless it finished cleanly.

        Raises:
            SafetyError: the trajectory leaves the envelope (the arm did not move).
            MotionStopped: ``stop()`` was called during the motion (or since ``stop_gen``).
            ExecutionError: the controller did not report success.
        """
        self._require()
        gen = self.stop_generation() if stop_gen is None else stop_gen
        self.check(trajectory, holding=holding, region=region, label=label).raise_if_unsafe()
        self._execute_checked(trajectory, gen, label)

    def _execute_checked(self, trajectory, gen: int, label: str) -> None:
        """Execute a trajectory that has just passed :meth:`check` (see :meth:`execute`)."""
        if self.stop_generation() != gen:
            raise MotionStopped(f"{label}: stopped before execution; the arm did not move")
        finished = False
        try:
            if self.flavour == "jazzy":
                status = self.robot.execute(trajectory, controllers=[])
            else:
                status = self.robot.execute(self.config.planning_group, trajectory, blocking=True)
            if self.stop_generation() != gen:
                raise MotionStopped(f"{label}: stopped by stop() during execution; the arm holds where it stopped")
            if status is not None and not bool(status):
                text = getattr(status, "status", status)
                raise ExecutionError(f"trajectory execution failed: {text}; check the controller and the "
                                     "driver (protective stop, External Control program, enabled servos)")
            finished = True
        finally:
            if not finished:
                self.stop()

    def move_to_pose(self, xyz, quat_xyzw, *, linear: bool = False, speed: float = 1.0, holding: bool = True) -> None:
        """Plan, check against the envelope, then execute a TCP move (base frame).

        A free-space plan the envelope refuses is re-planned (``SAFETY_REPLANS`` tries in all).

        Raises:
            SafetyError: every plan left the envelope; the arm did not move.
            MoveItError subclass / MotionStopped: see :meth:`plan_to_pose` and :meth:`execute`.
        """
        gen = self.stop_generation()
        kind = "straight-line" if linear else "free-space"
        tries = 1 if linear else SAFETY_REPLANS
        verdict = None
        for attempt in range(tries):
            trajectory = self.plan_to_pose(xyz, quat_xyzw, linear=linear, speed=speed, holding=holding)
            verdict = self.check(trajectory, holding=holding, label=f"{kind} trajectory")
            if verdict.ok:  # checked just now: execute without sampling it a second time
                return self._execute_checked(trajectory, gen, f"{kind} trajectory")
            self.log.warning(f"planned {kind} trajectory refused by the safety envelope (try {attempt + 1} of "
                             f"{tries}): {'; '.join(verdict.reasons)}")
        verdict.raise_if_unsafe()

    def move_to_joints(self, joints, *, speed: float = 1.0, holding: bool = True, region: str = "workspace") -> None:
        """Plan, check, then execute a joint-space move."""
        gen = self.stop_generation()
        self.execute(self.plan_to_joints(joints, speed=speed), holding=holding, region=region,
                     label="joint-space trajectory", stop_gen=gen)

    def go_home(self, speed: float = 1.0, holding: bool = False) -> None:
        """Move to the config's home joints (checked: floor, ceiling, speeds; home is outside the box)."""
        self.move_to_joints(self.config.home_joints, speed=speed, holding=holding, region="home")

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
        """Stop any trajectory in execution now (thread-safe; never raises: it runs inside ``finally``
        blocks). A blocking :meth:`execute` in another thread then raises MotionStopped."""
        with self._stop_lock:
            self._stop_gen += 1
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


def _subdivisions(dq) -> int:
    """Samples a joint step ``dq`` is cut into so no joint moves more than FK_STEP_RAD per sample."""
    step = float(np.abs(dq).max()) if np.size(dq) else 0.0
    return max(1, int(np.ceil(step / FK_STEP_RAD))) if np.isfinite(step) else 1


def forget_instances() -> None:
    """Drop the per-process MoveItPy registry (tests only; real processes keep one for life)."""
    with _INSTANCES_LOCK:
        _INSTANCES.clear()
