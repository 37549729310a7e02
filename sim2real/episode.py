"""The episode: observe -> act -> check safety -> execute -> record, until done or out of steps.

The same loop runs the twin, the real robot and dry runs; only the ports differ::

    camera.read() -> RGBDFrame(s) -> project_frames -> HeightmapObservation
      -> policy.act(obs, goal) -> PickPlaceAction -> plan_from_action -> check_plan (safety)
      -> execute_plan(robot) [stop() in finally] -> robot.home() -> success_check()

A refused (unsafe) plan, an IK failure or any planning error ends the episode cleanly with its
reason; nothing is raised to the caller except KeyboardInterrupt.
"""
from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

from sim2real.errors import HardwareError, PlanningError, SafetyError, Sim2RealError
from sim2real.heightmap import EmptyHeightmapWarning, project_frames
from sim2real.motion import MotionConfig, estimate_held_height, execute_plan, plan_from_action
from sim2real.safety import SafetyEnvelope, SafetyVerdict, check_plan
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

REASONS = ("success", "max_steps", "safety_stop", "planning_failed", "ik_failed", "camera_lost",
           "policy_error", "done")
"""Why an episode ended."""


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
        return {"step": self.step, "goal": self.goal,
                "action": self.action.to_dict() if self.action is not None else None,
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
                on_step: Optional[Callable] = None, reachable: Optional[Callable] = None,
                planner=None) -> EpisodeResult:
    """Run one episode.

    Args:
        camera: CameraPort (``read()`` may return one RGBDFrame or a list of them).
        policy: PolicyPort.
        robot: RobotPort (``home()`` is called after each step when the robot has it).
        task: a language goal string, or an object with ``lang_goal()`` (the twin's TaskInstance).
        workspace: heightmap grid.
        envelope: safety envelope (default: SafetyEnvelope() on ``workspace``).
        max_steps: step budget.
        motion: pick-and-place geometry and speeds.
        success_check: callable -> (done: bool, reward: float); None = the operator labels.
        on_step: callable(StepRecord) after each step (the trial log's writer).
        reachable: callable(pose) -> bool, an IK check added to the safety envelope.
        planner: a sim2real.planner Planner (already ``reset`` for this trial) that picks each step's
            goal sentence from the observation; its decision is recorded in ``info['planner']``, and
            choosing ``done`` ends the episode (reason 'done'). None: the task's goal every step.
    """
    envelope = (envelope or SafetyEnvelope()).with_workspace(workspace)
    motion = motion or MotionConfig()
    reward, reason, steps = None, "max_steps", 0
    if success_check is not None:
        done, reward = success_check()
        if done:  # nothing to do (a scene that happens to satisfy its goals)
            return EpisodeResult(True, 0, "success", reward)
    for k in range(max_steps):
        rec = StepRecord(k, goal=task if isinstance(task, str) else task.lang_goal())
        steps = k + 1
        reason = _one_step(rec, camera, policy, robot, workspace, envelope, motion, reachable, planner)
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
    if success_check is None:
        return EpisodeResult(None, steps, reason if reason != "max_steps" else "done", None)
    done, reward = success_check()
    if done:
        reason = "success"
    return EpisodeResult(bool(done), steps, reason, reward)


def _plan(rec: StepRecord, planner) -> Optional[str]:
    """Let the planner choose this step's goal sentence; 'done' or a planner error ends the episode."""
    t = time.perf_counter()
    try:
        decision = planner.plan(rec.observation)
    except Exception as e:  # noqa: BLE001 - a planner bug ends this trial, not the campaign
        rec.error = f"planner: {type(e).__name__}: {e}"
        rec.info["traceback"] = traceback.format_exc(limit=4)
        return "policy_error"
    finally:
        rec.timings["planner_s"] = time.perf_counter() - t
    rec.goal = decision.goal
    rec.info["planner"] = decision.to_dict()
    return "done" if decision.done else None


def _one_step(rec: StepRecord, camera, policy, robot, workspace, envelope, motion, reachable,
              planner=None) -> Optional[str]:
    """Fill ``rec``; return the reason the episode must end, or None to continue."""
    t0 = time.perf_counter()
    try:
        frames = camera.read()
    except (HardwareError, TimeoutError) as e:
        rec.error = f"camera: {e}"
        return "camera_lost"
    rec.frames = frames if isinstance(frames, list) else [frames]
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyHeightmapWarning)
        rec.observation = project_frames(rec.frames, workspace)
    t2 = time.perf_counter()
    rec.timings.update(capture_s=t1 - t0, heightmap_s=t2 - t1)
    if planner is not None:
        reason = _plan(rec, planner)
        if reason is not None:
            return reason
        t2 = time.perf_counter()
    try:
        rec.action = policy.act(rec.observation, rec.goal)
    except Exception as e:  # noqa: BLE001 - a policy bug ends this trial, not the campaign
        rec.error = f"policy: {type(e).__name__}: {e}"
        rec.info["traceback"] = traceback.format_exc(limit=4)
        rec.timings["policy_s"] = time.perf_counter() - t2
        return "policy_error"
    t3 = time.perf_counter()
    rec.timings["policy_s"] = t3 - t2
    held = estimate_held_height(rec.observation.height, rec.action.pick.pixel, workspace.pixel_size)
    rec.info["held_height"] = held
    try:
        plan = plan_from_action(rec.action, motion, held)
    except PlanningError as e:
        rec.error = str(e)
        return "planning_failed"
    rec.plan = [wp.to_dict() for wp in plan]
    verdict: SafetyVerdict = check_plan(plan, envelope, reachable)
    rec.safety = verdict.to_dict()
    if not verdict.ok:
        rec.error = "unsafe plan refused, the arm did not move: " + "; ".join(verdict.reasons)
        return "safety_stop"
    try:
        result = execute_plan(robot, plan)
        rec.executed = result.executed
        rec.info["grasped"] = result.grasped
        if result.aborted:
            rec.info["aborted"] = result.aborted
        home = getattr(robot, "home", None)
        if home is not None:
            home()
    except SafetyError as e:
        rec.error = str(e)
        return "safety_stop"
    except PlanningError as e:
        rec.error = str(e)
        return "ik_failed" if "ik_failed" in str(e) else "planning_failed"
    except Sim2RealError as e:
        rec.error = f"{type(e).__name__}: {e}"
        return "planning_failed"
    finally:
        rec.timings["motion_s"] = time.perf_counter() - t3
    return None
