"""Poses between the robot base frame and the calibration's workspace frame.

The policy's poses live in the workspace frame (the heightmap grid; z = 0 is the table); the
robot and ROS topics use the base frame. ``T_base_workspace`` (from the calibration YAML) maps
workspace points into the base frame; None means the two frames coincide.
"""
from __future__ import annotations

from sim2real.transforms import RigidTransform


def _apply(poses, T: RigidTransform):
    return [(T @ RigidTransform.from_xyz_quat(x, q)).as_xyz_quat() for x, q in poses]


def workspace_to_base(poses, T_base_workspace=None) -> list:
    """[(xyz, quat_xyzw)] workspace frame -> base frame."""
    if T_base_workspace is None:
        return [(x, q) for x, q in poses]
    return _apply(poses, RigidTransform.from_matrix(T_base_workspace, "T_base_workspace"))


def base_to_workspace(poses, T_base_workspace=None) -> list:
    """[(xyz, quat_xyzw)] base frame -> workspace frame."""
    if T_base_workspace is None:
        return [(x, q) for x, q in poses]
    return _apply(poses, RigidTransform.from_matrix(T_base_workspace, "T_base_workspace").inverse())


def action_to_base(action, T_base_workspace=None) -> list:
    """[(xyz, quat)] of a PickPlaceAction's pick and place, in the base frame."""
    return workspace_to_base([(action.pick.xyz, action.pick.quat_xyzw), (action.place.xyz, action.place.quat_xyzw)],
                             T_base_workspace)
