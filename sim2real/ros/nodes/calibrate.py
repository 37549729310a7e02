"""``calibrate`` node: eye-to-hand calibration of the camera against the robot base, over ROS.

A ChArUco board (``board``) is fixed to the flange; the camera stands on a tripod. The operator
moves the arm by hand (UR free-drive / xArm manual mode) or with the teach pendant, then calls

  ~/sample  std_srvs/Trigger  take a sample: the flange pose from TF (``base_frame`` ->
                              ``tip_frame`` of the robot config) before and after a fresh RGB-D
                              frame (dropped if the arm moved), and the board pose in the image
  ~/solve   std_srvs/Trigger  solve (sim2real.calibration.handeye.solve_handeye: all OpenCV
                              methods, refinement, outlier rejection), write ``out``
  ~/clear   std_srvs/Trigger  drop the samples

The calibration YAML holds T_base_camera, the colour intrinsics, the residuals and the frames;
deploy.launch.py publishes it as a static TF (calibration_tf node).
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from sim2real.errors import HardwareError, Sim2RealError
from sim2real.ros.nodes._common import spin_node
from sim2real.ros.params import declare

NODE = "calibrate"


class TfFlange:
    """A read-only 'robot' for hand-eye sampling: ``state().tcp_pose`` from TF (base -> tip frame)."""

    def __init__(self, lookup, base_frame: str, tip_frame: str):
        self.lookup, self.base_frame, self.tip_frame = lookup, base_frame, tip_frame

    def state(self):
        from scipy.spatial.transform import Rotation

        T = self.lookup(self.base_frame, self.tip_frame)
        return SimpleNamespace(tcp_pose=(T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()))

    def stop(self) -> None:
        """Nothing moves in free-drive sampling."""


def build_calibration(result, intrinsics, name: str, robot_id: str, base_frame: str, camera_frame: str, board):
    """The :class:`~sim2real.calibration.storage.Calibration` of an eye-to-hand HandEyeResult."""
    from sim2real.calibration.handeye import compose_base_camera
    from sim2real.calibration.storage import Calibration

    return Calibration(name=name, T_base_camera=compose_base_camera(result), intrinsics=intrinsics,
                       board=board.to_dict(), method=result.method, residuals=result.to_dict(), robot_id=robot_id,
                       frames={"base": base_frame, "camera": camera_frame}, mode="eye_to_hand")


def make_node(overrides=None):
    from pathlib import Path

    import rclpy.duration
    import tf2_ros
    from rclpy.callback_groups import ReentrantCallbackGroup
    from rclpy.node import Node
    from rclpy.time import Time
    from std_srvs.srv import Trigger

    from sim2real.calibration.board import load_board
    from sim2real.calibration.collect import take_sample
    from sim2real.calibration.handeye import solve_handeye
    from sim2real.calibration.storage import save_calibration
    from sim2real.robot_config import load_robot_config
    from sim2real.ros.conversions import transform_to_matrix
    from sim2real.ros.topic_camera import TopicCamera

    class CalibrateNode(Node):
        def __init__(self):
            super().__init__(NODE)
            self.p = p = declare(self, NODE, overrides)
            self.config = load_robot_config(p["robot"])
            self.board = load_board(p["board"] or None)
            self.tf_buffer = tf2_ros.Buffer()
            self.tf_listener = tf2_ros.TransformListener(self.tf_buffer, self)
            self.camera = TopicCamera(self, p["color_topic"], p["depth_topic"], p["camera_info_topic"], p["sync_slop_s"])
            self.base_frame = p["base_frame"] or self.config.base_frame
            self.flange = TfFlange(self._lookup, self.base_frame, self.config.tip_frame)
            self.samples, self.last_frame = [], None
            self._lock = threading.Lock()
            group = ReentrantCallbackGroup()
            self.create_service(Trigger, "~/sample", self._srv_sample, callback_group=group)
            self.create_service(Trigger, "~/solve", self._srv_solve, callback_group=group)
            self.create_service(Trigger, "~/clear", self._srv_clear, callback_group=group)
            self.get_logger().info(
                f"calibrate: board {self.board.squares_x}x{self.board.squares_y} on {self.config.tip_frame}; move the "
                f"arm, then `ros2 service call /{NODE}/sample std_srvs/srv/Trigger` ({p['min_samples']}+ samples, "
                f"vary the tilt 20-40 deg about different axes), then /{NODE}/solve -> {p['out']}")

        def _lookup(self, parent: str, child: str) -> np.ndarray:
            try:
                tf = self.tf_buffer.lookup_transform(parent, child, Time(),
                                                     timeout=rclpy.duration.Duration(seconds=self.p["tf_timeout_s"]))
            except tf2_ros.TransformException as e:
                raise HardwareError(f"TF timeout {parent} <- {child}: {e}; is the robot driver running? "
                                    f"Try `ros2 run tf2_ros tf2_echo {parent} {child}`") from None
            return transform_to_matrix(tf)

        def _srv_sample(self, request, response):
            with self._lock:
                try:
                    frame = self.camera.read(self.p["read_timeout_s"])
                    self.last_frame = frame
                    sample, why = take_sample(self.camera, self.flange, self.board, f"sample {len(self.samples)}",
                                              frame.K, self.p["read_timeout_s"])
                except Sim2RealError as e:
                    response.success, response.message = False, str(e)
                    return response
                if sample is None:
                    response.success, response.message = False, f"not taken: {why}"
                    return response
                self.samples.append(sample)
                response.success = True
                response.message = (f"sample {len(self.samples)}: {len(sample.image_points)} corners, "
                                    f"PnP {sample.rms_px:.2f} px")
            self.get_logger().info(response.message)
            return response

        def _srv_solve(self, request, response):
            with self._lock:
                if len(self.samples) < self.p["min_samples"]:
                    response.success = False
                    response.message = f"{len(self.samples)} samples; take at least {self.p['min_samples']}"
                    return response
                try:
                    K = self.last_frame.K
                    result = solve_handeye(self.samples, "eye_to_hand", K=K)
                    camera_frame = self.p["camera_frame"] or self.last_frame.frame_id
                    out = Path(self.p["out"])
                    cal = build_calibration(result, self.last_frame.intrinsics, out.stem, self.config.name,
                                            self.base_frame, camera_frame, self.board)
                    path = save_calibration(cal, out)
                except Sim2RealError as e:
                    response.success, response.message = False, str(e)
                    return response
            s = result.summary()
            response.success = True
            response.message = (f"wrote {path}: {result.method}, {s['n_used']}/{s['n_samples']} samples, "
                                f"{s['trans_rms_mm']:.2f} mm / {s['rot_rms_deg']:.3f} deg RMS")
            self.get_logger().info(response.message)
            return response

        def _srv_clear(self, request, response):
            with self._lock:
                n = len(self.samples)
                self.samples.clear()
            response.success, response.message = True, f"dropped {n} samples"
            return response

    return CalibrateNode()


def main(args=None) -> int:
    """Console entry ``calibrate_node``."""
    return spin_node(lambda: make_node(), args, NODE)
