"""One robot interface for the real arm, the twin and dry runs.

``RobotPort`` is what the episode loop and the pick-and-place executor talk to. Poses are
(xyz (3,) metres, quat_xyzw (4,)) of the tool point in the robot base frame, in the CLIPort
convention: the identity quaternion is the tool pointing straight down with its x axis along
the base x axis; a yaw theta about the base z axis turns the tool.

Implementations: :class:`sim2real.twin.robot.TwinRobot` (PyBullet, IK + position control),
:class:`DryRunRobot` (records, never moves), and the MoveIt 2 robot under ``sim2real/ros/``.

Stopping: ``stop()`` is thread-safe. Called from another thread (the operator console, a ROS
service, a signal handler) while ``move_to`` or ``home`` is running, it interrupts that motion,
which then raises :class:`~sim2real.errors.MotionStopped`. Called with no motion running it
holds the arm still; it does not latch (the next command moves again). An operator's stop goes
through :class:`StopLatch`, which does: nothing moves again until the next job starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, runtime_checkable

import threading
import time

import numpy as np

from sim2real.errors import MotionStopped

HOME_SPEED = 1.0
"""Default ``home()`` speed: the fraction of the robot's own joint speed / velocity scaling limit."""


@dataclass(frozen=True)
class RobotState:
    """A snapshot of the arm.

    Attributes:
        tcp_xyz: (3,) tool point position, metres, base frame.
        tcp_quat_xyzw: (4,) tool orientation (CLIPort convention, identity = pointing down).
        joints: (n,) joint positions in radians.
        suction: suction on (None for a gripper robot).
        gripper_closed: gripper closed (None for a suction robot).
        holding: grasp feedback: True when the hardware reports an object held (Robotiq object
            detection, vacuum sensor, the twin's constraint), False when it reports none, None
            when the robot cannot tell. Callers must treat None as "maybe holding".
    """

    tcp_xyz: np.ndarray
    tcp_quat_xyzw: np.ndarray
    joints: np.ndarray
    suction: Optional[bool] = None
    gripper_closed: Optional[bool] = None
    holding: Optional[bool] = None

    def to_dict(self) -> dict:
        return {"tcp_xyz": [float(v) for v in self.tcp_xyz], "tcp_quat_xyzw": [float(v) for v in self.tcp_quat_xyzw],
                "joints": [float(v) for v in self.joints], "suction": self.suction,
                "gripper_closed": self.gripper_closed, "holding": self.holding}


@runtime_checkable
class RobotPort(Protocol):
    """What every robot (real, twin, dry-run) provides."""

    tool: str
    """'suction' or 'gripper'."""

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        """Move the tool point to ``pose`` = (xyz, quat_xyzw) at ``speed`` m/s.

        Raises:
            PlanningError: no IK solution / planner failure / motion did not converge.
            SafetyError: the robot's own limits refused the target.
            MotionStopped: ``stop()`` interrupted the motion (from another thread).
        """

    def home(self, speed: float = HOME_SPEED) -> None:
        """Joint-space move to the robot's home (capture) joints, clear of the camera's view.

        Returns only once the arm is at home and still (settled), so a frame captured right after
        shows the scene without the arm. ``speed`` is a fraction in (0, 1] of the robot's joint
        speed / velocity scaling limit. Callers send the arm home through
        :func:`sim2real.motion.go_home`, which lifts the tool clear (checked by the safety
        envelope) before this joint move.

        Raises:
            PlanningError: no path home.
            HardwareError: the arm did not settle at home.
            MotionStopped: ``stop()`` interrupted the motion.
        """

    def set_suction(self, on: bool) -> None:
        """Suction on or off (suction tools)."""

    def set_gripper(self, closed: bool) -> None:
        """Close or open the parallel gripper (gripper tools)."""

    def state(self) -> RobotState:
        """The current state."""

    def stop(self) -> None:
        """Stop all motion now (thread-safe, see the module doc); always called in a ``finally`` by callers."""


def set_tool(robot: RobotPort, engaged: bool) -> None:
    """Suction on/off or gripper closed/open, whichever tool ``robot`` has."""
    if robot.tool == "gripper":
        robot.set_gripper(engaged)
    else:
        robot.set_suction(engaged)


@dataclass
class DryRunRobot:
    """A robot that records every command and never moves anything.

    Its state follows the commands (the tool point "is" where it was last sent), so a whole
    episode can be dry-run against a policy and a camera, e.g. to check a new task's actions
    before the real arm runs them.

    Attributes:
        tool: 'suction' or 'gripper'.
        home_xyz: tool point at home (the capture pose), metres.
        move_duration_s: wall time each motion pretends to take (0: instant); a ``stop()`` from
            another thread during that time interrupts it with MotionStopped, as on a real arm.
        holding: grasp feedback: None = the robot cannot tell (like most hardware); True = a grasp
            succeeds (``state().holding`` is True while the tool is engaged); False = grasps fail.
        commands: list of dicts, one per call, in order.
    """

    tool: str = "suction"
    home_xyz: tuple = (0.3, 0.0, 0.4)
    move_duration_s: float = 0.0
    holding: Optional[bool] = None
    commands: list = field(default_factory=list)

    def __post_init__(self):
        self._xyz = np.asarray(self.home_xyz, dtype=np.float64)
        self._quat = np.array([0.0, 0.0, 0.0, 1.0])
        self._engaged = False
        self.stopped = 0
        self._stop_gen = 0
        self._lock = threading.Lock()

    def _wait(self, what: str) -> None:
        """Pretend to move for ``move_duration_s``; raise MotionStopped if stop() comes meanwhile."""
        with self._lock:
            gen = self._stop_gen
        deadline = time.monotonic() + self.move_duration_s
        while time.monotonic() < deadline:
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
            with self._lock:
                if self._stop_gen != gen:
                    raise MotionStopped(f"{what} interrupted by stop()")

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
        self.commands.append({"cmd": "move_to", "xyz": xyz.tolist(), "quat_xyzw": quat.tolist(),
                              "speed": float(speed), "linear": bool(linear)})
        self._wait("move_to")
        self._xyz, self._quat = xyz, quat

    def home(self, speed: float = HOME_SPEED) -> None:
        self.commands.append({"cmd": "home", "speed": float(speed)})
        self._wait("home")
        self._xyz, self._quat = np.asarray(self.home_xyz, dtype=np.float64), np.array([0.0, 0.0, 0.0, 1.0])

    def set_suction(self, on: bool) -> None:
        self.commands.append({"cmd": "set_suction", "on": bool(on)})
        self._engaged = bool(on)

    def set_gripper(self, closed: bool) -> None:
        self.commands.append({"cmd": "set_gripper", "closed": bool(closed)})
        self._engaged = bool(closed)

    def state(self) -> RobotState:
        suction = self._engaged if self.tool == "suction" else None
        gripper = self._engaged if self.tool == "gripper" else None
        holding = self.holding if self.holding is None else bool(self.holding and self._engaged)
        return RobotState(self._xyz.copy(), self._quat.copy(), np.zeros(6), suction, gripper, holding)

    def stop(self) -> None:
        with self._lock:
            self._stop_gen += 1
            self.stopped += 1
            self.commands.append({"cmd": "stop"})


class StopLatch:
    """A RobotPort whose operator stop holds until the next job (a step, a homing, a trial) starts.

    ``robot.stop()`` interrupts the motion that is running; a stop that comes between two
    commands (while the tool switches, between a step and its homing) would let the next one
    start. After :meth:`trip` every motion and tool command raises MotionStopped, so nothing
    moves and nothing held is released, until :meth:`reset` opens the latch for the next job.
    ``stop()`` stays the routine stop that callers make in a ``finally``: it does not trip.
    Every other attribute (``tool``, ``reachable``, a dry-run robot's ``commands``) is the
    wrapped robot's.
    """

    def __init__(self, robot: RobotPort):
        self.robot = robot
        self._tripped = threading.Event()

    @property
    def tripped(self) -> bool:
        return self._tripped.is_set()

    def trip(self) -> None:
        """The operator's stop: stop now, and refuse every command until :meth:`reset` (thread-safe)."""
        self._tripped.set()
        self.robot.stop()

    def reset(self) -> None:
        """A new job starts (call it before the job's first command, after the job was accepted)."""
        self._tripped.clear()

    def _refuse_if_tripped(self, what: str) -> None:
        if self._tripped.is_set():
            raise MotionStopped(f"{what} refused: the operator stopped the arm; it holds until the next step starts")

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        self._refuse_if_tripped("move_to")
        self.robot.move_to(pose, speed, linear=linear)

    def home(self, speed: float = HOME_SPEED) -> None:
        self._refuse_if_tripped("home")
        self.robot.home(speed)

    def set_suction(self, on: bool) -> None:
        self._refuse_if_tripped("set_suction")
        self.robot.set_suction(on)

    def set_gripper(self, closed: bool) -> None:
        self._refuse_if_tripped("set_gripper")
        self.robot.set_gripper(closed)

    def state(self):
        return self.robot.state()

    def stop(self) -> None:
        self.robot.stop()

    def __getattr__(self, name: str):
        return getattr(self.robot, name)
