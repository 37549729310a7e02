"""``sim2real run``: whole trials on the digital twin, logged and reported like real-robot trials.

    sim2real run --task "build wheel" --robot sim --policy oracle --trials 10 --out runs/wheel
    sim2real run --task all --robot sim --policy ckpt.pt --trials 10 --out runs/gensim --seed 0

Each trial: reset the twin from the trial's seed -> capture -> heightmap -> policy -> safety ->
motion -> success check -> record, repeated until the task is done or its step budget is spent.
Trials go through the trials helper's campaign loop and crash-safe log (DIR/trials.jsonl, one
JSON object per trial; per-step artefacts under DIR), and DIR/report.md is written at the end.
"""
from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("run", help="run seeded trials of a task on the digital twin (or a campaign of tasks)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True,
                   help='task name or alias ("build wheel"), a comma list, or "all" for the 9 real-world tasks')
    p.add_argument("--robot", default="sim", help="'sim' (the PyBullet twin); real robots run through ROS 2")
    p.add_argument("--policy", default="oracle", help="'oracle' (twin ground truth) or a checkpoint path")
    p.add_argument("--trials", type=int, default=10, help="trials per task (default 10)")
    p.add_argument("--out", required=True, metavar="DIR", help="campaign directory (resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="base seed: trial k of each task uses seed + k")
    p.add_argument("--gui", action="store_true", help="show the PyBullet window (needs a display)")
    p.add_argument("--arm", choices=["ur5", "xarm6"], help="twin arm (default: config/robots/sim.yaml)")
    p.add_argument("--tool", choices=["suction", "gripper"], help="end effector (default: config)")
    p.add_argument("--robot-config", metavar="YAML", help="twin robot config (default config/robots/sim.yaml)")
    p.add_argument("--calibration", metavar="YAML",
                   help="calibration YAML (from `sim2real calibrate`) the twin's frames are projected with; the twin "
                        "still renders from its ground truth (default: camera.calibrated in config/robots/sim.yaml)")
    p.add_argument("--camera-config", metavar="YAML",
                   help="twin camera intrinsics and depth noise/holes (default config/cameras/twin.yaml)")
    p.add_argument("--order", choices=["blocked", "randomised"], default="blocked", help="trial order")
    p.add_argument("--max-steps", type=int, help="override every task's step budget")
    p.add_argument("--renderer", choices=["egl", "tiny"], help="force a renderer (default: EGL if it loads)")
    p.add_argument("--device", default="cpu", help="torch device for a checkpoint policy")
    p.add_argument("--gallery", action="store_true", help="also write the per-trial gallery pages (slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_policy(spec: str, device: str = "cpu"):
    """'oracle' (returned as the string; the twin binds it per trial) or a checkpoint Policy.

    torch is imported only here, for a checkpoint, so oracle runs never load it.
    """
    from sim2real.errors import InputError

    if spec == "oracle":
        return "oracle"
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"--policy {spec!r}: not 'oracle' and no such checkpoint file; pass --policy oracle "
                         "or the path of a CLIPort/GenSim checkpoint")
    try:  # lazy: pulls in torch
        from sim2real.policy import Policy
    except ImportError:
        try:
            from sim2real.policy.policy import Policy
        except ImportError as e:
            raise InputError(f"--policy {spec!r}: the checkpoint policy cannot be imported ({e}); "
                             "install the policy dependencies (torch, open_clip) or use --policy oracle") from None
    return Policy.from_checkpoint(path, device=device)


def run(args) -> int:
    from rich.console import Console

    from sim2real.errors import HardwareError, InputError, PlanningError, SafetyError, Sim2RealError
    from sim2real.episode import EpisodeResult
    from sim2real.tasks import load_all, resolve_many
    from sim2real.trials.campaign import Campaign, run_campaign
    from sim2real.trials.log import TrialLog
    from sim2real.trials.operator import AutoOperator
    from sim2real.trials.provenance import collect_provenance
    from sim2real.twin import Twin, load_twin_config

    console = Console(stderr=True)
    if args.robot != "sim":
        raise InputError(f"--robot {args.robot!r}: `sim2real run` drives the twin (--robot sim); run a real arm with "
                         "`ros2 launch sim2real deploy.launch.py`")
    if args.trials < 1:
        raise InputError(f"--trials must be >= 1, got {args.trials}")
    tasks = load_all()
    specs = resolve_many(args.task, tasks)
    policy = load_policy(args.policy, args.device)
    policy_name = "oracle" if policy == "oracle" else getattr(policy, "name", Path(args.policy).stem)
    config = load_twin_config(args.robot_config, args.arm, args.tool)
    if args.camera_config:
        from dataclasses import replace

        config = replace(config, camera_config=Path(args.camera_config))
    campaign = Campaign(tasks=tuple(s.name for s in specs), name=f"twin-{policy_name}", trials=args.trials,
                        order=args.order, seed=args.seed, max_steps=args.max_steps)
    campaign.validate("sim2real run")
    t_start = time.monotonic()
    twin = Twin(config, gui=args.gui, calibration=args.calibration, renderer=args.renderer)
    console.print(f"twin: {config.robot} + {config.tool}, renderer {twin.renderer}; policy {policy_name}; "
                  f"{len(specs)} task(s) x {args.trials} trial(s) -> {args.out}")
    by_name = {s.name: s for s in specs}

    def run_trial(task: str, trial: int, seed: int, on_step=None):
        t0 = time.monotonic()
        try:
            result = twin.run_trial(by_name[task], seed, policy, on_step=on_step, max_steps=args.max_steps)
        except Sim2RealError as e:  # a failure of this trial (e.g. its scene cannot be set up), not of the campaign
            reason = ("planning_failed" if isinstance(e, PlanningError) else "safety_stop" if isinstance(e, SafetyError)
                      else "camera_lost" if isinstance(e, HardwareError) else "setup_failed")
            result = EpisodeResult(False, 0, reason, 0.0, {"error": f"{type(e).__name__}: {e}"})
        mark = "[green]success[/]" if result.success else "[red]failure[/]"
        console.print(f"{task} #{trial + 1} (seed {seed}): {mark} in {result.steps} step(s), reason {result.reason}, "
                      f"reward {result.reward if result.reward is None else round(result.reward, 3)} "
                      f"[{time.monotonic() - t0:.1f} s]")
        return result

    provenance = collect_provenance(
        checkpoint=None if policy == "oracle" else args.policy,
        checkpoint_sha256=None if policy == "oracle" else getattr(policy, "checkpoint_sha256", None),
        calibration=args.calibration or config.calibrated or config.calibration, camera_config=config.camera_config,
        robot_config=args.robot_config or (Path(__file__).resolve().parents[2] / "config" / "robots" / "sim.yaml"),
        operator="auto", extra={"twin": {"robot": config.robot, "tool": config.tool, "renderer": twin.renderer}})
    log = TrialLog(args.out)
    try:
        summary = run_campaign(campaign, log, run_trial, AutoOperator(), policy=policy_name, provenance=provenance,
                               progress=not args.no_progress, console=console,
                               meta={"twin": {"robot": config.robot, "tool": config.tool}})
    finally:
        log.close()
        twin.close()
    _print_summary(console, summary.records, campaign.tasks)
    report = _write_report(args.out, args.gallery)
    console.print(f"{len(summary.records)} trial(s) in {args.out}/trials.jsonl; report {report}; "
                  f"{time.monotonic() - t_start:.1f} s")
    return 0


def _print_summary(console, records: list, tasks) -> None:
    from collections import Counter

    from rich.table import Table

    table = Table(title="twin results per task")
    for col in ("task", "trials", "success", "rate", "mean steps", "end reasons"):
        table.add_column(col, justify="left" if col in ("task", "end reasons") else "right")
    total_s = total_n = 0
    for task in tasks:
        recs = [r for r in records if r["task"] == task]
        if not recs:
            continue
        s = sum(bool(r["success"]) for r in recs)
        total_s, total_n = total_s + s, total_n + len(recs)
        reasons = Counter(r["reason"] for r in recs)
        table.add_row(task, str(len(recs)), str(s), f"{100 * s / len(recs):.0f}%",
                      f"{sum(r['steps'] for r in recs) / len(recs):.1f}",
                      ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    if total_n:
        table.add_row("[bold]all[/]", str(total_n), str(total_s), f"{100 * total_s / total_n:.0f}%", "", "")
    console.print(table)


def _write_report(out, gallery: bool) -> Path:
    import warnings

    from sim2real.trials.report import write_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report([out], out, gallery=gallery, plots=True, progress=False)
    return Path(out) / "report.md"
