"""The one definition of every ROS node's parameters: name, type, default, description, range.

Nodes declare exactly these (:func:`declare`, with a ``ParameterDescriptor`` each), the YAML files
``config/ros/<node>.yaml`` are generated from them (``python -m sim2real.ros.params --write
config/ros``) and a test checks the two agree, so a README table, a YAML and a node cannot drift.

Topic defaults follow realsense2_camera >= 4.55 for the camera topics the heightmap node reads
when ``camera:=realsense2_camera`` (see :data:`REALSENSE2_CAMERA_TOPICS`); the pyrealsense camera
node publishes under ``/sim2real/camera/...`` with the same layout.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from sim2real.errors import ConfigError

TYPES = ("bool", "integer", "double", "string", "string_array", "double_array")
"""Parameter types (rcl_interfaces ParameterType names, lower-case without the PARAMETER_ prefix)."""


@dataclass(frozen=True)
class Param:
    """One ROS parameter.

    Attributes:
        name: parameter name.
        type: one of :data:`TYPES`.
        default: default value (of that type).
        description: one line for ``ros2 param describe``.
        choices: allowed string values (empty = any).
        low, high: inclusive numeric range (None = unbounded).
        read_only: True when changing it at run time is not supported.
    """

    name: str
    type: str
    default: Any
    description: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    read_only: bool = True

    def check(self, value, where: str = "") -> Any:
        """Return ``value`` if valid for this parameter, else raise ConfigError naming the fix."""
        at = f"{where}{self.name}"
        ok = {
            "bool": lambda v: isinstance(v, bool),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
            "string": lambda v: isinstance(v, str),
            "string_array": lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v),
            "double_array": lambda v: isinstance(v, (list, tuple)) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
        }[self.type]
        if not ok(value):
            raise ConfigError(f"parameter {at}: expected a {self.type}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(f"parameter {at}: must be one of {list(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ConfigError(f"parameter {at}: must be within [{self.low}, {self.high}], got {value!r}")
        return float(value) if self.type == "double" else value


def _p(name, type_, default, description, **kw) -> Param:
    return Param(name, type_, default, description, **kw)


REALSENSE2_CAMERA_TOPICS = {
    "color_topic": "/camera/camera/color/image_raw",
    "depth_topic": "/camera/camera/aligned_depth_to_color/image_raw",
    "camera_info_topic": "/camera/camera/color/camera_info",
}
"""realsense2_camera >= 4.55.1 topics (camera_namespace=camera, camera_name=camera). For
<= 4.54.1 drop one ``/camera``: ``/camera/color/image_raw`` etc. Needs ``align_depth.enable:=true``."""

SIM2REAL_CAMERA_TOPICS = {
    "color_topic": "/sim2real/camera/color/image_raw",
    "depth_topic": "/sim2real/camera/aligned_depth_to_color/image_raw",
    "camera_info_topic": "/sim2real/camera/color/camera_info",
}
"""Topics of sim2real's own pyrealsense2 camera node."""

HEIGHTMAP_TOPIC = "/sim2real/heightmap"
HEIGHTMAP_STATUS_TOPIC = "/sim2real/heightmap_status"
COLORMAP_TOPIC = "/sim2real/colormap"
GOAL_TOPIC = "/sim2real/goal"
POSES_TOPIC = "/sim2real/pick_place_poses"
OVERLAY_TOPIC = "/sim2real/affordance"
STEP_RESULT_TOPIC = "/sim2real/step_result"
PLANNED_POSES_TOPIC = "/sim2real/planned_waypoints"
PROMPT_TOPIC = "/sim2real/operator_prompt"

_CAMERA_OUT = [
    _p("color_topic", "string", SIM2REAL_CAMERA_TOPICS["color_topic"], "Published RGB image (rgb8)."),
    _p("depth_topic", "string", SIM2REAL_CAMERA_TOPICS["depth_topic"],
       "Published depth aligned to color (16UC1 mm or 32FC1 m)."),
    _p("camera_info_topic", "string", SIM2REAL_CAMERA_TOPICS["camera_info_topic"],
       "Published CameraInfo of the color stream."),
]

_FRAMES = [
    _p("base_frame", "string", "base_link", "Robot base frame; heightmap and poses are in it (UR base_link, xArm link_base)."),
]

_CALIBRATION = [
    _p("calibration", "string", "", "Calibration YAML (calibration/NAME.yaml): workspace frame and bounds; "
       "empty = the simulator's workspace in base_frame."),
]

_STALENESS = [
    _p("max_age_s", "double", 1.0, "Reject inputs older than this (seconds, stamp vs node clock).", low=0.01, high=60.0),
]

CAMERA_SOURCES = ("realsense", "playback", "twin")
"""camera node sources: a live RealSense, a recorded .db3 (``sim2real capture --playback``), the twin."""

CAMERA = [
    _p("source", "string", "realsense", "Where frames come from: a live RealSense, a recording (playback) or the "
       "digital twin's calibrated camera.", choices=CAMERA_SOURCES),
    _p("playback", "string", "", "source:=playback: the RealSense .db3 recording to replay (its intrinsics and "
       "depth scale are used)."),
    _p("playback_loop", "bool", True, "source:=playback: start again at the end of the recording (else stop "
       "publishing)."),
    _p("twin_config", "string", "", "source:=twin: twin robot YAML; empty = config/robots/sim.yaml."),
    _p("twin_task", "string", "", "source:=twin: task (config/tasks) whose scene is shown; empty = the empty table."),
    _p("twin_seed", "integer", 0, "source:=twin: seed of the task's scene.", low=0),
    _p("camera_config", "string", "", "RealSense YAML (sim2real.realsense); empty = config/cameras/realsense.yaml."),
    _p("serial", "string", "", "RealSense serial number; empty = the only connected camera."),
    _p("width", "integer", 640, "Color/depth width in pixels.", low=160, high=1920),
    _p("height", "integer", 480, "Color/depth height in pixels.", low=120, high=1080),
    _p("fps", "integer", 30, "Stream frame rate.", low=1, high=90),
    _p("publish_rate_hz", "double", 10.0, "How often a frame is published.", low=0.1, high=90.0),
    _p("read_timeout_s", "double", 2.0, "Wait this long for a frame before reporting the camera lost.",
       low=0.05, high=30.0),
    _p("frame_id", "string", "camera_color_optical_frame", "Optical frame of the color stream (TF child of the calibration)."),
    _p("depth_encoding", "string", "16UC1", "Depth image encoding.", choices=("16UC1", "32FC1")),
    *_CAMERA_OUT,
]

HEIGHTMAP = [
    *[_p(p.name, p.type, p.default, p.description.replace("Published", "Subscribed")) for p in _CAMERA_OUT],
    _p("camera_frame", "string", "", "Camera optical frame for the TF lookup; empty = the images' header.frame_id."),
    *_FRAMES,
    _p("tf_timeout_s", "double", 0.5, "Wait this long for the camera->base transform.", low=0.0, high=10.0),
    *_STALENESS,
    _p("sync_slop_s", "double", 0.05, "ApproximateTimeSynchronizer slop between color, depth and camera_info (s).",
       low=0.001, high=1.0),
    _p("queue_size", "integer", 10, "Subscription / synchronizer queue depth.", low=1, high=100),
    *_CALIBRATION,
    _p("heightmap_topic", "string", HEIGHTMAP_TOPIC, "Published heightmap (32FC1, metres above the table)."),
    _p("colormap_topic", "string", COLORMAP_TOPIC, "Published heightmap colors (rgb8)."),
    _p("status_topic", "string", HEIGHTMAP_STATUS_TOPIC,
       "Published why frames are dropped (std_msgs/String JSON: reason tf_timeout / stale_frame / camera_lost)."),
]

TWIN_REQUEST_TOPIC = "/sim2real/twin/request"
TWIN_REPLY_TOPIC = "/sim2real/twin/reply"

_TWIN_LINK = [
    _p("twin_request_topic", "string", TWIN_REQUEST_TOPIC, "Twin calls (std_msgs/String JSON, sim2real.ros.twin_link)."),
    _p("twin_reply_topic", "string", TWIN_REPLY_TOPIC, "Twin replies (std_msgs/String JSON)."),
    _p("twin_timeout_s", "double", 60.0, "A twin call without a reply within this time fails (hardware_error).",
       low=0.1, high=600.0),
]

POLICY = [
    _p("checkpoint", "string", "", "CLIPort / GenSim checkpoint (.ckpt) to load; required. 'oracle' asks the twin "
       "node's ground-truth oracle (robot:=sim only)."),
    _p("device", "string", "cpu", "Torch device for the policy.", choices=("cpu", "cuda")),
    _p("goal_topic", "string", GOAL_TOPIC, "Subscribed language goal (std_msgs/String)."),
    _p("heightmap_topic", "string", HEIGHTMAP_TOPIC, "Subscribed heightmap (32FC1)."),
    _p("colormap_topic", "string", COLORMAP_TOPIC, "Subscribed heightmap colors (rgb8)."),
    _p("poses_topic", "string", POSES_TOPIC, "Published [pick, place] PoseArray in base_frame."),
    _p("overlay_topic", "string", OVERLAY_TOPIC, "Published affordance overlay (rgb8)."),
    _p("heightmap_status_topic", "string", HEIGHTMAP_STATUS_TOPIC,
       "Subscribed heightmap status: the reason recorded when the heightmap is missing or stale."),
    _p("step_result_topic", "string", STEP_RESULT_TOPIC, "Published step failures (std_msgs/String JSON)."),
    _p("planner", "string", "", "Language planner (docs/planner.md): '' = none, the goal goes to the policy as is; "
       "fixed | random | llm | llm:ADAPTERS_DIR: the goal is the task instruction and the planner picks each "
       "step's sub-goal from the heightmap scene."),
    _p("planner_task", "string", "", "Task name or alias whose sub-goal templates the planner fills; required "
       "with a planner."),
    _p("llm", "string", "", "Causal LM directory or .gguf for planner llm; empty = the embedded SmolLM2."),
    *_FRAMES,
    *_STALENESS,
    *_CALIBRATION,
    *_TWIN_LINK,
]

EXECUTOR = [
    _p("robot", "string", "ur5", "Robot config name (config/robots/ROBOT.yaml) or path."),
    _p("mode", "string", "confirm", "auto: execute; confirm: operator approves each motion "
       "(~/confirm service); dry_run: plan and visualise, never execute.", choices=("auto", "confirm", "dry_run")),
    _p("poses_topic", "string", POSES_TOPIC, "Subscribed [pick, place] PoseArray."),
    _p("goal_topic", "string", GOAL_TOPIC, "Subscribed language goal (recorded with the step result)."),
    _p("heightmap_topic", "string", HEIGHTMAP_TOPIC, "Subscribed heightmap (32FC1): held-object height for the place."),
    _p("step_result_topic", "string", STEP_RESULT_TOPIC, "Published step result (std_msgs/String JSON)."),
    _p("planned_topic", "string", PLANNED_POSES_TOPIC, "Published planned waypoints (PoseArray) for RViz."),
    _p("confirm_timeout_s", "double", 120.0, "confirm mode: reject the motion if nobody approves within this time.",
       low=1.0, high=3600.0),
    _p("moveit_api", "string", "auto", "moveit_py API flavour; auto = from ROS_DISTRO.",
       choices=("auto", "humble", "jazzy")),
    _p("max_pose_age_s", "double", 5.0, "Refuse a plan whose heightmap is older than this (s) on arrival or at the "
       "moment of execution (then the step is asked again on a new observation).", low=0.1, high=600.0),
    _p("go_home", "bool", True, "Move to the robot config's home joints at start-up (not in dry_run; in confirm "
       "mode only after ~/confirm)."),
    _p("driver", "string", "moveit", "Who executes the motions: MoveIt (the real arm or its mock hardware) or the "
       "digital twin node (robot:=sim in deploy.launch.py; sim2real.ros.twin_link).", choices=("moveit", "twin")),
    *_TWIN_LINK,
    *_FRAMES,
    *_CALIBRATION,
]

TRIALS = [
    _p("task", "string", "", "Task name or alias (config/tasks/*.yaml), e.g. 'build wheel'; required."),
    _p("goal", "string", "", "Language goal sent to the policy; empty = the task's language template "
       "(must then have no {placeholders})."),
    _p("trials", "integer", 10, "Trials per task.", low=1, high=1000),
    _p("max_steps", "integer", 0, "Steps per trial; 0 = the task's own step budget.", low=0, high=100),
    _p("out", "string", "trials/ros", "Campaign directory (trials.jsonl + artefacts); resumed when it exists."),
    _p("seed", "integer", 0, "Base seed (recorded; the real scene is reset by the operator).", low=0),
    _p("policy_name", "string", "cliport", "Policy name recorded with each trial."),
    _p("checkpoint", "string", "", "Checkpoint path recorded in provenance (sha256)."),
    _p("robot", "string", "ur5", "Robot config name or path, recorded in provenance."),
    *_CALIBRATION,
    _p("operator", "string", "operator", "Operator name recorded with each label."),
    _p("goal_topic", "string", GOAL_TOPIC, "Published language goal (std_msgs/String)."),
    _p("heightmap_topic", "string", HEIGHTMAP_TOPIC, "Subscribed heightmap, stored with each step."),
    _p("colormap_topic", "string", COLORMAP_TOPIC, "Subscribed heightmap colors, stored with each step."),
    _p("step_result_topic", "string", STEP_RESULT_TOPIC, "Subscribed step results (std_msgs/String JSON)."),
    _p("prompt_topic", "string", PROMPT_TOPIC, "Published operator prompts (std_msgs/String)."),
    _p("label_category", "string", "", "Failure category applied by the next ~/label false (then cleared); "
       "empty = derived from the end reason.", read_only=False),
    _p("label_note", "string", "", "Note stored with the next label (then cleared).", read_only=False),
    _p("step_timeout_s", "double", 180.0, "A step with no result within this time ends the trial (reason step_timeout).",
       low=1.0, high=3600.0),
]

TWIN = [
    _p("twin_config", "string", "", "Twin robot YAML; empty = config/robots/sim.yaml."),
    _p("task", "string", "", "Task (name or alias, config/tasks) set up by ~/reset; required."),
    _p("seed", "integer", 0, "Seed of the first ~/reset; each further reset uses the next one.", low=0),
    _p("publish_rate_hz", "double", 5.0, "Camera frames per second (each one a PyBullet render).", low=0.1, high=60.0),
    _p("depth_encoding", "string", "16UC1", "Depth image encoding.", choices=("16UC1", "32FC1")),
    _p("frame_id", "string", "camera_color_optical_frame", "Optical frame of the rendered camera."),
    *_CAMERA_OUT,
    *_TWIN_LINK[:2],
]

CALIBRATION_TF = [
    _p("calibration", "string", "", "Calibration YAML to publish as a static TF; required."),
    _p("base_frame", "string", "", "Parent frame; empty = the calibration's frames.base."),
    _p("camera_frame", "string", "", "Child frame; empty = the calibration's frames.camera."),
]

CALIBRATE = [
    _p("robot", "string", "ur5", "Robot config name or path (MoveIt group, frames, gripper)."),
    _p("out", "string", "calibration/robot_camera.yaml", "Where the calibration YAML is written."),
    _p("board", "string", "", "ChArUco board YAML; empty = config/calibration/board.yaml."),
    *[_p(p.name, p.type, p.default, p.description.replace("Published", "Subscribed")) for p in _CAMERA_OUT],
    _p("camera_frame", "string", "", "Camera optical frame written into the calibration; empty = the images' frame_id."),
    _p("base_frame", "string", "", "Robot base frame; empty = the robot config's base_frame."),
    _p("min_samples", "integer", 12, "Samples needed before ~/solve is accepted.", low=3, high=200),
    _p("read_timeout_s", "double", 5.0, "Wait this long for a fresh RGB-D frame per sample.", low=0.1, high=60.0),
    _p("sync_slop_s", "double", 0.05, "ApproximateTimeSynchronizer slop (s).", low=0.001, high=1.0),
    _p("tf_timeout_s", "double", 0.5, "Wait this long for the base -> tip_frame transform.", low=0.0, high=10.0),
]

NODES: dict[str, list] = {
    "camera": CAMERA,
    "heightmap": HEIGHTMAP,
    "policy": POLICY,
    "executor": EXECUTOR,
    "trials": TRIALS,
    "calibration_tf": CALIBRATION_TF,
    "calibrate": CALIBRATE,
    "twin": TWIN,
}
"""Node name -> its parameters. The node's ROS name is the key (launch files use the same)."""

COMBINED_STAGES = ("heightmap", "policy", "executor")
"""Stages the in-process ``pipeline`` node hosts (same topics, no DDS hop between them)."""


def _merge(stages) -> list:
    merged: dict[str, Param] = {}
    for stage in stages:
        for p in NODES[stage]:
            if p.name in merged and (merged[p.name].type, merged[p.name].default) != (p.type, p.default):
                raise ConfigError(f"parameter {p.name!r} differs between the combined stages; rename one")
            merged.setdefault(p.name, p)
    return list(merged.values())


NODES["pipeline"] = _merge(COMBINED_STAGES)


def params_of(node: str) -> list:
    """The parameters of ``node``; ConfigError listing the nodes when unknown."""
    if node not in NODES:
        raise ConfigError(f"unknown node {node!r}; nodes are {sorted(NODES)}")
    return NODES[node]


def defaults(node: str) -> dict:
    """{name: default} of ``node``."""
    return {p.name: p.default for p in params_of(node)}


def validate(node: str, values: Mapping[str, Any]) -> dict:
    """Check ``values`` against ``node``'s schema; unknown names and bad values are ConfigErrors.

    Returns the complete parameter dict (defaults filled in).
    """
    schema = {p.name: p for p in params_of(node)}
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise ConfigError(f"node {node}: unknown parameter(s) {unknown}; known: {sorted(schema)}")
    out = defaults(node)
    for name, value in values.items():
        out[name] = schema[name].check(value, f"{node}.")
    return out


def yaml_document(node: str) -> dict:
    """The ROS 2 parameter file content for ``node``: {node: {ros__parameters: defaults}}."""
    return {node: {"ros__parameters": defaults(node)}}


def yaml_text(node: str) -> str:
    """The generated ``config/ros/<node>.yaml`` text (with a header naming the generator)."""
    lines = [f"# Parameters of the sim2real '{node}' node. GENERATED from sim2real/ros/params.py:",
             "#   python -m sim2real.ros.params --write config/ros",
             "# Edit params.py (the one definition), not this file; launch arguments override some values."]
    for p in params_of(node):
        extra = f" One of {list(p.choices)}." if p.choices else ""
        lines.append(f"#   {p.name} ({p.type}): {p.description}{extra}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(yaml_document(node), sort_keys=False, default_flow_style=False)


def load_node_yaml(path, node: str) -> dict:
    """Read a ROS parameter file and validate ``node``'s section (keyed by node name or ``/**``)."""
    from sim2real.config import load_yaml

    data = load_yaml(path)
    section = data.get(node, data.get("/**"))
    if not isinstance(section, dict) or "ros__parameters" not in section:
        raise ConfigError(f"{path}: expected '{node}: {{ros__parameters: {{...}}}}'")
    return validate(node, section["ros__parameters"] or {})


def declare(node_handle, node: str, overrides: Mapping[str, Any] | None = None) -> dict:
    """Declare ``node``'s parameters on an rclpy node with descriptors; return validated values.

    Launch / YAML values override the defaults; ``overrides`` (tests) override both.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    type_ids = {"bool": ParameterType.PARAMETER_BOOL, "integer": ParameterType.PARAMETER_INTEGER,
                "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING,
                "string_array": ParameterType.PARAMETER_STRING_ARRAY,
                "double_array": ParameterType.PARAMETER_DOUBLE_ARRAY}
    values = {}
    for p in params_of(node):
        desc = ParameterDescriptor(name=p.name, type=type_ids[p.type], read_only=p.read_only,
                                   description=p.description + (f" One of {list(p.choices)}." if p.choices else ""))
        if p.type == "double" and (p.low is not None or p.high is not None):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(p.low if p.low is not None else -1e308),
                to_value=float(p.high if p.high is not None else 1e308), step=0.0)]
        if p.type == "integer" and (p.low is not None or p.high is not None):
            desc.integer_range = [IntegerRange(from_value=int(p.low if p.low is not None else -2**62),
                                               to_value=int(p.high if p.high is not None else 2**62), step=0)]
        try:
            values[p.name] = node_handle.declare_parameter(p.name, p.default, desc).value
        except Exception as e:  # rclpy's InvalidParameterTypeException / InvalidParameterValueException
            if type(e).__name__ not in ("InvalidParameterTypeException", "InvalidParameterValueException"):
                raise
            span = f" within [{p.low}, {p.high}]" if p.low is not None or p.high is not None else ""
            raise ConfigError(f"parameter {node}.{p.name}: expected a {p.type}{span} ({p.description}); "
                              f"rclpy says: {e}") from None
    values.update(overrides or {})
    return validate(node, values)


def write_all(directory) -> list:
    """(Re)generate ``<directory>/<node>.yaml`` for every node; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for node in NODES:
        path = directory / f"{node}.yaml"
        path.write_text(yaml_text(node))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    """``python -m sim2real.ros.params --write config/ros`` (or --check)."""
    ap = argparse.ArgumentParser(description="Generate or check config/ros/<node>.yaml from the parameter schema.")
    ap.add_argument("--write", metavar="DIR", help="write the YAML files into DIR")
    ap.add_argument("--check", metavar="DIR", help="exit 1 when a YAML in DIR differs from the schema")
    args = ap.parse_args(argv)
    if args.write:
        for p in write_all(args.write):
            print(p)
    if args.check:
        stale = [n for n in NODES if not (Path(args.check) / f"{n}.yaml").is_file()
                 or (Path(args.check) / f"{n}.yaml").read_text() != yaml_text(n)]
        if stale:
            print(f"out of date: {stale}; run python -m sim2real.ros.params --write {args.check}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


def markdown_table(node: str) -> str:
    """The README table of ``node``'s parameters (docs/ros.md embeds these verbatim)."""
    rows = ["| parameter | type | default | description |", "|---|---|---|---|"]
    for p in params_of(node):
        default = "`\"\"`" if p.default == "" else f"`{yaml.safe_dump(p.default, default_flow_style=True).strip().removesuffix('...').strip()}`"
        extra = f" One of {', '.join(f'`{c}`' for c in p.choices)}." if p.choices else ""
        rows.append(f"| `{p.name}` | {p.type} | {default} | {p.description}{extra} |")
    return "\n".join(rows)
