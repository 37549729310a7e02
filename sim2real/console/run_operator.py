"""The console as the operator of ``sim2real run --operator console``.

``sim2real run`` owns the camera, the robot and the campaign loop; the page shows its reset and
label prompts (a :class:`~sim2real.trials.operator.ConsoleOperator`: idempotent answers, labels
through the run's crash-safe trial log) and its progress read from ``OUT/trials.jsonl``. The STOP
button takes the run's Ctrl-C path (SIGINT to this process): the episode loop stops the arm
before the interrupt propagates, and the interrupted trial is redone on resume. For clicking
demonstrations and a live view, use ``sim2real console`` (which can run a campaign itself).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Optional


class OperatorStation:
    """What the console app needs when the run, not the console, holds the hardware.

    Args:
        operator: the ConsoleOperator the campaign loop waits on.
        out_dir: the campaign directory (progress is read from its trials.jsonl).
        tasks, trials: the planned campaign (for "done / planned").
        robot_kind: shown on the page.
        interrupt: what STOP does after stopping the campaign (default: SIGINT to this process).
    """

    def __init__(self, operator, out_dir, tasks=(), trials: int = 0, robot_kind: str = "sim",
                 interrupt: Optional[Callable[[], None]] = None):
        self.operator, self.out_dir, self.tasks, self.trials = operator, Path(out_dir), list(tasks), int(trials)
        self.robot_kind = robot_kind
        self.interrupt = interrupt or (lambda: os.kill(os.getpid(), signal.SIGINT))
        self.message = {"level": "info", "text": "waiting for the run", "t": time.time()}
        self._changes = 0
        self._lock = threading.Lock()

    @property
    def version(self):
        """Changes of the prompt or message, and the trial log's modification time (labels committed)."""
        try:
            mtime = (self.out_dir / "trials.jsonl").stat().st_mtime_ns
        except OSError:
            mtime = 0
        return f"{self._changes}:{mtime}"

    def bump(self) -> None:
        with self._lock:
            self._changes += 1

    def image(self, seq: int, kind: str):
        return None

    def stop(self) -> None:
        """STOP: end the campaign; :meth:`after_stop_reply` then interrupts the run."""
        self.message = {"level": "warning", "text": "STOP pressed: the run was interrupted and the arm stopped; "
                                                    "re-run the same command to resume", "t": time.time()}
        self.bump()
        self.operator.stop()

    def after_stop_reply(self) -> None:
        """Interrupt the run (its Ctrl-C path stops the arm), once STOP's reply is sent.

        The interrupt ends this process, page server included: sent during the request, it could
        cut the reply short, and the tab would report a failed STOP for an arm that stopped.
        """
        self.interrupt()

    def state(self) -> dict:
        from sim2real.console.progress import campaign_progress
        from sim2real.trials.log import load_trials

        try:
            records = load_trials(self.out_dir, strict=False) if (self.out_dir / "trials.jsonl").exists() else []
        except Exception:  # noqa: BLE001 - a log being written; the next version shows it
            records = []
        progress = campaign_progress(records, self.tasks, self.trials)
        progress.update(out_dir=str(self.out_dir), running=True, stopped=False, error=None)
        return {"mode": "labels", "version": self.version, "robot": self.robot_kind, "task": ", ".join(self.tasks),
                "busy": None, "message": self.message, "trial": self.operator.pending(), "campaign": progress}


def serve_run_console(args, tasks=(), trials: int = 0):
    """Start the page for ``sim2real run --operator console``; returns its ConsoleOperator.

    Binds 127.0.0.1 on ``args.console_port`` (0 = any free port) and prints the address.
    """
    from sim2real.console.app import create_app
    from sim2real.console.server import ConsoleServer
    from sim2real.trials.operator import ConsoleOperator

    operator = ConsoleOperator(getattr(args, "operator_name", "console"))
    station = OperatorStation(operator, args.out, tasks, trials, getattr(args, "robot", "sim"))
    operator.on_change = station.bump
    server = ConsoleServer(create_app(station), "127.0.0.1", getattr(args, "console_port", 8765)).start()
    print(f"sim2real run: operator console on {server.url} (reset and label the trials there)", flush=True)
    operator.server = server  # kept alive with the operator
    return operator
