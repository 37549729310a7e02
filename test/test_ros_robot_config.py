"""Robot configs (UR5, xArm 6/7): validated at load, with errors that name the key and the fix."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from sim2real.errors import ConfigError
from sim2real.robot_config import available_robots, load_robot_config, robot_config_from_dict

EXPECTED = {
    "ur5": ("ur", "ur_manipulator", "base_link", "tool0", 6, "suction", "ur_tool_io"),
    "xarm6": ("xarm", "xarm6", "link_base", "link_eef", 6, "suction", "xarm_vacuum"),
    "xarm7": ("xarm", "xarm7", "link_base", "link_eef", 7, "parallel", "xarm_gripper"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_robot_configs_load(name):
    cfg = load_robot_config(name)
    driver, group, base, tip, dof, gtype, gdriver = EXPECTED[name]
    assert (cfg.driver, cfg.planning_group, cfg.base_frame, cfg.tip_frame) == (driver, group, base, tip)
    assert cfg.dof == dof and len(cfg.home_joints) == dof
    assert (cfg.gripper.type, cfg.gripper.driver) == (gtype, gdriver)
    assert cfg.moveit.launches and cfg.moveit.sim_launches
    assert cfg.moveit.linear_pipeline == "pilz_industrial_motion_planner" and cfg.moveit.linear_planner_id == "LIN"
    assert 0 < cfg.speeds.linear_velocity_scaling <= cfg.speeds.velocity_scaling <= 1
    assert cfg.table.top_z <= 0.0  # the table surface is the workspace floor, never above the base
    cfg.motion_config()
    cfg.safety_envelope()


def test_available_robots_lists_the_shipped_ones():
    assert {"ur5", "xarm6", "xarm7"} <= set(available_robots())


def test_ur_mock_hardware_argument_follows_the_distro():
    cfg = load_robot_config("ur5")
    driver = cfg.moveit.sim_launches[0]
    assert driver.package == "ur_robot_driver"
    assert driver.arguments("jazzy")["use_mock_hardware"] == "true"
    assert "use_fake_hardware" not in driver.arguments("jazzy")
    assert driver.arguments("humble")["use_fake_hardware"] == "true"
    assert "use_mock_hardware" not in driver.arguments("humble")
    assert all(isinstance(v, str) for v in driver.arguments("jazzy").values())
    with pytest.raises(ConfigError, match="distro"):
        driver.arguments("foxy")


def test_xarm_uses_fake_moveit_launch_for_sim():
    cfg = load_robot_config("xarm6")
    assert cfg.moveit.sim_launches[0].file == "xarm6_moveit_fake.launch.py"
    assert cfg.moveit.launches[0].file == "xarm6_moveit_realmove.launch.py"
    assert cfg.moveit.builder == "uf_ros_lib"


ROBOTS = Path(__file__).resolve().parents[1] / "config" / "robots"


def _data(name="ur5"):
    return yaml.safe_load((ROBOTS / f"{name}.yaml").read_text())


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update(planing_group="x"), "unknown key"),
    (lambda d: d.update(driver="kuka"), "driver: must be one of"),
    (lambda d: d.update(home_joints=[0, 0, 0]), "home_joints: must be a list of 6"),
    (lambda d: d.update(home_joints=[0, -90, 90, -90, -90, 0]), "radians"),
    (lambda d: d["gripper"].update(driver="robotiq"), "drives a parallel gripper"),
    (lambda d: d["gripper"].update(io_pin=3), "pins \\[16, 17\\]"),
    (lambda d: d["gripper"].update(service=""), "needs the service name"),
    (lambda d: d["speeds"].update(velocity_scaling=1.5), "scaling factor in \\(0, 1\\]"),
    (lambda d: d["tcp_offset"].update(xyz=[0, 0, 120]), "not mm"),
    (lambda d: d["moveit"].update(launches=[]), "launch files to include"),
    (lambda d: d["moveit"]["launches"][0].update(file="ur_control.py"), "launch file name"),
    (lambda d: d["moveit"].update(builder="catkin"), "builder: must be one of"),
    (lambda d: d.update(safety={"max_tilt_deg": 200}), "max_tilt_deg"),
    (lambda d: d.update(motion={"approach_heigth": 0.1}), "unknown key"),
])
def test_bad_configs_name_the_key(mutate, match):
    data = _data()
    mutate(data)
    with pytest.raises(ConfigError, match=match):
        robot_config_from_dict(data, "ur5.yaml")


def test_unknown_robot_lists_the_names():
    with pytest.raises(ConfigError, match="ur5"):
        load_robot_config("ur10")


def test_minimal_sim_config_for_the_twin():
    cfg = robot_config_from_dict({"name": "sim", "driver": "sim", "planning_group": "arm", "base_frame": "base",
                                  "tip_frame": "ee", "joint_names": ["j1", "j2"], "home_joints": [0, 0],
                                  "twin": {"urdf": "ur5/ur5.urdf"}})
    assert cfg.twin["urdf"] == "ur5/ur5.urdf" and cfg.gripper.driver == "sim"
    with pytest.raises(TypeError):
        cfg.twin["urdf"] = "x"  # frozen


def test_tip_and_tcp_poses_are_inverse():
    cfg = load_robot_config("xarm6")
    xyz, q = np.array([0.5, -0.1, 0.05]), Rotation.from_euler("xyz", [3.0, 0.1, -0.4]).as_quat()
    tip_xyz, tip_q = cfg.tip_pose(xyz, q)
    # the TCP is tcp_offset along the tip's own z axis
    np.testing.assert_allclose(tip_xyz + Rotation.from_quat(tip_q).apply([0, 0, 0.126]), xyz, atol=1e-12)
    back_xyz, back_q = cfg.tcp_pose(tip_xyz, tip_q)
    np.testing.assert_allclose(back_xyz, xyz, atol=1e-12)
    assert abs(abs(np.dot(back_q, q)) - 1) < 1e-12


def test_cliport_identity_orientation_points_the_tool_down():
    cfg = load_robot_config("ur5")
    q = cfg.tcp_orientation([0, 0, 0, 1])
    z_axis = Rotation.from_quat(q).apply([0, 0, 1])
    np.testing.assert_allclose(z_axis, [0, 0, -1], atol=1e-12)
    x_axis = Rotation.from_quat(q).apply([1, 0, 0])
    np.testing.assert_allclose(x_axis, [1, 0, 0], atol=1e-12)
    yaw = Rotation.from_euler("z", 0.7).as_quat()
    np.testing.assert_allclose(np.abs(cfg.cliport_orientation(cfg.tcp_orientation(yaw))), np.abs(yaw), atol=1e-12)


def test_speed_in_metres_per_second_becomes_a_scaling_fraction():
    cfg = load_robot_config("ur5")
    assert cfg.speeds.fraction(cfg.speeds.max_tcp_speed / 2) == pytest.approx(0.5)
    assert cfg.speeds.fraction(10.0) == 1.0
    with pytest.raises(ConfigError):
        cfg.speeds.fraction(0.0)
