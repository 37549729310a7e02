"""sim2real.ros.runtime without starting DDS: the loopback environment and profile, rclpy's origin."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sim2real.ros import runtime

NS = {"d": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}


def test_loopback_env_sets_domain_range_profile_and_rmw(tmp_path):
    env = runtime.loopback_env(17, tmp_path, base={"PATH": "/bin", "ROS_LOCALHOST_ONLY": "1"})
    assert env["ROS_DOMAIN_ID"] == "17" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == env["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp" and env["PATH"] == "/bin"
    assert "ROS_LOCALHOST_ONLY" not in env  # Jazzy: deprecated, replaced by the discovery range
    assert runtime.loopback_env(3, tmp_path, base={"ROS_DISTRO": "humble"})["ROS_LOCALHOST_ONLY"] == "1"
    with pytest.raises(ValueError, match="0..101"):
        runtime.loopback_env(232, tmp_path, base={})


def test_profile_allows_only_loopback_udp_and_shared_memory(tmp_path):
    root = ET.parse(runtime.write_loopback_profile(tmp_path)).getroot()
    transports = {t.find("d:transport_id", NS).text: t for t in root.iterfind(".//d:transport_descriptor", NS)}
    assert sorted(t.find("d:type", NS).text for t in transports.values()) == ["SHM", "UDPv4"]
    udp = next(t for t in transports.values() if t.find("d:type", NS).text == "UDPv4")
    assert [a.text for a in udp.iterfind("d:interfaceWhiteList/d:address", NS)] == ["127.0.0.1"]
    (participant,) = root.iterfind(".//d:participant", NS)
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find("d:rtps", NS)
    assert rtps.find("d:useBuiltinTransports", NS).text == "false"
    assert sorted(t.text for t in rtps.iterfind("d:userTransports/d:transport_id", NS)) == sorted(transports)
    addresses = [a.text for a in rtps.iterfind(".//d:locator/d:udpv4/d:address", NS)]
    assert addresses and set(addresses) == {"127.0.0.1"}
    assert rtps.find("d:builtin/d:avoid_builtin_multicast", NS).text == "true"


def test_free_domain_id_avoids_bound_ports(monkeypatch):
    taken = set(runtime.domain_ports(5)) | set(runtime.domain_ports(6))
    monkeypatch.setattr(runtime, "_bound_udp_ports", lambda: taken)
    for seed in range(20):
        d = runtime.free_domain_id(seed)
        assert 1 <= d <= 100 and d not in (5, 6)
    assert list(runtime.domain_ports(0))[:2] == [7400, 7401] and len(runtime.domain_ports(0)) == 250


def test_rclpy_origin_and_wheel_env():
    origin = runtime.rclpy_origin()
    assert origin in ("pypi", "system", "missing")
    env = runtime.wheel_env({"LD_LIBRARY_PATH": "/opt/x"})
    if origin == "pypi":
        parts = env["LD_LIBRARY_PATH"].split(":")
        assert parts[-1] == "/opt/x" and any(p.endswith("ros_rclpy.libs") for p in parts)
        assert env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] == "1"
    else:
        assert env == {"LD_LIBRARY_PATH": "/opt/x"}
    assert "rclpy=" in runtime.describe()
