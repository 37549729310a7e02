"""Step ids end to end (trials goal -> policy -> poses -> executor -> step result) and the trials
node storing the observation the policy acted on; the in-memory rclpy fake (test/ros_fakes.py)."""
import json
import threading
import time

import numpy as np
import pytest

import ros_fakes
from sim2real.heightmap import HeightmapObservation
from sim2real.ros import conversions as cv
from sim2real.ros.nodes.trials import ObservationBuffer, StepChannel
from sim2real.ros.params import COLORMAP_TOPIC, GOAL_TOPIC, HEIGHTMAP_TOPIC, POSES_TOPIC, STEP_RESULT_TOPIC
from sim2real.ros.steps import (MAX_STALE_RETRIES, decode_goal, encode_goal, run_remote_episode, split_frame,
                                step_result, tag_frame)
from sim2real.workspace import GENSIM_WORKSPACE


@pytest.fixture
def ros(monkeypatch):
    ros_fakes.install(monkeypatch)
    return cv.MsgTypes.from_rclpy()


def test_goal_and_frame_tags_round_trip():
    assert decode_goal(encode_goal("build a wheel", "ab-3")) == ("build a wheel", "ab-3")
    assert decode_goal("  stack the blocks ") == ("stack the blocks", "")  # a plain goal (ros2 topic pub)
    assert decode_goal("{not json") == ("{not json", "")
    assert split_frame(tag_frame("base_link", "ab-3")) == ("base_link", "ab-3")
    assert tag_frame("base_link", "") == "base_link" and split_frame("base_link") == ("base_link", "")


def test_a_late_result_after_a_timeout_is_not_taken_as_the_next_steps():
    sent = []
    channel = StepChannel(sent.append)
    with pytest.raises(TimeoutError):
        channel.request("build a wheel", 0.05)
    first = decode_goal(sent[0])[1]
    late = step_result("executor", True, "ok", step_id=first)
    assert channel.deliver(late) is False  # nobody waits for it any more

    def answer():
        deadline = time.monotonic() + 5
        while len(sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        channel.deliver(late)  # the late one again, now while the next step waits
        channel.deliver(step_result("executor", False, "planning_failed", step_id=decode_goal(sent[1])[1]))

    threading.Thread(target=answer).start()
    result = channel.request("build a wheel", 5.0)
    assert result["reason"] == "planning_failed"  # the next step's own result, not the late "ok"
    assert decode_goal(sent[0])[1] != decode_goal(sent[1])[1]
    assert [r["step_id"] for r in channel.dropped] == [first, first]


def test_observation_buffer_keeps_the_newest_few():
    buf = ObservationBuffer(keep=2)
    for k in range(4):
        buf.add(k, f"obs{k}")
    assert buf.get(0) is None and buf.get(3) == "obs3" and buf.get(None) is None


def test_a_stale_plan_asks_for_the_same_step_again():
    calls = []
    replies = iter([step_result("executor", False, "stale_frame", "old", retry=True),
                    step_result("executor", True, "ok", executed=True),
                    step_result("executor", False, "planning_failed", "no plan")])

    def request(goal, index):
        calls.append(index)
        return next(replies)

    records = []
    res = run_remote_episode("g", 5, request, on_step=records.append)
    assert calls == [0, 0, 1] and res.steps == 2 and res.reason == "planning_failed"
    assert records[0]["info"]["stale_retries"] == 1
    always_stale = run_remote_episode("g", 5, lambda g, i: step_result("executor", False, "stale_frame", "old",
                                                                        retry=True))
    assert always_stale.reason == "stale_frame" and always_stale.steps == 1
    assert MAX_STALE_RETRIES >= 1


def _observation(stamp, level):
    rows, cols = GENSIM_WORKSPACE.shape
    return HeightmapObservation(np.full((rows, cols, 3), 50, np.uint8), np.full((rows, cols), level, np.float32),
                                GENSIM_WORKSPACE, stamp)


def _feed(node, types, obs):
    h, c = cv.heightmap_to_msgs(types, obs, "base_link")
    node.deliver(HEIGHTMAP_TOPIC, h)
    node.deliver(COLORMAP_TOPIC, c)
    return cv.time_to_ns(h.header.stamp)


def test_trials_node_stores_the_observation_the_policy_acted_on(ros, tmp_path):
    from sim2real.ros.nodes import trials
    from sim2real.tasks import TaskSpec

    import sim2real.tasks as tasks_module

    tasks = {"build-wheel": TaskSpec("build-wheel", ("build wheel",), "build a wheel", 2, (), ())}
    real_resolve = tasks_module.resolve
    try:
        tasks_module.resolve = lambda name, t=None: real_resolve(name, tasks)
        ros_fakes.Node.overrides = {"task": "build wheel", "trials": 1, "out": str(tmp_path / "camp"),
                                    "step_timeout_s": 5.0}
        node = trials.make_node()
    finally:
        tasks_module.resolve = real_resolve
    String = ros_fakes.TYPESTORE.types["std_msgs/msg/String"]
    t_acted = time.time() - 1.0
    acted_ns = _feed(node, ros, _observation(t_acted, 0.01))  # what the policy sees

    def play():
        deadline = time.monotonic() + 5
        while not node.published(GOAL_TOPIC) and time.monotonic() < deadline:
            time.sleep(0.005)
        step_id = decode_goal(node.published(GOAL_TOPIC)[0].data)[1]
        _feed(node, ros, _observation(time.time(), 0.07))  # the scene after the motion arrives first
        node.deliver(STEP_RESULT_TOPIC, String(data=json.dumps(
            step_result("executor", True, "ok", step_id="someone-else", executed=True))))
        node.deliver(STEP_RESULT_TOPIC, String(data=json.dumps(step_result(
            "executor", False, "planning_failed", "no plan", step_id=step_id, heightmap_stamp_ns=acted_ns))))

    records = []
    player = threading.Thread(target=play)
    player.start()
    result = node._run_trial("build-wheel", 0, 0, on_step=records.append)
    player.join(5)
    assert result.reason == "planning_failed" and result.steps == 1  # the foreign "ok" was not taken
    (step,) = records
    assert step["observation"] is not None and step["observation"].stamp == pytest.approx(t_acted)
    assert float(step["observation"].height.max()) == pytest.approx(0.01)  # not the 7 cm scene after the motion
    assert step["info"]["step_id"] == decode_goal(node.published(GOAL_TOPIC)[0].data)[1]
    node.shutdown()


class FakePolicy:
    name = "fake"

    def act(self, obs, goal, **kw):
        from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin

        h = obs.height.copy()
        h[100, 40] = 0.03
        return PickPlaceAction(PixelPose.from_pixel((100, 40), 0.0, h, obs.workspace),
                               PixelPose.from_pixel((200, 100), theta_from_bin(9), h, obs.workspace))


def test_policy_node_carries_the_step_id_to_the_poses_and_its_failures(ros):
    from sim2real.ros.nodes import policy

    node = policy.make_node(policy=FakePolicy())
    String = ros_fakes.TYPESTORE.types["std_msgs/msg/String"]
    node.deliver(GOAL_TOPIC, String(data=encode_goal("build a wheel", "s1")))  # no heightmap yet
    (failure,) = [json.loads(m.data) for m in node.published(STEP_RESULT_TOPIC)]
    assert failure["reason"] == "camera_lost" and failure["step_id"] == "s1"
    stamp = time.time()
    _feed(node, ros, _observation(stamp, 0.0))
    node.deliver(GOAL_TOPIC, String(data=encode_goal("build a wheel", "s2")))
    (poses,) = node.published(POSES_TOPIC)
    assert split_frame(poses.header.frame_id) == ("base_link", "s2")
    assert cv.time_to_seconds(poses.header.stamp) == pytest.approx(stamp)  # the heightmap acted on


def test_executor_strips_the_tag_and_answers_with_the_id(ros):
    from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
    from sim2real.robot import DryRunRobot
    from sim2real.ros.moveit_robot import FrameRobot
    from sim2real.ros.nodes import executor

    ros_fakes.Node.overrides = {"mode": "dry_run"}
    node = executor.make_node(robot=FrameRobot(DryRunRobot()))
    h = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    h[100, 40] = 0.03
    action = PickPlaceAction(PixelPose.from_pixel((100, 40), 0.0, h, GENSIM_WORKSPACE),
                             PixelPose.from_pixel((200, 100), theta_from_bin(9), h, GENSIM_WORKSPACE))
    msg = cv.action_to_pose_array(ros, action, tag_frame("base_link", "s9"), time.time())
    node.deliver(POSES_TOPIC, msg)
    deadline = time.monotonic() + 5
    while not node.published(STEP_RESULT_TOPIC) and time.monotonic() < deadline:
        time.sleep(0.005)
    (result,) = [json.loads(m.data) for m in node.published(STEP_RESULT_TOPIC)]
    assert result["reason"] == "dry_run" and result["step_id"] == "s9"
