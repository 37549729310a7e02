"""ament_python packaging: package.xml validates with catkin_pkg, every console script points at an
importable main(), node modules import without ROS and main() says what to install, and no ROS
import happens at module level anywhere in sim2real."""
import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = {"rclpy", "moveit", "moveit_msgs", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs", "tf2_ros",
               "message_filters", "launch", "launch_ros", "rcl_interfaces", "shape_msgs", "control_msgs",
               "xarm_msgs", "ur_msgs", "moveit_configs_utils", "uf_ros_lib", "ament_index_python", "cv_bridge"}


def test_package_xml_validates_with_catkin_pkg():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    pkg = catkin_pkg.parse_package(str(ROOT / "package.xml"))
    pkg.validate()
    assert pkg.name == "sim2real" and pkg.package_format == 3
    assert [e.content for e in pkg.exports if e.tagname == "build_type"] == ["ament_python"]
    deps = {d.name for d in pkg.exec_depends}
    for needed in ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "std_srvs", "tf2_ros_py", "message_filters",
                   "moveit_py", "moveit_msgs", "shape_msgs", "rcl_interfaces", "launch_ros", "control_msgs"):
        assert needed in deps, f"package.xml lacks <exec_depend>{needed}</exec_depend>"


def _console_scripts():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if isinstance(k, ast.Constant) and k.value == "console_scripts":
                    return [ast.literal_eval(e) for e in v.elts]
    raise AssertionError("setup.py has no console_scripts")


SCRIPTS = _console_scripts()
NODE_SCRIPTS = [s for s in SCRIPTS if ".ros.nodes." in s]


def test_every_node_module_has_a_console_script():
    modules = {s.split("=")[1].strip().split(":")[0] for s in NODE_SCRIPTS}
    on_disk = {f"sim2real.ros.nodes.{p.stem}" for p in (ROOT / "sim2real/ros/nodes").glob("*.py")
               if not p.name.startswith("_")}
    assert modules == on_disk


@pytest.mark.parametrize("entry", SCRIPTS, ids=lambda s: s.split("=")[0].strip())
def test_console_script_points_at_an_importable_main(entry):
    name, target = (x.strip() for x in entry.split("="))
    module, func = target.split(":")
    assert name and func == "main"
    mod = importlib.import_module(module)
    assert callable(getattr(mod, func))


@pytest.mark.parametrize("entry", NODE_SCRIPTS, ids=lambda s: s.split("=")[0].strip())
def test_node_main_without_ros_says_what_to_install(entry):
    """Runs in a subprocess with the ROS modules blocked, so it checks the message where ROS is installed too."""
    module = entry.split("=")[1].strip().split(":")[0]
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {sorted(ROS_MODULES)!r}:\n"
        "            raise ImportError('No module named ' + repr(name))\n"
        "sys.meta_path.insert(0, Block())\n"
        f"import {module} as m\n"
        "sys.exit(m.main([]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    err = out.stderr
    assert "rclpy" in err and "source /opt/ros/jazzy/setup.bash" in err and "colcon build" in err


def test_node_modules_import_with_ros_blocked():
    """Even where ROS is installed, importing the node modules must not import it."""
    code = (
        "import sys, importlib\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {sorted(ROS_MODULES)!r}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pkgutil, sim2real.ros, sim2real.ros.nodes\n"
        "for m in pkgutil.walk_packages(sim2real.ros.__path__, 'sim2real.ros.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _top_level_imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]
        elif isinstance(node, (ast.If, ast.Try)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    yield from (a.name.split(".")[0] for a in sub.names)
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    yield sub.module.split(".")[0]


@pytest.mark.parametrize("path", sorted((ROOT / "sim2real").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_level_ros_import(path):
    bad = sorted(set(_top_level_imports(path)) & ROS_MODULES - {"ament_index_python"})
    assert not bad, f"{path}: import {bad} inside functions (ROS is optional)"


def test_launch_and_config_files_are_installed_by_setup_py():
    text = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in text and 'tree("config")' in text
    for path in ("config/ros/moveit_cpp.yaml", "config/rviz/sim2real.rviz", "config/robots/ur5.yaml",
                 "launch/deploy.launch.py", "launch/calibrate.launch.py", "resource/sim2real"):
        assert (ROOT / path).exists(), path
