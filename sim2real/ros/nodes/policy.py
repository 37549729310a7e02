"""``policy`` node: language goal + heightmap -> [pick, place] PoseArray and an affordance overlay.

Keeps the newest heightmap (``heightmap_topic`` 32FC1 + ``colormap_topic`` rgb8, paired by exact
stamp). On each goal (``goal_topic``, std_msgs/String) it runs the policy
(:meth:`sim2real.policy.Policy.act`) on that heightmap and publishes the poses in ``base_frame``
on ``poses_topic`` (stamped with the heightmap's time) and the overlay on ``overlay_topic``. A
missing or stale heightmap (``max_age_s``) or a policy error publishes a failed step result on
``step_result_topic`` instead, with the reason (camera_lost / stale_frame / policy_error).
"""
from __future__ import annotations

import threading
import time

from sim2real.errors import ConfigError, Sim2RealError
from sim2real.ros.nodes._common import StampPairer, load_workspace, now_s, spin_node
from sim2real.ros.params import declare

NODE = "policy"


def load_policy(checkpoint: str, device: str):
    """The CLIPort policy of ``checkpoint`` (sim2real.policy, issue 3)."""
    if not checkpoint:
        raise ConfigError("parameter checkpoint is empty: pass checkpoint:=/path/to/model.ckpt to the launch file")
    from sim2real.policy import Policy

    return Policy.from_checkpoint(checkpoint, device=device)


class PolicyStage:
    """The policy stage on any rclpy node.

    Args:
        node: hosting rclpy node.
        params: validated parameters (sim2real.ros.params.POLICY).
        policy: a PolicyPort (default: loaded from ``checkpoint``).
        on_action: optional in-process consumer ``on_action(action, goal, t_goal)`` (pipeline node).
        subscribe_heightmap: False when the pipeline node feeds observations in-process.
    """

    def __init__(self, node, params: dict, policy=None, on_action=None, subscribe_heightmap: bool = True):
        from geometry_msgs.msg import PoseArray
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from sim2real.ros.conversions import MsgTypes

        self.node, self.p, self.on_action = node, params, on_action
        self.log = node.get_logger()
        self.types = MsgTypes.from_rclpy()
        self.workspace, self.T_base_workspace, _ = load_workspace(params["calibration"])
        if policy is None and params["checkpoint"] == "oracle":  # the twin's ground truth (robot:=sim)
            from sim2real.ros.twin_link import TwinLink, TwinOraclePolicy

            policy = TwinOraclePolicy(TwinLink(node.context, params["twin_request_topic"], params["twin_reply_topic"],
                                               params["twin_timeout_s"], name="policy_twin_link"))
        self.policy = policy or load_policy(params["checkpoint"], params["device"])
        self.planner, self.planner_spec = _load_planner(params)
        self.latest = None
        self._lock = threading.Lock()
        self.pairer = StampPairer()
        if subscribe_heightmap:
            hm_group = MutuallyExclusiveCallbackGroup()
            node.create_subscription(Image, params["heightmap_topic"], self._on_height, 2, callback_group=hm_group)
            node.create_subscription(Image, params["colormap_topic"], self._on_color, 2, callback_group=hm_group)
        self.heightmap_problem = None  # (reason, message, time) last reported by the heightmap stage
        node.create_subscription(String, params["heightmap_status_topic"], self._on_status, 10)
        node.create_subscription(String, params["goal_topic"], self.on_goal, 10,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.pub_poses = node.create_publisher(PoseArray, params["poses_topic"], 10)
        self.pub_overlay = node.create_publisher(Image, params["overlay_topic"], 1)
        self.pub_result = node.create_publisher(String, params["step_result_topic"], 10)
        self.log.info(f"policy {getattr(self.policy, 'name', type(self.policy).__name__)} ready; goals on "
                      f"{params['goal_topic']} -> poses on {params['poses_topic']}")

    # exact-stamp pairing of the two heightmap images (the heightmap stage stamps both alike)
    def _on_height(self, msg) -> None:
        self._pair("height", msg)

    def _on_color(self, msg) -> None:
        self._pair("color", msg)

    def _pair(self, kind: str, msg) -> None:
        from sim2real.ros.conversions import heightmap_from_msgs

        pair = self.pairer.add(kind, msg)
        if pair is None:
            return
        try:
            self.set_observation(heightmap_from_msgs(pair[0], pair[1], self.workspace))
        except Sim2RealError as e:
            self.log.error(f"heightmap ignored: {e}", throttle_duration_sec=5.0)

    def _on_status(self, msg) -> None:
        import json

        try:
            data = json.loads(msg.data)
            self.set_problem(str(data["reason"]), str(data.get("message", "")))
        except (ValueError, KeyError, TypeError):
            self.log.warning(f"ignored a malformed heightmap status: {str(msg.data)[:200]}")

    def set_problem(self, reason: str, message: str) -> None:
        """The heightmap stage could not make a heightmap (reason tf_timeout / stale_frame / camera_lost)."""
        self.heightmap_problem = (reason, message, now_s(self.node))

    def _missing_reason(self, default: str, message: str):
        """The heightmap stage's own reason when it reported one recently, else ``default``."""
        problem = self.heightmap_problem
        if problem is not None and now_s(self.node) - problem[2] <= max(5.0, 2 * self.p["max_age_s"]):
            return problem[0], f"{message}; the heightmap node reports: {problem[1]}"
        return default, message

    def set_observation(self, obs) -> None:
        """Keep ``obs`` as the newest heightmap (called in-process by the pipeline node)."""
        with self._lock:
            self.latest = obs

    def _fail(self, reason: str, message: str, goal: str, t_goal: float, step_id: str = "") -> None:
        from std_msgs.msg import String

        from sim2real.ros.steps import encode, step_result

        self.log.error(f"step stopped ({reason}): {message}")
        self.pub_result.publish(String(data=encode(step_result("policy", False, reason, message, goal=goal,
                                                               t_goal=t_goal, step_id=step_id))))

    def on_goal(self, msg) -> None:
        """Run the policy on the newest heightmap for the goal ``msg.data``."""
        from sim2real.ros.conversions import pose_array_msg, rgb_to_image_msg
        from sim2real.ros.frames import action_to_base
        from sim2real.ros.overlay import affordance_overlay
        from sim2real.ros.steps import check_age, decode_goal, tag_frame

        (goal, step_id), t_goal = decode_goal(msg.data), now_s(self.node)
        if not goal:
            return self._fail("policy_error", "empty goal string", goal, t_goal, step_id)
        with self._lock:
            obs = self.latest
        if obs is None:
            return self._fail(*self._missing_reason("camera_lost", f"no heightmap received yet on "
                              f"{self.p['heightmap_topic']}; is the heightmap node running and the camera publishing?"),
                              goal, t_goal, step_id)
        stale = check_age(obs.stamp, t_goal, self.p["max_age_s"], "the newest heightmap")
        if stale:
            return self._fail(*self._missing_reason("stale_frame", stale), goal, t_goal, step_id)
        if self.planner is not None:  # the message is the instruction; the planner picks the sub-goal
            self.planner.reset(self.planner_spec, goal)
            try:
                decision = self.planner.plan(obs)
            except Sim2RealError as e:
                return self._fail("policy_error", f"planner: {e}", goal, t_goal, step_id)
            self.log.info(f"planner {self.planner.name}: {decision.goal!r} (p {max(decision.probabilities or [1]):.2f})")
            if decision.done:
                return self._fail("done", "the planner chose done: the task is complete", goal, t_goal, step_id)
            goal = decision.goal
        t0 = time.monotonic()
        try:
            action = self.policy.act(obs, goal)
        except Sim2RealError as e:
            return self._fail("policy_error", str(e), goal, t_goal, step_id)
        policy_s = time.monotonic() - t0
        # the step id and the heightmap acted on travel with the action (in-process: the pipeline)
        # and with the poses (frame_id tag, stamp) to the executor and back in its step result
        action.info.update({"goal": goal, "t_goal": t_goal, "policy_s": policy_s, "step_id": step_id,
                            "heightmap_stamp_s": obs.stamp})
        poses = action_to_base(action, self.T_base_workspace)
        self.pub_poses.publish(pose_array_msg(self.types, poses, tag_frame(self.p["base_frame"], step_id), obs.stamp))
        try:
            self.pub_overlay.publish(rgb_to_image_msg(self.types, affordance_overlay(obs, action), obs.stamp,
                                                      self.p["base_frame"]))
        except Sim2RealError as e:
            self.log.warning(f"no overlay: {e}")
        self.log.info(f"goal {goal!r}: pick px {action.pick.pixel} -> place px {action.place.pixel} "
                      f"({policy_s:.2f} s)")
        if self.on_action is not None:
            self.on_action(action, goal, t_goal)


def _load_planner(params: dict):
    """(planner, TaskSpec) from the ``planner`` / ``planner_task`` / ``llm`` parameters, or (None, None)."""
    if not params.get("planner"):
        return None, None
    if not params.get("planner_task"):
        raise ConfigError("parameter planner_task is empty: the planner needs the task whose sub-goals it chooses "
                          "(planner_task:='stack-block')")
    from sim2real.planner.planners import make_planner
    from sim2real.tasks import resolve

    planner = make_planner(params["planner"], llm=params.get("llm") or None, device=params["device"],
                           scene="heightmap")
    return planner, resolve(params["planner_task"])


def make_node(overrides=None, policy=None):
    """The standalone policy node."""
    from rclpy.node import Node

    class PolicyNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.stage = PolicyStage(self, declare(self, NODE, overrides), policy=policy)

    return PolicyNode()


def main(args=None) -> int:
    """Console entry ``policy_node``."""
    return spin_node(lambda: make_node(), args, NODE)

