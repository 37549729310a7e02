"""Shared test setup: headless plotting, the bench/ reference implementations on the path."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
REPO = Path(__file__).resolve().parents[1]
for extra in (REPO, REPO / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

try:
    from hypothesis import settings

    settings.register_profile("sim2real", deadline=None, max_examples=60)
    settings.load_profile("sim2real")
except ImportError:  # hypothesis is a test dependency; without it the property tests fail loudly
    pass


# test/launch/ holds launch_testing tests for a ROS 2 workspace (`colcon test`, launch_testing and
# launch_ros sourced). PyPI has neither package, so there they are not collected at all (a module-level
# skip would show up in every run, even `pytest -m ros_runtime`); the same graph runs on real rclpy
# in test_ros_runtime_*.py.
import importlib.util  # noqa: E402

collect_ignore = [] if importlib.util.find_spec("launch_testing") is not None else [
    "launch/test_mock_robot_launch.py", "launch/test_nodes_launch.py"]


@pytest.fixture
def repo_root() -> Path:
    """The checkout's root directory."""
    return REPO


# -- ROS 2 over real DDS, kept on this machine (test/ros_runtime.py explains the checks) -----------

def pytest_collection_modifyitems(config, items):
    """Every ``ros_runtime`` test runs inside the session's loopback DDS environment."""
    for item in items:
        if item.get_closest_marker("ros_runtime") is not None:
            item.fixturenames.insert(0, "dds_loopback")


@pytest.fixture(scope="session")
def dds_loopback(tmp_path_factory):
    """THE ROS fixture: a free ROS_DOMAIN_ID for this session, LOCALHOST discovery and the Fast DDS
    loopback profile, applied to os.environ (rclpy here and every node process inherit them);
    a raw-socket sniffer checks that no RTPS datagram of this domain crosses a non-loopback
    interface. Yields (domain_id, sniffer)."""
    from ros_runtime import DdsSniffer, pick_domain

    from sim2real.ros.runtime import loopback_env, wheel_env

    domain = pick_domain()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(wheel_env(loopback_env(domain, tmp_path_factory.mktemp("dds"), saved)))
    sniffer = DdsSniffer(domain)
    try:
        yield domain, sniffer
    finally:
        sniffer.stop()
        os.environ.clear()
        os.environ.update(saved)
        leaks = sniffer.leaks()
        assert not leaks, f"DDS traffic of domain {domain} left the loopback: {leaks}"
