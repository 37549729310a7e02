"""Core types, config loading, the heightmap CLI and its bad-input handling."""
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real import sample_scene
from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.cli import main as cli
from sim2real.config import from_mapping, load_yaml
from sim2real.errors import ConfigError, InputError
from sim2real.frame_io import load_heightmap_npz, save_frame_npz
from sim2real.heightmap import EmptyHeightmapWarning, project_frames
from sim2real.transforms import RigidTransform
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

REPO = Path(__file__).resolve().parents[1]


def test_gensim_workspace_constants():
    assert GENSIM_WORKSPACE.shape == (320, 160)
    np.testing.assert_array_equal(GENSIM_WORKSPACE.bounds, [[0.25, 0.75], [-0.5, 0.5], [0.0, 0.28]])
    assert GENSIM_WORKSPACE.pixel_size == 0.003125


def test_workspace_numbers_are_defined_once():
    """GenSim's bounds and pixel size appear in exactly one module of the package."""
    hits = [p for p in (REPO / "sim2real").rglob("*.py")
            if re.search(r"0\.003125|\[\s*0\.25\s*,\s*0\.75\s*\]|\(\s*0\.25\s*,\s*0\.75\s*\)", p.read_text())]
    assert [p.name for p in hits] == ["workspace.py"]


@pytest.mark.parametrize("bounds, pix, match", [
    ([[0.75, 0.25], [-0.5, 0.5], [0, 0.28]], 0.003125, "min 0.75 must be < max 0.25"),
    ([[0.25, 0.75], [-0.5, 0.5]], 0.003125, "3x2"),
    ([[0.25, 0.75], [-0.5, 0.5], [0, 0.28]], 0.0, "positive"),
    ([[0.25, 0.75], [-0.5, np.nan], [0, 0.28]], 0.003125, "finite"),
])
def test_workspace_rejects_bad_bounds(bounds, pix, match):
    with pytest.raises(ConfigError, match=match):
        Workspace(bounds, pix)


def test_rigid_transform_round_trips():
    rng = np.random.default_rng(0)
    a = RigidTransform(Rotation.random(random_state=1), rng.normal(size=3))
    b = RigidTransform(Rotation.random(random_state=2), rng.normal(size=3))
    np.testing.assert_allclose((a @ b).as_matrix(), a.as_matrix() @ b.as_matrix(), atol=1e-12)
    np.testing.assert_allclose((a @ a.inverse()).as_matrix(), np.eye(4), atol=1e-12)
    p = rng.normal(size=(5, 3))
    np.testing.assert_allclose(a.apply(p), (a.as_matrix() @ np.c_[p, np.ones(5)].T).T[:, :3], atol=1e-12)
    back = RigidTransform.from_matrix(a.as_matrix())
    assert max(back.distance_to(a)) < 1e-12


def test_non_rigid_matrix_is_rejected():
    m = np.eye(4)
    m[0, 0] = 1.1
    with pytest.raises(InputError, match="not rigid"):
        RigidTransform.from_matrix(m)


def test_rgbd_frame_validates_its_arrays():
    K = CameraIntrinsics(4, 3, 2.0, 2.0, 2.0, 1.5)
    color = np.zeros((3, 4, 3), np.uint8)
    RGBDFrame(color, np.ones((3, 4), np.float32), K)
    with pytest.raises(InputError, match="uint8"):
        RGBDFrame(color.astype(np.float32), np.ones((3, 4), np.float32), K)
    with pytest.raises(InputError, match="align depth to color"):
        RGBDFrame(color, np.ones((2, 4), np.float32), K)
    with pytest.raises(InputError, match="no valid reading"):
        RGBDFrame(color, np.full((3, 4), np.nan, np.float32), K)
    with pytest.raises(InputError, match="inf"):
        RGBDFrame(color, np.full((3, 4), np.inf, np.float32), K)
    with pytest.raises(InputError, match="intrinsics are for"):
        RGBDFrame(color, np.ones((3, 4), np.float32), CameraIntrinsics(8, 6, 2, 2, 4, 3))


@dataclasses.dataclass(frozen=True)
class _Speeds:
    transit: float
    approach: float = 0.05

    def validate(self, where):
        if self.transit <= 0:
            raise ConfigError(f"{where}.transit: must be > 0 (got {self.transit})")


@dataclasses.dataclass(frozen=True)
class _Robot:
    name: str
    speeds: _Speeds


def test_config_loading_validates_with_actionable_messages(tmp_path):
    robot = from_mapping(_Robot, {"name": "ur5", "speeds": {"transit": 0.2}}, "ur5.yaml")
    assert robot.speeds == _Speeds(0.2, 0.05)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['transitt'\]"):
        from_mapping(_Robot, {"name": "ur5", "speeds": {"transitt": 0.2}}, "ur5.yaml")
    with pytest.raises(ConfigError, match="missing required key 'speeds'"):
        from_mapping(_Robot, {"name": "ur5"}, "ur5.yaml")
    with pytest.raises(ConfigError, match=r"ur5.yaml.speeds.transit: must be > 0"):
        from_mapping(_Robot, {"name": "ur5", "speeds": {"transit": -1}}, "ur5.yaml")
    with pytest.raises(ConfigError, match="expected a number"):
        from_mapping(_Robot, {"name": "ur5", "speeds": {"transit": "fast"}}, "ur5.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(bad)


def test_empty_heightmap_only_with_a_warning():
    color, depth, K, T = sample_scene.render()
    T = T.copy()
    T[2, 3] += 5.0  # everything lands 5 m above the box
    with pytest.warns(EmptyHeightmapWarning):
        obs = project_frames([(color, depth, K, T)])
    assert not obs.height.any() and not obs.color.any()


# ---------------------------------------------------------------------------------------------- CLI

@pytest.fixture
def frame_file(tmp_path):
    path = tmp_path / "frame.npz"
    save_frame_npz(path, *sample_scene.render())
    return path


def test_cli_heightmap_writes_npz_and_png(frame_file, tmp_path, capsys):
    out, png = tmp_path / "hm.npz", tmp_path / "hm.png"
    assert cli(["heightmap", "--frame", str(frame_file), "--out", str(out), "--png", str(png)]) == 0
    obs = load_heightmap_npz(out)
    assert obs.color.shape == (320, 160, 3) and obs.height.shape == (320, 160)
    assert obs.height.dtype == np.float32
    assert png.stat().st_size > 10_000
    with np.load(out) as data:
        assert {"color", "height"} <= set(data.files)
    assert "filled" in capsys.readouterr().out


def test_cli_matches_library_and_accepts_uint16_depth(frame_file, tmp_path):
    color, depth, K, T = sample_scene.render()
    depth_mm = np.round(depth * 1000).astype(np.uint16)
    path = tmp_path / "u16.npz"
    np.savez(path, color=color, depth=depth_mm, depth_scale=np.float32(0.001), K=K, T_base_camera=T)
    assert cli(["heightmap", "--frame", str(path), "--out", str(tmp_path / "a.npz")]) == 0
    expected = project_frames([(color, depth_mm.astype(np.float32) * np.float32(0.001), K, T)])
    np.testing.assert_array_equal(load_heightmap_npz(tmp_path / "a.npz").height, expected.height)


def test_cli_custom_bounds_and_pixel_size(frame_file, tmp_path):
    out = tmp_path / "hm.npz"
    assert cli(["heightmap", "--frame", str(frame_file), "--out", str(out),
                "--bounds", "0.3,0.7,-0.4,0.4,0,0.3", "--pixel-size", "0.005"]) == 0
    assert load_heightmap_npz(out).height.shape == (160, 80)


def _write(tmp_path, **arrays):
    color, depth, K, T = sample_scene.render()
    base = dict(color=color, depth=depth, K=K, T_base_camera=T)
    base.update(arrays)
    base = {k: v for k, v in base.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **base)
    return path


@pytest.mark.parametrize("override, message", [
    (dict(color=None), r"missing key\(s\) \['color'\]"),
    (dict(T_base_camera=None), r"missing key\(s\) \['T_base_camera'\]"),
    (dict(color=np.zeros((480, 640), np.uint8)), r"\(H, W, 3\)"),
    (dict(color=np.zeros((480, 640, 3), np.float32)), "uint8"),
    (dict(depth=np.zeros((480, 640), np.float32)), "no valid reading"),
    (dict(depth=np.full((480, 640), np.nan, np.float32)), "no valid reading"),
    (dict(depth=np.full((480, 640), np.inf, np.float32)), "inf"),
    (dict(depth=np.ones((240, 320), np.float32)), "align depth to color"),
    (dict(depth=np.ones((480, 640), np.uint16)), "depth_scale"),
    (dict(K=np.eye(4)), "3x3"),
    (dict(K=np.full((3, 3), np.nan)), "finite"),
    (dict(T_base_camera=np.diag([2.0, 1, 1, 1])), "not rigid"),
    (dict(T_base_camera=np.eye(3)), "4x4"),
    (dict(T_base_camera=np.full((4, 4), np.inf)), "NaN or inf"),
])
def test_cli_bad_frames_exit_2_with_a_clear_message(tmp_path, capsys, override, message):
    path = _write(tmp_path, **override)
    assert cli(["heightmap", "--frame", str(path), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert str(path) in err
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("args, message", [
    (["--bounds", "0.7,0.3,-0.5,0.5,0,0.28"], "min 0.7 must be < max 0.3"),
    (["--bounds", "1,2,3"], "six numbers"),
    (["--pixel-size", "-1"], "positive"),
])
def test_cli_bad_bounds_exit_2(frame_file, tmp_path, capsys, args, message):
    assert cli(["heightmap", "--frame", str(frame_file), "--out", str(tmp_path / "o.npz"), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_corrupt_and_missing_files_exit_2(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    assert cli(["heightmap", "--frame", str(corrupt), "--out", str(tmp_path / "o.npz")]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    assert cli(["heightmap", "--frame", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "o.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_empty_workspace_warns_but_succeeds(tmp_path, capsys):
    color, depth, K, T = sample_scene.render()
    T = T.copy()
    T[0, 3] += 10.0
    path = tmp_path / "far.npz"
    save_frame_npz(path, color, depth, K, T)
    assert cli(["heightmap", "--frame", str(path), "--out", str(tmp_path / "o.npz")]) == 0
    assert "heightmap is empty" in capsys.readouterr().out


def test_console_entry_point_runs_as_a_module(frame_file, tmp_path):
    result = subprocess.run([sys.executable, "-m", "sim2real", "heightmap", "--frame", str(frame_file),
                             "--out", str(tmp_path / "hm.npz")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hm.npz").exists()


def test_ros_free_core():
    """No module outside sim2real/ros imports rclpy or other ROS packages at import time."""
    pattern = re.compile(r"^\s*(import|from)\s+(rclpy|rosidl|moveit|tf2_ros|launch|sensor_msgs|geometry_msgs)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "sim2real").rglob("*.py")
                 if "ros" not in p.relative_to(REPO / "sim2real").parts[:1] and pattern.search(p.read_text())]
    assert offenders == []
