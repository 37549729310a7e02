"""Grippers behind one interface: each driver sends the right request to the right interface, and
every failure (no service, error return, timeout) is a HardwareError naming what to check."""
import threading
from dataclasses import replace
from types import SimpleNamespace

import pytest

from sim2real.errors import HardwareError
from sim2real.robot_config import GripperConfig, load_robot_config
from sim2real.ros import grippers as g


class Req(SimpleNamespace):
    pass


def srv(name, **constants):
    """A service type with a default-constructible Request (like rclpy's)."""
    request = type(f"{name}_Request", (Req,), dict(constants))
    return SimpleNamespace(Request=request)


class Caller:
    def __init__(self, response):
        self.response, self.requests = response, []

    def __call__(self, request, timeout_s):
        self.requests.append((request, timeout_s))
        return self.response


def make(driver_cls, cfg, response, types):
    sleeps = []
    caller = Caller(response)
    return driver_cls(cfg, caller, types, sleep=sleeps.append), caller, sleeps


def test_xarm_vacuum_request_and_settle():
    cfg = load_robot_config("xarm6").gripper
    types = SimpleNamespace(VacuumGripperCtrl=srv("VacuumGripperCtrl"))
    grip, caller, sleeps = make(g.XArmVacuumGripper, cfg, SimpleNamespace(ret=0, message=""), types)
    grip.set(True)
    grip.set(False)
    (on, t_on), (off, _) = caller.requests
    assert (on.on, on.wait, on.timeout, on.delay_sec) == (True, True, cfg.timeout_s, 0.0)
    assert off.on is False and t_on > cfg.timeout_s  # the call waits longer than the driver's own timeout
    assert sleeps == [cfg.settle_s]  # settle only after gripping
    assert grip.closed is False and isinstance(grip, g.Gripper)


def test_xarm_error_return_is_a_hardware_error():
    cfg = load_robot_config("xarm6").gripper
    types = SimpleNamespace(VacuumGripperCtrl=srv("VacuumGripperCtrl"))
    grip, _, _ = make(g.XArmVacuumGripper, cfg, SimpleNamespace(ret=1, message="not enabled"), types)
    with pytest.raises(HardwareError, match="xarm_user_params"):
        grip.set(True)
    assert grip.closed is None


def test_ur_tool_output_request():
    cfg = load_robot_config("ur5").gripper
    types = SimpleNamespace(SetIO=srv("SetIO", FUN_SET_DIGITAL_OUT=1, STATE_ON=1, STATE_OFF=0))
    grip, caller, _ = make(g.URToolIOGripper, cfg, SimpleNamespace(success=True), types)
    grip.set(True)
    grip.set(False)
    (on, _), (off, _) = caller.requests
    assert (on.fun, on.pin, on.state) == (1, 16, 1.0)
    assert (off.fun, off.pin, off.state) == (1, 16, 0.0)
    bad, _, _ = make(g.URToolIOGripper, cfg, SimpleNamespace(success=False), types)
    with pytest.raises(HardwareError, match="io_and_status_controller"):
        bad.set(True)


def test_xarm_parallel_gripper_positions():
    cfg = load_robot_config("xarm7").gripper
    types = SimpleNamespace(GripperMove=srv("GripperMove"))
    grip, caller, _ = make(g.XArmGripper, cfg, SimpleNamespace(ret=0), types)
    grip.set(True)
    grip.set(False)
    assert [r.pos for r, _ in caller.requests] == [cfg.closed_position, cfg.open_position]
    assert all(r.wait for r, _ in caller.requests)


def test_robotiq_action_goal_and_stall_counts_as_grasp():
    cfg = GripperConfig(type="parallel", driver="robotiq", action="/robotiq_gripper_controller/gripper_cmd",
                        open_position=0.0, closed_position=0.8, max_effort=50.0)
    cfg.validate("gripper")

    class Goal:
        def __init__(self):
            self.command = SimpleNamespace(position=None, max_effort=None)

    types = SimpleNamespace(GripperCommand=SimpleNamespace(Goal=Goal))
    grip, caller, _ = make(g.RobotiqGripper, cfg, SimpleNamespace(reached_goal=False, stalled=True), types)
    grip.set(True)  # stopped on the object: a grasp
    goal, _ = caller.requests[0]
    assert (goal.command.position, goal.command.max_effort) == (0.8, 50.0)
    with pytest.raises(HardwareError, match="did not reach"):
        grip.set(False)  # opening must reach the goal


def test_sim_gripper_cannot_run_on_a_real_robot():
    from sim2real.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot run on a real robot"):
        g.make_gripper(object(), GripperConfig())


# ------------------------------------------------------------------------------- callers and timeouts

class Future:
    def __init__(self, result=None, exc=None, done=True):
        self._result, self._exc, self._done, self._callbacks = result, exc, done, []
        self.cancelled = False

    def add_done_callback(self, cb):
        if self._done:
            cb(self)
        else:
            self._callbacks.append(cb)

    def finish(self, result):
        self._result, self._done = result, True
        for cb in self._callbacks:
            cb(self)

    def exception(self):
        return self._exc

    def result(self):
        return self._result

    def cancel(self):
        self.cancelled = True


class Client:
    def __init__(self, available=True, future=None):
        self.available, self.future = available, future

    def wait_for_service(self, timeout_sec):
        return self.available

    def call_async(self, request):
        return self.future


def test_service_caller_returns_the_response():
    caller = g.ServiceCaller(Client(future=Future("ok")), "/xarm/set_vacuum_gripper")
    assert caller(Req(), 1.0) == "ok"


def test_service_caller_unavailable_service_names_the_check():
    caller = g.ServiceCaller(Client(available=False), "/io_and_status_controller/set_io")
    with pytest.raises(HardwareError, match="ros2 service list"):
        caller(Req(), 0.01)


def test_service_caller_timeout_cancels():
    future = Future(done=False)
    caller = g.ServiceCaller(Client(future=future), "/xarm/set_gripper_position")
    with pytest.raises(HardwareError, match="did not answer"):
        caller(Req(), 0.05)
    assert future.cancelled


def test_service_caller_answer_from_another_thread():
    future = Future(done=False)
    caller = g.ServiceCaller(Client(future=future), "/svc")
    threading.Timer(0.05, future.finish, args=("late but fine",)).start()
    assert caller(Req(), 2.0) == "late but fine"


def test_service_exception_becomes_hardware_error():
    caller = g.ServiceCaller(Client(future=Future(exc=RuntimeError("boom"))), "/svc")
    with pytest.raises(HardwareError, match="boom"):
        caller(Req(), 1.0)


def test_action_caller_rejected_goal():
    class ActionClient:
        def wait_for_server(self, timeout_sec):
            return True

        def send_goal_async(self, goal):
            return Future(SimpleNamespace(accepted=False))

    with pytest.raises(HardwareError, match="rejected"):
        g.ActionCaller(ActionClient(), "/gripper_cmd")(object(), 1.0)


def test_action_caller_returns_the_result():
    handle = SimpleNamespace(accepted=True, get_result_async=lambda: Future(SimpleNamespace(result="R")))

    class ActionClient:
        def wait_for_server(self, timeout_sec):
            return True

        def send_goal_async(self, goal):
            return Future(handle)

    assert g.ActionCaller(ActionClient(), "/gripper_cmd")(object(), 1.0) == "R"


def test_gripper_config_type_driver_mismatch_named():
    from sim2real.errors import ConfigError

    with pytest.raises(ConfigError, match="drives a suction gripper"):
        replace(GripperConfig(), type="parallel", driver="xarm_vacuum", service="/x").validate("gripper")
