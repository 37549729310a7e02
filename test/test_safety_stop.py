"""Issue 10: the operator can always stop the arm, from another thread, while a motion runs.

``stop()`` on the twin and on the DryRunRobot interrupts a running ``move_to`` / ``home`` called from
another thread; the motion raises MotionStopped and the episode records the reason ``stopped``.
"""
import inspect
import threading
import time

import numpy as np
import pytest

from sim2real.errors import MotionStopped
from sim2real.robot import DryRunRobot, RobotPort

Q0 = np.array([0.0, 0.0, 0.0, 1.0])


def _stop_after(robot, delay_s):
    t = threading.Timer(delay_s, robot.stop)
    t.start()
    return t


def test_every_robot_port_has_the_same_home_and_stop():
    from sim2real.twin.robot import TwinRobot

    for cls in (DryRunRobot, TwinRobot):
        for name in ("home", "stop", "move_to", "state", "set_suction", "set_gripper"):
            assert inspect.signature(getattr(cls, name)) == inspect.signature(getattr(RobotPort, name)), (cls, name)
    assert isinstance(DryRunRobot(), RobotPort)


def test_dry_run_stop_from_another_thread_interrupts_a_running_move():
    robot = DryRunRobot(move_duration_s=5.0)
    t0 = time.monotonic()
    _stop_after(robot, 0.05)
    with pytest.raises(MotionStopped):
        robot.move_to(((0.5, 0.0, 0.2), Q0), 0.1)
    assert time.monotonic() - t0 < 2.0
    assert robot.state().tcp_xyz.tolist() == [0.3, 0.0, 0.4]  # it never got there
    robot.move_duration_s = 0.0
    robot.move_to(((0.5, 0.0, 0.2), Q0), 0.1)  # stop does not latch: the next command moves
    assert robot.state().tcp_xyz.tolist() == [0.5, 0.0, 0.2]


def test_stop_during_an_episode_is_recorded_as_stopped():
    from test_episode import FixedPolicy, FlatCamera

    from sim2real.episode import run_episode

    robot, steps = DryRunRobot(move_duration_s=0.3), []
    timer = _stop_after(robot, 0.9)  # after the first home, during the pick-and-place
    res = run_episode(FlatCamera(), FixedPolicy(), robot, "g", max_steps=5, on_step=steps.append)
    timer.join()
    assert res.reason == "stopped" and res.steps == 1
    assert "interrupted by stop()" in steps[0].error


@pytest.fixture(scope="module")
def twin():
    from sim2real.twin import Twin

    t = Twin.from_config()
    yield t
    t.close()


def test_twin_stop_from_another_thread_interrupts_a_running_move_to(twin):
    twin.scene.reset()
    twin.robot.reset()
    robot = twin.robot
    steps0 = twin.scene.steps
    start = robot.state().tcp_xyz
    target = np.array([0.5, 0.2, 0.1])

    def operator():  # presses stop once the arm has been moving for 50 simulation steps
        deadline = time.monotonic() + 30
        while twin.scene.steps < steps0 + 50 and time.monotonic() < deadline:
            time.sleep(0.001)
        robot.stop()
    console = threading.Thread(target=operator)
    console.start()
    with pytest.raises(MotionStopped, match="stop"):
        robot.move_to((target, Q0), 0.02, linear=True)  # ~20 s of simulated motion at 2 cm/s
    console.join()
    now = robot.state().tcp_xyz
    assert np.linalg.norm(now - target) > 0.1 and twin.scene.steps > steps0  # it moved, then stopped short
    # the arm holds where it stopped
    twin.scene.step(60)
    assert np.linalg.norm(robot.state().tcp_xyz - now) < 0.01
    assert np.linalg.norm(start - now) > 0.001
    robot.home()  # not latched: homing works again and returns at home and still
    assert np.max(np.abs(robot.joints() - robot.home_q)) < robot.control.tolerance_rad
