"""The console's hold on the hardware: camera, robot, the live view, the demonstration being
recorded, and (optionally) a campaign whose trials the console labels.

Threads: one *hardware thread* owns the camera and every motion (PyBullet and most drivers are
not meant to be driven from several threads); request handlers only enqueue jobs and read
snapshots. ``stop()`` is the exception: it is called on the robot directly from the request
thread, because the robot port's ``stop()`` is thread-safe and interrupts the running motion
(``MotionStopped``) - that is the point of a stop button.

Every motion the console makes goes through :func:`sim2real.console.proposal.approved_plan` and
``motion.execute_plan``: the same plan -> envelope -> robot path as a policy action.
"""
from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
import traceback
import warnings
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from sim2real.console import images
from sim2real.console.clicks import ClickDraft, bin_from_drag, canvas_to_pixel
from sim2real.console.demo_buffer import DemoEpisode
from sim2real.console.proposal import Proposal, approved_plan, plans_agree, propose, propose_action
from sim2real.errors import InputError, MotionStopped, SafetyError, Sim2RealError
from sim2real.heightmap import EmptyHeightmapWarning, project_frames
from sim2real.robot import StopLatch

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """One captured frame and everything derived from it.

    Attributes:
        seq: increasing frame number (0 = none yet).
        t_capture: wall-clock time (time.time()) when the camera returned the frame, seconds.
        frames: the RGBDFrame list.
        obs: HeightmapObservation projected from ``frames``.
        images: {'camera': jpeg, 'color': png, 'height': png} bytes.
        height_max: top of the height image's colour scale, metres.
    """

    seq: int = 0
    t_capture: float = 0.0
    frames: list = field(default_factory=list)
    obs: object = None
    images: dict = field(default_factory=dict)
    height_max: float = 0.0


@dataclass
class Rig:
    """The hardware a Station drives, built on the hardware thread by a ``connect()`` callable
    (PyBullet's EGL renderer and some drivers only work on the thread that created them).

    Attributes:
        camera: CameraPort. robot: RobotPort (``home()`` used when present).
        workspace: heightmap grid. envelope: SafetyEnvelope. motion: MotionConfig.
        reachable: IK check (pose -> bool) added to the envelope, or None.
        twin: the Twin when the robot is the twin (scene reset and success check), else None.
        close: releases everything (called on the hardware thread).
    """

    camera: object
    robot: object
    workspace: object
    envelope: object
    motion: object
    reachable: Optional[Callable] = None
    twin: object = None
    close: Callable[[], None] = lambda: None


class Station:
    """Camera + robot + safety for the console, driven from one hardware thread.

    Args:
        connect: ``() -> Rig``, called on the hardware thread by :meth:`start`.
        robot_kind: 'sim' | 'dry-run' | 'ur5' | ... (shown, recorded in demo info).
        frame_period_s: live view refresh while idle.
        task: the TaskSpec demonstrated / evaluated.
        demos_out: directory of the demonstration dataset (None: demonstrations are not saved).
        policy: optional PolicyPort for suggestions (its affordances are drawn), or 'oracle' on the twin.
        seed: first scene seed (twin) / seed in the file names (real robot).
    """

    def __init__(self, connect: Callable[[], Rig], *, robot_kind: str = "sim", frame_period_s: float = 0.5,
                 task=None, demos_out=None, policy=None, seed: int = 0):
        self._connect = connect
        self.rig: Optional[Rig] = None
        self.camera = self.robot = self.workspace = self.envelope = self.motion = self.reachable = self.twin = None
        self.robot_kind, self.frame_period_s = robot_kind, float(frame_period_s)
        self.task, self.demos_out, self.policy = task, demos_out, policy
        self.seed = int(seed)
        self.instance = None
        self.snapshot = Snapshot()
        self._history: dict = {}
        self.draft = ClickDraft()
        self.proposal: Optional[Proposal] = None
        self.suggestion: Optional[dict] = None  # {'pick': png, 'place': png} affordance overlays
        self.episode = DemoEpisode(seed=self.seed)
        if task is not None and "{" not in task.language:  # a template without scene colours is the goal
            self.episode.set_goal(task.language)
        self.saved: list = []  # indices of episodes written
        self.busy: Optional[str] = None
        self.message = {"level": "info", "text": "ready"}
        self.robot_state: dict = {}
        self.operator = None  # ConsoleOperator of a campaign run in this console
        self.campaign_view: Optional[Callable[[], dict]] = None
        self.timings: list = []  # per executed demo step: seconds
        self.frame_times = collections.deque(maxlen=5000)  # (seq, t_capture, t_ready) wall-clock seconds
        self.version = 0
        self._lock = threading.RLock()
        self._jobs: "queue.Queue" = queue.Queue()
        self._stop_generation = 0
        self._closed = False
        self._seq = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="sim2real-console-hardware", daemon=True)

    # ------------------------------------------------------------------------------------------
    # lifecycle and the hardware thread
    # ------------------------------------------------------------------------------------------
    def _attach(self) -> None:
        rig = self._connect()
        self.rig = rig
        # STOP holds until the next step starts, between two motions of a step too
        self.camera, self.robot, self.workspace = rig.camera, StopLatch(rig.robot), rig.workspace
        self.envelope, self.motion = rig.envelope.with_workspace(rig.workspace), rig.motion
        self.reachable, self.twin = rig.reachable, rig.twin

    def start(self) -> "Station":
        """Connect the hardware on the hardware thread and take the first frame (a new scene on the twin)."""
        self._thread.start()
        self.submit(self._attach, "connecting").result(timeout=300)
        if self.twin is not None and self.task is not None:
            self.submit(lambda: self._new_scene(self.seed)).result(timeout=120)
        else:
            self.submit(self._capture).result(timeout=60)
        return self

    def close(self) -> None:
        """Stop the arm, release the hardware (on its thread) and end the thread."""
        if self._thread.is_alive() and self.rig is not None:
            try:
                self.robot.stop()
            finally:
                self.submit(self.rig.close, "closing").result(timeout=60)
        self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout=10)

    def submit(self, fn: Callable, name: str = "job") -> Future:
        """Run ``fn()`` on the hardware thread; returns its Future."""
        fut: Future = Future()
        self._jobs.put((fn, fut, name))
        return fut

    def _loop(self) -> None:
        last = 0.0
        while not self._closed:
            timeout = max(0.0, self.frame_period_s - (time.monotonic() - last))
            try:
                item = self._jobs.get(timeout=timeout)
            except queue.Empty:
                item = "capture"
            if item is None:
                break
            if item == "capture":
                try:
                    self._capture()
                except Exception as e:  # noqa: BLE001 - a bad frame must not kill the live view
                    self._say("error", f"camera: {type(e).__name__}: {e}")
                last = time.monotonic()
                continue
            fn, fut, name = item
            if not fut.set_running_or_notify_cancel():
                continue
            self._set_busy(name)
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
                if not isinstance(e, Sim2RealError):
                    log.error("console job %s failed:\n%s", name, traceback.format_exc())
                fut.set_exception(e)
            finally:
                self._set_busy(None)
            last = 0.0  # refresh the view right after a job

    def _set_busy(self, what: Optional[str]) -> None:
        with self._lock:
            self.busy = what
            self.version += 1

    def _say(self, level: str, text: str) -> None:
        with self._lock:
            self.message = {"level": level, "text": text, "t": time.time()}
            self.version += 1

    def bump(self) -> None:
        with self._lock:
            self.version += 1

    # ------------------------------------------------------------------------------------------
    # frames (hardware thread only)
    # ------------------------------------------------------------------------------------------
    def _capture(self) -> Snapshot:
        frames = self.camera.read()
        t_capture = time.time()
        frames = frames if isinstance(frames, list) else [frames]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyHeightmapWarning)
            obs = project_frames(frames, self.workspace)
        height_img, vmax = images.height_rgb(obs.height)
        snap = Snapshot(next(self._seq), t_capture, frames, obs,
                        {"camera": images.jpeg(frames[0].color), "color": images.png(obs.color),
                         "height": images.png(height_img)}, vmax)
        try:
            state = self.robot.state().to_dict()
        except Exception as e:  # noqa: BLE001 - shown, not fatal
            state = {"error": f"{type(e).__name__}: {e}"}
        with self._lock:
            self.snapshot = snap
            self._history[snap.seq] = snap
            for old in [s for s in self._history if s < snap.seq - 4]:
                del self._history[old]
            self.robot_state = state
            self.frame_times.append((snap.seq, t_capture, time.time()))
            self.version += 1
        return snap

    def image(self, seq: int, kind: str) -> Optional[bytes]:
        """Encoded image ``kind`` of frame ``seq`` (kept for the last few frames), or None."""
        with self._lock:
            if kind in ("pick", "place"):
                sug = self.suggestion
                return None if sug is None or sug.get("seq") != seq else sug.get(kind)
            snap = self._history.get(seq)
            return None if snap is None else snap.images.get(kind)

    # ------------------------------------------------------------------------------------------
    # the scene (twin) and the goal
    # ------------------------------------------------------------------------------------------
    def _new_scene(self, seed: int) -> dict:
        """Twin only: reset the world for ``seed`` (the arm goes home) and start a new episode."""
        if self.twin is None:
            raise InputError("only the twin can reset its scene; on a robot, reset it by hand")
        self.instance = self.twin.start_trial(self.task, int(seed))
        self.begin_episode(seed, self.instance.lang_goal())
        self._capture()
        self._say("info", f"new scene (seed {seed}): {self.instance.lang_goal()}")
        return {"seed": self.seed, "goal": self.episode.goal}

    def begin_episode(self, seed: int, goal: str = "") -> None:
        """Start a new (empty) demonstration episode for a scene of ``seed`` with ``goal``."""
        with self._lock:
            self.seed = int(seed)
            self.episode = DemoEpisode(seed=self.seed)
            if goal:
                self.episode.set_goal(goal)
            self.draft, self.proposal, self.suggestion = ClickDraft(), None, None
            self.version += 1

    def goal_choices(self) -> list:
        """Goals to choose from: the twin instance's current goal, then the task's templates."""
        out = []
        if self.instance is not None and self.instance.goals:
            out.append(self.instance.lang_goal())
        if self.task is not None:
            out.append(self.task.language)
            out += [g.language for g in self.task.goals if g.language]
        return list(dict.fromkeys(out))

    def set_goal(self, goal: str) -> None:
        with self._lock:
            self.episode.set_goal(goal)
            self.version += 1

    # ------------------------------------------------------------------------------------------
    # clicking a demonstration step
    # ------------------------------------------------------------------------------------------
    def click(self, x: float, y: float, width: float, height: float, seq: int) -> dict:
        """A click on the heightmap drawn at width x height; ``seq`` = the frame the page showed."""
        with self._lock:
            snap = self._history.get(int(seq))
            if snap is None or snap.obs is None:
                raise InputError(f"frame {seq} is gone (the view moved on); click again on the current image")
            pixel = canvas_to_pixel(x, y, width, height, self.workspace.shape)
            self.draft = self.draft.click(pixel, snap.seq)
            self._replan()
            return self.draft.to_dict()

    def rotate(self, *, delta: Optional[int] = None, bin: Optional[int] = None, drag_to=None) -> dict:
        """Set the place rotation: step by ``delta`` bins, to ``bin``, or by a drag from the place point
        to ``drag_to`` = (x, y, width, height) in canvas coordinates."""
        with self._lock:
            if drag_to is not None:
                if self.draft.place is None:
                    raise InputError("click the place point before dragging its rotation")
                r, c = canvas_to_pixel(*drag_to, self.workspace.shape)
                self.draft = self.draft.with_rotation(bin_from_drag(r - self.draft.place[0], c - self.draft.place[1]))
            elif bin is not None:
                self.draft = self.draft.with_rotation(bin)
            elif delta is not None:
                self.draft = self.draft.rotate(delta)
            else:
                raise InputError("say how to rotate: delta, bin or drag_to")
            self._replan()
            return self.draft.to_dict()

    def clear_draft(self) -> None:
        with self._lock:
            self.draft, self.proposal = ClickDraft(rotation=self.draft.rotation), None
            self.version += 1

    def _replan(self) -> None:
        """Plan and check the draft on its frame (on the newest one when its frame has left the
        short history: the scene is at rest between steps, and confirm re-observes anyway)."""
        self.proposal = None
        if self.draft.complete:
            snap = self._history.get(self.draft.frame_seq) or self.snapshot
            self.draft = replace(self.draft, frame_seq=snap.seq)
            self.proposal = propose(self.draft, snap.obs.height, self.workspace, self.motion, self.envelope,
                                    self.reachable)
        self.version += 1

    def confirm(self) -> Future:
        """Execute the current draft (hardware thread): re-observe, re-plan on the fresh heightmap,
        refuse if the plan moved by more than 2 cm (the operator reviews it), else execute the
        approved plan, go home and append the step to the demonstration."""
        with self._lock:
            draft, preview = self.draft, self.proposal
            if preview is None:
                raise InputError(f"nothing to confirm: click the {draft.expecting} point first")
            if not preview.verdict.ok:
                raise SafetyError("unsafe plan refused, the arm did not move: " + "; ".join(preview.verdict.reasons))
            if not self.episode.goal:
                raise InputError("set the language goal of the demonstration first")
            generation = self._stop_generation
        return self.submit(lambda: self._execute_step(draft, preview, generation), "moving")

    def _execute_step(self, draft: ClickDraft, preview: Proposal, generation: int) -> dict:
        from sim2real.motion import execute_plan

        t0 = time.monotonic()
        self.robot.reset()  # (a STOP from here on trips it; one before shows in the generation)
        if generation != self._stop_generation:
            raise MotionStopped("stopped before the motion started; confirm again")
        snap = self._capture()  # re-observe: the action is computed on what the camera sees now
        fresh = propose(draft, snap.obs.height, self.workspace, self.motion, self.envelope, self.reachable,
                        frame_seq=snap.seq)
        if not plans_agree(preview, fresh):
            with self._lock:
                self.draft = ClickDraft(draft.pick, draft.place, draft.rotation, snap.seq)
                self.proposal = fresh
                self.version += 1
            raise InputError("the scene changed under the clicked points since they were clicked; review the "
                             "new plan and confirm again")
        plan = approved_plan(fresh, self.envelope, self.workspace, self.reachable)
        reward_before = self._reward()
        if generation != self._stop_generation:  # STOP pressed while re-observing: never start moving
            self._say("warning", "stopped before the motion started: the step was not executed")
            raise MotionStopped("stopped before the motion started; confirm again")
        try:
            result = execute_plan(self.robot, plan, self.envelope)
            self._home()
        except MotionStopped:
            self._say("warning", "stopped: the step was not recorded")
            raise
        after = self._capture()
        reward = self._reward()
        step_reward = (reward - reward_before) if reward is not None else 0.0
        obs = _camera_obs(snap.frames, snap.obs)
        with self._lock:
            n = self.episode.append(obs, fresh.action, step_reward,
                                    {"rotation_bin": draft.rotation, "source": "console", "robot": self.robot_kind,
                                     "grasped": result.grasped, "aborted": result.aborted})
            self.draft, self.proposal = ClickDraft(rotation=0, frame_seq=after.seq), None
            self.timings.append(time.monotonic() - t0)
            self.version += 1
        self._say("info", f"step {n} recorded" + (f" (reward {step_reward:.2f})" if reward is not None else "")
                  + (" - nothing was grasped" if result.grasped is False else ""))
        return {"steps": n, "reward": step_reward, "grasped": result.grasped}

    def _home(self) -> None:
        """Back to the capture pose: ``motion.go_home`` (lift through the envelope, then home()) where
        the motion module has it, else the robot's own ``home()``."""
        from sim2real import motion

        go_home = getattr(motion, "go_home", None)
        if go_home is not None:
            go_home(self.robot, self.envelope, self.motion.approach_height)
        elif getattr(self.robot, "home", None) is not None:
            self.robot.home()

    def _reward(self) -> Optional[float]:
        if self.instance is None:
            return None
        return float(self.instance.check()[1])

    def undo(self) -> dict:
        with self._lock:
            step = self.episode.undo()
            self.version += 1
        self._say("info", "last step removed from the episode (the arm does not move back: restore the scene "
                          "by hand or discard the episode)")
        return {"steps": len(self.episode.steps), "removed": step.act["pose0"][0].tolist()}

    def discard(self) -> Future:
        def job():
            if self.twin is not None and self.task is not None:
                return self._new_scene(self.seed + 1)
            with self._lock:
                self.episode = DemoEpisode(seed=self.seed, goal=self.episode.goal)
                self.draft, self.proposal = ClickDraft(), None
            self._say("info", "episode discarded")
            return {"discarded": True}
        return self.submit(job, "discarding")

    def done(self) -> Future:
        """Write the episode (final observation captured now); the twin then sets up the next scene."""
        if self.demos_out is None:
            raise InputError("this console was started without --demos-out DIR; nothing to save to")
        if not self.episode.steps:
            raise InputError("an episode needs at least one step before it is marked done")

        def job():
            snap = self._capture()
            with self._lock:
                index = self.episode.save(self.demos_out, _camera_obs(snap.frames, snap.obs),
                                          {"source": "console", "robot": self.robot_kind})
                self.saved.append(index)
                n = len(self.episode.steps)
            self._say("info", f"episode {index} saved ({n} steps) in {self.demos_out}")
            if self.twin is not None and self.task is not None:
                self._new_scene(self.seed + 1)
            else:
                with self._lock:
                    self.episode = DemoEpisode(seed=self.seed + 1, goal=self.episode.goal)
                    self.seed += 1
            return {"index": index, "steps": n}
        return self.submit(job, "saving")

    def new_scene(self, seed: Optional[int] = None) -> Future:
        return self.submit(lambda: self._new_scene(self.seed + 1 if seed is None else seed), "resetting")

    # ------------------------------------------------------------------------------------------
    # policy suggestions
    # ------------------------------------------------------------------------------------------
    def suggest(self) -> Future:
        """Ask the loaded policy for a step on the current frame; it becomes the draft (to review and confirm)."""
        if self.policy is None:
            raise InputError("no policy loaded: start the console with --policy CKPT (or oracle on the twin)")
        goal = self.episode.goal
        if not goal:
            raise InputError("set the language goal first: the policy is conditioned on it")

        def job():
            snap = self.snapshot
            policy = self.policy
            if policy == "oracle":
                from sim2real.oracle import OraclePolicy

                policy = OraclePolicy(self.instance)
            action = policy.act(snap.obs, goal)
            sug = {"seq": snap.seq, "policy": getattr(policy, "name", "policy")}
            if action.pick_logits is not None:
                sug["pick"] = images.png(images.affordance_rgba(action.pick_logits, (255, 60, 40)))
            if action.place_logits is not None:
                sug["place"] = images.png(images.affordance_rgba(np.max(action.place_logits, axis=0), (40, 120, 255)))
            rot = int(round(action.place.theta / (2 * np.pi / 36))) % 36
            with self._lock:
                self.suggestion = sug
                self.draft = ClickDraft(tuple(action.pick.pixel), tuple(action.place.pixel), rot, snap.seq)
                self.proposal = propose_action(action, snap.obs.height, self.workspace, self.motion, self.envelope,
                                               self.reachable, snap.seq)
                self.version += 1
            return {"pick": list(action.pick.pixel), "place": list(action.place.pixel), "rotation": rot}
        return self.submit(job, "thinking")

    # ------------------------------------------------------------------------------------------
    # stop (request thread) and the page's view of everything
    # ------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the arm now (called from the request thread; the robot's stop() is thread-safe)."""
        with self._lock:
            self._stop_generation += 1
        # drop queued motions: nothing queued before the stop may start after it
        dropped = []
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._jobs.put(None)
                break
            if item != "capture":
                item[1].cancel()
                dropped.append(item[2])
        self.robot.trip()
        self._say("warning", "STOP pressed: the arm was stopped" + (f" ({len(dropped)} queued job(s) dropped)"
                                                                     if dropped else ""))

    def after_stop_reply(self) -> None:
        """Nothing: this station stopped the arm in :meth:`stop` and keeps serving the page."""

    def state(self) -> dict:
        """Everything the page shows, JSON-ready (images are fetched by URL with the frame seq)."""
        with self._lock:
            snap = self.snapshot
            out = {
                "version": self.version, "robot": self.robot_kind, "task": getattr(self.task, "name", None),
                "frame": {"seq": snap.seq, "t_capture": snap.t_capture, "height_max": snap.height_max,
                          "shape": list(self.workspace.shape), "pixel_size": self.workspace.pixel_size,
                          "bounds": self.workspace.bounds.tolist()},
                "robot_state": self.robot_state, "busy": self.busy, "message": self.message,
                "draft": self.draft.to_dict(),
                "proposal": None if self.proposal is None else self.proposal.to_dict(self.workspace),
                "suggestion": None if self.suggestion is None else {
                    "seq": self.suggestion["seq"], "policy": self.suggestion["policy"],
                    "pick": "pick" in self.suggestion, "place": "place" in self.suggestion},
                "policy": None if self.policy is None else getattr(self.policy, "name", str(self.policy)),
                "demo": {**self.episode.summary(), "saved": list(self.saved), "demos_out":
                         None if self.demos_out is None else str(self.demos_out), "goal_choices": self.goal_choices()},
            }
        out["trial"] = self.operator.pending() if self.operator is not None else None
        out["campaign"] = self.campaign_view() if self.campaign_view is not None else None
        return out


def _camera_obs(frames, observation) -> dict:
    """The ``--view camera`` observation of the demos dataset (sim2real.demos.dataset.camera_obs)."""
    from sim2real.demos.dataset import camera_obs

    return camera_obs(frames, observation)
