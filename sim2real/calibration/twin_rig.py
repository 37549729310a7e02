"""Calibration in the digital twin: a printed ChArUco board on the twin arm, seen by the twin camera.

The board is a textured quad (OBJ mesh with UVs + the board image) created on the twin's own
PyBullet client. It is held *kinematically* by the tool: after every move the board body is put
at ``T_base_tool @ T_tool_board`` (a rigid bracket), so it never disturbs the arm's dynamics.
The twin camera renders from the ground-truth pose (the twin's config); the calibration we
compute is compared with that truth and then used for the heightmap instead of it.

Eye-to-hand bracket (default): the board lies face up in the tool frame (the RobotPort's CLIPort
convention: identity = tool pointing down, x along base x), centred ``offset`` from the tool point,
so with the tool pointing down the board faces a camera above the table.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.calibration.board import BoardConfig, board_image
from sim2real.calibration.collect import pose_to_xyz_quat, state_pose

TEXTURE_PX_PER_M = 8000.0
"""Board texture resolution: 8 px/mm keeps the texture much finer than the camera's pixels."""


def bracket(board: BoardConfig, offset=(0.20, 0.0, 0.02)) -> np.ndarray:
    """(4, 4) T_tool_board: board face up (its z into the board points down), centre at ``offset``.

    ``offset`` is in the tool frame (metres); the default is an L-bracket holding the board 20 cm
    in front of the tool axis (along the tool x, towards a camera in front of the robot) and 2 cm
    above the tool point, so the wrist does not hide it.
    """
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
    T[:3, 3] = np.asarray(offset, float) - T[:3, :3] @ board.center
    return T


def _write_board_mesh(board: BoardConfig, folder: Path) -> tuple[Path, Path]:
    """OBJ quad (both windings) in the board frame + its texture PNG. Vertex = board metres (margin included)."""
    from PIL import Image

    img, ppm, m_px = board_image(board, TEXTURE_PX_PER_M)
    h_px, w_px = img.shape
    m = m_px / ppm
    x0, y0, x1, y1 = -m, -m, w_px / ppm - m, h_px / ppm - m
    png = folder / "board.png"
    Image.fromarray(np.repeat(img[:, :, None], 3, axis=2)).save(png)
    # OBJ texture v runs bottom-up: image row 0 (board y = y0) is v = 1
    obj = folder / "board.obj"
    obj.write_text(
        "mtllib board.mtl\n"
        f"v {x0} {y0} 0\nv {x1} {y0} 0\nv {x1} {y1} 0\nv {x0} {y1} 0\n"
        "vt 0 1\nvt 1 1\nvt 1 0\nvt 0 0\n"
        "vn 0 0 -1\nvn 0 0 1\n"
        "usemtl board\n"
        "f 1/1/1 3/3/1 2/2/1\nf 1/1/1 4/4/1 3/3/1\n"   # face seen from -z (the printed side)
        "f 1/1/2 2/2/2 3/3/2\nf 1/1/2 3/3/2 4/4/2\n")
    (folder / "board.mtl").write_text("newmtl board\nKa 1 1 1\nKd 1 1 1\nmap_Kd board.png\n")
    return obj, png


@dataclass
class TwinBoard:
    """A ChArUco board body in a twin scene.

    Attributes:
        body: PyBullet body id; T_tool_board: the bracket (eye-to-hand) or None for a board fixed
        in the base frame (at ``T_base_board``).
    """

    scene: object
    board: BoardConfig
    body: int
    T_tool_board: Optional[np.ndarray] = None
    T_base_board: Optional[np.ndarray] = None

    @classmethod
    def create(cls, scene, board: BoardConfig, T_tool_board=None, T_base_board=None) -> "TwinBoard":
        import pybullet as p

        c = scene.client
        folder = Path(tempfile.mkdtemp(prefix="sim2real_board_"))
        obj, png = _write_board_mesh(board, folder)
        vis = c.createVisualShape(p.GEOM_MESH, fileName=str(obj), meshScale=[1, 1, 1])
        body = c.createMultiBody(baseMass=0, baseCollisionShapeIndex=-1, baseVisualShapeIndex=vis,
                                 basePosition=(0, 0, -5))
        tex = c.loadTexture(str(png))
        c.changeVisualShape(body, -1, textureUniqueId=tex, rgbaColor=(1, 1, 1, 1))
        tb = cls(scene, board, body, None if T_tool_board is None else np.asarray(T_tool_board, float),
                 None if T_base_board is None else np.asarray(T_base_board, float))
        if tb.T_base_board is not None:
            tb.place(tb.T_base_board)
        return tb

    def place(self, T_base_board) -> None:
        xyz, quat = pose_to_xyz_quat(T_base_board)
        self.scene.client.resetBasePositionAndOrientation(self.body, xyz.tolist(), quat.tolist())

    def follow(self, robot) -> np.ndarray:
        """Put the board on the tool (bracket) at the robot's current pose; returns T_base_board."""
        T = state_pose(robot.state()) @ self.T_tool_board
        self.place(T)
        return T

    def remove(self) -> None:
        try:
            self.scene.client.removeBody(self.body)
        except Exception:  # noqa: BLE001 - the scene may already be reset/closed
            pass


class BoardCarryingRobot:
    """A RobotPort wrapper: after each move the arm settles, then the bracket-held board follows the tool.

    Args:
        settle_steps: physics steps after a move (the twin's position control converges
            asymptotically; 240 steps = 1 simulated second, as a real operator waits for the arm).
    """

    def __init__(self, robot, board: TwinBoard, settle_steps: int = 240):
        self.robot, self.board = robot, board
        self.tool = getattr(robot, "tool", "suction")
        self.settle_steps = int(settle_steps)
        board.follow(robot)

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        try:
            self.robot.move_to(pose, speed=speed, linear=linear)
        finally:
            if self.settle_steps and hasattr(self.board.scene, "step"):
                self.board.scene.step(self.settle_steps)
            self.board.follow(self.robot)

    def state(self):
        return self.robot.state()

    def stop(self) -> None:
        self.robot.stop()

    def set_suction(self, on: bool) -> None:
        self.robot.set_suction(on)

    def set_gripper(self, closed: bool) -> None:
        self.robot.set_gripper(closed)


def tool_poses_facing_camera(T_base_camera_guess, center, n: int, T_tool_board, board: BoardConfig,
                             tilt_deg=(12.0, 30.0), yaw_deg: float = 35.0, jitter_m=(0.06, 0.08, 0.06),
                             seed: int = 0, min_z: float = 0.05) -> list[np.ndarray]:
    """Tool poses (4, 4) for eye-to-hand sampling with the bracket: tool pointing down-ish.

    Start from the tool pointing straight down (CLIPort identity) at ``center``, then tilt about
    horizontal axes going round the circle (golden angle) so the rotations span two axes, yaw
    about the vertical, and keep the board turned towards the camera (the tilt direction never
    makes the board face away: viewing angle < 60 deg). Poses that would bring the tool point or
    any board corner lower than ``min_z`` (base frame, m) are never generated, so the board cannot
    hit the table.
    """
    rng = np.random.default_rng(seed)
    cam = np.asarray(T_base_camera_guess, float)[:3, 3]
    golden = np.pi * (3.0 - np.sqrt(5.0))
    out = []
    k = 0
    tries = 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        tilt = np.radians(tilt_deg[0] + (tilt_deg[1] - tilt_deg[0]) * ((k * 0.618) % 1.0))
        phi = k * golden
        yaw = np.radians(yaw_deg) * np.sin(2.3 * k + 0.5)
        k += 1
        R = (Rotation.from_rotvec(tilt * np.array([np.cos(phi), np.sin(phi), 0.0]))
             * Rotation.from_euler("z", yaw)).as_matrix()
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = np.asarray(center, float) + rng.uniform(-1, 1, 3) * np.asarray(jitter_m)
        Tb = T @ T_tool_board
        c = Tb[:3, :3] @ board.center + Tb[:3, 3]
        face = -Tb[:3, 2]                      # printed side normal
        to_cam = (cam - c) / np.linalg.norm(cam - c)
        if np.degrees(np.arccos(np.clip(face @ to_cam, -1, 1))) > 60.0:
            continue
        w, h = board.size_m
        corners = np.array([[0, 0, 0], [w, 0, 0], [0, h, 0], [w, h, 0]]) @ Tb[:3, :3].T + Tb[:3, 3]
        if T[2, 3] < min_z or corners[:, 2].min() < min_z:
            continue
        out.append(T)
    return out
