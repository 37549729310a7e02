"""What ``deploy.launch.py`` and ``calibrate.launch.py`` start, as pure data (tested without ROS).

The launch files declare their arguments literally (so README's table can be checked against
them by parsing the files) and call :func:`deploy_plan` / :func:`calibrate_plan` with the
argument values; the result lists the nodes (executable, name, parameter overrides), the launch
files to include (robot driver / MoveIt, realsense2_camera) and whether RViz runs. The launch
files only turn this into launch actions, wrapping every string parameter in
``ParameterValue(..., value_type=str)`` so ``task:="yes"`` or ``task:="a: b"`` stay strings.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from sim2real.errors import ConfigError
from sim2real.robot_config import DISTROS, RobotConfig, load_robot_config
from sim2real.ros.params import REALSENSE2_CAMERA_TOPICS, SIM2REAL_CAMERA_TOPICS, validate

CAMERAS = ("pyrealsense", "realsense2_camera")
MODES = ("auto", "confirm", "dry_run")
PACKAGE = "sim2real"


@dataclass
class NodeSpec:
    """One node to start: ``ros2 run sim2real <executable>`` named ``name`` with ``params``
    (on top of ``config/ros/<name>.yaml``) and extra params files (MoveIt's)."""

    executable: str
    name: str
    params: dict
    params_files: list = field(default_factory=list)


@dataclass
class IncludeSpec:
    """A launch file of another package to include, with string arguments."""

    package: str
    file: str
    args: dict


@dataclass
class LaunchPlan:
    nodes: list
    includes: list
    rviz: bool
    moveit_robot: RobotConfig | None = None  # set when the executor needs MoveItPy parameters


def ros_distro(env=None) -> str:
    """'humble' or 'jazzy' from $ROS_DISTRO (other / newer distros use the Jazzy API)."""
    value = (env if env is not None else os.environ).get("ROS_DISTRO", "").strip().lower()
    return value if value in DISTROS else "jazzy"


def parse_bool(value, name: str) -> bool:
    """Launch argument text -> bool ('true'/'false', as ros2 launch writes them)."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"launch argument {name}:={value!r} must be true or false")


def parse_int(value, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"launch argument {name}:={value!r} must be a whole number") from None


def _choice(value: str, choices, name: str) -> str:
    if value not in choices:
        raise ConfigError(f"launch argument {name}:={value!r} must be one of {list(choices)}")
    return value


def robot_includes(config: RobotConfig, use_sim_robot: bool, distro: str, robot_ip: str = "") -> list:
    """The driver / MoveIt launch files of ``config`` (mock hardware when ``use_sim_robot``)."""
    out = []
    for inc in (config.moveit.sim_launches if use_sim_robot else config.moveit.launches):
        args = inc.arguments(distro)
        if robot_ip and not use_sim_robot and "robot_ip" in args:
            args["robot_ip"] = robot_ip
        out.append(IncludeSpec(inc.package, inc.file, args))
    return out


def camera_setup(camera: str, serial: str = "") -> tuple:
    """(camera node specs, include specs, heightmap topic params) for ``camera``."""
    _choice(camera, CAMERAS, "camera")
    if camera == "pyrealsense":
        return [NodeSpec("camera_node", "camera", {"serial": serial, **SIM2REAL_CAMERA_TOPICS})], [], \
            dict(SIM2REAL_CAMERA_TOPICS)
    # Intel's wrapper: aligned depth on, its own TF off (the calibration provides base -> optical frame)
    args = {"align_depth.enable": "true", "enable_sync": "true", "publish_tf": "false",
            "rgb_camera.color_profile": "640x480x30", "depth_module.depth_profile": "640x480x30"}
    if serial:
        args["serial_no"] = f"_{serial}"
    return [], [IncludeSpec("realsense2_camera", "rs_launch.py", args)], dict(REALSENSE2_CAMERA_TOPICS)


SIM_ROBOT = "sim"
"""``robot:=sim``: the digital twin node stands in for the driver + MoveIt and the camera."""

TWIN_CALIBRATION = "calibration/twin_default.yaml"
"""The twin's calibrated camera pose (config/robots/sim.yaml ``camera.calibrated``), the default
``calibration`` of ``robot:=sim``."""

TWIN_MAX_AGE_S = 5.0
"""Heightmap / frame freshness limit on the twin (its camera renders at a few Hz and pauses while
the arm moves); the real camera keeps the 1 s default."""


def deploy_plan(args: dict, env=None) -> LaunchPlan:
    """Nodes and includes of ``deploy.launch.py`` for its argument values (strings)."""
    distro = ros_distro(env)
    task = str(args["task"])
    if not task.strip():
        raise ConfigError('launch argument task is required, e.g. task:="build wheel"')
    mode = _choice(str(args["mode"]), MODES, "mode")
    if str(args["robot"]) == SIM_ROBOT:
        return twin_deploy_plan(args, task, mode)
    use_sim_robot = parse_bool(args["use_sim_robot"], "use_sim_robot")
    config = load_robot_config(args["robot"])
    calibration = str(args["calibration"])
    if not calibration:
        raise ConfigError("launch argument calibration is required: calibration:=calibration/<name>.yaml "
                          "(make one with calibrate.launch.py)")
    checkpoint = str(args["checkpoint"])
    start_policy = parse_bool(args.get("start_policy", "true"), "start_policy")
    pipeline = parse_bool(args.get("pipeline", "true"), "pipeline")
    if start_policy and not checkpoint:
        raise ConfigError("launch argument checkpoint is required: checkpoint:=/path/to/model.ckpt")
    if not start_policy and pipeline:
        raise ConfigError("start_policy:=false runs the policy on another machine, so the stages must be separate "
                          "nodes: add pipeline:=false")
    cam_nodes, includes, topics = camera_setup(str(args["camera"]), str(args.get("serial", "")))
    if parse_bool(args.get("launch_robot", "true"), "launch_robot"):
        includes = robot_includes(config, use_sim_robot, distro, str(args.get("robot_ip", ""))) + includes
    common = {"base_frame": config.base_frame, "calibration": calibration}
    heightmap = {**topics, **common}
    policy = {"checkpoint": checkpoint, "device": str(args["device"]), **common}
    executor = {"robot": str(args["robot"]), "mode": mode, **common}
    trials = {"task": task, "goal": str(args.get("goal", "")), "trials": parse_int(args["trials"], "trials"),
              "max_steps": parse_int(args.get("max_steps", "0"), "max_steps"), "out": str(args["out"]),
              "checkpoint": checkpoint, "robot": str(args["robot"]), "calibration": calibration}
    nodes = list(cam_nodes)
    nodes.append(NodeSpec("calibration_tf_node", "calibration_tf", {"calibration": calibration,
                                                                    "base_frame": config.base_frame}))
    nodes += _stage_nodes(pipeline, start_policy, heightmap, policy, executor, trials)
    for spec in nodes:
        validate(spec.name, spec.params)  # a typo here fails at launch time, with the parameter named
    return LaunchPlan(nodes, includes, parse_bool(args["rviz"], "rviz"),
                      config if mode != "dry_run" else None)


def _stage_nodes(pipeline: bool, start_policy: bool, heightmap: dict, policy: dict, executor: dict,
                 trials: dict) -> list:
    """heightmap -> policy -> executor as one pipeline node or three (policy left out when it runs
    on another machine), then the trials node."""
    if pipeline:
        nodes = [NodeSpec("pipeline_node", "pipeline", {**heightmap, **policy, **executor})]
    else:
        nodes = [NodeSpec("heightmap_node", "heightmap", heightmap)]
        if start_policy:
            nodes.append(NodeSpec("policy_node", "policy", policy))
        nodes.append(NodeSpec("executor_node", "executor", executor))
    return nodes + [NodeSpec("trials_node", "trials", trials)]


def twin_deploy_plan(args: dict, task: str, mode: str) -> LaunchPlan:
    """``deploy.launch.py robot:=sim``: the whole graph on the digital twin, over DDS.

    ``twin_node`` renders the twin's calibrated camera on the sim2real camera topics and executes
    the executor's motions in PyBullet (``driver:=twin``, sim2real.ros.twin_link); the heightmap,
    policy (``checkpoint:=oracle`` = the twin's ground truth, or a .ckpt), executor and trials
    nodes are the real ones. No MoveIt / driver / camera launch files are included. The executor
    plans and checks with the twin arm's robot config (config/robots/<arm>.yaml). The camera ->
    base transform reaches the heightmap node through TF (calibration_tf) where tf2_ros exists,
    else from the calibration YAML (PyPI rclpy).
    """
    from sim2real.twin import load_twin_config

    twin = load_twin_config()
    arm = twin.robot
    config = load_robot_config(arm)
    calibration = str(args["calibration"]) or TWIN_CALIBRATION
    checkpoint = str(args["checkpoint"]) or "oracle"
    start_policy = parse_bool(args.get("start_policy", "true"), "start_policy")
    pipeline = parse_bool(args.get("pipeline", "true"), "pipeline")
    if not start_policy and pipeline:
        raise ConfigError("start_policy:=false runs the policy on another machine, so the stages must be separate "
                          "nodes: add pipeline:=false")
    topics = dict(SIM2REAL_CAMERA_TOPICS)
    common = {"base_frame": config.base_frame, "calibration": calibration}
    # PyBullet renders a few frames per second and none while the arm moves: allow older frames
    fresh = {"max_age_s": TWIN_MAX_AGE_S}
    heightmap = {**topics, **common, **fresh}
    policy = {"checkpoint": checkpoint, "device": str(args["device"]), **common, **fresh}
    executor = {"robot": arm, "mode": mode, "driver": "twin", **common}
    trials = {"task": task, "goal": str(args.get("goal", "")), "trials": parse_int(args["trials"], "trials"),
              "max_steps": parse_int(args.get("max_steps", "0"), "max_steps"), "out": str(args["out"]),
              "checkpoint": checkpoint if checkpoint != "oracle" else "", "robot": SIM_ROBOT,
              "calibration": calibration, "policy_name": "oracle" if checkpoint == "oracle" else "cliport"}
    nodes = [NodeSpec("twin_node", "twin", {"task": task, **topics}),
             NodeSpec("calibration_tf_node", "calibration_tf", {"calibration": calibration,
                                                                "base_frame": config.base_frame})]
    nodes += _stage_nodes(pipeline, start_policy, heightmap, policy, executor, trials)
    for spec in nodes:
        validate(spec.name, spec.params)
    return LaunchPlan(nodes, [], parse_bool(args["rviz"], "rviz"), None)


def calibrate_plan(args: dict, env=None) -> LaunchPlan:
    """Nodes and includes of ``calibrate.launch.py``."""
    distro = ros_distro(env)
    use_sim_robot = parse_bool(args["use_sim_robot"], "use_sim_robot")
    config = load_robot_config(args["robot"])
    out = str(args["out"])
    if not out.endswith((".yaml", ".yml")):
        raise ConfigError(f"launch argument out:={out!r} must be a calibration YAML path, e.g. calibration/ur5_d435.yaml")
    cam_nodes, includes, topics = camera_setup(str(args["camera"]), str(args.get("serial", "")))
    if parse_bool(args.get("launch_robot", "true"), "launch_robot"):
        includes = robot_includes(config, use_sim_robot, distro, str(args.get("robot_ip", ""))) + includes
    calib = {**topics, "robot": str(args["robot"]), "out": out, "board": str(args["board"]),
             "base_frame": config.base_frame}
    nodes = list(cam_nodes) + [NodeSpec("calibrate_node", "calibrate", calib)]
    for spec in nodes:
        validate(spec.name, spec.params)
    return LaunchPlan(nodes, includes, parse_bool(args["rviz"], "rviz"), None)


PILZ_CARTESIAN_LIMITS = {"max_trans_vel": 1.0, "max_trans_acc": 2.25, "max_trans_dec": -5.0, "max_rot_vel": 1.57}
"""Pilz needs Cartesian limits (robot_description_planning.cartesian_limits); the values of
moveit_resources' pilz_cartesian_limits.yaml, used only when the robot's MoveIt config has none."""


def moveit_params_file(config: RobotConfig, path, context=None, share_dir=None, fake: bool = False,
                       node_name: str = "moveit_py") -> str:
    """Write MoveItPy's parameters as a ROS params file keyed by ``node_name``; returns the path.

    The executor's rclpy node ignores the section (another node's name); MoveItPy reads the
    ``--params-file`` arguments of its process and picks it up.
    """
    import yaml

    params = moveit_params(config, context, share_dir, fake)
    with open(path, "w") as f:
        yaml.safe_dump({node_name: {"ros__parameters": params}}, f, sort_keys=False)
    return str(path)


def moveit_params(config: RobotConfig, context=None, share_dir=None, fake: bool = False) -> dict:
    """MoveItPy's parameters for ``config`` (needs ROS: moveit_configs_utils / uf_ros_lib).

    Adds the Pilz pipeline for straight-line moves and this package's moveit_cpp YAML.
    """
    from pathlib import Path

    mc = config.moveit
    args = dict(mc.builder_args)
    moveit_cpp = Path(share_dir or "") / "config" / "ros" / mc.moveit_cpp_file
    pipelines = [mc.pipeline] + ([mc.linear_pipeline] if mc.linear_pipeline != mc.pipeline else [])
    if mc.builder == "moveit_configs_utils":
        from moveit_configs_utils import MoveItConfigsBuilder

        builder = MoveItConfigsBuilder(args.pop("robot_name"), package_name=args.pop("package_name"))
        srdf = args.pop("srdf_file", None)
        if srdf:
            builder = builder.robot_description_semantic(Path(srdf), args.pop("srdf_mappings", {}))
    else:
        from uf_ros_lib.moveit_configs_builder import MoveItConfigsBuilder

        builder = MoveItConfigsBuilder(context=context, controllers_name="fake_controllers" if fake else "controllers",
                                       **args)
    builder = builder.planning_pipelines(pipelines=pipelines).moveit_cpp(file_path=str(moveit_cpp))
    params = builder.to_moveit_configs().to_dict()
    planning = params.setdefault("robot_description_planning", {})
    if isinstance(planning, dict):
        planning.setdefault("cartesian_limits", dict(PILZ_CARTESIAN_LIMITS))
    return params
