"""The language planner (TWOSOME): an LLM picks each step's sub-goal sentence; PPO + LoRA aligns it.

Public API: :func:`score_candidates` (TWOSOME's normalised candidate log-scores), the
:class:`~sim2real.planner.planners.Planner` port and :func:`~sim2real.planner.planners.make_planner`.
See docs/planner.md. torch / transformers / peft are imported only where a model is used.
"""
from sim2real.planner.scoring import NORMALIZATIONS, score_candidates

__all__ = ["NORMALIZATIONS", "score_candidates", "Decision", "Planner", "make_planner"]


def __getattr__(name):  # the planners pull in the twin's object tables: imported on first use
    if name in ("Decision", "Planner", "make_planner"):
        from sim2real.planner import planners

        return getattr(planners, name)
    raise AttributeError(name)
