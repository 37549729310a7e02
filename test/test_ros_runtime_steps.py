"""The step protocol and the services between policy, executor and trials over real DDS (loopback).

trials_node and executor_node (dry_run) run as their console scripts; the test plays the policy
(it answers the trials node's goals with tagged [pick, place] PoseArrays, late on purpose once)
and the operator (std_srvs services). Replaces the fake-rclpy versions of these exchanges; the
fakes remain only where PyPI lacks a package (tf2_ros, message_filters, moveit_py:
test_ros_nodes.py, test_ros_moveit_adapter.py).
"""
from __future__ import annotations

import json
import time

import pytest
from ros_runtime import NodeProcess, RclpyHelper

pytestmark = pytest.mark.ros_runtime

BASE = "base_link"


def _poses_msg(step_id: str):
    from sim2real.ros.conversions import MsgTypes, pose_array_msg
    from sim2real.ros.steps import tag_frame

    down = [0.0, 0.0, 0.0, 1.0]
    poses = [((0.45, -0.05, 0.02), down), ((0.55, 0.15, 0.02), down)]
    return pose_array_msg(MsgTypes.from_rclpy(), poses, tag_frame(BASE, step_id), time.time())


def test_step_timeout_late_reply_and_services(tmp_path, repo_root):
    from geometry_msgs.msg import PoseArray
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from sim2real.ros.steps import decode_goal

    out = tmp_path / "camp"
    executor = NodeProcess("executor_node", {"mode": "dry_run", "robot": "ur5"}, cwd=repo_root)
    trials = NodeProcess("trials_node", {"task": "stack block", "goal": "stack the blocks", "trials": 2,
                                         "max_steps": 1, "step_timeout_s": 3.0, "out": str(out)}, cwd=repo_root)
    helper = RclpyHelper("policy_and_operator")
    try:
        goals = helper.collect(String, "/sim2real/goal", 20)
        results = helper.collect(String, "/sim2real/step_result", 20)
        prompts = helper.collect(String, "/sim2real/operator_prompt", 20)
        poses_pub = helper.node.create_publisher(PoseArray, "/sim2real/pick_place_poses", 10)
        assert helper.wait_until(lambda: {"executor", "trials"} <= set(helper.node.get_node_names()), 60)

        # executor services over DDS: nothing to confirm; dry_run never homes; stop always answers
        confirm = helper.call(SetBool, "/executor/confirm", SetBool.Request(data=True))
        assert confirm is not None and not confirm.success and "no motion is waiting" in confirm.message
        home = helper.call(Trigger, "/executor/home")
        assert home is not None and not home.success and "dry_run" in home.message
        assert helper.call(Trigger, "/executor/stop").success
        # labelling before any trial ran is refused
        early = helper.call(SetBool, "/trials/label", SetBool.Request(data=True))
        assert early is not None and not early.success

        # trial 1: the "policy" stays silent past step_timeout_s -> step_timeout
        assert helper.wait_until(lambda: helper.call(Trigger, "/trials/start_trial", timeout=5).success, 30)
        assert helper.wait_until(lambda: len(goals) >= 1, 20), trials.output
        goal, step1 = decode_goal(goals[0].data)
        assert goal == "stack the blocks" and step1  # the trials node tags every goal with a step id
        assert helper.wait_until(lambda: any("ended: step_timeout" in m.data for m in prompts), 20), trials.output
        # the late reply arrives now: the executor still answers it, tagged with the old step id
        poses_pub.publish(_poses_msg(step1))
        assert helper.wait_until(lambda: any(json.loads(m.data).get("step_id", "") == step1 for m in results), 20), \
            executor.output
        late = [json.loads(m.data) for m in results if json.loads(m.data).get("step_id", "") == step1][0]
        assert late["stage"] == "executor" and late["reason"] == "dry_run", late
        lab = helper.call(SetBool, "/trials/label", SetBool.Request(data=False))
        assert lab is not None and lab.success and "failure" in lab.message, lab

        # trial 2: a prompt answer; the late result of step 1 must not have been taken for it
        assert helper.wait_until(lambda: helper.call(Trigger, "/trials/start_trial", timeout=5).success, 30)
        assert helper.wait_until(lambda: len(goals) >= 2, 20), trials.output
        _, step2 = decode_goal(goals[1].data)
        assert step2 and step2 != step1
        poses_pub.publish(_poses_msg(step2))
        assert helper.wait_until(lambda: any("trial 2" in m.data and "ended" in m.data for m in prompts), 20), \
            trials.output
        ended = [m.data for m in prompts if "trial 2" in m.data and "ended" in m.data][0]
        assert "step_timeout" not in ended, ended
        assert helper.call(SetBool, "/trials/label", SetBool.Request(data=True)).success
        assert helper.wait_until(lambda: any("campaign finished" in m.data for m in prompts), 20), trials.output
    finally:
        helper.close()
        codes = [executor.interrupt(8.0), trials.interrupt(8.0)]
    assert [c for c, _ in codes] == [0, 0], executor.output + trials.output
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [r["label"]["outcome"] for r in records] == ["failure", "success"]
    assert [r["success"] for r in records] == [False, True]
    assert records[0]["reason"] == "step_timeout" and records[1]["reason"] != "step_timeout", records
