"""Launch files, read with ast (no ROS needed): their arguments match the README table, string
parameters are typed with ParameterValue(value_type=str), and the launch plan (which nodes, which
parameters, which robot / camera launch files) is what README promises."""
import ast
import re
from pathlib import Path

import pytest

from sim2real.errors import ConfigError
from sim2real.ros import launch_plan as lp
from sim2real.ros.params import REALSENSE2_CAMERA_TOPICS, SIM2REAL_CAMERA_TOPICS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = ["deploy.launch.py", "calibrate.launch.py"]


def declared_arguments(path: Path) -> list:
    """[(name, default, choices)] of every DeclareLaunchArgument in a launch file, in order."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            kw = {k.arg: k.value for k in node.keywords}
            choices = [ast.literal_eval(e) for e in kw["choices"].elts] if "choices" in kw else []
            assert "description" in kw, f"{path.name}: argument {ast.literal_eval(node.args[0])} has no description"
            out.append((ast.literal_eval(node.args[0]), ast.literal_eval(kw["default_value"]), choices))
    return out


def readme_text() -> str:
    """The ROS page (README links to it): launch argument tables live there."""
    return (ROOT / "docs" / "ros.md").read_text()


def readme_arguments(launch_file: str) -> list:
    """Rows of the table under the heading that names ``launch_file`` ... 'arguments'."""
    lines = readme_text().splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("#") and f"`{launch_file}`" in line and "arguments" in line)
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            default = cells[1].strip("`")
            rows.append((cells[0].strip("`"), "" if default == '""' else default,
                         re.findall(r"`([^`]*)`", cells[2])))
    return rows


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_arguments_match_readme(name):
    declared = declared_arguments(ROOT / "launch" / name)
    assert declared, f"{name} declares no arguments"
    assert readme_arguments(name) == declared


def test_deploy_has_the_arguments_the_issue_names():
    names = {a[0] for a in declared_arguments(ROOT / "launch" / "deploy.launch.py")}
    assert {"task", "robot", "checkpoint", "camera", "calibration", "trials", "mode", "use_sim_robot", "rviz"} <= names
    choices = {a[0]: a[2] for a in declared_arguments(ROOT / "launch" / "deploy.launch.py")}
    assert choices["camera"] == ["pyrealsense", "realsense2_camera"]
    assert choices["mode"] == ["auto", "confirm", "dry_run"]


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_node_parameters_are_typed_with_parameter_value(name):
    tree = ast.parse((ROOT / "launch" / name).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "ParameterValue"]
    assert calls and all(any(k.arg == "value_type" for k in c.keywords) for c in calls)
    source = (ROOT / "launch" / name).read_text()
    assert "value_type=str if isinstance(v, str)" in source or "kind = str if isinstance(value, str)" in source


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_files_compile(name):
    compile((ROOT / "launch" / name).read_text(), name, "exec")


# ------------------------------------------------------------------------------------- the plan

def args(**kw):
    base = {a[0]: a[1] for a in declared_arguments(ROOT / "launch" / "deploy.launch.py")}
    base.update(task="build wheel", checkpoint="/models/gensim.ckpt", calibration="calibration/ur5.yaml")
    base.update(kw)
    return base


def node(plan, name):
    return next(n for n in plan.nodes if n.name == name)


@pytest.mark.parametrize("task", ["build wheel", "yes", "1", "a: b", "[x, y]"])
def test_task_is_passed_as_a_string(task):
    plan = lp.deploy_plan(args(task=task), env={"ROS_DISTRO": "jazzy"})
    assert node(plan, "trials").params["task"] == task


def test_default_plan_real_ur5_with_pyrealsense_and_pipeline():
    plan = lp.deploy_plan(args(), env={"ROS_DISTRO": "jazzy"})
    assert [n.name for n in plan.nodes] == ["camera", "calibration_tf", "pipeline", "trials"]
    assert [(i.package, i.file) for i in plan.includes] == [("ur_robot_driver", "ur_control.launch.py"),
                                                            ("ur_moveit_config", "ur_moveit.launch.py")]
    assert plan.includes[0].args["robot_ip"] == "192.168.1.102"
    pipeline = node(plan, "pipeline").params
    assert pipeline["mode"] == "confirm" and pipeline["base_frame"] == "base_link"
    assert {k: pipeline[k] for k in SIM2REAL_CAMERA_TOPICS} == SIM2REAL_CAMERA_TOPICS
    assert plan.rviz and plan.moveit_robot is not None and plan.moveit_robot.name == "ur5"


def test_split_nodes_for_several_machines():
    plan = lp.deploy_plan(args(pipeline="false"), env={})
    assert [n.name for n in plan.nodes] == ["camera", "calibration_tf", "heightmap", "policy", "executor", "trials"]
    assert [n.executable for n in plan.nodes][2:5] == ["heightmap_node", "policy_node", "executor_node"]


@pytest.mark.parametrize("distro, arg", [("jazzy", "use_mock_hardware"), ("humble", "use_fake_hardware")])
def test_use_sim_robot_includes_mock_hardware_for_the_distro(distro, arg):
    plan = lp.deploy_plan(args(use_sim_robot="true"), env={"ROS_DISTRO": distro})
    driver = plan.includes[0]
    assert driver.package == "ur_robot_driver" and driver.args[arg] == "true"
    assert driver.args["robot_ip"] == "0.0.0.0"


def test_xarm_sim_uses_the_fake_moveit_launch():
    plan = lp.deploy_plan(args(robot="xarm7", use_sim_robot="true"), env={})
    assert [(i.package, i.file) for i in plan.includes] == [("xarm_moveit_config", "xarm7_moveit_fake.launch.py")]
    assert node(plan, "pipeline").params["base_frame"] == "link_base"


def test_realsense2_camera_topics_and_no_duplicate_tf():
    plan = lp.deploy_plan(args(camera="realsense2_camera", serial="831612073525"), env={})
    assert "camera" not in [n.name for n in plan.nodes]
    rs = plan.includes[-1]
    assert (rs.package, rs.file) == ("realsense2_camera", "rs_launch.py")
    assert rs.args["align_depth.enable"] == "true" and rs.args["publish_tf"] == "false"
    assert rs.args["serial_no"] == "_831612073525"
    pipeline = node(plan, "pipeline").params
    assert {k: pipeline[k] for k in REALSENSE2_CAMERA_TOPICS} == REALSENSE2_CAMERA_TOPICS


def test_robot_ip_override_and_no_robot_launch():
    plan = lp.deploy_plan(args(robot_ip="10.0.0.5"), env={})
    assert plan.includes[0].args["robot_ip"] == "10.0.0.5"
    plan = lp.deploy_plan(args(launch_robot="false"), env={})
    assert plan.includes == []


def test_dry_run_needs_no_moveit():
    assert lp.deploy_plan(args(mode="dry_run"), env={}).moveit_robot is None


@pytest.mark.parametrize("kw, match", [
    ({"task": ""}, "task is required"),
    ({"calibration": ""}, "calibration is required"),
    ({"checkpoint": ""}, "checkpoint is required"),
    ({"mode": "fast"}, "mode:='fast'"),
    ({"camera": "kinect"}, "camera"),
    ({"use_sim_robot": "maybe"}, "true or false"),
    ({"trials": "ten"}, "whole number"),
    ({"robot": "ur10"}, "unknown robot"),
])
def test_bad_launch_arguments_are_named(kw, match):
    with pytest.raises(ConfigError, match=match):
        lp.deploy_plan(args(**kw), env={})


def test_calibrate_plan():
    base = {a[0]: a[1] for a in declared_arguments(ROOT / "launch" / "calibrate.launch.py")}
    plan = lp.calibrate_plan({**base, "robot": "xarm6", "out": "calibration/xarm6_d435.yaml"}, env={})
    assert [n.name for n in plan.nodes] == ["camera", "calibrate"]
    assert node(plan, "calibrate").params["base_frame"] == "link_base"
    with pytest.raises(ConfigError, match="YAML path"):
        lp.calibrate_plan({**base, "out": "calibration/x.txt"}, env={})


def test_ros_distro_detection():
    assert lp.ros_distro({"ROS_DISTRO": "humble"}) == "humble"
    assert lp.ros_distro({"ROS_DISTRO": "jazzy"}) == "jazzy"
    assert lp.ros_distro({}) == "jazzy"


def test_policy_on_another_machine():
    plan = lp.deploy_plan(args(pipeline="false", start_policy="false", checkpoint=""), env={})
    assert [n.name for n in plan.nodes] == ["camera", "calibration_tf", "heightmap", "executor", "trials"]
    with pytest.raises(ConfigError, match="pipeline:=false"):
        lp.deploy_plan(args(start_policy="false"), env={})


def test_sim_robot_runs_the_graph_on_the_twin_node():
    """robot:=sim: twin_node instead of driver + MoveIt + camera; oracle and the twin calibration by default."""
    plan = lp.deploy_plan(args(robot="sim", checkpoint="", calibration="", pipeline="false", mode="auto"), env={})
    assert [n.name for n in plan.nodes] == ["twin", "calibration_tf", "heightmap", "policy", "executor", "trials"]
    assert plan.includes == [] and plan.moveit_robot is None
    assert node(plan, "executor").params["driver"] == "twin" and node(plan, "executor").params["robot"] == "ur5"
    assert node(plan, "policy").params["checkpoint"] == "oracle"
    assert node(plan, "heightmap").params["calibration"] == lp.TWIN_CALIBRATION
    assert {k: node(plan, "twin").params[k] for k in SIM2REAL_CAMERA_TOPICS} == SIM2REAL_CAMERA_TOPICS
    assert node(plan, "trials").params["policy_name"] == "oracle"
    split = lp.deploy_plan(args(robot="sim", pipeline="false", start_policy="false"), env={})
    assert "policy" not in [n.name for n in split.nodes]
    with pytest.raises(ConfigError, match="pipeline:=false"):
        lp.deploy_plan(args(robot="sim", start_policy="false"), env={})
    combined = lp.deploy_plan(args(robot="sim"), env={})
    assert [n.name for n in combined.nodes] == ["twin", "calibration_tf", "pipeline", "trials"]
