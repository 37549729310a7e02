"""Rigid transforms in 3D, built on ``scipy.spatial.transform.Rotation``.

Naming: ``T_a_b`` maps points expressed in frame b into frame a (``p_a = T_a_b @ p_b``), so
``T_base_camera`` takes camera-frame points to the robot base frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.errors import InputError

RIGIDITY_TOLERANCE = 1e-5
"""Largest allowed deviation of R^T R from identity (and of det R from 1) for a 'rigid' matrix."""


def validate_rigid_matrix(matrix, name: str = "transform", tol: float = RIGIDITY_TOLERANCE) -> np.ndarray:
    """Check that ``matrix`` is a 4x4 homogeneous rigid transform and return it as given.

    The array keeps its dtype: the heightmap projection reproduces the reference arithmetic,
    which depends on it.

    Raises:
        InputError: wrong shape, non-finite entries, a bottom row other than [0, 0, 0, 1], or a
            rotation block that is not orthonormal with determinant +1.
    """
    m = np.asarray(matrix)
    if m.shape != (4, 4):
        raise InputError(f"{name} must be a 4x4 homogeneous matrix, got shape {m.shape}")
    if not np.issubdtype(m.dtype, np.floating) and not np.issubdtype(m.dtype, np.integer):
        raise InputError(f"{name} must hold numbers, got dtype {m.dtype}")
    if not np.all(np.isfinite(m)):
        raise InputError(f"{name} contains NaN or inf: {m.tolist()}")
    m64 = m.astype(np.float64)
    if not np.allclose(m64[3], [0, 0, 0, 1], atol=tol):
        raise InputError(f"{name} bottom row must be [0, 0, 0, 1], got {m64[3].tolist()}")
    r = m64[:3, :3]
    ortho = np.abs(r.T @ r - np.eye(3)).max()
    det = np.linalg.det(r)
    if ortho > tol or abs(det - 1.0) > tol:
        raise InputError(
            f"{name} is not rigid: its rotation block has |R^T R - I| = {ortho:.2e} and det = {det:.6f} "
            "(need an orthonormal rotation with det +1, no scale or shear); re-export it from the calibration")
    return m


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A rotation and a translation (metres): p_out = R p_in + t.

    Attributes:
        rotation: scipy ``Rotation``.
        translation: (3,) float64 metres.
    """

    rotation: Rotation
    translation: np.ndarray

    def __post_init__(self):
        t = np.array(self.translation, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(t)):
            raise InputError(f"translation must be finite, got {t.tolist()}")
        t.setflags(write=False)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls) -> "RigidTransform":
        """The identity transform."""
        return cls(Rotation.identity(), np.zeros(3))

    @classmethod
    def from_matrix(cls, matrix, name: str = "transform") -> "RigidTransform":
        """From a 4x4 homogeneous matrix, validated as rigid."""
        m = validate_rigid_matrix(matrix, name).astype(np.float64)
        return cls(Rotation.from_matrix(m[:3, :3]), m[:3, 3])

    @classmethod
    def from_xyz_quat(cls, xyz, quat_xyzw) -> "RigidTransform":
        """From a position (metres) and a quaternion (x, y, z, w), normalised by scipy."""
        q = np.asarray(quat_xyzw, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
            raise InputError(f"quaternion must be 4 finite numbers (x, y, z, w) with non-zero norm, got {q.tolist()}")
        return cls(Rotation.from_quat(q), xyz)

    @classmethod
    def from_xyz_euler(cls, xyz, euler, seq: str = "xyz") -> "RigidTransform":
        """From a position (metres) and Euler angles (radians) in scipy's ``seq`` convention."""
        return cls(Rotation.from_euler(seq, euler), xyz)

    def as_matrix(self) -> np.ndarray:
        """(4, 4) float64 homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.as_matrix()
        m[:3, 3] = self.translation
        return m

    def as_xyz_quat(self) -> tuple[np.ndarray, np.ndarray]:
        """Position (3,) and quaternion (x, y, z, w) (4,)."""
        return self.translation.copy(), self.rotation.as_quat()

    def inverse(self) -> "RigidTransform":
        """The inverse transform."""
        inv = self.rotation.inv()
        return RigidTransform(inv, -inv.apply(self.translation.copy()))

    def __matmul__(self, other: "RigidTransform") -> "RigidTransform":
        """Composition: (self @ other) applies ``other`` first."""
        return RigidTransform(self.rotation * other.rotation,
                              self.rotation.apply(other.translation.copy()) + self.translation)

    def apply(self, points) -> np.ndarray:
        """Transform (3,) or (N, 3) points."""
        return self.rotation.apply(np.array(points, dtype=np.float64)) + self.translation

    def distance_to(self, other: "RigidTransform") -> tuple[float, float]:
        """(translation error in metres, rotation error in radians) between two transforms."""
        dt = float(np.linalg.norm(self.translation - other.translation))
        dr = float((self.rotation.inv() * other.rotation).magnitude())
        return dt, dr
