"""The node code itself, run against an in-memory fake of the ROS 2 Python API (test/ros_fakes.py)
with the real message definitions: what each node subscribes, publishes and answers, and that a
stale frame, a lost camera, a TF timeout or an unsafe pose stops the step with its reason.
Where real rclpy can run the same exchange it does (test_ros_runtime_*.py: parameters, SIGINT,
camera QoS and playback, services and the step protocol, the twin graph). These fake-based tests
stay for what PyPI lacks: tf2_ros (TF lookups, timeouts, static TF), message_filters
(ApproximateTimeSynchronizer) and moveit_py, and for in-process details (watchdogs, injected ports).
"""
import json
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import ros_fakes
from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.heightmap import HeightmapObservation
from sim2real.robot import DryRunRobot
from sim2real.ros import conversions as cv
from sim2real.ros.moveit_robot import FrameRobot
from sim2real.ros.params import (COLORMAP_TOPIC, GOAL_TOPIC, HEIGHTMAP_TOPIC, OVERLAY_TOPIC, PLANNED_POSES_TOPIC,
                                 POSES_TOPIC, SIM2REAL_CAMERA_TOPICS, STEP_RESULT_TOPIC)
from sim2real.workspace import GENSIM_WORKSPACE


@pytest.fixture
def ros(monkeypatch):
    ros_fakes.install(monkeypatch)
    return cv.MsgTypes.from_rclpy()


def now_s():
    return time.time_ns() * 1e-9


def results(node):
    return [json.loads(m.data) for m in node.published(STEP_RESULT_TOPIC)]


# ------------------------------------------------------------------------------------------ camera + heightmap

INTR = CameraIntrinsics(64, 48, 60.0, 60.0, 32.0, 24.0)
# camera 0.6 m above the workspace centre looking straight down
T_BASE_CAMERA = np.eye(4)
T_BASE_CAMERA[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
T_BASE_CAMERA[:3, 3] = [0.5, 0.0, 0.6]


def frame(stamp):
    depth = np.full((48, 64), 0.6, np.float32)
    depth[20:28, 28:36] = 0.55  # a 5 cm box under the camera
    color = np.full((48, 64, 3), 90, np.uint8)
    return RGBDFrame(color, depth, INTR, "camera_color_optical_frame", stamp)


class FakeCamera:
    def __init__(self, fail=False):
        self.fail, self.closed = fail, False

    def read(self, timeout_s=1.0):
        from sim2real.errors import HardwareError

        if self.fail:
            raise HardwareError("no frame within 1 s")
        return frame(now_s())

    def close(self):
        self.closed = True


def test_camera_node_publishes_color_depth_info(ros):
    from sim2real.ros.nodes import camera

    node = camera.make_node(camera=FakeCamera())
    assert node.timers and node.timers[0][0] == pytest.approx(0.1)
    node.stage.tick()
    color, depth, info = (node.published(SIM2REAL_CAMERA_TOPICS[k])[0]
                          for k in ("color_topic", "depth_topic", "camera_info_topic"))
    assert (color.encoding, depth.encoding) == ("rgb8", "16UC1")
    assert color.header.frame_id == depth.header.frame_id == info.header.frame_id == "camera_color_optical_frame"
    assert cv.camera_info_to_intrinsics(info) == INTR
    np.testing.assert_allclose(cv.image_msg_to_depth(depth)[24, 32], 0.55)
    node.shutdown()
    assert node.stage.camera.closed


def test_camera_node_logs_a_lost_camera(ros):
    from sim2real.ros.nodes import camera

    node = camera.make_node(camera=FakeCamera(fail=True))
    node.stage.tick()
    assert "camera lost" in node.logger.text("error")
    assert node.published(SIM2REAL_CAMERA_TOPICS["color_topic"]) == []


def _set_tf(types, parent="base_link", child="camera_color_optical_frame"):
    ros_fakes.Buffer.transforms[(parent, child)] = cv.transform_stamped_msg(types, T_BASE_CAMERA, parent, child)


def _feed_frame(node, types, stamp):
    color, depth, info = cv.rgbd_frame_to_msgs(types, frame(stamp))
    for topic, msg in zip(SIM2REAL_CAMERA_TOPICS.values(), (color, depth, info)):
        node.deliver(topic, msg)


def test_heightmap_node_projects_synchronised_frames_with_tf(ros):
    from sim2real.ros.nodes import heightmap

    _set_tf(ros)
    node = heightmap.make_node()
    stamp = now_s()
    _feed_frame(node, ros, stamp)
    (height_msg,), (color_msg,) = node.published(HEIGHTMAP_TOPIC), node.published(COLORMAP_TOPIC)
    obs = cv.heightmap_from_msgs(height_msg, color_msg)
    assert obs.height.shape == GENSIM_WORKSPACE.shape and obs.stamp == pytest.approx(stamp)
    assert height_msg.header.frame_id == "base_link"
    assert obs.height.max() == pytest.approx(0.05, abs=0.004)  # the box top, 5 cm above the table


def test_heightmap_node_drops_stale_frames(ros):
    from sim2real.ros.nodes import heightmap

    _set_tf(ros)
    node = heightmap.make_node()
    _feed_frame(node, ros, now_s() - 5.0)
    assert node.published(HEIGHTMAP_TOPIC) == []
    assert "old (max_age_s" in node.logger.text("warning")


def test_heightmap_node_reports_tf_timeout(ros):
    from sim2real.ros.nodes import heightmap

    node = heightmap.make_node()
    _feed_frame(node, ros, now_s())
    assert node.published(HEIGHTMAP_TOPIC) == []
    log = node.logger.text("error")
    assert "TF timeout" in log and "ros2 run tf2_ros tf2_echo base_link camera_color_optical_frame" in log
    (status,) = node.published("/sim2real/heightmap_status")
    assert json.loads(status.data)["reason"] == "tf_timeout"


def test_policy_records_the_heightmap_nodes_reason(ros):
    from sim2real.ros.nodes import policy

    node = policy.make_node(policy=FakePolicy())
    String = ros_fakes.TYPESTORE.types["std_msgs/msg/String"]
    node.deliver("/sim2real/heightmap_status", String(data=json.dumps({"reason": "tf_timeout", "message": "no TF"})))
    node.deliver(GOAL_TOPIC, String(data="build a wheel"))
    (result,) = results(node)
    assert result["reason"] == "tf_timeout" and "no TF" in result["message"]


def test_pipeline_tf_timeout_stops_the_step_with_its_reason(ros):
    from sim2real.ros.nodes import pipeline

    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    robot = DryRunRobot()
    node = pipeline.make_node(policy=FakePolicy(), robot=FrameRobot(robot))
    _feed_frame(node, ros, now_s())  # no TF set
    node.deliver(GOAL_TOPIC, ros_fakes.TYPESTORE.types["std_msgs/msg/String"](data="build a wheel"))
    reasons = [r["reason"] for r in results(node)]
    assert reasons and set(reasons) == {"tf_timeout"}
    assert robot.commands == []


def test_heightmap_watchdog_reports_a_lost_camera(ros):
    from sim2real.ros.nodes import heightmap

    node = heightmap.make_node()
    node.timers[0][1]()
    assert "camera lost" in node.logger.text("warning")


# ------------------------------------------------------------------------------------------ policy

class FakePolicy:
    name = "fake"

    def __init__(self):
        self.calls = []

    def act(self, obs, goal, **kw):
        self.calls.append(goal)
        obs = HeightmapObservation(obs.color, obs.height.copy(), obs.workspace, obs.stamp)
        obs.height[100, 40] = max(obs.height[100, 40], 0.03)
        pick = PixelPose.from_pixel((100, 40), 0.0, obs.height, obs.workspace)
        place = PixelPose.from_pixel((200, 100), theta_from_bin(9), obs.height, obs.workspace)
        logits = np.zeros(obs.workspace.shape, np.float32)
        logits[100, 40] = 5.0
        return PickPlaceAction(pick, place, pick_logits=logits, place_logits=np.zeros((36,) + obs.workspace.shape))


def _observation(stamp):
    rows, cols = GENSIM_WORKSPACE.shape
    return HeightmapObservation(np.full((rows, cols, 3), 50, np.uint8), np.zeros((rows, cols), np.float32),
                                GENSIM_WORKSPACE, stamp)


def _feed_heightmap(node, types, stamp):
    h, c = cv.heightmap_to_msgs(types, _observation(stamp), "base_link")
    node.deliver(HEIGHTMAP_TOPIC, h)
    node.deliver(COLORMAP_TOPIC, c)


def test_policy_node_publishes_poses_and_overlay(ros):
    from sim2real.ros.nodes import policy

    fake = FakePolicy()
    node = policy.make_node(policy=fake)
    stamp = now_s()
    _feed_heightmap(node, ros, stamp)
    node.deliver(GOAL_TOPIC, ros_fakes.TYPESTORE.types["std_msgs/msg/String"](data="build a wheel"))
    assert fake.calls == ["build a wheel"]
    (poses,) = node.published(POSES_TOPIC)
    assert poses.header.frame_id == "base_link" and cv.time_to_seconds(poses.header.stamp) == pytest.approx(stamp)
    action = cv.pose_array_to_action(poses)
    assert action.pick.pixel == (100, 40) and action.place.pixel == (200, 100)
    (overlay,) = node.published(OVERLAY_TOPIC)
    assert overlay.encoding == "rgb8" and (overlay.height, overlay.width) == GENSIM_WORKSPACE.shape
    assert results(node) == []


@pytest.mark.parametrize("age, reason", [(None, "camera_lost"), (10.0, "stale_frame")])
def test_policy_node_refuses_missing_or_stale_heightmaps(ros, age, reason):
    from sim2real.ros.nodes import policy

    fake = FakePolicy()
    node = policy.make_node(policy=fake)
    if age is not None:
        _feed_heightmap(node, ros, now_s() - age)
    node.deliver(GOAL_TOPIC, ros_fakes.TYPESTORE.types["std_msgs/msg/String"](data="build a wheel"))
    assert fake.calls == [] and node.published(POSES_TOPIC) == []
    (result,) = results(node)
    assert result["reason"] == reason and result["goal"] == "build a wheel" and not result["ok"]


def test_policy_node_needs_a_checkpoint(ros):
    from sim2real.errors import ConfigError
    from sim2real.ros.nodes import policy

    with pytest.raises(ConfigError, match="checkpoint:="):
        policy.make_node()


# ------------------------------------------------------------------------------------------ executor

def _poses_msg(types, place=(200, 100), stamp=None):
    h = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    h[100, 40] = 0.03  # a 3 cm object to pick (the table itself is below the safety floor)
    action = PickPlaceAction(PixelPose.from_pixel((100, 40), 0.0, h, GENSIM_WORKSPACE),
                             PixelPose.from_pixel(place, theta_from_bin(9), h, GENSIM_WORKSPACE))
    return cv.action_to_pose_array(types, action, "base_link", now_s() if stamp is None else stamp)


def _wait_results(node, n=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(results(node)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return results(node)


def test_executor_dry_run_plans_shows_and_never_moves(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "dry_run"}
    node = executor.make_node()
    node.deliver(GOAL_TOPIC, ros_fakes.TYPESTORE.types["std_msgs/msg/String"](data="build a wheel"))
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    (result,) = _wait_results(node)
    assert result["reason"] == "dry_run" and result["goal"] == "build a wheel" and not result["executed"]
    (planned,) = node.published(PLANNED_POSES_TOPIC)
    assert len(planned.poses) == 6 and planned.header.frame_id == "base_link"
    robot = node.stage.robot.robot.robot  # StopLatch -> FrameRobot -> DryRunRobot
    assert [c["cmd"] for c in robot.commands] == []


def test_executor_auto_executes_and_stops(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    (result,) = _wait_results(node)
    assert result["ok"] and result["executed"]
    assert sum(c["cmd"] == "move_to" for c in robot.commands) == 6 and robot.commands[-1]["cmd"] == "stop"
    node.shutdown()
    assert robot.commands[-1]["cmd"] == "stop"


def test_executor_refuses_unsafe_and_stale_poses(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    node.deliver(POSES_TOPIC, _poses_msg(ros, place=(319, 159)))
    (unsafe,) = _wait_results(node)
    assert unsafe["reason"] == "safety_stop" and "reach" in unsafe["message"]
    node.deliver(POSES_TOPIC, _poses_msg(ros, stamp=now_s() - 100.0))
    stale = _wait_results(node, 2)[1]
    assert stale["reason"] == "stale_frame"
    assert not any(c["cmd"] == "move_to" for c in robot.commands)


def test_executor_confirm_mode_waits_for_the_service(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "go_home": False, "confirm_timeout_s": 5.0}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    srv = ros_fakes.sys.modules["std_srvs.srv"].SetBool
    assert node.call("/executor/confirm", srv.Request(data=True)).success is False  # nothing waiting yet
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    deadline = time.monotonic() + 5
    while not node.stage.confirmation.waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "ros2 service call /executor/confirm std_srvs/srv/SetBool" in node.logger.text("warning")
    assert node.call("/executor/confirm", srv.Request(data=True)).success is True
    (result,) = _wait_results(node)
    assert result["ok"] and result["executed"]


def test_executor_busy_answers_new_poses_with_a_retry_once_the_arm_is_free(ros):
    """Poses that come while a step runs are not executed, and never left unanswered (the trial would
    wait step_timeout_s): once the running step ends, their result asks for the step again."""
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "confirm", "go_home": False, "confirm_timeout_s": 1.0}
    robot = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(robot))
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    assert "still running" in node.logger.text("warning")
    first, second = _wait_results(node, 2)
    assert first["reason"] == "rejected_by_operator"  # the running step: nobody confirmed within 1 s
    assert second["reason"] == "stale_frame" and second["retry"] is True and not second["executed"]
    assert "moving" in second["message"]
    assert not any(c["cmd"] == "move_to" for c in robot.commands)


def test_executor_busy_longer_than_the_wait_ends_the_step(ros, monkeypatch):
    from sim2real.ros.nodes import executor

    monkeypatch.setattr(executor, "BUSY_WAIT_S", 0.2)
    ros_fakes.Node.overrides = {"mode": "confirm", "go_home": False, "confirm_timeout_s": 2.0}
    node = executor.make_node(robot=FrameRobot(DryRunRobot()))
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    node.deliver(POSES_TOPIC, _poses_msg(ros))
    busy, running = _wait_results(node, 2)
    assert busy["reason"] == "stale_frame" and busy["retry"] is False and "still moving" in busy["message"]
    assert running["reason"] == "rejected_by_operator"


def test_executor_home_service(ros):
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    inner = DryRunRobot()
    node = executor.make_node(robot=FrameRobot(inner))
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    response = node.call("/executor/home", trigger.Request())
    assert response.success and [c["cmd"] for c in inner.commands] == ["home", "stop"]


# ------------------------------------------------------------------------------------------ pipeline

def test_pipeline_hands_over_in_process(ros):
    from sim2real.ros.nodes import pipeline

    _set_tf(ros)
    ros_fakes.Node.overrides = {"mode": "auto", "go_home": False}
    robot = DryRunRobot()
    fake = FakePolicy()
    node = pipeline.make_node(policy=fake, robot=FrameRobot(robot))
    _feed_frame(node, ros, now_s())
    assert node.published(HEIGHTMAP_TOPIC)
    assert POSES_TOPIC not in node.subscriptions and HEIGHTMAP_TOPIC not in node.subscriptions
    node.deliver(GOAL_TOPIC, ros_fakes.TYPESTORE.types["std_msgs/msg/String"](data="build a wheel"))
    (result,) = _wait_results(node)
    assert result["ok"] and result["executed"] and result["goal"] == "build a wheel"
    assert node.published(POSES_TOPIC) and node.published(OVERLAY_TOPIC)


# ------------------------------------------------------------------------------------------ calibration TF

def test_calibration_tf_node_broadcasts_the_calibration(ros, tmp_path):
    from sim2real.calibration.storage import Calibration, save_calibration
    from sim2real.ros.nodes import calibration_tf

    path = save_calibration(Calibration("t", T_BASE_CAMERA, INTR, frames={"base": "link_base", "camera": "cam"}),
                            tmp_path / "t.yaml")
    ros_fakes.Node.overrides = {"calibration": str(path)}
    calibration_tf.make_node()
    (tf,) = ros_fakes.StaticTransformBroadcaster.sent
    assert (tf.header.frame_id, tf.child_frame_id) == ("link_base", "cam")
    np.testing.assert_allclose(cv.transform_to_matrix(tf), T_BASE_CAMERA, atol=1e-12)


# ------------------------------------------------------------------------------------------ trials

def test_trials_node_runs_labels_and_logs_a_trial(ros, tmp_path):
    from sim2real.ros.nodes import trials
    from sim2real.ros.steps import decode_goal
    from sim2real.tasks import TaskSpec
    from sim2real.trials.log import load_trials

    tasks = {"build-wheel": TaskSpec("build-wheel", ("build wheel",), "build a wheel", 2, (), ())}
    import sim2real.tasks as tasks_module

    real_resolve = tasks_module.resolve
    try:
        tasks_module.resolve = lambda name, t=None: real_resolve(name, tasks)
        ros_fakes.Node.overrides = {"task": "build wheel", "trials": 1, "out": str(tmp_path / "camp"),
                                    "step_timeout_s": 5.0}
        node = trials.make_node()
    finally:
        tasks_module.resolve = real_resolve
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    setbool = ros_fakes.sys.modules["std_srvs.srv"].SetBool
    String = ros_fakes.TYPESTORE.types["std_msgs/msg/String"]

    def answer_goals():  # plays policy + executor: one ok step, then a planning failure
        replies = iter([{"stage": "executor", "ok": True, "reason": "ok", "executed": True, "mode": "auto"},
                        {"stage": "executor", "ok": False, "reason": "planning_failed", "message": "no plan"}])
        seen = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and seen < 2:
            goals = node.published(GOAL_TOPIC)
            if len(goals) > seen:
                goal, step_id = decode_goal(goals[seen].data)
                assert goal == "build a wheel" and step_id
                seen += 1
                node.deliver(STEP_RESULT_TOPIC, String(data=json.dumps({**next(replies), "step_id": step_id})))
            time.sleep(0.01)

    deadline = time.monotonic() + 5
    while node.operator.waiting_for != "reset" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert node.call("/trials/label", setbool.Request(data=True)).success is False  # nothing to label yet
    player = threading.Thread(target=answer_goals)
    player.start()
    assert node.call("/trials/start_trial", trigger.Request()).success
    player.join(10)
    deadline = time.monotonic() + 5
    while node.operator.waiting_for != "label" and time.monotonic() < deadline:
        time.sleep(0.01)
    node.params["label_note"] = "planner gave up"
    response = node.call("/trials/label", setbool.Request(data=False))
    assert response.success and "planning" in response.message
    node.worker.join(10)
    (record,) = load_trials(tmp_path / "camp")
    assert (record["task"], record["steps"], record["reason"], record["success"]) == ("build-wheel", 2,
                                                                                     "planning_failed", False)
    assert record["label"]["category"] == "planning" and record["label"]["note"] == "planner gave up"
    assert node.params["label_note"] == ""  # consumed
    prompts = [m.data for m in node.published("/sim2real/operator_prompt")]
    assert any("reset the scene" in p for p in prompts) and any("campaign finished" in p for p in prompts)


# ------------------------------------------------------------------------------------------ main()

# main(): bad parameters -> one line + exit 2, and a clean exit on SIGINT, run on real rclpy as the
# console scripts: test_ros_runtime_nodes.py (these fake-rclpy versions were replaced).


# ------------------------------------------------------------------------------------------ calibrate

def test_calibrate_node_services_report_what_is_missing(ros):
    from sim2real.ros.nodes import calibrate

    ros_fakes.Node.overrides = {"read_timeout_s": 0.1, "robot": "xarm6"}
    node = calibrate.make_node()
    trigger = ros_fakes.sys.modules["std_srvs.srv"].Trigger
    solve = node.call("/calibrate/solve", trigger.Request())
    assert not solve.success and "take at least 12" in solve.message
    sample = node.call("/calibrate/sample", trigger.Request())
    assert not sample.success and "camera lost" in sample.message
    _feed_frame(node, ros, now_s())  # a frame arrives, but the arm's TF is missing
    threading.Timer(0.02, _feed_frame, args=(node, ros, now_s())).start()
    sample = node.call("/calibrate/sample", trigger.Request())
    assert not sample.success and ("TF timeout link_base <- link_eef" in sample.message
                                   or "camera lost" in sample.message)
    assert node.call("/calibrate/clear", trigger.Request()).success


def test_camera_node_configures_the_realsense_from_its_parameters(monkeypatch):
    import sim2real.realsense as rs_mod
    from sim2real.ros.nodes.camera import open_camera
    from sim2real.ros.params import defaults

    made = []

    class Camera:
        def __init__(self, config):
            made.append(config)

        def connect(self):
            return self

    monkeypatch.setattr(rs_mod, "RealSenseCamera", Camera)
    params = {**defaults("camera"), "serial": "831612073525", "width": 848, "height": 480, "fps": 15}
    open_camera(params)
    (config,) = made
    assert config.serial == "831612073525" and config.frame_id == "camera_color_optical_frame"
    assert (config.color.width, config.color.height, config.color.fps) == (848, 480, 15)
    assert (config.depth.width, config.depth.fps) == (848, 15) and config.timeout_s == params["read_timeout_s"]
