"""Message conversions round-trip through rosbags' typestore: the real ROS 2 message definitions of
Humble and Jazzy, serialised to CDR and back, exactly as they travel between nodes."""
import array
import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim2real.action import PickPlaceAction, PixelPose, quat_xyzw_from_theta, theta_from_bin
from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.errors import InputError
from sim2real.heightmap import HeightmapObservation
from sim2real.ros import conversions as cv
from sim2real.workspace import GENSIM_WORKSPACE

rosbags = pytest.importorskip("rosbags")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

STORES = [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY]


@pytest.fixture(params=STORES, ids=["humble", "jazzy"])
def store(request):
    ts = get_typestore(request.param)
    return ts, cv.MsgTypes.from_typestore(ts)


def cdr(ts, msg):
    """Serialise to CDR bytes and back (what DDS does between two nodes)."""
    raw = ts.serialize_cdr(msg, msg.__msgtype__)
    assert isinstance(raw, (bytes, bytearray, memoryview)) and len(raw) > 0
    return ts.deserialize_cdr(raw, msg.__msgtype__)


def rng_image(shape, seed=0, dtype=np.uint8):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=dtype)


# ----------------------------------------------------------------------------------------------- images

@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_color_image_round_trip(store, encoding):
    ts, types = store
    rgb = rng_image((48, 64, 3))
    msg = cdr(ts, cv.rgb_to_image_msg(types, rgb, stamp=12.5, frame_id="cam_optical", encoding=encoding))
    assert msg.encoding == encoding and (msg.height, msg.width, msg.step) == (48, 64, 64 * 3)
    assert msg.header.frame_id == "cam_optical" and cv.time_to_seconds(msg.header.stamp) == pytest.approx(12.5)
    np.testing.assert_array_equal(cv.image_msg_to_rgb(msg), rgb)


def test_bgr8_bytes_are_in_opencv_order(store):
    ts, types = store
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # pure red
    msg = cdr(ts, cv.rgb_to_image_msg(types, rgb, encoding="bgr8"))
    assert list(np.asarray(msg.data)[:3]) == [0, 0, 200]


def test_depth_16uc1_is_millimetres(store):
    ts, types = store
    depth = np.array([[0.0, 0.8004, np.nan], [1.2346, 65.535, 70.0]], np.float32)
    msg = cdr(ts, cv.depth_to_image_msg(types, depth, 3.0, "cam", "16UC1"))
    assert msg.encoding == "16UC1" and msg.step == 2 * 3
    raw = cv.image_msg_to_array(msg)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, [[0, 800, 0], [1235, 65535, 0]])
    back = cv.image_msg_to_depth(msg)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, [[0, 0.8, 0], [1.235, 65.535, 0]], atol=1e-6)


def test_depth_32fc1_is_metres_and_keeps_nan(store):
    ts, types = store
    depth = np.random.default_rng(1).uniform(0.2, 2.0, (30, 40)).astype(np.float32)
    depth[3, 4] = np.nan
    depth[5, 6] = 0.0
    msg = cdr(ts, cv.depth_to_image_msg(types, depth, 1.0, "cam", "32FC1"))
    back = cv.image_msg_to_depth(msg)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(depth))
    np.testing.assert_array_equal(back[~np.isnan(back)], depth[~np.isnan(depth)])


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_depth_16uc1_round_trip_within_half_a_millimetre(h, w, seed):
    ts = get_typestore(Stores.ROS2_JAZZY)
    types = cv.MsgTypes.from_typestore(ts)
    depth = np.random.default_rng(seed).uniform(0.0, 10.0, (h, w)).astype(np.float32)
    back = cv.image_msg_to_depth(cdr(ts, cv.depth_to_image_msg(types, depth, 0.0, "c", "16UC1")))
    assert np.abs(back - depth).max() <= 0.0005 + 1e-6


def test_image_with_row_padding_and_big_endian_is_decoded(store):
    ts, types = store
    values = np.arange(6, dtype=np.uint16).reshape(2, 3) * 1000
    rows = [values[r].astype(">u2").tobytes() + b"\xff\xff" for r in range(2)]  # 2 bytes padding per row
    msg = types.Image(header=cv.header_msg(types, 0.0, "c"), height=2, width=3, encoding="16UC1", is_bigendian=1,
                      step=8, data=np.frombuffer(b"".join(rows), np.uint8).copy())
    np.testing.assert_array_equal(cv.image_msg_to_array(cdr(ts, msg)), values)


def test_truncated_or_unknown_images_are_rejected(store):
    ts, types = store
    msg = cv.rgb_to_image_msg(types, rng_image((4, 4, 3)))
    short = types.Image(header=msg.header, height=4, width=4, encoding="rgb8", is_bigendian=0, step=12,
                        data=np.asarray(msg.data)[:20].copy())
    with pytest.raises(InputError, match="truncated"):
        cv.image_msg_to_rgb(short)
    odd = types.Image(header=msg.header, height=4, width=4, encoding="yuv422", is_bigendian=0, step=8,
                      data=np.zeros(32, np.uint8))
    with pytest.raises(InputError, match="unsupported image encoding"):
        cv.image_msg_to_array(odd)
    with pytest.raises(InputError, match="depth image"):
        cv.image_msg_to_depth(msg)
    depth = cv.depth_to_image_msg(types, np.ones((2, 2), np.float32))
    with pytest.raises(InputError, match="colour image"):
        cv.image_msg_to_rgb(depth)
    with pytest.raises(InputError):
        cv.rgb_to_image_msg(types, rng_image((4, 4, 3)), encoding="mono8")
    with pytest.raises(InputError):
        cv.depth_to_image_msg(types, np.ones((2, 2), np.float32), encoding="16UC3")


# ----------------------------------------------------------------------------------------------- camera info

def test_camera_info_round_trip(store):
    ts, types = store
    intr = CameraIntrinsics(640, 480, 612.41, 610.65, 314.25, 237.78)
    msg = cdr(ts, cv.intrinsics_to_camera_info(types, intr, 4.25, "camera_color_optical_frame"))
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    np.testing.assert_allclose(np.asarray(msg.p).reshape(3, 4)[:, :3], intr.K)
    np.testing.assert_allclose(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    assert cv.camera_info_to_intrinsics(msg) == intr


def test_uncalibrated_or_binned_camera_info_is_rejected(store):
    ts, types = store
    msg = cv.intrinsics_to_camera_info(types, CameraIntrinsics(64, 48, 50.0, 50.0, 32.0, 24.0))
    zero = types.CameraInfo(header=msg.header, height=48, width=64, distortion_model="", d=np.zeros(0),
                            k=np.zeros(9), r=msg.r, p=msg.p, binning_x=0, binning_y=0, roi=msg.roi)
    with pytest.raises(InputError, match="uncalibrated"):
        cv.camera_info_to_intrinsics(cdr(ts, zero))
    binned = types.CameraInfo(header=msg.header, height=48, width=64, distortion_model="", d=np.zeros(0),
                              k=msg.k, r=msg.r, p=msg.p, binning_x=2, binning_y=2, roi=msg.roi)
    with pytest.raises(InputError, match="binning"):
        cv.camera_info_to_intrinsics(binned)


def test_rgbd_frame_round_trip(store):
    ts, types = store
    intr = CameraIntrinsics(40, 30, 35.0, 36.0, 20.0, 15.0)
    depth = np.random.default_rng(2).uniform(0.3, 1.5, (30, 40)).astype(np.float32)
    frame = RGBDFrame(rng_image((30, 40, 3)), depth, intr, "cam_opt", 7.25)
    for encoding, tol in (("16UC1", 5e-4 + 1e-6), ("32FC1", 0.0)):
        color, dmsg, info = (cdr(ts, m) for m in cv.rgbd_frame_to_msgs(types, frame, encoding))
        back = cv.rgbd_frame_from_msgs(color, dmsg, info, T_base_camera=np.eye(4))
        np.testing.assert_array_equal(back.color, frame.color)
        assert np.abs(back.depth - depth).max() <= tol
        assert back.intrinsics == intr and back.frame_id == "cam_opt" and back.stamp == pytest.approx(7.25)
        np.testing.assert_array_equal(back.T_base_camera, np.eye(4))


def test_rgbd_frame_needs_aligned_depth(store):
    ts, types = store
    intr = CameraIntrinsics(40, 30, 35.0, 36.0, 20.0, 15.0)
    color = cv.rgb_to_image_msg(types, rng_image((30, 40, 3)))
    depth = cv.depth_to_image_msg(types, np.ones((20, 20), np.float32))
    with pytest.raises(InputError, match="aligned"):
        cv.rgbd_frame_from_msgs(color, depth, cv.intrinsics_to_camera_info(types, intr))


# ----------------------------------------------------------------------------------------------- poses

def test_pose_stamped_round_trip(store):
    ts, types = store
    q = np.array([0.1, -0.2, 0.3, 0.9])
    msg = cdr(ts, cv.pose_stamped_msg(types, [0.5, -0.1, 0.02], q, "base_link", 99.000000001))
    xyz, quat, frame, stamp = cv.pose_stamped_from_msg(msg)
    np.testing.assert_allclose(xyz, [0.5, -0.1, 0.02])
    np.testing.assert_allclose(quat, q / np.linalg.norm(q))
    assert frame == "base_link" and cv.time_to_ns(msg.header.stamp) == 99_000_000_001


def test_pose_array_round_trip(store):
    ts, types = store
    poses = [(np.array([0.3, 0.1, 0.05]), quat_xyzw_from_theta(theta_from_bin(k))) for k in (0, 5, 17, 35)]
    back = cv.pose_array_from_msg(cdr(ts, cv.pose_array_msg(types, poses, "link_base", 1.0)))
    assert len(back) == 4
    for (x0, q0), (x1, q1) in zip(poses, back):
        np.testing.assert_allclose(x1, x0)
        np.testing.assert_allclose(q1, q0, atol=1e-12)


def test_pick_place_action_round_trip_recovers_pixels_and_rotation_bins(store):
    ts, types = store
    height = np.zeros(GENSIM_WORKSPACE.shape, np.float32)
    height[100, 40] = 0.04
    for k_pick, k_place in ((0, 0), (3, 20), (35, 18)):
        pick = PixelPose.from_pixel((100, 40), theta_from_bin(k_pick), height, GENSIM_WORKSPACE)
        place = PixelPose.from_pixel((250, 120), theta_from_bin(k_place), height, GENSIM_WORKSPACE)
        msg = cdr(ts, cv.action_to_pose_array(types, PickPlaceAction(pick, place), "base_link", 5.0))
        action = cv.pose_array_to_action(msg, GENSIM_WORKSPACE)
        assert action.pick.pixel == (100, 40) and action.place.pixel == (250, 120)
        assert action.pick.theta == theta_from_bin(k_pick) and action.place.theta == theta_from_bin(k_place)
        np.testing.assert_allclose(action.pick.xyz, pick.xyz)
        assert action.info["frame_id"] == "base_link"


def test_pose_array_with_wrong_length_is_rejected(store):
    ts, types = store
    msg = cv.pose_array_msg(types, [([0.5, 0, 0], [0, 0, 0, 1])], "base_link")
    with pytest.raises(InputError, match="exactly 2"):
        cv.pose_array_to_action(cdr(ts, msg))


def test_bad_poses_are_rejected(store):
    _, types = store
    with pytest.raises(InputError):
        cv.pose_msg(types, [0, 0], [0, 0, 0, 1])
    with pytest.raises(InputError, match="zero norm"):
        cv.pose_msg(types, [0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(InputError):
        cv.pose_msg(types, [0, np.nan, 0], [0, 0, 0, 1])
    with pytest.raises(InputError):
        cv.time_msg(types, -1.0)


def test_transform_stamped_round_trip(store):
    ts, types = store
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [2.5, -0.3, 1.0]).as_matrix()
    T[:3, 3] = [0.4, -0.2, 0.9]
    msg = cdr(ts, cv.transform_stamped_msg(types, T, "base_link", "camera_color_optical_frame", 2.0))
    assert msg.header.frame_id == "base_link" and msg.child_frame_id == "camera_color_optical_frame"
    np.testing.assert_allclose(cv.transform_to_matrix(msg), T, atol=1e-12)


def test_heightmap_messages_round_trip(store):
    ts, types = store
    rows, cols = GENSIM_WORKSPACE.shape
    rng = np.random.default_rng(3)
    obs = HeightmapObservation(rng_image((rows, cols, 3)), rng.uniform(0, 0.2, (rows, cols)).astype(np.float32),
                               GENSIM_WORKSPACE, 321.5)
    height_msg, color_msg = (cdr(ts, m) for m in cv.heightmap_to_msgs(types, obs, "base_link"))
    assert height_msg.encoding == "32FC1" and color_msg.encoding == "rgb8"
    back = cv.heightmap_from_msgs(height_msg, color_msg, GENSIM_WORKSPACE)
    np.testing.assert_array_equal(back.height, obs.height)
    np.testing.assert_array_equal(back.color, obs.color)
    assert back.stamp == pytest.approx(321.5)


def test_time_conversion_is_exact_in_nanoseconds(store):
    _, types = store
    t = cv.time_msg(types, 1_700_000_000.123456789)
    assert t.sec == 1_700_000_000 and abs(t.nanosec - 123_456_789) <= 256  # float64 resolution at 1.7e9 s
    assert cv.time_to_ns(types.Time(sec=3, nanosec=5)) == 3_000_000_005


# ----------------------------------------------------------------------------------------------- rclpy flavour

def test_rclpy_flavour_fills_array_fields_the_way_rclpy_accepts():
    """rclpy wants array.array for unbounded sequences (uint8[] data, float64[] d) and numpy for fixed arrays."""
    names = {name: (lambda **kw: SimpleNamespace(**kw)) for name in cv._MSG_NAMES}
    types = cv.MsgTypes(names, numpy_arrays=False)
    msg = cv.rgb_to_image_msg(types, rng_image((3, 4, 3)))
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    np.testing.assert_array_equal(cv.image_msg_to_rgb(msg), rng_image((3, 4, 3)))
    info = cv.intrinsics_to_camera_info(types, CameraIntrinsics(4, 3, 5.0, 5.0, 2.0, 1.5))
    assert isinstance(info.d, array.array) and info.d.typecode == "d"
    assert isinstance(info.k, np.ndarray) and info.k.dtype == np.float64 and info.k.shape == (9,)
    assert cv.camera_info_to_intrinsics(info) == CameraIntrinsics(4, 3, 5.0, 5.0, 2.0, 1.5)


def test_missing_message_classes_are_named():
    with pytest.raises(InputError, match="PoseArray"):
        cv.MsgTypes({k: object for k in cv._MSG_NAMES if k != "PoseArray"}, numpy_arrays=True)


def test_from_rclpy_without_ros_names_what_to_install():
    from sim2real.ros import RosNotAvailableError

    class Block:  # hide an installed ROS 2 (PyPI wheels or a sourced one) from this import
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "builtin_interfaces"):
                raise ImportError(f"No module named {name!r}")

    import sys

    saved = {k: v for k, v in sys.modules.items()
             if k.split(".")[0] in ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "builtin_interfaces")}
    for k in saved:
        del sys.modules[k]
    sys.meta_path.insert(0, Block())
    try:
        with pytest.raises(RosNotAvailableError, match="source /opt/ros"):
            cv.MsgTypes.from_rclpy()
    finally:
        sys.meta_path.pop(0)
        sys.modules.update(saved)
