"""A CameraPort fed by ROS topics: synchronised color + aligned depth + camera_info.

:class:`FrameBuffer` is the pure part (newest frame, waiting with a timeout for one newer than
the request); :class:`TopicCamera` subscribes through message_filters on an rclpy node.
"""
from __future__ import annotations

import threading
import time

from sim2real.errors import HardwareError


class FrameBuffer:
    """Holds the newest RGB-D frame; :meth:`read` waits for one that arrived after the call."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._cond = threading.Condition()
        self._frame, self._arrived = None, -1.0
        self.error = None

    def put(self, frame) -> None:
        with self._cond:
            self._frame, self._arrived = frame, self.clock()
            self._cond.notify_all()

    def read(self, timeout_s: float = 5.0, fresh: bool = True):
        """The newest frame (one arriving after this call when ``fresh``); HardwareError on timeout."""
        start = self.clock()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._frame is not None and (not fresh or self._arrived >= start),
                                     timeout=timeout_s)
            if not ok:
                raise HardwareError(f"camera lost: no RGB-D frame within {timeout_s:.1f} s"
                                    + (f" (last problem: {self.error})" if self.error else "")
                                    + "; check the camera topics with `ros2 topic hz`")
            return self._frame


class TopicCamera:
    """CameraPort over realsense2_camera / sim2real camera topics (T_base_camera left None)."""

    def __init__(self, node, color_topic: str, depth_topic: str, info_topic: str, slop_s: float = 0.05,
                 queue_size: int = 10):
        import message_filters
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        self.buffer = FrameBuffer()
        self.log = node.get_logger()
        subs = [message_filters.Subscriber(node, Image, color_topic, qos_profile=qos_profile_sensor_data),
                message_filters.Subscriber(node, Image, depth_topic, qos_profile=qos_profile_sensor_data),
                message_filters.Subscriber(node, CameraInfo, info_topic, qos_profile=qos_profile_sensor_data)]
        self._subs = subs
        self.sync = message_filters.ApproximateTimeSynchronizer(subs, queue_size, slop_s)
        self.sync.registerCallback(self._on_frames)

    def _on_frames(self, color, depth, info) -> None:
        from sim2real.errors import Sim2RealError
        from sim2real.ros.conversions import rgbd_frame_from_msgs

        try:
            self.buffer.put(rgbd_frame_from_msgs(color, depth, info))
        except Sim2RealError as e:
            self.buffer.error = str(e)
            self.log.error(f"frame dropped: {e}", throttle_duration_sec=5.0)

    def read(self, timeout_s: float = 5.0):
        return self.buffer.read(timeout_s)

    def close(self) -> None:
        """Nothing to release (the subscriptions belong to the node)."""
