"""The executor <-> twin (and policy <-> twin oracle) interface over DDS, with std_msgs only.

The twin node (:mod:`sim2real.ros.nodes.twin`) stands in for the robot driver + MoveIt: it
executes the motions the executor sends, in PyBullet. No custom message package exists in the
PyPI ROS install, so a call is a pair of ``std_msgs/String`` JSON messages:

    request  ``twin_request_topic``  {"id": str, "op": str, "args": {...}}
    reply    ``twin_reply_topic``    {"id": str, "ok": bool, "result": ..., "error": str, "message": str}

Ops (all in the twin's base frame, metres, quaternions x y z w):
``move_to {xyz, quat_xyzw, speed, linear}``, ``home {speed}``, ``set_suction {on}``,
``set_gripper {closed}``, ``state``, ``stop``, ``reachable {xyz, quat_xyzw}`` -> bool,
``oracle {goal}`` -> PickPlaceAction dict (the twin's ground-truth policy).
``error`` is the Sim2RealError class name raised in the twin (PlanningError, SafetyError,
MotionStopped, HardwareError, ...), re-raised here with the same class, so the executor's
plan -> safety envelope -> robot path and its failure reasons are the real ones: every motion
still goes through :func:`sim2real.motion.execute_plan` and the envelope in the executor
before it is sent. A call without a reply within ``timeout_s`` raises HardwareError (the twin
is gone); a reply arriving after that is dropped (ids never repeat).
"""
from __future__ import annotations

import itertools
import json
import os
import threading

import numpy as np

from sim2real import errors

REQUEST_TOPIC = "/sim2real/twin/request"
REPLY_TOPIC = "/sim2real/twin/reply"
TWIN_QOS_DEPTH = 50


def _error_class(name: str):
    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, errors.Sim2RealError) else errors.HardwareError


class TwinLink:
    """Blocking JSON calls to the twin node. Owns a small rclpy node spun in its own thread, so a
    caller blocked in :meth:`call` (inside another node's callback) never starves the reply."""

    _ids = itertools.count()

    def __init__(self, context=None, request_topic: str = REQUEST_TOPIC, reply_topic: str = REPLY_TOPIC,
                 timeout_s: float = 30.0, name: str = "twin_link"):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        self.timeout_s = float(timeout_s)
        self.node = rclpy.create_node(f"{name}_{os.getpid()}", context=context)
        self._pending: dict = {}
        self._cond = threading.Condition()
        self._pub = self.node.create_publisher(String, request_topic, TWIN_QOS_DEPTH)
        self.node.create_subscription(String, reply_topic, self._on_reply, TWIN_QOS_DEPTH)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._String = String
        self._prefix = f"{os.getpid()}-{id(self):x}-"

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # noqa: BLE001 - ExternalShutdownException / context gone at exit
            pass

    def _on_reply(self, msg) -> None:
        try:
            data = json.loads(msg.data)
        except ValueError:
            return
        with self._cond:
            if data.get("id") in self._pending:
                self._pending[data["id"]] = data
                self._cond.notify_all()

    def wait_for_twin(self, timeout_s: float) -> bool:
        """True once the twin node subscribes to the requests."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._pub.get_subscription_count() > 0:
                return True
            time.sleep(0.05)
        return False

    def call(self, op: str, timeout_s: float | None = None, **args):
        """The twin's result of ``op``; its Sim2RealError re-raised; HardwareError on timeout."""
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        call_id = f"{self._prefix}{next(self._ids)}"
        try:
            if not self.wait_for_twin(min(timeout, 10.0)):
                raise errors.HardwareError(f"the twin node is not running (nobody subscribes to "
                                           f"{self._pub.topic_name}); start twin_node (deploy.launch.py robot:=sim)")
            with self._cond:
                self._pending[call_id] = None
            self._pub.publish(self._String(data=json.dumps({"id": call_id, "op": op, "args": args})))
        except errors.Sim2RealError:
            raise
        except Exception as e:  # noqa: BLE001 - RCLError: ROS is shutting down (Ctrl-C) under us
            raise errors.HardwareError(f"the twin call {op!r} was not sent: {e}") from None
        with self._cond:
            got = self._cond.wait_for(lambda: self._pending[call_id] is not None, timeout=timeout)
            reply = self._pending.pop(call_id)
        if not got:
            raise errors.HardwareError(f"the twin did not answer {op!r} within {timeout:.0f} s")
        if not reply.get("ok"):
            raise _error_class(str(reply.get("error", "")))(f"twin: {reply.get('message', '')}")
        return reply.get("result")

    def close(self) -> None:
        from sim2real.ros.spinning import stop_spinning

        if stop_spinning(self._executor, self._thread, timeout_s=2.0):
            self.node.destroy_node()  # (still spinning: left to the process exit rather than crash it)


def _pose_args(pose) -> dict:
    xyz, quat = (np.asarray(v, dtype=np.float64) for v in pose)
    return {"xyz": [float(v) for v in xyz], "quat_xyzw": [float(v) for v in quat]}


class TwinRobotClient:
    """RobotPort (base-frame poses) executed by the twin node; the executor wraps it in FrameRobot."""

    def __init__(self, link: TwinLink, tool: str):
        self.link, self.tool = link, tool

    def move_to(self, pose, speed: float, linear: bool = False) -> None:
        self.link.call("move_to", speed=float(speed), linear=bool(linear), **_pose_args(pose))

    def reachable(self, pose) -> bool:
        return bool(self.link.call("reachable", **_pose_args(pose)))

    def home(self, speed: float = 1.0) -> None:
        self.link.call("home", speed=float(speed))

    def set_suction(self, on: bool) -> None:
        self.link.call("set_suction", on=bool(on))

    def set_gripper(self, closed: bool) -> None:
        self.link.call("set_gripper", closed=bool(closed))

    def state(self):
        from sim2real.robot import RobotState

        d = self.link.call("state")
        return RobotState(**{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()})

    def stop(self) -> None:
        try:
            self.link.call("stop", timeout_s=5.0)
        except errors.HardwareError:
            pass  # the twin is gone: nothing moves


class TwinOraclePolicy:
    """PolicyPort asking the twin node's ground-truth oracle (``checkpoint:=oracle``)."""

    name = "oracle"
    checkpoint_sha256 = None

    def __init__(self, link: TwinLink):
        self.link = link

    def act(self, obs, goal: str, **kw):
        from sim2real.action import PickPlaceAction, PixelPose

        d = self.link.call("oracle", goal=str(goal))
        return PickPlaceAction(PixelPose.from_dict(d["pick"]), PixelPose.from_dict(d["place"]),
                               info=dict(d.get("info") or {}))
