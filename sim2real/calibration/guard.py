"""Calibration motions go through the safety envelope too: checked, slow, and confirmed on a real arm.

Hand-eye poses are generated around a guess of the camera and the touch test moves a few
millimetres above predicted corners: both move the real arm in free space, so every target is
checked (:func:`sim2real.safety.check_target`) before anything moves, the speed is capped at
``CALIBRATION_SPEED_MPS``, and on the real robot the operator confirms each move. On the MoveIt
robot the planned trajectory is then checked sample by sample against the same envelope
(:meth:`sim2real.ros.moveit_adapter.MoveItAdapter.execute`), at the calibration joint speed limit.

Before a calibration exists there is no workspace frame: the hand-eye run uses
:data:`PROVISIONAL_ENVELOPE`, a conservative box in the robot base frame in front of the robot.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from sim2real.errors import SafetyError
from sim2real.robot import HOME_SPEED
from sim2real.safety import SafetyEnvelope, check_target

CALIBRATION_SPEED_MPS = 0.05
"""Largest tool speed of any calibration move (m/s): slow enough to stop by hand."""

CALIBRATION_HOME_SPEED = 0.2
"""``home()`` speed fraction while calibrating."""

PROVISIONAL_ENVELOPE = SafetyEnvelope(
    margin_m=0.0,           # the default workspace box itself (GENSIM_WORKSPACE), in the base frame
    min_height_m=0.05,      # 5 cm above the base plane (the table the robot stands on), table not yet measured
    max_height_m=0.6,
    max_tilt_deg=80.0,      # hand-eye poses tilt the board towards the camera; nothing is held
    reach_min_m=0.25,
    reach_max_m=0.75,       # inside every configured arm's reach (UR5 0.85 m, xArm6 0.7 m tool point)
    max_speed=CALIBRATION_SPEED_MPS,
)
"""The envelope of calibration moves before a calibration exists (robot base frame = workspace
frame of the default workspace; defined once here)."""


def console_confirm(prompt: Optional[Callable[[str], str]] = None) -> Callable[[str], bool]:
    """An operator confirmation on the terminal: Enter = go, 'a' = go and approve the rest, else no."""
    approve_all = []

    def confirm(what: str) -> bool:
        if approve_all:
            return True
        answer = (prompt or input)(f"{what}. Enter = move, a = move and approve all remaining, s = skip: ").strip().lower()
        if answer == "a":
            approve_all.append(True)
            return True
        return answer == ""

    return confirm


class GuardedRobot:
    """A RobotPort whose motions are checked against an envelope, slowed, and (optionally) confirmed.

    Args:
        robot: the RobotPort moved (poses in the robot base frame).
        envelope: limits of every target, in the workspace frame.
        T_workspace_base: (4, 4) base -> workspace frame of ``envelope`` (None: the same frame).
        max_speed: cap on every move's speed, m/s.
        confirm: ``confirm(description) -> bool`` asked before each move (real robot), or None.
        reachable: optional IK check passed to :func:`sim2real.safety.check_target`.

    Raises (move_to / home):
        SafetyError: the target is outside the envelope, or the operator declined; nothing moved.
    """

    def __init__(self, robot, envelope: SafetyEnvelope, T_workspace_base=None, max_speed: float = CALIBRATION_SPEED_MPS,
                 confirm: Optional[Callable[[str], bool]] = None, reachable: Optional[Callable] = None):
        self.robot, self.envelope, self.max_speed, self.confirm = robot, envelope, float(max_speed), confirm
        self.T = None if T_workspace_base is None else np.asarray(T_workspace_base, dtype=np.float64)
        self.reachable = reachable
        self.tool = getattr(robot, "tool", "suction")

    def _in_envelope_frame(self, xyz, quat):
        if self.T is None:
            return xyz, quat
        from sim2real.transforms import RigidTransform

        return (RigidTransform.from_matrix(self.T, "T_workspace_base")
                @ RigidTransform.from_xyz_quat(xyz, quat)).as_xyz_quat()

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        try:
            xyz, quat = (np.asarray(v, dtype=np.float64).reshape(-1) for v in pose)
            speed = min(float(speed), self.max_speed)
            target = self._in_envelope_frame(xyz, quat)
            reasons = check_target(target[0], target[1], speed, self.envelope, "calibration move",
                                   (lambda _: self.reachable((xyz, quat))) if self.reachable else None)
        except Exception as e:  # noqa: BLE001 - a pose we cannot check is a pose we do not send
            reasons = [f"calibration move: pose {pose!r} cannot be checked ({type(e).__name__}: {e})"]
        if reasons:
            raise SafetyError("unsafe calibration move refused, the arm did not move: " + "; ".join(reasons))
        if self.confirm is not None and not self.confirm(
                f"move the tool to [{', '.join(f'{v:.3f}' for v in xyz)}] m at {speed:.3f} m/s"):
            raise SafetyError("calibration move declined by the operator; the arm did not move")
        self.robot.move_to((xyz, quat), speed, linear=linear)

    def home(self, speed: float = HOME_SPEED) -> None:
        if self.confirm is not None and not self.confirm("move the arm to its home joints"):
            raise SafetyError("homing declined by the operator; the arm did not move")
        self.robot.home(min(float(speed), CALIBRATION_HOME_SPEED))

    def state(self):
        return self.robot.state()

    def set_suction(self, on: bool) -> None:
        self.robot.set_suction(on)

    def set_gripper(self, closed: bool) -> None:
        self.robot.set_gripper(closed)

    def stop(self) -> None:
        self.robot.stop()

    def __getattr__(self, name):  # rig extras (e.g. the synthetic rig's board) pass through
        return getattr(self.robot, name)


__all__ = ["GuardedRobot", "PROVISIONAL_ENVELOPE", "CALIBRATION_SPEED_MPS", "console_confirm"]
