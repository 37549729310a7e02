"""A task instantiated in the twin: sampled objects, goals, and GenSim's reward bookkeeping.

``TaskInstance.reset(seed)`` rebuilds the scene and samples colours, counts and poses from a
``numpy`` generator seeded by the trial seed, so a trial is a pure function of its seed.
``check()`` evaluates the goals exactly as GenSim's ``Task.reward`` does (see sim2real/tasks.py)
and returns (done, reward).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.errors import ConfigError
from sim2real.tasks import GoalSpec, TaskSpec, symmetry_rad
from sim2real.twin.objects import TRAIN_COLORS, ObjectSpec, footprint_radius, rest_z
from sim2real.twin.scene import SceneObject, TwinScene

BOWL_BASE = 0.006
"""Thickness (m) of a bowl's base: objects in a bowl rest this high."""


@dataclass
class Target:
    """A goal pose: position (3,) metres and yaw (rad)."""

    xyz: np.ndarray
    yaw: float


@dataclass
class Goal:
    """One live goal step (GenSim's goal tuple)."""

    spec: GoalSpec
    objects: list            # SceneObject
    targets: list            # Target
    matches: np.ndarray      # (n_objects, n_targets) 0/1
    zone: object = None      # (SceneObject, size) for the zone metric
    max_reward: float = 1.0
    language: str = ""
    pos_eps: float = 0.01
    rot_eps: float = np.radians(15)


def yaw_of(quat_xyzw) -> float:
    """Yaw (rad) about z of a quaternion, as GenSim's quatXYZW_to_eulerXYZ(...)[2]."""
    return float(Rotation.from_quat(quat_xyzw).as_euler("xyz")[2])


@dataclass
class TaskInstance:
    """``spec`` in ``scene``; call :meth:`reset` per trial."""

    spec: TaskSpec
    scene: TwinScene
    reach_m: float = 0.8
    goals: list = field(default_factory=list)
    colors: dict = field(default_factory=dict)

    # -- setup -----------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Rebuild the scene and sample a new instance from ``seed``."""
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.scene.reset()
        self.colors = self._sample_colors(rng)
        groups: dict[str, list[SceneObject]] = {}
        for g in self.spec.objects:
            n = self._count(g.count, groups, rng)
            palette = self._palette(g.color)
            groups[g.name] = []
            for i in range(n):
                color = palette[i % len(palette)]
                spec = ObjectSpec(g.kind, color, tuple(g.size), g.fixed, 0.1 if g.kind == "bowl" else 0.05)
                radius = g.clear_radius or footprint_radius(spec)
                xy = self._sample_xy(g, radius, rng)
                yaw = np.radians(g.yaw_deg) if g.yaw_deg is not None else float(rng.uniform(0, 2 * np.pi))
                obj = self.scene.add_object(spec, (xy[0], xy[1], rest_z(spec)), yaw, g.name, i)
                obj.clear_radius = radius
                groups[g.name].append(obj)
        self.groups = groups
        self.scene.settle(240)
        self.goals = [self._make_goal(gs) for gs in self.spec.goals]
        self.progress, self.rewards = 0.0, 0.0
        self.max_steps = self._max_steps()

    def _sample_colors(self, rng) -> dict:
        names = list(self.spec.colors)
        chosen: dict[str, str] = {}
        for var in names:  # without replacement across variables, as GenSim's get_colors(n_colors=k)
            options = [c for c in self.spec.colors[var] if c not in chosen.values()]
            if not options:
                raise ConfigError(f"{self.spec.path}: colour variable {var} has no colour left after {chosen}")
            chosen[var] = options[int(rng.integers(len(options)))]
        return chosen

    def _palette(self, color) -> list:
        items = color if isinstance(color, list) else [color]
        out = []
        for c in items:
            if c == "$others":
                out += [x for x in TRAIN_COLORS if x not in self.colors.values()]
            elif isinstance(c, str) and c.startswith("$"):
                out.append(self.colors[c[1:]])
            else:
                out.append(c)
        return out

    @staticmethod
    def _count(count, groups, rng) -> int:
        if isinstance(count, int):
            return count
        if isinstance(count, list):
            return int(rng.integers(count[0], count[1] + 1))
        ref = count[2:].strip()
        if ref not in groups:
            raise ConfigError(f"count '<={ref}': group {ref!r} must be defined before this one")
        return int(rng.integers(1, len(groups[ref]) + 1))

    def _sample_xy(self, g, radius: float, rng) -> np.ndarray:
        if g.position is not None:
            return np.asarray(g.position, dtype=np.float64)
        (x0, x1), (y0, y1) = self.spec.region["x"], self.spec.region["y"]
        for _ in range(2000):
            xy = np.array([rng.uniform(x0 + radius * 0.5, x1 - radius * 0.5), rng.uniform(y0 + radius * 0.5, y1 - radius * 0.5)])
            if np.hypot(*xy) > self.reach_m:
                continue
            if all(np.linalg.norm(xy - self.scene.pose(o.body)[0][:2]) > radius + o.clear_radius + 0.01
                   for o in self.scene.objects):
                return xy
        raise ConfigError(f"task {self.spec.name}: cannot place group {g.name!r} without overlap in region "
                          f"{self.spec.region}; enlarge the region or reduce counts/sizes")

    def _make_goal(self, gs: GoalSpec) -> Goal:
        objs = [o for name in gs.objects for o in self.groups[name]]
        anchors = self.groups[gs.targets.at]
        targets = []
        for a in anchors:
            pos, quat = self.scene.pose(a.body)
            yaw = yaw_of(quat)
            R = Rotation.from_euler("z", yaw)
            offsets = self._offsets(gs)
            for off in offsets:
                obj_half = objs[0].spec.size[2] / 2 if objs else 0.02
                if gs.targets.stack:
                    base = pos[2] + a.spec.size[2] / 2
                else:
                    base = BOWL_BASE if a.spec.kind == "bowl" else 0.0
                xyz = np.array([pos[0], pos[1], 0.0]) + R.apply([off[0], off[1], 0.0])
                xyz[2] = base + obj_half + off[2]
                targets.append(Target(xyz, yaw + np.radians(gs.targets.yaw_deg)))
        if gs.matches == "pairwise":
            if len(objs) != len(targets):
                raise ConfigError(f"{self.spec.path}: 'matches: pairwise' needs as many targets ({len(targets)}) "
                                  f"as objects ({len(objs)})")
            matches = np.eye(len(objs))
        else:
            matches = np.ones((len(objs), len(targets)))
        zone = None
        if gs.metric == "zone":
            zone = (anchors[0], anchors[0].spec.size)
        n_goals = len(self.spec.goals)
        max_reward = gs.max_reward if gs.max_reward is not None else 1.0 / n_goals
        language = self.format(gs.language or self.spec.language)
        pos_eps = gs.pos_eps if gs.pos_eps is not None else self.spec.default_pos_eps()
        return Goal(gs, objs, targets, matches, zone, float(max_reward), language, float(pos_eps),
                    float(np.radians(gs.rot_eps_deg)))

    @staticmethod
    def _offsets(gs: GoalSpec) -> list:
        if gs.targets.ring:
            r, n = float(gs.targets.ring["radius"]), int(gs.targets.ring["count"])
            return [(r * np.cos(a), r * np.sin(a), 0.0) for a in np.linspace(0, 2 * np.pi, n, endpoint=False)]
        return [tuple(o) for o in gs.targets.offsets]

    def _max_steps(self) -> int:
        m = self.spec.max_steps
        if isinstance(m, int):
            return m
        return len(self.groups[m["per_object"]]) + int(m.get("extra", 0))

    def format(self, template: str) -> str:
        return template.format(**self.colors) if re.search(r"{\w+}", template) else template

    # -- GenSim reward -----------------------------------------------------------------------
    def is_match(self, obj: SceneObject, target: Target, goal: Goal) -> bool:
        """GenSim ``is_match``: x-y distance < pos_eps and yaw within rot_eps modulo symmetry."""
        pos, quat = self.scene.pose(obj.body)
        if np.linalg.norm(np.float32(pos[:2]) - np.float32(target.xyz[:2])) >= goal.pos_eps:
            return False
        sym = symmetry_rad(goal.spec)
        if sym > 0:
            diff = abs(yaw_of(quat) - target.yaw) % sym
            if diff > sym / 2:
                diff = sym - diff
            if diff >= goal.rot_eps:
                return False
        if goal.spec.z_eps is not None and abs(pos[2] - target.xyz[2]) >= goal.spec.z_eps:
            return False
        return True

    def zone_fraction(self, goal: Goal) -> float:
        """Fraction of the goal objects' box-corner points inside the zone footprint."""
        zone_obj, size = goal.zone
        zpos, zquat = self.scene.pose(zone_obj.body)
        inside = total = 0
        for o in goal.objects:
            pos, quat = self.scene.pose(o.body)
            half = np.asarray(o.spec.size) / 2
            corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
            world = Rotation.from_quat(quat).apply(corners) + pos
            local = Rotation.from_quat(zquat).inv().apply(world - zpos)
            ok = (np.abs(local[:, 0]) < size[0] / 2) & (np.abs(local[:, 1]) < size[1] / 2) & (local[:, 2] < 0.3)
            inside += int(ok.sum())
            total += len(ok)
        return inside / total if total else 0.0

    def step_reward(self, goal: Goal) -> float:
        """GenSim's per-goal reward: max_reward x fraction of objects matched (pose) or of points in the zone."""
        if goal.spec.metric == "zone":
            return goal.max_reward * self.zone_fraction(goal)
        reward = 0.0
        for i, o in enumerate(goal.objects):
            for j in np.flatnonzero(goal.matches[i]):
                if self.is_match(o, goal.targets[j], goal):
                    reward += goal.max_reward / len(goal.objects)
                    break
        return reward

    def check(self) -> tuple[bool, float]:
        """Update goal progress as ``Task.reward`` does and return (done, total reward so far).

        Several goals may complete in one call (GenSim pops one per env step; the twin checks once
        per pick-and-place, so it pops every goal that is already satisfied, in order).
        """
        while self.goals:
            goal = self.goals[0]
            step = self.step_reward(goal)
            self.rewards = self.progress + step
            if abs(goal.max_reward - step) < 0.01:
                self.progress += goal.max_reward
                self.goals.pop(0)
                continue
            break
        return self.done(), float(self.rewards)

    def done(self) -> bool:
        """GenSim ``done``: no goal left, or reward > 0.99."""
        return len(self.goals) == 0 or self.rewards > 0.99

    def lang_goal(self) -> str:
        """The current goal's language instruction (GenSim ``get_lang_goal``)."""
        return self.goals[0].language if self.goals else "done."

    def describe(self) -> dict:
        """JSON-ready summary of the instance (colours and objects) for the trial record."""
        return {"colors": dict(self.colors),
                "objects": [{"id": i + 1, "name": o.name, "group": o.group,
                             "xyz": [round(float(v), 4) for v in self.scene.pose(o.body)[0]]}
                            for i, o in enumerate(self.scene.objects)]}

