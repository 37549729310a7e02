"""Where rclpy comes from, and the environment that keeps DDS on this machine.

Two installs are supported (docs/ros_runtime.md):

* **PyPI wheels** (``make venv``; ``requirements-ros.txt``): ``ros-jazzy-rclpy[fastrtps]`` and the
  message wheels put rclpy, rcl, Fast DDS and the message packages into the venv's
  ``site-packages`` and their shared libraries into ``<venv>/lib`` and ``site-packages/ros_*.libs``.
  The wheels' ``ros_wheels_bootstrapper.pth`` re-executes every venv Python once with
  ``LD_LIBRARY_PATH`` pointing there (guard variable ``_ROS_WHEELS_BOOTSTRAP_COMPLETE``), so no
  ``source`` step is needed; :func:`wheel_env` computes the same variables for a child process
  started from a stripped environment. ``RMW_IMPLEMENTATION`` defaults to ``rmw_fastrtps_cpp``
  (the only RMW the wheels ship); ``AMENT_PREFIX_PATH`` is not needed by rclpy itself.
* **A sourced ROS 2** (``/opt/ros/<distro>`` or a colcon workspace): ``AMENT_PREFIX_PATH`` and
  ``PYTHONPATH`` come from ``setup.bash`` and the system rclpy is used. Do not install the wheels
  into that environment (``make venv ROS=system`` skips them); :func:`rclpy_origin` tells which
  one a process imported.

:func:`loopback_env` is the one definition of "DDS stays on this machine": a domain id, the
LOCALHOST discovery range and a Fast DDS XML profile (written by :func:`write_loopback_profile`)
whose only transports are UDPv4 bound to 127.0.0.1 and shared memory, builtin transports off,
no multicast (unicast discovery through the 127.0.0.1 initial peer). Every process started with
that environment (nodes, tests, the benchmark) inherits it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

RMW_DEFAULT = "rmw_fastrtps_cpp"
"""The RMW the PyPI wheels ship (``ros-jazzy-rclpy[fastrtps]``)."""

LOOPBACK = "127.0.0.1"

INITIAL_PEERS_RANGE = 64
"""Participant ids probed on 127.0.0.1 during unicast discovery (Fast DDS default 4 is too few
for a graph of a dozen processes on one domain)."""

LOOPBACK_PROFILE = f"""<?xml version="1.0" encoding="UTF-8" ?>
<!-- sim2real: DDS on this machine only (sim2real/ros/runtime.py). UDPv4 bound to {LOOPBACK} + shared
     memory; Fast DDS's builtin transports (UDPv4 on every interface) are off and discovery is
     unicast to the {LOOPBACK} initial peer, so no multicast and nothing leaves the loopback. -->
<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>sim2real_udp_loopback</transport_id>
        <type>UDPv4</type>
        <maxInitialPeersRange>{INITIAL_PEERS_RANGE}</maxInitialPeersRange>
        <interfaceWhiteList>
          <address>{LOOPBACK}</address>
        </interfaceWhiteList>
      </transport_descriptor>
      <transport_descriptor>
        <transport_id>sim2real_shm</transport_id>
        <type>SHM</type>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="sim2real_loopback" is_default_profile="true">
      <rtps>
        <builtin>
          <avoid_builtin_multicast>true</avoid_builtin_multicast>
          <metatrafficUnicastLocatorList>
            <locator><udpv4><address>{LOOPBACK}</address></udpv4></locator>
          </metatrafficUnicastLocatorList>
          <initialPeersList>
            <locator><udpv4><address>{LOOPBACK}</address></udpv4></locator>
          </initialPeersList>
        </builtin>
        <defaultUnicastLocatorList>
          <locator><udpv4><address>{LOOPBACK}</address></udpv4></locator>
        </defaultUnicastLocatorList>
        <userTransports>
          <transport_id>sim2real_udp_loopback</transport_id>
          <transport_id>sim2real_shm</transport_id>
        </userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


RTPS_PORT_BASE, RTPS_DOMAIN_GAIN = 7400, 250
"""RTPS well-known port mapping (spec 9.6.1.1): domain ``d`` uses ports 7400 + 250 d .. 7649 + 250 d."""


def domain_ports(domain: int) -> range:
    return range(RTPS_PORT_BASE + RTPS_DOMAIN_GAIN * domain, RTPS_PORT_BASE + RTPS_DOMAIN_GAIN * (domain + 1))


def _bound_udp_ports() -> set:
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        ports.update(int(line.split()[1].rsplit(":", 1)[1], 16) for line in lines)
    return ports


def free_domain_id(seed=None) -> int:
    """A ROS_DOMAIN_ID in 1..100 whose RTPS ports nobody on this machine has bound (random order),
    so parallel test sessions / benchmarks never discover each other."""
    import random
    import time

    rng = random.Random(seed if seed is not None else os.getpid() ^ time.time_ns())
    bound = _bound_udp_ports()
    domains = list(range(1, 101))
    rng.shuffle(domains)
    for d in domains:
        if not bound.intersection(domain_ports(d)):
            return d
    raise RuntimeError("every ROS_DOMAIN_ID 1..100 has bound ports; too many DDS sessions on this machine")


def write_loopback_profile(directory) -> Path:
    """Write the Fast DDS loopback profile into ``directory``; returns its path."""
    path = Path(directory) / "fastdds_loopback.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(LOOPBACK_PROFILE)
    return path


def loopback_env(domain_id: int, profile_dir, base: Mapping[str, str] | None = None) -> dict:
    """An environment (copy of ``base``, default os.environ) that keeps DDS on this machine.

    Sets ``ROS_DOMAIN_ID``, ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Jazzy; ``ROS_LOCALHOST_ONLY=1``
    for Humble), the Fast DDS profile (both the Fast DDS 2.x and 3.x variable names) and
    ``RMW_IMPLEMENTATION`` (Fast DDS, which reads the profile). Domain ids 0..101 are valid on
    Linux with the default port mapping; pick one per test session so parallel runs never meet.
    """
    if not 0 <= int(domain_id) <= 101:
        raise ValueError(f"ROS_DOMAIN_ID must be within 0..101, got {domain_id}")
    env = dict(os.environ if base is None else base)
    profile = str(write_loopback_profile(profile_dir))
    env.update({
        "ROS_DOMAIN_ID": str(int(domain_id)),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOCALHOST_ONLY": "1" if env.get("ROS_DISTRO") == "humble" else "0",
        "ROS_STATIC_PEERS": "",
        "FASTRTPS_DEFAULT_PROFILES_FILE": profile,
        "FASTDDS_DEFAULT_PROFILES_FILE": profile,
        "RMW_FASTRTPS_USE_QOS_FROM_XML": "0",
        "RMW_IMPLEMENTATION": RMW_DEFAULT,
    })
    if env.get("ROS_DISTRO") != "humble":
        env.pop("ROS_LOCALHOST_ONLY")  # deprecated on Jazzy (it warns); the discovery range replaces it
    return env


def wheel_lib_dirs(prefix: str | None = None) -> list:
    """The shared-library directories of the PyPI ROS wheels in ``prefix`` (default: this venv)."""
    prefix = Path(prefix or sys.prefix)
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    dirs = [prefix / "lib"] + sorted(p for p in site.glob("ros_*.libs") if p.is_dir())
    return [str(d) for d in dirs]


def wheel_env(base: Mapping[str, str] | None = None) -> dict:
    """``base`` plus what a child Python needs to load the PyPI ROS wheels (LD_LIBRARY_PATH, RMW).

    A no-op for a sourced system ROS (its setup.bash set everything) and when the wheels are absent.
    """
    env = dict(os.environ if base is None else base)
    if rclpy_origin() != "pypi":
        return env
    parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(wheel_lib_dirs() + [p for p in parts if p not in wheel_lib_dirs()])
    env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] = "1"
    env.setdefault("RMW_IMPLEMENTATION", RMW_DEFAULT)
    return env


def rclpy_origin() -> str:
    """'pypi' (wheels in this interpreter's prefix), 'system' (a sourced ROS 2) or 'missing'."""
    import importlib.util

    spec = importlib.util.find_spec("rclpy")
    if spec is None or not spec.origin:
        return "missing"
    return "pypi" if Path(spec.origin).resolve().is_relative_to(Path(sys.prefix).resolve()) and \
        any(Path(sys.prefix).glob("lib/python*/site-packages/ros_rclpy-*.dist-info")) else "system"


def describe() -> str:
    """One line for logs / bug reports: rclpy origin, RMW, domain, discovery range, profile."""
    env = os.environ
    return (f"rclpy={rclpy_origin()} rmw={env.get('RMW_IMPLEMENTATION', RMW_DEFAULT)} "
            f"domain={env.get('ROS_DOMAIN_ID', '0')} range={env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET')} "
            f"profile={env.get('FASTDDS_DEFAULT_PROFILES_FILE') or env.get('FASTRTPS_DEFAULT_PROFILES_FILE') or '-'}")


if __name__ == "__main__":
    print(describe())
