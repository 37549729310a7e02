"""Campaign progress for the page: trials done per task and success rate with its Wilson interval.

Pure: takes trial records (``TrialLog.records()`` / ``load_trials``) and the planned campaign.
Only ``success`` counts as a success, as in the report (``sim2real.trials.report``).
"""
from __future__ import annotations

from typing import Iterable, Optional

from sim2real.trials.stats import wilson_interval


def _is_success(record: dict) -> bool:
    label = record.get("label") or {}
    if isinstance(label, dict) and label.get("outcome"):
        return label["outcome"] == "success"
    return bool(record.get("success"))


def campaign_progress(records: Iterable[dict], tasks: Optional[Iterable[str]] = None, trials_per_task: int = 0,
                      confidence: float = 0.95) -> dict:
    """Per task: done, planned, successes, rate and Wilson interval; plus the total.

    Args:
        records: trial records with ``task`` and ``label.outcome`` (or ``success``).
        tasks: planned tasks in order (tasks seen only in records are appended).
        trials_per_task: planned trials per task (0 = unknown).
    """
    records = list(records)
    order = list(tasks or [])
    for r in records:
        if r.get("task") not in order:
            order.append(r.get("task"))
    rows, total_s, total_n = [], 0, 0
    for task in order:
        recs = [r for r in records if r.get("task") == task]
        s = sum(_is_success(r) for r in recs)
        low, high = wilson_interval(s, len(recs), confidence)
        rows.append({"task": task, "done": len(recs), "planned": int(trials_per_task), "successes": s,
                     "rate": s / len(recs) if recs else None, "ci": [low, high]})
        total_s, total_n = total_s + s, total_n + len(recs)
    low, high = wilson_interval(total_s, total_n, confidence)
    return {"tasks": rows, "total": {"done": total_n, "planned": int(trials_per_task) * len(order),
                                     "successes": total_s, "rate": total_s / total_n if total_n else None,
                                     "ci": [low, high]}, "confidence": confidence}
