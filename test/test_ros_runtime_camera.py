"""camera_node over real DDS (rclpy from PyPI, loopback only): playback of a RealSense recording, QoS.

Acceptance of issue 13 (camera sources): record a .db3 from a pyrealsense2 software_device, start
``camera_node --ros-args -p source:=playback -p playback:=REC.db3 -p depth_encoding:=32FC1`` with the
default topic names, subscribe over DDS and compare colour, depth in metres and K with what was
recorded; SIGINT -> exit code 0 within 5 s. Reliable and best-effort (sensor-data) subscribers
both receive the camera topics, as realsense2_camera users expect.
"""
from __future__ import annotations

import numpy as np
import pytest
from ros_runtime import NodeProcess, RclpyHelper, udp_sockets

from sim2real.camera import CameraIntrinsics
from sim2real.ros.params import SIM2REAL_CAMERA_TOPICS

pytestmark = pytest.mark.ros_runtime

rs = pytest.importorskip("sim2real.realsense")

W, H = 320, 240
COLOR_K = CameraIntrinsics(W, H, 300.0, 301.0, 161.5, 119.25)


def _record(path, n=5):
    """n distinct frames through a software device recorded to ``path``; returns them and the depth scale."""
    rng = np.random.default_rng(3)
    v, u = np.mgrid[0:H, 0:W]
    frames = []
    for k in range(n):
        depth = (650 + 0.9 * v + 5 * k).astype(np.uint16)
        depth[40 + 7 * k:90 + 7 * k, 120:170] -= 150
        depth[rng.random((H, W)) < 0.01] = 0
        color = np.stack([(u + 11 * k) % 256, (2 * v) % 256, (u + v + 30 * k) % 256], -1).astype(np.uint8)
        frames.append((color, depth))
    cam = rs.SoftwareCamera(COLOR_K, record_to=path, serial="424242424242")
    try:
        for c, d in frames:
            cam.push(c, d)
    finally:
        cam.close()
    return frames, cam.converter.depth_scale


def _image(msg):
    from sim2real.ros.conversions import image_msg_to_array

    return image_msg_to_array(msg)


def test_camera_node_replays_a_realsense_recording_over_dds(tmp_path, dds_loopback):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    domain, sniffer = dds_loopback
    path = tmp_path / "rec.db3"
    frames, scale = _record(path)
    node = NodeProcess("camera_node", {"source": "playback", "playback": str(path), "depth_encoding": "32FC1"})
    helper = RclpyHelper("camera_check")
    try:
        color = helper.collect(Image, SIM2REAL_CAMERA_TOPICS["color_topic"], qos_profile_sensor_data)
        depth = helper.collect(Image, SIM2REAL_CAMERA_TOPICS["depth_topic"], 10)  # a reliable subscriber too
        info = helper.collect(CameraInfo, SIM2REAL_CAMERA_TOPICS["camera_info_topic"], qos_profile_sensor_data)
        assert helper.wait_until(lambda: len(color) >= 3 and len(depth) >= 3 and len(info) >= 3, 30.0), node.output
        # DDS of the node process is bound to the loopback only (domain ports), see test/ros_runtime.py
        well_known = [(ip, port) for ip, port in udp_sockets(node.proc.pid) if 7400 <= port < 7400 + 250 * 102]
        assert well_known and all(ip == "127.0.0.1" for ip, _ in well_known), well_known
    finally:
        helper.close()
        code, took = node.interrupt(timeout=5.0)
    assert code == 0 and took < 5.0, node.output
    assert "Traceback" not in node.output and "ExternalShutdownException" not in node.output, node.output
    recorded_colors = [c for c, _ in frames]
    for msg in color[:3]:
        assert msg.encoding == "rgb8" and msg.header.frame_id == "camera_color_optical_frame"
        assert any(np.array_equal(_image(msg), c) for c in recorded_colors)
    for msg in depth[:3]:
        assert msg.encoding == "32FC1"
        got = _image(msg)
        assert any(np.array_equal(got, d.astype(np.float32) * np.float32(scale)) for _, d in frames)
    k = np.asarray(info[0].k).reshape(3, 3)
    assert np.allclose(k, [[COLOR_K.fx, 0, COLOR_K.cx], [0, COLOR_K.fy, COLOR_K.cy], [0, 0, 1]])
    assert (info[0].width, info[0].height) == (W, H)
    # the sniffer works (it sees this session's RTPS discovery on lo) and saw none elsewhere
    assert not sniffer.available or sniffer.counts.get("lo", 0) > 0, sniffer.counts
    assert not sniffer.leaks()


def test_camera_node_rejects_a_missing_recording_with_one_line(tmp_path):
    node = NodeProcess("camera_node", {"source": "playback", "playback": str(tmp_path / "nope.db3")})
    assert node.wait(timeout=30) == 2
    assert "recording not found" in node.output and "Traceback" not in node.output, node.output


def test_camera_node_twin_source_publishes_the_calibrated_twin_camera(repo_root):
    from sensor_msgs.msg import CameraInfo, Image

    from sim2real.twin.camera import load_camera_config

    k, _, _, _ = load_camera_config(repo_root / "config" / "cameras" / "twin.yaml")
    node = NodeProcess("camera_node", {"source": "twin", "twin_task": "stack block", "publish_rate_hz": 5.0,
                                       "depth_encoding": "32FC1"}, cwd=repo_root)
    helper = RclpyHelper("twin_camera_check")
    try:
        color = helper.collect(Image, SIM2REAL_CAMERA_TOPICS["color_topic"], 10)
        depth = helper.collect(Image, SIM2REAL_CAMERA_TOPICS["depth_topic"], 10)
        info = helper.collect(CameraInfo, SIM2REAL_CAMERA_TOPICS["camera_info_topic"], 10)
        assert helper.wait_until(lambda: color and depth and info, 60.0), node.output
    finally:
        helper.close()
        code, _ = node.interrupt(timeout=10.0)
    assert code == 0 and "Traceback" not in node.output, node.output
    assert np.allclose(np.asarray(info[0].k).reshape(3, 3), k.K)
    d = _image(depth[0])
    assert d.shape == (k.height, k.width) and 0.5 < float(np.nanmedian(d[d > 0])) < 2.0  # the table, ~1 m away
    assert _image(color[0]).std() > 5  # a rendered scene, not a blank image
