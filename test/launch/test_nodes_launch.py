"""launch_testing: the calibration static TF and the executor in dry_run mode, started as real ROS 2
nodes (no arm needed: dry_run never starts MoveIt). Skipped where ROS 2 is absent.

Run with ``launch_test test/launch/test_nodes_launch.py`` or ``colcon test``.
"""
import json
import time
import unittest

import numpy as np
import pytest

launch_testing = pytest.importorskip("launch_testing")
pytest.importorskip("rclpy")
pytest.importorskip("launch_ros")

import launch  # noqa: E402
import launch_ros.actions  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from geometry_msgs.msg import PoseArray  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from sim2real.action import PickPlaceAction, PixelPose, theta_from_bin  # noqa: E402
from sim2real.calibration.storage import Calibration, save_calibration  # noqa: E402
from sim2real.camera import CameraIntrinsics  # noqa: E402
from sim2real.ros.conversions import MsgTypes, action_to_pose_array  # noqa: E402
from sim2real.workspace import GENSIM_WORKSPACE  # noqa: E402

T_BASE_CAMERA = np.array([[0.0, -1.0, 0.0, 0.5], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.9], [0, 0, 0, 1.0]])


def _calibration_file(tmp_dir):
    cal = Calibration("launch_test", T_BASE_CAMERA, CameraIntrinsics(640, 480, 610.0, 610.0, 320.0, 240.0),
                      frames={"base": "base_link", "camera": "camera_color_optical_frame"})
    return str(save_calibration(cal, f"{tmp_dir}/launch_test.yaml"))


@pytest.mark.launch_test
def generate_test_description():
    import tempfile

    calibration = _calibration_file(tempfile.mkdtemp())
    tf_node = launch_ros.actions.Node(package="sim2real", executable="calibration_tf_node", name="calibration_tf",
                                      parameters=[{"calibration": calibration}], output="screen")
    executor = launch_ros.actions.Node(package="sim2real", executable="executor_node", name="executor",
                                       parameters=[{"robot": "ur5", "mode": "dry_run", "go_home": False}],
                                       output="screen")
    return launch.LaunchDescription([tf_node, executor, launch_testing.actions.ReadyToTest()]), \
        {"executor": executor, "calibration_tf": tf_node}


def _action(place=(200, 100)):
    h = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    h[100, 40] = 0.03  # a 3 cm object to pick (the table itself is below the safety floor)
    return PickPlaceAction(PixelPose.from_pixel((100, 40), 0.0, h, GENSIM_WORKSPACE),
                           PixelPose.from_pixel(place, theta_from_bin(9), h, GENSIM_WORKSPACE))


class TestNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("sim2real_launch_test")
        cls.types = MsgTypes.from_rclpy()

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_calibration_is_published_as_static_tf(self):
        import tf2_ros

        buffer = tf2_ros.Buffer()
        tf2_ros.TransformListener(buffer, self.node)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
            if buffer.can_transform("base_link", "camera_color_optical_frame", rclpy.time.Time()):
                break
        tf = buffer.lookup_transform("base_link", "camera_color_optical_frame", rclpy.time.Time())
        t = tf.transform.translation
        np.testing.assert_allclose([t.x, t.y, t.z], T_BASE_CAMERA[:3, 3], atol=1e-9)

    def _step(self, action):
        results = []
        self.node.create_subscription(String, "/sim2real/step_result", lambda m: results.append(json.loads(m.data)), 10)
        pub = self.node.create_publisher(PoseArray, "/sim2real/pick_place_poses", 10)
        deadline = time.monotonic() + 15.0
        now = self.node.get_clock().now().nanoseconds * 1e-9
        while time.monotonic() < deadline and not results:
            pub.publish(action_to_pose_array(self.types, action, "base_link", now))
            for _ in range(10):
                rclpy.spin_once(self.node, timeout_sec=0.1)
                if results:
                    break
        self.assertTrue(results, "no step result from the executor")
        return results[0]

    def test_dry_run_plans_but_does_not_execute(self):
        result = self._step(_action())
        self.assertEqual(result["reason"], "dry_run")
        self.assertTrue(result["ok"])
        self.assertFalse(result["executed"])

    def test_unsafe_poses_are_refused(self):
        result = self._step(_action(place=(319, 159)))  # far corner: outside the UR5 reach envelope
        self.assertEqual(result["reason"], "safety_stop")
        self.assertFalse(result["executed"])


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
