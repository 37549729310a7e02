"""Stopping an rclpy executor so that its nodes can be destroyed safely.

rclpy 7.1.6 (Jazzy) ``Executor.shutdown(timeout_sec)`` promises to wait for the callbacks that
are running, but it tests the shut-down flag it has just set and returns at once. Destroying a
node while one of its callbacks runs, or while another thread still spins it, can crash the
process (ros2/rclpy#663). :func:`stop_spinning` does the waiting itself; call it before
``destroy_node`` (or, in a node process, before :func:`~sim2real.ros.nodes._common.exit_without_dds_teardown`).
"""
from __future__ import annotations

import threading
import time
from typing import Optional

POLL_S = 0.01


def stop_spinning(executor, spinner: Optional[threading.Thread] = None, timeout_s: float = 5.0) -> bool:
    """Shut ``executor`` down and wait until nothing of it runs, at most ``timeout_s`` seconds.

    Waits for, in order: the thread ``spinner`` that runs ``executor.spin()`` (if any); every
    callback handler the executor handed to its thread pool, started or still queued; the
    executor's count of running callbacks. Returns True when all of them finished in time
    (False: something is still running, and destroying the node now is unsafe).
    """
    deadline = time.monotonic() + timeout_s
    executor.shutdown(timeout_sec=0)

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    if spinner is not None:
        spinner.join(timeout=left())
    handlers = list(getattr(executor, "_futures", ()))  # MultiThreadedExecutor's submitted handlers (rclpy Tasks)
    while not all(h.done() for h in handlers) and left() > 0:
        time.sleep(POLL_S)
    tracker = getattr(executor, "_work_tracker", None)
    idle = tracker.wait(left()) if tracker is not None else True
    return bool(idle) and all(h.done() for h in handlers) and (spinner is None or not spinner.is_alive())
