"""Camera intrinsics and the RGB-D frame that every capture port produces.

Units: metres for depth, pixels for intrinsics; depth 0 or NaN means "no reading".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sim2real.errors import InputError
from sim2real.transforms import validate_rigid_matrix


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an undistorted (or rectified) image.

    Attributes:
        width, height: image size in pixels.
        fx, fy: focal lengths in pixels; cx, cy: principal point in pixels.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self):
        for name in ("width", "height"):
            if int(getattr(self, name)) <= 0:
                raise InputError(f"camera {name} must be a positive number of pixels, got {getattr(self, name)}")
        for name in ("fx", "fy", "cx", "cy"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise InputError(f"camera intrinsic {name} must be finite, got {value}")
        if float(self.fx) <= 0 or float(self.fy) <= 0:
            raise InputError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_K(cls, K, width: int, height: int) -> "CameraIntrinsics":
        """From a 3x3 camera matrix and the image size; rejects skew and a bad last row."""
        K = validate_K(K)
        return cls(int(width), int(height), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))

    def to_dict(self) -> dict:
        """YAML-ready dict."""
        return {k: getattr(self, k) for k in ("width", "height", "fx", "fy", "cx", "cy")}


def validate_K(K) -> np.ndarray:
    """Check a 3x3 pinhole camera matrix; return it unchanged (dtype kept for exact arithmetic)."""
    K = np.asarray(K)
    if K.shape != (3, 3):
        raise InputError(f"K must be a 3x3 camera matrix, got shape {K.shape}")
    if not np.issubdtype(K.dtype, np.number) or not np.all(np.isfinite(K)):
        raise InputError(f"K must hold finite numbers, got {K.tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"K focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not np.allclose(K[2], [0, 0, 1]):
        raise InputError(f"K last row must be [0, 0, 1], got {np.asarray(K[2]).tolist()}")
    return K


def validate_color(color, name: str = "color") -> np.ndarray:
    """Check an RGB image: (H, W, 3) uint8."""
    color = np.asarray(color)
    if color.ndim != 3 or color.shape[2] != 3:
        raise InputError(f"{name} must be an (H, W, 3) RGB image, got shape {color.shape}")
    if color.dtype != np.uint8:
        raise InputError(f"{name} must be uint8 (0-255), got {color.dtype}; convert with np.uint8 after scaling")
    return color


def validate_depth(depth, shape=None, name: str = "depth") -> np.ndarray:
    """Check a depth image in metres: (H, W) float, 0 or NaN = no reading, no inf, no negatives.

    The dtype (float32 or float64) is kept: the projection reproduces the reference arithmetic.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise InputError(f"{name} must be an (H, W) image, got shape {depth.shape}")
    if shape is not None and depth.shape != tuple(shape):
        raise InputError(f"{name} shape {depth.shape} differs from color shape {tuple(shape)}; align depth to color first")
    if not np.issubdtype(depth.dtype, np.floating):
        raise InputError(f"{name} must be float metres, got {depth.dtype}; uint16 depth needs a depth_scale")
    if np.isinf(depth).any():
        raise InputError(f"{name} contains inf; mark missing readings with 0 or NaN instead")
    readings = depth[np.isfinite(depth)]
    if readings.size and readings.min() < 0:
        raise InputError(f"{name} has negative values (min {readings.min():.4f} m); depth must be metres >= 0")
    if not (readings > 0).any():
        raise InputError(f"{name} has no valid reading (all 0 or NaN); check the camera and its depth stream")
    return depth


@dataclass(frozen=True, eq=False)
class RGBDFrame:
    """One RGB-D image pair, depth aligned to color.

    Attributes:
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 (or float64) metres; 0 or NaN = no reading.
        intrinsics: the color camera's intrinsics (depth is aligned to it).
        frame_id: name of the camera's optical frame.
        stamp: capture time in seconds (device clock where available).
        T_base_camera: (4, 4) camera-to-base transform, or None if not calibrated.
        host_stamp: time the host received the frame, seconds since the epoch (or None).
    """

    color: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    frame_id: str = "camera_color_optical_frame"
    stamp: float = 0.0
    T_base_camera: Optional[np.ndarray] = None
    host_stamp: Optional[float] = None

    def __post_init__(self):
        color = validate_color(self.color)
        validate_depth(self.depth, shape=color.shape[:2])
        if (self.intrinsics.height, self.intrinsics.width) != color.shape[:2]:
            raise InputError(
                f"intrinsics are for {self.intrinsics.width}x{self.intrinsics.height} but the image is "
                f"{color.shape[1]}x{color.shape[0]}; use the intrinsics of the stream you captured")
        if self.T_base_camera is not None:
            validate_rigid_matrix(self.T_base_camera, "T_base_camera")

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return self.intrinsics.K
