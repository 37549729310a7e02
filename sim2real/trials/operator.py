"""The person (or the twin's success check) who resets scenes and labels trials.

:class:`Operator` is a small protocol with two calls, so the same campaign loop can be driven from
a terminal (:class:`CLIOperator`), from ROS services (:class:`ServiceOperator`, whose
``confirm_reset`` / ``submit_label`` a ROS node calls from its service callbacks), or by the twin
(:class:`AutoOperator`, which labels from the success check and never asks).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol, runtime_checkable

from sim2real.errors import InputError
from sim2real.trials.labels import (FAILURE_CATEGORIES, REASON_TO_CATEGORY, Label, category_title,
                                    normalise_category, normalise_outcome)


class CampaignStopped(Exception):
    """The operator asked to stop the campaign (it resumes later with the same --out)."""


def _field(obj, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


@runtime_checkable
class Operator(Protocol):
    """Who resets the scene before a trial and labels it afterwards.

    Attributes:
        name: recorded in each trial's label (``by``) and provenance.
        interactive: True when a person is asked (the loop then avoids live progress bars).
    """

    name: str
    interactive: bool

    def start_trial(self, task: str, trial: int, n_trials: int, *, seed: int, retry: bool = False) -> None:
        """Block until the scene of ``task`` is reset for trial ``trial`` (0-based) of ``n_trials``.

        Raises:
            CampaignStopped: the operator wants to stop here.
        """
        ...

    def label(self, task: str, trial: int, result) -> Label:
        """Label the finished episode ``result`` (an EpisodeResult: success, steps, reason, ...)."""
        ...


class AutoOperator:
    """The twin's operator: never asks; the episode's success check fills the label.

    The outcome is ``success`` when ``result.success`` is True, ``partial`` when the twin reports
    progress (``reward`` strictly between 0 and 1), else ``failure``. The category comes from
    ``result.info['failure_category']`` when the twin knows it, else from the end reason.
    """

    interactive = False

    def __init__(self, name: str = "auto"):
        self.name = name

    def start_trial(self, task: str, trial: int, n_trials: int, *, seed: int, retry: bool = False) -> None:
        """Nothing to do: the twin resets its own scene from the trial's seed."""

    def label(self, task: str, trial: int, result) -> Label:
        success = _field(result, "success")
        if success is None:
            raise InputError(f"task {task!r} trial {trial}: the episode has no success verdict; the twin's "
                             "success check must set EpisodeResult.success (or use the CLI operator)")
        reason = str(_field(result, "reason", "") or "")
        reward = _field(result, "reward")
        note = f"auto: reason={reason}" + (f", reward={float(reward):.3f}" if reward is not None else "")
        if bool(success):
            return Label("success", None, note, self.name)
        info = _field(result, "info") or {}
        category = info.get("failure_category") if isinstance(info, dict) else None
        category = normalise_category(category) if category else REASON_TO_CATEGORY.get(reason, "other")
        partial = reward is not None and 0.0 < float(reward) < 1.0
        return Label("partial" if partial else "failure", category, note, self.name)


class CLIOperator:
    """A person at a terminal: rich prompts before and after each trial.

    Args:
        name: the operator's name (recorded with each label).
        console: a ``rich.console.Console`` (default: stdout).
        stream: where answers are read from (default: stdin); tests pass a StringIO.
    """

    interactive = True

    def __init__(self, name: str = "operator", console=None, stream=None):
        from rich.console import Console

        self.name = name
        self.console = console or Console()
        self.stream = stream

    def _ask(self, prompt: str, default: str = "") -> str:
        """Print a rich prompt and read one line; an empty answer gives ``default``.

        End of input (stdin closed, or the test stream exhausted) stops the campaign instead of
        looping on defaults: nobody is there to label.
        """
        self.console.print(f"{prompt}" + (f" [dim]({default})[/]" if default else "") + ": ", end="")
        if self.stream is not None:
            line = self.stream.readline()
        else:
            try:
                line = input() + "\n"
            except EOFError:
                line = ""
        if line == "":
            raise CampaignStopped("operator input closed (end of file)")
        return line.strip() or default

    def ask(self, prompt: str, default: str = "") -> str:
        """Ask the operator a free-text question (e.g. the instruction for a scene); CampaignStopped at EOF."""
        return self._ask(prompt, default)

    def start_trial(self, task: str, trial: int, n_trials: int, *, seed: int, retry: bool = False) -> None:
        from rich.markup import escape

        again = " [yellow](retry: the previous attempt was interrupted)[/]" if retry else ""
        self.console.rule(f"[bold]{escape(task)}[/] trial {trial + 1}/{n_trials}")
        answer = self._ask(f"Reset the scene for [bold]{escape(task)}[/], trial {trial + 1}/{n_trials} (seed {seed})"
                           f"{again} -> Enter  (q = stop the campaign)")
        if answer.lower() in ("q", "quit", "stop"):
            raise CampaignStopped(f"stopped by {self.name} before {task} trial {trial + 1}")

    def label(self, task: str, trial: int, result) -> Label:
        success, reason = _field(result, "success"), _field(result, "reason", "")
        steps = _field(result, "steps", 0)
        verdict = {True: "[green]success[/]", False: "[red]failure[/]", None: "[yellow]unknown[/]"}[
            None if success is None else bool(success)]
        self.console.print(f"Episode ended: {reason} after {steps} step(s); automatic check: {verdict}")
        default = "" if success is None else ("s" if success else "f")
        outcome = self._retry(lambda: normalise_outcome(self._ask("Outcome: success / failure / partial (s/f/p)",
                                                                  default)))
        category = None
        if outcome != "success":
            listing = "  ".join(f"{i + 1}) {category_title(c)}" for i, c in enumerate(FAILURE_CATEGORIES))
            self.console.print(f"Failure categories: {listing}")
            guess = REASON_TO_CATEGORY.get(str(reason), "")
            default_cat = str(FAILURE_CATEGORIES.index(guess) + 1) if guess else ""
            category = self._retry(lambda: normalise_category(self._ask("Failure category", default_cat))
                                   or self._missing_category())
        note = self._ask("Note (optional)", "")
        return Label(outcome, category, note, self.name)

    @staticmethod
    def _missing_category():
        raise InputError("a failure or partial trial needs a category; type its number")

    def _retry(self, ask: Callable):
        while True:
            try:
                return ask()
            except InputError as e:
                self.console.print(f"[red]{e}[/]")


class ServiceOperator:
    """An operator driven from another thread, e.g. by ROS 2 service callbacks.

    The campaign loop blocks in :meth:`start_trial` until :meth:`confirm_reset` is called, and in
    :meth:`label` until :meth:`submit_label` is called. :meth:`stop` ends the campaign.

    Args:
        name: operator name recorded with each label.
        on_prompt: called with the prompt text when the loop starts waiting (a ROS node publishes it).
        timeout_s: give up waiting after this many seconds (None = wait forever).
    """

    interactive = True

    def __init__(self, name: str = "ros-operator", on_prompt: Optional[Callable[[str], None]] = None,
                 timeout_s: Optional[float] = None):
        self.name, self.on_prompt, self.timeout_s = name, on_prompt, timeout_s
        self._cond = threading.Condition()
        self._reset = False
        self._label: Optional[Label] = None
        self._stopped = False
        self.waiting_for: Optional[str] = None  # 'reset' | 'label' | None

    def confirm_reset(self) -> None:
        """The scene is reset: the waiting trial starts."""
        with self._cond:
            self._reset = True
            self._cond.notify_all()

    def submit_label(self, outcome: str, category: Optional[str] = None, note: str = "") -> Label:
        """Label the waiting trial; raises InputError on a bad outcome / category (nothing stored)."""
        label = Label(outcome, category, note, self.name)
        with self._cond:
            self._label = label
            self._cond.notify_all()
        return label

    def stop(self) -> None:
        """Stop the campaign at the next wait."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _wait(self, what: str, ready: Callable[[], bool], prompt: str) -> None:
        self.waiting_for = what
        if self.on_prompt is not None:
            self.on_prompt(prompt)
        with self._cond:
            if not self._cond.wait_for(lambda: ready() or self._stopped, timeout=self.timeout_s):
                self.waiting_for = None
                raise CampaignStopped(f"no {what} from the operator within {self.timeout_s} s")
        self.waiting_for = None
        if self._stopped:
            raise CampaignStopped(f"stopped by {self.name}")

    def start_trial(self, task: str, trial: int, n_trials: int, *, seed: int, retry: bool = False) -> None:
        with self._cond:
            self._reset = False
        self._wait("reset", lambda: self._reset,
                   f"reset the scene for {task}, trial {trial + 1}/{n_trials} (seed {seed})"
                   + (" [retry]" if retry else ""))

    def label(self, task: str, trial: int, result) -> Label:
        with self._cond:
            self._label = None
        self._wait("label", lambda: self._label is not None,
                   f"label {task} trial {trial + 1}: success / failure / partial, category, note")
        return self._label


class ConsoleOperator:
    """The operator console's operator: a browser page answers the reset and label prompts.

    The campaign loop blocks in :meth:`start_trial` / :meth:`label` (its own thread) while the page
    shows :meth:`pending` and answers with :meth:`answer`. Every prompt carries an idempotency key
    (unique per process, task, trial and attempt), and an answer must quote it:

    * the first answer with the pending key is taken (a label then goes through the campaign's
      crash-safe trial log, exactly as a CLI label);
    * the same key again (a reloaded page re-sending, a second tab) returns the answer already
      taken, marked ``duplicate``, and changes nothing;
    * any other key (a prompt that is no longer asked) is refused with InputError.

    Args:
        name: operator name recorded with each label.
        timeout_s: give up waiting after this many seconds (None = wait forever).
        on_change: called (no arguments) whenever the pending prompt changes, e.g. to push it to pages.
    """

    interactive = True

    def __init__(self, name: str = "console", timeout_s: Optional[float] = None,
                 on_change: Optional[Callable[[], None]] = None):
        import secrets

        self.name, self.timeout_s, self.on_change = name, timeout_s, on_change
        self._nonce = secrets.token_hex(4)
        self._cond = threading.Condition()
        self._pending: Optional[dict] = None
        self._answers: dict = {}  # key -> {'kind', 'label' (dict) or None}
        self._count = 0
        self._stopped = False

    # -- the page's side -------------------------------------------------------------------
    def pending(self) -> Optional[dict]:
        """The prompt waiting for an answer (JSON-ready), or None."""
        with self._cond:
            return dict(self._pending) if self._pending else None

    def answer(self, key: str, *, reset: bool = False, outcome: Optional[str] = None,
               category: Optional[str] = None, note: str = "") -> dict:
        """Answer the prompt ``key``: ``reset=True`` for a reset prompt, or the label fields.

        Returns:
            {'key', 'kind', 'label' (dict or None), 'duplicate' (bool)}.

        Raises:
            InputError: unknown / stale key, wrong kind of answer, or a bad outcome / category
                (nothing is stored then).
        """
        with self._cond:
            if key in self._answers:
                return {**self._answers[key], "key": key, "duplicate": True}
            if self._pending is None or self._pending["key"] != key:
                raise InputError(f"prompt {key!r} is no longer asked (already answered elsewhere, or the campaign "
                                 "moved on); reload the page to see the current one")
            kind = self._pending["kind"]
            if kind == "reset":
                if not reset:
                    raise InputError("this prompt asks to reset the scene; answer it with reset")
                entry = {"kind": "reset", "label": None}
                self._answers[key] = {**entry, "value": True}
            else:
                if outcome is None:
                    raise InputError("this prompt asks for a label: outcome success / failure / partial")
                label = Label(outcome, category, note, self.name)
                entry = {"kind": "label", "label": label.to_dict()}
                self._answers[key] = {**entry, "value": label}
            self._pending = None
            self._cond.notify_all()
        self._changed()
        return {**entry, "key": key, "duplicate": False}

    def stop(self) -> None:
        """Stop the campaign at the next wait (the unlabelled trial is redone on resume)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._changed()

    # -- the campaign loop's side ------------------------------------------------------------
    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _ask(self, prompt: dict):
        with self._cond:
            self._count += 1
            key = f"{self._nonce}:{prompt['task']}:{prompt['trial']}:{prompt['kind']}:{self._count}"
            self._pending = {**prompt, "key": key}
        self._changed()
        with self._cond:
            ok = self._cond.wait_for(lambda: key in self._answers or self._stopped, timeout=self.timeout_s)
            if key not in self._answers:
                self._pending = None
        if key not in self._answers:
            self._changed()
            why = f"stopped by {self.name}" if ok else f"no answer from the console within {self.timeout_s} s"
            raise CampaignStopped(why)
        return self._answers[key]["value"]

    def start_trial(self, task: str, trial: int, n_trials: int, *, seed: int, retry: bool = False) -> None:
        self._ask({"kind": "reset", "task": task, "trial": trial, "n_trials": n_trials, "seed": seed,
                   "retry": bool(retry),
                   "text": f"Reset the scene for {task}, trial {trial + 1}/{n_trials} (seed {seed})"
                           + (" - retry: the previous attempt was interrupted" if retry else "")})

    def label(self, task: str, trial: int, result) -> Label:
        success, reason = _field(result, "success"), str(_field(result, "reason", "") or "")
        suggested = None if success is None else ("success" if success else "failure")
        return self._ask({"kind": "label", "task": task, "trial": trial, "steps": int(_field(result, "steps", 0) or 0),
                          "reason": reason, "auto_success": success, "suggested_outcome": suggested,
                          "suggested_category": REASON_TO_CATEGORY.get(reason),
                          "categories": list(FAILURE_CATEGORIES),
                          "text": f"Label {task} trial {trial + 1}: episode ended ({reason})"})
