"""The twin robot: a RobotPort over the PyBullet arm, with IK and joint position control.

* IK runs in a private kinematics-only PyBullet client, so a target is solved and verified
  (forward kinematics within tolerance) before the simulated arm moves at all; an unreachable
  pose raises :class:`~sim2real.errors.PlanningError` and nothing moves.
* Motion is position control along a time-parameterised joint trajectory: a straight tool-point
  line (``linear=True``, IK every centimetre) or a joint-space interpolation, timed so the tool
  point moves at the requested speed and no joint exceeds ``max_joint_speed``.
* Suction is the simulator's primitive: a fixed constraint to the body touching the cup. The
  parallel gripper closes its prismatic fingers by position control; when both fingers touch the
  same body it is held by a fixed constraint as well ("grasp assist"), which keeps grasps
  reliable at the twin's coarse physics step.
* ``stop()`` is thread-safe: from another thread (the operator console) it raises a flag that the
  running ``move_to`` / ``home`` checks at every simulation step; the arm then holds where it is
  and the motion raises :class:`~sim2real.errors.MotionStopped`. PyBullet is only ever called
  from the thread running the motion.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from sim2real.errors import ConfigError, HardwareError, MotionStopped, PlanningError
from sim2real.robot import HOME_SPEED, RobotState
from sim2real.twin.scene import TIMESTEP, TwinScene

TOOL_DOWN = Rotation.from_euler("x", np.pi)
"""Rotation from the CLIPort tool convention (identity = pointing down) to the tcp link frame."""

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 7))


@dataclass(frozen=True)
class TwinControl:
    """Joint control and IK settings of the twin robot.

    Attributes:
        home_joints: (6,) radians of the capture pose (arm clear of the camera's view).
        max_joint_speed: rad/s cap on every joint.
        tolerance_m, tolerance_rad: IK acceptance (tool point error after solving).
        settle_tol_rad: joint error at which a move counts as reached.
        timeout_s: extra simulated time allowed to converge after the trajectory ends.
        linear_step_m: spacing of IK points along straight-line moves.
        suction_distance_m: a body this close to the suction cup is grasped.
    """

    home_joints: tuple
    max_joint_speed: float = 3.0
    tolerance_m: float = 0.003
    tolerance_rad: float = 0.03
    settle_tol_rad: float = 0.003
    timeout_s: float = 1.5
    linear_step_m: float = 0.02
    suction_distance_m: float = 0.006

    def validate(self, where: str) -> None:
        if len(self.home_joints) != 6:
            raise ConfigError(f"{where}.home_joints: need 6 joint angles in radians, got {len(self.home_joints)}")
        for name in ("max_joint_speed", "tolerance_m", "tolerance_rad", "settle_tol_rad", "timeout_s",
                     "linear_step_m", "suction_distance_m"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{where}.{name}: must be > 0 (got {getattr(self, name)})")


def tcp_quat_from_pose(quat_xyzw) -> np.ndarray:
    """tcp link orientation for a CLIPort-convention tool orientation."""
    return (Rotation.from_quat(quat_xyzw) * TOOL_DOWN).as_quat()


def pose_from_tcp_quat(quat_xyzw) -> np.ndarray:
    """Inverse of :func:`tcp_quat_from_pose`."""
    return (Rotation.from_quat(quat_xyzw) * TOOL_DOWN.inv()).as_quat()


class Kinematics:
    """IK and FK of one arm URDF in a private kinematics-only PyBullet client.

    Args:
        urdf_path: the arm (with tool) description; base at ``base_position``.
        tcp_link: name of the tool-point link.
    """

    def __init__(self, urdf_path, base_position=(0.0, 0.0, 0.0), tcp_link: str = "tcp",
                 tolerance_m: float = 0.003, tolerance_rad: float = 0.03):
        import pybullet as p
        from pybullet_utils import bullet_client

        from sim2real.twin.renderer import _quiet_stdout

        with _quiet_stdout():
            self.client = bullet_client.BulletClient(connection_mode=p.DIRECT)
        self.body = self.client.loadURDF(str(urdf_path), basePosition=base_position, useFixedBase=True)
        c = self.client
        names = {c.getJointInfo(self.body, j)[1].decode(): j for j in range(c.getNumJoints(self.body))}
        links = {c.getJointInfo(self.body, j)[12].decode(): j for j in range(c.getNumJoints(self.body))}
        self.arm = [names[n] for n in ARM_JOINTS]
        self.movable = [j for j in range(c.getNumJoints(self.body)) if c.getJointInfo(self.body, j)[2] != p.JOINT_FIXED]
        self.tcp = links[tcp_link]
        info = [c.getJointInfo(self.body, j) for j in self.movable]
        self.lower = [i[8] for i in info]
        self.upper = [i[9] for i in info]
        self.tolerance_m, self.tolerance_rad = tolerance_m, tolerance_rad

    def fk(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Tool point (xyz, quat_xyzw in the CLIPort convention) at arm joints ``q`` (6,) radians."""
        for j, v in zip(self.arm, q):
            self.client.resetJointState(self.body, j, float(v))
        s = self.client.getLinkState(self.body, self.tcp, computeForwardKinematics=True)
        return np.asarray(s[4]), pose_from_tcp_quat(s[5])

    def ik(self, pose, seed_q, rest_q=None) -> np.ndarray:
        """Arm joints (6,) reaching ``pose`` = (xyz, quat) from ``seed_q``, verified by FK.

        Raises:
            PlanningError: no solution within tolerance (unreachable or singular).
        """
        xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
        target_q = tcp_quat_from_pose(quat)
        rest = list(rest_q if rest_q is not None else seed_q)
        full_rest = [0.0] * len(self.movable)
        for k, j in enumerate(self.movable):
            if j in self.arm:
                full_rest[k] = rest[self.arm.index(j)]
        q = np.asarray(seed_q, dtype=np.float64)
        for attempt in range(6):
            # pybullet's IK starts from the current joint state. The first pass uses the rest pose
            # (null space) to stay on the seed's branch; later passes refine without it, since the
            # null-space term biases the solution away from the exact target.
            for j, v in zip(self.arm, q):
                self.client.resetJointState(self.body, j, float(v))
            if attempt == 0:
                sol = self.client.calculateInverseKinematics(
                    self.body, self.tcp, xyz.tolist(), target_q.tolist(), lowerLimits=self.lower,
                    upperLimits=self.upper, jointRanges=[u - l for l, u in zip(self.lower, self.upper)],
                    restPoses=full_rest, maxNumIterations=100, residualThreshold=1e-6)
            else:
                sol = self.client.calculateInverseKinematics(
                    self.body, self.tcp, xyz.tolist(), target_q.tolist(), maxNumIterations=200,
                    residualThreshold=1e-7)
            q = np.asarray([sol[self.movable.index(j)] for j in self.arm])
            q = np.clip(q, [self.lower[self.movable.index(j)] for j in self.arm],
                        [self.upper[self.movable.index(j)] for j in self.arm])
            err_m, err_rad = self.error(q, xyz, quat)
            if err_m < self.tolerance_m and err_rad < self.tolerance_rad:
                return q
        raise PlanningError(f"ik_failed: no joint solution for tool point {np.round(xyz, 3).tolist()} "
                            f"(best error {err_m * 1000:.1f} mm, {np.degrees(err_rad):.1f} deg); it is "
                            "probably outside the arm's reach")

    def error(self, q, xyz, quat) -> tuple[float, float]:
        """(position error m, rotation error rad) of FK(q) against (xyz, quat)."""
        p_q, r_q = self.fk(q)
        return (float(np.linalg.norm(p_q - xyz)),
                float((Rotation.from_quat(r_q).inv() * Rotation.from_quat(quat)).magnitude()))

    def close(self) -> None:
        try:
            self.client.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            pass


class TwinRobot:
    """RobotPort implementation on a :class:`TwinScene`.

    Args:
        scene: the world (its ``robot`` body is driven).
        control: joint control / IK settings.
    """

    def __init__(self, scene: TwinScene, control: TwinControl):
        self.scene, self.control = scene, control
        self.tool = scene.tool.kind
        self.kin = Kinematics(scene.urdf_path, scene.base_position, tolerance_m=control.tolerance_m,
                              tolerance_rad=control.tolerance_rad)
        self.home_q = np.asarray(control.home_joints, dtype=np.float64)
        self._stop_lock = threading.Lock()
        self._stop_gen = 0  # bumped by stop(); a motion started at another value is interrupted
        self._moving = False
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------
    def reset(self) -> None:
        """After ``scene.reset()``: put the arm at home, tool released (no motion, a teleport at t=0)."""
        c, s = self.scene.client, self.scene
        self.arm = [s.joints[n] for n in ARM_JOINTS]
        for j, v in zip(self.arm, self.home_q):
            c.resetJointState(s.robot, j, float(v))
        self.fingers = [s.joints[n] for n in ("finger_left_joint", "finger_right_joint") if n in s.joints]
        for j in self.fingers:
            c.resetJointState(s.robot, j, 0.0)
        self.tcp_link = s.links["tcp"]
        self.tool_link = s.links["tool"]
        self.effort = [c.getJointInfo(s.robot, j)[10] for j in self.arm]
        self._hold(self.home_q)
        self.constraint = None
        self.held_body = None
        self.grasped_body = None  # last body attached (kept after release; the twin reads it per step)
        self.engaged = False
        self.stopped = False

    # -- RobotPort -------------------------------------------------------------------------
    def home(self, speed: float = HOME_SPEED) -> None:
        """Joint-space move to the capture pose at ``speed`` x the joint speed cap; returns at home and still.

        Raises:
            PlanningError: ``speed`` is not in (0, 1].
            HardwareError: the arm did not settle at home within ``timeout_s``.
            MotionStopped: ``stop()`` interrupted it.
        """
        if not 0 < speed <= 1:
            raise PlanningError(f"home speed is a fraction in (0, 1] of the joint speed cap, got {speed}")
        gen = self._motion_start()
        q0 = self.joints()
        if self._still_at(self.home_q, self.control.settle_tol_rad):  # e.g. right after reset(): no motion
            with self._stop_lock:
                self._moving = False
            return
        self._follow([q0, self.home_q], [max(self._joint_time(q0, self.home_q) / speed, 0.2)], gen)
        self._settle(self.home_q, gen)

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        """Move the tool point to ``pose`` at ``speed`` m/s (see module doc).

        Raises:
            PlanningError: bad speed, no IK solution, or the arm stopped short (collision).
            MotionStopped: ``stop()`` interrupted it.
        """
        if not 0 < speed < float("inf"):
            raise PlanningError(f"speed must be > 0 m/s, got {speed}")
        gen = self._motion_start()
        xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
        q0 = self.joints()
        start_xyz, start_quat = self.kin.fk(q0)
        if linear:
            n = max(1, int(np.ceil(np.linalg.norm(xyz - start_xyz) / self.control.linear_step_m)))
            slerp = Slerp([0.0, 1.0], Rotation.from_quat([start_quat, quat]))
            qs, q = [q0], q0
            for k in range(1, n + 1):
                f = k / n
                q = self.kin.ik((start_xyz + f * (xyz - start_xyz), slerp([f]).as_quat()[0]), q, rest_q=q)
                qs.append(q)
        else:
            qs = [q0, self.kin.ik((xyz, quat), q0, rest_q=self.home_q)]
        # Time each segment so the tool point keeps ``speed`` and no joint exceeds its cap.
        durations = []
        for a, b in zip(qs[:-1], qs[1:]):
            dist = np.linalg.norm(self.kin.fk(b)[0] - self.kin.fk(a)[0])
            durations.append(max(dist / speed, self._joint_time(a, b), TIMESTEP))
        self._follow(qs, durations, gen)
        err_m, err_rad = self.kin.error(self.joints(), xyz, quat)
        if err_m > 3 * self.control.tolerance_m + 0.005:
            raise PlanningError(f"motion_failed: the arm stopped {err_m * 1000:.0f} mm from the target "
                                f"{np.round(xyz, 3).tolist()} (collision?)")

    def set_suction(self, on: bool) -> None:
        """Suction on: attach the closest movable body within ``suction_distance_m``; off: release."""
        if self.tool != "suction":
            raise PlanningError("this twin robot has a gripper; use set_gripper")
        if on and self.constraint is None:
            body = self._touching_body(self.tool_link, self.control.suction_distance_m)
            if body is not None:
                self._attach(body)
        elif not on:
            self._detach()
        self.engaged = bool(on)

    def set_gripper(self, closed: bool) -> None:
        """Close (grasp) or open (release) the parallel gripper fingers."""
        if self.tool != "gripper":
            raise PlanningError("this twin robot has a suction cup; use set_suction")
        c, s = self.scene.client, self.scene
        import pybullet as p

        if not closed:
            self._detach()
        target = self.scene.tool.max_opening / 2 if closed else 0.0
        c.setJointMotorControlArray(s.robot, self.fingers, p.POSITION_CONTROL, targetPositions=[target] * 2,
                                    forces=[40.0, 40.0], positionGains=[0.05, 0.05])
        for _ in range(60):  # fingers close at most 42 mm at 0.5 m/s: <= 0.25 s
            self.scene.step(4)
            if closed and self._finger_body() is not None:
                break
        if closed:
            body = self._finger_body()
            if body is not None:
                self._attach(body)
        self.engaged = bool(closed)

    def state(self) -> RobotState:
        q = self.joints()
        xyz, quat = self.kin.fk(q)
        suction = self.engaged if self.tool == "suction" else None
        gripper = self.engaged if self.tool == "gripper" else None
        return RobotState(xyz, quat, q, suction, gripper, self.constraint is not None)

    def stop(self) -> None:
        """Stop now: interrupts a motion running in another thread (it holds and raises MotionStopped);
        with no motion running, holds the current joint positions (zero velocity)."""
        with self._stop_lock:
            self._stop_gen += 1
            self.stopped = True
            if self._moving:
                return  # the motion's thread holds the arm at its next simulation step
        self._hold(self.joints())

    # -- internals ---------------------------------------------------------------------------
    def joints(self) -> np.ndarray:
        c = self.scene.client
        return np.asarray([c.getJointState(self.scene.robot, j)[0] for j in self.arm])

    def _joint_time(self, a, b) -> float:
        return float(np.max(np.abs(np.asarray(b) - np.asarray(a))) / self.control.max_joint_speed)

    def _hold(self, q) -> None:
        import pybullet as p

        self.scene.client.setJointMotorControlArray(
            self.scene.robot, self.arm, p.POSITION_CONTROL, targetPositions=list(map(float, q)),
            targetVelocities=[0.0] * 6, forces=self.effort, positionGains=[0.3] * 6, velocityGains=[1.0] * 6)

    def _motion_start(self) -> int:
        with self._stop_lock:
            self._moving = True
            return self._stop_gen

    def _check_stop(self, gen: int) -> None:
        """Hold where the arm is and raise MotionStopped if stop() came since the motion started."""
        with self._stop_lock:
            stopped = self._stop_gen != gen
            if stopped:
                self._moving = False
        if stopped:
            self._hold(self.joints())
            raise MotionStopped("the twin arm's motion was interrupted by stop(); it holds where it stopped")

    def _follow(self, qs, durations, gen: int) -> None:
        """Track the piecewise-linear joint trajectory through ``qs`` with position control.

        Checks for ``stop()`` at every simulation step (``gen``: the stop count at the motion's start).
        """
        import pybullet as p

        c, robot = self.scene.client, self.scene.robot
        try:
            for a, b, T in zip(qs[:-1], qs[1:], durations):
                a, b = np.asarray(a), np.asarray(b)
                n = max(1, int(np.ceil(T / TIMESTEP)))
                vel = ((b - a) / (n * TIMESTEP)).tolist()
                for k in range(1, n + 1):
                    self._check_stop(gen)
                    c.setJointMotorControlArray(robot, self.arm, p.POSITION_CONTROL,
                                                targetPositions=(a + (b - a) * (k / n)).tolist(), targetVelocities=vel,
                                                forces=self.effort, positionGains=[0.3] * 6, velocityGains=[1.0] * 6)
                    self.scene.step(1)
            self._hold(qs[-1])
            for _ in range(int(self.control.timeout_s / TIMESTEP / 4)):
                self._check_stop(gen)
                if np.max(np.abs(self.joints() - qs[-1])) < self.control.settle_tol_rad:
                    return
                self.scene.step(4)
        finally:
            with self._stop_lock:
                self._moving = False

    def _still_at(self, q, tol_rad: float, max_speed: float = 0.02) -> bool:
        """Every arm joint within ``tol_rad`` of ``q`` and slower than ``max_speed`` rad/s."""
        c = self.scene.client
        speeds = [abs(c.getJointState(self.scene.robot, j)[1]) for j in self.arm]
        return bool(np.max(np.abs(self.joints() - np.asarray(q))) < tol_rad and max(speeds) < max_speed)

    def _settle(self, q, gen: int, max_speed: float = 0.02) -> None:
        """Step until the arm is still (every joint slower than ``max_speed`` rad/s) within
        ``tolerance_rad`` of ``q`` (position control under gravity keeps a few mrad of steady-state
        error, above ``settle_tol_rad``); raise HardwareError after ``timeout_s`` of simulated time."""
        with self._stop_lock:
            self._moving = True
        try:
            for _ in range(int(self.control.timeout_s / TIMESTEP / 4) + 1):
                self._check_stop(gen)
                if self._still_at(q, self.control.tolerance_rad, max_speed):
                    return
                self.scene.step(4)
        finally:
            with self._stop_lock:
                self._moving = False
        raise HardwareError(f"the twin arm did not settle at home within {self.control.timeout_s} s "
                            f"(joint error {np.max(np.abs(self.joints() - q)):.4f} rad)")

    def _touching_body(self, link: int, distance: float):
        """The movable body closest to ``link`` within ``distance`` metres, or None."""
        c, s = self.scene.client, self.scene
        best, best_d = None, distance
        for obj in s.objects:
            if obj.spec.fixed:
                continue
            for pt in c.getClosestPoints(s.robot, obj.body, distance, linkIndexA=link):
                if pt[8] <= best_d:
                    best, best_d = obj.body, pt[8]
        return best

    def _finger_body(self):
        c, s = self.scene.client, self.scene
        touched = []
        for f in self.fingers:
            bodies = {pt[2] for pt in c.getContactPoints(s.robot, linkIndexA=f)}
            touched.append(bodies - {s.table, s.robot})
        common = touched[0] & touched[1] if len(touched) == 2 else set()
        return min(common) if common else None

    def _attach(self, body: int) -> None:
        """Fixed constraint holding ``body`` where it is relative to the tool point."""
        import pybullet as p

        c, s = self.scene.client, self.scene
        tcp = c.getLinkState(s.robot, self.tcp_link, computeForwardKinematics=True)
        obj_pos, obj_quat = c.getBasePositionAndOrientation(body)
        inv_pos, inv_quat = c.invertTransform(tcp[4], tcp[5])
        rel_pos, rel_quat = c.multiplyTransforms(inv_pos, inv_quat, obj_pos, obj_quat)
        self.constraint = c.createConstraint(s.robot, self.tcp_link, body, -1, p.JOINT_FIXED, (0, 0, 0),
                                             parentFramePosition=rel_pos, childFramePosition=(0, 0, 0),
                                             parentFrameOrientation=rel_quat, childFrameOrientation=(0, 0, 0, 1))
        c.changeConstraint(self.constraint, maxForce=200.0)
        self.held_body = body
        self.grasped_body = body

    def _detach(self) -> None:
        if self.constraint is not None:
            self.scene.client.removeConstraint(self.constraint)
        self.constraint = None
        self.held_body = None
