"""A synthetic calibration rig: an exact pinhole camera and an ideal arm, as Camera/Robot ports.

Used by the tests and by ``sim2real calibrate ... --robot synthetic`` to exercise the whole
calibration flow (collection, solve, table fit, touch test) against a known ground truth with
no simulator: the board is rendered with an exact homography (:mod:`render`), the table depth
by ray-plane intersection.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import BoardConfig
from sim2real.calibration.render import add_boxes, render_board, render_plane_depth
from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.errors import InputError, PlanningError

GENSIM_FRONT_POSITION = (1.0, 0.0, 0.75)
GENSIM_FRONT_EULER = (np.pi / 4, np.pi, -np.pi / 2)
"""GenSim's front RealSense D415 (cliport/tasks/cameras.py): position and PyBullet Euler angles."""

GENSIM_INTRINSICS = CameraIntrinsics(640, 480, 450.0, 450.0, 320.0, 240.0)
"""GenSim's simulated D415 intrinsics (fx = fy = 450 at 640x480)."""


def gensim_front_camera_pose() -> np.ndarray:
    """(4, 4) T_base_camera of GenSim's front camera (optical frame: x right, y down, z forward).

    PyBullet's Euler convention is extrinsic x-y-z, which is scipy's lower-case 'xyz'.
    """
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", GENSIM_FRONT_EULER).as_matrix()
    T[:3, 3] = GENSIM_FRONT_POSITION
    return T


def board_mount(board: BoardConfig, standoff_m: float = 0.03) -> np.ndarray:
    """(4, 4) T_flange_board: board face looking along the tool axis, centred on it, ``standoff_m`` out."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
    T[:3, 3] = np.array([0.0, 0.0, standoff_m]) - T[:3, :3] @ board.center
    return T


@dataclass
class SyntheticState:
    tcp_pose: tuple
    joints: tuple = ()
    suction: bool = False
    holding: Optional[bool] = None


@dataclass
class SyntheticRig:
    """Ground truth + ports. ``mode`` eye_to_hand: board on the flange; eye_in_hand: camera on the flange.

    Attributes:
        T_base_camera: true camera pose (eye-to-hand).
        T_flange_board: true board mount (eye-to-hand).
        T_flange_camera: eye-in-hand truth. T_base_board: a board fixed in the base frame (eye-in-hand,
            or lying on the table for the touch test); None = board on the flange.
        table_z: table height (base z) at the base origin; table_tilt_deg: tilt about base y.
        boxes: objects on the table [(x, y, sx, sy, h)] in the table frame (depth only).
        noise_sigma, blur_sigma: image noise; depth_noise_m: depth noise std.
        pose_error: per-move (dx, dy, dz) added to the *reported* pose for chosen move indices
            ({move index: metres}), to simulate samples taken while the arm still moved.
    """

    board: BoardConfig
    intrinsics: CameraIntrinsics = GENSIM_INTRINSICS
    mode: str = "eye_to_hand"
    T_base_camera: np.ndarray = field(default_factory=gensim_front_camera_pose)
    T_flange_board: Optional[np.ndarray] = None
    T_flange_camera: Optional[np.ndarray] = None
    T_base_board: Optional[np.ndarray] = None
    table_z: float = 0.0
    table_tilt_deg: float = 0.0
    boxes: list = field(default_factory=list)
    noise_sigma: float = 2.0
    blur_sigma: float = 0.5
    depth_noise_m: float = 0.0
    pose_error: dict = field(default_factory=dict)
    show_board: bool = True
    seed: int = 0

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        if self.T_flange_board is None:
            self.T_flange_board = board_mount(self.board)
        self.flange = np.eye(4)
        self.flange[:3, 3] = (0.4, 0.0, 0.4)
        self.moves = 0
        self.reported_offset = np.zeros(3)

    # ----- ground truth
    def T_base_table(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = Rotation.from_euler("y", self.table_tilt_deg, degrees=True).as_matrix()
        T[:3, 3] = (0.0, 0.0, self.table_z)
        return T

    def camera_pose(self) -> np.ndarray:
        if self.mode == "eye_in_hand":
            return self.flange @ self.T_flange_camera
        return np.asarray(self.T_base_camera, float)

    def board_pose(self) -> np.ndarray:
        if self.T_base_board is not None:  # eye-in-hand, or a board lying on the table (touch test)
            return np.asarray(self.T_base_board, float)
        return self.flange @ self.T_flange_board

    # ----- RobotPort
    def move_to(self, pose, speed: float = 0.1, linear: bool = False) -> None:
        xyz, quat = pose
        if np.linalg.norm(np.asarray(xyz, float)[:2]) > 1.2:
            raise PlanningError(f"synthetic arm cannot reach {np.round(xyz, 3).tolist()}")
        self.flange = np.eye(4)
        self.flange[:3, :3] = Rotation.from_quat(quat).as_matrix()
        self.flange[:3, 3] = xyz
        self.reported_offset = np.asarray(self.pose_error.get(self.moves, (0.0, 0.0, 0.0)), float)
        self.moves += 1

    def state(self) -> SyntheticState:
        q = Rotation.from_matrix(self.flange[:3, :3]).as_quat()
        return SyntheticState((self.flange[:3, 3] + self.reported_offset, q))

    def stop(self) -> None:
        pass

    def set_suction(self, on: bool) -> None:
        pass

    # ----- CameraPort
    def read(self, timeout_s: float = 1.0) -> RGBDFrame:
        K = self.intrinsics.K
        size = (self.intrinsics.width, self.intrinsics.height)
        T_cam = self.camera_pose()
        T_cam_table = np.linalg.inv(T_cam) @ self.T_base_table()
        depth = render_plane_depth(K, size, T_cam_table)
        if self.boxes:
            depth = add_boxes(depth, K, T_cam_table, self.boxes)
        if self.depth_noise_m > 0:
            depth = np.where(depth > 0, depth + self.rng.normal(0, self.depth_noise_m, depth.shape), 0.0)
        bg = np.full((size[1], size[0], 3), 40, np.uint8)  # a dark table, like the simulator's
        if self.show_board:
            T_cam_board = np.linalg.inv(T_cam) @ self.board_pose()
            try:
                color = render_board(self.board, K, size, T_cam_board, background=bg, noise_sigma=self.noise_sigma,
                                     blur_sigma=self.blur_sigma, rng=self.rng)
            except InputError:  # board behind the camera: an image without it
                color = bg
        else:
            color = bg
        return RGBDFrame(color, depth.astype(np.float32), self.intrinsics, stamp=float(self.moves),
                         T_base_camera=None)

    def close(self) -> None:
        pass
