"""``executor`` node: [pick, place] PoseArray -> waypoint plan -> safety -> MoveIt, by mode.

For each PoseArray on ``poses_topic`` (base frame, stamped with its heightmap's time, the step id
in its frame_id: :func:`sim2real.ros.steps.tag_frame`) it builds the pick-and-place plan
(:func:`sim2real.motion.plan_from_action`), checks every waypoint against the safety envelope
with an IK check (:func:`sim2real.safety.check_plan`), publishes the planned waypoints on
``planned_topic`` (RViz), then by ``mode``:

* ``auto``: executes through MoveIt (:class:`~sim2real.ros.moveit_robot.MoveItRobot`, which checks
  every planned trajectory against the envelope again before it runs);
* ``confirm``: waits for ``~/confirm`` (std_srvs/SetBool: true = go, false = reject) for at most
  ``confirm_timeout_s``, and never longer than the plan stays fresh;
* ``dry_run``: never executes (MoveIt is not even started).

Safety rules of the node: one lock for every motion (steps, ``~/home``, the start-up homing);
no motion in ``confirm`` mode without a confirmation (the start-up homing asks too); a plan whose
heightmap is older than ``max_pose_age_s`` at the moment of execution is refused with
``stale_frame`` and ``retry`` (the trials node asks for the step again on a new observation);
after each step that moved the arm it goes home (out of the camera's view), except after an
operator stop, when it holds still.

Every outcome is published on ``step_result_topic`` (std_msgs/String JSON, sim2real.ros.steps),
with the step id and the heightmap stamp of the poses. The arm is stopped in a ``finally`` after
every execution and when the node shuts down.
Services: ``~/confirm`` (SetBool), ``~/home`` (Trigger: move to the home joints), ``~/stop``
(Trigger: stop the current trajectory now, served while a step executes; the step ends with
``operator_stop`` and the arm holds where it stopped).
"""
from __future__ import annotations

import threading

from sim2real.errors import Sim2RealError
from sim2real.robot import StopLatch
from sim2real.ros.nodes._common import load_workspace, now_s, spin_node
from sim2real.ros.params import declare

NODE = "executor"
BUSY_WAIT_S = 60.0
"""Poses that arrive while the arm moves wait this long for the motion to end, then ask for a new step."""


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
                self._cond.wait_for(lambda: self._answer is not None, timeout=max(0.0, timeout_s))
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
        # reach is measured from the robot base, wherever the calibration puts it in the workspace frame
        self.envelope = self.config.safety_envelope(self.workspace).in_frame(self.T_base_workspace)
        # services run in their own reentrant group: ~/stop and ~/confirm are answered while a
        # step (in its worker thread) blocks in MoveIt's execute()
        self.reentrant = ReentrantCallbackGroup()
        # an operator stop (~/stop, shutdown) holds until the next step or homing starts
        self.robot = StopLatch(robot if robot is not None else self._make_robot())
        self.confirmation = Confirmation()
        self.busy = threading.Lock()  # THE motion lock: steps, ~/home and the start-up homing
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
        node.create_service(Trigger, "~/stop", self._srv_stop, callback_group=self.reentrant)
        self.log.info(f"executor: robot {self.config.name} ({self.config.planning_group}), mode {params['mode']}")
        self.home_thread = None
        if params["go_home"] and params["mode"] != "dry_run":
            self.home_thread = threading.Thread(target=self._home_at_start, daemon=True)
            self.home_thread.start()

    def _make_robot(self):
        from sim2real.ros.moveit_robot import FrameRobot

        if self.p["mode"] == "dry_run":
            from sim2real.robot import DryRunRobot

            tool = "gripper" if self.config.gripper.type == "parallel" else "suction"
            return FrameRobot(DryRunRobot(tool=tool), None)
        if self.p["driver"] == "twin":  # the twin node executes (deploy.launch.py robot:=sim)
            from sim2real.ros.twin_link import TwinLink, TwinRobotClient

            tool = "gripper" if self.config.gripper.type == "parallel" else "suction"
            link = TwinLink(self.node.context, self.p["twin_request_topic"], self.p["twin_reply_topic"],
                            self.p["twin_timeout_s"], name="executor_twin_link")
            return FrameRobot(TwinRobotClient(link, tool), self.T_base_workspace)
        from sim2real.ros.grippers import make_gripper
        from sim2real.ros.moveit_adapter import MoveItAdapter
        from sim2real.ros.moveit_robot import MoveItRobot

        adapter = MoveItAdapter(self.config, flavour=self.p["moveit_api"], logger=self.log, envelope=self.envelope,
                                T_base_workspace=self.T_base_workspace).connect()
        gripper = make_gripper(self.node, self.config.gripper, callback_group=self.reentrant)
        return FrameRobot(MoveItRobot(self.config, adapter, gripper), self.T_base_workspace)

    # -- inputs ----------------------------------------------------------------------------------

    def _on_goal(self, msg) -> None:
        from sim2real.ros.steps import decode_goal

        self.goal, self.t_goal = decode_goal(msg.data)[0], now_s(self.node)

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
        """A [pick, place] PoseArray arrived: run the step in a worker thread (one at a time).

        Never raises: a malformed message (non-finite or degenerate poses, wrong length, bad
        stamp) is refused with a published step result naming the problem."""
        from sim2real.ros.steps import split_frame

        step_id, stamp_ns = "", None
        try:
            from sim2real.ros.conversions import (pose_array_from_msg, pose_array_msg, pose_array_to_action,
                                                  time_to_ns, time_to_seconds)
            from sim2real.ros.frames import base_to_workspace
            from sim2real.ros.steps import check_age

            frame_id, step_id = split_frame(msg.header.frame_id)
            stamp, stamp_ns = time_to_seconds(msg.header.stamp), time_to_ns(msg.header.stamp)
            stale = check_age(stamp, now_s(self.node), self.p["max_pose_age_s"], "the pick/place poses")
            if stale:
                return self.publish(self.failed("stale_frame", stale, step_id, stamp_ns))
            poses = base_to_workspace(pose_array_from_msg(msg), self.T_base_workspace)
            ws_msg = pose_array_msg(self.types, poses, frame_id, stamp)
            action = pose_array_to_action(ws_msg, self.workspace)
            height = self._height_for(stamp_ns)
        except Sim2RealError as e:
            return self.publish(self.failed("policy_error", str(e), step_id, stamp_ns))
        except Exception as e:  # noqa: BLE001 - a bad message must never take the node down
            return self.publish(self.failed("policy_error", f"malformed pick/place poses: {type(e).__name__}: {e}",
                                            step_id, stamp_ns))
        self.handle_action(action, self.goal, self.t_goal, height, stamp_s=stamp, step_id=step_id, stamp_ns=stamp_ns)

    def handle_action(self, action, goal: str, t_goal: float, height=None, *, stamp_s=None, step_id: str = "",
                      stamp_ns=None) -> bool:
        """Start executing ``action`` in a worker thread; False (and a log line) when busy.

        ``stamp_s``: time of the heightmap the action was computed on (default: the action's
        ``info['heightmap_stamp_s']`` from the policy stage); ``step_id`` likewise."""
        info = getattr(action, "info", None) or {}
        stamp_s = info.get("heightmap_stamp_s") if stamp_s is None else stamp_s
        step_id = step_id or str(info.get("step_id", ""))
        if stamp_ns is None and stamp_s is not None:
            stamp_ns = int(round(float(stamp_s) * 1e9))
        if not self.busy.acquire(blocking=False):
            self.log.warning("a step or a homing move is still running; these poses are not executed")
            threading.Thread(target=self._answer_while_busy, args=(step_id, stamp_ns), daemon=True).start()
            return False
        self.robot.reset()
        threading.Thread(target=self._run_step, args=(action, goal, t_goal, height, stamp_s, step_id, stamp_ns),
                         daemon=True).start()
        return True

    def _answer_while_busy(self, step_id: str, stamp_ns) -> None:
        """The step result for poses that came while the arm moved (never silence: the trial would wait
        ``step_timeout_s``). They were computed on a scene in motion, so once the motion has ended the
        result asks for the step again on a new observation (``stale_frame`` + ``retry``)."""
        ended = self.busy.acquire(timeout=BUSY_WAIT_S)
        if ended:
            self.busy.release()
        message = ("the arm was moving (a step or homing) when these poses came; " +
                   ("the step is asked again on a new observation" if ended else
                    f"it was still moving {BUSY_WAIT_S:.0f} s later"))
        self.publish({**self.failed("stale_frame", message, step_id, stamp_ns), "retry": ended})

    # -- the step --------------------------------------------------------------------------------

    def failed(self, reason: str, message: str, step_id: str = "", stamp_ns=None) -> dict:
        from sim2real.ros.steps import step_result

        self.log.error(f"step stopped ({reason}), the arm does not move: {message}")
        return step_result("executor", False, reason, message, goal=self.goal, t_goal=self.t_goal,
                           mode=self.p["mode"], executed=False, step_id=step_id, heightmap_stamp_ns=stamp_ns)

    def publish(self, result: dict) -> None:
        from std_msgs.msg import String

        from sim2real.ros.steps import encode

        self.pub_result.publish(String(data=encode(result)))

    def _stale(self, stamp_s):
        """None while the heightmap at ``stamp_s`` is fresh, else why not (asked at execution)."""
        from sim2real.ros.steps import check_age

        if stamp_s is None:
            return "the plan's heightmap time is unknown; it cannot be shown to be fresh"
        return check_age(float(stamp_s), now_s(self.node), self.p["max_pose_age_s"],
                         "the heightmap this plan was made on")

    def _run_step(self, action, goal: str, t_goal: float, height, stamp_s=None, step_id: str = "",
                  stamp_ns=None) -> None:
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
                execute_fn=lambda robot, plan: execute_plan(robot, plan, self.envelope), robot=self.robot,
                publish_plan=self._publish_plan,
                confirm=lambda timeout_s: self._confirm(timeout_s, stamp_s),
                confirm_timeout_s=self.p["confirm_timeout_s"],
                log=self.log.error, stale=lambda: self._stale(stamp_s))
            moved = "motion_s" in (result.get("timings") or {})  # execution started: the arm may be anywhere
            if moved and result.get("reason") != "operator_stop":  # after a stop the arm holds still
                result["homed"] = self._home_after_step()
            result.update({"goal": goal, "t_goal": t_goal, "step_id": step_id, "heightmap_stamp_ns": stamp_ns})
            self.publish(result)
        except Exception as e:  # noqa: BLE001 - a step must always report, whatever broke
            self.robot.stop()
            self.publish(self.failed("hardware_error", f"{type(e).__name__}: {e}", step_id, stamp_ns))
        finally:
            self.busy.release()

    def _home_after_step(self) -> bool:
        """Back to the capture pose after a step that moved the arm (the lock is held)."""
        try:
            self._go_home_locked()
            return True
        except Sim2RealError as e:
            self.log.error(f"could not move home after the step: {e}")
            return False

    def _publish_plan(self, plan) -> None:
        from sim2real.ros.conversions import pose_array_msg
        from sim2real.ros.frames import workspace_to_base

        poses = [(wp.xyz, self.config.tcp_orientation(wp.quat_xyzw)) for wp in plan if wp.tool is None]
        self.pub_planned.publish(pose_array_msg(self.types, workspace_to_base(poses, self.T_base_workspace),
                                                self.config.base_frame, now_s(self.node)))

    def _confirm(self, timeout_s: float, stamp_s=None, what: str = "motion planned"):
        """Ask the operator; wait at most ``timeout_s`` and never past the plan's freshness."""
        if stamp_s is not None:
            timeout_s = min(timeout_s, float(stamp_s) + self.p["max_pose_age_s"] - now_s(self.node))
        self.log.warning(f"{what} (see {self.p['planned_topic']} in RViz). Approve: `ros2 service call "
                         f"{self.node.get_fully_qualified_name()}/confirm std_srvs/srv/SetBool '{{data: true}}'` "
                         f"(false = reject); waiting {max(0.0, timeout_s):.0f} s")
        return self.confirmation.wait(timeout_s)

    # -- services --------------------------------------------------------------------------------

    def _srv_confirm(self, request, response):
        response.success = self.confirmation.answer(request.data)
        response.message = ("approved" if request.data else "rejected") if response.success else \
            "no motion is waiting for confirmation"
        return response

    def _srv_stop(self, request, response):
        """Stop the current trajectory now (MoveIt's trajectory execution manager) and reject any
        pending confirmation; the running step ends with ``operator_stop``."""
        self.confirmation.answer(False)
        self.robot.trip()
        self.log.warning("STOP requested: the current trajectory is stopped; the arm holds where it is")
        response.success, response.message = True, "stopped"
        return response

    def _home_at_start(self) -> None:
        """Start-up homing: takes the motion lock; in confirm mode only after a confirmation."""
        with self.busy:
            self.robot.reset()
            if self.p["mode"] == "confirm":
                answer = self._confirm(self.p["confirm_timeout_s"], what="start-up move to the home joints")
                if answer is not True:
                    self.log.warning("start-up homing not confirmed; the arm stays where it is "
                                     "(call ~/home to move it home)")
                    return
            try:
                self._go_home_locked()
            except Sim2RealError as e:
                self.log.error(f"could not move home at start-up: {e}")

    def _go_home_locked(self) -> None:
        """Send the arm home (the caller holds the motion lock); stopped afterwards whatever happens."""
        from sim2real import motion

        try:
            # lifts clear of the table through the envelope first, then the robot's checked home()
            motion.go_home(self.robot, self.envelope, self.motion_config.approach_height)
        finally:
            self.robot.stop()

    def go_home(self) -> None:
        """Joint move to the config's home joints under the motion lock (raises when busy)."""
        if not self.busy.acquire(blocking=False):
            raise Sim2RealError("a step or another homing move is running; try again when it has finished")
        try:
            self.robot.reset()
            self._go_home_locked()
        finally:
            self.busy.release()

    def _srv_home(self, request, response):
        if self.p["mode"] == "dry_run":
            response.success, response.message = False, "dry_run: the arm never moves"
            return response
        try:
            self.go_home()
            response.success, response.message = True, "at home"
        except Sim2RealError as e:
            response.success, response.message = False, str(e)
        return response

    def shutdown(self) -> None:
        """Stop the arm for good (called when the node stops)."""
        self.confirmation.answer(False)
        self.robot.trip()


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

