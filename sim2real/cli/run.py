"""``sim2real run``: whole trials on the digital twin or a robot, logged and reported the same way.

    sim2real run --task "build wheel" --robot sim --policy oracle --trials 10 --out runs/wheel
    sim2real run --campaign config/campaign.yaml --policy ckpt.pt --out runs/gensim --trials 3
    sim2real run --task stack-block --robot ur5 --camera realsense --calibration calibration/ur5.yaml \
        --policy ckpt.pt --out runs/ur5
    sim2real run --task stack-block --robot dry-run --camera playback rec.db3 --calibration cal.yaml \
        --policy ckpt.pt --out runs/dry

Each trial: reset (the twin from the trial's seed; a person on a robot) -> capture -> heightmap ->
policy -> safety -> motion -> success check or operator label -> record, repeated until the task
is done or its step budget is spent. Trials go through the campaign loop and crash-safe log
(DIR/trials.jsonl, one JSON object per trial; per-step artefacts under DIR), and DIR/report.md is
written at the end. Re-running the same command with the same --out resumes.

Robots: ``sim`` (the PyBullet twin; its success check labels, operator ``auto``), ``dry-run``
(records every command, never moves; camera ``twin`` or a recording), and ``ur5|xarm6|xarm7`` or a
robot YAML (MoveIt 2 through moveit_py; needs a sourced ROS 2, else use
``ros2 launch sim2real deploy.launch.py``). Off the twin the CLI operator asks for resets and labels.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

ROBOT_HELP = ("'sim' (the PyBullet twin, default), 'dry-run' (records commands, never moves), or a real arm: "
              "ur5 | xarm6 | xarm7 | a robot config YAML (MoveIt 2 via moveit_py; needs a sourced ROS 2)")


def register(sub) -> None:
    p = sub.add_parser("run", help="run seeded trials on the digital twin or a robot (one task or a campaign)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--task", help='task name or alias ("build wheel"), a comma list, or "all" for the 9 real-world '
                                  "tasks; overrides the campaign's task list")
    p.add_argument("--campaign", metavar="YAML",
                   help="campaign protocol (config/campaign.yaml); --task/--trials/--order/--seed/--max-steps override it")
    p.add_argument("--robot", default="sim", help=ROBOT_HELP)
    p.add_argument("--camera", nargs="+", metavar=("KIND", "FILE"),
                   help="twin (default for sim / dry-run) | realsense (default for a real arm) | playback FILE.db3")
    p.add_argument("--serial", help="RealSense serial number (when several cameras are connected)")
    p.add_argument("--operator", choices=["auto", "cli"],
                   help="auto: the twin's success check labels (default on the twin); cli: a person is asked to "
                        "reset each scene and label each trial (default off the twin)")
    p.add_argument("--operator-name", default="operator", help="the CLI operator's name, recorded with each label")
    p.add_argument("--goal", help="language instruction for a robot trial whose task template names scene colours "
                                  "(else the CLI operator is asked per trial)")
    p.add_argument("--policy", default="oracle", help="'oracle' (twin ground truth) or a checkpoint path")
    p.add_argument("--trials", type=int, help="trials per task (default 10, or the campaign's)")
    p.add_argument("--out", required=True, metavar="DIR", help="campaign directory (resumed if it exists)")
    p.add_argument("--seed", type=int, help="base seed: trial k of each task uses seed + k (default 0)")
    p.add_argument("--gui", action="store_true", help="show the PyBullet window (needs a display)")
    p.add_argument("--arm", choices=["ur5", "xarm6"], help="twin arm (default: config/robots/sim.yaml)")
    p.add_argument("--tool", choices=["suction", "gripper"], help="twin end effector (default: config)")
    p.add_argument("--robot-config", metavar="YAML",
                   help="twin config for --robot sim (default config/robots/sim.yaml); for --robot dry-run, the robot "
                        "(ur5|xarm6|xarm7|YAML) whose safety envelope, motion and tool the dry run uses")
    p.add_argument("--calibration", metavar="YAML",
                   help="calibration YAML from `sim2real calibrate`: frames are projected with it (the twin still "
                        "renders from its ground truth; default camera.calibrated in config/robots/sim.yaml). "
                        "Required with a realsense or playback camera")
    p.add_argument("--camera-config", metavar="YAML",
                   help="twin camera intrinsics and depth noise (default config/cameras/twin.yaml), or the RealSense "
                        "stream config (default config/cameras/realsense.yaml)")
    p.add_argument("--order", choices=["blocked", "randomised"], help="trial order (default blocked)")
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


# ----------------------------------------------------------------------------------------------
# arguments -> campaign, camera kind, operator
# ----------------------------------------------------------------------------------------------

def build_campaign(args, tasks: dict):
    """The Campaign of this run: --campaign YAML with the flags as overrides, else the flags alone.

    Task names in either place may be aliases; they are resolved to the canonical names.
    """
    from sim2real.errors import InputError
    from sim2real.tasks import resolve_many
    from sim2real.trials.campaign import Campaign

    task_names = [s.name for s in resolve_many(args.task, tasks)] if args.task else None
    overrides = {"tasks": task_names, "trials": args.trials, "order": args.order, "seed": args.seed,
                 "max_steps": args.max_steps}
    if args.campaign:
        if not Path(args.campaign).is_file():
            raise InputError(f"--campaign {args.campaign}: no such file; see config/campaign.yaml for the format")
        campaign = Campaign.from_yaml(args.campaign, overrides)
        names = [s.name for s in resolve_many(",".join(campaign.tasks), tasks)]
        if names != list(campaign.tasks):
            campaign = campaign.with_overrides({"tasks": names})
        return campaign
    if not task_names:
        raise InputError("say what to run: --task NAME (or all), or --campaign config/campaign.yaml")
    campaign = Campaign(tasks=tuple(task_names), name="run", trials=10 if args.trials is None else args.trials,
                        order=args.order or "blocked", seed=0 if args.seed is None else args.seed,
                        max_steps=args.max_steps)
    campaign.validate("sim2real run")
    return campaign


def camera_choice(args) -> tuple:
    """(kind, file): ('twin'|'realsense'|'playback', path or None), defaulted from --robot and validated."""
    from sim2real.errors import InputError

    words = list(args.camera or [])
    if not words:
        return ("twin", None) if args.robot in ("sim", "dry-run") else ("realsense", None)
    kind = words[0]
    if kind == "playback":
        if len(words) != 2:
            raise InputError("--camera playback needs the recording: --camera playback FILE.db3")
        return "playback", words[1]
    if kind in ("twin", "realsense") and len(words) == 1:
        return kind, None
    raise InputError(f"--camera {' '.join(words)!r}: use twin, realsense or playback FILE.db3")


def make_operator(args, interactive_default: bool):
    from sim2real.errors import InputError
    from sim2real.trials.operator import AutoOperator, CLIOperator

    choice = args.operator or ("cli" if interactive_default else "auto")
    if choice == "auto":
        if args.robot != "sim":
            raise InputError(f"--operator auto needs the twin's success check (--robot sim); with --robot {args.robot} "
                             "a person labels the trials: use --operator cli")
        return AutoOperator()
    return CLIOperator(name=args.operator_name)


def _check_args(args) -> None:
    from sim2real.errors import InputError

    if args.trials is not None and args.trials < 1:
        raise InputError(f"--trials must be >= 1, got {args.trials}")
    if args.max_steps is not None and args.max_steps < 1:
        raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------

def run(args) -> int:
    from rich.console import Console

    from sim2real.errors import InputError
    from sim2real.tasks import load_all

    console = Console(stderr=True)
    _check_args(args)
    kind, camera_file = camera_choice(args)
    if args.robot == "sim" and kind != "twin":
        raise InputError(f"--robot sim sees the twin scene; drop --camera {kind} (a recording or a RealSense needs "
                         "--robot dry-run or a real arm)")
    if args.robot not in ("sim", "dry-run") and kind == "twin":
        raise InputError(f"--camera twin renders the twin scene, which a real arm ({args.robot}) is not in; "
                         "use --camera realsense or --camera playback FILE")
    operator = make_operator(args, interactive_default=args.robot != "sim")
    tasks = load_all()
    campaign = build_campaign(args, tasks)
    specs = {name: tasks[name] for name in campaign.tasks}
    if args.robot == "sim":
        return _run_twin(args, console, campaign, specs, operator)
    return _run_robot(args, console, campaign, specs, operator, kind, camera_file)


def _policy(args):
    policy = load_policy(args.policy, args.device)
    name = "oracle" if policy == "oracle" else getattr(policy, "name", Path(args.policy).stem)
    return policy, name


def _twin_config(args):
    from dataclasses import replace

    from sim2real.twin import load_twin_config

    config = load_twin_config(args.robot_config if args.robot == "sim" else None, args.arm, args.tool)
    if args.camera_config and args.robot in ("sim", "dry-run"):
        config = replace(config, camera_config=Path(args.camera_config))
    return config


def _run_twin(args, console, campaign, specs, operator) -> int:
    from sim2real.errors import HardwareError, PlanningError, SafetyError, Sim2RealError
    from sim2real.episode import EpisodeResult
    from sim2real.trials.provenance import collect_provenance
    from sim2real.twin import Twin

    policy, policy_name = _policy(args)
    config = _twin_config(args)
    t_start = time.monotonic()
    twin = Twin(config, gui=args.gui, calibration=args.calibration, renderer=args.renderer)
    console.print(f"twin: {config.robot} + {config.tool}, renderer {twin.renderer}; policy {policy_name}; "
                  f"{len(specs)} task(s) x {campaign.trials} trial(s) -> {args.out}")

    def run_trial(task: str, trial: int, seed: int, on_step=None):
        t0 = time.monotonic()
        try:
            result = twin.run_trial(specs[task], seed, policy, on_step=on_step, max_steps=campaign.max_steps)
        except Sim2RealError as e:  # a failure of this trial (e.g. its scene cannot be set up), not of the campaign
            reason = ("planning_failed" if isinstance(e, PlanningError) else "safety_stop" if isinstance(e, SafetyError)
                      else "camera_lost" if isinstance(e, HardwareError) else "setup_failed")
            result = EpisodeResult(False, 0, reason, 0.0, {"error": f"{type(e).__name__}: {e}"})
        _print_trial(console, task, trial, seed, result, t0)
        return result

    provenance = collect_provenance(
        checkpoint=None if policy == "oracle" else args.policy,
        checkpoint_sha256=None if policy == "oracle" else getattr(policy, "checkpoint_sha256", None),
        calibration=args.calibration or config.calibrated or config.calibration, camera_config=config.camera_config,
        robot_config=args.robot_config or (Path(__file__).resolve().parents[2] / "config" / "robots" / "sim.yaml"),
        operator=operator.name, extra={"twin": {"robot": config.robot, "tool": config.tool, "renderer": twin.renderer}})
    try:
        summary = _campaign(args, console, campaign, run_trial, operator, policy_name, provenance,
                            {"twin": {"robot": config.robot, "tool": config.tool}})
    finally:
        twin.close()
    return _finish(args, console, campaign, summary, t_start)


def _print_trial(console, task, trial, seed, result, t0) -> None:
    mark = {True: "[green]success[/]", False: "[red]failure[/]", None: "[yellow]to label[/]"}[
        None if result.success is None else bool(result.success)]
    reward = "" if result.reward is None else f", reward {round(result.reward, 3)}"
    console.print(f"{task} #{trial + 1} (seed {seed}): {mark} in {result.steps} step(s), reason {result.reason}"
                  f"{reward} [{time.monotonic() - t0:.1f} s]")


def _campaign(args, console, campaign, run_trial, operator, policy_name, provenance, meta):
    from sim2real.trials.campaign import run_campaign
    from sim2real.trials.log import TrialLog

    log = TrialLog(args.out)
    try:
        return run_campaign(campaign, log, run_trial, operator, policy=policy_name, provenance=provenance,
                            progress=not args.no_progress, console=console, meta=meta)
    finally:
        log.close()


def _finish(args, console, campaign, summary, t_start) -> int:
    _print_summary(console, summary.records, campaign.tasks)
    report = _write_report(args.out, args.gallery)
    stopped = " (stopped by the operator; re-run the same command to resume)" if summary.stopped else ""
    console.print(f"{len(summary.records)} trial(s) in {args.out}/trials.jsonl; report {report}; "
                  f"{time.monotonic() - t_start:.1f} s{stopped}")
    return 0


# ----------------------------------------------------------------------------------------------
# robots off the twin: dry-run and MoveIt arms
# ----------------------------------------------------------------------------------------------

class _Goals:
    """The language goal of each task on a robot: --goal, the task's template when it names no scene
    colour, else asked from the CLI operator per trial."""

    def __init__(self, args, specs, operator):
        self.given, self.specs, self.operator = args.goal, specs, operator
        self.fixed = {}
        for name, spec in specs.items():
            if args.goal:
                self.fixed[name] = args.goal
            elif not re.search(r"\{[^}]*\}", spec.language):
                self.fixed[name] = spec.language
        missing = [n for n in specs if n not in self.fixed]
        if missing and not hasattr(operator, "ask"):
            from sim2real.errors import InputError

            raise InputError(f"the goal of {missing} depends on the scene's colours ({specs[missing[0]].language!r}); "
                             "pass --goal \"...\" or use --operator cli to type it per trial")

    def __call__(self, task: str) -> str:
        if task in self.fixed:
            return self.fixed[task]
        template = self.specs[task].language
        while True:
            text = self.operator.ask(f"Instruction for {task} (template: {template})").strip()
            if text and not re.search(r"\{[^}]*\}", text):
                return text
            self.operator.console.print("[red]type the instruction for the scene, with its colours filled in[/]")


def _budget(campaign, spec) -> int:
    from sim2real.errors import InputError

    if campaign.max_steps is not None:
        return campaign.max_steps
    if isinstance(spec.max_steps, int) and not isinstance(spec.max_steps, bool):
        return spec.max_steps
    raise InputError(f"task {spec.name}'s step budget depends on its objects ({spec.max_steps}); pass --max-steps N")


def _robot_setup(args, T_base_workspace):
    """(robot port in the workspace frame, close(), RobotConfig or None, robot config path or None)."""
    from sim2real.robot import DryRunRobot
    from sim2real.robot_config import load_robot_config, resolve_robot_path
    from sim2real.ros.moveit_robot import FrameRobot

    if args.robot == "dry-run":
        cfg = load_robot_config(args.robot_config) if args.robot_config else None
        path = resolve_robot_path(args.robot_config) if args.robot_config else None
        tool = "gripper" if cfg is not None and cfg.gripper.type == "parallel" else "suction"
        dry = DryRunRobot(tool=tool)
        return FrameRobot(dry, T_base_workspace), (lambda: None), cfg, path
    from sim2real.ros.moveit_robot import connect_moveit_robot

    cfg = load_robot_config(args.robot)
    robot, close = connect_moveit_robot(cfg, T_base_workspace)
    return robot, close, cfg, resolve_robot_path(args.robot)


def _open_camera(args, kind, camera_file, T_workspace_camera):
    from sim2real.realsense import PlaybackCamera, RealSenseCamera, load_realsense_config

    if kind == "playback":
        return PlaybackCamera(camera_file, T_base_camera=T_workspace_camera)
    cfg = load_realsense_config(args.camera_config, serial=args.serial)
    return RealSenseCamera(cfg, T_base_camera=T_workspace_camera).connect()


def _run_robot(args, console, campaign, specs, operator, kind, camera_file) -> int:
    """A dry run or a real arm: CLI operator, success labelled by a person."""
    from sim2real.errors import InputError
    from sim2real.episode import run_episode
    from sim2real.motion import MotionConfig
    from sim2real.safety import SafetyEnvelope
    from sim2real.trials.provenance import collect_provenance
    from sim2real.workspace import GENSIM_WORKSPACE

    t_start = time.monotonic()
    twin = cal = None
    if kind != "twin":
        if not args.calibration:
            raise InputError(f"--camera {kind} needs --calibration calibration/<name>.yaml (from `sim2real calibrate "
                             "handeye`): without it the frames cannot be projected into the workspace")
        from sim2real.calibration.storage import load_calibration

        cal = load_calibration(args.calibration)
    if args.policy == "oracle" and kind != "twin":
        raise InputError("--policy oracle reads the twin's ground truth; off the twin pass a checkpoint "
                         "(--policy CKPT), or use --camera twin for a dry run")
    workspace = (cal.workspace or GENSIM_WORKSPACE) if cal is not None else GENSIM_WORKSPACE
    T_base_workspace = cal.T_base_workspace if cal is not None else None
    goals = _Goals(args, specs, operator) if kind != "twin" else None
    budgets = {name: _budget(campaign, spec) for name, spec in specs.items()} if kind != "twin" else {}
    robot, close_robot, cfg, robot_path = _robot_setup(args, T_base_workspace)  # fails fast without ROS
    camera = None
    try:
        policy, policy_name = _policy(args)
        if kind == "twin":
            from sim2real.twin import Twin

            twin = Twin(_twin_config(args), gui=args.gui, calibration=args.calibration, renderer=args.renderer)
            camera, workspace = twin.camera, twin.workspace
        else:
            camera = _open_camera(args, kind, camera_file, cal.T_workspace_camera())
        envelope = (cfg.safety_envelope(workspace) if cfg is not None else SafetyEnvelope().with_workspace(workspace)).in_frame(T_base_workspace)
        motion = cfg.motion_config() if cfg is not None else MotionConfig()
        reachable = getattr(robot, "reachable", None)
        console.print(f"robot {args.robot}, camera {kind}{' ' + camera_file if camera_file else ''}, policy "
                      f"{policy_name}, operator {operator.name}; {len(specs)} task(s) x {campaign.trials} trial(s) "
                      f"-> {args.out}")

        def run_trial(task: str, trial: int, seed: int, on_step=None):
            t0 = time.monotonic()
            if twin is not None:  # dry run in the twin scene: the scene is set from the seed, the arm never moves
                from sim2real.oracle import OraclePolicy

                inst = twin.start_trial(specs[task], seed)
                pol = OraclePolicy(inst) if policy == "oracle" else policy
                goal_task, budget = inst, campaign.max_steps or inst.max_steps
                step_cb = None if on_step is None else (lambda rec: (twin.annotate_step(rec), on_step(rec)))
            else:
                pol, goal_task, budget, step_cb = policy, goals(task), budgets[task], on_step
            try:
                result = run_episode(camera, pol, robot, goal_task, workspace=workspace, envelope=envelope,
                                     max_steps=budget, motion=motion, success_check=None, on_step=step_cb,
                                     reachable=reachable)
            finally:
                robot.stop()
            result.info["goal"] = goal_task if isinstance(goal_task, str) else goal_task.lang_goal()
            _print_trial(console, task, trial, seed, result, t0)
            return result

        provenance = collect_provenance(
            checkpoint=None if policy == "oracle" else args.policy,
            checkpoint_sha256=None if policy == "oracle" else getattr(policy, "checkpoint_sha256", None),
            calibration=args.calibration or (twin.config.calibrated if twin is not None else None),
            robot_config=robot_path,
            camera_config=camera_file if kind == "playback" else (args.camera_config if kind != "twin" else None),
            operator=operator.name, extra={"robot": args.robot, "camera": kind})
        summary = _campaign(args, console, campaign, run_trial, operator, policy_name, provenance,
                            {"robot": args.robot, "camera": kind})
    finally:
        try:
            robot.stop()
        finally:
            if camera is not None and twin is None:
                camera.close()
            if twin is not None:
                twin.close()
            close_robot()
    return _finish(args, console, campaign, summary, t_start)


def _print_summary(console, records: list, tasks) -> None:
    from collections import Counter

    from rich.table import Table

    table = Table(title="results per task")
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
