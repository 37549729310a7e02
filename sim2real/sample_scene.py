"""A synthetic RGB-D frame of a table with coloured blocks, ray-cast exactly.

Used by ``make demo`` before a camera is connected, and by tests that need a frame whose
geometry is known: every pixel's depth is the exact distance along the optical axis to the
nearest surface (table plane z = 0 or an axis-aligned box), so its heightmap can be predicted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.camera import CameraIntrinsics
from sim2real.transforms import RigidTransform


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the base frame: centre (3,) and size (3,) metres, RGB colour."""

    center: tuple
    size: tuple
    color: tuple


TABLE_COLOR = (128, 128, 128)
TABLE_Z = 0.001
"""Table surface height in metres: 1 mm above z = 0 so rounding never drops it below the bounds."""

DEFAULT_BOXES = (
    Box((0.45, -0.15, 0.02), (0.04, 0.04, 0.04), (255, 87, 89)),    # red block
    Box((0.55, 0.10, 0.02), (0.04, 0.04, 0.04), (78, 121, 167)),    # blue block
    Box((0.60, 0.25, 0.06), (0.04, 0.04, 0.12), (89, 169, 79)),     # green tower
    Box((0.40, 0.20, 0.005), (0.12, 0.12, 0.01), (237, 201, 72)),   # yellow zone
)

DEFAULT_INTRINSICS = CameraIntrinsics(640, 480, 450.0, 450.0, 320.0, 240.0)


def default_camera_pose() -> RigidTransform:
    """A camera 0.9 m above the table looking down at the workspace, tilted 20 degrees."""
    # Optical frame: z forward, x right, y down. Start looking straight down, then tilt.
    look_down = RigidTransform.from_xyz_euler([0, 0, 0], [np.pi, 0, -np.pi / 2])
    tilt = RigidTransform.from_xyz_euler([0, 0, 0], [np.deg2rad(20), 0, 0])
    pose = look_down @ tilt
    return RigidTransform(pose.rotation, [0.15, 0.0, 0.85])


def render(boxes=DEFAULT_BOXES, intrinsics: CameraIntrinsics = DEFAULT_INTRINSICS,
           T_base_camera: RigidTransform | None = None):
    """Ray-cast the scene. Returns (color (H,W,3) uint8, depth (H,W) float32 m, K (3,3), T (4,4))."""
    T = T_base_camera or default_camera_pose()
    h, w = intrinsics.height, intrinsics.width
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays_cam = np.stack([(u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy,
                         np.ones_like(u)], axis=-1)  # z = 1: t along a ray is the depth
    R = T.rotation.as_matrix()
    rays = rays_cam @ R.T
    origin = T.translation
    depth = np.full((h, w), np.inf)
    color = np.zeros((h, w, 3), dtype=np.uint8)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_table = (TABLE_Z - origin[2]) / rays[..., 2]
    hit = (t_table > 0) & (t_table < depth)
    depth[hit], color[hit] = t_table[hit], TABLE_COLOR
    for box in boxes:
        t = _ray_box(origin, rays, np.asarray(box.center), np.asarray(box.size))
        hit = t < depth
        depth[hit], color[hit] = t[hit], box.color
    depth[~np.isfinite(depth)] = 0.0
    return color, depth.astype(np.float32), intrinsics.K, T.as_matrix()


def _ray_box(origin, rays, center, size):
    """Ray parameter of the first hit with an axis-aligned box (inf where missed)."""
    lo, hi = center - size / 2, center + size / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - origin) / rays
        t2 = (hi - origin) / rays
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (t_far >= t_near) & (t_near > 0)
    return np.where(hit, t_near, np.inf)
