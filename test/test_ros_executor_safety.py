"""The executor node's safety rules (issue 10), on the in-memory rclpy fake (test/ros_fakes.py) and
the fake moveit_py (test/moveit_fakes.py; moveit_py is not installable here):

* no motion at start-up in confirm mode without a confirmation, and ONE lock for every motion;
* ``~/stop`` stops a trajectory while MoveIt's execute() is blocking;
* a plan whose heightmap went stale before execution is refused and asked again;
* step ids travel from the poses' frame tag to the step result;
* a seeded fuzz of the pose input: nothing raises out of the callback, nothing non-finite or
  outside the envelope reaches MoveIt, every refusal is published with a reason.
"""
import dataclasses
import json
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import ros_fakes
from moveit_fakes import SCENE_MSGS, FakeWorld, joints_of, tip_pose_of
from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
from sim2real.robot import DryRunRobot
from sim2real.robot_config import load_robot_config
from sim2real.ros import conversions as cv
from sim2real.ros import moveit_adapter as ma
from sim2real.ros.moveit_robot import FrameRobot, MoveItRobot
from sim2real.ros.params import POSES_TOPIC, STEP_RESULT_TOPIC, defaults
from sim2real.ros.steps import STOP_REASONS, tag_frame
from sim2real.workspace import GENSIM_WORKSPACE

DOWN = Rotation.from_euler("x", np.pi).as_quat()
FAKE_HOME = tuple(joints_of([0.4, 0.0, 0.45], DOWN))


@pytest.fixture
def ros(monkeypatch):
    ros_fakes.install(monkeypatch)
    ma.forget_instances()
    yield cv.MsgTypes.from_rclpy()
    ma.forget_instances()


def now_s():
    return time.time_ns() * 1e-9


def results(node):
    return [json.loads(m.data) for m in node.published(STEP_RESULT_TOPIC)]


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def poses_msg(types, stamp=None, step_id=""):
    h = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    h[100, 40] = 0.03
    action = PickPlaceAction(PixelPose.from_pixel((100, 40), 0.0, h, GENSIM_WORKSPACE),
                             PixelPose.from_pixel((200, 100), theta_from_bin(9), h, GENSIM_WORKSPACE))
    msg = cv.action_to_pose_array(types, action, "base_link", now_s() if stamp is None else stamp)
    msg.header.frame_id = tag_frame(msg.header.frame_id, step_id)
    return msg


def moveit_robot(types, **world_kw):
    """A MoveItRobot over the fake moveit_py: the real adapter code, a fake arm (see moveit_fakes)."""
    world = FakeWorld("jazzy", **world_kw)
    config = dataclasses.replace(load_robot_config("ur5"), home_joints=FAKE_HOME)
    adapter = ma.MoveItAdapter(config, api=world.api, msg_types=types, scene_msgs=SCENE_MSGS, flavour="jazzy",
                               envelope=config.safety_envelope(GENSIM_WORKSPACE)).connect()

    class Gripper:
        def set(self, closed):
            pass

    return FrameRobot(MoveItRobot(config, adapter, Gripper()), None), world, adapter


# ------------------------------------------------------------------------------------------ start-up


def test_confirm_mode_does_not_home_at_start_up_without_a_confirmation(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "confirm_timeout_s": 1.0}  # go_home defaults to true
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    node.stage.home_thread.join(5.0)
    assert not any(c["cmd"] in ("home", "move_to") for c in robot.commands)
    assert "start-up homing not confirmed" in node.logger.text("warning")


def test_confirm_mode_homes_at_start_up_once_confirmed(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "confirm_timeout_s": 5.0}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    assert wait_for(lambda: node.stage.confirmation.waiting)
    assert robot.commands == []
    setbool = ros_fakes.sys.modules["std_srvs.srv"].SetBool
    assert node.call("/executor/confirm", setbool.Request(data=True)).success
    node.stage.home_thread.join(5.0)
    assert [c["cmd"] for c in robot.commands] == ["home", "stop"]


class GatedRobot(DryRunRobot):
    """home() blocks until the test opens the gate: a homing move in progress."""

    def __post_init__(self):
        super().__post_init__()
        self.gate, self.homing = threading.Event(), threading.Event()

    def home(self, speed=1.0):
        self.homing.set()
        self.gate.wait(5.0)
        super().home(speed)


def test_start_up_homing_holds_the_one_motion_lock(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "auto"}
    robot = GatedRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    assert robot.homing.wait(5.0)
    node.deliver(POSES_TOPIC, poses_msg(ros))  # a step while the arm is homing
    assert "still running" in node.logger.text("warning")
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    assert node.call("/executor/home", trigger.Request()).success is False  # ~/home too
    assert not any(c["cmd"] == "move_to" for c in robot.commands)
    robot.gate.set()
    node.stage.home_thread.join(5.0)
    # the step that came during homing is answered once homing ends: ask again on a new observation
    assert wait_for(lambda: len(results(node)) == 1)
    (busy,) = results(node)
    assert busy["reason"] == "stale_frame" and busy["retry"] is True and not busy["executed"]
    node.deliver(POSES_TOPIC, poses_msg(ros))  # now free
    assert wait_for(lambda: len(results(node)) == 2)
    assert results(node)[1]["ok"] and results(node)[1]["executed"]


# ------------------------------------------------------------------------------------------ ~/stop


def test_stop_service_interrupts_a_running_moveit_execution(ros):
    from sim2real.ros.nodes import executor

    robot, world, adapter = moveit_robot(ros)
    world.block_execute = True  # execute() blocks like a real controller until stopped
    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    node = executor.make_node(robot=robot)
    node.deliver(POSES_TOPIC, poses_msg(ros, step_id="s1"))
    assert world.executing.wait(5.0)  # the step's first trajectory is running
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    t0 = time.monotonic()
    response = node.call("/executor/stop", trigger.Request())
    assert response.success
    assert wait_for(lambda: results(node), 2.0)
    assert time.monotonic() - t0 < 1.0
    (result,) = results(node)
    assert result["reason"] == "operator_stop" and not result["executed"] and result["step_id"] == "s1"
    assert ("stop", True) in world.calls  # through the trajectory execution manager
    assert len(world.executed) == 1  # nothing after the stop: no further segment, no homing
    assert "homed" not in result


def test_stop_service_rejects_a_pending_confirmation(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "go_home": False, "confirm_timeout_s": 30.0,
                                "max_pose_age_s": 30.0}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    node.deliver(POSES_TOPIC, poses_msg(ros))
    assert wait_for(lambda: node.stage.confirmation.waiting)
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    node.call("/executor/stop", trigger.Request())
    assert wait_for(lambda: results(node), 2.0)
    assert results(node)[0]["reason"] == "rejected_by_operator"
    assert not any(c["cmd"] == "move_to" for c in robot.commands)


class StopBetweenMotions(DryRunRobot):
    """Calls ``on_grasp`` when the tool engages (between the pick's descent and its lift): an operator
    stop that comes while no motion is running."""

    on_grasp = None

    def set_suction(self, on):
        super().set_suction(on)
        if on and self.on_grasp is not None:
            self.on_grasp()


def test_a_stop_between_two_motions_holds_until_the_next_step(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    robot = StopBetweenMotions()
    node = executor.make_node(robot=FrameRobot(robot))
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    robot.on_grasp = lambda: node.call("/executor/stop", trigger.Request())
    node.deliver(POSES_TOPIC, poses_msg(ros, step_id="s1"))
    assert wait_for(lambda: results(node))
    (result,) = results(node)
    assert result["reason"] == "operator_stop" and result["step_id"] == "s1" and "homed" not in result
    cmds = [c["cmd"] for c in robot.commands]
    grasp = cmds.index("set_suction")
    assert "move_to" not in cmds[grasp:] and "home" not in cmds[grasp:]  # no lift, no transit, no homing
    assert robot.state().suction is True  # and nothing held was released
    robot.on_grasp = None
    node.deliver(POSES_TOPIC, poses_msg(ros, step_id="s2"))  # the next step starts the arm again
    assert wait_for(lambda: len(results(node)) == 2)
    assert results(node)[1]["ok"] and results(node)[1]["executed"] and results(node)[1]["step_id"] == "s2"


# ------------------------------------------------------------------------------------------ stale plans


def test_default_pose_age_is_a_few_seconds():
    assert defaults("executor")["max_pose_age_s"] <= 5.0


def test_a_plan_confirmed_after_its_heightmap_went_stale_is_refused_and_asked_again(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "go_home": False, "confirm_timeout_s": 60.0,
                                "max_pose_age_s": 2.0}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    node.deliver(POSES_TOPIC, poses_msg(ros, step_id="s7"))
    assert wait_for(lambda: node.stage.confirmation.waiting)
    node.clock.offset_ns = int(3e9)  # the operator took 3 s to look at RViz
    setbool = ros_fakes.sys.modules["std_srvs.srv"].SetBool
    node.call("/executor/confirm", setbool.Request(data=True))
    assert wait_for(lambda: results(node))
    (result,) = results(node)
    assert result["reason"] == "stale_frame" and result["retry"] is True and not result["executed"]
    assert "at the moment of execution" in node.logger.text("error") and result["step_id"] == "s7"
    assert not any(c["cmd"] == "move_to" for c in robot.commands)


def test_the_confirmation_wait_ends_when_the_plan_goes_stale(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "go_home": False, "confirm_timeout_s": 60.0,
                                "max_pose_age_s": 0.5}
    node = executor.make_node(robot=FrameRobot(DryRunRobot()))
    t0 = time.monotonic()
    node.deliver(POSES_TOPIC, poses_msg(ros))
    assert wait_for(lambda: results(node), 5.0)
    assert time.monotonic() - t0 < 3.0  # not the 60 s confirm timeout
    (result,) = results(node)
    assert result["reason"] == "stale_frame" and result["retry"] is True


def test_step_result_carries_the_step_id_and_the_heightmap_stamp(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    msg = poses_msg(ros, step_id="trial0-step3")
    node.deliver(POSES_TOPIC, msg)
    assert wait_for(lambda: results(node))
    (result,) = results(node)
    assert result["ok"] and result["step_id"] == "trial0-step3"
    assert result["heightmap_stamp_ns"] == cv.time_to_ns(msg.header.stamp)
    assert [c["cmd"] for c in robot.commands][-2:] == ["home", "stop"]  # home after the step
    assert result["homed"] is True


# ------------------------------------------------------------------------------------------ fuzz


def _adversarial_pose_array(rng, types, base):
    """A PoseArray whose poses are a valid [pick, place] pair, some of it made hostile."""
    Pose, Point, Quaternion = (ros_fakes.TYPESTORE.types[f"geometry_msgs/msg/{n}"] for n in ("Pose", "Point",
                                                                                            "Quaternion"))
    poses = [[float(v) for v in (p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                                 p.orientation.z, p.orientation.w)] for p in base.poses]
    nasty = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-200, 0.0, 5.0, -3.0, 1e-320]
    kind = rng.integers(0, 8)
    if kind == 0:  # a value anywhere
        i, j = rng.integers(0, 2), rng.integers(0, 7)
        poses[i][j] = float(rng.choice(nasty))
    elif kind == 1:  # zero / tiny / non-unit quaternion
        i = rng.integers(0, 2)
        poses[i][3:] = list(rng.choice([[0.0, 0, 0, 0], [1e-200, 0, 0, 1e-200], [0, 0, 0, 2.0], [3, 4, 0, 0]]))
    elif kind == 2:  # wrong length
        n = int(rng.choice([0, 1, 3, 5]))
        poses = (poses * 3)[:n]
    elif kind == 3:  # positions anywhere (outside the box, under the table, out of reach)
        i = rng.integers(0, 2)
        poses[i][:3] = list(rng.uniform([-2, -2, -1], [2, 2, 2]))
    elif kind == 4:  # tilted tool
        i = rng.integers(0, 2)
        poses[i][3:] = list((Rotation.from_quat(poses[i][3:]) * Rotation.from_euler(
            "x", rng.uniform(5, 170), degrees=True)).as_quat())
    elif kind == 5:  # many values at once
        arr = np.array(poses, float)
        mask = rng.random(arr.shape) < 0.3
        arr[mask] = rng.choice(nasty, size=int(mask.sum()))
        poses = arr.tolist()
    elif kind == 6:  # a small, plausible perturbation (may be accepted)
        arr = np.array(poses, float)
        arr[:, :3] += rng.normal(0, 0.02, (len(poses), 3))
        poses = arr.tolist()
    # kind 7: unchanged (valid)
    msg = type(base)(header=base.header, poses=[
        Pose(position=Point(x=p[0], y=p[1], z=p[2]), orientation=Quaternion(x=p[3], y=p[4], z=p[5], w=p[6]))
        for p in poses])
    return msg


FUZZ_MESSAGES = 300


@pytest.mark.slow
def test_fuzz_the_executor_pose_input(ros):
    """Seeded: a failure reproduces. Every message gets exactly one published result."""
    from sim2real.ros.nodes import executor
    from sim2real.trajectory_check import check_trajectory

    robot, world, adapter = moveit_robot(ros, waypoints=4)
    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    node = executor.make_node(robot=robot)
    envelope = node.stage.envelope
    rng = np.random.default_rng(20261206)
    reasons = {}
    for k in range(FUZZ_MESSAGES):
        base = poses_msg(ros, step_id=f"f{k}")
        msg = _adversarial_pose_array(rng, ros, base)
        node.deliver(POSES_TOPIC, msg)  # nothing may raise out of the callback
        assert wait_for(lambda: len(results(node)) == k + 1 and not node.stage.busy.locked(), 10.0), k
        result = results(node)[k]
        assert result["step_id"] == f"f{k}"
        if not result["ok"]:
            assert result["reason"] in STOP_REASONS and result["message"], result
        reasons[result["reason"]] = reasons.get(result["reason"], 0) + 1
    # what reached the (fake) MoveIt: finite unit-quaternion goals, trajectories inside the envelope
    goals = [c[1]["pose_stamped_msg"].pose for c in world.calls if c[0] == "goal" and "pose_stamped_msg" in c[1]]
    assert goals, "no pose was valid: the fuzz did not exercise the execution path"
    for g in goals:
        xyz = np.array([g.position.x, g.position.y, g.position.z])
        q = np.array([g.orientation.x, g.orientation.y, g.orientation.z, g.orientation.w])
        assert np.all(np.isfinite(xyz)) and np.all(np.isfinite(q)) and abs(np.linalg.norm(q) - 1) < 1e-6
    assert world.executed
    for traj in world.executed:
        samples = adapter.trajectory_samples(traj)
        assert np.all(np.isfinite(samples.tcp_xyz))
        verdict = check_trajectory(samples, envelope, holding=False)
        assert verdict.ok, verdict.reasons
    assert reasons.get("ok", 0) >= 10 and reasons.get("safety_stop", 0) >= 10 and reasons.get("policy_error", 0) >= 10
