"""``sim2real console``: a web page to watch the robot's view, collect demonstrations by clicking,
label trials and stop the arm.

    sim2real console --robot sim --task put-block-in-bowl --demos-out data/put-block-in-bowl-train
    sim2real console --robot sim --task stack-block --campaign config/campaign.yaml --out runs/console
    sim2real console --robot ur5 --task stack-block --calibration calibration/ur5.yaml --demos-out DIR
    sim2real console --robot sim --task stack-block --host 0.0.0.0 --token-file ~/.sim2real-token

Open the printed address in a browser. Bound to 127.0.0.1 by default; any other --host requires a
token (printed at start, or read from --token-file) on every request. See docs/console.md.
"""
from __future__ import annotations

import time
from pathlib import Path

ROBOTS_HELP = ("'sim' (the PyBullet twin, default), 'dry-run' (twin camera, records commands, never moves), or a "
               "real arm: ur5 | xarm6 | xarm7 | a robot config YAML (MoveIt 2 via moveit_py; needs a sourced ROS 2)")


def register(sub) -> None:
    from sim2real.cli.policy_args import add_policy_args

    p = sub.add_parser("console", help="web console: live view, demonstrations by clicking, trial labels, stop",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--robot", default="sim", help=ROBOTS_HELP)
    p.add_argument("--task", required=True, help="task name or alias (its goal templates are offered on the page)")
    p.add_argument("--demos-out", metavar="DIR",
                   help="demonstration dataset folder (the `sim2real demos` layout, --view camera); episodes are "
                        "appended. Without it the page can still plan and move, but saves nothing")
    p.add_argument("--campaign", metavar="YAML", help="run this campaign protocol with the console as the operator "
                                                      "(reset prompts and labels on the page); needs --out")
    p.add_argument("--out", metavar="DIR", help="campaign directory (trials.jsonl, resumed if it exists)")
    p.add_argument("--trials", type=int, help="trials per task of the campaign (default: the campaign's)")
    p.add_argument("--policy", help="'oracle' (twin only) or a checkpoint: suggests steps on the page (affordances "
                                    "drawn) and runs the campaign's trials")
    add_policy_args(p)  # --device, --batchnorm, --clip-precision, ... as act, run and replay
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    p.add_argument("--token-file", metavar="FILE", help="read the access token from FILE (else one is printed)")
    p.add_argument("--require-token", action="store_true", help="require the token even on 127.0.0.1")
    p.add_argument("--seed", type=int, default=0, help="first scene seed on the twin (file names use it)")
    p.add_argument("--camera", nargs="+", metavar=("KIND", "FILE"),
                   help="twin (default for sim / dry-run) | realsense (default for a real arm) | playback FILE.db3")
    p.add_argument("--serial", help="RealSense serial number")
    p.add_argument("--calibration", metavar="YAML", help="calibration from `sim2real calibrate` (required off the twin)")
    p.add_argument("--camera-config", metavar="YAML", help="camera config (see `sim2real run --help`)")
    p.add_argument("--robot-config", metavar="YAML", help="twin config (sim) or the dry run's robot config")
    p.add_argument("--arm", choices=["ur5", "xarm6"], help="twin arm (default: config/robots/sim.yaml)")
    p.add_argument("--tool", choices=["suction", "gripper"], help="twin end effector")
    p.add_argument("--renderer", choices=["egl", "tiny"], help="force a twin renderer")
    p.add_argument("--frame-period", type=float, default=0.5, help="live view refresh while idle, seconds")
    p.add_argument("--operator-name", default="console", help="recorded with each label")
    p.add_argument("--gui", action="store_true", help="show the PyBullet window (needs a display)")
    p.set_defaults(func=run)


def resolve_token(args):
    """(token or None, printable note). A token is required off 127.0.0.1 or with --require-token."""
    from sim2real.console.access import needs_token, new_token, read_token_file

    if not (needs_token(args.host) or args.require_token or args.token_file):
        return None, "bound to 127.0.0.1: no token needed"
    if args.token_file:
        return read_token_file(args.token_file), f"token from {args.token_file}"
    token = new_token()
    return token, f"token: {token}"


def build_station(args, spec):
    """A Station for ``args.robot`` (not started): the twin, a dry run on the twin's camera, or a real arm.

    Arguments are checked here, before anything slow; the hardware itself is connected by the
    station's hardware thread (:class:`~sim2real.console.station.Rig`).
    """
    from sim2real.cli.run import _policy, camera_choice
    from sim2real.console.station import Station
    from sim2real.errors import InputError

    kind, camera_file = camera_choice(args)
    if args.robot == "sim" and kind != "twin":
        raise InputError(f"--robot sim sees the twin scene; drop --camera {kind}")
    if args.robot not in ("sim", "dry-run") and kind == "twin":
        raise InputError(f"--camera twin renders the twin scene, which a real arm ({args.robot}) is not in; "
                         "use --camera realsense or --camera playback FILE")
    if kind != "twin" and not args.calibration:
        raise InputError(f"--camera {kind} needs --calibration calibration/<name>.yaml (from `sim2real calibrate`)")
    policy = None
    if args.policy:
        if args.policy == "oracle" and args.robot != "sim":
            raise InputError("--policy oracle reads the twin's ground truth; use it with --robot sim")
        policy, _ = _policy(args)
    return Station(lambda: connect_rig(args, spec, kind, camera_file), robot_kind=args.robot,
                   frame_period_s=args.frame_period, task=spec,
                   demos_out=Path(args.demos_out) if args.demos_out else None, policy=policy, seed=args.seed)


def connect_rig(args, spec, kind: str, camera_file):
    """The Rig of ``args.robot`` (runs on the station's hardware thread)."""
    from sim2real.cli.run import _open_camera, _robot_setup, _twin_config
    from sim2real.console.station import Rig
    from sim2real.motion import MotionConfig
    from sim2real.safety import SafetyEnvelope
    from sim2real.workspace import GENSIM_WORKSPACE

    if args.robot == "sim":
        from sim2real.twin import Twin

        twin = Twin(_twin_config(args), gui=args.gui, calibration=args.calibration, renderer=args.renderer)
        return Rig(twin.camera, twin.robot, twin.workspace, twin.envelope, twin.config.motion, twin.reachable, twin,
                   twin.close)
    cal = None
    if kind != "twin":
        from sim2real.calibration.storage import load_calibration

        cal = load_calibration(args.calibration)
    workspace = (cal.workspace or GENSIM_WORKSPACE) if cal is not None else GENSIM_WORKSPACE
    robot, close_robot, cfg, _ = _robot_setup(args, cal.T_base_workspace if cal is not None else None, workspace)
    twin = None
    try:
        if kind == "twin":  # dry run: the twin's scene and camera, a robot that never moves
            from sim2real.twin import Twin

            twin = Twin(_twin_config(args), gui=args.gui, calibration=args.calibration, renderer=args.renderer)
            camera, workspace = twin.camera, twin.workspace
            twin.start_trial(spec, args.seed)
        else:
            camera = _open_camera(args, kind, camera_file, cal.T_workspace_camera())
        envelope = cfg.safety_envelope(workspace) if cfg is not None else SafetyEnvelope().with_workspace(workspace)
        motion = cfg.motion_config() if cfg is not None else MotionConfig()
    except BaseException:
        close_robot()
        if twin is not None:
            twin.close()
        raise

    def close():
        try:
            robot.stop()
        finally:
            try:
                (twin.close if twin is not None else camera.close)()
            finally:
                close_robot()
    return Rig(camera, robot, workspace, envelope, motion, getattr(robot, "reachable", None), None, close)


def run(args) -> int:
    from rich.console import Console

    from sim2real.console.app import create_app
    from sim2real.console.server import ConsoleServer
    from sim2real.errors import InputError
    from sim2real.tasks import resolve

    console = Console(stderr=True)
    if args.campaign and not args.out:
        raise InputError("--campaign needs --out DIR (the campaign directory, resumed if it exists)")
    if args.frame_period <= 0:
        raise InputError(f"--frame-period must be > 0 s, got {args.frame_period}")
    token, token_note = resolve_token(args)
    spec = resolve(args.task)
    station = build_station(args, spec)
    runner = None
    server = None
    try:
        station.start()
        if args.campaign or args.out:
            from sim2real.console.campaign_runner import CampaignRunner

            runner = CampaignRunner.from_args(args, station, spec).start()
        server = ConsoleServer(create_app(station, token=token), args.host, args.port).start()
        url = server.url + (f"?token={token}" if token else "")
        console.print(f"[bold]sim2real console[/] on [link={url}]{url}[/] ({token_note}); robot {args.robot}, task "
                      f"{spec.name}" + (f", demos -> {args.demos_out}" if args.demos_out else "") +
                      (f", campaign -> {args.out}" if runner else "") + ". Ctrl-C to quit.")
        while runner is None or runner.alive():
            time.sleep(0.5)
        console.print("campaign finished; the console keeps serving (Ctrl-C to quit)")
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping the console")
        return 0
    finally:
        try:
            station.stop()
        finally:
            if runner is not None:
                runner.stop()
            if server is not None:
                server.stop()
            station.close()
