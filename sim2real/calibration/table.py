"""The table plane (RANSAC on depth) and the workspace frame that puts the simulator's box on it.

The simulator's heightmap has z = 0 on the table, and its bounds (``GENSIM_WORKSPACE``) are given
in the robot base frame of the simulated arm. On a real cell the table is rarely exactly at
base z = 0 and never exactly level, so we fit the table plane and define a *workspace frame*:
origin where the base z axis meets the table, z = the table normal (up), x = the base x axis
projected onto the table. ``T_base_workspace`` maps workspace points into the base frame; the
heightmap is projected with ``inv(T_base_workspace) @ T_base_camera``, so heights are metres
above the real table and the simulator's x/y bounds keep their meaning relative to the robot.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from sim2real.calibration.storage import TablePlane
from sim2real.errors import CalibrationError
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

DEFAULT_INLIER_M = 0.004
"""RANSAC inlier distance (metres): RealSense depth noise at ~1 m is 2-4 mm."""

MIN_TABLE_POINTS = 500


@dataclass(frozen=True, eq=False)
class PlaneFit:
    """Result of a plane fit in the base frame.

    Attributes:
        plane: the table (normal up, offset, height at the workspace centre, tilt).
        inlier_fraction: fraction of candidate points within the inlier distance.
        rms_mm: RMS distance of inliers to the plane, mm.
        n_points: candidate points used.
    """

    plane: TablePlane
    inlier_fraction: float
    rms_mm: float
    n_points: int


def depth_to_points(depth: np.ndarray, K: np.ndarray, stride: int = 1) -> np.ndarray:
    """(N, 3) camera-frame points (metres) of valid depth pixels (> 0, finite), every ``stride`` pixel."""
    d = np.asarray(depth, dtype=np.float64)[::stride, ::stride]
    h, w = d.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64) * stride, np.arange(h, dtype=np.float64) * stride)
    ok = np.isfinite(d) & (d > 0)
    z = d[ok]
    return np.column_stack([(u[ok] - K[0, 2]) / K[0, 0] * z, (v[ok] - K[1, 2]) / K[1, 1] * z, z])


def _plane_through(p: np.ndarray):
    n = np.cross(p[1] - p[0], p[2] - p[0])
    norm = np.linalg.norm(n)
    if norm < 1e-9:
        return None
    n = n / norm
    return n, -float(n @ p[0])


def fit_plane_ransac(points: np.ndarray, inlier_m: float = DEFAULT_INLIER_M, iterations: int = 300,
                     seed: int = 0) -> tuple[np.ndarray, float, np.ndarray]:
    """RANSAC plane then least-squares refit on the inliers.

    Args:
        points: (N, 3) metres.
    Returns:
        (unit normal (3,), offset d, inlier mask (N,)) with normal . p + d = 0.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        raise CalibrationError(f"only {len(pts)} depth points to fit the table; point the camera at the table "
                               "and check the depth stream")
    rng = np.random.default_rng(seed)
    best, best_count = None, -1
    for _ in range(int(iterations)):
        plane = _plane_through(pts[rng.choice(len(pts), 3, replace=False)])
        if plane is None:
            continue
        count = int(np.count_nonzero(np.abs(pts @ plane[0] + plane[1]) < inlier_m))
        if count > best_count:
            best, best_count = plane, count
    if best is None:
        raise CalibrationError("RANSAC found no plane (all depth points collinear?); check the depth image")
    inliers = np.abs(pts @ best[0] + best[1]) < inlier_m
    for _ in range(3):  # refit on inliers (SVD), then re-select inliers with the better plane
        q = pts[inliers]
        c = q.mean(axis=0)
        n = np.linalg.svd(q - c, full_matrices=False)[2][-1]
        d = -float(n @ c)
        inliers = np.abs(pts @ n + d) < inlier_m
    return n, d, inliers


def fit_table(depth: np.ndarray, K: np.ndarray, T_base_camera: np.ndarray, workspace: Workspace = GENSIM_WORKSPACE,
              z_range=(-0.3, 0.3), inlier_m: float = DEFAULT_INLIER_M, stride: int = 2, max_points: int = 40000,
              seed: int = 0) -> PlaneFit:
    """Fit the table plane under the workspace from one depth image.

    Only points whose base (x, y) is inside the workspace bounds and whose z is within ``z_range``
    of base z = 0 are candidates, so the floor, walls and the robot are ignored; objects on the
    table are outliers of the fit.

    Args:
        depth: (H, W) metres aligned to the camera of K; T_base_camera: (4, 4).
    Raises:
        CalibrationError: too few table points, or a plane that is not roughly horizontal.
    """
    K = np.asarray(K, float)
    T = np.asarray(T_base_camera, float)
    pts = depth_to_points(depth, K, stride)
    pts = pts @ T[:3, :3].T + T[:3, 3]
    b = workspace.bounds
    keep = ((pts[:, 0] >= b[0, 0]) & (pts[:, 0] <= b[0, 1]) & (pts[:, 1] >= b[1, 0]) & (pts[:, 1] <= b[1, 1])
            & (pts[:, 2] >= z_range[0]) & (pts[:, 2] <= z_range[1]))
    pts = pts[keep]
    if len(pts) < MIN_TABLE_POINTS:
        raise CalibrationError(
            f"only {len(pts)} depth points lie over the workspace (x {b[0].tolist()}, y {b[1].tolist()}, z within "
            f"{list(z_range)} m of the base); check the camera sees the table and that T_base_camera is right "
            "(run `sim2real calibrate handeye` first)")
    if len(pts) > max_points:
        pts = pts[np.random.default_rng(seed).choice(len(pts), max_points, replace=False)]
    n, d, inliers = fit_plane_ransac(pts, inlier_m, seed=seed)
    if n[2] < 0:
        n, d = -n, -d
    tilt = float(np.degrees(np.arccos(np.clip(n[2], -1, 1))))
    if tilt > 20.0:
        raise CalibrationError(f"the largest plane under the workspace is tilted {tilt:.1f} deg from the base "
                               "xy plane; that is not the table (clear the table, or check T_base_camera)")
    cx, cy = b[0].mean(), b[1].mean()
    height = float(-(d + n[0] * cx + n[1] * cy) / n[2])
    q = pts[inliers]
    rms = float(np.sqrt(np.mean((q @ n + d) ** 2))) * 1000.0
    return PlaneFit(TablePlane(n, d, height, tilt), float(inliers.mean()), rms, len(pts))


def workspace_frame(plane: TablePlane, offset_xy=(0.0, 0.0), yaw_deg: float = 0.0) -> np.ndarray:
    """(4, 4) T_base_workspace: z = table normal, origin on the table below (offset_xy) of the base.

    Args:
        plane: fitted table plane (base frame).
        offset_xy: shift of the workspace origin on the table (metres, base x/y) if the simulator's
            bounds should sit elsewhere relative to the robot.
        yaw_deg: extra rotation of the workspace about the table normal.
    """
    n = plane.normal
    ox, oy = float(offset_xy[0]), float(offset_xy[1])
    origin = np.array([ox, oy, plane.z_at(ox, oy)])
    x = np.array([1.0, 0.0, 0.0]) - n[0] * n
    x /= np.linalg.norm(x)
    y = np.cross(n, x)
    R = np.column_stack([x, y, n])
    if yaw_deg:
        c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
        R = R @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = origin
    return T


def reach_check(workspace: Workspace, T_base_workspace: np.ndarray, reach_m: Optional[float]) -> list[str]:
    """Warnings for workspace corners (on the table) farther than ``reach_m`` from the base z axis."""
    if reach_m is None:
        return []
    b = workspace.bounds
    out = []
    for x in b[0]:
        for y in b[1]:
            p = np.asarray(T_base_workspace, float) @ np.array([x, y, 0.0, 1.0])
            r = float(np.hypot(p[0], p[1]))
            if r > reach_m:
                out.append(f"workspace corner ({x:.2f}, {y:.2f}) is {r:.3f} m from the robot axis, beyond its "
                           f"reach {reach_m:.3f} m; shift the workspace with --offset or accept unreachable cells")
    return out
