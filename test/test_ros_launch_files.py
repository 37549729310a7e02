"""The launch files' own code, executed against a small fake of the launch API: every node gets its
YAML, typed parameter values (ParameterValue(value_type=str) for strings), and MoveIt's params file
where MoveItPy runs. (Parsing alone cannot catch a typo in _setup; this does.)"""
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Recorded(SimpleNamespace):
    pass


def _fake_launch(monkeypatch, share):
    def mod(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, m)
        return m

    class DeclareLaunchArgument:
        def __init__(self, name, default_value="", description="", choices=None):
            self.name, self.default_value, self.choices = name, default_value, choices

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context.values[self.name]

    mod("launch", LaunchDescription=lambda entities: Recorded(entities=entities))
    mod("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument, OpaqueFunction=lambda function: function,
        IncludeLaunchDescription=lambda source, launch_arguments=(): Recorded(kind="include", source=source,
                                                                              args=dict(launch_arguments)))
    mod("launch.launch_description_sources", AnyLaunchDescriptionSource=lambda path: path)
    mod("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
    mod("launch_ros")
    mod("launch_ros.actions", Node=lambda **kw: Recorded(kind="node", **kw))
    mod("launch_ros.parameter_descriptions",
        ParameterValue=lambda value, value_type=None: Recorded(value=value, value_type=value_type))
    mod("ament_index_python")
    mod("ament_index_python.packages", get_package_share_directory=lambda pkg: str(share / pkg))


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), ROOT / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_setup(monkeypatch, tmp_path, name, **values):
    _fake_launch(monkeypatch, tmp_path)
    module = load(name)
    written = []

    def fake_moveit_file(config, path, context=None, share_dir=None, fake=False, node_name="moveit_py"):
        written.append((config.name, fake))
        return str(path)

    monkeypatch.setattr("sim2real.ros.launch_plan.moveit_params_file", fake_moveit_file)
    defaults = {a.name: a.default_value for a in module.ARGUMENTS}
    context = SimpleNamespace(values={**defaults, **values})
    description = module.generate_launch_description()
    setup = description.entities[-1]
    return setup(context), written


def nodes(actions):
    return {a.name: a for a in actions if a.kind == "node"}


def params_of(node):
    out = {}
    for p in node.parameters:
        if isinstance(p, dict):
            out.update(p)
    return out


def test_deploy_setup_builds_typed_nodes(monkeypatch, tmp_path):
    actions, written = run_setup(monkeypatch, tmp_path, "deploy.launch.py", task="yes", checkpoint="/m.ckpt",
                                 calibration="calibration/ur5.yaml", mode="auto")
    found = nodes(actions)
    assert set(found) == {"camera", "calibration_tf", "pipeline", "trials", "rviz2"}
    task = params_of(found["trials"])["task"]
    assert (task.value, task.value_type) == ("yes", str)
    trials = params_of(found["trials"])["trials"]
    assert (trials.value, trials.value_type) == (10, int)
    pipeline = found["pipeline"]
    assert pipeline.parameters[0].endswith("config/ros/pipeline.yaml") and pipeline.executable == "pipeline_node"
    assert pipeline.parameters[-1].endswith(".yaml") and written == [("ur5", False)]  # MoveIt params file
    includes = [a for a in actions if a.kind == "include"]
    assert [Path(i.source).name for i in includes] == ["ur_control.launch.py", "ur_moveit.launch.py"]
    assert found["rviz2"].arguments[-1].endswith("config/rviz/sim2real.rviz")


def test_deploy_setup_dry_run_sim_robot_without_rviz(monkeypatch, tmp_path):
    actions, written = run_setup(monkeypatch, tmp_path, "deploy.launch.py", task="build wheel",
                                 checkpoint="/m.ckpt", calibration="c.yaml", mode="dry_run", use_sim_robot="true",
                                 rviz="false", pipeline="false", robot="xarm7")
    assert written == []  # dry_run: no MoveItPy, no MoveIt params
    assert set(nodes(actions)) == {"camera", "calibration_tf", "heightmap", "policy", "executor", "trials"}
    (include,) = [a for a in actions if a.kind == "include"]
    assert Path(include.source).name == "xarm7_moveit_fake.launch.py"


def test_calibrate_setup(monkeypatch, tmp_path):
    actions, _ = run_setup(monkeypatch, tmp_path, "calibrate.launch.py", robot="xarm6", out="calibration/x.yaml")
    found = nodes(actions)
    assert set(found) == {"camera", "calibrate", "rviz2"}
    assert params_of(found["calibrate"])["out"].value == "calibration/x.yaml"
    assert params_of(found["calibrate"])["base_frame"].value == "link_base"


def test_bad_argument_fails_at_launch_time(monkeypatch, tmp_path):
    from sim2real.errors import ConfigError

    with pytest.raises(ConfigError, match="task is required"):
        run_setup(monkeypatch, tmp_path, "deploy.launch.py", checkpoint="/m.ckpt", calibration="c.yaml")
