"""The real arm as a :class:`sim2real.robot.RobotPort`: MoveIt adapter + configured gripper.

RobotPort poses are the tool point's (xyz metres, quat_xyzw) in the base frame in the CLIPort
convention (identity = tool pointing down); this class turns them into the TCP orientation of
the robot config (``down_rpy``), then into a ``tip_frame`` goal (``tcp_offset``) for MoveIt.
``speed`` (m/s) becomes a fraction of the config's scaling factors (``speeds.max_tcp_speed``).
Every motion goes plan -> safety envelope (the whole trajectory, see
:meth:`~sim2real.ros.moveit_adapter.MoveItAdapter.execute`) -> robot; ``home()`` returns once
the arm is at its home joints and still; ``stop()`` is thread-safe.
"""
from __future__ import annotations

import time

import numpy as np

from sim2real.errors import ConfigError, HardwareError
from sim2real.robot import HOME_SPEED, RobotState
from sim2real.robot_config import RobotConfig

HOME_TOLERANCE_RAD = 0.01
"""Largest joint error at which the arm counts as at home."""

SETTLE_TIMEOUT_S = 3.0
"""How long ``home()`` waits for the monitored joints to reach home and stop moving."""


class MoveItRobot:
    """RobotPort over a connected :class:`~sim2real.ros.moveit_adapter.MoveItAdapter` and a gripper.

    Args:
        config: the robot config.
        adapter: a MoveItAdapter (connected, or connected on first use).
        gripper: a :class:`sim2real.ros.grippers.Gripper` (or None for motion-only tests).
    """

    def __init__(self, config: RobotConfig, adapter, gripper=None):
        self.config, self.adapter, self.gripper = config, adapter, gripper
        self.tool = "gripper" if config.gripper.type == "parallel" else "suction"
        self._engaged = None
        self.holds_nothing = False  # True while calibrating: the board is bolted on, nothing can drop

    @property
    def maybe_holding(self) -> bool:
        """True unless the tool is known to be released: the trajectory check and the tool-down
        path constraint then apply (unknown counts as holding). False while calibrating
        (``holds_nothing``: the board is bolted to the flange)."""
        return not self.holds_nothing and self._engaged is not False

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        """Plan, check and execute the tool point to ``pose``.

        Raises:
            MoveItError subclasses (PlanningError), SafetyError (the planned trajectory leaves the
            envelope; the arm did not move), MotionStopped.
        """
        xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
        self.adapter.connect()
        self.adapter.move_to_pose(xyz, self.config.tcp_orientation(quat), linear=linear,
                                  speed=self.config.speeds.fraction(speed), holding=self.maybe_holding)

    def home(self, speed: float = HOME_SPEED) -> None:
        """Joint-space move to the config's home joints (checked trajectory); returns once the arm is
        there and still (so a frame captured next shows no arm).

        Raises:
            PlanningError / SafetyError / MotionStopped from the move; HardwareError when the
            monitored joints do not settle at home within ``SETTLE_TIMEOUT_S``.
        """
        if not (np.isfinite(speed) and 0.0 < float(speed) <= 1.0):
            raise ConfigError(f"home speed must be a fraction in (0, 1], got {speed}")
        self.adapter.connect()
        self.adapter.go_home(float(speed), holding=self._engaged is True)
        self._wait_settled()

    def _wait_settled(self, timeout_s: float = SETTLE_TIMEOUT_S, poll_s: float = 0.05) -> None:
        home = np.asarray(self.config.home_joints, dtype=np.float64)
        deadline, previous = time.monotonic() + timeout_s, None
        while True:
            joints = np.asarray(self.adapter.current_state()[2], dtype=np.float64)
            at_home = joints.shape == home.shape and float(np.abs(joints - home).max()) <= HOME_TOLERANCE_RAD
            still = previous is not None and float(np.abs(joints - previous).max()) <= HOME_TOLERANCE_RAD / 10
            if at_home and still:
                return
            if time.monotonic() > deadline:
                raise HardwareError(f"the arm did not settle at home within {timeout_s:.1f} s (joints "
                                    f"{np.round(joints, 3).tolist()}, home {np.round(home, 3).tolist()}); check the "
                                    "driver and the controller (protective stop?)")
            previous = joints
            time.sleep(poll_s)

    def _tool(self, engaged: bool, kind: str) -> None:
        if self.gripper is None:
            raise ConfigError("this robot has no gripper configured")
        if kind != self.tool:
            raise ConfigError(f"the robot's tool is a {self.tool}, not a {kind}; check gripper.type in the robot config")
        self.gripper.set(bool(engaged))
        self._engaged = bool(engaged)

    def set_suction(self, on: bool) -> None:
        self._tool(on, "suction")

    def set_gripper(self, closed: bool) -> None:
        self._tool(closed, "gripper")

    def go_home(self, speed: float = 1.0) -> None:
        """Deprecated name of :meth:`home`."""
        self.home(speed)

    def state(self) -> RobotState:
        self.adapter.connect()
        tip_xyz, tip_quat, joints = self.adapter.current_state()
        tcp_xyz, tcp_quat = self.config.tcp_pose(tip_xyz, tip_quat)
        return RobotState(tcp_xyz, self.config.cliport_orientation(tcp_quat), joints,
                          suction=self._engaged if self.tool == "suction" else None,
                          gripper_closed=self._engaged if self.tool == "gripper" else None, holding=None)

    def reachable(self, pose) -> bool:
        """IK check of a RobotPort pose (for sim2real.safety.check_plan's ``reachable``)."""
        xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
        self.adapter.connect()
        return self.adapter.ik_reachable(xyz, self.config.tcp_orientation(quat))

    def stop(self) -> None:
        """Stop the current trajectory now (thread-safe: the ~/stop service calls it during a step)."""
        self.adapter.stop()


class FrameRobot:
    """A RobotPort taking poses in the workspace frame and driving one that takes base-frame poses.

    The calibration's ``T_base_workspace`` (workspace -> base) is applied to every pose; with
    None the poses pass through unchanged. ``state()`` is mapped back to the workspace frame.
    """

    def __init__(self, robot, T_base_workspace=None):
        from sim2real.transforms import RigidTransform

        self.robot = robot
        self.tool = robot.tool
        if not hasattr(robot, "reachable"):
            self.reachable = None  # no IK check available (e.g. DryRunRobot): safety skips it
        self.T = None if T_base_workspace is None else RigidTransform.from_matrix(T_base_workspace, "T_base_workspace")

    def _to_base(self, pose):
        xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
        if self.T is None:
            return xyz, quat
        from sim2real.transforms import RigidTransform

        return (self.T @ RigidTransform.from_xyz_quat(xyz, quat)).as_xyz_quat()

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        self.robot.move_to(self._to_base(pose), speed, linear=linear)

    def reachable(self, pose) -> bool:
        return self.robot.reachable(self._to_base(pose))

    def home(self, speed: float = HOME_SPEED) -> None:
        self.robot.home(speed)

    def set_suction(self, on: bool) -> None:
        self.robot.set_suction(on)

    def set_gripper(self, closed: bool) -> None:
        self.robot.set_gripper(closed)

    def state(self) -> RobotState:
        s = self.robot.state()
        if self.T is None:
            return s
        from dataclasses import replace

        from sim2real.transforms import RigidTransform

        xyz, quat = (self.T.inverse() @ RigidTransform.from_xyz_quat(s.tcp_xyz, s.tcp_quat_xyzw)).as_xyz_quat()
        return replace(s, tcp_xyz=xyz, tcp_quat_xyzw=quat)

    def stop(self) -> None:
        self.robot.stop()


DEPLOY_HINT = "or run the arm through ROS 2 launch instead: `ros2 launch sim2real deploy.launch.py robot:=<ur5|xarm6|xarm7>`"


def connect_moveit_robot(config: RobotConfig, T_base_workspace=None, node_name: str = "sim2real_run",
                         envelope=None, limits=None):
    """The real arm as a workspace-frame RobotPort from a plain process (no launch file).

    Starts rclpy, a node spun on a background thread (the gripper's service / action replies
    arrive there), MoveItPy with the parameters built from ``config`` (moveit_configs_utils /
    uf_ros_lib), and the configured gripper.

    Every trajectory is checked against ``envelope`` (workspace frame; default: the robot
    config's envelope on the default workspace) before it runs.

    Returns:
        (FrameRobot, close) where ``close()`` stops the arm and shuts the node down.

    Raises:
        RosNotAvailableError (exit 2): rclpy / moveit_py / the MoveIt config packages cannot be
            imported; the message says what to install, or to use ``ros2 launch sim2real deploy.launch.py``.
    """
    from sim2real.ros import RosNotAvailableError, require_ros
    from sim2real.ros.moveit_adapter import MoveItAdapter, load_moveit_api

    try:
        rclpy = require_ros("rclpy", f"driving the {config.name} from `sim2real run`")
        executors = require_ros("rclpy.executors", f"driving the {config.name} from `sim2real run`")
        api = load_moveit_api()
    except RosNotAvailableError as e:
        raise RosNotAvailableError(f"{e}; {DEPLOY_HINT}") from None
    from sim2real.ros.grippers import make_gripper
    from sim2real.ros.launch_plan import moveit_params

    try:
        params = moveit_params(config)
    except ImportError as e:
        raise RosNotAvailableError(f"cannot build MoveIt's parameters for {config.name} ({e}): install the robot's "
                                   f"MoveIt config package and source your workspace; {DEPLOY_HINT}") from None
    import threading

    if not rclpy.ok():
        rclpy.init(args=None)
    node = rclpy.create_node(node_name)
    executor = executors.MultiThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    robot = None

    def close() -> None:
        try:
            if robot is not None:
                robot.stop()
        finally:
            from sim2real.ros.spinning import stop_spinning

            if stop_spinning(executor, spinner):
                node.destroy_node()  # (still spinning: left to the process exit rather than crash it)
            rclpy.try_shutdown()

    try:
        envelope = envelope if envelope is not None else config.safety_envelope().in_frame(T_base_workspace)
        extra = {} if limits is None else {"limits": limits}
        adapter = MoveItAdapter(config, api=api, config_dict=params, envelope=envelope,
                                T_base_workspace=T_base_workspace, **extra).connect()
        gripper = make_gripper(node, config.gripper)
        robot = FrameRobot(MoveItRobot(config, adapter, gripper), T_base_workspace)
    except BaseException:
        close()
        raise
    return robot, close
