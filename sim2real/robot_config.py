"""Robot configuration: one schema for the real arms (UR5, xArm 6/7) and the digital twin.

A robot YAML (``config/robots/<name>.yaml``) is loaded into the frozen :class:`RobotConfig` and
validated at load time; every problem is a :class:`~sim2real.errors.ConfigError` that names the
file, the key and the fix. The ROS side (``sim2real.ros``) reads the MoveIt / gripper sections,
the twin (``sim2real.twin``) reads the frames, home joints, speeds and its own ``twin`` section.

Frames and units: metres and radians. ``tcp_offset`` is the pose of the tool centre point (the
suction cup's contact point, or the fingertip centre) in ``tip_frame``; MoveIt plans for
``tip_frame``, so a TCP target is turned into a tip target with :meth:`RobotConfig.tip_pose`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from sim2real.config import config_dir, load_yaml, from_mapping, require
from sim2real.errors import ConfigError
from sim2real.transforms import RigidTransform

DRIVERS = ("ur", "xarm", "sim")
"""Arm drivers: Universal_Robots_ROS2_Driver, xarm_ros2, the PyBullet twin."""

GRIPPER_TYPES = ("suction", "parallel")
"""What the end effector does: suction (on/off) or a two-finger parallel gripper (open/close)."""

GRIPPER_DRIVERS = {
    "xarm_vacuum": "suction",     # xarm_msgs/srv/VacuumGripperCtrl on <ns>/set_vacuum_gripper
    "ur_tool_io": "suction",      # ur_msgs/srv/SetIO on /io_and_status_controller/set_io
    "robotiq": "parallel",        # control_msgs/action/GripperCommand
    "xarm_gripper": "parallel",   # xarm_msgs/srv/GripperMove on <ns>/set_gripper_position
    "sim": None,                  # the twin; either type
}
"""Gripper driver -> the gripper type it implements (None: any)."""

BUILDERS = ("moveit_configs_utils", "uf_ros_lib")
"""MoveIt parameter builders: moveit_configs_utils.MoveItConfigsBuilder, uf_ros_lib's (xArm) one."""

DISTROS = ("humble", "jazzy")
"""ROS 2 distributions the launch and MoveIt code support."""

UR_TOOL_PINS = (16, 17)
"""ur_robot_driver numbers the two tool digital outputs 16 and 17 (0-7 standard, 8-15 configurable)."""


def _vector(value, n: int, where: str) -> tuple:
    arr = np.asarray(value, dtype=float) if _is_number_list(value) else None
    require(arr is not None and arr.shape == (n,) and bool(np.all(np.isfinite(arr))), where,
            f"must be a list of {n} finite numbers, got {value!r}")
    return tuple(float(v) for v in arr)


def _is_number_list(value) -> bool:
    return (isinstance(value, (list, tuple))
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _fraction(value: float, where: str) -> None:
    require(0.0 < value <= 1.0, where, f"must be a scaling factor in (0, 1], got {value}")


@dataclass(frozen=True)
class TcpOffset:
    """Pose of the tool centre point in the tip frame.

    Attributes:
        xyz: (3,) metres.
        rpy: (3,) radians, roll-pitch-yaw (scipy 'xyz' extrinsic, as URDF).
    """

    xyz: tuple = (0.0, 0.0, 0.0)
    rpy: tuple = (0.0, 0.0, 0.0)

    def validate(self, where: str) -> None:
        object.__setattr__(self, "xyz", _vector(self.xyz, 3, f"{where}.xyz"))
        object.__setattr__(self, "rpy", _vector(self.rpy, 3, f"{where}.rpy"))
        require(float(np.linalg.norm(self.xyz)) < 0.5, f"{where}.xyz",
                f"a TCP {np.linalg.norm(self.xyz):.3f} m from the flange is implausible; give metres, not mm")

    def transform(self) -> RigidTransform:
        """T_tip_tcp: maps TCP-frame points into the tip frame."""
        return RigidTransform.from_xyz_euler(self.xyz, self.rpy, "xyz")


@dataclass(frozen=True)
class GripperConfig:
    """Which end effector is mounted and how to drive it.

    Attributes:
        type: 'suction' or 'parallel'.
        driver: key of :data:`GRIPPER_DRIVERS`.
        service: service name (xarm_vacuum, ur_tool_io, xarm_gripper).
        action: GripperCommand action name (robotiq).
        io_pin: UR tool digital output pin (16 or 17) for ur_tool_io.
        open_position, closed_position: robotiq: metres of finger travel (0 = open on Robotiq 2F);
            xarm_gripper: pulse units 0-850 (850 = open).
        max_effort: robotiq action max_effort in newtons (0 = driver default).
        timeout_s: how long to wait for the service / action before HardwareError.
        settle_s: pause after switching, for the vacuum to build up or the fingers to close.
    """

    type: str = "suction"
    driver: str = "sim"
    service: str = ""
    action: str = ""
    io_pin: int = 16
    open_position: float = 0.0
    closed_position: float = 0.0
    max_effort: float = 0.0
    timeout_s: float = 3.0
    settle_s: float = 0.3

    def validate(self, where: str) -> None:
        require(self.type in GRIPPER_TYPES, f"{where}.type", f"must be one of {list(GRIPPER_TYPES)}, got {self.type!r}")
        require(self.driver in GRIPPER_DRIVERS, f"{where}.driver",
                f"must be one of {sorted(GRIPPER_DRIVERS)}, got {self.driver!r}")
        implements = GRIPPER_DRIVERS[self.driver]
        require(implements in (None, self.type), f"{where}.driver",
                f"{self.driver!r} drives a {implements} gripper but type is {self.type!r}; change one of them")
        if self.driver in ("xarm_vacuum", "ur_tool_io", "xarm_gripper"):
            require(bool(self.service), f"{where}.service", f"{self.driver} needs the service name, e.g. "
                    + {"xarm_vacuum": "/xarm/set_vacuum_gripper", "ur_tool_io": "/io_and_status_controller/set_io",
                       "xarm_gripper": "/xarm/set_gripper_position"}[self.driver])
        if self.driver == "robotiq":
            require(bool(self.action), f"{where}.action",
                    "robotiq needs the GripperCommand action name, e.g. /robotiq_gripper_controller/gripper_cmd")
        if self.driver == "ur_tool_io":
            require(isinstance(self.io_pin, int) and self.io_pin in UR_TOOL_PINS, f"{where}.io_pin",
                    f"UR tool digital outputs are pins {list(UR_TOOL_PINS)}, got {self.io_pin!r}")
        if self.driver == "xarm_gripper":
            for key in ("open_position", "closed_position"):
                require(0.0 <= getattr(self, key) <= 850.0, f"{where}.{key}",
                        f"xArm gripper positions are pulses 0-850, got {getattr(self, key)}")
        require(self.timeout_s > 0, f"{where}.timeout_s", f"must be > 0 seconds, got {self.timeout_s}")
        require(self.settle_s >= 0, f"{where}.settle_s", f"must be >= 0 seconds, got {self.settle_s}")
        require(self.max_effort >= 0, f"{where}.max_effort", f"must be >= 0 N, got {self.max_effort}")


@dataclass(frozen=True)
class SpeedConfig:
    """MoveIt velocity / acceleration scaling factors, each in (0, 1].

    Attributes:
        velocity_scaling, acceleration_scaling: free-space (OMPL) moves.
        linear_velocity_scaling, linear_acceleration_scaling: straight-line descents and lifts
            (Pilz LIN). MoveIt does not honour acceleration scaling tightly; these are comfort
            settings, not a safety limit (the safety envelope is).
        max_tcp_speed: m/s that a RobotPort ``speed`` maps to scaling fraction 1.0.
    """

    velocity_scaling: float = 0.2
    acceleration_scaling: float = 0.2
    linear_velocity_scaling: float = 0.05
    linear_acceleration_scaling: float = 0.05
    max_tcp_speed: float = 0.25

    def validate(self, where: str) -> None:
        for f in dataclasses.fields(self):
            if f.name != "max_tcp_speed":
                _fraction(getattr(self, f.name), f"{where}.{f.name}")
        require(0.0 < self.max_tcp_speed <= 2.0, f"{where}.max_tcp_speed",
                f"must be a TCP speed in (0, 2] m/s, got {self.max_tcp_speed}")

    def fraction(self, speed_mps: float) -> float:
        """RobotPort speed (m/s) -> fraction in (0, 1] of the scaling factors (approximate:
        MoveIt scales joint velocities, ``max_tcp_speed`` is the TCP speed taken as scaling 1)."""
        if not (np.isfinite(speed_mps) and speed_mps > 0):
            raise ConfigError(f"speed must be > 0 m/s, got {speed_mps}")
        return float(min(1.0, speed_mps / self.max_tcp_speed))


@dataclass(frozen=True)
class LaunchInclude:
    """A launch file of another package that deploy.launch.py includes.

    Attributes:
        package: ROS package holding the launch file (e.g. ur_moveit_config).
        file: launch file name under the package's ``launch/`` directory.
        args: launch arguments, all passed as strings.
        distro_args: extra arguments per ROS distro ({'jazzy': {...}, 'humble': {...}}), for
            arguments that were renamed (UR: use_mock_hardware on Jazzy, use_fake_hardware on Humble).
    """

    package: str = ""
    file: str = ""
    args: Mapping = field(default_factory=dict)
    distro_args: Mapping = field(default_factory=dict)

    def validate(self, where: str) -> None:
        require(bool(self.package), f"{where}.package", "name the ROS package holding the launch file")
        require(self.file.endswith(".launch.py") or self.file.endswith(".launch.xml"), f"{where}.file",
                f"must be a launch file name such as ur_moveit.launch.py, got {self.file!r}")
        require(isinstance(self.args, Mapping), f"{where}.args", "must be a mapping of argument -> value")
        require(isinstance(self.distro_args, Mapping) and set(self.distro_args) <= set(DISTROS),
                f"{where}.distro_args", f"must map ROS distros {list(DISTROS)} to argument mappings")
        object.__setattr__(self, "args", MappingProxyType({str(k): _launch_str(v) for k, v in self.args.items()}))
        object.__setattr__(self, "distro_args", MappingProxyType({
            d: MappingProxyType({str(k): _launch_str(v) for k, v in (a or {}).items()})
            for d, a in self.distro_args.items()}))

    def arguments(self, distro: str) -> dict:
        """All launch arguments for ``distro`` (the distro-specific ones override)."""
        if distro not in DISTROS:
            raise ConfigError(f"ROS distro {distro!r} is not supported; use one of {list(DISTROS)}")
        return {**self.args, **self.distro_args.get(distro, {})}


def _launch_str(value) -> str:
    """Launch arguments are strings; YAML booleans become 'true'/'false' as ROS launch expects."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class MoveItConfig:
    """How MoveIt is started and how the adapter plans.

    Attributes:
        launches: launch files for the real robot (driver, then MoveIt), included in order.
        sim_launches: launch files for ``use_sim_robot:=true`` (ros2_control mock hardware).
        pipeline, planner_id: free-space planner (OMPL RRTConnect by default).
        linear_pipeline, linear_planner_id: straight-line planner (Pilz LIN).
        planning_time: seconds per plan; planning_attempts: attempts per plan.
        moveit_cpp_file: YAML (under config/ros/) with the moveit_cpp settings MoveItPy needs
            (planning_pipelines.pipeline_names, plan_request_params, planning scene monitor).
        builder: how deploy.launch.py builds MoveItPy's parameters: 'moveit_configs_utils'
            (MoveItConfigsBuilder; UR) or 'uf_ros_lib' (xArm's own MoveItConfigsBuilder).
        builder_args: keyword arguments of that builder (moveit_configs_utils: robot_name,
            package_name, optional srdf_file + srdf_mappings; uf_ros_lib: robot_type, dof, ...).
    """

    launches: tuple = ()
    sim_launches: tuple = ()
    pipeline: str = "ompl"
    planner_id: str = "RRTConnectkConfigDefault"
    linear_pipeline: str = "pilz_industrial_motion_planner"
    linear_planner_id: str = "LIN"
    planning_time: float = 2.0
    planning_attempts: int = 5
    moveit_cpp_file: str = "moveit_cpp.yaml"
    builder: str = "moveit_configs_utils"
    builder_args: Mapping = field(default_factory=dict)

    def validate(self, where: str) -> None:
        require(self.builder in BUILDERS, f"{where}.builder", f"must be one of {list(BUILDERS)}, got {self.builder!r}")
        require(isinstance(self.builder_args, Mapping), f"{where}.builder_args", "must be a mapping")
        object.__setattr__(self, "builder_args", MappingProxyType(dict(self.builder_args)))
        for key in ("launches", "sim_launches"):
            value = getattr(self, key)
            require(isinstance(value, (list, tuple)), f"{where}.{key}", "must be a list of {package, file, args}")
            object.__setattr__(self, key, tuple(
                v if isinstance(v, LaunchInclude) else from_mapping(LaunchInclude, v, f"{where}.{key}[{i}]")
                for i, v in enumerate(value)))
        require(self.planning_time > 0, f"{where}.planning_time", f"must be > 0 s, got {self.planning_time}")
        require(isinstance(self.planning_attempts, int) and self.planning_attempts >= 1,
                f"{where}.planning_attempts", f"must be an integer >= 1, got {self.planning_attempts!r}")
        require(bool(self.pipeline) and bool(self.linear_pipeline), where, "pipeline names must not be empty")


@dataclass(frozen=True)
class TableConfig:
    """The table as a MoveIt collision box, in the base frame.

    Attributes:
        size: (3,) box edge lengths in metres (x, y, z).
        center: (3,) box centre in metres; the table top is at center z + size z / 2.
    """

    size: tuple = (1.2, 1.6, 0.04)
    center: tuple = (0.5, 0.0, -0.021)

    def validate(self, where: str) -> None:
        object.__setattr__(self, "size", _vector(self.size, 3, f"{where}.size"))
        object.__setattr__(self, "center", _vector(self.center, 3, f"{where}.center"))
        require(min(self.size) > 0, f"{where}.size", f"edges must be > 0 m, got {list(self.size)}")

    @property
    def top_z(self) -> float:
        """Height of the table surface in the base frame, metres."""
        return self.center[2] + self.size[2] / 2.0


@dataclass(frozen=True)
class RobotConfig:
    """One robot: arm, frames, tool, gripper, speeds and how to start MoveIt.

    Attributes:
        name: config name (file stem).
        driver: 'ur', 'xarm' or 'sim'.
        planning_group: MoveIt planning group (ur_manipulator, xarm6, xarm7).
        base_frame: frame poses are expressed in (base_link, link_base).
        tip_frame: link MoveIt plans for (tool0, link_eef).
        tcp_offset: TCP pose in tip_frame.
        down_rpy: orientation (roll, pitch, yaw radians, base frame) of the TCP frame for the
            CLIPort identity pose "tool pointing straight down, x along base x"; the default
            (pi, 0, 0) fits a TCP whose z axis points out of the flange (UR tool0, xArm link_eef).
        joint_names: the group's joints in order.
        home_joints: (n_joints,) radians, the pose the arm starts and ends each trial in.
        gripper, speeds, moveit, table: see the section classes.
        motion: keys of :class:`sim2real.motion.MotionConfig` (approach_height, grasp_depth,
            speeds {...}); validated at load.
        safety: keys of :class:`sim2real.safety.SafetyEnvelope` (margin_m, max_tilt_deg, reach...).
        twin: free-form settings of the PyBullet twin (validated by sim2real.twin).
    """

    name: str
    driver: str
    planning_group: str
    base_frame: str
    tip_frame: str
    joint_names: tuple
    home_joints: tuple
    tcp_offset: TcpOffset = field(default_factory=TcpOffset)
    down_rpy: tuple = (np.pi, 0.0, 0.0)
    gripper: GripperConfig = field(default_factory=GripperConfig)
    speeds: SpeedConfig = field(default_factory=SpeedConfig)
    moveit: MoveItConfig = field(default_factory=MoveItConfig)
    table: TableConfig = field(default_factory=TableConfig)
    motion: Mapping = field(default_factory=dict)
    safety: Mapping = field(default_factory=dict)
    twin: Mapping = field(default_factory=dict)

    def validate(self, where: str) -> None:
        require(self.driver in DRIVERS, f"{where}.driver", f"must be one of {list(DRIVERS)}, got {self.driver!r}")
        for key in ("name", "planning_group", "base_frame", "tip_frame"):
            require(bool(getattr(self, key)), f"{where}.{key}", "must not be empty")
        require(isinstance(self.joint_names, (list, tuple)) and len(self.joint_names) >= 1
                and all(isinstance(j, str) and j for j in self.joint_names), f"{where}.joint_names",
                "must be a non-empty list of joint names, in the planning group's order")
        require(len(set(self.joint_names)) == len(self.joint_names), f"{where}.joint_names", "has duplicates")
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        home = _vector(self.home_joints, len(self.joint_names), f"{where}.home_joints")
        require(all(abs(q) <= 2 * np.pi for q in home), f"{where}.home_joints",
                f"joint angles are radians within +-2pi, got {list(home)}; convert degrees with math.radians")
        object.__setattr__(self, "home_joints", home)
        object.__setattr__(self, "down_rpy", _vector(self.down_rpy, 3, f"{where}.down_rpy"))
        for key in ("motion", "safety"):
            require(isinstance(getattr(self, key), Mapping), f"{where}.{key}", "must be a mapping")
            object.__setattr__(self, key, MappingProxyType(dict(getattr(self, key))))
        self.motion_config(where)
        self.safety_envelope(where=where)
        require(isinstance(self.twin, Mapping), f"{where}.twin", "must be a mapping")
        object.__setattr__(self, "twin", MappingProxyType(dict(self.twin)))
        if self.driver in ("ur", "xarm"):
            require(len(self.moveit.launches) > 0, f"{where}.moveit.launches",
                    "a real arm needs the driver / MoveIt launch files to include")
            require(len(self.moveit.sim_launches) > 0, f"{where}.moveit.sim_launches",
                    "give the mock-hardware launch files used by use_sim_robot:=true")
            require(self.gripper.driver != "sim", f"{where}.gripper.driver",
                    f"a real arm needs a real gripper driver, one of {sorted(set(GRIPPER_DRIVERS) - {'sim'})}")

    def motion_config(self, where: str = "robot config"):
        """The :class:`sim2real.motion.MotionConfig` of the ``motion`` section (defaults if empty)."""
        from sim2real.motion import MotionConfig

        return from_mapping(MotionConfig, dict(self.motion), f"{where}.motion")

    def safety_envelope(self, workspace=None, where: str = "robot config"):
        """The :class:`sim2real.safety.SafetyEnvelope` of the ``safety`` section on ``workspace``."""
        from sim2real.safety import SafetyEnvelope

        data = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.safety.items()}
        require("workspace" not in data, f"{where}.safety.workspace",
                "the workspace comes from the calibration, not the robot config")
        env = from_mapping(SafetyEnvelope, data, f"{where}.safety")
        return env if workspace is None else env.with_workspace(workspace)

    @property
    def dof(self) -> int:
        """Number of joints in the planning group."""
        return len(self.joint_names)

    def tip_pose(self, tcp_xyz, tcp_quat_xyzw) -> tuple[np.ndarray, np.ndarray]:
        """Tip-frame pose (xyz, quat_xyzw) in the base frame that puts the TCP at the given pose.

        T_base_tip = T_base_tcp @ inv(T_tip_tcp).
        """
        T_base_tcp = RigidTransform.from_xyz_quat(tcp_xyz, tcp_quat_xyzw)
        return (T_base_tcp @ self.tcp_offset.transform().inverse()).as_xyz_quat()

    def tcp_orientation(self, cliport_quat_xyzw) -> np.ndarray:
        """TCP quaternion (x, y, z, w) in the base frame for a RobotPort / CLIPort orientation.

        RobotPort poses use the CLIPort convention (identity = tool pointing down); the TCP
        frame's own orientation is that rotation applied to ``down_rpy``.
        """
        from scipy.spatial.transform import Rotation

        q = np.asarray(cliport_quat_xyzw, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
            raise ConfigError(f"orientation must be a quaternion (x, y, z, w), got {q.tolist()}")
        return (Rotation.from_quat(q) * Rotation.from_euler("xyz", self.down_rpy)).as_quat()

    def cliport_orientation(self, tcp_quat_xyzw) -> np.ndarray:
        """Inverse of :meth:`tcp_orientation`."""
        from scipy.spatial.transform import Rotation

        return (Rotation.from_quat(tcp_quat_xyzw) * Rotation.from_euler("xyz", self.down_rpy).inv()).as_quat()

    def tcp_pose(self, tip_xyz, tip_quat_xyzw) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :meth:`tip_pose`: TCP pose in the base frame from the tip pose."""
        T_base_tip = RigidTransform.from_xyz_quat(tip_xyz, tip_quat_xyzw)
        return (T_base_tip @ self.tcp_offset.transform()).as_xyz_quat()


def robots_dir() -> Path:
    """``config/robots`` of the checkout or install."""
    return config_dir() / "robots"


def available_robots() -> list[str]:
    """Names of the robot configs in ``config/robots`` written in this schema (they have ``driver:``)."""
    try:
        paths = sorted(robots_dir().glob("*.yaml"))
    except ConfigError:
        return []
    names = []
    for p in paths:
        try:
            if "driver" in load_yaml(p):
                names.append(p.stem)
        except ConfigError:
            continue
    return names


def resolve_robot_path(name_or_path) -> Path:
    """A robot name ('ur5') or a YAML path -> the YAML path; ConfigError listing the names."""
    p = Path(str(name_or_path))
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"robot config {p} not found; give a name from {available_robots()} or an existing YAML")
        return p
    candidate = robots_dir() / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown robot {str(name_or_path)!r}; choose one of {available_robots()} "
                          "or pass the path of a robot YAML")
    return candidate


def load_robot_config(name_or_path) -> RobotConfig:
    """Load and validate a robot config by name ('ur5', 'xarm6', 'xarm7', 'sim') or path."""
    path = resolve_robot_path(name_or_path)
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    return robot_config_from_dict(data, str(path))


def robot_config_from_dict(data: Mapping[str, Any], where: str = "robot config") -> RobotConfig:
    """Validate a mapping (a parsed robot YAML) into a :class:`RobotConfig`."""
    return from_mapping(RobotConfig, data, where)
