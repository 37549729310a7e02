"""``heightmap`` node: synchronised color + aligned depth + camera_info and TF -> heightmap Images.

Subscribes ``color_topic``, ``depth_topic``, ``camera_info_topic`` through a message_filters
ApproximateTimeSynchronizer (``sync_slop_s``), looks up camera -> ``base_frame`` in TF at the
image stamp (``tf_timeout_s``), projects with :func:`sim2real.heightmap.project_frames` and
publishes ``heightmap_topic`` (32FC1, metres above the table) and ``colormap_topic`` (rgb8), both
stamped with the image time and framed in ``base_frame`` (or the calibration's workspace).
Stale frames (older than ``max_age_s``) and TF timeouts are dropped with one log line each.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np

from sim2real.errors import HardwareError, Sim2RealError
from sim2real.ros.nodes._common import load_workspace, now_s, spin_node
from sim2real.ros.params import declare

NODE = "heightmap"


class HeightmapStage:
    """The heightmap stage on any rclpy node (standalone here, or inside the pipeline node).

    Args:
        node: the rclpy node hosting the stage.
        params: validated parameter dict (see sim2real.ros.params.HEIGHTMAP).
        on_observation: optional callable receiving each HeightmapObservation (in-process use).
    """

    def __init__(self, node, params: dict, on_observation=None):
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        from sim2real.ros.conversions import MsgTypes

        self.node, self.p, self.on_observation = node, params, on_observation
        self.log = node.get_logger()
        self.types = MsgTypes.from_rclpy()
        self.workspace, self.T_base_workspace, self.calibration = load_workspace(params["calibration"])
        self.tf_buffer = None
        self.transform_source = self._setup_transform(node, params)
        q = params["queue_size"]
        specs = [(Image, params["color_topic"]), (Image, params["depth_topic"]), (CameraInfo, params["camera_info_topic"])]
        try:
            import message_filters
        except ImportError:  # rclpy from PyPI: no message_filters wheel (sim2real.ros.sync)
            from sim2real.ros.sync import StampSynchronizer

            self.sync = StampSynchronizer(node, specs, qos_profile_sensor_data, q, params["sync_slop_s"])
            self._subs = self.sync.subscriptions
        else:
            subs = [message_filters.Subscriber(node, t, topic, qos_profile=qos_profile_sensor_data) for t, topic in specs]
            self.sync = message_filters.ApproximateTimeSynchronizer(subs, q, params["sync_slop_s"])
            self._subs = subs
        self.sync.registerCallback(self.on_frames)
        self.pub_height = node.create_publisher(Image, params["heightmap_topic"], 1)
        self.pub_color = node.create_publisher(Image, params["colormap_topic"], 1)
        self.pub_status = node.create_publisher(String, params["status_topic"], 10)
        self.on_problem = None  # in-process listener (pipeline node): on_problem(reason, message)
        self.latest = None
        self.last_frame_time = None
        self._lock = threading.Lock()
        node.create_timer(2.0, self._watchdog)
        self.log.info(f"heightmap: {params['color_topic']} + {params['depth_topic']} + {params['camera_info_topic']} "
                      f"-> {params['heightmap_topic']}, {params['colormap_topic']} in {params['base_frame']}")

    def _setup_transform(self, node, params: dict) -> str:
        """'tf' (a TF listener; calibration_tf publishes the calibration) or 'calibration' (the
        YAML's T_base_camera, used when tf2_ros cannot be imported, e.g. rclpy from PyPI)."""
        try:
            import tf2_ros
        except ImportError:
            if self.calibration is None:
                from sim2real.errors import ConfigError

                raise ConfigError("tf2_ros is not installed (PyPI has no wheel), so the camera -> base transform "
                                  "must come from the calibration: pass calibration:=calibration/<name>.yaml "
                                  "(or source a ROS 2 that has tf2_ros)") from None
            self.log.info(f"tf2_ros not available: camera -> {params['base_frame']} from "
                          f"{params['calibration']} (T_base_camera), not from TF")
            return "calibration"
        self.tf_buffer = tf2_ros.Buffer()
        self.tf_listener = tf2_ros.TransformListener(self.tf_buffer, node)
        return "tf"

    def problem(self, reason: str, message: str, level: str = "error") -> None:
        """Log why no heightmap was made and tell the policy (status topic / in-process)."""
        from std_msgs.msg import String

        from sim2real.ros.steps import encode

        getattr(self.log, level)(f"frame dropped ({reason.replace('_', ' ')}): {message}",
                                 throttle_duration_sec=5.0)
        self.pub_status.publish(String(data=encode({"reason": reason, "message": message, "t": now_s(self.node)})))
        if self.on_problem is not None:
            self.on_problem(reason, message)

    def _watchdog(self) -> None:
        if self.last_frame_time is None or now_s(self.node) - self.last_frame_time > max(2.0, self.p["max_age_s"]):
            self.problem("camera_lost", f"no synchronised color/depth/camera_info for > 2 s on "
                         f"{self.p['color_topic']}, {self.p['depth_topic']}, {self.p['camera_info_topic']}; "
                         "check `ros2 topic hz` on each (wrapper version changes topic names)", "warning")

    def camera_to_base(self, frame_id: str, stamp) -> np.ndarray:
        """(4, 4) T_base_camera from TF at ``stamp`` (or the calibration YAML's, see _setup_transform);
        HardwareError with the tf2_echo command on a TF timeout."""
        if self.transform_source == "calibration":
            return np.asarray(self.calibration.T_base_camera, dtype=np.float64)
        import rclpy.duration
        import rclpy.time
        import tf2_ros

        from sim2real.errors import HardwareError
        from sim2real.ros.conversions import transform_to_matrix

        camera = self.p["camera_frame"] or frame_id
        try:
            tf = self.tf_buffer.lookup_transform(self.p["base_frame"], camera, rclpy.time.Time.from_msg(stamp),
                                                 timeout=rclpy.duration.Duration(seconds=self.p["tf_timeout_s"]))
        except tf2_ros.TransformException as e:
            raise HardwareError(f"TF timeout: no transform {self.p['base_frame']} <- {camera} within "
                                f"{self.p['tf_timeout_s']} s ({e}); is calibration_tf running? Try "
                                f"`ros2 run tf2_ros tf2_echo {self.p['base_frame']} {camera}`") from None
        return transform_to_matrix(tf)

    def on_frames(self, color_msg, depth_msg, info_msg) -> None:
        from sim2real.heightmap import EmptyHeightmapWarning, project_frames
        from sim2real.ros.conversions import heightmap_to_msgs, rgbd_frame_from_msgs, time_to_seconds
        from sim2real.ros.steps import check_age

        self.last_frame_time = now_s(self.node)
        stale = check_age(time_to_seconds(color_msg.header.stamp), now_s(self.node), self.p["max_age_s"], "RGB-D frame")
        if stale:
            self.problem("stale_frame", stale, "warning")
            return
        try:
            T_base_camera = self.camera_to_base(color_msg.header.frame_id, color_msg.header.stamp)
        except HardwareError as e:
            self.problem("tf_timeout", str(e))
            return
        try:
            T = T_base_camera if self.T_base_workspace is None else np.linalg.inv(self.T_base_workspace) @ T_base_camera
            frame = rgbd_frame_from_msgs(color_msg, depth_msg, info_msg, T)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", EmptyHeightmapWarning)
                obs = project_frames([frame], self.workspace)
            for w in caught:
                self.log.warning(str(w.message), throttle_duration_sec=10.0)
        except Sim2RealError as e:
            self.problem("camera_lost", str(e))
            return
        height_msg, color_out = heightmap_to_msgs(self.types, obs, self.p["base_frame"])
        self.pub_height.publish(height_msg)
        self.pub_color.publish(color_out)
        with self._lock:
            self.latest = obs
        if self.on_observation is not None:
            self.on_observation(obs)


def make_node(overrides=None):
    """The standalone heightmap node (rclpy imported here)."""
    from rclpy.node import Node

    class HeightmapNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.stage = HeightmapStage(self, declare(self, NODE, overrides))

    return HeightmapNode()


def main(args=None) -> int:
    """Console entry ``heightmap_node``."""
    return spin_node(lambda: make_node(), args, NODE)
