"""The episode: observe -> act -> check safety -> execute -> record, until done or out of steps.

The same loop runs the twin, the real robot and dry runs; only the ports differ::

    go_home (before the first capture)
    camera.read() -> RGBDFrame(s) -> project_frames -> HeightmapObservation
      -> policy.act(obs, goal) -> PickPlaceAction -> plan_from_action -> check_plan (safety)
      -> execute_plan(robot) [stop() in finally] -> go_home -> success_check()

Every frame is captured with the arm at home and still (``go_home`` returns only then). A bad
action (off-grid pixel, zero or non-unit quaternion, NaN, anything not a PickPlaceAction), a
refused (unsafe) plan, an IK failure, a robot fault or an operator stop ends the episode cleanly:
the step records ``error`` and the episode its reason (:data:`REASONS`). Nothing is raised to the
caller except what is not an ``Exception`` (KeyboardInterrupt, SystemExit), and then only after
``robot.stop()``.
"""
from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

from sim2real.errors import HardwareError, MotionStopped, PlanningError, SafetyError, Sim2RealError
from sim2real.heightmap import EmptyHeightmapWarning, project_frames
from sim2real.motion import (ExecutionResult, MotionConfig, estimate_held_height, execute_plan, go_home,
                             plan_from_action)
from sim2real.safety import SafetyEnvelope, SafetyVerdict, check_plan
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

REASONS = ("success", "max_steps", "safety_stop", "planning_failed", "ik_failed", "camera_lost",
           "policy_error", "done", "stopped", "robot_error")
"""Why an episode ended (``stopped``: the operator stopped the arm; ``robot_error``: the robot or
its driver failed in a way that is not a planning or safety refusal)."""


@dataclass
class StepRecord:
    """Everything about one step (arrays included; ``to_dict`` gives the JSON-ready part).

    Attributes:
        step: index from 0.
        frames: list of RGBDFrame captured.
        observation: the HeightmapObservation given to the policy.
        goal: language goal.
        action: PickPlaceAction or None (policy failed).
        plan: list of Waypoint dicts.
        safety: verdict dict {ok, reasons}.
        timings: seconds {capture_s, heightmap_s, policy_s, motion_s}.
        executed: waypoint dicts actually sent to the robot.
        error: message of the error that ended the step, or None.
        reward, done: success check after the step (twin), or None.
    """

    step: int
    frames: list = field(default_factory=list)
    observation: object = None
    goal: str = ""
    action: object = None
    plan: list = field(default_factory=list)
    safety: dict = field(default_factory=lambda: {"ok": True, "reasons": []})
    timings: dict = field(default_factory=dict)
    executed: list = field(default_factory=list)
    error: Optional[str] = None
    reward: Optional[float] = None
    done: Optional[bool] = None
    info: dict = field(default_factory=dict)

    def __getitem__(self, key):  # dict-like access, as the trial log expects
        return getattr(self, key)

    def to_dict(self) -> dict:
        return {"step": self.step, "goal": self.goal, "action": _action_dict(self.action),
                "plan": self.plan, "safety": self.safety, "timings": self.timings, "executed": self.executed,
                "error": self.error, "reward": self.reward, "done": self.done, "info": self.info}


@dataclass
class EpisodeResult:
    """success (None when an operator must label), steps taken, reason, reward (twin), info."""

    success: Optional[bool]
    steps: int
    reason: str
    reward: Optional[float] = None
    info: dict = field(default_factory=dict)


def run_episode(camera, policy, robot, task, *, workspace: Workspace = GENSIM_WORKSPACE,
                envelope: Optional[SafetyEnvelope] = None, max_steps: int = 10,
                motion: Optional[MotionConfig] = None, success_check: Optional[Callable] = None,
                on_step: Optional[Callable] = None, reachable: Optional[Callable] = None) -> EpisodeResult:
    """Run one episode.

    Args:
        camera: CameraPort (``read()`` may return one RGBDFrame or a list of them).
        policy: PolicyPort.
        robot: RobotPort; sent home (``go_home``) before the first capture and after each step.
        task: a language goal string, or an object with ``lang_goal()`` (the twin's TaskInstance).
        workspace: heightmap grid.
        envelope: safety envelope (default: SafetyEnvelope() on ``workspace``).
        max_steps: step budget.
        motion: pick-and-place geometry and speeds.
        success_check: callable -> (done: bool, reward: float); None = the operator labels.
        on_step: callable(StepRecord) after each step (the trial log's writer).
        reachable: callable(pose) -> bool, an IK check added to the safety envelope.
    """
    envelope = (envelope or SafetyEnvelope()).with_workspace(workspace)
    motion = motion or MotionConfig()
    reward, reason, steps = None, "max_steps", 0
    if success_check is not None:
        done, reward = success_check()
        if done:  # nothing to do (a scene that happens to satisfy its goals)
            return EpisodeResult(True, 0, "success", reward)
    try:
        error = _home(robot, envelope, motion)
        if error is not None:  # no capture with the arm anywhere but at home
            return EpisodeResult(False if success_check is not None else None, 0, error[0], reward,
                                 {"error": f"homing before the first capture: {error[1]}"})
        for k in range(max_steps):
            rec = StepRecord(k, goal=task if isinstance(task, str) else task.lang_goal())
            steps = k + 1
            reason = _one_step(rec, camera, policy, robot, workspace, envelope, motion, reachable)
            if reason is None and success_check is not None:
                rec.done, rec.reward = success_check()
                reward = rec.reward
            if on_step is not None:
                on_step(rec)
            if reason is not None:
                break
            if rec.done:
                reason = "success"
                break
        else:
            reason = "max_steps"
    except BaseException:  # KeyboardInterrupt / SystemExit (or the log writer failing): stop the arm first
        _stop(robot)
        raise
    if success_check is None:
        return EpisodeResult(None, steps, reason if reason != "max_steps" else "done", None)
    done, reward = success_check()
    if done:
        reason = "success"
    return EpisodeResult(bool(done), steps, reason, reward)


def reason_of(error: BaseException) -> str:
    """The episode end reason (:data:`REASONS`) of an error raised by planning, safety or the robot."""
    if isinstance(error, MotionStopped):
        return "stopped"
    tagged = getattr(error, "reason", None)  # MoveIt adapter errors carry their own
    if isinstance(tagged, str) and tagged in REASONS:
        return tagged
    if isinstance(error, SafetyError):
        return "safety_stop"
    if isinstance(error, PlanningError):
        return "ik_failed" if "ik_failed" in str(error) else "planning_failed"
    if isinstance(error, HardwareError) or not isinstance(error, Sim2RealError):
        return "robot_error"
    return "planning_failed"


def _home(robot, envelope, motion) -> Optional[tuple]:
    """go_home; None when at home and still, else (reason, message)."""
    try:
        go_home(robot, envelope, motion.approach_height)
    except Exception as e:  # noqa: BLE001 - recorded as the episode's end reason
        return reason_of(e), f"{type(e).__name__}: {e}"
    return None


def _stop(robot) -> None:
    try:
        robot.stop()
    except Exception:  # noqa: BLE001 - stopping is best effort while an interrupt propagates
        pass


def _action_dict(action):
    """JSON-ready form of whatever the policy returned (a bad action is still logged)."""
    if action is None:
        return None
    try:
        return action.to_dict()
    except Exception:  # noqa: BLE001 - e.g. a NaN pixel cannot be an int
        return {"invalid": repr(action)[:2000]}


def _one_step(rec: StepRecord, camera, policy, robot, workspace, envelope, motion, reachable) -> Optional[str]:
    """Fill ``rec``; return the reason the episode must end, or None to continue. Never raises an Exception."""
    t0 = time.perf_counter()
    try:
        frames = camera.read()
    except Exception as e:  # noqa: BLE001 - HardwareError, TimeoutError, a driver's own errors
        rec.error = f"camera: {type(e).__name__}: {e}" if not isinstance(e, HardwareError) else f"camera: {e}"
        return "camera_lost"
    rec.frames = frames if isinstance(frames, list) else [frames]
    t1 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyHeightmapWarning)
            rec.observation = project_frames(rec.frames, workspace)
    except Exception as e:  # noqa: BLE001 - a malformed frame
        rec.error = f"heightmap: {type(e).__name__}: {e}"
        return "camera_lost"
    t2 = time.perf_counter()
    rec.timings.update(capture_s=t1 - t0, heightmap_s=t2 - t1)
    try:
        rec.action = policy.act(rec.observation, rec.goal)
    except Exception as e:  # noqa: BLE001 - a policy bug ends this trial, not the campaign
        rec.error = f"policy: {type(e).__name__}: {e}"
        rec.info["traceback"] = traceback.format_exc(limit=4)
        rec.timings["policy_s"] = time.perf_counter() - t2
        return "policy_error"
    t3 = time.perf_counter()
    rec.timings["policy_s"] = t3 - t2
    try:
        held = estimate_held_height(rec.observation.height, rec.action.pick.pixel, workspace.pixel_size)
        rec.info["held_height"] = held
        plan = plan_from_action(rec.action, motion, held)
    except PlanningError as e:
        rec.error = str(e)
        return "planning_failed"
    except Exception as e:  # noqa: BLE001 - not a PickPlaceAction (e.g. None, missing fields)
        rec.error = f"policy returned an invalid action: {type(e).__name__}: {e}"
        return "policy_error"
    rec.plan = [wp.to_dict() for wp in plan]
    try:
        verdict: SafetyVerdict = check_plan(plan, envelope, reachable)
    except Exception as e:  # noqa: BLE001 - the check itself failed (e.g. the IK service): fail closed
        verdict = SafetyVerdict(False, (f"the safety check failed: {type(e).__name__}: {e}",))
    rec.safety = verdict.to_dict()
    if not verdict.ok:
        rec.error = "unsafe plan refused, the arm did not move: " + "; ".join(verdict.reasons)
        return "safety_stop"
    result = ExecutionResult()
    try:
        execute_plan(robot, plan, envelope, result=result)
    except Exception as e:  # noqa: BLE001 - recorded; execute_plan has stopped the arm
        rec.error = f"{type(e).__name__}: {e}" if not isinstance(e, (SafetyError, PlanningError)) else str(e)
        reason = reason_of(e)
        if reason != "stopped" and result.holding is False:  # released: leave the camera's view
            home_error = _home(robot, envelope, motion)
            if home_error is not None:
                rec.info["home_error"] = home_error[1]
        return reason
    finally:
        rec.executed = result.executed
        rec.info["grasped"] = result.grasped
        rec.info["holding"] = result.holding
        if result.aborted:
            rec.info["aborted"] = result.aborted
        if result.recovery:
            rec.info["recovery"] = result.recovery
        rec.timings["motion_s"] = time.perf_counter() - t3
    home_error = _home(robot, envelope, motion)
    if home_error is not None:
        rec.error = f"homing: {home_error[1]}"
        return home_error[0]
    return None
