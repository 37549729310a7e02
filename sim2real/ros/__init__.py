"""ROS 2 front end: thin nodes, message conversions, the MoveIt adapter and the grippers.

Nothing here imports rclpy, moveit or any ROS message package at module level: those are
imported inside node constructors / ``main()`` (see :func:`require_ros`), so the package, its
conversions and its tests work on a machine without ROS. Message conversions take the message
classes as an argument (:class:`sim2real.ros.conversions.MsgTypes`), which is how the tests run
them against the real ROS 2 message definitions of ``rosbags``' typestore.
"""
from __future__ import annotations

import importlib

from sim2real.errors import HardwareError

ROS_INSTALL_HINT = (
    "install ROS 2 Jazzy (or Humble) and source it first: `source /opt/ros/jazzy/setup.bash`, then "
    "`sudo apt install ros-jazzy-moveit-py ros-jazzy-cv-bridge ros-jazzy-tf2-ros-py ros-jazzy-message-filters` "
    "and build this package with `colcon build --packages-select sim2real` (see docs/ros.md)"
)


class RosNotAvailableError(HardwareError):
    """A ROS 2 Python package (rclpy, moveit_py, a message package) cannot be imported."""


def require_ros(module: str, what: str = ""):
    """Import and return ``module`` (e.g. 'rclpy', 'moveit.planning'); a clear error when missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        purpose = f" (needed for {what})" if what else ""
        raise RosNotAvailableError(f"cannot import {module!r}{purpose}: {e}. To fix: {ROS_INSTALL_HINT}") from None
