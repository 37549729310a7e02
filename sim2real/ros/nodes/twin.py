"""``twin`` node: the digital twin standing in for the robot driver + MoveIt and for the camera.

One PyBullet world (:class:`sim2real.twin.Twin`) serves three roles in ``deploy.launch.py
robot:=sim``:

* **camera**: the twin's calibrated camera, rendered at ``publish_rate_hz`` and published on the
  camera topics exactly like ``camera_node`` (same stage, :class:`~sim2real.ros.nodes.camera.CameraStage`);
  frames are stamped with the node clock and framed in ``frame_id``;
* **robot**: executes the executor's motions (``move_to``, ``home``, suction / gripper, ``stop``,
  ``state``, IK ``reachable``) received over :mod:`sim2real.ros.twin_link` (JSON on std_msgs/String);
  the executor plans and checks every motion against its safety envelope before sending it;
* **oracle**: answers ``oracle`` calls with the ground-truth pick and place of the current goal
  (``policy_node checkpoint:=oracle``).

Services (std_srvs/Trigger): ``~/reset`` sets up the next trial of ``task`` (seeds ``seed``,
``seed+1``, ...; what the operator's scene reset is on a real table), message = JSON with the
seed and the goal; ``~/check`` answers whether the task is done (success) with the reward, the
operator's view of the scene when labelling. PyBullet is single-threaded: one lock serialises
rendering and motions, so frames pause while the arm moves and a ``stop`` waits for the motion
in progress (a real driver preempts; the twin's motions are short).
"""
from __future__ import annotations

import json
import threading
from types import SimpleNamespace

from sim2real.errors import ConfigError, Sim2RealError
from sim2real.ros.nodes._common import spin_node
from sim2real.ros.params import declare, defaults

NODE = "twin"


class _LockedCamera:
    """The twin camera behind the world lock (a CameraPort for CameraStage)."""

    def __init__(self, twin, lock):
        self.twin, self.lock = twin, lock

    def read(self, timeout_s: float = 1.0):
        with self.lock:
            return self.twin.camera.read(timeout_s)

    def close(self) -> None:
        pass  # the node closes the twin


class TwinServer:
    """The twin's side of twin_link: ops -> Twin calls (under the world lock)."""

    def __init__(self, twin, lock):
        self.twin, self.lock = twin, lock

    def handle(self, op: str, args: dict):
        import numpy as np

        from sim2real.oracle import OraclePolicy

        robot = self.twin.robot
        pose = None
        if "xyz" in args:
            pose = (np.asarray(args["xyz"], dtype=np.float64), np.asarray(args["quat_xyzw"], dtype=np.float64))
        with self.lock:
            if op == "move_to":
                robot.move_to(pose, float(args["speed"]), linear=bool(args.get("linear", False)))
            elif op == "home":
                robot.home()
            elif op == "set_suction":
                robot.set_suction(bool(args["on"]))
            elif op == "set_gripper":
                robot.set_gripper(bool(args["closed"]))
            elif op == "stop":
                robot.stop()
            elif op == "state":
                return robot.state().to_dict()
            elif op == "reachable":
                return bool(self.twin.reachable(pose))
            elif op == "oracle":
                if self.twin.instance is None:
                    raise ConfigError("no trial is set up in the twin: call the twin node's ~/reset first")
                # the oracle reads only obs.workspace (for the pixels); the policy node has the heightmap
                obs = SimpleNamespace(workspace=self.twin.workspace)
                action = OraclePolicy(self.twin.instance).act(obs, str(args.get("goal", "")))
                return {**action.to_dict(), "info": {k: v for k, v in action.info.items()
                                                     if isinstance(v, (str, int, float, bool))}}
            else:
                raise ConfigError(f"unknown twin op {op!r}")
        return None


def make_node(overrides=None):
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.node import Node
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from sim2real.ros.nodes.camera import TWIN_RENDERER, CameraStage
    from sim2real.ros.twin_link import TWIN_QOS_DEPTH
    from sim2real.tasks import resolve
    from sim2real.twin import Twin

    class TwinNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.p = p = declare(self, NODE, overrides)
            if not p["task"].strip():
                raise ConfigError('parameter task is empty: pass task:="build wheel" (a name from config/tasks)')
            self.task = resolve(p["task"])
            self.lock = threading.RLock()
            self.twin = Twin.from_config(p["twin_config"] or None, renderer=TWIN_RENDERER)
            self.server = TwinServer(self.twin, self.lock)
            self.next_seed = p["seed"]
            self.trials_started = 0
            cam_params = {**defaults("camera"), "source": "twin", "publish_rate_hz": p["publish_rate_hz"],
                          "depth_encoding": p["depth_encoding"], "frame_id": p["frame_id"],
                          **{k: p[k] for k in ("color_topic", "depth_topic", "camera_info_topic")}}
            self.camera = CameraStage(self, cam_params, camera=_LockedCamera(self.twin, self.lock))
            self.pub_reply = self.create_publisher(String, p["twin_reply_topic"], TWIN_QOS_DEPTH)
            # one call at a time, in order (motions are sequential); camera ticks run beside it
            self.create_subscription(String, p["twin_request_topic"], self._on_request, TWIN_QOS_DEPTH,
                                     callback_group=MutuallyExclusiveCallbackGroup())
            group = MutuallyExclusiveCallbackGroup()
            self.create_service(Trigger, "~/reset", self._srv_reset, callback_group=group)
            self.create_service(Trigger, "~/check", self._srv_check, callback_group=group)
            self.get_logger().info(f"twin: {self.twin.config.robot} + {self.twin.config.tool}, task "
                                   f"{self.task.name!r}; calls on {p['twin_request_topic']}; call ~/reset to set "
                                   f"up a trial (seed {self.next_seed})")

        def _on_request(self, msg) -> None:
            try:
                req = json.loads(msg.data)
                call_id, op, args = str(req["id"]), str(req["op"]), dict(req.get("args") or {})
            except (ValueError, KeyError, TypeError):
                self.get_logger().warning(f"ignored a malformed twin call: {str(msg.data)[:200]}")
                return
            reply = {"id": call_id, "ok": True}
            try:
                reply["result"] = self.server.handle(op, args)
            except Sim2RealError as e:
                reply.update(ok=False, error=type(e).__name__, message=str(e))
            except Exception as e:  # noqa: BLE001 - report, never take the twin down
                reply.update(ok=False, error="HardwareError", message=f"{type(e).__name__}: {e}")
            self.pub_reply.publish(String(data=json.dumps(reply)))

        def _srv_reset(self, request, response):
            with self.lock:
                seed = self.next_seed
                instance = self.twin.start_trial(self.task, seed)
                self.next_seed += 1
                self.trials_started += 1
            response.success = True
            response.message = json.dumps({"task": self.task.name, "seed": seed, "goal": instance.lang_goal(),
                                           "max_steps": instance.max_steps})
            return response

        def _srv_check(self, request, response):
            with self.lock:
                if self.twin.instance is None:
                    response.success, response.message = False, json.dumps({"error": "no trial set up"})
                    return response
                done, reward = self.twin.instance.check()
                left = len(self.twin.instance.goals)
            response.success = bool(done)
            response.message = json.dumps({"done": bool(done), "reward": float(reward), "goals_left": left})
            return response

        def shutdown(self):
            self.camera.shutdown()
            with self.lock:
                self.twin.close()

    return TwinNode()


def main(args=None) -> int:
    """Console entry ``twin_node``."""
    return spin_node(lambda: make_node(), args, NODE)
