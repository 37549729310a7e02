"""The demonstration episode being recorded in the console. Pure bookkeeping: the dataset format
is the ``sim2real demos`` one (``sim2real.demos.dataset.save_episode``), never a format of its own.

An episode on disk is GenSim's ``RavensDataset.add`` list of ``(obs, act, reward, info)`` ending
with ``(final_obs, None, reward, info)``, ``act = {'pose0': (xyz, xyzw), 'pose1': (xyz, xyzw)}``
and ``info['lang_goal']``. As in GenSim's ``demos.py`` the reward stored with a step is the reward
returned by the *previous* step (0 for the first) and the final entry carries the last step's
reward. ``obs`` is the ``--view camera`` observation (``camera_obs(frames, observation)``), i.e.
what the policy would have seen when the step was decided.

Undo removes the last step from the buffer (the arm does not move back: the operator restores
the scene by hand, or discards). Done needs the final observation and writes the episode;
discard forgets it. Nothing reaches disk before Done, so an undone step never leaks into the data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from sim2real.errors import InputError


@dataclass
class DemoStep:
    """One recorded step: the observation it was decided on, the action, the reward after it."""

    obs: dict
    act: dict
    reward_after: float
    info: dict


def act_dict(action) -> dict:
    """GenSim's ``act``: {'pose0': (xyz, xyzw), 'pose1': (xyz, xyzw)} as float64 arrays (from a PickPlaceAction)."""
    return {"pose0": (np.asarray(action.pick.xyz, np.float64), np.asarray(action.pick.quat_xyzw, np.float64)),
            "pose1": (np.asarray(action.place.xyz, np.float64), np.asarray(action.place.quat_xyzw, np.float64))}


@dataclass
class DemoEpisode:
    """Steps of the episode being recorded.

    Attributes:
        seed: the scene's seed (the twin's trial seed; 0 on a real robot unless given), used in the file name.
        steps: recorded steps, oldest first.
        goal: the language goal (``info['lang_goal']`` of every entry).
    """

    seed: int = 0
    goal: str = ""
    steps: list = field(default_factory=list)

    def set_goal(self, goal: str) -> None:
        goal = str(goal).strip()
        if not goal:
            raise InputError("the language goal is empty; type it or choose one of the task's templates")
        if "{" in goal or "}" in goal:
            raise InputError(f"goal {goal!r} still has template fields; fill in the colours of this scene")
        self.goal = goal

    def append(self, obs: dict, action, reward_after: float = 0.0, info: Optional[dict] = None) -> int:
        """Record a step that was executed; returns the number of steps."""
        if not self.goal:
            raise InputError("set the language goal before recording a step")
        self.steps.append(DemoStep(obs, act_dict(action), float(reward_after), dict(info or {})))
        return len(self.steps)

    def undo(self) -> DemoStep:
        """Remove and return the last step. Raises InputError when there is none."""
        if not self.steps:
            raise InputError("nothing to undo: the episode has no step")
        return self.steps.pop()

    def entries(self, final_obs: dict, final_info: Optional[dict] = None) -> list:
        """The episode as GenSim's list of (obs, act, reward, info), final entry included."""
        if not self.steps:
            raise InputError("an episode needs at least one step before it is marked done")
        out, reward = [], 0.0
        for s in self.steps:
            out.append((s.obs, s.act, reward, {**s.info, "lang_goal": self.goal}))
            reward = s.reward_after
        out.append((final_obs, None, reward, {**(final_info or {}), "lang_goal": self.goal}))
        return out

    def save(self, root, final_obs: dict, final_info: Optional[dict] = None) -> int:
        """Write the episode with ``sim2real.demos.dataset.save_episode``; returns its index."""
        from sim2real.demos.dataset import save_episode

        return int(save_episode(root, self.entries(final_obs, final_info), int(self.seed)))

    def summary(self) -> dict:
        """JSON for the page: goal, seed, each step's pick/place and reward."""
        return {"goal": self.goal, "seed": self.seed, "n_steps": len(self.steps),
                "steps": [{"pose0": [round(float(v), 4) for v in s.act["pose0"][0]],
                           "pose1": [round(float(v), 4) for v in s.act["pose1"][0]],
                           "rotation_bin": s.info.get("rotation_bin"), "reward": s.reward_after}
                          for s in self.steps]}
