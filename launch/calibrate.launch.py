"""Hand-eye (eye-to-hand) calibration of the camera against the robot base.

    ros2 launch sim2real calibrate.launch.py robot:=ur5 out:=calibration/ur5_d435.yaml

Starts the robot driver + MoveIt (mock hardware with use_sim_robot:=true; the calibration itself
only reads the flange pose from TF), the camera, RViz and the ``calibrate`` node. Fix the ChArUco board to the flange, then for each of 12+ poses: move the
arm (free-drive / teach pendant) so the camera sees the whole board, let go, and call
``ros2 service call /calibrate/sample std_srvs/srv/Trigger``. ``/calibrate/solve`` computes,
checks and writes the calibration YAML; deploy.launch.py publishes it as a static TF.
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import AnyLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from ament_index_python.packages import get_package_share_directory

ARGUMENTS = [
    DeclareLaunchArgument("robot", default_value="ur5", description="config/robots/ROBOT.yaml: ur5, xarm6, xarm7 or a path."),
    DeclareLaunchArgument("out", default_value="calibration/robot_camera.yaml", description="Calibration YAML to write."),
    DeclareLaunchArgument("board", default_value="", description="ChArUco board YAML; empty = config/calibration/board.yaml."),
    DeclareLaunchArgument("camera", default_value="pyrealsense", choices=["pyrealsense", "realsense2_camera"],
                          description="Camera driver."),
    DeclareLaunchArgument("serial", default_value="", description="RealSense serial number; empty = the only one."),
    DeclareLaunchArgument("use_sim_robot", default_value="false", choices=["true", "false"],
                          description="ros2_control mock hardware instead of the real arm."),
    DeclareLaunchArgument("launch_robot", default_value="true", choices=["true", "false"],
                          description="Include the robot's driver + MoveIt launch files (false: already running)."),
    DeclareLaunchArgument("robot_ip", default_value="", description="Robot IP; empty = the robot config's."),
    DeclareLaunchArgument("rviz", default_value="true", choices=["true", "false"], description="Start RViz."),
]


def _param_values(params: dict) -> dict:
    return {k: ParameterValue(v, value_type=str if isinstance(v, str) else type(v)) for k, v in params.items()}


def _include(spec):
    path = os.path.join(get_package_share_directory(spec.package), "launch", spec.file)
    return IncludeLaunchDescription(AnyLaunchDescriptionSource(path), launch_arguments=list(spec.args.items()))


def _setup(context, *args, **kwargs):
    from sim2real.ros.launch_plan import calibrate_plan

    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in ARGUMENTS}
    plan = calibrate_plan(values)
    share = get_package_share_directory("sim2real")
    actions = [_include(spec) for spec in plan.includes]
    for spec in plan.nodes:
        params = [os.path.join(share, "config", "ros", f"{spec.name}.yaml"), _param_values(spec.params)]
        actions.append(Node(package="sim2real", executable=spec.executable, name=spec.name, output="screen",
                            emulate_tty=True, parameters=params))
    if plan.rviz:
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                            arguments=["-d", os.path.join(share, "config", "rviz", "sim2real.rviz")]))
    return actions


def generate_launch_description():
    return LaunchDescription(ARGUMENTS + [OpaqueFunction(function=_setup)])
