"""A campaign run inside the console, with the page as the operator.

The same campaign loop and crash-safe trial log as ``sim2real run`` (``trials.campaign.run_campaign``
into ``trials.log.TrialLog``); only the operator differs: a
:class:`~sim2real.trials.operator.ConsoleOperator` whose reset and label prompts the page answers.
The loop runs in its own thread and waits there for the operator; each episode runs on the
station's hardware thread (``run_episode``: plan -> envelope -> robot, as everywhere).
"""
from __future__ import annotations

import threading
import time
from typing import Optional

from sim2real.errors import InputError


class CampaignRunner:
    """Runs ``campaign`` into ``out`` on ``station`` with a ConsoleOperator.

    Args:
        station: the console's Station (its camera, robot, twin and policy are used).
        campaign: a Campaign.
        out: campaign directory.
        specs: {task name: TaskSpec}.
        policy_name: recorded with each trial.
        operator_name: recorded with each label.
        goal: language goal for robot trials whose template names scene colours (else the
            demonstration panel's goal).
    """

    def __init__(self, station, campaign, out, specs: dict, policy_name: str, operator_name: str = "console",
                 goal: Optional[str] = None):
        from sim2real.trials.operator import ConsoleOperator

        if station.policy is None:
            raise InputError("a campaign needs a policy: pass --policy CKPT (or --policy oracle on the twin)")
        self.station, self.campaign, self.out, self.specs = station, campaign, out, specs
        self.policy_name, self.goal = policy_name, goal
        self.operator = ConsoleOperator(operator_name, on_change=station.bump)
        self.summary = None
        self.error: Optional[BaseException] = None
        self._log = None
        self._thread = threading.Thread(target=self._run, name="sim2real-console-campaign", daemon=True)
        station.operator = self.operator
        station.campaign_view = self.view

    @classmethod
    def from_args(cls, args, station, spec) -> "CampaignRunner":
        from sim2real.trials.campaign import Campaign

        if not args.out:
            raise InputError("a campaign in the console needs --out DIR")
        overrides = {"tasks": [spec.name], "trials": args.trials}
        if args.campaign:
            campaign = Campaign.from_yaml(args.campaign, overrides)
        else:
            campaign = Campaign(tasks=(spec.name,), name="console", trials=args.trials or 10, order="blocked",
                                seed=args.seed)
        campaign.validate("sim2real console")
        policy = station.policy
        name = "oracle" if policy == "oracle" else getattr(policy, "name", "policy")
        return cls(station, campaign, args.out, {spec.name: spec}, name, args.operator_name)

    def start(self) -> "CampaignRunner":
        from sim2real.trials.log import TrialLog

        self._log = TrialLog(self.out)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self.operator.stop()
        self._thread.join(timeout=30)

    def view(self) -> dict:
        """Progress for the page (records read from the log: what is on disk is what is shown)."""
        from sim2real.console.progress import campaign_progress

        records = self._log.records() if self._log is not None else []
        out = campaign_progress(records, self.campaign.tasks, self.campaign.trials)
        out.update(out_dir=str(self.out), running=self.alive(), stopped=bool(self.summary and self.summary.stopped),
                   error=None if self.error is None else f"{type(self.error).__name__}: {self.error}")
        return out

    def _run(self) -> None:
        from rich.console import Console

        from sim2real.trials.campaign import run_campaign

        try:
            self.summary = run_campaign(self.campaign, self._log, self._run_trial, self.operator,
                                        policy=self.policy_name, progress=False, console=Console(stderr=True, quiet=True),
                                        meta={"robot": self.station.robot_kind, "console": True})
        except BaseException as e:  # noqa: BLE001 - shown on the page
            self.error = e
        finally:
            self._log.close()
            self.station.bump()

    def _run_trial(self, task: str, trial: int, seed: int, on_step=None):
        fut = self.station.submit(lambda: self._episode(task, seed, on_step), "trial")
        return fut.result()

    def _episode(self, task: str, seed: int, on_step):
        from sim2real.episode import run_episode
        from sim2real.oracle import OraclePolicy

        st = self.station
        spec = self.specs[task]
        if st.twin is not None:
            inst = st.twin.start_trial(spec, seed)
            st.instance = inst
            st.begin_episode(seed, inst.lang_goal())  # the demo panel follows the trial's scene
            policy = OraclePolicy(inst) if st.policy == "oracle" else st.policy
            budget, check, goal = self.campaign.max_steps or inst.max_steps, inst.check, inst
        else:
            policy, check = st.policy, None
            goal = self.goal or st.episode.goal or spec.language
            if "{" in goal:
                raise InputError(f"the goal of {task} names scene colours ({goal!r}); type it in the goal box first")
            budget = self.campaign.max_steps or (spec.max_steps if isinstance(spec.max_steps, int) else 10)

        def step_cb(rec):
            if st.twin is not None:
                st.twin.annotate_step(rec)
            if on_step is not None:
                on_step(rec)
            st._capture()

        t0 = time.monotonic()
        st.robot.reset()  # a new trial: a STOP before it does not carry over (one during it holds)
        try:
            result = run_episode(st.camera, policy, st.robot, goal, workspace=st.workspace, envelope=st.envelope,
                                 max_steps=budget, motion=st.motion, success_check=check, on_step=step_cb,
                                 reachable=st.reachable)
        finally:
            st.robot.stop()
        result.info["goal"] = goal if isinstance(goal, str) else goal.lang_goal()
        result.info["duration_s"] = round(time.monotonic() - t0, 3)
        st._capture()
        return result
