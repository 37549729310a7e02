"""``executor`` node: [pick, place] PoseArray -> waypoint plan -> safety -> MoveIt, by mode.

For each PoseArray on ``poses_topic`` (base frame, stamped with its heightmap's time) it builds
the pick-and-place plan (:func:`sim2real.motion.plan_from_action`), checks every waypoint against
the safety envelope with an IK check (:func:`sim2real.safety.check_plan`), publishes the planned
waypoints on ``planned_topic`` (RViz), then by ``mode``:

* ``auto``: executes through MoveIt (:class:`~sim2real.ros.moveit_robot.MoveItRobot`);
* ``confirm``: waits for ``~/confirm`` (std_srvs/SetBool: true = go, false = reject) for at most
  ``confirm_timeout_s``;
* ``dry_run``: never executes (MoveIt is not even started).

Every outcome is published on ``step_result_topic`` (std_msgs/String JSON, sim2real.ros.steps).
The arm is stopped in a ``finally`` after every execution and when the node shuts down.
Services: ``~/confirm`` (SetBool), ``~/home`` (Trigger: move to the home joints).
"""
from __future__ import annotations

import threading

from sim2real.errors import Sim2RealError
from sim2real.ros.nodes._common import load_workspace, now_s, spin_node
from sim2real.ros.params import declare

NODE = "executor"


class Confirmation:
    """One pending yes/no from the operator (the ``~/confirm`` service answers it)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._answer = None
        self.waiting = False

    def answer(self, value: bool) -> bool:
        """Record the operator's answer; False when nothing is waiting for one."""
        with self._cond:
            if not self.waiting:
                return False
            self._answer = bool(value)
            self._cond.notify_all()
            return True

    def wait(self, timeout_s: float):
        """True / False from the operator, or None after ``timeout_s``."""
        with self._cond:
            self._answer, self.waiting = None, True
            try:
                self._cond.wait_for(lambda: self._answer is not None, timeout=timeout_s)
                return self._answer
            finally:
                self.waiting = False


class ExecutorStage:
    """The executor stage on any rclpy node.

    Args:
        node: hosting rclpy node.
        params: validated parameters (sim2real.ros.params.EXECUTOR).
        robot: a RobotPort taking workspace-frame poses (default: MoveIt + gripper of the config;
            a :class:`sim2real.robot.DryRunRobot` in dry_run mode).
        subscribe: False when the pipeline node hands actions over in-process.
    """

    def __init__(self, node, params: dict, robot=None, subscribe: bool = True):
        from geometry_msgs.msg import PoseArray
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from std_srvs.srv import SetBool, Trigger

        from sim2real.robot_config import load_robot_config
        from sim2real.ros.conversions import MsgTypes

        self.node, self.p = node, params
        self.log = node.get_logger()
        self.types = MsgTypes.from_rclpy()
        self.config = load_robot_config(params["robot"])
        if params["base_frame"] != self.config.base_frame:
            self.log.warning(f"base_frame {params['base_frame']!r} differs from the robot config's "
                             f"{self.config.base_frame!r}; poses are planned in {self.config.base_frame}")
        self.workspace, self.T_base_workspace, _ = load_workspace(params["calibration"])
        self.motion_config = self.config.motion_config()
        self.envelope = self.config.safety_envelope(self.workspace)
        self.reentrant = ReentrantCallbackGroup()
        self.robot = robot if robot is not None else self._make_robot()
        self.confirmation = Confirmation()
        self.busy = threading.Lock()
        self.goal, self.t_goal = "", 0.0
        self.heights = {}
        self.pub_result = node.create_publisher(String, params["step_result_topic"], 10)
        self.pub_planned = node.create_publisher(PoseArray, params["planned_topic"], 1)
        group = MutuallyExclusiveCallbackGroup()
        if subscribe:
            node.create_subscription(PoseArray, params["poses_topic"], self.on_poses, 10, callback_group=group)
            node.create_subscription(String, params["goal_topic"], self._on_goal, 10, callback_group=group)
            node.create_subscription(Image, params["heightmap_topic"], self._on_height, 2, callback_group=group)
        node.create_service(SetBool, "~/confirm", self._srv_confirm, callback_group=self.reentrant)
        node.create_service(Trigger, "~/home", self._srv_home, callback_group=self.reentrant)
        self.log.info(f"executor: robot {self.config.name} ({self.config.planning_group}), mode {params['mode']}")
        if params["go_home"] and params["mode"] != "dry_run":
            threading.Thread(target=self._home_quietly, daemon=True).start()

    def _make_robot(self):
        from sim2real.ros.moveit_robot import FrameRobot

        if self.p["mode"] == "dry_run":
            from sim2real.robot import DryRunRobot

            tool = "gripper" if self.config.gripper.type == "parallel" else "suction"
            return FrameRobot(DryRunRobot(tool=tool), None)
        from sim2real.ros.grippers import make_gripper
        from sim2real.ros.moveit_adapter import MoveItAdapter
        from sim2real.ros.moveit_robot import MoveItRobot

        adapter = MoveItAdapter(self.config, flavour=self.p["moveit_api"], logger=self.log).connect()
        gripper = make_gripper(self.node, self.config.gripper, callback_group=self.reentrant)
        return FrameRobot(MoveItRobot(self.config, adapter, gripper), self.T_base_workspace)

    # -- inputs ----------------------------------------------------------------------------------

    def _on_goal(self, msg) -> None:
        self.goal, self.t_goal = str(msg.data), now_s(self.node)

    def _on_height(self, msg) -> None:
        from sim2real.ros.conversions import time_to_ns

        self.heights[time_to_ns(msg.header.stamp)] = msg
        for k in sorted(self.heights)[:-4]:
            del self.heights[k]

    def _height_for(self, stamp_ns: int):
        from sim2real.ros.conversions import image_msg_to_array

        msg = self.heights.get(stamp_ns)
        return None if msg is None else image_msg_to_array(msg)

    def on_poses(self, msg) -> None:
        """A [pick, place] PoseArray arrived: run the step in a worker thread (one at a time)."""
        from sim2real.ros.conversions import (pose_array_from_msg, pose_array_msg, pose_array_to_action, time_to_ns,
                                              time_to_seconds)
        from sim2real.ros.frames import base_to_workspace
        from sim2real.ros.steps import check_age

        stamp = time_to_seconds(msg.header.stamp)
        stale = check_age(stamp, now_s(self.node), self.p["max_pose_age_s"], "the pick/place poses")
        if stale:
            return self.publish(self.failed("stale_frame", stale))
        try:
            poses = base_to_workspace(pose_array_from_msg(msg), self.T_base_workspace)
            ws_msg = pose_array_msg(self.types, poses, msg.header.frame_id, stamp)
            action = pose_array_to_action(ws_msg, self.workspace)
        except Sim2RealError as e:
            return self.publish(self.failed("policy_error", str(e)))
        self.handle_action(action, self.goal, self.t_goal, self._height_for(time_to_ns(msg.header.stamp)))

    def handle_action(self, action, goal: str, t_goal: float, height=None) -> bool:
        """Start executing ``action`` in a worker thread; False (and a log line) when busy."""
        if not self.busy.acquire(blocking=False):
            self.log.warning("a step is still running; poses ignored")
            return False
        threading.Thread(target=self._run_step, args=(action, goal, t_goal, height), daemon=True).start()
        return True

    # -- the step --------------------------------------------------------------------------------

    def failed(self, reason: str, message: str) -> dict:
        from sim2real.ros.steps import step_result

        self.log.error(f"step stopped ({reason}), the arm does not move: {message}")
        return step_result("executor", False, reason, message, goal=self.goal, t_goal=self.t_goal,
                           mode=self.p["mode"], executed=False)

    def publish(self, result: dict) -> None:
        from std_msgs.msg import String

        from sim2real.ros.steps import encode

        self.pub_result.publish(String(data=encode(result)))

    def _run_step(self, action, goal: str, t_goal: float, height) -> None:
        from sim2real.motion import estimate_held_height, execute_plan, plan_from_action
        from sim2real.safety import check_plan
        from sim2real.ros.steps import execute_step

        try:
            held = 0.0
            if height is not None:
                held = estimate_held_height(height, action.pick.pixel, self.workspace.pixel_size)
            reachable = getattr(self.robot, "reachable", None) if self.p["mode"] != "dry_run" else None
            result = execute_step(
                action, mode=self.p["mode"],
                plan_fn=lambda a: plan_from_action(a, self.motion_config, held),
                check_fn=lambda plan: check_plan(plan, self.envelope, reachable),
                execute_fn=execute_plan, robot=self.robot, publish_plan=self._publish_plan,
                confirm=self._confirm, confirm_timeout_s=self.p["confirm_timeout_s"],
                log=self.log.error)
            result.update({"goal": goal, "t_goal": t_goal})
            self.publish(result)
        except Exception as e:  # noqa: BLE001 - a step must always report, whatever broke
            self.robot.stop()
            self.publish(self.failed("hardware_error", f"{type(e).__name__}: {e}"))
        finally:
            self.busy.release()

    def _publish_plan(self, plan) -> None:
        from sim2real.ros.conversions import pose_array_msg
        from sim2real.ros.frames import workspace_to_base

        poses = [(wp.xyz, self.config.tcp_orientation(wp.quat_xyzw)) for wp in plan if wp.tool is None]
        self.pub_planned.publish(pose_array_msg(self.types, workspace_to_base(poses, self.T_base_workspace),
                                                self.config.base_frame, now_s(self.node)))

    def _confirm(self, timeout_s: float):
        self.log.warning(f"motion planned (see {self.p['planned_topic']} in RViz). Approve: `ros2 service call "
                         f"{self.node.get_fully_qualified_name()}/confirm std_srvs/srv/SetBool '{{data: true}}'` "
                         f"(false = reject); waiting {timeout_s:.0f} s")
        return self.confirmation.wait(timeout_s)

    # -- services --------------------------------------------------------------------------------

    def _srv_confirm(self, request, response):
        response.success = self.confirmation.answer(request.data)
        response.message = ("approved" if request.data else "rejected") if response.success else \
            "no motion is waiting for confirmation"
        return response

    def _home_quietly(self) -> None:
        try:
            self.go_home()
        except Sim2RealError as e:
            self.log.error(f"could not move home at start-up: {e}")

    def go_home(self) -> None:
        """Joint move to the config's home joints; the arm is stopped afterwards whatever happens."""
        inner = getattr(self.robot, "robot", self.robot)
        try:
            if hasattr(inner, "go_home"):
                inner.go_home()
        finally:
            self.robot.stop()

    def _srv_home(self, request, response):
        if self.p["mode"] == "dry_run":
            response.success, response.message = False, "dry_run: the arm never moves"
            return response
        if not self.busy.acquire(blocking=False):
            response.success, response.message = False, "a step is running"
            return response
        try:
            self.go_home()
            response.success, response.message = True, "at home"
        except Sim2RealError as e:
            response.success, response.message = False, str(e)
        finally:
            self.busy.release()
        return response

    def shutdown(self) -> None:
        """Stop the arm (called before the node is destroyed)."""
        self.robot.stop()


def make_node(overrides=None, robot=None):
    """The standalone executor node."""
    from rclpy.node import Node

    class ExecutorNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.stage = ExecutorStage(self, declare(self, NODE, overrides), robot=robot)

        def shutdown(self):
            self.stage.shutdown()

    return ExecutorNode()


def main(args=None) -> int:
    """Console entry ``executor_node``."""
    return spin_node(lambda: make_node(), args, NODE)

