"""``calibration_tf`` node: publishes a calibration YAML's camera pose as a static TF.

Parent ``base_frame`` (default: the calibration's ``frames.base``), child ``camera_frame``
(default ``frames.camera``, the colour optical frame), transform ``T_base_camera``. The
heightmap node looks this transform up. Uses tf2_ros.StaticTransformBroadcaster (latched). Without
tf2_ros (rclpy from PyPI) it validates the calibration, says so and publishes nothing: the heightmap
node then reads the same YAML (``calibration`` parameter) instead of TF.
"""
from __future__ import annotations

from sim2real.errors import ConfigError
from sim2real.ros.nodes._common import now_s, spin_node
from sim2real.ros.params import declare

NODE = "calibration_tf"


def calibration_transform(types, calibration, base_frame: str = "", camera_frame: str = "", stamp: float = 0.0):
    """The TransformStamped base <- camera of a :class:`~sim2real.calibration.storage.Calibration`."""
    from sim2real.ros.conversions import transform_stamped_msg

    parent = base_frame or calibration.frames.get("base", "")
    child = camera_frame or calibration.frames.get("camera", "")
    if not parent or not child:
        raise ConfigError(f"calibration {calibration.name!r} names no frames; pass base_frame and camera_frame")
    return transform_stamped_msg(types, calibration.T_base_camera, parent, child, stamp)


def make_node(overrides=None):
    from rclpy.node import Node

    from sim2real.calibration.storage import load_calibration
    from sim2real.ros.conversions import MsgTypes

    class CalibrationTfNode(Node):
        def __init__(self):
            super().__init__(NODE)
            p = declare(self, NODE, overrides)
            if not p["calibration"]:
                raise ConfigError("parameter calibration is empty: pass calibration:=calibration/<name>.yaml")
            cal = load_calibration(p["calibration"])
            tf = calibration_transform(MsgTypes.from_rclpy(), cal, p["base_frame"], p["camera_frame"], now_s(self))
            try:
                from tf2_ros.static_transform_broadcaster import StaticTransformBroadcaster
            except ImportError:  # rclpy from PyPI has no tf2_ros: consumers read the YAML (heightmap node)
                self.broadcaster = None
                self.get_logger().warning(
                    f"tf2_ros is not installed: NOT publishing the static TF {tf.header.frame_id} -> "
                    f"{tf.child_frame_id}; nodes given calibration:={p['calibration']} use its T_base_camera "
                    "directly (source a ROS 2 with tf2_ros for RViz / other TF users)")
                return
            self.broadcaster = StaticTransformBroadcaster(self)
            self.broadcaster.sendTransform(tf)
            self.get_logger().info(f"static TF {tf.header.frame_id} -> {tf.child_frame_id} from {p['calibration']} "
                                   f"({cal.method or 'unknown method'}, {cal.date})")

    return CalibrationTfNode()


def main(args=None) -> int:
    """Console entry ``calibration_tf_node``."""
    return spin_node(lambda: make_node(), args, NODE)
