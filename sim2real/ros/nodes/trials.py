"""``trials`` node: the evaluation campaign, driven by the operator through std_srvs services.

Runs :func:`sim2real.trials.campaign.run_campaign` (``trials`` trials of ``task``) into the trial
log ``out`` in a worker thread, with a :class:`~sim2real.trials.operator.ServiceOperator`. Each
step publishes the goal on ``goal_topic`` and waits (``step_timeout_s``) for the step result on
``step_result_topic`` (from the policy on failure, else from the executor); a failed step ends
the trial with its reason. Prompts for the operator go to ``prompt_topic`` and the log.

Services (all std_srvs):
  ~/start_trial  Trigger   the scene is reset: start the next trial
  ~/done         Trigger   the task is complete (or given up): end the running trial now
  ~/label        SetBool   label the finished trial: true = success, false = failure (category from
                           the ``label_category`` parameter, else from the end reason)
  ~/label_partial Trigger  label it partial (some progress)
  ~/stop         Trigger   stop the campaign after the current wait (resume by relaunching)
"""
from __future__ import annotations

import threading

from sim2real.errors import Sim2RealError
from sim2real.ros.nodes._common import StampPairer, load_workspace, spin_node
from sim2real.ros.params import declare

NODE = "trials"


class StepChannel:
    """Publish a goal with a fresh step id, then wait for the step result carrying that id
    (thread-safe, no ROS inside). Results of other steps (a late result after a timeout, a
    duplicate) are dropped: they are never taken as the pending step's."""

    def __init__(self, publish_goal, log=None):
        import itertools
        import uuid

        self.publish_goal = publish_goal
        self.log = log
        self._cond = threading.Condition()
        self._result = None
        self._pending = None
        self._prefix = uuid.uuid4().hex[:8]  # unique across restarts of the node
        self._counter = itertools.count()
        self.dropped = []

    def next_id(self, label: str = "") -> str:
        return f"{self._prefix}-{label + '-' if label else ''}{next(self._counter)}"

    def deliver(self, result: dict) -> bool:
        """A step result arrived (subscription callback); False when it is not the pending step's."""
        with self._cond:
            if self._pending is None or result.get("step_id") != self._pending:
                self.dropped.append(result)
                if self.log is not None:
                    self.log(f"ignored a step result for step {result.get('step_id')!r} (waiting for "
                             f"{self._pending!r}): a late or foreign result ({result.get('reason')})")
                return False
            self._result = result
            self._cond.notify_all()
            return True

    def request(self, goal: str, timeout_s: float, label: str = "") -> dict:
        """Send ``goal`` with a new step id and return its step result; TimeoutError after ``timeout_s``."""
        from sim2real.ros.steps import encode_goal

        step_id = self.next_id(label)
        with self._cond:
            self._result, self._pending = None, step_id
        try:
            self.publish_goal(encode_goal(goal, step_id))
            with self._cond:
                if not self._cond.wait_for(lambda: self._result is not None, timeout=timeout_s):
                    raise TimeoutError(f"no step result within {timeout_s:.0f} s; are the policy and executor "
                                       "nodes running? (`ros2 node list`)")
                return self._result
        finally:
            with self._cond:
                self._pending = None  # a result arriving from now on is late: dropped


class ObservationBuffer:
    """The last few heightmap observations by stamp (ns), to store the one a step's policy acted on."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self._obs: dict = {}
        self._lock = threading.Lock()

    def add(self, stamp_ns: int, obs) -> None:
        with self._lock:
            self._obs[int(stamp_ns)] = obs
            for k in sorted(self._obs)[:-self.keep]:
                del self._obs[k]

    def get(self, stamp_ns):
        """The observation with this stamp, or None (unknown stamp / not kept any more)."""
        if stamp_ns is None:
            return None
        with self._lock:
            return self._obs.get(int(stamp_ns))


def make_node(overrides=None):
    from rclpy.node import Node
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from sim2real.ros.conversions import heightmap_from_msgs
    from sim2real.ros.steps import decode, default_step_record, resolve_task, run_remote_episode
    from sim2real.trials.campaign import Campaign, run_campaign
    from sim2real.trials.labels import REASON_TO_CATEGORY
    from sim2real.trials.log import TrialLog
    from sim2real.trials.operator import ServiceOperator
    from sim2real.trials.provenance import collect_provenance

    class TrialsNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.p = p = declare(self, NODE, overrides)
            self.task, self.goal, self.max_steps = resolve_task(p["task"], p["goal"], p["max_steps"])
            self.workspace, _, _ = load_workspace(p["calibration"])
            group = ReentrantCallbackGroup()
            self.pub_goal = self.create_publisher(String, p["goal_topic"], 10)
            self.pub_prompt = self.create_publisher(String, p["prompt_topic"], 10)
            self.channel = StepChannel(lambda g: self.pub_goal.publish(String(data=g)),
                                       log=lambda text: self.get_logger().warning(text))
            self.create_subscription(String, p["step_result_topic"], lambda m: self.channel.deliver(decode(m.data)),
                                     10, callback_group=group)
            self.pairer, self.observations = StampPairer(), ObservationBuffer()
            self.create_subscription(Image, p["heightmap_topic"], lambda m: self._hm("height", m), 2,
                                     callback_group=group)
            self.create_subscription(Image, p["colormap_topic"], lambda m: self._hm("color", m), 2,
                                     callback_group=group)
            self.operator = ServiceOperator(name=p["operator"], on_prompt=self._prompt)
            self.done = threading.Event()
            self.last_reason = ""
            for name, srv, cb in (("~/start_trial", Trigger, self._srv_start), ("~/done", Trigger, self._srv_done),
                                  ("~/label", SetBool, self._srv_label), ("~/label_partial", Trigger, self._srv_partial),
                                  ("~/stop", Trigger, self._srv_stop)):
                self.create_service(srv, name, cb, callback_group=group)
            self.log_dir = TrialLog(p["out"])
            self.campaign = Campaign(tasks=(self.task,), name=f"ros-{self.task}", trials=p["trials"], seed=p["seed"],
                                     max_steps=self.max_steps)
            self.provenance = collect_provenance(checkpoint=p["checkpoint"] or None,
                                                 calibration=p["calibration"] or None,
                                                 operator=p["operator"], extra={"robot": p["robot"], "ros": True})
            self.worker = threading.Thread(target=self._run, daemon=True)
            self.worker.start()
            self.get_logger().info(f"trials: {p['trials']} x {self.task!r} (goal {self.goal!r}, <= {self.max_steps} "
                                   f"steps) into {p['out']}; call ~/start_trial when the scene is reset")

        # -- observations stored with each step --
        def _hm(self, kind, msg):
            from sim2real.ros.conversions import time_to_ns

            pair = self.pairer.add(kind, msg)
            if pair is not None:
                try:
                    self.observations.add(time_to_ns(pair[0].header.stamp),
                                          heightmap_from_msgs(pair[0], pair[1], self.workspace))
                except Sim2RealError as e:
                    self.get_logger().warning(f"heightmap not stored: {e}", throttle_duration_sec=10.0)

        def _prompt(self, text: str) -> None:
            self.get_logger().warning(f"OPERATOR: {text}")
            context = getattr(self, "context", None)
            if context is None or context.ok():  # after Ctrl-C the campaign thread may still prompt once
                try:
                    self.pub_prompt.publish(String(data=text))
                except Exception:  # noqa: BLE001 - RCLError: the context went away meanwhile
                    pass

        # -- the campaign --
        def _run_trial(self, task, trial, seed, on_step=None):
            self.done.clear()

            def record(goal, result):
                # the heightmap the policy acted on (by the stamp its poses carried), never the one
                # current when the result arrives (after the motion)
                step = default_step_record(goal, result)
                step["observation"] = self.observations.get(result.get("heightmap_stamp_ns"))
                if step["observation"] is None and result.get("heightmap_stamp_ns") is not None:
                    step["info"]["observation"] = "the heightmap the policy acted on was not received by this node"
                return step

            result = run_remote_episode(self.goal, self.max_steps,
                                        lambda goal, i: self.channel.request(goal, self.p["step_timeout_s"],
                                                                             f"t{trial}s{i}"),
                                        on_step=on_step, end_requested=self.done.is_set, make_step_record=record)
            self.last_reason = result.reason
            self._prompt(f"trial {trial + 1} of {task!r} ended: {result.reason} after {result.steps} step(s); "
                         "label it: ~/label true|false (set parameter label_category first for a failure) "
                         "or ~/label_partial")
            return result

        def _run(self):
            try:
                summary = run_campaign(self.campaign, self.log_dir, self._run_trial, self.operator,
                                       policy=self.p["policy_name"], provenance=self.provenance, progress=False)
                self._prompt(f"campaign finished: {len(summary.committed)} trial(s) labelled this run; "
                             f"report: sim2real report {self.p['out']}")
            except Sim2RealError as e:
                self.get_logger().error(f"campaign stopped: {e}")
            finally:
                self.log_dir.close()

        # -- services --
        def _srv_start(self, request, response):
            waiting = self.operator.waiting_for == "reset"
            if waiting:
                self.operator.confirm_reset()
            response.success = waiting
            response.message = "trial started" if waiting else f"not waiting for a reset ({self.operator.waiting_for})"
            return response

        def _srv_done(self, request, response):
            self.done.set()
            response.success, response.message = True, "the running trial ends after the current step"
            return response

        def _take_label_params(self):
            category = self.get_parameter("label_category").value or None
            note = self.get_parameter("label_note").value or ""
            self.set_parameters([Parameter("label_category", value=""), Parameter("label_note", value="")])
            return category, note

        def _label(self, outcome: str, response):
            if self.operator.waiting_for != "label":
                response.success = False
                response.message = f"no trial is waiting for a label ({self.operator.waiting_for})"
                return response
            category, note = self._take_label_params()
            if outcome != "success" and category is None:
                category = REASON_TO_CATEGORY.get(self.last_reason, "other")
            try:
                label = self.operator.submit_label(outcome, None if outcome == "success" else category, note)
            except Sim2RealError as e:
                response.success, response.message = False, str(e)
                return response
            response.success, response.message = True, f"labelled {label.outcome}" + (
                f" ({label.category})" if label.category else "")
            return response

        def _srv_label(self, request, response):
            return self._label("success" if request.data else "failure", response)

        def _srv_partial(self, request, response):
            return self._label("partial", response)

        def _srv_stop(self, request, response):
            self.operator.stop()
            self.done.set()
            response.success, response.message = True, "campaign stops at the next wait"
            return response

        def shutdown(self):
            self.operator.stop()
            self.done.set()
            self.worker.join(timeout=5.0)

    return TrialsNode()


def main(args=None) -> int:
    """Console entry ``trials_node``."""
    return spin_node(lambda: make_node(), args, NODE)
