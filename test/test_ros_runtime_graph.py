"""The deploy graph on the digital twin over real DDS (loopback): ``deploy.launch.py robot:=sim``.

``ros2 launch`` cannot be installed from PyPI, so the test starts the nodes that
:func:`sim2real.ros.launch_plan.deploy_plan` lists, each as its console script with the plan's
parameters, plays the operator through the services (twin ``~/reset`` = resetting the scene,
trials ``~/start_trial``, ``~/done`` when the twin says the task is done, ``~/label``) and checks
that trials.jsonl then holds both labelled trials, as ``sim2real run`` writes them.

Two layouts: every stage its own process (``pipeline:=false``), and the policy in a separate
"GPU host" process started on its own from the same plan (``start_policy:=false`` for the rest),
talking to the others only over DDS (same ROS_DOMAIN_ID, LOCALHOST discovery in this test; see
docs/ros_runtime.md for two hosts). The camera -> base transform reaches the heightmap node from
the calibration YAML here (no tf2_ros on PyPI); with a sourced ROS 2 it comes from TF.
"""
from __future__ import annotations

import json
import time

import pytest
from ros_runtime import NodeProcess, RclpyHelper, crash_report

from sim2real.ros.launch_plan import deploy_plan

pytestmark = [pytest.mark.ros_runtime, pytest.mark.slow]

TASK = "stack block"


def _args(out, **over):
    args = {"task": TASK, "goal": "stack the blocks", "robot": "sim", "mode": "auto", "use_sim_robot": "false",
            "calibration": "", "checkpoint": "", "camera": "pyrealsense", "trials": "2", "max_steps": "0",
            "out": str(out), "device": "cpu", "rviz": "false", "pipeline": "false", "start_policy": "true"}
    args.update(over)
    return args


def _operate(helper: RclpyHelper, procs: dict, n_trials: int, timeout: float = 240.0) -> list:
    """Play the operator for ``n_trials``; returns [(twin check dict, label response)]."""
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger

    from sensor_msgs.msg import Image

    from rclpy.qos import qos_profile_sensor_data

    prompts = helper.collect(String, "/sim2real/operator_prompt", 50)
    heightmaps = helper.collect(Image, "/sim2real/heightmap", 1)  # reliable
    heightmaps_be = helper.collect(Image, "/sim2real/heightmap", qos_profile_sensor_data)  # best effort
    camera_be = helper.collect(Image, "/sim2real/camera/color/image_raw", qos_profile_sensor_data)
    results = helper.collect(String, "/sim2real/step_result", 50)
    done_log = []
    deadline = time.monotonic() + timeout

    def dump():
        return "\n".join(f"--- {n}\n{p.output[-3000:]}" for n, p in procs.items())

    # like `ros2 node list` before starting: every node of the graph is up
    assert helper.wait_until(lambda: set(procs) <= set(helper.node.get_node_names()), 90.0), \
        f"nodes up: {helper.node.get_node_names()}\n{dump()}"
    for trial in range(n_trials):
        reset = helper.call(Trigger, "/twin/reset", timeout=30.0)
        assert reset is not None and reset.success, dump()
        # like an operator watching RViz: start once the heightmap shows the reset scene
        n_maps = len(heightmaps)
        assert helper.wait_until(lambda: len(heightmaps) > n_maps + 1, 60.0), f"no heightmap\n{dump()}"
        # the trials node asks for a reset; it may still be starting
        while True:
            started = helper.call(Trigger, "/trials/start_trial", timeout=10.0)
            if started is not None and started.success:
                break
            assert time.monotonic() < deadline, f"trial {trial} never started\n{dump()}"
            time.sleep(0.5)
        # watch the scene like an operator: end the trial when the twin says the task is done
        n_prompts = len(prompts)
        check = {}
        while not any("label it" in m.data for m in prompts[n_prompts:]):
            assert time.monotonic() < deadline, f"trial {trial} never ended\n{dump()}"
            resp = helper.call(Trigger, "/twin/check", timeout=10.0)
            check = json.loads(resp.message) if resp is not None else {}
            if check.get("done"):
                helper.call(Trigger, "/trials/done", timeout=10.0)
            time.sleep(0.5)
        check = json.loads(helper.call(Trigger, "/twin/check", timeout=10.0).message)
        label = helper.call(SetBool, "/trials/label", SetBool.Request(data=bool(check.get("done"))), timeout=10.0)
        assert label is not None and label.success, (label, dump())
        done_log.append((check, label))
    assert helper.wait_until(lambda: any("campaign finished" in m.data for m in prompts), 30.0), dump()
    print("\n".join(m.data for m in prompts), "\n".join(m.data[:300] for m in results), sep="\n")
    # (step results are checked through trials.jsonl: a volatile topic may be matched late under load)
    # QoS: reliable and sensor-data subscribers both receive the heightmap and the twin camera
    assert heightmaps and heightmaps_be and camera_be
    return done_log


def _check_log(out, n: int):
    from sim2real.trials.log import load_trials

    path = out / "trials.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(records) == n
    assert len(load_trials(out)) == n  # the strict reader of `sim2real run` / `report` accepts it
    assert all(r["steps"] >= 1 for r in records), records  # every trial ran at least one step over DDS
    return records


def _start(specs, repo_root):
    return {spec.name: NodeProcess(spec.executable, spec.params, cwd=repo_root) for spec in specs}


def _stop(procs):
    codes = {name: proc.interrupt(timeout=10.0) for name, proc in procs.items()}
    for name, (code, _) in codes.items():
        assert code == 0, f"{name} exit {code}\n{crash_report(procs[name].output)}"
        assert "Traceback" not in procs[name].output, procs[name].output[-3000:]


def test_deploy_graph_on_the_twin_runs_two_labelled_trials(tmp_path, repo_root):
    out = tmp_path / "camp"
    plan = deploy_plan(_args(out))
    names = [s.name for s in plan.nodes]
    assert names == ["twin", "calibration_tf", "heightmap", "policy", "executor", "trials"] and not plan.includes
    procs = _start(plan.nodes, repo_root)
    helper = RclpyHelper("operator")
    try:
        assert procs["heightmap"].wait_for("calibration/twin_default.yaml (T_base_camera), not from TF", 60), \
            procs["heightmap"].output
        done = _operate(helper, procs, 2)
    finally:
        helper.close()
        _stop(procs)
    records = _check_log(out, 2)
    for rec, (check, _) in zip(records, done):
        assert rec["task"] == "stack-block" and rec["policy"] == "oracle", rec
        assert rec["label"]["outcome"] == ("success" if check.get("done") else "failure"), rec
    assert any(check.get("done") for check, _ in done), f"the oracle never completed the task on the twin: {records}"


def test_policy_on_another_host_over_dds_only(tmp_path, repo_root):
    """policy_node alone in one process (as on a GPU host); the rest from start_policy:=false."""
    out = tmp_path / "camp"
    rest = deploy_plan(_args(out, start_policy="false", trials="1"))
    assert "policy" not in [s.name for s in rest.nodes]
    (policy_spec,) = [s for s in deploy_plan(_args(out, trials="1")).nodes if s.name == "policy"]
    procs = _start(rest.nodes, repo_root)
    procs["policy"] = NodeProcess(policy_spec.executable, policy_spec.params, cwd=repo_root)
    helper = RclpyHelper("operator")
    try:
        _operate(helper, procs, 1)
    finally:
        helper.close()
        _stop(procs)
    (rec,) = _check_log(out, 1)
    assert rec


def test_pipeline_node_on_the_twin(tmp_path, repo_root):
    """pipeline:=true: heightmap, policy and executor stages in one process, same topics and services."""
    out = tmp_path / "camp"
    plan = deploy_plan(_args(out, pipeline="true", trials="1"))
    assert [s.name for s in plan.nodes] == ["twin", "calibration_tf", "pipeline", "trials"]
    procs = _start(plan.nodes, repo_root)
    helper = RclpyHelper("operator")
    try:
        done = _operate(helper, procs, 1)
    finally:
        helper.close()
        _stop(procs)
    (rec,) = _check_log(out, 1)
    assert rec["label"]["outcome"] == ("success" if done[0][0].get("done") else "failure")
