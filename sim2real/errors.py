"""Typed errors. Each message says what is wrong and what to do about it.

Every error the package raises on bad input derives from :class:`Sim2RealError`, so front ends
(CLI, ROS nodes) can turn them into one clear line and a non-zero exit without a traceback.
"""
from __future__ import annotations


class Sim2RealError(Exception):
    """Base class of all sim2real errors; the message is meant for the user."""


class InputError(Sim2RealError, ValueError):
    """An array, file or argument has the wrong shape, dtype, range or content."""


class ConfigError(Sim2RealError, ValueError):
    """A YAML configuration is missing, malformed or has an invalid value."""


class CheckpointError(Sim2RealError, ValueError):
    """A policy checkpoint cannot be loaded safely or does not match a known family."""


class CalibrationError(Sim2RealError, ValueError):
    """A calibration cannot be computed or loaded (too few samples, board not found, ...)."""


class SafetyError(Sim2RealError):
    """A motion target violates the safety envelope; the arm must not move."""


class PlanningError(Sim2RealError):
    """A motion could not be planned or executed (IK failure, planner failure, ...)."""


class MotionStopped(Sim2RealError):
    """A running motion was interrupted by ``stop()`` (operator stop button, ~/stop service, Ctrl-C).

    The arm holds where it stopped; whatever it holds stays held. Re-run to continue.
    """


class HardwareError(Sim2RealError, RuntimeError):
    """A device (camera, robot, gripper) is missing, disconnected or timed out."""


class UnknownTaskError(Sim2RealError, KeyError):
    """A task name is not known; the message lists the nearest names."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""
