"""Stopping a real rclpy executor before its node is destroyed (sim2real.ros.spinning).

rclpy 7.1.6's ``Executor.shutdown(timeout_sec)`` returns without waiting for running callbacks, and
destroying a node under one can crash the process (a node stopped by Ctrl-C once exited -11 in CI).
"""
from __future__ import annotations

import threading
import time

import pytest

from sim2real.ros.spinning import stop_spinning

pytestmark = pytest.mark.ros_runtime


@pytest.fixture
def slow_callback_node():
    """(executor, spinner, started, finished): a node whose timer callback takes 1.5 s, spun in a thread."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("slow_callback", context=context)
    started, finished = threading.Event(), threading.Event()

    def slow():
        if not started.is_set():
            started.set()
            time.sleep(1.5)
            finished.set()

    node.create_timer(0.01, slow)
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    assert started.wait(10.0)
    yield executor, spinner, started, finished
    finished.wait(5.0)
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def test_stop_spinning_returns_only_once_the_running_callback_has_finished(slow_callback_node):
    executor, spinner, _, finished = slow_callback_node
    assert not finished.is_set()
    t0 = time.monotonic()
    assert stop_spinning(executor, spinner, timeout_s=10.0)
    assert finished.is_set() and not spinner.is_alive()
    assert time.monotonic() - t0 < 10.0


def test_stop_spinning_says_so_when_a_callback_outlasts_the_timeout(slow_callback_node):
    executor, spinner, _, finished = slow_callback_node
    assert not stop_spinning(executor, spinner, timeout_s=0.2)
    assert not finished.is_set()  # still running: destroying the node now would be unsafe


def test_a_node_process_leaves_with_its_code_and_its_output_flushed():
    """exit_without_dds_teardown skips the DDS teardown (os._exit) but loses no buffered line, Python's or C's."""
    import subprocess
    import sys

    code = ("import ctypes, sys\n"
            "from sim2real.ros.nodes._common import exit_without_dds_teardown\n"
            "print('python line')\n"
            "ctypes.CDLL(None).printf(b'C line\\n')\n"
            "exit_without_dds_teardown(3)\n"
            "print('never')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert sorted(out.stdout.splitlines()) == ["C line", "python line"]  # (the two buffers flush in either order)
