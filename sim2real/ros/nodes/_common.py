"""Shared plumbing of the nodes: the main() loop, clock helpers, logging of core errors."""
from __future__ import annotations

import os
import sys
from typing import Callable, NoReturn

from sim2real.errors import Sim2RealError

EXIT_BAD_INPUT = 2


def now_s(node) -> float:
    """The node clock in seconds (ROS time; sim time when use_sim_time is set)."""
    return node.get_clock().now().nanoseconds * 1e-9


def spin_node(make_node: Callable, args=None, name: str = "sim2real") -> int:
    """Init rclpy, build the node, spin it in a MultiThreadedExecutor, always clean up.

    Returns the process exit code: 2 on a sim2real error (bad config / parameter), with one clear
    line on stderr, or when ROS 2 is not installed / sourced. Once a node was built, the process
    ends here (exit 0 after Ctrl-C) through :func:`exit_without_dds_teardown`.
    """
    from sim2real.ros import RosNotAvailableError, require_ros
    from sim2real.ros.spinning import stop_spinning

    try:
        rclpy = require_ros("rclpy", f"the {name} node")
        executors = require_ros("rclpy.executors", f"the {name} node")
    except RosNotAvailableError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rclpy.init(args=args)
    node = executor = None
    code = 0
    try:
        node = make_node()
        executor = executors.MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, executors.ExternalShutdownException):
        pass
    except Sim2RealError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=0)  # no new callbacks
        shutdown = getattr(node, "shutdown", None)
        if shutdown is not None:
            shutdown()  # stops the arm / closes the camera now (thread-safe), which ends a running motion callback
        # a callback still running finishes first (its step result, its log line)
        if executor is not None and not stop_spinning(executor, timeout_s=5.0):
            print(f"{name}: a callback was still running 5 s after the stop", file=sys.stderr)
        rclpy.try_shutdown()
    if node is not None:
        exit_without_dds_teardown(code)
    return code


def exit_without_dds_teardown(code: int) -> NoReturn:
    """End this node process with ``code`` now, after its own cleanup (arm stopped, files closed).

    Destroying the node's entities (``destroy_node``, or the interpreter's exit doing it) races
    with Fast DDS's own threads while peers leave the graph and can crash the process
    (rmw_fastrtps#761; a trials node stopped by Ctrl-C exited -11 in CI): the process then dies
    with SIGSEGV instead of its exit code. Its peers drop it when its DDS lease expires.
    """
    import ctypes

    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)  # the C streams too (rcutils' log lines when they are buffered)
    os._exit(code)


def load_workspace(calibration_path: str):
    """(Workspace, T_base_workspace (4,4) or None, Calibration or None) from a calibration YAML path."""
    from sim2real.workspace import GENSIM_WORKSPACE

    if not calibration_path:
        return GENSIM_WORKSPACE, None, None
    from sim2real.calibration.storage import load_calibration

    cal = load_calibration(calibration_path)
    return (cal.workspace or GENSIM_WORKSPACE), cal.T_base_workspace, cal


class StampPairer:
    """Pairs the heightmap and colormap Images published with the same stamp.

    ``add('height'|'color', msg)`` returns (height_msg, color_msg) once both halves of a stamp
    have arrived, else None; only the newest few unmatched stamps are kept.
    """

    def __init__(self, keep: int = 4):
        import threading

        self.keep = keep
        self._pending: dict = {}
        self._lock = threading.Lock()

    def add(self, kind: str, msg):
        from sim2real.ros.conversions import time_to_ns

        if kind not in ("height", "color"):
            raise ValueError(f"kind must be 'height' or 'color', got {kind!r}")
        key = time_to_ns(msg.header.stamp)
        other = "color" if kind == "height" else "height"
        with self._lock:
            entry = self._pending.setdefault(key, {})
            entry[kind] = msg
            if other not in entry:
                for k in sorted(self._pending)[:-self.keep]:
                    del self._pending[k]
                return None
            del self._pending[key]
        return entry["height"], entry["color"]
