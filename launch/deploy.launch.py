"""Run a policy on the real robot (or on ros2_control mock hardware).

    ros2 launch sim2real deploy.launch.py task:="build wheel" robot:=ur5 \
        checkpoint:=/models/gensim.ckpt calibration:=calibration/ur5_d435.yaml mode:=confirm

With robot:=sim the digital twin node stands in for the driver, MoveIt and the camera
(checkpoint:=oracle uses its ground truth), see docs/ros_runtime.md.

Starts: the robot driver + MoveIt (from config/robots/ROBOT.yaml; mock hardware with
use_sim_robot:=true), the camera (sim2real's pyrealsense node or Intel's realsense2_camera),
the calibration as a static TF, the heightmap / policy / executor stages (one process with
pipeline:=true, three nodes otherwise), the trials node, and RViz. Every argument is listed
in README, "Running on the real robot".
"""
import os
import tempfile

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from ament_index_python.packages import get_package_share_directory

ARGUMENTS = [
    DeclareLaunchArgument("task", default_value="", description="Task name or alias, e.g. \"build wheel\" (required)."),
    DeclareLaunchArgument("goal", default_value="", description="Language goal; empty = the task's template."),
    DeclareLaunchArgument("robot", default_value="ur5", description="config/robots/ROBOT.yaml: ur5, xarm6, xarm7 or a path; "
                          "sim = the digital twin node instead of driver + MoveIt + camera."),
    DeclareLaunchArgument("checkpoint", default_value="", description="Policy checkpoint .ckpt (required)."),
    DeclareLaunchArgument("camera", default_value="pyrealsense", choices=["pyrealsense", "realsense2_camera"],
                          description="Camera driver."),
    DeclareLaunchArgument("serial", default_value="", description="RealSense serial number; empty = the only one."),
    DeclareLaunchArgument("calibration", default_value="", description="Calibration YAML from calibrate.launch.py (required)."),
    DeclareLaunchArgument("trials", default_value="10", description="Trials of the task."),
    DeclareLaunchArgument("max_steps", default_value="0", description="Steps per trial; 0 = the task's budget."),
    DeclareLaunchArgument("out", default_value="trials/ros", description="Trial log directory (resumed if it exists)."),
    DeclareLaunchArgument("mode", default_value="confirm", choices=["auto", "confirm", "dry_run"],
                          description="auto, confirm (approve each motion) or dry_run (never move)."),
    DeclareLaunchArgument("use_sim_robot", default_value="false", choices=["true", "false"],
                          description="ros2_control mock hardware instead of the real arm."),
    DeclareLaunchArgument("launch_robot", default_value="true", choices=["true", "false"],
                          description="Include the robot's driver + MoveIt launch files (false: already running)."),
    DeclareLaunchArgument("robot_ip", default_value="", description="Robot IP; empty = the robot config's."),
    DeclareLaunchArgument("pipeline", default_value="true", choices=["true", "false"],
                          description="Heightmap, policy and executor in one process (false: three nodes)."),
    DeclareLaunchArgument("start_policy", default_value="true", choices=["true", "false"],
                          description="Start the policy here (false: it runs on another machine; needs pipeline:=false)."),
    DeclareLaunchArgument("device", default_value="cpu", choices=["cpu", "cuda"], description="Torch device of the policy."),
    DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"], description="Start RViz."),
]


def _param_values(params: dict) -> dict:
    # Launch YAML-parses substitution values; ParameterValue(value_type=...) keeps the declared type,
    # so task:="yes" or task:="a: b" stays a string.
    out = {}
    for key, value in params.items():
        kind = str if isinstance(value, str) else type(value)
        out[key] = ParameterValue(value, value_type=kind)
    return out


def _include(spec):
    path = os.path.join(get_package_share_directory(spec.package), "launch", spec.file)
    return IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=list(spec.args.items()))


def _setup(context, *args, **kwargs):
    from sim2real.ros.launch_plan import deploy_plan, moveit_params_file

    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in ARGUMENTS}
    plan = deploy_plan(values)
    share = get_package_share_directory("sim2real")
    moveit_file = None
    if plan.moveit_robot is not None:
        tmp = tempfile.NamedTemporaryFile(prefix="sim2real_moveit_", suffix=".yaml", delete=False)
        moveit_file = moveit_params_file(plan.moveit_robot, tmp.name, context, share,
                                         fake=values["use_sim_robot"] == "true")
    actions = [_include(spec) for spec in plan.includes]
    for spec in plan.nodes:
        params = [os.path.join(share, "config", "ros", f"{spec.name}.yaml"), _param_values(spec.params)]
        if moveit_file and spec.name in ("executor", "pipeline"):
            params.append(moveit_file)
        actions.append(Node(package="sim2real", executable=spec.executable, name=spec.name, output="screen",
                            emulate_tty=True, parameters=params))
    if plan.rviz:
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                            arguments=["-d", os.path.join(share, "config", "rviz", "sim2real.rviz")]))
    return actions


def generate_launch_description():
    return LaunchDescription(ARGUMENTS + [OpaqueFunction(function=_setup)])
