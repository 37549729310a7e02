"""The fast symbolic mode of a task: its goals and the oracle's effects, without physics.

:class:`SymbolicScene` stands in for the twin's PyBullet scene under the very same
:class:`~sim2real.twin.taskenv.TaskInstance`: objects are sampled from the seed exactly as in the
twin (same generator calls), and success is GenSim's reward on the poses. A step moves the object
the sub-goal names to its target (:func:`sim2real.planner.executor.resolve`) resting on the
highest surface there, aligned in yaw as the oracle aligns it, carrying what is in or on it; an
object with something on it cannot be picked (the suction cup would meet the object on top).
Nothing falls, slips or is knocked over: the physical twin is where the result is checked.

:class:`SymbolicEnv` is the RL environment of ``sim2real align``: observation = (prompt,
candidates); reward = the change of GenSim's task reward (summing to 1 at success) minus a step
cost; terminated at success or when ``done`` is chosen; truncated at the task's step budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.errors import PlanningError
from sim2real.planner.executor import resolve
from sim2real.planner.scene import prompt as make_prompt
from sim2real.planner.scene import relations, scene_from_truth
from sim2real.planner.subgoals import DONE, candidates, parse
from sim2real.twin.objects import DEFAULT_SYMMETRY, MARKINGS, rest_z
from sim2real.twin.scene import SceneObject
from sim2real.twin.taskenv import BOWL_BASE, TaskInstance, yaw_of


@dataclass
class SymbolicScene:
    """The part of TwinScene a TaskInstance uses, as a dictionary of poses."""

    objects: list = field(default_factory=list)
    poses: dict = field(default_factory=dict)

    def reset(self) -> None:
        self.objects, self.poses = [], {}

    def add_object(self, spec, position, yaw: float, group: str = "", index: int = 0) -> SceneObject:
        obj = SceneObject(len(self.objects), spec, group, index, f"{spec.color} {spec.kind}")
        self.objects.append(obj)
        self.set_pose(obj.body, position, yaw)
        return obj

    def settle(self, max_steps: int = 240, tol: float = 1e-3) -> int:
        return 0

    def set_pose(self, body: int, xyz, yaw: float) -> None:
        self.poses[body] = (np.asarray(xyz, dtype=np.float64), Rotation.from_euler("z", yaw).as_quat())

    def pose(self, body: int):
        pos, quat = self.poses[body]
        return pos.copy(), quat.copy()


def symbolic_instance(spec, seed: int) -> TaskInstance:
    """A TaskInstance of ``spec`` on a SymbolicScene, reset from ``seed`` (goals already met are popped)."""
    inst = TaskInstance(spec, SymbolicScene())
    inst.reset(seed)
    inst.check()
    return inst


def _top(obj, pos) -> float:
    """Height (m) an object put on ``obj`` rests on."""
    if obj.spec.kind == "bowl":
        return pos[2] + BOWL_BASE
    return pos[2] + obj.spec.size[2] / 2


def _carried(instance, obj) -> list:
    """Objects resting on or in ``obj`` (by the scene relations)."""
    objs = instance.scene.objects
    described = scene_from_truth(instance)
    return [objs[r.subject] for r in relations(described) if objs[r.obj] is obj]


def apply_subgoal(instance, sentence: str) -> bool:
    """Move what ``sentence`` names to its target; False (nothing moved) when it cannot be done."""
    sub = parse(sentence, instance.spec, [o.spec for o in instance.scene.objects])
    if sub is None:
        return False
    try:
        pick, xy, yaw = resolve(sub, instance)
    except PlanningError:
        return False
    scene = instance.scene
    riders = _carried(instance, pick)
    if pick.spec.kind != "bowl" and riders:
        return False  # something sits on it
    surface = 0.0
    for o in scene.objects:
        if o is pick or o in riders or o.spec.kind in MARKINGS:
            continue
        pos = scene.pose(o.body)[0]
        reach = o.spec.size[0] / 2
        if np.linalg.norm(pos[:2] - xy) < reach:
            surface = max(surface, _top(o, pos))
    old_pos, old_quat = scene.pose(pick.body)
    new_yaw = yaw if DEFAULT_SYMMETRY[pick.spec.kind] > 0 else yaw_of(old_quat)
    new_pos = np.array([xy[0], xy[1], surface + rest_z(pick.spec)])
    scene.set_pose(pick.body, new_pos, new_yaw)
    for r in riders:  # contents of a bowl move with it
        p, q = scene.pose(r.body)
        scene.set_pose(r.body, p + (new_pos - old_pos), yaw_of(q))
    return True


@dataclass
class SymbolicEnv:
    """One task in symbolic mode: ``reset(seed)`` then ``step(candidate_index)`` until the episode ends.

    Attributes:
        spec: the TaskSpec.
        step_cost: subtracted from every step's reward.
        max_steps: step budget (None: the instance's own, as in the twin).
    """

    spec: object
    step_cost: float = 0.01
    max_steps: object = None

    def reset(self, seed: int) -> tuple:
        self.instance = symbolic_instance(self.spec, seed)
        self.steps = 0
        self.budget = self.max_steps or self.instance.max_steps
        return self.observation()

    def instruction(self) -> str:
        return task_instruction(self.instance)

    def observation(self) -> tuple:
        """(prompt, candidates) of the current state."""
        objects = scene_from_truth(self.instance)
        return make_prompt(objects, self.instruction()), candidates(self.spec, objects)

    def step(self, sentence: str) -> tuple:
        """(reward, terminated, truncated, info) after executing ``sentence``."""
        before = float(self.instance.rewards)
        moved = False if sentence == DONE else apply_subgoal(self.instance, sentence)
        done, total = self.instance.check()
        self.steps += 1
        reward = total - before - self.step_cost
        terminated = bool(done) or sentence == DONE
        truncated = not terminated and self.steps >= self.budget
        return reward, terminated, truncated, {"success": bool(done), "moved": moved, "total_reward": total}


def task_instruction(instance) -> str:
    """The whole task in words: the goals' sentences of the instance, joined by ', then '."""
    texts = []
    for g in instance.spec.goals:
        t = instance.format(g.language or instance.spec.language)
        if t not in texts:
            texts.append(t)
    return ", then ".join(t.rstrip(".") for t in texts)
