"""The MoveIt adapter against a fake moveit_py (test/moveit_fakes.py; moveit_py itself is not
installable here, it ships with ROS 2): Humble vs Jazzy call shapes, error codes -> typed
exceptions, Pilz LIN for straight lines, scaling from config, the table, stop() in finally, and
the planned trajectory checked against the safety envelope before anything moves."""
import dataclasses
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real.errors import ConfigError, MotionStopped, PlanningError, SafetyError
from sim2real.robot_config import load_robot_config
from sim2real.ros import moveit_adapter as ma
from sim2real.ros.moveit_robot import FrameRobot, MoveItRobot

rosbags = pytest.importorskip("rosbags")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from sim2real.ros.conversions import MsgTypes  # noqa: E402


from moveit_fakes import (SCENE_MSGS, FakeCollisionObject, FakePrimitive, FakeWorld, PlanResult,  # noqa: E402
                          Status, joints_of, tip_pose_of)


@pytest.fixture(autouse=True)
def _fresh_registry():
    ma.forget_instances()
    yield
    ma.forget_instances()


TYPES = MsgTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))


DOWN = Rotation.from_euler("x", np.pi).as_quat()
FAKE_HOME = tuple(joints_of([0.4, 0.0, 0.45], DOWN))
"""Home joints of the fake Cartesian arm: tip 0.45 m up, pointing down (the UR5's real home
joints mean nothing to the fake's kinematics)."""


def adapter(flavour, robot="ur5", envelope="default", T_base_workspace=None, **world_kw):
    world = FakeWorld(flavour, **world_kw)
    config = dataclasses.replace(load_robot_config(robot), home_joints=FAKE_HOME)
    env = config.safety_envelope() if envelope == "default" else envelope
    a = ma.MoveItAdapter(config, api=world.api, msg_types=TYPES, scene_msgs=SCENE_MSGS, flavour=flavour,
                         envelope=env, T_base_workspace=T_base_workspace).connect()
    return a, world


@pytest.mark.parametrize("flavour", ["humble", "jazzy"])
def test_move_uses_the_distro_call_shapes(flavour):
    a, world = adapter(flavour)
    a.move_to_pose([0.5, 0.0, 0.2], DOWN)
    plan_calls = [c for c in world.calls if c[0] == "PlanRequestParameters"]
    assert plan_calls == [("PlanRequestParameters", ("",) if flavour == "jazzy" else ())]
    execute = [c for c in world.calls if c[0] == "execute"][0]
    (traj,) = world.executed
    if flavour == "jazzy":
        assert execute[1] == (traj,) and execute[2] == {"controllers": []}
    else:
        assert execute[1] == ("ur_manipulator", traj) and execute[2] == {"blocking": True}


def test_detect_flavour_from_ros_distro(monkeypatch):
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert ma.detect_flavour() == "humble"
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    assert ma.detect_flavour() == "jazzy"
    monkeypatch.setenv("ROS_DISTRO", "rolling")
    assert ma.detect_flavour() == "jazzy"
    assert ma.detect_flavour("humble") == "humble"
    with pytest.raises(ConfigError):
        ma.detect_flavour("iron")


def test_pose_goal_is_the_tip_frame_of_the_tcp_target():
    a, world = adapter("jazzy", robot="ur5")
    a.plan_to_pose([0.5, 0.1, 0.05], DOWN)
    goal = [c for c in world.calls if c[0] == "goal"][-1][1]
    assert goal["pose_link"] == "tool0"
    msg = goal["pose_stamped_msg"]
    assert msg.header.frame_id == "base_link"
    # tool pointing down, TCP 0.10 m beyond tool0: tool0 is 0.10 m above the TCP
    assert (msg.pose.position.x, msg.pose.position.y) == pytest.approx((0.5, 0.1))
    assert msg.pose.position.z == pytest.approx(0.15)


def test_linear_moves_use_pilz_lin_and_linear_scaling():
    a, world = adapter("jazzy")
    cfg = a.config
    a.move_to_pose([0.5, 0.0, 0.2], DOWN, linear=True, speed=0.5)
    params = [c[1] for c in world.calls if c[0] == "plan"][-1]
    assert (params.planning_pipeline, params.planner_id) == ("pilz_industrial_motion_planner", "LIN")
    assert params.max_velocity_scaling_factor == pytest.approx(0.5 * cfg.speeds.linear_velocity_scaling)
    assert params.max_acceleration_scaling_factor == pytest.approx(0.5 * cfg.speeds.linear_acceleration_scaling)
    a.move_to_pose([0.5, 0.0, 0.3], DOWN)
    params = [c[1] for c in world.calls if c[0] == "plan"][-1]
    assert (params.planning_pipeline, params.planner_id) == ("ompl", "RRTConnectkConfigDefault")
    assert params.max_velocity_scaling_factor == pytest.approx(cfg.speeds.velocity_scaling)
    assert params.planning_time == cfg.moveit.planning_time
    with pytest.raises(ConfigError):
        a.plan_parameters(False, speed=1.5)


@pytest.mark.parametrize("code, cls, reason", [
    (-31, ma.IKFailedError, "ik_failed"),
    (-1, ma.PlanningFailedError, "planning_failed"),
    (-6, ma.PlanningFailedError, "planning_failed"),
    (-12, ma.CollisionError, "planning_failed"),
    (-15, ma.InvalidRequestError, "config_error"),
    (99999, ma.PlanningFailedError, "planning_failed"),
])
def test_plan_error_codes_become_typed_exceptions(code, cls, reason):
    a, world = adapter("humble", plan_results=[PlanResult(False, code)])
    with pytest.raises(cls) as err:
        a.move_to_pose([0.5, 0, 0.2], DOWN)
    assert isinstance(err.value, PlanningError) and err.value.code == code and err.value.reason == reason
    assert ma.MOVEIT_ERROR_CODES[code] in str(err.value)
    assert "execute" not in world.names()  # a failed plan never moves the arm


def test_failed_execution_raises_and_stops_the_arm():
    a, world = adapter("jazzy", exec_results=[Status("ABORTED")])
    with pytest.raises(ma.ExecutionError, match="ABORTED"):
        a.move_to_pose([0.5, 0, 0.2], DOWN)
    assert world.names()[-1] == "stop"


def test_exception_during_execution_stops_the_arm_in_finally():
    a, world = adapter("humble", exec_raises=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        a.move_to_pose([0.5, 0, 0.2], DOWN)
    assert ("stop", True) in world.calls


def test_successful_execution_does_not_need_a_stop_but_motion_context_always_stops():
    a, world = adapter("jazzy")
    a.move_to_pose([0.5, 0, 0.2], DOWN)
    assert "stop" not in world.names()
    with pytest.raises(RuntimeError):
        with a.motion():
            raise RuntimeError("boom")
    assert world.names()[-1] == "stop"


def test_stop_never_raises():
    a, world = adapter("jazzy")

    def broken():
        raise RuntimeError("executor gone")

    a.robot.get_trajactory_execution_manager = broken
    a.stop()  # logged, not raised


def test_error_from_code_without_a_code():
    err = ma.error_from_code(None, "plan")
    assert isinstance(err, ma.PlanningFailedError) and err.code is None


def test_table_collision_object_from_config():
    a, world = adapter("jazzy", robot="xarm6")
    (obj,) = world.applied
    assert obj.id == "table" and obj.header.frame_id == "link_base" and obj.operation == FakeCollisionObject.ADD
    assert obj.primitives[0].type == FakePrimitive.BOX
    assert obj.primitives[0].dimensions == list(a.config.table.size)
    p = obj.primitive_poses[0].position
    assert (p.x, p.y, p.z) == tuple(a.config.table.center)
    assert ("scene_update",) in world.calls


def test_one_moveitpy_per_process():
    world = FakeWorld("jazzy")
    cfg = load_robot_config("ur5")
    kw = dict(api=world.api, msg_types=TYPES, scene_msgs=SCENE_MSGS, flavour="jazzy")
    a1 = ma.MoveItAdapter(cfg, **kw).connect()
    a2 = ma.MoveItAdapter(cfg, **kw).connect()
    assert a1.robot is a2.robot
    assert world.names().count("MoveItPy") == 1


def test_joint_goal_home():
    a, world = adapter("humble")
    a.go_home()
    assert ("joints", "ur_manipulator", list(a.config.home_joints)) in world.calls
    with pytest.raises(ConfigError, match="6 joints"):
        a.plan_to_joints([0, 0, 0])


def test_not_connected_is_an_error():
    with pytest.raises(PlanningError, match="connect"):
        ma.MoveItAdapter(load_robot_config("ur5"), flavour="jazzy").plan_to_pose([0.5, 0, 0.2], DOWN)


# ----------------------------------------------------------------------------------- RobotPort on top

class FakeGripper:
    type = "suction"

    def __init__(self):
        self.calls = []

    def set(self, closed):
        self.calls.append(closed)

    def close(self):
        pass


def test_moveit_robot_converts_cliport_poses_and_speeds():
    a, world = adapter("jazzy")
    robot = MoveItRobot(a.config, a, FakeGripper())
    robot.move_to(([0.5, 0.0, 0.05], [0, 0, 0, 1]), speed=a.config.speeds.max_tcp_speed / 4, linear=True)
    goal = [c for c in world.calls if c[0] == "goal"][-1][1]["pose_stamped_msg"]
    assert goal.pose.position.z == pytest.approx(0.15)  # tool down: tool0 0.10 m above the TCP
    q = goal.pose.orientation
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).apply([0, 0, 1]), [0, 0, -1], atol=1e-9)
    params = [c[1] for c in world.calls if c[0] == "plan"][-1]
    assert params.max_velocity_scaling_factor == pytest.approx(0.25 * a.config.speeds.linear_velocity_scaling)
    robot.set_suction(True)
    assert robot.gripper.calls == [True]
    with pytest.raises(ConfigError, match="suction"):
        robot.set_gripper(True)
    state = robot.state()
    np.testing.assert_allclose(state.tcp_xyz, [0.5, 0.0, 0.05], atol=1e-9)  # where the move went
    np.testing.assert_allclose(np.abs(state.tcp_quat_xyzw), [0, 0, 0, 1], atol=1e-9)
    assert state.suction is True
    robot.stop()
    assert world.names()[-1] == "stop"


def test_moveit_robot_reachability_uses_ik_of_the_tip():
    a, world = adapter("jazzy")
    robot = MoveItRobot(a.config, a, FakeGripper())
    assert robot.reachable(([0.5, 0, 0.05], [0, 0, 0, 1])) is True
    assert ("ik", "ur_manipulator", "tool0") in world.calls


def test_frame_robot_maps_workspace_poses_to_base():
    T = np.eye(4)
    T[:3, 3] = [0.1, -0.2, 0.03]

    class Recorder:
        tool = "suction"

        def __init__(self):
            self.poses, self.stops = [], 0

        def move_to(self, pose, speed, linear=False):
            self.poses.append(pose)

        def stop(self):
            self.stops += 1

    inner = Recorder()
    robot = FrameRobot(inner, T)
    robot.move_to(([0.5, 0.0, 0.0], [0, 0, 0, 1]), 0.1)
    np.testing.assert_allclose(inner.poses[0][0], [0.6, -0.2, 0.03])
    robot.stop()
    assert inner.stops == 1


# ----------------------------------------------------------------------------------- the planned motion is checked

def _dip(depth_z):
    """A path that leaves the start and the goal where they are but sinks to tip z = depth_z midway."""
    def hook(start, goal):
        rows = [start + (goal - start) * k / 9 for k in range(10)]
        for k in (4, 5):
            rows[k] = rows[k].copy()
            rows[k][2] = depth_z
        return rows
    return hook


def test_a_plan_that_dips_under_the_table_is_refused_and_nothing_moves():
    a, world = adapter("jazzy")
    world.path_hook = _dip(0.05)  # tip 5 cm up = TCP 5 cm under the table, between two fine end points
    with pytest.raises(SafetyError, match="below the minimum") as err:
        a.move_to_pose([0.5, 0.0, 0.2], DOWN)
    assert "the arm did not move" in str(err.value)
    assert "execute" not in world.names()
    assert world.names().count("plan") == ma.SAFETY_REPLANS  # OMPL is random: re-planned before giving up


def test_a_plan_that_leaves_the_box_is_refused():
    a, world = adapter("humble")

    def swing(start, goal):
        rows = [start + (goal - start) * k / 7 for k in range(8)]
        rows[3] = rows[3].copy()
        rows[3][1] = 0.8  # 0.8 m to the side: outside y [-0.52, 0.52]
        return rows

    world.path_hook = swing
    with pytest.raises(SafetyError, match="outside the workspace"):
        a.move_to_pose([0.5, 0.0, 0.2], DOWN)
    assert "execute" not in world.names()


def test_the_planned_trajectory_is_densified_through_forward_kinematics():
    # two waypoints only, both fine; the straight joint line between them is sampled (FK of the
    # interpolated joints), and the fake arm's joint line goes straight too: accepted, and the
    # samples are FK_STEP_RAD apart
    a, world = adapter("jazzy", waypoints=2)
    traj = world.trajectory(world.current, joints_of([0.5, 0.2, 0.2], DOWN))
    samples = a.trajectory_samples(traj)
    assert len(samples) > 10
    assert np.abs(np.diff(samples.joints, axis=0)).max() <= ma.FK_STEP_RAD + 1e-12
    np.testing.assert_allclose(samples.tcp_xyz[-1], [0.5, 0.2, 0.1], atol=1e-9)  # TCP 10 cm under tool0
    np.testing.assert_allclose(np.abs(samples.tcp_quat_xyzw[-1]), [0, 0, 0, 1], atol=1e-9)  # CLIPort: down
    assert a.check(traj).ok


def test_tilting_while_holding_is_refused_but_allowed_with_nothing_held():
    def tilt(start, goal):
        rows = [start + (goal - start) * k / 7 for k in range(8)]
        for k in (3, 4):
            r = Rotation.from_euler("xyz", rows[k][3:]) * Rotation.from_euler("y", 30, degrees=True)
            rows[k] = np.concatenate([rows[k][:3], r.as_euler("xyz")])
        return rows

    a, world = adapter("jazzy")
    world.path_hook = tilt
    with pytest.raises(SafetyError, match="tool tilted"):
        a.move_to_pose([0.5, 0.0, 0.2], DOWN, holding=True)
    assert "execute" not in world.names()
    a.move_to_pose([0.5, 0.0, 0.2], DOWN, holding=False)
    assert world.names().count("execute") == 1


def test_speed_is_measured_on_the_trajectory_not_the_request():
    a, world = adapter("jazzy", joint_speed=3.0)  # the "controller" would run the tip at 3 m/s
    with pytest.raises(SafetyError, match=r"tool point speed .* exceeds 1.000 m/s"):
        a.move_to_pose([0.5, 0.0, 0.2], DOWN, speed=0.1)  # the request is slow
    assert "execute" not in world.names()


def test_joint_speed_limit():
    a, world = adapter("jazzy", joint_speed=2.0)
    with pytest.raises(SafetyError, match=r"joint speed .* exceeds"):
        a.move_to_pose([0.4, 0.0, 0.2], Rotation.from_euler("xz", [np.pi, 1.5]).as_quat(),  # a fast wrist turn
                       holding=False)
    assert "execute" not in world.names()


def test_no_envelope_means_nothing_is_executed():
    a, world = adapter("jazzy", envelope=None)
    with pytest.raises(SafetyError, match="no safety envelope"):
        a.move_to_pose([0.5, 0.0, 0.2], DOWN)
    assert "execute" not in world.names()


def test_the_envelope_is_applied_in_the_workspace_frame():
    T = np.eye(4)
    T[:3, 3] = [-0.3, 0.0, 0.0]  # the workspace origin 0.3 m behind the base: base x 0.5 = workspace x 0.8
    a, world = adapter("jazzy", T_base_workspace=T)
    with pytest.raises(SafetyError, match="outside the workspace"):
        a.move_to_pose([0.5, 0.0, 0.2], DOWN)
    b, world_b = adapter("jazzy")
    b.move_to_pose([0.5, 0.0, 0.2], DOWN)
    assert "execute" in world_b.names()


def test_free_space_moves_while_holding_keep_the_tool_down():
    a, world = adapter("jazzy")
    a.move_to_pose([0.5, 0.0, 0.2], DOWN, holding=True)
    constrained, cleared = world.path_constraints[-2:]
    (oc,) = constrained.orientation_constraints
    assert oc.link_name == "tool0" and oc.header.frame_id == "base_link"
    assert oc.absolute_x_axis_tolerance == oc.absolute_y_axis_tolerance == pytest.approx(np.radians(10.0))
    assert oc.absolute_z_axis_tolerance == pytest.approx(np.pi)  # yaw free: the tool turns between pick and place
    assert cleared.orientation_constraints == []  # not left on for the next plan
    n = len(world.path_constraints)
    a.move_to_pose([0.5, 0.0, 0.1], DOWN, linear=True, holding=True)  # Pilz LIN: a straight line, no constraint
    a.move_to_pose([0.5, 0.0, 0.2], DOWN, holding=False)
    assert len(world.path_constraints) == n


def test_stop_interrupts_a_running_execution():
    a, world = adapter("jazzy")
    world.block_execute = True
    errors = []

    def move():
        try:
            a.move_to_pose([0.5, 0.0, 0.2], DOWN)
        except Exception as e:  # noqa: BLE001 - recorded for the assertion
            errors.append(e)

    mover = threading.Thread(target=move)
    mover.start()
    assert world.executing.wait(5.0)
    t0 = time.monotonic()
    a.stop()
    mover.join(5.0)
    assert not mover.is_alive() and time.monotonic() - t0 < 1.0
    (err,) = errors
    assert isinstance(err, MotionStopped)
    assert ("stop", True) in world.calls


def test_moveit_robot_homes_through_the_checked_path_and_waits_until_still():
    a, world = adapter("jazzy")
    robot = FrameRobot(MoveItRobot(a.config, a, FakeGripper()), None)
    robot.home()
    np.testing.assert_allclose(world.current, FAKE_HOME)
    assert ("joints", "ur_manipulator", list(FAKE_HOME)) in world.calls
    assert world.names().count("execute") == 1
    world.path_hook = _dip(0.02)
    with pytest.raises(SafetyError, match="below the minimum"):
        robot.home()
    assert world.names().count("execute") == 1


def test_home_fails_when_the_arm_does_not_arrive(monkeypatch):
    from sim2real.errors import HardwareError
    from sim2real.ros import moveit_robot as mr

    a, world = adapter("jazzy", exec_results=[Status("SUCCEEDED")])
    robot = MoveItRobot(a.config, a, FakeGripper())
    monkeypatch.setattr(a, "current_state", lambda: (None, None, np.zeros(6)))  # joints never reach home
    with pytest.raises(HardwareError, match="did not settle at home"):
        robot._wait_settled(timeout_s=0.1)
    assert mr.HOME_TOLERANCE_RAD < 0.05
