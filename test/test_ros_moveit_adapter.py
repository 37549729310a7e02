"""The MoveIt adapter against a fake moveit_py: Humble vs Jazzy call shapes, error codes -> typed
exceptions, Pilz LIN for straight lines, scaling from config, the table, and stop() in finally."""
import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real.errors import ConfigError, PlanningError
from sim2real.robot_config import load_robot_config
from sim2real.ros import moveit_adapter as ma
from sim2real.ros.moveit_robot import FrameRobot, MoveItRobot

rosbags = pytest.importorskip("rosbags")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from sim2real.ros.conversions import MsgTypes  # noqa: E402


class Msg(SimpleNamespace):
    """A default-constructible message (what rclpy classes are)."""


class FakePose(Msg):
    def __init__(self):
        super().__init__(position=Msg(x=0.0, y=0.0, z=0.0), orientation=Msg(x=0.0, y=0.0, z=0.0, w=1.0))


class FakeCollisionObject(Msg):
    ADD = 0

    def __init__(self):
        super().__init__(header=Msg(frame_id=""), id="", primitives=[], primitive_poses=[], operation=None)


class FakePrimitive(Msg):
    BOX = 1

    def __init__(self):
        super().__init__(type=None, dimensions=[])


SCENE_MSGS = SimpleNamespace(CollisionObject=FakeCollisionObject, SolidPrimitive=FakePrimitive, Pose=FakePose)


class Status:
    """moveit_py ExecutionStatus: ``status`` text, truthy on success."""

    def __init__(self, status):
        self.status = status

    def __bool__(self):
        return self.status == "SUCCEEDED"


class PlanResult:
    def __init__(self, ok=True, code=1):
        self.ok, self.error_code, self.trajectory = ok, SimpleNamespace(val=code), f"traj-{code}"

    def __bool__(self):
        return self.ok


class FakeWorld:
    """Records every call the adapter makes into the moveit_py API."""

    def __init__(self, flavour, plan_results=None, exec_results=None, exec_raises=None):
        self.flavour, self.calls = flavour, []
        self.plan_results = list(plan_results or [])
        self.exec_results = list(exec_results or [])
        self.exec_raises = exec_raises
        self.applied = []
        world = self

        class PlanRequestParameters:
            def __init__(self, robot, *ns):
                if world.flavour == "humble" and ns:
                    raise TypeError("humble: PlanRequestParameters(robot) only")
                if world.flavour == "jazzy" and len(ns) != 1:
                    raise TypeError("jazzy: PlanRequestParameters(robot, ns)")
                world.calls.append(("PlanRequestParameters", ns))
                self.planner_id = self.planning_pipeline = ""
                self.planning_time, self.planning_attempts = 1.0, 5
                self.max_velocity_scaling_factor = self.max_acceleration_scaling_factor = 1.0

        class Component:
            def set_start_state_to_current_state(self):
                world.calls.append(("start_state",))

            def set_goal_state(self, **kw):
                world.calls.append(("goal", kw))

            def plan(self, **kw):
                key = {"humble": "parameters", "jazzy": "single_plan_parameters"}[world.flavour]
                if set(kw) != {key}:
                    raise TypeError(f"plan(): incompatible function arguments {sorted(kw)}")
                world.calls.append(("plan", kw[key]))
                return world.plan_results.pop(0) if world.plan_results else PlanResult()

        class Scene:
            current_state = SimpleNamespace(update=lambda: world.calls.append(("scene_update",)))

            def apply_collision_object(self, obj):
                world.applied.append(obj)

        class Monitor:
            @contextlib.contextmanager
            def read_write(self):
                yield Scene()

            @contextlib.contextmanager
            def read_only(self):
                state = SimpleNamespace(
                    get_pose=lambda link: Msg(position=Msg(x=0.4, y=0.0, z=0.3),
                                              orientation=Msg(x=1.0, y=0.0, z=0.0, w=0.0)),
                    get_joint_group_positions=lambda g: [0.1] * 6)
                yield SimpleNamespace(current_state=state)

        class TEM:
            def stop_execution(self, clear=True):
                world.calls.append(("stop", clear))

        class MoveItPy:
            def __init__(self, node_name="moveit_py", config_dict=None):
                world.calls.append(("MoveItPy", node_name))

            def get_planning_component(self, group):
                world.calls.append(("component", group))
                return Component()

            def get_planning_scene_monitor(self):
                return Monitor()

            def get_trajactory_execution_manager(self):  # upstream's spelling
                return TEM()

            def get_robot_model(self):
                return "model"

            def execute(self, *args, **kw):
                if world.flavour == "jazzy":
                    if len(args) != 1 or set(kw) != {"controllers"}:
                        raise TypeError("jazzy: execute(trajectory, controllers)")
                else:
                    if len(args) != 2 or kw != {"blocking": True}:
                        raise TypeError("humble: execute(group, trajectory, blocking=True)")
                world.calls.append(("execute", args, kw))
                if world.exec_raises:
                    raise world.exec_raises
                return world.exec_results.pop(0) if world.exec_results else Status("SUCCEEDED")

        class RobotState:
            def __init__(self, model):
                self.model = model

            def set_joint_group_positions(self, group, q):
                world.calls.append(("joints", group, list(q)))

            def update(self):
                pass

            def set_from_ik(self, group, pose, tip, timeout):
                world.calls.append(("ik", group, tip))
                return pose.position.z > 0

        self.api = SimpleNamespace(MoveItPy=MoveItPy, PlanRequestParameters=PlanRequestParameters,
                                   RobotState=RobotState)

    def names(self):
        return [c[0] for c in self.calls]


@pytest.fixture(autouse=True)
def _fresh_registry():
    ma.forget_instances()
    yield
    ma.forget_instances()


TYPES = MsgTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))


def adapter(flavour, robot="ur5", **world_kw):
    world = FakeWorld(flavour, **world_kw)
    a = ma.MoveItAdapter(load_robot_config(robot), api=world.api, msg_types=TYPES, scene_msgs=SCENE_MSGS,
                         flavour=flavour).connect()
    return a, world


DOWN = Rotation.from_euler("x", np.pi).as_quat()


@pytest.mark.parametrize("flavour", ["humble", "jazzy"])
def test_move_uses_the_distro_call_shapes(flavour):
    a, world = adapter(flavour)
    a.move_to_pose([0.5, 0.0, 0.2], DOWN)
    plan_calls = [c for c in world.calls if c[0] == "PlanRequestParameters"]
    assert plan_calls == [("PlanRequestParameters", ("",) if flavour == "jazzy" else ())]
    execute = [c for c in world.calls if c[0] == "execute"][0]
    if flavour == "jazzy":
        assert execute[1] == ("traj-1",) and execute[2] == {"controllers": []}
    else:
        assert execute[1] == ("ur_manipulator", "traj-1") and execute[2] == {"blocking": True}


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
    np.testing.assert_allclose(state.tcp_xyz, [0.4, 0.0, 0.2], atol=1e-9)  # tool0 at 0.3 pointing down
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
