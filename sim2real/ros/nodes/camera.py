"""``camera`` node: a RealSense through pyrealsense2 (sim2real.realsense), published as ROS topics.

Publishes ``color_topic`` (rgb8), ``depth_topic`` (depth aligned to color, ``depth_encoding``
16UC1 mm or 32FC1 m) and ``camera_info_topic`` at ``publish_rate_hz``, all stamped with the
capture time and framed in ``frame_id``. A frame that does not arrive within ``read_timeout_s``
is logged as "camera lost" (the camera class reconnects on its own); downstream nodes then see
stale or missing frames and stop the step. Use ``camera:=realsense2_camera`` in the launch
file to use Intel's ROS wrapper instead; this node is then not started.
"""
from __future__ import annotations

from sim2real.errors import HardwareError, Sim2RealError
from sim2real.ros.nodes._common import spin_node
from sim2real.ros.params import declare

NODE = "camera"


def open_camera(params: dict):
    """A connected :class:`sim2real.realsense.RealSenseCamera` from the node parameters."""
    from sim2real.realsense import RealSenseCamera, load_realsense_config

    profile = {"width": params["width"], "height": params["height"], "fps": params["fps"]}
    config = load_realsense_config(params["camera_config"] or None, serial=params["serial"] or None,
                                   color=profile, depth=profile, frame_id=params["frame_id"],
                                   timeout_s=params["read_timeout_s"])
    return RealSenseCamera(config).connect()


class CameraStage:
    """Publishes frames of a CameraPort (RealSense by default) on a timer."""

    def __init__(self, node, params: dict, camera=None):
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        from sim2real.ros.conversions import MsgTypes

        self.node, self.p = node, params
        self.log = node.get_logger()
        self.types = MsgTypes.from_rclpy()
        self.camera = camera if camera is not None else open_camera(params)
        self.pub_color = node.create_publisher(Image, params["color_topic"], qos_profile_sensor_data)
        self.pub_depth = node.create_publisher(Image, params["depth_topic"], qos_profile_sensor_data)
        self.pub_info = node.create_publisher(CameraInfo, params["camera_info_topic"], qos_profile_sensor_data)
        node.create_timer(1.0 / params["publish_rate_hz"], self.tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.log.info(f"camera: publishing {params['color_topic']}, {params['depth_topic']}, "
                      f"{params['camera_info_topic']} at {params['publish_rate_hz']} Hz in {params['frame_id']}")

    def tick(self) -> None:
        from sim2real.ros.conversions import rgbd_frame_to_msgs

        try:
            frame = self.camera.read(timeout_s=self.p["read_timeout_s"])
        except HardwareError as e:
            self.log.error(f"camera lost: {e}", throttle_duration_sec=5.0)
            return
        try:
            color, depth, info = rgbd_frame_to_msgs(self.types, frame, self.p["depth_encoding"], self.p["frame_id"])
        except Sim2RealError as e:
            self.log.error(f"frame not published: {e}", throttle_duration_sec=5.0)
            return
        self.pub_color.publish(color)
        self.pub_depth.publish(depth)
        self.pub_info.publish(info)

    def shutdown(self) -> None:
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
