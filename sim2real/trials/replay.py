"""Offline replay: would another checkpoint have done the same on the recorded observations?

For every recorded step of a campaign directory the other policy acts on the stored heightmap
observation and goal; its pick and place are compared with the ones the robot executed (the
executed poses projected back to heightmap pixels; the recorded action where nothing was
executed). Per step: pixel (and millimetre) distance of pick and place, the place rotation
difference, and, where the twin recorded an object-id segmentation of the heightmap, whether the
new pick / place lands on the same object. Per task: mean and median distances, the agreement
rate (both pick and place within ``radius_px``) and the same-object rates.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sim2real.errors import InputError
from sim2real.trials.log import TrialLogError, load_steps, load_trials

DEFAULT_RADIUS_PX = 10
"""Agreement radius: 10 px = 3.1 cm with GenSim's 3.125 mm pixels (about a block's width)."""

STEP_COLUMNS = ("task", "trial", "step", "pick_dist_px", "place_dist_px", "pick_dist_mm", "place_dist_mm",
                "place_dtheta_deg", "same_pick_object", "same_place_object", "agree")
TASK_COLUMNS = ("task", "steps", "pick_dist_px_mean", "pick_dist_px_median", "place_dist_px_mean",
                "place_dist_px_median", "agreement", "same_pick_object_rate", "same_place_object_rate")


@dataclass(frozen=True)
class StepComparison:
    """New vs executed action on one recorded step (distances in heightmap pixels / mm / degrees).

    ``same_*_object`` is None when the step has no segmentation (real robot).
    """

    task: str
    trial: int
    step: int
    pick_dist_px: float
    place_dist_px: float
    pick_dist_mm: float
    place_dist_mm: float
    place_dtheta_deg: Optional[float]
    same_pick_object: Optional[bool]
    same_place_object: Optional[bool]
    agree: bool


@dataclass
class ReplayResult:
    """All step comparisons plus per-task summaries and the output files."""

    steps: list
    per_task: dict
    skipped: list = field(default_factory=list)
    out: Optional[Path] = None


def _theta_from_quat(quat_xyzw) -> float:
    """Inverse of CLIPort's orientation: quat = Euler(0, 0, -theta) -> theta (radians)."""
    from scipy.spatial.transform import Rotation

    return float(-Rotation.from_quat(np.asarray(quat_xyzw, dtype=float)).as_euler("xyz")[2])


def _angle_diff_deg(a: float, b: float) -> float:
    d = (math.degrees(a - b) + 180.0) % 360.0 - 180.0
    return abs(d)


def _reference(meta: dict, key: str, workspace) -> tuple:
    """(pixel, theta) the robot executed for ``key`` (pick/place); the recorded action otherwise."""
    executed = (meta.get("executed") or {}).get(key)
    if isinstance(executed, dict) and "xyz" in executed:
        theta = _theta_from_quat(executed["quat_xyzw"]) if "quat_xyzw" in executed else None
        return workspace.xyz_to_pix(executed["xyz"]), theta
    action = (meta.get("action") or {}).get(key)
    if action is None:
        return None, None
    return tuple(action["pixel"]), action.get("theta")


def _object_at(seg: Optional[np.ndarray], pixel) -> Optional[int]:
    if seg is None or pixel is None:
        return None
    r, c = int(pixel[0]), int(pixel[1])
    if not (0 <= r < seg.shape[0] and 0 <= c < seg.shape[1]):
        return None
    return int(seg[r, c])


def _same(seg, new_pixel, ref_pixel) -> Optional[bool]:
    if seg is None:
        return None
    a, b = _object_at(seg, new_pixel), _object_at(seg, ref_pixel)
    return a is not None and b is not None and a == b and b != 0


def compare_step(task: str, trial: int, step, action, radius_px: float) -> Optional[StepComparison]:
    """Compare a new PickPlaceAction with the executed one of a recorded step (None if nothing to compare)."""
    obs = step.observation()
    ws = obs.workspace
    ref_pick, _ = _reference(step.meta, "pick", ws)
    ref_place, ref_theta = _reference(step.meta, "place", ws)
    if ref_pick is None or ref_place is None:
        return None
    dp = float(np.hypot(action.pick.pixel[0] - ref_pick[0], action.pick.pixel[1] - ref_pick[1]))
    dq = float(np.hypot(action.place.pixel[0] - ref_place[0], action.place.pixel[1] - ref_place[1]))
    seg = step.arrays.get("segmentation")
    dtheta = None if ref_theta is None else _angle_diff_deg(action.place.theta, ref_theta)
    return StepComparison(task, trial, step.index, dp, dq, dp * ws.pixel_size * 1000, dq * ws.pixel_size * 1000,
                          dtheta, _same(seg, action.pick.pixel, ref_pick), _same(seg, action.place.pixel, ref_place),
                          dp <= radius_px and dq <= radius_px)


def summarise(steps: list) -> dict:
    """Per-task summary rows (TASK_COLUMNS) plus an ``all`` row."""
    out = {}
    tasks = list(dict.fromkeys(s.task for s in steps))
    for task in tasks + ["all"]:
        rows = [s for s in steps if task == "all" or s.task == task]
        if not rows:
            continue
        pick = np.array([s.pick_dist_px for s in rows])
        place = np.array([s.place_dist_px for s in rows])
        sp = [s.same_pick_object for s in rows if s.same_pick_object is not None]
        sq = [s.same_place_object for s in rows if s.same_place_object is not None]
        out[task] = {"task": task, "steps": len(rows), "pick_dist_px_mean": float(pick.mean()),
                     "pick_dist_px_median": float(np.median(pick)), "place_dist_px_mean": float(place.mean()),
                     "place_dist_px_median": float(np.median(place)),
                     "agreement": float(np.mean([s.agree for s in rows])),
                     "same_pick_object_rate": float(np.mean(sp)) if sp else None,
                     "same_place_object_rate": float(np.mean(sq)) if sq else None}
    return out


PROGRESS_FILE = "replay_progress.jsonl"
"""Per-step results of an unfinished replay in its output folder: a rerun skips the steps in it."""


class _Progress:
    """Append-only record of finished steps (one JSON line each, flushed), keyed by the checkpoint.

    A line torn by a kill is ignored; a file written for another checkpoint or radius is started
    afresh (its results would not be comparable)."""

    def __init__(self, path: Optional[Path], identity: dict):
        import json

        self.path, self.done = path, {}
        if path is None:
            self._f = None
            return
        lines = path.read_text().splitlines() if path.is_file() else []
        try:
            same = bool(lines) and json.loads(lines[0]) == identity
        except ValueError:
            same = False
        for line in lines[1:] if same else []:
            try:
                d = json.loads(line)
                self.done[tuple(d["key"])] = d
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a" if same else "w")
        if not same:
            self._write(identity)

    def _write(self, d: dict) -> None:
        import json

        self._f.write(json.dumps(d) + "\n")
        self._f.flush()

    def record(self, key: tuple, comparison=None, skipped: Optional[str] = None) -> None:
        if self._f is not None:
            self._write({"key": list(key), "cmp": None if comparison is None else comparison.__dict__,
                         "skipped": skipped})

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def replay_campaign(out_dir, policy, *, radius_px: float = DEFAULT_RADIUS_PX, limit: Optional[int] = None,
                    progress: bool = False, resume: Optional[Path] = None,
                    checkpoint_id: str = "") -> ReplayResult:
    """Run ``policy`` (a PolicyPort: ``act(obs, goal) -> PickPlaceAction``) on every recorded step.

    Args:
        out_dir: campaign directory (trials.jsonl + artefacts).
        policy: the other checkpoint's policy.
        radius_px: agreement radius in heightmap pixels.
        limit: compare at most this many trials (quick looks).
        progress: tqdm progress bar (steps, with ETA) on stderr.
        resume: a progress file (:data:`PROGRESS_FILE` in the output folder): steps already in it
            (for the same ``checkpoint_id`` and radius) are not run again, and each new step is
            appended as soon as it is compared, so an interrupted replay continues where it stopped.
        checkpoint_id: identity of the policy's checkpoint (its sha256) for ``resume``.
    """
    if radius_px <= 0:
        raise InputError(f"radius_px must be > 0, got {radius_px}")
    records = load_trials(out_dir)
    if limit is not None:
        records = records[: int(limit)]
    trials = []  # (record, artefact dir); steps are loaded one trial at a time (each holds its frames)
    comparisons, skipped = [], []
    for rec in records:
        trial_dir = Path(out_dir) / rec.get("artefacts", "")
        if not rec.get("artefacts") or not trial_dir.is_dir():
            skipped.append(f"{rec['task']} #{rec['trial']}: no artefact directory")
            continue
        trials.append((rec, trial_dir))
    state = _Progress(None if resume is None else Path(resume),
                      {"replay_of": str(out_dir), "checkpoint": checkpoint_id, "radius_px": float(radius_px)})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(list(d.glob("step_*.json"))) for _, d in trials), desc="replay", unit="step")
    try:
        for rec, step in ((rec, step) for rec, d in trials for step in load_steps(d)):
            key = (rec["task"], int(rec["trial"]), int(step.index))
            if key in state.done:  # finished by an earlier, interrupted run
                d = state.done[key]
                if d.get("cmp") is not None:
                    comparisons.append(StepComparison(**d["cmp"]))
                else:
                    skipped.append(d.get("skipped") or f"{key}: skipped")
            else:
                cmp, why = _replay_step(rec, step, policy, radius_px)
                if cmp is not None:
                    comparisons.append(cmp)
                else:
                    skipped.append(why)
                state.record(key, cmp, why)
            if bar is not None:
                bar.update(1)
    finally:
        state.close()
        if bar is not None:
            bar.close()
    if not comparisons:
        raise TrialLogError(f"{out_dir}: no recorded step has an observation, a goal and an action to compare "
                            "with; was the campaign logged with steps?")
    return ReplayResult(comparisons, summarise(comparisons), skipped)


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _replay_step(rec: dict, step, policy, radius_px: float):
    """(StepComparison, None) for one recorded step, or (None, why it was skipped)."""
    where = f"{rec['task']} #{rec['trial']} step {step.index}"
    goal = step.meta.get("goal") or rec.get("goal")
    try:
        obs = step.observation()
    except TrialLogError as e:
        return None, f"{where}: {e}"
    if not goal:
        return None, f"{where}: no goal text recorded"
    cmp = compare_step(rec["task"], rec["trial"], step, policy.act(obs, goal), radius_px)
    return (cmp, None) if cmp is not None else (None, f"{where}: no executed or recorded action")


def write_replay(result: ReplayResult, out, *, source: str, checkpoint: str, radius_px: float,
                 checkpoint_sha256: Optional[str] = None) -> Path:
    """Write replay.md, replay_steps.csv and replay_tasks.csv into ``out``; returns replay.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "replay_steps.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STEP_COLUMNS)
        for s in result.steps:
            w.writerow([_fmt(getattr(s, c)) for c in STEP_COLUMNS])
    with open(out / "replay_tasks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TASK_COLUMNS)
        for row in result.per_task.values():
            w.writerow([_fmt(row[c]) for c in TASK_COLUMNS])
    px_mm = result.steps[0].pick_dist_mm / result.steps[0].pick_dist_px if result.steps[0].pick_dist_px else None
    lines = [f"# Replay of `{checkpoint}` on `{source}`", "",
             f"Checkpoint sha256: {checkpoint_sha256 or 'unknown'}. Agreement: pick and place both within "
             f"{radius_px:g} px" + (f" ({radius_px * px_mm:.1f} mm)" if px_mm else "") + " of the executed ones. "
             "Same object: the new pixel lands on the object (twin segmentation id) the robot acted on; "
             "n/a without segmentation (real robot).", "",
             "| Task | steps | pick Δ px (mean / median) | place Δ px (mean / median) | agreement | "
             "same object (pick) | same object (place) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result.per_task.values():
        name = "**all**" if row["task"] == "all" else row["task"]
        rate = (lambda v: "n/a" if v is None else f"{100 * v:.1f}%")
        lines.append(f"| {name} | {row['steps']} | {row['pick_dist_px_mean']:.1f} / {row['pick_dist_px_median']:.1f} | "
                     f"{row['place_dist_px_mean']:.1f} / {row['place_dist_px_median']:.1f} | "
                     f"{100 * row['agreement']:.1f}% | {rate(row['same_pick_object_rate'])} | "
                     f"{rate(row['same_place_object_rate'])} |")
    if result.skipped:
        lines += ["", f"Skipped ({len(result.skipped)}):", ""] + [f"- {s}" for s in result.skipped]
    lines += ["", "Per-step values: replay_steps.csv; per-task values: replay_tasks.csv.", ""]
    path = out / "replay.md"
    path.write_text("\n".join(lines))
    return path
