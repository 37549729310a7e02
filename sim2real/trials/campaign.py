"""The evaluation protocol: tasks x trials, in blocked or randomised order, one seed per trial.

A campaign is described by a YAML file (``config/campaign.yaml``) plus command-line overrides::

    name: gensim-real          # free text, shown in the report
    tasks: [stack-block, build-wheel, ...]
    trials: 10                 # per task
    order: blocked             # blocked (all trials of a task together) | randomised
    seed: 0                    # trial k of every task gets seed + k (order-independent)
    max_steps: null            # episode step budget; null = the task's default
    model: null                # column name in the report (default: the policy's name)

:func:`run_campaign` runs the plan against a :class:`~sim2real.trials.log.TrialLog`: labelled
trials are skipped, trials that were in flight when a previous run died are redone and marked
``retry``. The same plan (same order, same seeds) comes out of the same YAML every time, so
resuming with the same command continues where it stopped.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import yaml

from sim2real.config import from_mapping, load_yaml
from sim2real.errors import ConfigError, InputError
from sim2real.trials.labels import Label
from sim2real.trials.log import TrialLog, TrialLogError, atomic_write_text, task_slug, to_jsonable
from sim2real.trials.operator import CampaignStopped, Operator

ORDERS = ("blocked", "randomised")
CAMPAIGN_FILE = "campaign.yaml"
PROTOCOL_KEYS = ("tasks", "trials", "order", "seed", "max_steps")
"""Campaign fields that must not change when a campaign directory is resumed."""


class CampaignError(ConfigError):
    """A campaign description is invalid, or does not match the directory being resumed."""


@dataclass(frozen=True)
class PlannedTrial:
    """One entry of the campaign plan.

    Attributes:
        position: 0-based position in the run order.
        task: task name.
        trial: 0-based trial index within the task.
        seed: the trial's seed (``campaign.seed + trial``).
    """

    position: int
    task: str
    trial: int
    seed: int


@dataclass(frozen=True)
class Campaign:
    """A tasks x trials evaluation protocol (see the module docstring for the YAML keys)."""

    tasks: tuple
    name: str = "campaign"
    trials: int = 10
    order: str = "blocked"
    seed: int = 0
    max_steps: Optional[int] = None
    model: Optional[str] = None

    def __post_init__(self):
        tasks = self.tasks
        if isinstance(tasks, str):
            tasks = [t.strip() for t in tasks.split(",")]
        object.__setattr__(self, "tasks", tuple(str(t) for t in (tasks or ())))
        order = str(self.order).lower()
        object.__setattr__(self, "order", "randomised" if order == "randomized" else order)

    def validate(self, where: str = "campaign") -> None:
        """Raise CampaignError naming the key and the fix."""
        if not self.tasks:
            raise CampaignError(f"{where}.tasks: list at least one task, e.g. [stack-block, build-wheel]")
        if any(not t.strip() for t in self.tasks):
            raise CampaignError(f"{where}.tasks: task names must not be empty (got {list(self.tasks)})")
        if len(set(self.tasks)) != len(self.tasks):
            dup = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
            raise CampaignError(f"{where}.tasks: {dup} listed twice; list each task once and set trials")
        try:
            slugs = [task_slug(t) for t in self.tasks]
        except InputError as e:
            raise CampaignError(f"{where}.tasks: {e}") from None
        if len(set(slugs)) != len(slugs):
            raise CampaignError(f"{where}.tasks: two tasks map to the same directory name ({slugs}); rename one")
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise CampaignError(f"{where}.trials: must be a whole number >= 1 (trials per task), got {self.trials!r}")
        if self.order not in ORDERS:
            raise CampaignError(f"{where}.order: must be one of {list(ORDERS)}, got {self.order!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise CampaignError(f"{where}.seed: must be a whole number >= 0, got {self.seed!r}")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise CampaignError(f"{where}.max_steps: must be a whole number >= 1 or null, got {self.max_steps!r}")
        if not isinstance(self.name, str) or not self.name:
            raise CampaignError(f"{where}.name: must be a non-empty string")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping, where: str = "campaign") -> "Campaign":
        """Build and validate from a mapping (unknown keys are errors)."""
        data = dict(data)
        if "tasks" in data and isinstance(data["tasks"], list):
            data["tasks"] = tuple(data["tasks"])
        campaign = from_mapping(cls, data, where)
        campaign.validate(where)
        return campaign

    @classmethod
    def from_yaml(cls, path, overrides=None) -> "Campaign":
        """Load ``path`` and apply ``overrides``.

        Args:
            path: campaign YAML.
            overrides: a mapping {key: value} (None values are ignored, so argparse defaults can
                be passed straight through) or a list of ``"key=value"`` strings (values parsed
                as YAML: ``trials=3``, ``tasks=[a, b]``, ``order=randomised``).
        """
        data = load_yaml(path)
        data.update(parse_overrides(overrides))
        return cls.from_mapping(data, str(path))

    def with_overrides(self, overrides) -> "Campaign":
        """A validated copy with ``overrides`` (same forms as :meth:`from_yaml`)."""
        data = self.to_dict()
        data.update(parse_overrides(overrides))
        return Campaign.from_mapping(data, "campaign overrides")

    def to_dict(self) -> dict:
        """YAML-ready mapping (the keys of the campaign file)."""
        return {"name": self.name, "tasks": list(self.tasks), "trials": self.trials, "order": self.order,
                "seed": self.seed, "max_steps": self.max_steps, "model": self.model}

    # -- the plan ----------------------------------------------------------------------------

    def seed_for(self, trial: int) -> int:
        """Seed of trial ``trial`` (0-based) of any task: ``seed + trial``.

        It does not depend on the order or the task list, so two models evaluated with the same
        campaign see the same seeds on the same (task, trial): the pairs of the paired test.
        """
        return int(self.seed) + int(trial)

    def plan(self) -> list:
        """The run order: list of :class:`PlannedTrial` (deterministic for a given campaign)."""
        pairs = [(task, k) for task in self.tasks for k in range(self.trials)]
        if self.order == "randomised":
            rng = np.random.default_rng(self.seed)
            pairs = [pairs[i] for i in rng.permutation(len(pairs))]
        return [PlannedTrial(i, task, k, self.seed_for(k)) for i, (task, k) in enumerate(pairs)]


def parse_overrides(overrides) -> dict:
    """Normalise overrides (mapping or ``key=value`` strings) into a dict; drops None values."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return {k: v for k, v in overrides.items() if v is not None}
    out = {}
    for item in overrides:
        if "=" not in str(item):
            raise CampaignError(f"override {item!r} must look like key=value (e.g. trials=3)")
        key, value = str(item).split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise CampaignError(f"override {item!r}: value is not valid YAML ({e})") from None
    return out


# ----------------------------------------------------------------------------------------------
# The campaign loop
# ----------------------------------------------------------------------------------------------

@dataclass
class CampaignSummary:
    """What one call of :func:`run_campaign` did.

    Attributes:
        out_dir: the campaign directory.
        planned: trials in the plan.
        committed: records committed by this call (in order).
        skipped: trials already labelled before this call.
        retried: trials redone because a previous run died while they were in flight.
        stopped: the operator stopped the campaign before the end.
        records: every committed record of the directory after this call.
    """

    out_dir: Path
    planned: int
    committed: list = field(default_factory=list)
    skipped: int = 0
    retried: int = 0
    stopped: bool = False
    records: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every planned trial is labelled."""
        return len(self.records) >= self.planned and not self.stopped

    def success_by_task(self) -> dict:
        """{task: (successes, trials)} over every committed record."""
        out: dict = {}
        for r in self.records:
            s, n = out.get(r["task"], (0, 0))
            out[r["task"]] = (s + int(bool(r["success"])), n + 1)
        return out


def _check_resume(campaign: Campaign, log: TrialLog) -> None:
    """Write DIR/campaign.yaml on the first run; on resume insist the protocol is unchanged."""
    path = log.dir / CAMPAIGN_FILE
    if path.exists():
        previous = yaml.safe_load(path.read_text()) or {}
        changed = [k for k in PROTOCOL_KEYS if _norm(previous.get(k)) != _norm(campaign.to_dict()[k])]
        if changed == ["trials"] and int(previous.get("trials") or 0) < campaign.trials:
            # extending: trial k keeps seed + k whatever the count, so the recorded trials stay valid
            atomic_write_text(path, yaml.safe_dump(campaign.to_dict(), sort_keys=False))
            return
        if changed:
            diff = ", ".join(f"{k}: {previous.get(k)!r} -> {campaign.to_dict()[k]!r}" for k in changed)
            raise CampaignError(f"{log.dir} holds a campaign with a different protocol ({diff}); resume it "
                                "with the same settings, or pass a new --out for a new campaign")
        return
    atomic_write_text(path, yaml.safe_dump(campaign.to_dict(), sort_keys=False))


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _check_same_model(log: TrialLog, policy: str, provenance: Optional[dict]) -> None:
    """Refuse to mix policies or checkpoints in one campaign directory (its report column would lie)."""
    new = ((provenance or {}).get("checkpoint") or {}).get("sha256")
    for rec in log.records():
        if rec.get("policy") != policy:
            raise CampaignError(f"{log.dir} already holds trials of policy {rec.get('policy')!r}, but this run uses "
                                f"{policy!r}; evaluate each model into its own --out")
        old = ((rec.get("provenance") or {}).get("checkpoint") or {}).get("sha256")
        if (old or new) and old != new:
            raise CampaignError(f"{log.dir} already holds trials of checkpoint sha256 {str(old)[:12]}..., but this "
                                f"run uses {str(new)[:12]}...; evaluate each checkpoint into its own --out")


def _call_run_trial(run_trial: Callable, planned: PlannedTrial, writer) -> Any:
    try:
        params = inspect.signature(run_trial).parameters
        streams = "on_step" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        streams = False
    if streams:
        out = run_trial(planned.task, planned.trial, planned.seed, on_step=writer.add_step)
    else:
        out = run_trial(planned.task, planned.trial, planned.seed)
    if isinstance(out, tuple):
        result, steps = out
        for step in steps or ():
            writer.add_step(step)
        return result
    return out


def _result_field(result, name, default=None):
    if isinstance(result, Mapping):
        return result.get(name, default)
    return getattr(result, name, default)


def _safe_info(info) -> dict:
    """JSON-safe copy of EpisodeResult.info; keys that cannot be stored are listed, not hidden."""
    out, dropped = {}, []
    for k, v in dict(info or {}).items():
        try:
            out[str(k)] = to_jsonable(v)
        except TrialLogError:
            dropped.append(str(k))
    if dropped:
        out["_unstored_keys"] = dropped
    return out


def build_record(result, label: Label, *, policy: str, model: Optional[str], goal: Optional[str] = None) -> dict:
    """The trial record for an EpisodeResult and its label (task/trial/seed are added by the log)."""
    steps = _result_field(result, "steps", 0)
    info = _safe_info(_result_field(result, "info", {}))
    auto = _result_field(result, "success")
    reward = _result_field(result, "reward")
    return {
        "success": label.success,
        "steps": int(steps),
        "reason": str(_result_field(result, "reason", "") or ""),
        "policy": policy,
        "model": model or policy,
        "goal": info.get("goal", goal),
        "reward": None if reward is None else float(reward),
        "auto_success": None if auto is None else bool(auto),
        "label": label.to_dict(),
        "info": info,
    }


def run_campaign(campaign: Campaign, log: TrialLog, run_trial: Callable, operator: Operator, *,
                 policy: str = "policy", provenance: Optional[dict] = None, progress: bool = True,
                 console=None, meta: Optional[dict] = None) -> CampaignSummary:
    """Run (or resume) ``campaign`` into ``log``.

    Args:
        campaign: the protocol.
        log: an open TrialLog of the campaign directory.
        run_trial: ``run_trial(task, trial, seed[, on_step=callback]) -> EpisodeResult`` or
            ``-> (EpisodeResult, steps)``. If it accepts ``on_step``, each StepRecord is streamed
            to the trial's artefact dir as it happens; a returned ``steps`` iterable is stored too.
            An exception aborts the campaign and leaves the trial in flight (redone on resume).
        operator: resets scenes and labels (AutoOperator in the twin, CLIOperator on the robot).
        policy: the policy's name (recorded; also the report column unless ``campaign.model``).
        provenance: from :func:`sim2real.trials.provenance.collect_provenance`; stored per trial.
        progress: show a progress bar (non-interactive operators) or per-trial status lines.
        console: a rich Console (default: stderr).
        meta: extra keys stored in every record (e.g. {'twin': {...}}).

    Returns:
        CampaignSummary; ``summary.complete`` tells whether every planned trial is labelled.

    Raises:
        CampaignError: the directory holds a different campaign, or another policy's / checkpoint's trials.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    campaign.validate()
    _check_same_model(log, policy, provenance)
    _check_resume(campaign, log)
    plan = campaign.plan()
    done = log.labelled_keys()
    in_flight = set(log.in_flight())
    todo = [p for p in plan if (p.task, p.trial) not in done]
    summary = CampaignSummary(log.dir, len(plan), skipped=len(plan) - len(todo))
    if summary.skipped:
        console.print(f"[bold]{log.dir}[/]: resuming; {summary.skipped} of {len(plan)} trials already labelled"
                      + (f", {len(in_flight)} interrupted trial(s) will be redone" if in_flight else ""))
    for note in log.repairs:
        console.print(f"[yellow]repaired:[/] {note}")
    base_meta = {"campaign": campaign.name, "policy": policy, "model": campaign.model or policy,
                 "operator": operator.name, "provenance": provenance or {}, **(meta or {})}
    bar = _Progress(console, len(plan), summary.skipped, enabled=progress and not operator.interactive)
    try:
        for planned in todo:
            retry = (planned.task, planned.trial) in in_flight
            try:
                operator.start_trial(planned.task, planned.trial, campaign.trials, seed=planned.seed, retry=retry)
            except CampaignStopped as e:
                console.print(f"[yellow]{e}[/]; run the same command again to resume")
                summary.stopped = True
                break
            t0 = time.monotonic()
            with log.begin(planned.task, planned.trial, planned.seed,
                           {**base_meta, "order_position": planned.position}) as writer:
                result = _call_run_trial(run_trial, planned, writer)
                try:
                    label = operator.label(planned.task, planned.trial, result)
                except CampaignStopped as e:
                    writer.abort(str(e))
                    console.print(f"[yellow]{e}[/]; the unlabelled trial is redone on resume")
                    summary.stopped = True
                    break
                record = build_record(result, label, policy=policy, model=campaign.model or policy,
                                      goal=writer.goal)
                record["duration_s"] = round(time.monotonic() - t0, 3)
                committed = writer.finish(record)
            summary.committed.append(committed)
            summary.retried += int(writer.retry)
            bar.advance(committed, operator.interactive and progress)
    finally:
        bar.close()
    summary.records = log.records()
    return summary


class _Progress:
    """A rich progress bar for unattended campaigns; one status line per trial otherwise."""

    def __init__(self, console, total: int, done: int, enabled: bool):
        self.console, self.total, self.done = console, total, done
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("[bold]campaign[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[last]}"), TimeRemainingColumn(), console=console,
                                transient=False)
            self.bar.start()
            self.task = self.bar.add_task("campaign", total=total, completed=done, last="")

    def advance(self, record: dict, print_line: bool) -> None:
        self.done += 1
        text = f"{record['task']} #{record['trial'] + 1}: {record['label']['outcome']}"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, last=text)
        elif print_line:
            self.console.print(f"[{self.done}/{self.total}] {text}" + (" (retry)" if record.get("retry") else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def campaign_for_dir(out_dir) -> Campaign:
    """The campaign stored in a campaign directory (written by the first run_campaign)."""
    path = Path(out_dir) / CAMPAIGN_FILE
    if not path.is_file():
        raise CampaignError(f"{path} not found; this directory was not written by run_campaign")
    return Campaign.from_yaml(path)


__all__ = ["Campaign", "CampaignError", "CampaignSummary", "PlannedTrial", "run_campaign", "parse_overrides",
           "build_record", "campaign_for_dir", "ORDERS"]
