"""Port protocols: what the episode loop needs from a camera and from a policy.

Implementations: cameras — :class:`sim2real.twin.camera.TwinCamera`, the RealSense and playback
cameras (sim2real/realsense.py), ROS topics (sim2real/ros/); policies — the CLIPort checkpoint
policy (``sim2real.policy.Policy``), the twin's :class:`sim2real.oracle.OraclePolicy`.
The robot port lives in :mod:`sim2real.robot`.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from sim2real.action import PickPlaceAction
from sim2real.camera import RGBDFrame
from sim2real.heightmap import HeightmapObservation


@runtime_checkable
class CameraPort(Protocol):
    """An RGB-D camera whose depth is aligned to colour; ``T_base_camera`` set when calibrated."""

    def read(self, timeout_s: float = 1.0) -> RGBDFrame:
        """The next frame. Raises HardwareError when none arrives within ``timeout_s``."""

    def close(self) -> None:
        """Release the device."""


@runtime_checkable
class PolicyPort(Protocol):
    """Maps a heightmap observation and a language goal to a pick-and-place action."""

    name: str

    def act(self, obs: HeightmapObservation, goal: str, **kw) -> PickPlaceAction:
        """One action; raise a Sim2RealError subclass on bad input."""
