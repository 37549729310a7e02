"""What the executor and trials nodes decide, tested without ROS: safety before motion, the modes,
failures that stop the step with a reason (the arm does not move), stale frames, trial endings."""
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin
from sim2real.errors import ConfigError, HardwareError, SafetyError
from sim2real.motion import MotionConfig, execute_plan, plan_from_action
from sim2real.robot import DryRunRobot
from sim2real.ros import steps
from sim2real.ros.moveit_adapter import IKFailedError
from sim2real.safety import SafetyEnvelope, check_plan
from sim2real.workspace import GENSIM_WORKSPACE


def action(pick=(100, 40), place=(200, 100)):
    h = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    h[pick] = 0.03
    return PickPlaceAction(PixelPose.from_pixel(pick, 0.0, h, GENSIM_WORKSPACE),
                           PixelPose.from_pixel(place, theta_from_bin(9), h, GENSIM_WORKSPACE))


class RecordingRobot(DryRunRobot):
    def __init__(self, fail_at=None, exc=None):
        super().__init__(tool="suction")
        self.fail_at, self.exc = fail_at, exc

    def move_to(self, pose, speed, linear=False):
        if self.fail_at is not None and sum(c["cmd"] == "move_to" for c in self.commands) == self.fail_at:
            raise self.exc
        super().move_to(pose, speed, linear)


ENV = SafetyEnvelope(reach_max_m=1.2)


def run(act, mode="auto", robot=None, confirm=None, envelope=ENV, plan_fn=None, logs=None):
    robot = robot or RecordingRobot()
    shown = []
    result = steps.execute_step(act, mode=mode, plan_fn=plan_fn or (lambda a: plan_from_action(a, MotionConfig())),
                                check_fn=lambda plan: check_plan(plan, envelope), execute_fn=execute_plan,
                                robot=robot, publish_plan=shown.append, confirm=confirm, confirm_timeout_s=0.1,
                                log=(logs.append if logs is not None else (lambda m: None)))
    return result, robot, shown


def moves(robot):
    return [c for c in robot.commands if c["cmd"] in ("move_to", "set_suction")]


def test_auto_executes_the_whole_plan_and_stops_after():
    result, robot, shown = run(action())
    assert result["ok"] and result["reason"] == "ok" and result["executed"]
    assert len(shown) == 1 and len(moves(robot)) == 8
    assert robot.commands[-1]["cmd"] == "stop"
    assert [c["linear"] for c in robot.commands if c["cmd"] == "move_to"] == [False, True, True, False, True, True]
    assert steps.decode(steps.encode(result)) == result  # JSON-safe for std_msgs/String


def test_safety_stop_never_moves_the_arm():
    logs = []
    far = action(pick=(100, 40), place=(319, 159))
    result, robot, shown = run(far, envelope=SafetyEnvelope(reach_max_m=0.6), logs=logs)
    assert not result["ok"] and result["reason"] == "safety_stop"
    assert result["safety"]["ok"] is False and result["safety"]["reasons"]
    assert robot.commands == [] and shown == []
    assert "does not move" in logs[0]


def test_dry_run_plans_and_shows_but_never_moves():
    result, robot, shown = run(action(), mode="dry_run")
    assert result["ok"] and result["reason"] == "dry_run" and not result["executed"]
    assert robot.commands == [] and len(shown) == 1


@pytest.mark.parametrize("answer, moved", [(True, True), (False, False), (None, False)])
def test_confirm_mode_waits_for_the_operator(answer, moved):
    asked = []

    def confirm(timeout):
        asked.append(timeout)
        return answer

    result, robot, shown = run(action(), mode="confirm", confirm=confirm)
    assert asked == [0.1] and len(shown) == 1
    assert bool(moves(robot)) is moved
    if not moved:
        assert result["reason"] == "rejected_by_operator" and not result["ok"]
        assert ("not confirmed" in result["message"]) is (answer is None)


@pytest.mark.parametrize("exc, reason", [
    (IKFailedError("no IK", -31), "ik_failed"),
    (SafetyError("joint limit"), "safety_stop"),
    (HardwareError("controller gone"), "hardware_error"),
])
def test_failure_during_execution_stops_the_step_with_its_reason(exc, reason):
    robot = RecordingRobot(fail_at=1, exc=exc)
    result, robot, _ = run(action(), robot=robot)
    assert not result["ok"] and result["reason"] == reason and not result["executed"]
    assert robot.commands[-1]["cmd"] == "stop"  # stopped in finally
    assert {"cmd": "set_suction", "on": False} in robot.commands  # never left holding


def test_planning_error_before_motion():
    def bad_plan(a):
        from sim2real.errors import PlanningError
        raise PlanningError("pose must be finite")

    result, robot, shown = run(action(), plan_fn=bad_plan)
    assert result["reason"] == "planning_failed" and robot.commands == [] and shown == []


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError):
        run(action(), mode="yolo")


# ------------------------------------------------------------------------------------- staleness

def test_check_age():
    assert steps.check_age(10.0, 10.5, 1.0, "frame") is None
    assert "old" in steps.check_age(10.0, 12.0, 1.0, "frame")
    assert "future" in steps.check_age(15.0, 12.0, 1.0, "frame")
    assert steps.check_age(float("nan"), 12.0, 1.0, "frame") is not None


def test_decode_malformed_results():
    assert steps.decode("{not json")["reason"] == "policy_error"
    assert steps.decode('{"ok": true}')["ok"] is False


# ------------------------------------------------------------------------------------- episodes

def scripted(results):
    sent = []

    def request(goal, index):
        sent.append((goal, index))
        r = results[index]
        if isinstance(r, Exception):
            raise r
        return r

    return request, sent


OK = steps.step_result("executor", True, "ok", "executed", executed=True, mode="auto")


def test_episode_runs_to_max_steps():
    request, sent = scripted([OK, OK, OK])
    records = []
    res = steps.run_remote_episode("build a wheel", 3, request, on_step=records.append)
    assert (res.steps, res.reason, res.success) == (3, "max_steps", None)
    assert sent == [("build a wheel", 0), ("build a wheel", 1), ("build a wheel", 2)]
    assert len(records) == 3 and records[0]["goal"] == "build a wheel" and records[0]["error"] is None


@pytest.mark.parametrize("reason", ["stale_frame", "camera_lost", "tf_timeout", "planning_failed", "safety_stop"])
def test_failed_step_ends_the_trial_with_its_reason(reason):
    request, sent = scripted([OK, steps.step_result("policy", False, reason, "why"), OK])
    records = []
    res = steps.run_remote_episode("g", 5, request, on_step=records.append)
    assert (res.steps, res.reason) == (2, reason) and len(sent) == 2
    assert res.info["message"] == "why" and records[-1]["error"].startswith(reason)


def test_step_timeout_ends_the_trial():
    request, _ = scripted([TimeoutError("no result")])
    res = steps.run_remote_episode("g", 3, request)
    assert (res.steps, res.reason) == (1, "step_timeout")


def test_operator_done_ends_the_trial():
    flag = {"done": False}

    def request(goal, index):
        flag["done"] = index == 1
        return OK

    res = steps.run_remote_episode("g", 10, request, end_requested=lambda: flag["done"])
    assert (res.steps, res.reason) == (2, "done")


def test_dry_run_episode_stops_after_one_step():
    request, sent = scripted([steps.step_result("executor", True, "dry_run", "", mode="dry_run")] * 3)
    res = steps.run_remote_episode("g", 3, request)
    assert (res.steps, res.reason) == (1, "dry_run")


def test_step_record_carries_the_action():
    a = action()
    result = steps.step_result("executor", True, "ok", "", action=a.to_dict(), executed=True, mode="auto",
                               safety={"ok": True, "reasons": []}, timings={"plan_s": 0.1})
    rec = steps.default_step_record("g", steps.decode(steps.encode(result)))
    assert rec["action"].pick.pixel == a.pick.pixel and rec["safety"]["ok"] and rec["timings"]["plan_s"] == 0.1


# ------------------------------------------------------------------------------------- task resolution

def _tasks():
    from sim2real.tasks import TaskSpec

    mk = lambda name, aliases, lang, steps_: TaskSpec(name, aliases, lang, steps_, (), ())  # noqa: E731
    return {"build-wheel": mk("build-wheel", ("build wheel",), "build a wheel", 4),
            "block-zone": mk("block-zone", (), "move the {pick} blocks to the {place} zone", 3),
            "pack-spheres": mk("pack-spheres", (), "pack the spheres", {"per_object": "spheres"})}


def test_resolve_task_by_alias_with_its_goal_and_budget():
    assert steps.resolve_task("build wheel", tasks=_tasks()) == ("build-wheel", "build a wheel", 4)
    assert steps.resolve_task("build wheel", "make the wheel", 7, tasks=_tasks()) == ("build-wheel", "make the wheel", 7)


def test_resolve_task_errors_name_the_fix():
    with pytest.raises(ConfigError, match="goal:="):
        steps.resolve_task("block-zone", tasks=_tasks())
    assert steps.resolve_task("block-zone", "move the red blocks to the blue zone", tasks=_tasks())[2] == 3
    with pytest.raises(ConfigError, match="max_steps"):
        steps.resolve_task("pack-spheres", tasks=_tasks())
    with pytest.raises(ConfigError, match="task:="):
        steps.resolve_task("  ", tasks=_tasks())
    from sim2real.errors import UnknownTaskError
    with pytest.raises(UnknownTaskError):
        steps.resolve_task("fold laundry", tasks=_tasks())


# ------------------------------------------------------------------------------------- node helpers

def test_confirmation_answers_only_a_waiting_motion():
    from sim2real.ros.nodes.executor import Confirmation

    c = Confirmation()
    assert c.answer(True) is False  # nothing waiting
    threading.Timer(0.05, c.answer, args=(True,)).start()
    assert c.wait(2.0) is True
    assert c.wait(0.05) is None


def test_step_channel_waits_for_the_next_result():
    from sim2real.ros.nodes.trials import StepChannel
    from sim2real.ros.steps import decode_goal

    channel = None

    def publish(text):
        goal, step_id = decode_goal(text)
        threading.Timer(0.02, channel.deliver, args=({"ok": True, "reason": "ok", "goal": goal,
                                                      "step_id": step_id},)).start()

    channel = StepChannel(publish)
    assert channel.request("stack", 2.0)["goal"] == "stack"
    silent = StepChannel(lambda g: None)
    with pytest.raises(TimeoutError, match="ros2 node list"):
        silent.request("stack", 0.05)


def test_frame_buffer_waits_for_a_fresh_frame():
    from sim2real.ros.topic_camera import FrameBuffer

    buf = FrameBuffer()
    with pytest.raises(HardwareError, match="camera lost"):
        buf.read(0.05)
    buf.put("old")
    with pytest.raises(HardwareError):
        buf.read(0.05)  # 'old' arrived before the call
    assert buf.read(0.05, fresh=False) == "old"
    threading.Timer(0.05, buf.put, args=("new",)).start()
    assert buf.read(2.0) == "new"


def test_stamp_pairer_matches_heightmap_halves():
    from sim2real.ros.nodes._common import StampPairer

    def msg(ns):
        return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)))

    p = StampPairer(keep=2)
    h1, c1, h2 = msg(1), msg(1), msg(2)
    assert p.add("height", h1) is None
    assert p.add("height", h2) is None
    assert p.add("color", c1) == (h1, c1)
    for k in range(3, 8):
        p.add("height", msg(k))
    assert p.add("color", msg(2)) is None  # stamp 2 was evicted
    with pytest.raises(ValueError):
        p.add("depth", h1)


def test_tf_flange_gives_the_tcp_pose_calibration_expects():
    from sim2real.calibration.collect import state_pose
    from sim2real.ros.nodes.calibrate import TfFlange

    T = np.eye(4)
    T[:3, 3] = [0.4, 0.1, 0.3]
    flange = TfFlange(lambda parent, child: T, "base_link", "tool0")
    np.testing.assert_allclose(state_pose(flange.state()), T, atol=1e-12)


def test_run_step_timing_uses_the_injected_clock():
    ticks = iter(np.arange(0, 100, 1.0))
    result = steps.execute_step(action(), mode="auto", plan_fn=lambda a: plan_from_action(a, MotionConfig()),
                                check_fn=lambda p: check_plan(p, ENV), execute_fn=execute_plan, robot=RecordingRobot(),
                                log=lambda m: None, clock=lambda: next(ticks))
    assert result["timings"]["plan_s"] == 1.0 and result["timings"]["motion_s"] == 1.0
