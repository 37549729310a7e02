"""``camera`` node: RGB-D frames of a ``source`` published as ROS topics.

``source:=realsense`` (default) reads a live RealSense through pyrealsense2 (sim2real.realsense);
``source:=playback playback:=REC.db3`` replays a RealSense recording (the file ``sim2real capture
--record`` writes and ``--playback`` reads) with its recorded intrinsics and depth scale, one frame
per tick, looping at the end unless ``playback_loop:=false``; ``source:=twin`` renders the digital
twin's calibrated camera (``twin_task`` / ``twin_seed`` pick the scene). Playback and twin frames are
stamped with the node clock when published (their recorded/simulated times are not ROS time).

Publishes ``color_topic`` (rgb8), ``depth_topic`` (depth aligned to color, ``depth_encoding``
16UC1 mm or 32FC1 m) and ``camera_info_topic`` at ``publish_rate_hz``, all stamped with the
capture time and framed in ``frame_id``. A frame that does not arrive within ``read_timeout_s``
is logged as "camera lost" (the camera class reconnects on its own); downstream nodes then see
stale or missing frames and stop the step. Use ``camera:=realsense2_camera`` in the launch
file to use Intel's ROS wrapper instead; this node is then not started.
"""
from __future__ import annotations

import threading

from sim2real.errors import HardwareError, Sim2RealError
from sim2real.ros.nodes._common import spin_node
from sim2real.ros.params import declare

NODE = "camera"
CAMERA_QOS_DEPTH = 5
TWIN_RENDERER = "tiny"
"""PyBullet's CPU renderer: the nodes render from executor threads, and an EGL context only works
in the thread that created it (a render from another thread hangs or crashes)."""


def open_camera(params: dict):
    """A connected :class:`sim2real.realsense.RealSenseCamera` from the node parameters."""
    from sim2real.realsense import RealSenseCamera, load_realsense_config

    profile = {"width": params["width"], "height": params["height"], "fps": params["fps"]}
    config = load_realsense_config(params["camera_config"] or None, serial=params["serial"] or None,
                                   color=profile, depth=profile, frame_id=params["frame_id"],
                                   timeout_s=params["read_timeout_s"])
    return RealSenseCamera(config).connect()


def open_playback(params: dict):
    """The :class:`sim2real.realsense.PlaybackCamera` of ``params['playback']``."""
    from sim2real.errors import ConfigError
    from sim2real.realsense import PlaybackCamera

    if not params["playback"]:
        raise ConfigError("source:=playback needs the recording: add -p playback:=/path/to/recording.db3")
    return PlaybackCamera(params["playback"], timeout_s=params["read_timeout_s"], frame_id=params["frame_id"])


class TwinSceneCamera:
    """The twin's calibrated camera over its own PyBullet scene (``source:=twin``)."""

    def __init__(self, params: dict):
        from sim2real.twin import Twin

        self.twin = Twin.from_config(params["twin_config"] or None, renderer=TWIN_RENDERER)
        if params["twin_task"]:
            from sim2real.tasks import resolve

            self.twin.start_trial(resolve(params["twin_task"]), params["twin_seed"])

    def read(self, timeout_s: float = 1.0):
        return self.twin.camera.read(timeout_s)

    def close(self) -> None:
        self.twin.close()


def open_source(params: dict):
    """The CameraPort of ``params['source']``."""
    if params["source"] == "playback":
        return open_playback(params)
    if params["source"] == "twin":
        return TwinSceneCamera(params)
    return open_camera(params)


class CameraStage:
    """Publishes frames of a CameraPort (the ``source`` parameter's by default) on a timer."""

    def __init__(self, node, params: dict, camera=None):
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from sensor_msgs.msg import CameraInfo, Image

        from sim2real.ros.conversions import MsgTypes

        self.node, self.p = node, params
        self.log = node.get_logger()
        self.types = MsgTypes.from_rclpy()
        self.camera = camera if camera is not None else open_source(params)
        self.restamp = params["source"] != "realsense"
        self.frames_published = 0
        self._lock, self._closed = threading.Lock(), False
        # reliable + volatile, keep last 5, like realsense2_camera's default: both reliable and
        # sensor-data (best-effort) subscribers match it, where a best-effort publisher serves only the latter
        self.pub_color = node.create_publisher(Image, params["color_topic"], CAMERA_QOS_DEPTH)
        self.pub_depth = node.create_publisher(Image, params["depth_topic"], CAMERA_QOS_DEPTH)
        self.pub_info = node.create_publisher(CameraInfo, params["camera_info_topic"], CAMERA_QOS_DEPTH)
        node.create_timer(1.0 / params["publish_rate_hz"], self.tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.log.info(f"camera ({params['source']}): publishing {params['color_topic']}, {params['depth_topic']}, "
                      f"{params['camera_info_topic']} at {params['publish_rate_hz']} Hz in {params['frame_id']}")

    def tick(self) -> None:
        with self._lock:
            if not self._closed:
                self._tick()

    def _tick(self) -> None:
        from sim2real.ros.conversions import rgbd_frame_to_msgs

        from dataclasses import replace

        from sim2real.realsense import EndOfRecording
        from sim2real.ros.nodes._common import now_s

        try:
            frame = self.camera.read(timeout_s=self.p["read_timeout_s"])
        except EndOfRecording as e:
            self.camera.close()
            if not self.p["playback_loop"]:
                self.log.info(f"{e}; playback_loop is false: no more frames", once=True)
                return
            self.camera = open_playback(self.p)  # from the first frame again
            return self._tick()
        except HardwareError as e:
            self.log.error(f"camera lost: {e}", throttle_duration_sec=5.0)
            return
        if self.restamp:
            frame = replace(frame, stamp=now_s(self.node))
        try:
            color, depth, info = rgbd_frame_to_msgs(self.types, frame, self.p["depth_encoding"], self.p["frame_id"])
        except Sim2RealError as e:
            self.log.error(f"frame not published: {e}", throttle_duration_sec=5.0)
            return
        self.pub_color.publish(color)
        self.pub_depth.publish(depth)
        self.pub_info.publish(info)
        self.frames_published += 1

    def shutdown(self) -> None:
        with self._lock:  # never while a frame is being read / rendered
            self._closed = True
            self.camera.close()


def make_node(overrides=None, camera=None):
    """The camera node (a ``camera`` port can be injected, e.g. sim2real.realsense.SoftwareCamera)."""
    from rclpy.node import Node

    class CameraNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.stage = CameraStage(self, declare(self, NODE, overrides), camera)

        def shutdown(self):
            self.stage.shutdown()

    return CameraNode()


def main(args=None) -> int:
    """Console entry ``camera_node``."""
    return spin_node(lambda: make_node(), args, NODE)
