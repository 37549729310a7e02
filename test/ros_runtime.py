"""Real-rclpy test plumbing: DDS kept on this machine, node processes, an in-test rclpy node.

The one place that decides the DDS environment of a test session is
:func:`sim2real.ros.runtime.loopback_env` (domain id + LOCALHOST discovery + the Fast DDS loopback
profile); the ``dds_loopback`` fixture in conftest.py applies it to ``os.environ`` for the whole
session, so rclpy in the pytest process and every node process started from it inherit it.

How "no DDS traffic leaves the loopback" is checked (``DdsSniffer``): while the session runs, a raw
``AF_PACKET`` socket on every non-loopback interface watches for RTPS datagrams (the 4-byte
``RTPS`` magic at the start of the UDP payload) to or from this session's DDS port range (domain
``d``: ports ``7400 + 250 d`` .. ``7649 + 250 d``). The same sniffer on ``lo`` is the positive
control (it must see the session's RTPS traffic there). Without CAP_NET_RAW the sniffer falls
back to the socket check of :func:`udp_sockets`: every UDP socket a node process holds on the
domain's well-known ports must be bound to 127.0.0.1.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from sim2real.ros.runtime import domain_ports, free_domain_id as pick_domain  # noqa: F401 - re-exported

from subprocess_support import default_sigint

BIN = Path(sys.executable).parent


def udp_sockets(pid: int) -> list:
    """[(local_ip, local_port)] of the UDP sockets process ``pid`` holds (from /proc, no tools)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        f = line.split()
        if f[9] in inodes:
            ip, port = f[1].split(":")
            out.append((socket.inet_ntoa(struct.pack("<I", int(ip, 16))), int(port, 16)))
    return out


class DdsSniffer:
    """Counts RTPS datagrams of one domain per network interface (raw AF_PACKET sockets)."""

    def __init__(self, domain: int):
        self.ports = domain_ports(domain)
        self.counts: dict = {}
        self.samples: dict = {}
        self._stop = threading.Event()
        self._threads = []
        self.available = True
        for name in sorted(os.listdir("/sys/class/net")):
            try:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
                s.bind((name, 0))
                s.settimeout(0.2)
            except (PermissionError, OSError):
                self.available = False
                continue
            self.counts[name] = 0
            t = threading.Thread(target=self._run, args=(name, s), daemon=True)
            t.start()
            self._threads.append(t)

    def _is_rtps(self, frame: bytes, ifname: str) -> bool:
        if frame[12:14] != b"\x08\x00":  # IPv4 ethertype (lo frames carry a zeroed Ethernet header too)
            return False
        ip = frame[14:]
        if len(ip) < 28 or ip[9] != 17:  # UDP
            return False
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        payload = ip[ihl + 8:ihl + 12]
        return payload == b"RTPS" and (sport in self.ports or dport in self.ports)

    def _run(self, name: str, sock) -> None:
        while not self._stop.is_set():
            try:
                frame = sock.recv(65535)
            except (socket.timeout, OSError):
                continue
            if self._is_rtps(frame, name):
                self.counts[name] += 1
                self.samples.setdefault(name, frame[:64])
        sock.close()

    def stop(self) -> dict:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)
        return dict(self.counts)

    def leaks(self) -> dict:
        """{interface: RTPS datagram count} for every non-loopback interface that saw any."""
        return {k: v for k, v in self.counts.items() if k != "lo" and v}


def node_argv(executable: str, params: dict, name: str | None = None) -> list:
    """``[console_script, --ros-args, -p k:=v, ...]`` (values YAML-formatted as ros2 run expects)."""
    import yaml

    argv = [str(BIN / executable), "--ros-args"]
    if name:
        argv += ["-r", f"__node:={name}"]
    for k, v in params.items():
        text = yaml.safe_dump(v, default_flow_style=True).strip()
        if text.endswith("\n..."):
            text = text[:-4].strip()
        text = text.removesuffix("...").strip()
        argv += ["-p", f"{k}:={text}"]
    return argv


def crash_report(output: str, tail: int = 3000) -> str:
    """The end of a node's output, plus its faulthandler dump whole (the crashing thread comes first)."""
    start = output.find("Fatal Python error")
    return output[-tail:] if start < 0 else output[max(0, start - tail):]


class NodeProcess:
    """A node started as its console script; output collected; SIGINT stop with exit code."""

    def __init__(self, executable: str, params: dict | None = None, name: str | None = None, env=None, cwd=None):
        self.executable = executable
        self.argv = node_argv(executable, params or {}, name)
        self.lines: list = []
        # a crash (e.g. a segfault in a DDS teardown) prints every thread's Python stack into the output
        env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1"}
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, cwd=cwd, bufsize=1, preexec_fn=default_sigint)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        """True once ``text`` appears in the output (False on timeout or exit)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)
                return any(text in line for line in list(self.lines))
            time.sleep(0.05)
        return False

    def interrupt(self, timeout: float = 5.0):
        """SIGINT, then the exit code and the seconds it took (None if still running: then killed)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None, time.monotonic() - t0
        self._reader.join(timeout=2.0)
        return code, time.monotonic() - t0

    def wait(self, timeout: float = 20.0):
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=2.0)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class RclpyHelper:
    """An rclpy node spun in a background thread inside the test process (its own Context)."""

    def __init__(self, name: str = "sim2real_test"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:  # noqa: BLE001 - RCLError: close() shut the context down while spin() built a wait set
            if self.context.ok():
                raise

    def collect(self, msg_type, topic: str, qos=10) -> list:
        out: list = []
        self.node.create_subscription(msg_type, topic, out.append, qos)
        return out

    def call(self, srv_type, name: str, request=None, timeout: float = 10.0):
        """Call a service; the response, or None after ``timeout``."""
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            future = client.call_async(request if request is not None else srv_type.Request())
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def wait_until(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.context)  # wakes the executor: spin() returns
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
