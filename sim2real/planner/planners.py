"""The Planner port and its implementations: which sub-goal sentence the policy gets this step.

* ``fixed``: today's behaviour, the task's current goal sentence every step (no choice);
* ``scripted``: the oracle's sub-goal sequence, the upper bound: the candidate whose oracle effect
  advances the task's goals most, by one-step look-ahead on a symbolic copy of the ground truth;
* ``random``: uniform over the candidates (``done`` included);
* ``llm``: TWOSOME: softmax over the candidates' normalised LM scores, the most probable chosen
  (optionally with LoRA adapters and critic from ``sim2real align``; then the value is reported).

A planner is told the task once per trial (:meth:`reset`), then asked once per step
(:meth:`plan`) with the step's heightmap observation. The scene it describes comes from the
twin's ground truth when it has one (``scene='truth'``) or from the heightmap (``'heightmap'``,
the real robot's only source).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Optional, Protocol, runtime_checkable

import numpy as np

from sim2real.errors import InputError
from sim2real.planner.scene import prompt as make_prompt
from sim2real.planner.scene import scene_from_heightmap, scene_from_truth
from sim2real.planner.subgoals import DONE, candidates

KINDS = ("fixed", "scripted", "random", "llm")
SCENE_SOURCES = ("auto", "truth", "heightmap")


@dataclass
class Decision:
    """One planning step: what was seen, offered, believed and chosen."""

    goal: str
    prompt: str
    candidates: list
    probabilities: Optional[list]
    choice: int
    value: Optional[float] = None
    seconds: float = 0.0
    planner: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.goal == DONE

    def to_dict(self) -> dict:
        return {"planner": self.planner, "scene": self.prompt, "candidates": list(self.candidates),
                "probabilities": None if self.probabilities is None else [round(float(p), 6) for p in self.probabilities],
                "choice": self.choice, "goal": self.goal, "value": self.value, "seconds": round(self.seconds, 4),
                **self.extra}


@runtime_checkable
class Planner(Protocol):
    name: str

    def reset(self, spec, instruction: str, instance=None) -> None:
        """Start a trial of task ``spec`` with the user's ``instruction`` (twin: its TaskInstance)."""

    def plan(self, observation) -> Decision:
        """The sub-goal for this step."""


class _Base:
    name = "base"

    def __init__(self, scene: str = "auto"):
        if scene not in SCENE_SOURCES:
            raise InputError(f"planner scene source {scene!r} is unknown; use one of {SCENE_SOURCES}")
        self.scene_source = scene
        self.spec = self.instance = None
        self.instruction = ""

    def reset(self, spec, instruction: str, instance=None) -> None:
        self.spec, self.instruction, self.instance = spec, instruction, instance

    def _state(self, observation) -> tuple:
        """(prompt, candidates) of the current scene."""
        if self.spec is None:
            raise InputError(f"planner {self.name}: reset(spec, instruction) must be called before plan()")
        use_truth = self.instance is not None and self.scene_source != "heightmap"
        if not use_truth and observation is None:
            raise InputError(f"planner {self.name}: no observation to read the scene from")
        objects = scene_from_truth(self.instance) if use_truth else scene_from_heightmap(observation)
        return make_prompt(objects, self.instruction), candidates(self.spec, objects)


class FixedPlanner(_Base):
    """The task's goal sentence every step (the behaviour without a planner)."""

    name = "fixed"

    def plan(self, observation) -> Decision:
        t0 = time.perf_counter()
        goal = self.instance.lang_goal() if self.instance is not None else self.instruction
        return Decision(goal, "", [goal], [1.0], 0, None, time.perf_counter() - t0, self.name)


class RandomPlanner(_Base):
    """Uniform over the candidates."""

    name = "random"

    def __init__(self, seed: int = 0, scene: str = "auto"):
        super().__init__(scene)
        self.rng = np.random.default_rng(seed)

    def plan(self, observation) -> Decision:
        t0 = time.perf_counter()
        prompt, cands = self._state(observation)
        k = int(self.rng.integers(len(cands)))
        return Decision(cands[k], prompt, cands, [1.0 / len(cands)] * len(cands), k, None,
                        time.perf_counter() - t0, self.name)


def symbolic_copy(instance):
    """A TaskInstance copy on a SymbolicScene holding the current poses (ground-truth look-ahead)."""
    from sim2real.planner.symbolic import SymbolicScene

    scene = SymbolicScene(list(instance.scene.objects), {})
    for o in instance.scene.objects:
        pos, quat = instance.scene.pose(o.body)
        scene.poses[o.body] = (np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64))
    twin = copy.copy(instance)
    twin.scene, twin.goals = scene, list(instance.goals)
    return twin


class ScriptedPlanner(_Base):
    """The oracle's sub-goal sequence (needs the twin's ground truth)."""

    name = "scripted"

    def plan(self, observation) -> Decision:
        from sim2real.planner.symbolic import apply_subgoal

        t0 = time.perf_counter()
        if self.instance is None:
            raise InputError("planner scripted needs the twin's ground truth (--robot sim); use llm or random on a robot")
        prompt, cands = self._state(observation)
        if self.instance.done():
            k = cands.index(DONE)
        else:
            gains = []
            for c in cands:
                if c == DONE:
                    gains.append(-np.inf)
                    continue
                sim = symbolic_copy(self.instance)
                before = float(sim.rewards)
                gains.append(sim.check()[1] - before if apply_subgoal(sim, c) else -np.inf)
            k = int(np.argmax(gains))
            if not gains[k] > 0:  # nothing helps by itself: the task's own goal sentence, if offered
                goal = self.instance.lang_goal()
                k = cands.index(goal) if goal in cands else cands.index(DONE)
        probs = [0.0] * len(cands)
        probs[k] = 1.0
        return Decision(cands[k], prompt, cands, probs, k, None, time.perf_counter() - t0, self.name)


class LLMPlanner(_Base):
    """TWOSOME's policy: the most probable candidate (or a sample) under the language model.

    Args:
        model, tokenizer: a causal LM (from :func:`sim2real.planner.model.load_llm`).
        adapters: directory from ``sim2real align`` (LoRA adapters + critic), or None (the base LM).
        normalization: 'sum' | 'token' | 'word'.
        sample: sample from the policy instead of taking its mode.
    """

    name = "llm"

    def __init__(self, model, tokenizer, adapters=None, normalization: str = "word", sample: bool = False,
                 seed: int = 0, scene: str = "auto"):
        super().__init__(scene)
        self.model, self.tokenizer, self.normalization = model, tokenizer, normalization
        self.sample, self.rng = sample, np.random.default_rng(seed)
        self.agent = None
        if adapters is not None:
            from sim2real.planner.agent import LLMAgent

            self.agent = LLMAgent(model, tokenizer, normalization=normalization, adapters=adapters)

    def plan(self, observation) -> Decision:
        from sim2real.planner.scoring import score_candidates_shared_prompt

        t0 = time.perf_counter()
        prompt, cands = self._state(observation)
        value = None
        if self.agent is not None:
            probs = self.agent.probabilities(prompt, cands)
            value = float(self.agent.get_value([prompt])[0].detach())
        else:
            _refuse_injected_adapters(self.model)
            scores = score_candidates_shared_prompt(self.model, self.tokenizer, prompt, cands, self.normalization)
            probs = np.exp(scores - scores.max())
            probs /= probs.sum()
        k = int(self.rng.choice(len(cands), p=probs)) if self.sample else int(np.argmax(probs))
        return Decision(cands[k], prompt, cands, [float(p) for p in probs], k, value, time.perf_counter() - t0,
                        self.name)


def _refuse_injected_adapters(model) -> None:
    """An unaligned planner must score with the base model. peft injects LoRA layers into the very
    model an aligned planner (or agent) wraps, so a model object shared with one would silently score
    with its adapters."""
    if any("lora_" in name for name, _ in model.named_modules()):
        raise InputError("the base language model carries LoRA adapters (it was also given to an aligned planner); "
                         "load a separate copy of the model for the unaligned planner")


def parse_planner_spec(text: str) -> tuple:
    """'fixed' | 'scripted' | 'random' | 'llm' | 'llm:PATH' -> (kind, adapters path or None)."""
    kind, _, path = text.partition(":")
    if kind not in KINDS or (path and kind != "llm"):
        raise InputError(f"--planner {text!r}: use fixed, scripted, random, llm or llm:ADAPTERS_DIR")
    return kind, (path or None)


def make_planner(text: str, llm=None, device: str = "cpu", seed: int = 0, scene: str = "auto",
                 normalization: str = "word"):
    """A planner from its CLI spelling; ``llm`` is the model directory / GGUF (None: embedded SmolLM2)."""
    from pathlib import Path

    kind, adapters = parse_planner_spec(text)
    if kind == "fixed":
        return FixedPlanner(scene)
    if kind == "scripted":
        return ScriptedPlanner(scene)
    if kind == "random":
        return RandomPlanner(seed, scene)
    if adapters is not None and not Path(adapters).is_dir():
        raise InputError(f"--planner llm:{adapters}: no such directory; pass a checkpoint directory written by "
                         "`sim2real align` (e.g. runs/align/checkpoints/update_00010)")
    from sim2real.planner.model import load_llm

    model, tokenizer = load_llm(llm, device)
    return LLMPlanner(model, tokenizer, adapters, normalization, seed=seed, scene=scene)
