"""Hand-eye samples: generated robot poses (twin or MoveIt) or free-drive, with a live progress display.

The "flange" pose here is whatever pose the robot port reports and accepts (the TCP of the
RobotPort): any frame rigid with the flange works, the unknown board offset absorbs it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import BoardConfig, estimate_pose
from sim2real.calibration.handeye import HandEyeSample, solve_handeye
from sim2real.errors import CalibrationError, PlanningError, SafetyError

MOVING_TOLERANCE_M = 0.001
"""The flange must move less than this between the two state reads around an image, or the sample is dropped."""


def look_at_rotation(z_axis, up_hint) -> np.ndarray:
    """(3, 3) rotation whose z column is ``z_axis`` and whose y column points away from ``up_hint``."""
    z = np.asarray(z_axis, float)
    z = z / np.linalg.norm(z)
    x = np.cross(-np.asarray(up_hint, float), z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross([1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def generate_board_poses(T_base_camera_guess, board_center_base, n: int, T_flange_board,
                         board_center_local, tilt_deg=(15.0, 35.0), roll_deg: float = 30.0,
                         jitter_m=(0.08, 0.08, 0.05), seed: int = 0) -> list[np.ndarray]:
    """Flange poses (eye-to-hand) that show the board to the camera from diverse angles.

    The board faces the (approximately known) camera, tilted by ``tilt_deg`` about axes that go
    round the circle (golden angle) so rotations span two independent axes, and rolled in-plane.

    Args:
        T_base_camera_guess: (4, 4) rough camera pose (a few cm / degrees off is fine).
        board_center_base: (3,) where the board centre should be on average, base frame (m).
        T_flange_board: (4, 4) nominal board mount on the flange (from the mount drawing).
        board_center_local: (3,) board centre in the board frame.
    Returns:
        n (4, 4) T_base_flange targets.
    """
    rng = np.random.default_rng(seed)
    cam = np.asarray(T_base_camera_guess, float)
    cam_pos, cam_up = cam[:3, 3], -cam[:3, 1]
    poses = []
    golden = np.pi * (3.0 - np.sqrt(5.0))
    for k in range(int(n)):
        p = np.asarray(board_center_base, float) + rng.uniform(-1, 1, 3) * np.asarray(jitter_m)
        z_b = p - cam_pos                        # board z points into the board, away from the camera
        R_face = look_at_rotation(z_b, cam_up)
        tilt = np.radians(tilt_deg[0] + (tilt_deg[1] - tilt_deg[0]) * ((k * 0.618) % 1.0))
        phi = k * golden
        axis = R_face @ np.array([np.cos(phi), np.sin(phi), 0.0])
        roll = np.radians(roll_deg) * np.sin(1.7 * k + 0.3)
        R_b = Rotation.from_rotvec(axis * tilt).as_matrix() @ R_face @ Rotation.from_euler("z", roll).as_matrix()
        T_base_board = np.eye(4)
        T_base_board[:3, :3] = R_b
        T_base_board[:3, 3] = p - R_b @ np.asarray(board_center_local, float)
        poses.append(T_base_board @ np.linalg.inv(np.asarray(T_flange_board, float)))
    return poses


def pose_to_xyz_quat(T) -> tuple[np.ndarray, np.ndarray]:
    T = np.asarray(T, float)
    return T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()


def state_pose(state) -> np.ndarray:
    """(4, 4) T_base_tcp from a RobotState (``tcp_xyz`` + ``tcp_quat_xyzw``, or ``tcp_pose`` = (xyz, quat))."""
    if hasattr(state, "tcp_xyz") and hasattr(state, "tcp_quat_xyzw"):
        xyz, quat = state.tcp_xyz, state.tcp_quat_xyzw
    elif hasattr(state, "tcp_pose"):
        xyz, quat = state.tcp_pose
    elif isinstance(state, dict) and "tcp_pose" in state:
        xyz, quat = state["tcp_pose"]
    else:
        raise CalibrationError(f"robot state {type(state).__name__} has no TCP pose (tcp_pose); this robot port "
                               "cannot be used for hand-eye calibration")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(np.asarray(quat, float)).as_matrix()
    T[:3, 3] = np.asarray(xyz, float)
    return T


@dataclass
class CollectionLog:
    """What happened at each pose: samples taken, and poses skipped with the reason."""

    samples: list = field(default_factory=list)
    skipped: list = field(default_factory=list)   # (pose index, reason)

    def summary(self) -> str:
        return f"{len(self.samples)} samples, {len(self.skipped)} poses skipped"


def take_sample(camera, robot, board: BoardConfig, label: str, K=None, timeout_s: float = 5.0):
    """Read robot state, image, robot state; detect the board. Returns (sample | None, reason)."""
    before = state_pose(robot.state())
    frame = camera.read(timeout_s=timeout_s)
    after = state_pose(robot.state())
    if np.linalg.norm(after[:3, 3] - before[:3, 3]) > MOVING_TOLERANCE_M:
        return None, "robot moved while the image was taken; wait for it to settle"
    K = frame.K if K is None else np.asarray(K, float)
    try:
        pose = estimate_pose(board, frame.color, K)
    except CalibrationError as e:
        return None, str(e).split(":")[0] if "not found" in str(e) else str(e)
    det = pose.detection
    return HandEyeSample(after, pose.T_camera_board, det.image_points, det.object_points, pose.rms_px, label), ""


def _quick_residual(samples, mode, K) -> Optional[dict]:
    """Current residual for the progress display (fast: two methods, no refinement, no rejection)."""
    if len(samples) < 3:
        return None
    try:
        r = solve_handeye(samples, mode, K=None, methods=("PARK", "TSAI"), do_refine=False, reject_outliers=False)
    except CalibrationError:
        return None
    return r.summary()


def guarded(robot, envelope=None, T_workspace_base=None, confirm=None):
    """``robot`` behind the calibration guard (:class:`sim2real.calibration.guard.GuardedRobot`):
    every move checked against ``envelope`` (default: the provisional one), slowed, confirmed
    when ``confirm`` is given. A robot already guarded is returned as it is."""
    from sim2real.calibration.guard import PROVISIONAL_ENVELOPE, GuardedRobot

    if isinstance(robot, GuardedRobot):
        return robot
    return GuardedRobot(robot, envelope if envelope is not None else PROVISIONAL_ENVELOPE, T_workspace_base,
                        confirm=confirm)


def collect_generated(robot, camera, board: BoardConfig, poses: Sequence[np.ndarray], *, mode: str = "eye_to_hand",
                      speed: float = 0.2, settle_s: float = 0.2, K=None, progress: bool = True,
                      on_sample: Optional[Callable] = None, envelope=None, confirm=None) -> CollectionLog:
    """Move the robot through ``poses`` and take a sample at each; the robot is stopped in a finally.

    Every move goes through the calibration guard (:func:`guarded`: the envelope, default the
    provisional one; speed capped; ``confirm(description) -> bool`` asked first when given).
    A pose the planner, the envelope or the operator refuses is skipped (reason logged), not fatal.
    """
    robot = guarded(robot, envelope, confirm=confirm)
    log = CollectionLog()
    bar = _Progress(len(poses), progress)
    try:
        for k, T in enumerate(poses):
            try:
                robot.move_to(pose_to_xyz_quat(T), speed=speed)
            except (PlanningError, SafetyError) as e:
                log.skipped.append((k, f"unreachable: {e}"))
                bar.update(log, mode, K)
                continue
            if settle_s > 0:
                time.sleep(settle_s)
            sample, why = take_sample(camera, robot, board, f"pose {k}", K)
            if sample is None:
                log.skipped.append((k, why))
            else:
                log.samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)
            bar.update(log, mode, K)
    finally:
        robot.stop()
        bar.close()
    return log


def collect_freedrive(robot, camera, board: BoardConfig, *, mode: str = "eye_to_hand", K=None,
                      prompt: Callable[[str], str] = input, max_samples: int = 100) -> CollectionLog:
    """Free-drive: the operator moves the arm by hand and presses Enter to take each sample; 'q' ends."""
    log = CollectionLog()
    print("Free-drive hand-eye sampling: move the arm so the camera sees the whole board, let go, press Enter. "
          "Vary the tilt by 20-40 deg about different axes. Type q + Enter when done (12+ samples).")
    try:
        while len(log.samples) < max_samples:
            answer = prompt(f"[{len(log.samples)} samples] Enter = sample, q = done: ").strip().lower()
            if answer in ("q", "quit", "done"):
                break
            sample, why = take_sample(camera, robot, board, f"freedrive {len(log.samples) + len(log.skipped)}", K)
            if sample is None:
                log.skipped.append((len(log.skipped), why))
                print(f"  not taken: {why}")
                continue
            log.samples.append(sample)
            res = _quick_residual(log.samples, mode, K)
            extra = (f", consistency {res['trans_rms_mm']:.2f} mm / {res['rot_rms_deg']:.3f} deg" if res else "")
            print(f"  sample {len(log.samples)}: {len(sample.image_points)} corners, "
                  f"PnP {sample.rms_px:.2f} px{extra}")
    finally:
        robot.stop()
    return log


class _Progress:
    """A rich progress bar showing samples collected and the current residual (plain text without rich)."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.bar = None
        if not enabled:
            return
        try:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("hand-eye"), BarColumn(), TextColumn("{task.completed}/{task.total} poses"),
                                TextColumn("{task.fields[info]}"), TimeElapsedColumn())
            self.task = self.bar.add_task("poses", total=total, info="")
            self.bar.start()
        except ImportError:
            self.bar = None

    def update(self, log: CollectionLog, mode: str, K) -> None:
        if not self.enabled:
            return
        res = _quick_residual(log.samples, mode, K)
        info = f"{len(log.samples)} samples, {len(log.skipped)} skipped"
        if res:
            info += f", residual {res['trans_rms_mm']:.2f} mm / {res['rot_rms_deg']:.3f} deg"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, info=info)
        else:
            print(info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


__all__ = ["generate_board_poses", "collect_generated", "collect_freedrive", "take_sample", "state_pose",
           "pose_to_xyz_quat", "look_at_rotation", "CollectionLog"]
