"""Touch test: does the arm go where the camera says the board corners are?

The board lies flat on the table. The camera finds its corners, the calibration maps them into the
base frame, and the robot moves its TCP to ``hover_m`` above N of them. The error is measured
against the true corner position: in the twin from the simulator's ground truth; on the real
robot the operator nudges the TCP (free-drive / jog) onto the true corner and presses Enter, and
the TCP position is read back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim2real.calibration.board import BoardConfig, estimate_pose
from sim2real.calibration.collect import state_pose
from sim2real.errors import CalibrationError

DOWN_QUAT_XYZW = (0.0, 0.0, 0.0, 1.0)
"""Tool pointing straight down in the RobotPort's (CLIPort) convention: the identity quaternion."""


@dataclass(frozen=True, eq=False)
class TouchResult:
    """Per-corner predicted and true positions (base frame, metres) and the errors (mm)."""

    ids: np.ndarray
    predicted: np.ndarray
    actual: np.ndarray
    reached: np.ndarray

    @property
    def errors_mm(self) -> np.ndarray:
        return np.linalg.norm(self.predicted - self.actual, axis=1) * 1000.0

    @property
    def xy_errors_mm(self) -> np.ndarray:
        return np.linalg.norm(self.predicted[:, :2] - self.actual[:, :2], axis=1) * 1000.0

    def summary(self) -> dict:
        e, exy = self.errors_mm, self.xy_errors_mm
        return {"n": int(len(e)), "mean_mm": float(e.mean()), "max_mm": float(e.max()),
                "xy_mean_mm": float(exy.mean()), "xy_max_mm": float(exy.max()),
                "per_corner": [{"id": int(i), "error_mm": round(float(x), 3)} for i, x in zip(self.ids, e)]}


def board_corners_in_base(board: BoardConfig, image: np.ndarray, K, T_base_camera) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N,), (N, 3) base-frame positions) of the board corners seen in ``image``."""
    pose = estimate_pose(board, image, K)
    T = np.asarray(T_base_camera, float) @ pose.T_camera_board
    obj = board.corners()
    ids = np.arange(len(obj))
    return ids, obj @ T[:3, :3].T + T[:3, 3]


def spread_subset(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` points spread out (farthest-point sampling from the centroid's farthest)."""
    pts = np.asarray(points, float)
    n = min(int(n), len(pts))
    if n <= 0:
        raise CalibrationError("the touch test needs at least one corner (--corners N >= 1)")
    chosen = [int(np.argmax(np.linalg.norm(pts - pts.mean(axis=0), axis=1)))]
    d = np.linalg.norm(pts - pts[chosen[0]], axis=1)
    while len(chosen) < n:
        k = int(np.argmax(d))
        chosen.append(k)
        d = np.minimum(d, np.linalg.norm(pts - pts[k], axis=1))
    return np.array(chosen)


def touch_test(robot, ids, targets, measure: Callable, *, hover_m: float = 0.005,
               quat_xyzw=DOWN_QUAT_XYZW, speed: float = 0.1, envelope=None, T_workspace_base=None,
               confirm=None) -> TouchResult:
    """Move above each predicted corner, then ask ``measure`` where the true corner is.

    Every move goes through the calibration guard (:func:`sim2real.calibration.collect.guarded`):
    checked against ``envelope`` (the calibration's, in the workspace frame ``T_workspace_base``
    maps base poses into; default the provisional one), slowed, and confirmed first when
    ``confirm`` is given. A refused corner ends the test (SafetyError); nothing moved towards it.

    Args:
        targets: (N, 3) predicted corner positions (base frame).
        measure: ``measure(i, target, robot) -> (3,)`` true corner position in the base frame.
    The robot is stopped in a finally.
    """
    from sim2real.calibration.collect import guarded

    robot = guarded(robot, envelope, T_workspace_base, confirm)
    targets = np.asarray(targets, float)
    actual, reached = [], []
    try:
        for i, p in enumerate(targets):
            goal = p + np.array([0.0, 0.0, hover_m])
            robot.move_to((goal, np.asarray(quat_xyzw, float)), speed=speed)
            reached.append(state_pose(robot.state())[:3, 3] - np.array([0.0, 0.0, hover_m]))
            actual.append(np.asarray(measure(i, p, robot), float))
    finally:
        robot.stop()
    return TouchResult(np.asarray(ids), targets, np.array(actual), np.array(reached))


def operator_measure(prompt: Callable[[str], str] = input, hover_m: float = 0.005) -> Callable:
    """A ``measure`` for the real robot: the operator jogs the TCP onto the true corner, presses Enter."""

    def measure(i, target, robot) -> np.ndarray:
        prompt(f"corner {i}: TCP is {hover_m * 1000:.0f} mm above the predicted corner. Free-drive/jog it onto "
               "the true corner tip, then press Enter: ")
        return state_pose(robot.state())[:3, 3]

    return measure


def truth_measure(true_points: np.ndarray) -> Callable:
    """A ``measure`` for the twin: ground-truth corner positions by index."""
    pts = np.asarray(true_points, float)
    return lambda i, target, robot: pts[i]


__all__ = ["touch_test", "board_corners_in_base", "spread_subset", "operator_measure", "truth_measure",
           "TouchResult", "DOWN_QUAT_XYZW"]
