"""Pick-and-place actions in heightmap pixels and in the robot base frame.

The policy speaks in heightmap pixels and rotation bins; the robot speaks in poses. This module
holds the one conversion between the two, following CLIPort's ``act()``: the position is the
cell corner given by ``Workspace.pix_to_xyz`` with z read from the heightmap at that pixel, and
the orientation is the quaternion of Euler (0, 0, -theta).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.workspace import Workspace

N_ROTATIONS = 36
"""Rotation bins of the transporter policies: theta_k = k * 2*pi / 36 (10 degree steps)."""


def theta_from_bin(k: int, n_rotations: int = N_ROTATIONS) -> float:
    """Angle in radians of rotation bin ``k``, as the agents' ``act()``: ``k * (2 * pi / n)``."""
    return float(k * (2 * np.pi / n_rotations))


def quat_xyzw_from_theta(theta: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of Euler (0, 0, -theta), as CLIPort's ``eulerXYZ_to_quatXYZW``."""
    return Rotation.from_euler("xyz", [0.0, 0.0, -theta]).as_quat()


@dataclass(frozen=True)
class PixelPose:
    """One end of a pick-and-place action.

    Attributes:
        pixel: (row, col) in the heightmap; row indexes y, column indexes x.
        theta: rotation in radians, a multiple of 2*pi/36.
        xyz: (3,) position in metres in the workspace's base frame.
        quat_xyzw: (4,) orientation quaternion, Euler (0, 0, -theta).
    """

    pixel: tuple[int, int]
    theta: float
    xyz: np.ndarray
    quat_xyzw: np.ndarray

    @classmethod
    def from_pixel(cls, pixel, theta: float, height: np.ndarray, workspace: Workspace) -> "PixelPose":
        """Build the pose of ``pixel`` (row, col) with height read from ``height`` (H, W) metres."""
        row, col = int(pixel[0]), int(pixel[1])
        xyz = np.asarray(workspace.pix_to_xyz((row, col), height), dtype=np.float64)
        return cls((row, col), float(theta), xyz, quat_xyzw_from_theta(theta))

    def to_dict(self) -> dict:
        """JSON-ready dict: pixel, theta, xyz, quat_xyzw."""
        return {
            "pixel": [int(self.pixel[0]), int(self.pixel[1])],
            "theta": float(self.theta),
            "xyz": [float(v) for v in self.xyz],
            "quat_xyzw": [float(v) for v in self.quat_xyzw],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PixelPose":
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(int(v) for v in d["pixel"]), float(d["theta"]),
                   np.asarray(d["xyz"], dtype=np.float64), np.asarray(d["quat_xyzw"], dtype=np.float64))


@dataclass(frozen=True)
class PickPlaceAction:
    """A policy decision: where to pick, where to place, and (optionally) the logit maps.

    Attributes:
        pick, place: the two poses.
        pick_logits: (320, 160) float32 attention logits before softmax, or None.
        place_logits: (36, 320, 160) float32 transport logits before softmax, or None.
        info: free-form extra data (e.g. which object the oracle chose).
    """

    pick: PixelPose
    place: PixelPose
    pick_logits: Optional[np.ndarray] = None
    place_logits: Optional[np.ndarray] = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict with ``pick`` and ``place`` (logit maps are not included)."""
        return {"pick": self.pick.to_dict(), "place": self.place.to_dict()}
