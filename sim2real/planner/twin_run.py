"""One twin trial with a planner choosing each step's sub-goal (``sim2real run --planner``).

Like :meth:`sim2real.twin.Twin.run_trial`, with two differences: the planner is reset with the
trial's task, instruction and ground truth, and the oracle executor is the
:class:`~sim2real.planner.executor.SubgoalOracle` (it moves what the chosen sentence says).
"""
from __future__ import annotations

from typing import Optional

from sim2real.planner.symbolic import task_instruction


def run_planned_trial(twin, task_spec, seed: int, policy, planner, on_step=None, max_steps: Optional[int] = None):
    """EpisodeResult of one seeded trial; ``policy`` is 'oracle' or a PolicyPort."""
    from sim2real.episode import run_episode
    from sim2real.planner.executor import SubgoalOracle

    inst = twin.start_trial(task_spec, seed)
    planner.reset(task_spec, task_instruction(inst), inst)
    pol = SubgoalOracle(inst) if policy == "oracle" else policy

    def annotated(rec):
        twin.annotate_step(rec)
        on_step(rec)

    result = run_episode(twin.camera, pol, twin.robot, inst, workspace=twin.workspace, envelope=twin.envelope,
                         max_steps=max_steps or inst.max_steps, motion=twin.config.motion, success_check=inst.check,
                         on_step=annotated if on_step is not None else None, reachable=twin.reachable,
                         planner=planner)
    result.info.update(inst.describe())
    result.info["goals_left"] = len(inst.goals)
    result.info["instruction"] = task_instruction(inst)
    result.info["planner"] = planner.name
    return result
