"""A minimal in-memory stand-in for the ROS 2 Python API, for exercising the node code here.

Message classes are rosbags' typestore classes (the real ROS 2 definitions); rclpy, message_filters,
tf2_ros, std_srvs and rcl_interfaces are small fakes that record publishers, subscriptions,
services and timers so a test can feed messages in and read what a node publishes. This is not
ROS: the launch tests in test/launch/ run the real thing where ROS 2 is installed.
"""
from __future__ import annotations

import sys
import time
import types
from types import SimpleNamespace

from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def _msg_module(name, package, names):
    mod = types.ModuleType(name)
    for n in names:
        setattr(mod, n, TYPESTORE.types[f"{package}/msg/{n}"])
    return mod


class FakeDescriptorModule(types.ModuleType):
    """rcl_interfaces.msg stand-in: records descriptors the way rclpy would receive them."""

    class ParameterType:
        PARAMETER_BOOL, PARAMETER_INTEGER, PARAMETER_DOUBLE, PARAMETER_STRING = 1, 2, 3, 4
        PARAMETER_STRING_ARRAY, PARAMETER_DOUBLE_ARRAY = 9, 8

    class ParameterDescriptor:
        def __init__(self, **kw):
            self.__dict__.update(kw)
            self.floating_point_range, self.integer_range = [], []

    class FloatingPointRange:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class IntegerRange:
        def __init__(self, **kw):
            self.__dict__.update(kw)


class Logger:
    def __init__(self):
        self.lines = []

    def _log(self, level, msg, **kw):
        self.lines.append((level, str(msg)))

    def info(self, msg, **kw):
        self._log("info", msg, **kw)

    def warning(self, msg, **kw):
        self._log("warning", msg, **kw)

    def error(self, msg, **kw):
        self._log("error", msg, **kw)

    def text(self, level=None):
        return "\n".join(m for lv, m in self.lines if level is None or lv == level)


class Publisher:
    def __init__(self, topic):
        self.topic, self.messages = topic, []

    def publish(self, msg):
        self.messages.append(msg)


class Clock:
    def __init__(self):
        self.offset_ns = 0

    def now(self):
        return SimpleNamespace(nanoseconds=time.time_ns() + self.offset_ns)


class Node:
    """Fake rclpy.node.Node; parameter overrides come from ``Node.overrides`` (as a launch file would set)."""

    overrides: dict = {}

    def __init__(self, name, **kw):
        self.name = name
        self.publishers, self.subscriptions, self.services, self.clients, self.timers = {}, {}, {}, {}, []
        self.params = {}
        self.logger = Logger()
        self.clock = Clock()
        self.destroyed = False

    def declare_parameter(self, name, value, descriptor=None):
        self.params[name] = self.overrides.get(name, value)
        return SimpleNamespace(value=self.params[name])

    def get_parameter(self, name):
        return SimpleNamespace(value=self.params[name])

    def set_parameters(self, params):
        for p in params:
            self.params[p.name] = p.value

    def create_publisher(self, msg_type, topic, qos, **kw):
        return self.publishers.setdefault(topic, Publisher(topic))  # one stream per topic, as DDS

    def create_subscription(self, msg_type, topic, callback, qos, **kw):
        self.subscriptions.setdefault(topic, []).append(callback)
        return SimpleNamespace(topic=topic)

    def create_service(self, srv_type, name, callback, **kw):
        full = name.replace("~", f"/{self.name}")
        self.services[full] = (srv_type, callback)
        return SimpleNamespace(name=full)

    def create_client(self, srv_type, name, **kw):
        client = SimpleNamespace(srv_type=srv_type, name=name)
        self.clients[name] = client
        return client

    def create_timer(self, period, callback, **kw):
        self.timers.append((period, callback))
        return SimpleNamespace(period=period)

    def get_logger(self):
        return self.logger

    def get_clock(self):
        return self.clock

    def get_fully_qualified_name(self):
        return f"/{self.name}"

    def destroy_node(self):
        self.destroyed = True

    # -- test helpers --
    def deliver(self, topic, msg):
        for cb in self.subscriptions.get(topic, []):
            cb(msg)

    def call(self, name, request=None):
        srv_type, cb = self.services[name]
        return cb(request if request is not None else srv_type.Request(), srv_type.Response())

    def published(self, topic):
        return self.publishers[topic].messages


class _Srv:
    def __init__(self, req_fields, resp_fields):
        self.Request = type("Request", (SimpleNamespace,), {"__init__": _init(req_fields)})
        self.Response = type("Response", (SimpleNamespace,), {"__init__": _init(resp_fields)})


def _init(fields):
    def __init__(self, **kw):
        SimpleNamespace.__init__(self, **{**fields, **kw})
    return __init__


class Subscriber:
    """message_filters.Subscriber: registers on the node, forwards to the synchronizer."""

    def __init__(self, node, msg_type, topic, **kw):
        self.topic, self.callbacks = topic, []
        node.create_subscription(msg_type, topic, self._cb, 10)

    def _cb(self, msg):
        for cb in self.callbacks:
            cb(msg)


class ApproximateTimeSynchronizer:
    """Pairs the newest message of each input when all stamps are within ``slop`` (enough for tests)."""

    instances: list = []

    def __init__(self, subs, queue_size, slop):
        self.slop, self.latest, self.callbacks = slop, [None] * len(subs), []
        for i, s in enumerate(subs):
            s.callbacks.append(lambda m, i=i: self._add(i, m))
        ApproximateTimeSynchronizer.instances.append(self)

    def registerCallback(self, cb):
        self.callbacks.append(cb)

    def _add(self, i, msg):
        self.latest[i] = msg
        if all(m is not None for m in self.latest):
            stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in self.latest]
            if max(stamps) - min(stamps) <= self.slop:
                msgs, self.latest = self.latest, [None] * len(self.latest)
                for cb in self.callbacks:
                    cb(*msgs)


class TransformException(Exception):
    pass


class Buffer:
    """tf2_ros.Buffer with transforms set by the test: ``Buffer.transforms[(parent, child)] = TransformStamped``."""

    transforms: dict = {}

    def lookup_transform(self, parent, child, stamp, timeout=None):
        try:
            return self.transforms[(parent, child)]
        except KeyError:
            raise TransformException(f'"{parent}" passed to lookupTransform argument target_frame does not exist') \
                from None

    def can_transform(self, parent, child, stamp):
        return (parent, child) in self.transforms


class StaticTransformBroadcaster:
    sent: list = []

    def __init__(self, node):
        pass

    def sendTransform(self, tf):
        StaticTransformBroadcaster.sent.append(tf)


def install(monkeypatch):
    """Put the fake ROS modules into sys.modules for the duration of a test."""
    mods = {}

    def add(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        mods[name] = mod
        return mod

    class ExternalShutdownException(Exception):
        pass

    class MultiThreadedExecutor:
        def add_node(self, node):
            self.node = node

        def spin(self):
            raise KeyboardInterrupt  # a test process has nobody to press Ctrl-C; stop at once

        def shutdown(self, timeout_sec=None):
            self.shut_down = True

    add("rclpy", init=lambda args=None: None, try_shutdown=lambda: None)
    add("rclpy.node", Node=Node)
    add("rclpy.executors", MultiThreadedExecutor=MultiThreadedExecutor,
        ExternalShutdownException=ExternalShutdownException)
    add("rclpy.callback_groups", MutuallyExclusiveCallbackGroup=object, ReentrantCallbackGroup=object)
    add("rclpy.qos", qos_profile_sensor_data="sensor_data")
    add("rclpy.duration", Duration=lambda seconds=0.0: SimpleNamespace(seconds=seconds))
    class Time(SimpleNamespace):
        @classmethod
        def from_msg(cls, msg):
            return cls(nanoseconds=msg.sec * 10**9 + msg.nanosec)

    add("rclpy.time", Time=Time)
    add("rclpy.parameter", Parameter=lambda name, value=None, **kw: SimpleNamespace(name=name, value=value))
    mods["rclpy"].node, mods["rclpy"].duration, mods["rclpy"].time = (mods["rclpy.node"], mods["rclpy.duration"],
                                                                      mods["rclpy.time"])
    add("rcl_interfaces")
    mods["rcl_interfaces.msg"] = FakeDescriptorModule("rcl_interfaces.msg")
    mods["sensor_msgs"] = types.ModuleType("sensor_msgs")
    mods["sensor_msgs.msg"] = _msg_module("sensor_msgs.msg", "sensor_msgs", ["Image", "CameraInfo", "RegionOfInterest"])
    mods["std_msgs"] = types.ModuleType("std_msgs")
    mods["std_msgs.msg"] = _msg_module("std_msgs.msg", "std_msgs", ["String", "Header"])
    mods["geometry_msgs"] = types.ModuleType("geometry_msgs")
    mods["geometry_msgs.msg"] = _msg_module("geometry_msgs.msg", "geometry_msgs", [
        "Point", "Quaternion", "Pose", "PoseStamped", "PoseArray", "Vector3", "Transform", "TransformStamped"])
    mods["builtin_interfaces"] = types.ModuleType("builtin_interfaces")
    mods["builtin_interfaces.msg"] = _msg_module("builtin_interfaces.msg", "builtin_interfaces", ["Time"])
    add("std_srvs")
    add("std_srvs.srv", Trigger=_Srv({}, {"success": False, "message": ""}),
        SetBool=_Srv({"data": False}, {"success": False, "message": ""}))
    add("message_filters", Subscriber=Subscriber, ApproximateTimeSynchronizer=ApproximateTimeSynchronizer)
    add("tf2_ros", Buffer=Buffer, TransformListener=lambda buffer, node: None, TransformException=TransformException)
    add("tf2_ros.static_transform_broadcaster", StaticTransformBroadcaster=StaticTransformBroadcaster)
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    Buffer.transforms = {}
    StaticTransformBroadcaster.sent = []
    ApproximateTimeSynchronizer.instances = []
    Node.overrides = {}
    return mods
