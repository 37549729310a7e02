"""``sim2real calibrate board|handeye|table|check``: from a camera on a tripod to a trusted heightmap.

    board    write the ChArUco board as a true-scale PDF + PNG to print
    handeye  move the robot (twin `sim`, `synthetic`, or a MoveIt robot) through poses, or free-drive,
             and solve T_base_camera (all five OpenCV methods, choose by consistency, refine, outliers)
    table    fit the table plane (RANSAC on depth) and save the workspace frame into the calibration
    check    heightmap of the current scene with the bounds grid, statistics against the simulator's
             normalisation constants, and an optional touch test (--touch N)
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from sim2real.errors import CalibrationError, InputError

ROBOTS_HELP = "sim (PyBullet twin), synthetic (exact pinhole rig, no simulator), or a robot config name/path (MoveIt)"


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="ChArUco board, hand-eye, table/workspace and checks",
                       description=__doc__.splitlines()[0])
    cmds = p.add_subparsers(dest="calib_command", required=True, metavar="STEP")

    b = cmds.add_parser("board", help="write a printable true-scale ChArUco board (PDF + PNG)")
    b.add_argument("--board", metavar="YAML", help="board config (default config/calibration/board.yaml)")
    b.add_argument("--out", default="calibration/board", metavar="STEM", help="output stem (default calibration/board)")
    b.add_argument("--dpi", type=int, default=300)
    b.add_argument("--paper", default="auto", help="auto (smallest A-size that fits), fit, A4, A3, A2, Letter")
    b.set_defaults(func=run_board)

    h = cmds.add_parser("handeye", help="hand-eye calibration -> calibration/<name>.yaml")
    _robot_args(h)
    h.add_argument("--mode", default="eye_to_hand", choices=("eye_to_hand", "eye_in_hand"))
    h.add_argument("--poses", type=int, default=16, metavar="N", help="generated poses (default 16)")
    h.add_argument("--freedrive", action="store_true", help="move the arm by hand, Enter takes a sample")
    h.add_argument("--center", metavar="X,Y,Z", help="where the board should be on average (base frame, m)")
    h.add_argument("--look-from", metavar="X,Y,Z", help="rough camera position (base frame, m), to aim the board")
    h.add_argument("--bracket", metavar="X,Y,Z", default="0.20,0,0.02",
                   help="board centre in the tool frame (m), board face up when the tool points down; used to aim "
                        "generated poses and to build the twin's bracket (default 0.20,0,0.02)")
    h.add_argument("--methods", default="TSAI,PARK,HORAUD,ANDREFF,DANIILIDIS", help="OpenCV methods to try")
    h.add_argument("--no-refine", action="store_true", help="skip the joint reprojection refinement")
    h.add_argument("--samples-out", metavar="FILE.json", help="save the samples (re-solve later with --from-samples)")
    h.add_argument("--from-samples", metavar="FILE.json", help="solve from saved samples instead of moving the robot")
    h.add_argument("--speed", type=float, default=0.2, help="tool speed in m/s (default 0.2)")
    h.add_argument("--view-pose", metavar="X,Y,Z,QX,QY,QZ,QW", help="eye-in-hand: the capture pose of the tool")
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--no-progress", action="store_true")
    h.set_defaults(func=run_handeye)

    t = cmds.add_parser("table", help="fit the table plane and save the workspace frame into the calibration")
    _robot_args(t, need_robot=False)
    t.add_argument("--calibration", required=True, metavar="FILE", help="calibration YAML to update")
    t.add_argument("--offset", default="0,0", metavar="DX,DY", help="shift of the workspace origin on the table (m)")
    t.add_argument("--yaw-deg", type=float, default=0.0, help="rotation of the workspace about the table normal")
    t.add_argument("--reach", type=float, metavar="M", help="robot reach (m) for the coverage warning")
    t.add_argument("--inlier-mm", type=float, default=4.0, help="RANSAC inlier distance (mm)")
    t.add_argument("--png", metavar="FILE", help="check image (default next to the calibration: <name>_table.png)")
    t.set_defaults(func=run_table)

    c = cmds.add_parser("check", help="check image + heightmap statistics (+ touch test with --touch N)")
    _robot_args(c, need_robot=False)
    c.add_argument("--calibration", required=True, metavar="FILE")
    c.add_argument("--png", metavar="FILE", help="check image (default <name>_check.png next to the calibration)")
    c.add_argument("--touch", type=int, default=0, metavar="N", help="touch test on N board corners (board flat on the table)")
    c.add_argument("--hover-mm", type=float, default=5.0, help="touch test: height above the corners (mm)")
    c.add_argument("--not-empty", action="store_true", help="the table is not empty (skip the flat-table check)")
    c.set_defaults(func=run_check)


def _robot_args(p, need_robot: bool = True) -> None:
    p.add_argument("--robot", default="sim" if need_robot else None, help=ROBOTS_HELP)
    p.add_argument("--board", metavar="YAML", help="board config (default config/calibration/board.yaml)")
    p.add_argument("--name", help="calibration name (default twin_default for sim, else <robot>_<camera>)")
    p.add_argument("--out", metavar="FILE", help="calibration YAML to write (default calibration/<name>.yaml)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--serial", metavar="S", help="RealSense serial (real robot)")
    src.add_argument("--playback", metavar="FILE", help="RealSense .db3 recording (table/check only)")
    src.add_argument("--frame", metavar="FRAME.npz", help="a captured frame (table/check only)")
    p.add_argument("--twin-config", metavar="YAML", help="twin config (default config/robots/sim.yaml)")


def _xyz(text, name, n=3) -> np.ndarray:
    try:
        v = np.array([float(x) for x in str(text).split(",")])
    except ValueError:
        raise InputError(f"--{name} must be {n} comma-separated numbers in metres, got {text!r}") from None
    if v.shape != (n,):
        raise InputError(f"--{name} must be {n} comma-separated numbers, got {text!r}")
    return v


# ----------------------------------------------------------------------------------------------
# board
# ----------------------------------------------------------------------------------------------

def run_board(args) -> int:
    from sim2real.calibration.board import load_board, write_printable

    board = load_board(args.board)
    png, pdf = write_printable(board, args.out, dpi=args.dpi, paper=args.paper)
    w, h = board.size_m
    print(f"wrote {pdf} and {png}: {board.squares_x}x{board.squares_y} squares of {board.square_length_m * 1000:.1f} mm "
          f"({w * 1000:.0f} x {h * 1000:.0f} mm), markers {board.marker_length_m * 1000:.1f} mm, {board.dictionary}.")
    print("Print the PDF at 100 % (actual size, no 'fit to page'); the scale bar must measure 100 mm. Measure a "
          "square and put the measured length in the board YAML (square_length_m) if it differs.")
    return 0


# ----------------------------------------------------------------------------------------------
# rigs: what the robot, camera and ground truth are for each --robot
# ----------------------------------------------------------------------------------------------

class Rig:
    """Robot port + camera port (+ ground truth for twin/synthetic) for one --robot choice."""

    def __init__(self, robot, camera, intrinsics, robot_id, camera_id, truth=None, twin=None, board_body=None,
                 reach=None, closer=None):
        self.robot, self.camera, self.intrinsics = robot, camera, intrinsics
        self.robot_id, self.camera_id = robot_id, camera_id
        self.truth, self.twin, self.board_body, self.reach = truth, twin, board_body, reach
        self._closer = closer

    def close(self) -> None:
        if self._closer is not None:
            self._closer()


def _open_rig(args, board, mode: str = "eye_to_hand", board_on_tool: bool = True) -> Rig:
    robot = args.robot or "sim"
    if robot == "sim":
        return _twin_rig(args, board, mode, board_on_tool)
    if robot == "synthetic":
        return _synthetic_rig(args, board, mode, board_on_tool)
    return _real_rig(args, robot)


def _twin_rig(args, board, mode, board_on_tool) -> Rig:
    import dataclasses

    from sim2real.calibration.twin_rig import BoardCarryingRobot, TwinBoard, bracket
    from sim2real.twin import Twin, load_twin_config

    if mode != "eye_to_hand":
        raise InputError("the twin's camera is fixed (eye-to-hand); use --mode eye_to_hand with --robot sim")
    config = load_twin_config(args.twin_config)
    if "calibrated" in {f.name for f in dataclasses.fields(config)}:
        # calibrating must not depend on an earlier calibration: frames carry the true pose here
        config = dataclasses.replace(config, calibrated=None)
    twin = Twin(config)
    truth = np.asarray(twin.camera.view.T_base_camera, float)
    tb, robot = None, twin.robot
    if board_on_tool:
        tb = TwinBoard.create(twin.scene, board, T_tool_board=bracket(board, _xyz(args.bracket, "bracket")))
        robot = BoardCarryingRobot(twin.robot, tb)
    return Rig(robot, twin.camera, twin.camera.view.intrinsics, f"twin_{twin.config.robot}", "twin_camera",
               truth=truth, twin=twin, board_body=tb, reach=twin.config.reach_m, closer=twin.close)


def _synthetic_rig(args, board, mode, board_on_tool) -> Rig:
    from sim2real.calibration.synthetic import SyntheticRig
    from sim2real.calibration.twin_rig import bracket

    rig = SyntheticRig(board, mode="eye_to_hand", seed=args.seed if hasattr(args, "seed") else 0,
                       T_flange_board=bracket(board, _xyz(getattr(args, "bracket", "0.2,0,0.02"), "bracket")))
    if not board_on_tool:
        rig.show_board = False
    return Rig(rig, rig, rig.intrinsics, "synthetic_arm", "synthetic_camera", truth=rig.T_base_camera,
               reach=1.2)


def _real_rig(args, robot_name) -> Rig:
    """A MoveIt arm + RealSense for calibration on the real robot.

    The arm starts the way ``sim2real run`` starts it (:func:`sim2real.ros.moveit_robot.connect_moveit_robot`:
    an rclpy node, MoveItPy with ``moveit_params(config)``, the parameters the executor's launch
    file writes, and the configured gripper), and sits behind the calibration guard: every target
    checked against the envelope (the calibration's for ``check --touch``, the provisional one for
    ``handeye``), every planned trajectory checked against the same envelope at the calibration
    joint speed, moves slowed to CALIBRATION_SPEED_MPS and confirmed by the operator.
    """
    from sim2real.calibration.guard import CALIBRATION_SPEED_MPS, PROVISIONAL_ENVELOPE, GuardedRobot, console_confirm
    from sim2real.realsense import RealSenseCamera, load_realsense_config
    from sim2real.robot_config import load_robot_config
    from sim2real.ros.moveit_robot import connect_moveit_robot
    from sim2real.trajectory_check import CALIBRATION_JOINT_VELOCITY_RAD_S, MotionLimits

    config = load_robot_config(robot_name)
    envelope, T_base_workspace = PROVISIONAL_ENVELOPE, None
    if getattr(args, "calibration", None):
        from sim2real.calibration.storage import load_calibration
        from sim2real.workspace import GENSIM_WORKSPACE

        cal = load_calibration(args.calibration)
        T_base_workspace = cal.T_base_workspace
        envelope = config.safety_envelope(cal.workspace or GENSIM_WORKSPACE).in_frame(T_base_workspace)
    # measured on each planned trajectory: the commanded speed is capped at CALIBRATION_SPEED_MPS;
    # MoveIt's time parameterisation may run parts of a joint move faster, up to this ceiling
    limits = MotionLimits(max_joint_velocity=CALIBRATION_JOINT_VELOCITY_RAD_S, max_tcp_speed=3 * CALIBRATION_SPEED_MPS)
    arm, close_arm = connect_moveit_robot(config, None, node_name="sim2real_calibrate", envelope=envelope,
                                          limits=limits)
    try:
        # calibration poses are base-frame poses; the adapter checks trajectories in the envelope's frame
        arm.robot.adapter.set_envelope(envelope, T_base_workspace, limits)
        arm.robot.holds_nothing = True  # the board is bolted to the flange: tilting it drops nothing
        T_workspace_base = None if T_base_workspace is None else np.linalg.inv(np.asarray(T_base_workspace, float))
        robot = GuardedRobot(arm, envelope, T_workspace_base, confirm=console_confirm())
        camera = RealSenseCamera(load_realsense_config(serial=args.serial)).connect()
    except BaseException:
        close_arm()
        raise

    def close() -> None:
        try:
            camera.close()
        finally:
            close_arm()

    try:
        frame = camera.read()
    except BaseException:
        close()
        raise
    return Rig(robot, camera, frame.intrinsics, config.name, camera.serial or "realsense", closer=close)


# ----------------------------------------------------------------------------------------------
# handeye
# ----------------------------------------------------------------------------------------------

def _default_name(args, rig_robot_id=None) -> str:
    if args.name:
        return args.name
    if (args.robot or "sim") == "sim":
        return "twin_default"
    return f"{args.robot}_{'realsense' if not getattr(args, 'serial', None) else args.serial}"


def run_handeye(args) -> int:
    from sim2real.calibration.board import load_board
    from sim2real.calibration.collect import collect_freedrive, collect_generated
    from sim2real.calibration.handeye import solve_handeye

    board = load_board(args.board)
    methods = tuple(m.strip().upper() for m in args.methods.split(",") if m.strip())
    name = _default_name(args)
    out = Path(args.out) if args.out else Path("calibration") / f"{name}.yaml"
    rig = None
    try:
        if args.from_samples:
            samples, meta = _load_samples(args.from_samples)
            from sim2real.camera import CameraIntrinsics

            intrinsics = CameraIntrinsics(**meta["intrinsics"])
            robot_id, camera_id, truth = meta.get("robot_id", ""), meta.get("camera_id", ""), None
        else:
            rig = _open_rig(args, board, args.mode)
            intrinsics, robot_id, camera_id, truth = rig.intrinsics, rig.robot_id, rig.camera_id, rig.truth
            if args.freedrive:
                log = collect_freedrive(rig.robot, rig.camera, board, mode=args.mode, K=intrinsics.K)
            else:
                poses = _generate_poses(args, rig, board)
                print(f"hand-eye ({args.mode}): {len(poses)} generated poses, robot {robot_id}, camera {camera_id}")
                log = collect_generated(rig.robot, rig.camera, board, poses, mode=args.mode, speed=args.speed,
                                        settle_s=0.0 if args.robot in ("sim", "synthetic", None) else 0.5,
                                        K=intrinsics.K, progress=not args.no_progress)
            for k, why in log.skipped:
                print(f"  pose {k} skipped: {why}")
            samples = log.samples
            if args.samples_out:
                _save_samples(args.samples_out, samples, intrinsics, robot_id, camera_id, args.mode)
                print(f"wrote {len(samples)} samples to {args.samples_out}")
        result = solve_handeye(samples, args.mode, K=intrinsics.K, board_center=board.center, methods=methods,
                               do_refine=not args.no_refine)
        view_pose = None
        if args.mode == "eye_in_hand":
            view_pose = _view_pose(args, rig)
    finally:
        if rig is not None:
            rig.close()
    cal = _calibration_from_result(result, name, intrinsics, board, robot_id, camera_id, args.mode, view_pose)
    from sim2real.calibration.storage import save_calibration

    save_calibration(cal, out)
    _print_handeye(result, cal, out, truth)
    return 0


def _generate_poses(args, rig, board):

    if rig.truth is not None and args.look_from is None:
        # twin / synthetic: aim with a deliberately rough guess (camera position rounded to 10 cm)
        guess = np.array(rig.truth, float)
        guess[:3, 3] = np.round(guess[:3, 3], 1)
    elif args.look_from is not None:
        guess = np.eye(4)
        guess[:3, 3] = _xyz(args.look_from, "look-from")
    else:
        raise InputError("generated poses need a rough camera position: pass --look-from X,Y,Z (base frame, m), "
                         "or use --freedrive")
    if args.mode != "eye_to_hand":
        raise InputError("generated poses are for eye-to-hand; for eye-in-hand use --freedrive (or --from-samples)")
    from sim2real.calibration.twin_rig import bracket, tool_poses_facing_camera

    if args.center:
        center = _xyz(args.center, "center")
    elif args.robot in ("sim", "synthetic", None):
        center = np.array([0.38, 0.0, 0.25])
    else:
        raise InputError("pass --center X,Y,Z: where the tool point should be on average while the board faces the "
                         "camera (base frame, m)")
    # the board sits on a bracket on the tool (--bracket: its centre in the tool frame, face up when the
    # tool points down); only roughly known: the solver finds the exact mount
    return tool_poses_facing_camera(guess, center, args.poses, bracket(board, _xyz(args.bracket, "bracket")),
                                    board, seed=args.seed)


def _view_pose(args, rig) -> np.ndarray:
    """Eye-in-hand: the flange pose the camera observes the workspace from (--view-pose, or the arm now)."""
    from sim2real.calibration.collect import state_pose

    if args.view_pose:
        v = np.array([float(x) for x in args.view_pose.split(",")])
        if v.shape != (7,):
            raise InputError("--view-pose must be x,y,z,qx,qy,qz,qw (tool pose in the base frame)")
        from sim2real.transforms import RigidTransform

        return RigidTransform.from_xyz_quat(v[:3], v[3:]).as_matrix()
    if rig is None:
        raise InputError("eye-in-hand from saved samples: pass --view-pose x,y,z,qx,qy,qz,qw (the capture pose)")
    print("eye-in-hand: T_base_camera is saved for the arm's CURRENT pose; put the arm at its capture pose first")
    return state_pose(rig.robot.state())


def _calibration_from_result(result, name, intrinsics, board, robot_id, camera_id, mode, view_pose=None):
    from sim2real.calibration.handeye import compose_base_camera
    from sim2real.calibration.storage import Calibration

    T_bc = compose_base_camera(result, view_pose)
    T_fc = result.X if mode == "eye_in_hand" else None
    residuals = result.to_dict()
    if view_pose is not None:
        residuals["view_pose"] = np.asarray(view_pose).tolist()
    return Calibration(name=name, T_base_camera=T_bc, intrinsics=intrinsics, board=board.to_dict(),
                       method=result.method, residuals=residuals, robot_id=robot_id, camera_id=camera_id,
                       mode=mode, T_flange_camera=T_fc)


def _print_handeye(result, cal, out, truth) -> None:
    s = result.summary()
    print("method       trans RMS (mm)  rot RMS (deg)  score (mm)")
    for name, c in result.candidates.items():
        if "error" in c:
            print(f"  {name:<11} failed: {c['error']}")
        else:
            print(f"  {name:<11} {c['trans_rms_mm']:>13.3f}  {c['rot_rms_deg']:>13.4f}  {c['score_mm']:>10.3f}")
    print(f"chosen: {result.method}; {s['n_used']}/{s['n_samples']} samples used; residuals: "
          f"{s['trans_rms_mm']:.3f} mm RMS (max {s['trans_max_mm']:.3f}), {s['rot_rms_deg']:.4f} deg RMS "
          f"(max {s['rot_max_deg']:.4f}), reprojection {s['reproj_rms_px']:.3f} px")
    for i, why in result.rejected:
        print(f"  rejected sample {i}: {why}")
    if truth is not None:
        dt = np.linalg.norm(cal.T_base_camera[:3, 3] - truth[:3, 3]) * 1000
        from scipy.spatial.transform import Rotation

        dr = np.degrees(Rotation.from_matrix(cal.T_base_camera[:3, :3].T @ truth[:3, :3]).magnitude())
        print(f"ground truth (twin): error {dt:.3f} mm, {dr:.4f} deg")
    print(f"wrote {out}; next: `sim2real calibrate table --calibration {out}` (the workspace frame)")


def _save_samples(path, samples, intrinsics, robot_id, camera_id, mode) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"intrinsics": intrinsics.to_dict(), "robot_id": robot_id,
                                      "camera_id": camera_id, "mode": mode,
                                      "samples": [s.to_dict() for s in samples]}))


def _load_samples(path):
    from sim2real.calibration.handeye import HandEyeSample

    try:
        data = json.loads(Path(path).read_text())
        return [HandEyeSample.from_dict(d) for d in data["samples"]], data
    except FileNotFoundError:
        raise InputError(f"{path}: samples file not found (write one with --samples-out)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a samples file written by --samples-out ({e})") from None


# ----------------------------------------------------------------------------------------------
# frames for table / check
# ----------------------------------------------------------------------------------------------

def _read_frame(args, cal, rig_holder: list):
    """One RGB-D frame from --frame / --playback / --serial / --robot sim|synthetic."""
    if args.frame:
        from sim2real.camera import CameraIntrinsics, RGBDFrame
        from sim2real.frame_io import load_frame_npz

        color, depth, K, _T, _ = load_frame_npz(args.frame)
        return RGBDFrame(color, depth, CameraIntrinsics.from_K(K, color.shape[1], color.shape[0]))
    if args.playback or args.serial:
        from sim2real.realsense import PlaybackCamera, RealSenseCamera, load_realsense_config

        cam = (PlaybackCamera(args.playback) if args.playback
               else RealSenseCamera(load_realsense_config(serial=args.serial)).connect())
        try:
            return cam.read()
        finally:
            cam.close()
    robot = args.robot or "sim"
    if robot in ("sim", "synthetic"):
        from sim2real.calibration.board import load_board

        rig = _open_rig(args, load_board(args.board), board_on_tool=False)
        rig_holder.append(rig)
        return rig.camera.read()
    raise InputError("where should the frame come from? pass --robot sim, --serial S, --playback FILE or --frame FILE")


def run_table(args) -> int:
    from sim2real.calibration.check import heightmap_stats, save_check_image
    from sim2real.calibration.storage import load_calibration, save_calibration
    from sim2real.calibration.table import fit_table, reach_check, workspace_frame
    from sim2real.heightmap import project_frames
    from sim2real.workspace import GENSIM_WORKSPACE

    cal = load_calibration(args.calibration)
    holder: list = []
    try:
        frame = _read_frame(args, cal, holder)
        reach = args.reach if args.reach else (holder[0].reach if holder else None)
    finally:
        for r in holder:
            r.close()
    _same_camera(cal, frame, args.calibration)
    fit = fit_table(frame.depth, frame.K, cal.T_base_camera, GENSIM_WORKSPACE, inlier_m=args.inlier_mm / 1000.0)
    T_bw = workspace_frame(fit.plane, _xyz(args.offset, "offset", 2), args.yaw_deg)
    cal = cal.replace(workspace=GENSIM_WORKSPACE, T_base_workspace=T_bw, table=fit.plane)
    save_calibration(cal, args.calibration)
    p = fit.plane
    print(f"table: height {p.height * 1000:+.2f} mm (base z at the workspace centre), tilt {p.tilt_deg:.3f} deg, "
          f"inliers {fit.inlier_fraction * 100:.1f}% of {fit.n_points} points, plane RMS {fit.rms_mm:.2f} mm")
    for w in reach_check(GENSIM_WORKSPACE, T_bw, reach):
        print(f"warning: {w}")
    obs = project_frames([replace_frame(frame, cal.T_workspace_camera())], GENSIM_WORKSPACE)
    stats = heightmap_stats(obs, empty_table=True)
    png = Path(args.png) if args.png else Path(args.calibration).with_name(Path(args.calibration).stem + "_table.png")
    save_check_image(obs, png, stats, title=f"{cal.name}: workspace frame on the fitted table")
    print(f"updated {args.calibration} (workspace frame + table); check image {png}")
    return 0


def replace_frame(frame, T):
    """The frame with T_base_camera set to T (the projection transform)."""
    return replace(frame, T_base_camera=np.asarray(T, float))


def _same_camera(cal, frame, path) -> None:
    if (frame.intrinsics.width, frame.intrinsics.height) != (cal.intrinsics.width, cal.intrinsics.height):
        raise CalibrationError(f"{path} is for a {cal.intrinsics.width}x{cal.intrinsics.height} camera but the frame "
                               f"is {frame.intrinsics.width}x{frame.intrinsics.height}; use the calibrated camera/profile")


def run_check(args) -> int:
    from sim2real.calibration.check import heightmap_stats, save_check_image
    from sim2real.calibration.storage import load_calibration
    from sim2real.heightmap import project_frames
    from sim2real.workspace import GENSIM_WORKSPACE

    cal = load_calibration(args.calibration)
    workspace = cal.workspace or GENSIM_WORKSPACE
    if cal.T_base_workspace is None:
        print("note: the calibration has no workspace frame yet; run `sim2real calibrate table` first for z = 0 "
              "on the table")
    holder: list = []
    try:
        frame = _read_frame(args, cal, holder)
        _same_camera(cal, frame, args.calibration)
        obs = project_frames([replace_frame(frame, cal.T_workspace_camera())], workspace)
        stats = heightmap_stats(obs, empty_table=not args.not_empty)
        png = Path(args.png) if args.png else Path(args.calibration).with_name(Path(args.calibration).stem + "_check.png")
        save_check_image(obs, png, stats, title=f"{cal.name}: heightmap check")
        print(f"heightmap: colour mean {stats.color_mean:.3f} (z {stats.color_z:+.2f}), height mean "
              f"{stats.height_mean * 1000:.2f} mm (z {stats.height_z:+.2f}), p95 {stats.height_p95 * 1000:.2f} mm, "
              f"holes {stats.hole_fraction * 100:.1f}%")
        for w in stats.warnings:
            print(f"warning: {w}")
        print(f"check image {png}")
        if args.touch:
            _touch(args, cal, holder)
    finally:
        for r in holder:
            r.close()
    return 0


def _touch(args, cal, holder) -> None:
    """Touch test: board flat on the table, corners predicted from the camera, TCP moved above them."""
    from sim2real.calibration.board import load_board
    from sim2real.calibration.touch import board_corners_in_base, operator_measure, spread_subset, touch_test, truth_measure

    board = load_board(args.board)
    robot = args.robot or "sim"
    hover = args.hover_mm / 1000.0
    if robot in ("sim", "synthetic"):
        rig = holder[0] if holder else _open_rig(args, board, board_on_tool=False)
        if not holder:
            holder.append(rig)
        T_bb = _board_on_table(board)
        if rig.twin is not None:
            from sim2real.calibration.twin_rig import TwinBoard

            TwinBoard.create(rig.twin.scene, board, T_base_board=T_bb)
        else:
            rig.robot.T_base_board = T_bb
            rig.robot.show_board = True
        frame = rig.camera.read()
        ids, predicted = board_corners_in_base(board, frame.color, frame.K, cal.T_base_camera)
        truth = board.corners() @ T_bb[:3, :3].T + T_bb[:3, 3]
        pick = spread_subset(predicted, args.touch)
        result = touch_test(rig.robot, ids[pick], predicted[pick], truth_measure(truth[pick]), hover_m=hover,
                            **_touch_envelope(robot, cal))
    else:
        rig = _open_rig(args, board)
        holder.append(rig)
        frame = rig.camera.read()
        ids, predicted = board_corners_in_base(board, frame.color, frame.K, cal.T_base_camera)
        pick = spread_subset(predicted, args.touch)
        result = touch_test(rig.robot, ids[pick], predicted[pick], operator_measure(hover_m=hover), hover_m=hover,
                            **_touch_envelope(robot, cal))
    s = result.summary()
    print(f"touch test on {s['n']} corners: error mean {s['mean_mm']:.2f} mm, max {s['max_mm']:.2f} mm "
          f"(horizontal mean {s['xy_mean_mm']:.2f}, max {s['xy_max_mm']:.2f} mm)")
    reached = np.linalg.norm(result.reached - result.predicted, axis=1) * 1000
    print(f"  arm reached the commanded points within {reached.max():.2f} mm")


def _touch_envelope(robot_name: str, cal) -> dict:
    """touch_test's envelope: the robot's (or the default) envelope on the calibration's workspace,
    and the base -> workspace transform the touch targets (base frame) are checked in."""
    from sim2real.safety import SafetyEnvelope
    from sim2real.workspace import GENSIM_WORKSPACE

    workspace = cal.workspace or GENSIM_WORKSPACE
    if robot_name in ("sim", "synthetic"):
        envelope = SafetyEnvelope().with_workspace(workspace)
    else:
        from sim2real.robot_config import load_robot_config

        envelope = load_robot_config(robot_name).safety_envelope(workspace)
    T = cal.T_base_workspace
    return {"envelope": envelope.in_frame(T),
            "T_workspace_base": None if T is None else np.linalg.inv(np.asarray(T, float))}


def _board_on_table(board) -> np.ndarray:
    """The board lying face up on the table in the middle of the workspace (twin/synthetic touch test)."""
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
    T[:3, 3] = np.array([0.5, 0.0, 0.0005]) - T[:3, :3] @ board.center
    return T
