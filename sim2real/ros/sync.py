"""Time synchronisation of several topics without message_filters (which PyPI does not ship).

:class:`StampSynchronizer` is what the heightmap and calibrate nodes use when ``message_filters``
cannot be imported (the rclpy-from-PyPI install): each subscription's newest ``queue_size``
messages are kept; when a message arrives, the message of every other topic nearest to its stamp
is taken, and if all lie within ``slop`` seconds of it the set is delivered (like
message_filters' ApproximateTimeSynchronizer for our cameras, whose three topics carry one
stamp) and everything up to it is dropped. With a sourced ROS 2 the nodes use message_filters.
"""
from __future__ import annotations

import threading
from collections import deque


def _stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class StampSynchronizer:
    """Deliver ``callback(*msgs)`` for sets of messages whose header stamps agree within ``slop`` s.

    Args:
        node: rclpy node that owns the subscriptions.
        specs: [(msg_type, topic)] in callback argument order.
        qos: QoS profile (or depth) of every subscription.
        queue_size: messages kept per topic.
        slop: largest stamp difference within one set, seconds.
    """

    def __init__(self, node, specs, qos, queue_size: int, slop: float, callback_group=None):
        self.slop, self.callbacks = float(slop), []
        self.queues = [deque(maxlen=int(queue_size)) for _ in specs]
        self._lock = threading.Lock()
        self.subscriptions = [
            node.create_subscription(msg_type, topic, lambda m, i=i: self._add(i, m), qos,
                                     callback_group=callback_group)
            for i, (msg_type, topic) in enumerate(specs)]

    def registerCallback(self, callback) -> None:  # noqa: N802 - message_filters' name
        self.callbacks.append(callback)

    def _add(self, index: int, msg) -> None:
        t = _stamp_s(msg)
        with self._lock:
            self.queues[index].append(msg)
            chosen = []
            for j, q in enumerate(self.queues):
                if j == index:
                    chosen.append(msg)
                    continue
                best = min(q, key=lambda m: abs(_stamp_s(m) - t), default=None)
                if best is None or abs(_stamp_s(best) - t) > self.slop:
                    return
                chosen.append(best)
            for q, m in zip(self.queues, chosen):  # drop the set and everything older
                stamp = _stamp_s(m)
                while q and _stamp_s(q[0]) <= stamp:
                    q.popleft()
        for cb in self.callbacks:
            cb(*chosen)
