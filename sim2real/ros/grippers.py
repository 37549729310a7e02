"""End effectors behind one interface, chosen by the robot config's ``gripper`` section.

=============  ========  =====================================================================
driver         type      ROS interface
=============  ========  =====================================================================
xarm_vacuum    suction   service ``/xarm/set_vacuum_gripper`` (xarm_msgs/srv/VacuumGripperCtrl:
                         on, wait, timeout, delay_sec -> ret, message)
ur_tool_io     suction   service ``/io_and_status_controller/set_io`` (ur_msgs/srv/SetIO:
                         fun=FUN_SET_DIGITAL_OUT, pin=16|17 tool output, state 1.0/0.0 -> success)
robotiq        parallel  action ``.../gripper_cmd`` (control_msgs/action/GripperCommand:
                         command.position m, command.max_effort N -> reached_goal, stalled)
xarm_gripper   parallel  service ``/xarm/set_gripper_position`` (xarm_msgs/srv/GripperMove:
                         pos 0-850, wait, timeout -> ret, message)
=============  ========  =====================================================================

Each gripper talks to a small *caller* (:class:`ServiceCaller` / :class:`ActionCaller`) that
wraps an rclpy client with timeouts, so the grippers are tested here with fake callers and the
real message classes are imported only in :func:`make_gripper`.

Calls block; make them from a worker thread while the node spins in a MultiThreadedExecutor
(the executor node does), never from inside a callback of a single-threaded executor.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Protocol, runtime_checkable

from sim2real.errors import ConfigError, HardwareError
from sim2real.robot_config import GripperConfig


@runtime_checkable
class Gripper(Protocol):
    """Suction cup or parallel gripper.

    ``set(True)`` grips (suction on / fingers closed), ``set(False)`` releases.
    """

    type: str

    def set(self, closed: bool) -> None: ...

    def close(self) -> None: ...


class ServiceCaller:
    """Call an rclpy service with a timeout; HardwareError naming the service on any failure.

    Args:
        client: ``node.create_client(SrvType, name)``.
        name: service name (for messages).
    """

    def __init__(self, client, name: str):
        self.client, self.name = client, name

    def __call__(self, request, timeout_s: float):
        if not self.client.wait_for_service(timeout_sec=timeout_s):
            raise HardwareError(f"service {self.name} is not available after {timeout_s:.1f} s; is the driver "
                                f"running and the service enabled? Check with `ros2 service list | grep "
                                f"{self.name.rsplit('/', 1)[-1]}`")
        future = self.client.call_async(request)
        return _wait_future(future, timeout_s, f"service {self.name}")


class ActionCaller:
    """Send an rclpy action goal and wait for its result, with timeouts.

    Args:
        client: ``rclpy.action.ActionClient(node, ActionType, name)``.
        name: action name (for messages).
    """

    def __init__(self, client, name: str):
        self.client, self.name = client, name

    def __call__(self, goal, timeout_s: float):
        if not self.client.wait_for_server(timeout_sec=timeout_s):
            raise HardwareError(f"action server {self.name} is not available after {timeout_s:.1f} s; is the "
                                "gripper controller running? Check with `ros2 action list`")
        handle = _wait_future(self.client.send_goal_async(goal), timeout_s, f"action {self.name} (goal)")
        if not getattr(handle, "accepted", False):
            raise HardwareError(f"action {self.name} rejected the goal")
        wrapped = _wait_future(handle.get_result_async(), timeout_s, f"action {self.name} (result)")
        return getattr(wrapped, "result", wrapped)


def _wait_future(future, timeout_s: float, what: str):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout_s):
        cancel = getattr(future, "cancel", None)
        if cancel is not None:
            cancel()
        raise HardwareError(f"{what} did not answer within {timeout_s:.1f} s")
    exc = future.exception() if hasattr(future, "exception") else None
    if exc is not None:
        raise HardwareError(f"{what} failed: {exc}")
    return future.result()


class _Base:
    def __init__(self, config: GripperConfig, call: Callable, types, sleep: Callable[[float], None] = time.sleep):
        self.config, self.call, self.types, self.sleep = config, call, types, sleep
        self.type = config.type
        self.closed = None

    def set(self, closed: bool) -> None:
        self._send(bool(closed))
        self.closed = bool(closed)
        if closed and self.config.settle_s > 0:
            self.sleep(self.config.settle_s)  # let the vacuum build up / the fingers close

    def close(self) -> None:
        """Nothing to release; the clients belong to the node."""

    def _send(self, closed: bool) -> None:
        """Switch the hardware; each driver subclass implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement _send")


def _ret_ok(response, what: str) -> None:
    ret = int(getattr(response, "ret", -1))
    if ret != 0:
        raise HardwareError(f"{what} returned error {ret}: {getattr(response, 'message', '')}; check the xArm "
                            "(enabled? gripper/vacuum service enabled in xarm_user_params.yaml?)")


class XArmVacuumGripper(_Base):
    """xArm vacuum gripper; ``types`` has ``VacuumGripperCtrl`` (xarm_msgs/srv)."""

    def _send(self, closed: bool) -> None:
        req = self.types.VacuumGripperCtrl.Request()
        req.on = closed
        req.wait = True
        req.timeout = float(self.config.timeout_s)
        req.delay_sec = 0.0
        _ret_ok(self.call(req, self.config.timeout_s + 1.0), f"{self.config.service} (on={closed})")


class URToolIOGripper(_Base):
    """Suction valve on a UR tool digital output; ``types`` has ``SetIO`` (ur_msgs/srv)."""

    def _send(self, closed: bool) -> None:
        srv = self.types.SetIO.Request
        req = srv()
        req.fun = int(getattr(srv, "FUN_SET_DIGITAL_OUT", 1))
        req.pin = int(self.config.io_pin)
        req.state = float(getattr(srv, "STATE_ON", 1) if closed else getattr(srv, "STATE_OFF", 0))
        response = self.call(req, self.config.timeout_s)
        if not bool(getattr(response, "success", False)):
            raise HardwareError(f"{self.config.service} could not set tool output pin {self.config.io_pin} to "
                                f"{int(closed)}; is io_and_status_controller active (`ros2 control list_controllers`)?")


class XArmGripper(_Base):
    """xArm parallel gripper; ``types`` has ``GripperMove`` (xarm_msgs/srv), positions in pulses."""

    def _send(self, closed: bool) -> None:
        req = self.types.GripperMove.Request()
        req.pos = float(self.config.closed_position if closed else self.config.open_position)
        req.wait = True
        req.timeout = float(self.config.timeout_s)
        _ret_ok(self.call(req, self.config.timeout_s + 1.0), f"{self.config.service} (pos={req.pos:.0f})")


class RobotiqGripper(_Base):
    """Robotiq 2F via control_msgs/action/GripperCommand; ``types`` has ``GripperCommand``."""

    def _send(self, closed: bool) -> None:
        goal = self.types.GripperCommand.Goal()
        goal.command.position = float(self.config.closed_position if closed else self.config.open_position)
        goal.command.max_effort = float(self.config.max_effort)
        result = self.call(goal, self.config.timeout_s)
        # stalled = the fingers stopped on an object before the target: that is a grasp
        if not (bool(getattr(result, "reached_goal", False)) or (closed and bool(getattr(result, "stalled", False)))):
            raise HardwareError(f"gripper {self.config.action} did not reach position "
                                f"{goal.command.position:.3f} (result {result})")


GRIPPER_CLASSES = {
    "xarm_vacuum": XArmVacuumGripper,
    "ur_tool_io": URToolIOGripper,
    "xarm_gripper": XArmGripper,
    "robotiq": RobotiqGripper,
}
"""Gripper driver name (robot config ``gripper.driver``) -> class."""


def make_gripper(node, config: GripperConfig, callback_group=None) -> Gripper:
    """Create the configured gripper on an rclpy ``node`` (imports the message packages here)."""
    from types import SimpleNamespace

    from sim2real.ros import require_ros

    if config.driver not in GRIPPER_CLASSES:
        raise ConfigError(f"gripper driver {config.driver!r} cannot run on a real robot; "
                          f"use one of {sorted(GRIPPER_CLASSES)}")
    if config.driver == "robotiq":
        action = require_ros("rclpy.action", "the Robotiq gripper")
        control_msgs = require_ros("control_msgs.action", "the Robotiq gripper (apt install ros-jazzy-control-msgs)")
        client = action.ActionClient(node, control_msgs.GripperCommand, config.action, callback_group=callback_group)
        return RobotiqGripper(config, ActionCaller(client, config.action),
                              SimpleNamespace(GripperCommand=control_msgs.GripperCommand))
    if config.driver == "ur_tool_io":
        srv = require_ros("ur_msgs.srv", "the UR tool output (apt install ros-jazzy-ur-msgs)").SetIO
        types = SimpleNamespace(SetIO=srv)
    else:
        xarm = require_ros("xarm_msgs.srv", "the xArm gripper / vacuum (build xarm_ros2 in your workspace)")
        types = SimpleNamespace(VacuumGripperCtrl=getattr(xarm, "VacuumGripperCtrl", None),
                                GripperMove=getattr(xarm, "GripperMove", None))
        srv = types.VacuumGripperCtrl if config.driver == "xarm_vacuum" else types.GripperMove
    client = node.create_client(srv, config.service, callback_group=callback_group)
    return GRIPPER_CLASSES[config.driver](config, ServiceCaller(client, config.service), types)
