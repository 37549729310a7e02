"""The executor node on real rclpy, its inputs and services over DDS (loopback).

The same exchanges as the fake-based executor tests of test_ros_nodes.py, but through real
publishers, subscriptions, services, callback groups and a MultiThreadedExecutor: the node runs
in this process with an injected recording robot (sim2real.robot.DryRunRobot) so its motions can
be checked; the test talks to it from a second rclpy context, i.e. over DDS.
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from ros_runtime import RclpyHelper

from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
from sim2real.robot import DryRunRobot
from sim2real.workspace import GENSIM_WORKSPACE

pytestmark = pytest.mark.ros_runtime


def _poses(place=(200, 100), age_s=0.0):
    from sim2real.ros import conversions as cv

    h = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    h[100, 40] = 0.03
    action = PickPlaceAction(PixelPose.from_pixel((100, 40), 0.0, h, GENSIM_WORKSPACE),
                             PixelPose.from_pixel(place, theta_from_bin(9), h, GENSIM_WORKSPACE))
    return cv.action_to_pose_array(cv.MsgTypes.from_rclpy(), action, "base_link", time.time() - age_s)


@pytest.fixture
def executor_node():
    """make(overrides) -> (node, robot): an executor node spinning on real rclpy in this process."""
    import rclpy
    import rclpy.node
    from rclpy.context import Context
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from sim2real.ros.moveit_robot import FrameRobot
    from sim2real.ros.nodes import executor

    started = []

    def make(overrides):
        context = Context()
        rclpy.init(context=context)
        robot = DryRunRobot()
        real_node = rclpy.node.Node

        class InContext(real_node):  # the node module builds Node(name); give it our context
            def __init__(self, name, **kw):
                super().__init__(name, context=context, **kw)

        rclpy.node.Node = InContext
        try:
            node = executor.make_node(overrides, robot=FrameRobot(robot))
        finally:
            rclpy.node.Node = real_node
        ex = MultiThreadedExecutor(context=context)
        ex.add_node(node)

        def spin():
            try:
                ex.spin()
            except ExternalShutdownException:
                pass

        t = threading.Thread(target=spin, daemon=True)
        t.start()
        started.append((context, ex, node, t))
        return node, robot

    yield make
    for context, ex, node, t in started:
        rclpy.try_shutdown(context=context)
        t.join(timeout=5)
        ex.shutdown(timeout_sec=2)
        node.shutdown()
        node.destroy_node()


def _results(helper):
    from std_msgs.msg import String

    return helper.collect(String, "/sim2real/step_result", 20)


def test_auto_mode_executes_over_dds_and_stops(executor_node):
    from geometry_msgs.msg import PoseArray

    node, robot = executor_node({"mode": "auto", "go_home": False})
    helper = RclpyHelper("poses_source")
    try:
        results = _results(helper)
        pub = helper.node.create_publisher(PoseArray, "/sim2real/pick_place_poses", 10)
        assert helper.wait_until(lambda: pub.get_subscription_count() > 0, 20)
        pub.publish(_poses())
        assert helper.wait_until(lambda: results, 20)
        result = json.loads(results[0].data)
        assert result["ok"] and result["executed"], result
        assert sum(c["cmd"] == "move_to" for c in robot.commands) >= 6
        # unsafe (out of reach) and stale poses: refused, the arm does not move
        n_moves = sum(c["cmd"] == "move_to" for c in robot.commands)
        pub.publish(_poses(place=(319, 159)))
        assert helper.wait_until(lambda: len(results) >= 2, 20)
        pub.publish(_poses(age_s=100.0))
        assert helper.wait_until(lambda: len(results) >= 3, 20)
        reasons = [json.loads(m.data)["reason"] for m in results[1:3]]
        assert reasons == ["safety_stop", "stale_frame"], reasons
        assert sum(c["cmd"] == "move_to" for c in robot.commands) == n_moves
    finally:
        helper.close()


def test_confirm_mode_waits_for_the_service_over_dds(executor_node):
    from geometry_msgs.msg import PoseArray
    from std_srvs.srv import SetBool

    node, robot = executor_node({"mode": "confirm", "go_home": False, "confirm_timeout_s": 20.0})
    helper = RclpyHelper("operator")
    try:
        results = _results(helper)
        pub = helper.node.create_publisher(PoseArray, "/sim2real/pick_place_poses", 10)
        assert helper.wait_until(lambda: pub.get_subscription_count() > 0, 20)
        nothing = helper.call(SetBool, "/executor/confirm", SetBool.Request(data=True))
        assert nothing is not None and not nothing.success
        pub.publish(_poses())
        assert helper.wait_until(lambda: node.stage.confirmation.waiting, 20)
        assert not any(c["cmd"] == "move_to" for c in robot.commands)  # nothing moves before the answer
        yes = helper.call(SetBool, "/executor/confirm", SetBool.Request(data=True))
        assert yes is not None and yes.success
        assert helper.wait_until(lambda: results, 20)
        result = json.loads(results[0].data)
        assert result["ok"] and result["executed"], result
    finally:
        helper.close()
