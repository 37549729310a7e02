"""Executing a sub-goal sentence with the twin's ground truth: which object, where, which yaw.

:func:`resolve` turns a :class:`~sim2real.planner.subgoals.Subgoal` into (object to pick, target
x-y, target yaw) on a TaskInstance (physical twin or symbolic). :class:`SubgoalOracle` is the
oracle policy for a planner: it moves what the step's sentence says (the whole-task oracle,
:class:`sim2real.oracle.OraclePolicy`, ignores the sentence), with the same pick point, place
height and yaw alignment as that oracle.

Target rules: on a block, sphere or cylinder: its centre, yawed like it; in a bowl: an empty bowl
of that colour; on a zone or in the corner: the task's first free offset anchored at that object
(its goals' ``targets.offsets``), else its centre.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.errors import PlanningError
from sim2real.planner.subgoals import DONE, parse
from sim2real.twin.taskenv import Target, yaw_of

FREE_M = 0.02
"""A slot with an object centre closer than this (x-y, m) is taken."""


def _xy(instance, obj) -> np.ndarray:
    return np.asarray(instance.scene.pose(obj.body)[0][:2], dtype=np.float64)


def _offsets(spec, group: str, pick_kind: str) -> list:
    out = []
    for g in spec.goals:
        if g.targets.at != group or g.targets.stack:
            continue
        kinds = {spec.group(name).kind for name in g.objects}
        if pick_kind in kinds:
            out += [o[:2] for o in g.targets.offsets]
    return out or [(0.0, 0.0)]


def resolve(subgoal, instance):
    """(SceneObject to pick, target xy (2,), target yaw rad) for ``subgoal`` on ``instance``.

    Raises:
        PlanningError: the sentence names an object that is not there.
    """
    objs = instance.scene.objects
    picks = [o for o in objs if (o.spec.color, o.spec.kind) == subgoal.pick]
    places = [o for o in objs if (o.spec.color, o.spec.kind) == subgoal.place]
    if not picks or not places:
        raise PlanningError(f"sub-goal {subgoal.sentence!r}: no {subgoal.pick if not picks else subgoal.place} "
                            "in the scene")
    spec = instance.spec
    picks = [o for o in picks if not _already_at(instance, o, places)] or picks  # those not there yet
    for place in places:  # the first place object with a free slot, for the first pick object not yet there
        pos, quat = instance.scene.pose(place.body)
        yaw = yaw_of(quat)
        R = Rotation.from_euler("z", yaw)
        slots = [np.asarray(pos[:2]) + R.apply([o[0], o[1], 0.0])[:2]
                 for o in _offsets(spec, place.group, subgoal.pick[1])]
        for pick in picks:
            if pick is place:
                continue
            if place.spec.kind in ("block", "sphere", "cylinder"):
                return pick, np.asarray(pos[:2], dtype=np.float64), yaw
            for slot in slots:
                others = [o for o in objs if o is not pick and o is not place and o.spec.kind not in ("zone", "corner", "line")]
                if all(np.linalg.norm(_xy(instance, o) - slot) >= FREE_M for o in others):
                    return pick, slot, yaw
    raise PlanningError(f"sub-goal {subgoal.sentence!r}: every {subgoal.place[0]} {subgoal.place[1]} is taken")


def _already_at(instance, obj, places) -> bool:
    """``obj`` is already on or in one of ``places`` (scene relations of the ground truth)."""
    from sim2real.planner.scene import relations, scene_from_truth

    objs = instance.scene.objects
    i = objs.index(obj)
    return any(r.subject == i and objs[r.obj] in places for r in relations(scene_from_truth(instance)))


class SubgoalOracle:
    """PolicyPort: the oracle moving what the step's sentence names (see the module doc)."""

    name = "oracle"
    checkpoint_sha256 = None

    def __init__(self, instance):
        from sim2real.oracle import OraclePolicy

        self.instance = instance
        self._oracle = OraclePolicy(instance)

    def act(self, obs, goal: str, **kw):
        sub = parse(goal, self.instance.spec, [o.spec for o in self.instance.scene.objects])
        if sub is None:
            if goal.strip() == DONE:
                raise PlanningError("the planner chose 'done'; there is nothing to execute")
            return self._oracle.act(obs, goal)  # not a sub-goal sentence: the task's own oracle
        pick, xy, yaw = resolve(sub, self.instance)
        live = self.instance.goals[0] if self.instance.goals else None
        goal_like = live if live is not None else SimpleNamespace(spec=SimpleNamespace(rotations=True))
        target = Target(np.array([xy[0], xy[1], 0.0]), float(yaw))
        return self._oracle._action(pick, target, goal_like, obs)  # the oracle's pick, place height and yaw


def subgoal_of(goal: str, instance) -> Optional[object]:
    """The parsed sub-goal of ``goal`` on ``instance`` (None: not a sub-goal sentence)."""
    return parse(goal, instance.spec, [o.spec for o in instance.scene.objects])
