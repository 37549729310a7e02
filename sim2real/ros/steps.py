"""What the executor and trials nodes do, as pure functions with injected collaborators.

The ROS nodes only wire these to topics and services, so the decisions (safety before motion,
operating modes, which failure stops a step with which reason, when a trial ends) are tested here
without ROS.

Step results travel between nodes as ``std_msgs/String`` holding one JSON object (no custom
message package)::

    {"stage": "heightmap" | "policy" | "executor", "ok": bool, "reason": str, "message": str,
     "goal": str, "t_goal": float, "mode": "auto" | "confirm" | "dry_run", "step_id": str,
     "heightmap_stamp_ns": int (the heightmap the policy acted on), "retry": bool,
     "action": {"pick": PixelPose dict, "place": ...} | null, "safety": {"ok": bool, "reasons": [...]} | null,
     "executed": bool, "timings": {"plan_s": .., "motion_s": ..}}

Step ids: the trials node sends each goal as JSON ``{"goal": str, "step_id": str}`` (a plain
string is still a goal, with no id); the policy node tags the [pick, place] PoseArray's
``header.frame_id`` as ``<base_frame>|step=<id>`` (:func:`tag_frame`; the stamp stays the
heightmap's), the executor strips the tag and copies the id into its step result, and the
trials node takes only the result carrying the id it is waiting for: a late result of a step that
timed out is never taken as the next step's.

Reasons (the episode end reasons recorded with the trial): ``ok``, ``dry_run``, ``safety_stop``,
``planning_failed``, ``ik_failed``, ``execution_failed``, ``rejected_by_operator``,
``operator_stop``, ``camera_lost``, ``stale_frame``, ``tf_timeout``, ``policy_error``,
``hardware_error``, ``step_timeout``, ``max_steps``, ``done``. A result with ``retry`` true (the
plan went stale before it could run, or its poses came while the arm was still moving) asks for
the same step again on a new observation.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from sim2real.errors import HardwareError, MotionStopped, PlanningError, SafetyError, Sim2RealError

MODES = ("auto", "confirm", "dry_run")
"""Executor operating modes."""

STOP_REASONS = ("safety_stop", "planning_failed", "ik_failed", "execution_failed", "rejected_by_operator",
                "operator_stop", "camera_lost", "stale_frame", "tf_timeout", "policy_error", "hardware_error",
                "config_error", "step_timeout", "empty_heightmap")
"""Step failures that end the trial (the arm has not moved, or was stopped)."""

STEP_TAG = "|step="
"""Separator of the step id in a PoseArray's frame_id (``|`` never occurs in a TF frame name)."""

MAX_STALE_RETRIES = 5
"""How often one step is asked again because its plan went stale before it could run."""


def encode_goal(goal: str, step_id: str) -> str:
    """The goal String's text: JSON with the language goal and the step id."""
    return json.dumps({"goal": str(goal), "step_id": str(step_id)})


def decode_goal(text: str) -> tuple:
    """(goal, step_id) of a goal String: JSON from the trials node, or a plain goal (step id '')."""
    text = str(text)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return text.strip(), ""
        if isinstance(data, dict) and isinstance(data.get("goal"), str):
            step_id = data.get("step_id", "")
            return data["goal"].strip(), step_id if isinstance(step_id, str) else ""
    return text.strip(), ""


def tag_frame(frame_id: str, step_id: str) -> str:
    """``frame_id`` carrying ``step_id`` (unchanged when the id is empty)."""
    return f"{frame_id}{STEP_TAG}{step_id}" if step_id else frame_id


def split_frame(frame_id: str) -> tuple:
    """(frame_id, step_id) of a tagged frame id (:func:`tag_frame`); step id '' when untagged."""
    frame, _, step_id = str(frame_id).partition(STEP_TAG)
    return frame, step_id


def step_result(stage: str, ok: bool, reason: str, message: str = "", **extra) -> dict:
    """A step-result dict (see the module docstring)."""
    out = {"stage": stage, "ok": bool(ok), "reason": reason, "message": message}
    out.update(extra)
    return out


def encode(result: dict) -> str:
    """JSON text for a std_msgs/String (NaN-free)."""
    return json.dumps(result, allow_nan=False, default=_jsonable)


def decode(text: str) -> dict:
    """Parse a step-result String; a malformed one becomes a failed result naming the problem."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        return step_result("unknown", False, "policy_error", f"malformed step result: {e}")
    if not isinstance(data, dict) or "ok" not in data or "reason" not in data:
        return step_result("unknown", False, "policy_error", f"step result lacks ok/reason: {text[:200]}")
    return data


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot store {type(value).__name__} in a step result")


def check_age(stamp_s: float, now_s: float, max_age_s: float, what: str) -> Optional[str]:
    """None if ``stamp_s`` is fresh, else a log line: the frame is stale or from the future."""
    age = now_s - stamp_s
    if not math.isfinite(age) or age > max_age_s:
        return (f"{what} is {age:.2f} s old (max_age_s {max_age_s:.2f}); the camera or an upstream node has "
                "stopped or lags: check `ros2 topic hz` on its topic")
    if age < -max_age_s:
        return f"{what} is stamped {-age:.2f} s in the future; synchronise the machines' clocks (chrony)"
    return None


def _verdict_dict(verdict) -> dict:
    if isinstance(verdict, dict):
        return {"ok": bool(verdict.get("ok")), "reasons": [str(r) for r in verdict.get("reasons", [])]}
    return {"ok": bool(getattr(verdict, "ok")), "reasons": [str(r) for r in getattr(verdict, "reasons", [])]}


def execute_step(action, *, mode: str, plan_fn: Callable, check_fn: Callable, execute_fn: Callable, robot,
                 publish_plan: Callable = lambda plan: None, confirm: Callable[[float], Optional[bool]] = None,
                 confirm_timeout_s: float = 120.0, log: Callable[[str], None] = print, clock=time.monotonic,
                 stale: Callable[[], Optional[str]] = lambda: None) -> dict:
    """Plan, check, (maybe) confirm and execute one pick-and-place action.

    Args:
        action: the PickPlaceAction.
        mode: 'auto' | 'confirm' | 'dry_run'.
        plan_fn: ``plan_fn(action) -> plan`` (sim2real.motion.plan_pick_place bound to the config).
        check_fn: ``check_fn(plan) -> verdict`` with ok / reasons (sim2real.safety.check_plan).
        execute_fn: ``execute_fn(robot, plan)`` (sim2real.motion.execute_plan).
        robot: the RobotPort; ``robot.stop()`` is called in a ``finally`` around execution.
        publish_plan: shows the plan (RViz) before anything moves.
        confirm: ``confirm(timeout_s) -> True | False | None`` (None = nobody answered).
        log: one-line logger for failures.
        stale: ``stale() -> None | message``, asked at the moment of execution (after any
            confirmation): a message means the observation the plan was made on is too old; the
            step is refused (``stale_frame``, ``retry`` true: ask again on a new observation).

    Returns:
        A step-result dict; ``executed`` is True only when the motion ran to completion.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    base = {"mode": mode, "action": action.to_dict(), "executed": False, "safety": None, "timings": {}}
    t0 = clock()
    try:
        plan = plan_fn(action)
    except Sim2RealError as e:
        log(f"step stopped: planning the pick-and-place failed: {e}")
        return step_result("executor", False, getattr(e, "reason", "planning_failed"), str(e), **base)
    verdict = _verdict_dict(check_fn(plan))
    base["safety"] = verdict
    base["timings"]["plan_s"] = clock() - t0
    if not verdict["ok"]:
        log(f"step stopped by the safety envelope, the arm does not move: {'; '.join(verdict['reasons'])}")
        return step_result("executor", False, "safety_stop", "; ".join(verdict["reasons"]), **base)
    publish_plan(plan)
    if mode == "dry_run":
        return step_result("executor", True, "dry_run", "planned and shown, not executed (dry_run)", **base)
    if mode == "confirm":
        answer = confirm(confirm_timeout_s) if confirm is not None else None
        if answer is not True:
            why = "rejected by the operator" if answer is False else f"not confirmed within {confirm_timeout_s:.0f} s"
            if answer is None and stale() is not None:
                why = f"not confirmed before the plan went stale: {stale()}"
                log(f"step stopped: motion {why}; the arm does not move, a new step is requested")
                return step_result("executor", False, "stale_frame", why, retry=True, **base)
            log(f"step stopped: motion {why}; the arm does not move")
            return step_result("executor", False, "rejected_by_operator", why, **base)
    too_old = stale()
    if too_old is not None:
        log(f"step stopped: the plan is stale at the moment of execution ({too_old}); the arm does not move, "
            "a new step is requested")
        return step_result("executor", False, "stale_frame", too_old, retry=True, **base)
    t1 = clock()
    try:
        execute_fn(robot, plan)
        base["executed"] = True
        return step_result("executor", True, "ok", "executed", **base)
    except MotionStopped as e:
        log(f"step stopped by the operator: {e}")
        return step_result("executor", False, "operator_stop", str(e), **base)
    except SafetyError as e:
        log(f"step stopped by a safety check during execution: {e}")
        return step_result("executor", False, "safety_stop", str(e), **base)
    except PlanningError as e:
        reason = getattr(e, "reason", "planning_failed")
        log(f"step stopped: {e}")
        return step_result("executor", False, reason, str(e), **base)
    except HardwareError as e:
        log(f"step stopped: hardware error: {e}")
        return step_result("executor", False, "hardware_error", str(e), **base)
    finally:
        base["timings"]["motion_s"] = clock() - t1
        robot.stop()


@dataclass
class RemoteEpisodeResult:
    """The EpisodeResult of an episode run across nodes (success is labelled by the operator)."""

    success: Optional[bool] = None
    steps: int = 0
    reason: str = ""
    reward: Optional[float] = None
    info: dict = field(default_factory=dict)


def run_remote_episode(goal: str, max_steps: int, request_step: Callable[[str, int], dict], *,
                       on_step: Optional[Callable] = None, end_requested: Callable[[], bool] = lambda: False,
                       make_step_record: Callable[[str, dict], dict] = None) -> RemoteEpisodeResult:
    """Run steps until the operator ends the episode, a step fails, or ``max_steps`` is reached.

    Args:
        goal: the language goal sent with every step.
        max_steps: step budget (>= 1).
        request_step: ``request_step(goal, index) -> step-result dict``; raises TimeoutError when
            no result arrives (the trial ends with reason ``step_timeout``).
        on_step: receives one StepRecord dict per step (for the trial log).
        end_requested: True when the operator said the task is done (reason ``done``).
        make_step_record: builds the StepRecord from (goal, result) (default: a plain dict).
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    make_step_record = make_step_record or default_step_record
    steps, reasons = 0, []
    for index in range(max_steps):
        if end_requested():
            return RemoteEpisodeResult(None, steps, "done", None, {"goal": goal, "step_reasons": reasons})
        retries = 0
        for attempt in range(MAX_STALE_RETRIES + 1):
            try:
                result = request_step(goal, index)
            except TimeoutError as e:
                result = step_result("trials", False, "step_timeout", str(e))
            # a plan that went stale before it ran: the arm did not move; ask again on a new observation
            if not (result.get("retry") and result.get("reason") == "stale_frame") or attempt == MAX_STALE_RETRIES \
                    or end_requested():
                break
            retries += 1
        steps += 1
        reasons.append(result.get("reason"))
        if retries:
            result = {**result, "stale_retries": retries}
        if on_step is not None:
            on_step(make_step_record(goal, result))
        if not result.get("ok"):
            return RemoteEpisodeResult(None, steps,
                                       str(result.get("reason")), None,
                                       {"goal": goal, "message": result.get("message", ""), "stage": result.get("stage"),
                                        "step_reasons": reasons})
        if result.get("reason") == "dry_run":  # the scene does not change: one planned step is the answer
            return RemoteEpisodeResult(None, steps, "dry_run", None, {"goal": goal, "step_reasons": reasons})
    reason = "done" if end_requested() else "max_steps"
    return RemoteEpisodeResult(None, steps, reason, None, {"goal": goal, "step_reasons": reasons})


def default_step_record(goal: str, result: dict) -> dict:
    """StepRecord dict for the trial log from a step result (no images: those stay on their topics)."""
    from sim2real.action import PickPlaceAction, PixelPose

    action = None
    if result.get("action"):
        a = result["action"]
        action = PickPlaceAction(PixelPose.from_dict(a["pick"]), PixelPose.from_dict(a["place"]))
    return {"frames": [], "observation": None, "goal": goal, "action": action,
            "safety": result.get("safety"), "timings": result.get("timings") or {},
            "executed": {"executed": bool(result.get("executed")), "mode": result.get("mode")},
            "error": None if result.get("ok") else f"{result.get('reason')}: {result.get('message', '')}",
            "info": {"stage": result.get("stage"), "reason": result.get("reason"),
                     "step_id": result.get("step_id", ""), "heightmap_stamp_ns": result.get("heightmap_stamp_ns"),
                     "stale_retries": result.get("stale_retries", 0)}}


def resolve_task(task: str, goal: str = "", max_steps: int = 0, tasks: Optional[dict] = None) -> tuple:
    """(canonical task name, language goal, step budget) for the trials node.

    The task is looked up in config/tasks (name or alias, e.g. 'build wheel'). The goal is
    ``goal`` when given, else the task's language template, which must then have no
    ``{placeholders}`` (colours on a real table are chosen by the operator). The budget is
    ``max_steps`` when > 0, else the task's integer ``max_steps``.

    Raises:
        ConfigError / UnknownTaskError naming the fix.
    """
    import re

    from sim2real.errors import ConfigError
    from sim2real.tasks import resolve

    if not task.strip():
        raise ConfigError("parameter task is empty: pass task:=\"build wheel\" (a name from config/tasks)")
    spec = resolve(task, tasks)
    text = goal.strip() or spec.language
    if re.search(r"\{[^}]*\}", text):
        raise ConfigError(f"task {spec.name}'s goal template {text!r} has placeholders that depend on the scene; "
                          f"pass the instruction for your scene, e.g. goal:=\"{_example_goal(text)}\"")
    budget = int(max_steps)
    if budget <= 0:
        if not isinstance(spec.max_steps, int) or isinstance(spec.max_steps, bool):
            raise ConfigError(f"task {spec.name}'s step budget depends on its objects ({spec.max_steps}); "
                              "pass max_steps:=<n> (trials node parameter)")
        budget = spec.max_steps
    return spec.name, text, budget


def _example_goal(template: str) -> str:
    import re

    return re.sub(r"\{[^}]*\}", "red", template)
