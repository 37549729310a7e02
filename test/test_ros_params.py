"""One source of truth for node parameters: sim2real/ros/params.py -> what each node declares (with
descriptors), config/ros/<node>.yaml, and the README tables."""
import ast
import sys
import types
from pathlib import Path

import pytest
import yaml

from sim2real.errors import ConfigError
from sim2real.ros import params

from ros_fakes import FakeDescriptorModule

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "sim2real" / "ros" / "nodes"


@pytest.mark.parametrize("node", sorted(params.NODES))
def test_yaml_matches_the_schema(node):
    path = ROOT / "config" / "ros" / f"{node}.yaml"
    assert path.is_file(), f"run python -m sim2real.ros.params --write config/ros ({path} missing)"
    assert path.read_text() == params.yaml_text(node), "out of date: python -m sim2real.ros.params --write config/ros"
    values = params.load_node_yaml(path, node)
    assert values == params.defaults(node)
    assert list(yaml.safe_load(path.read_text())[node]["ros__parameters"]) == [p.name for p in params.params_of(node)]


def test_check_cli_detects_drift(tmp_path):
    params.write_all(tmp_path)
    assert params.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "executor.yaml").write_text((tmp_path / "executor.yaml").read_text().replace("confirm", "auto", 1))
    assert params.main(["--check", str(tmp_path)]) == 1


def test_every_default_is_valid_and_names_are_unique():
    for node, plist in params.NODES.items():
        names = [p.name for p in plist]
        assert len(names) == len(set(names)), node
        params.validate(node, params.defaults(node))
        for p in plist:  # rclpy refuses a default whose Python type differs from the descriptor's type
            expected = {"bool": bool, "integer": int, "double": float, "string": str}.get(p.type)
            if expected is not None:
                assert type(p.default) is expected, f"{node}.{p.name}: default {p.default!r} is not a {p.type}"


@pytest.mark.parametrize("values, match", [
    ({"mode": "yolo"}, "one of"),
    ({"confirm_timeout_s": -1.0}, "within"),
    ({"robot": 5}, "expected a string"),
    ({"go_home": "yes"}, "expected a bool"),
    ({"mod": "auto"}, "unknown parameter"),
])
def test_bad_values_are_config_errors(values, match):
    with pytest.raises(ConfigError, match=match):
        params.validate("executor", values)


def test_task_strings_that_look_like_yaml_stay_strings():
    for text in ("yes", "1", "a: b", "[x]", "build wheel"):
        assert params.validate("trials", {"task": text})["task"] == text


def test_pipeline_is_the_union_of_its_stages():
    union = set()
    for stage in params.COMBINED_STAGES:
        union |= {p.name for p in params.params_of(stage)}
    assert {p.name for p in params.params_of("pipeline")} == union


def test_load_node_yaml_rejects_unknown_keys(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("heightmap:\n  ros__parameters:\n    colour_topic: /x\n")
    with pytest.raises(ConfigError, match="colour_topic"):
        params.load_node_yaml(path, "heightmap")
    path.write_text("/**:\n  ros__parameters:\n    base_frame: link_base\n")
    assert params.load_node_yaml(path, "heightmap")["base_frame"] == "link_base"


# --------------------------------------------------------------------- what the nodes really declare

class RecordingNode:
    def __init__(self, overrides=None):
        self.declared, self.overrides = {}, overrides or {}

    def declare_parameter(self, name, value, descriptor):
        assert name not in self.declared, f"{name} declared twice"
        self.declared[name] = (value, descriptor)
        return types.SimpleNamespace(value=self.overrides.get(name, value))


@pytest.fixture
def fake_rcl(monkeypatch):
    pkg = types.ModuleType("rcl_interfaces")
    msg = FakeDescriptorModule("rcl_interfaces.msg")
    pkg.msg = msg
    monkeypatch.setitem(sys.modules, "rcl_interfaces", pkg)
    monkeypatch.setitem(sys.modules, "rcl_interfaces.msg", msg)
    return msg


@pytest.mark.parametrize("node", sorted(params.NODES))
def test_declared_parameters_match_the_yaml(fake_rcl, node):
    handle = RecordingNode()
    values = params.declare(handle, node)
    on_disk = yaml.safe_load((ROOT / "config" / "ros" / f"{node}.yaml").read_text())[node]["ros__parameters"]
    assert list(handle.declared) == list(on_disk)
    assert {k: v for k, (v, _) in handle.declared.items()} == on_disk
    assert values == on_disk
    for name, (_, desc) in handle.declared.items():
        assert desc.name == name and desc.description and desc.read_only in (True, False)


def test_descriptors_carry_types_and_ranges(fake_rcl):
    handle = RecordingNode()
    params.declare(handle, "heightmap")
    _, desc = handle.declared["tf_timeout_s"]
    assert desc.type == fake_rcl.ParameterType.PARAMETER_DOUBLE
    assert (desc.floating_point_range[0].from_value, desc.floating_point_range[0].to_value) == (0.0, 10.0)
    _, desc = handle.declared["queue_size"]
    assert desc.type == fake_rcl.ParameterType.PARAMETER_INTEGER and desc.integer_range[0].to_value == 100


def test_launch_values_are_validated_at_declare(fake_rcl):
    with pytest.raises(ConfigError, match="mode"):
        params.declare(RecordingNode({"mode": "fast"}), "executor")


def _node_modules():
    return sorted(p for p in NODE_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", _node_modules(), ids=lambda p: p.stem)
def test_node_modules_declare_through_the_schema_only(path):
    tree = ast.parse(path.read_text())
    node_names = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and any(getattr(t, "id", None) == "NODE" for t in n.targets)]
    assert node_names, f"{path.name} defines no NODE name"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert not [c for c in calls if getattr(c.func, "attr", None) == "declare_parameter"], \
        "parameters must be declared through sim2real.ros.params.declare (one source of truth)"
    if node_names[0] == "pipeline":
        assert "pipeline" in params.NODES
    else:
        assert node_names[0] in params.NODES
    assert any(getattr(c.func, "id", None) == "declare" for c in calls), f"{path.name} never calls declare()"


def test_docs_embed_the_generated_tables():
    text = (ROOT / "docs" / "ros.md").read_text()
    text += (ROOT / "docs" / "ros_runtime.md").read_text()  # the twin node's table
    for node in params.NODES:
        assert params.markdown_table(node) in text, f"README table of node {node} is out of date"
