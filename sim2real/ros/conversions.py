"""Pure conversions between ROS 2 messages and sim2real's arrays and dataclasses.

Every function takes the message classes through a :class:`MsgTypes` namespace instead of
importing them, so the same code builds messages for rclpy at run time
(``MsgTypes.from_rclpy()``) and for ``rosbags``' typestore in the tests
(``MsgTypes.from_typestore(get_typestore(Stores.ROS2_JAZZY))``), whose classes are generated from
the real ROS 2 message definitions and serialise to CDR. Messages are always built with every
field given as a keyword, which both libraries accept; only array fields differ (rosbags wants
numpy arrays, rclpy wants ``array.array`` for sequences) and :class:`MsgTypes` handles that.

Conventions (README "Conventions"): images RGB uint8 (H, W, 3); depth float32 metres with 0 or
NaN = no reading; ``sensor_msgs/Image`` depth as ``16UC1`` millimetres (realsense2_camera) or
``32FC1`` metres; poses (xyz metres, quaternion x, y, z, w); stamps float seconds.
"""
from __future__ import annotations

import array
import math
import sys
from typing import Iterable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from sim2real.action import N_ROTATIONS, PickPlaceAction, PixelPose
from sim2real.camera import CameraIntrinsics
from sim2real.errors import InputError
from sim2real.heightmap import HeightmapObservation
from sim2real.workspace import GENSIM_WORKSPACE, Workspace

COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
"""Colour encodings :func:`image_msg_to_rgb` decodes (publishing uses rgb8 or bgr8)."""

DEPTH_ENCODINGS = ("16UC1", "32FC1")
"""Depth encodings: 16UC1 = uint16 millimetres (0 = no reading), 32FC1 = float32 metres."""

DEPTH_MM_PER_M = 1000.0
"""realsense2_camera publishes 16UC1 depth at 1 mm per unit (ROS_DEPTH_SCALE = 0.001)."""

_MSG_NAMES = {
    "Time": "builtin_interfaces/msg/Time",
    "Header": "std_msgs/msg/Header",
    "String": "std_msgs/msg/String",
    "Image": "sensor_msgs/msg/Image",
    "CameraInfo": "sensor_msgs/msg/CameraInfo",
    "RegionOfInterest": "sensor_msgs/msg/RegionOfInterest",
    "Point": "geometry_msgs/msg/Point",
    "Quaternion": "geometry_msgs/msg/Quaternion",
    "Pose": "geometry_msgs/msg/Pose",
    "PoseStamped": "geometry_msgs/msg/PoseStamped",
    "PoseArray": "geometry_msgs/msg/PoseArray",
    "Vector3": "geometry_msgs/msg/Vector3",
    "Transform": "geometry_msgs/msg/Transform",
    "TransformStamped": "geometry_msgs/msg/TransformStamped",
}
"""Attribute of :class:`MsgTypes` -> ROS 2 message type name."""


class MsgTypes:
    """The message classes the conversions build, and how to fill their array fields.

    Attributes are the classes named in ``_MSG_NAMES`` (``types.Image``, ``types.PoseArray``...).
    ``numpy_arrays`` is True for rosbags classes (all array fields are numpy arrays) and False
    for rclpy classes (unbounded sequences are ``array.array``, fixed arrays numpy).
    """

    def __init__(self, classes: dict, numpy_arrays: bool):
        missing = sorted(set(_MSG_NAMES) - set(classes))
        if missing:
            raise InputError(f"message classes missing: {missing}")
        for name, cls in classes.items():
            setattr(self, name, cls)
        self.numpy_arrays = bool(numpy_arrays)

    @classmethod
    def from_typestore(cls, typestore) -> "MsgTypes":
        """Classes of a ``rosbags`` typestore (e.g. ``get_typestore(Stores.ROS2_JAZZY)``)."""
        return cls({attr: typestore.types[name] for attr, name in _MSG_NAMES.items()}, numpy_arrays=True)

    @classmethod
    def from_rclpy(cls) -> "MsgTypes":
        """Classes of the sourced ROS 2 installation (imports the message packages)."""
        from sim2real.ros import require_ros

        classes = {}
        for attr, name in _MSG_NAMES.items():
            package, _, msg = name.split("/")
            classes[attr] = getattr(require_ros(f"{package}.msg", "ROS message conversion"), msg)
        return cls(classes, numpy_arrays=False)

    def uint8_seq(self, buf: bytes):
        """A ``uint8[]`` field value (Image.data)."""
        if self.numpy_arrays:
            return np.frombuffer(buf, dtype=np.uint8).copy()
        return array.array("B", buf)

    def float64_seq(self, values):
        """A ``float64[]`` field value (CameraInfo.d)."""
        values = [float(v) for v in values]
        return np.asarray(values, dtype=np.float64) if self.numpy_arrays else array.array("d", values)

    def float64_fixed(self, values):
        """A ``float64[N]`` field value (CameraInfo.k, .r, .p): numpy for both libraries."""
        return np.asarray([float(v) for v in values], dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Time and header
# ---------------------------------------------------------------------------------------------

def time_msg(types: MsgTypes, seconds: float):
    """``builtin_interfaces/Time`` of ``seconds`` (>= 0), nanoseconds rounded."""
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"a ROS time must be finite and >= 0 seconds, got {seconds}")
    total_ns = int(round(seconds * 1e9))
    return types.Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def time_to_seconds(msg) -> float:
    """Seconds of a ``builtin_interfaces/Time``."""
    return float(msg.sec) + float(msg.nanosec) * 1e-9


def time_to_ns(msg) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time`` (exact)."""
    return int(msg.sec) * 1_000_000_000 + int(msg.nanosec)


def header_msg(types: MsgTypes, stamp: float, frame_id: str):
    """``std_msgs/Header``."""
    return types.Header(stamp=time_msg(types, stamp), frame_id=str(frame_id))


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

def _image_msg(types: MsgTypes, pixels: np.ndarray, encoding: str, stamp: float, frame_id: str):
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    step = pixels.strides[0]
    return types.Image(header=header_msg(types, stamp, frame_id), height=int(height), width=int(width),
                       encoding=encoding, is_bigendian=int(sys.byteorder == "big" and pixels.itemsize > 1),
                       step=int(step), data=types.uint8_seq(pixels.tobytes()))


def rgb_to_image_msg(types: MsgTypes, rgb: np.ndarray, stamp: float = 0.0, frame_id: str = "",
                     encoding: str = "rgb8"):
    """``sensor_msgs/Image`` of an RGB image.

    Args:
        rgb: (H, W, 3) uint8, channels R, G, B.
        encoding: 'rgb8' (as is) or 'bgr8' (channels reversed, OpenCV order).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    if encoding == "rgb8":
        return _image_msg(types, rgb, encoding, stamp, frame_id)
    if encoding == "bgr8":
        return _image_msg(types, rgb[..., ::-1], encoding, stamp, frame_id)
    raise InputError(f"colour images are published as 'rgb8' or 'bgr8', not {encoding!r}")


def depth_to_image_msg(types: MsgTypes, depth_m: np.ndarray, stamp: float = 0.0, frame_id: str = "",
                       encoding: str = "16UC1"):
    """``sensor_msgs/Image`` of a depth image in metres.

    Args:
        depth_m: (H, W) float metres; 0 or NaN = no reading.
        encoding: '16UC1' (uint16 millimetres, rounded; no reading and depths beyond 65.535 m
            become 0, realsense2_camera's convention) or '32FC1' (float32 metres, NaN kept).
    """
    depth = np.asarray(depth_m)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise InputError(f"expected an (H, W) float depth image in metres, got {depth.shape} {depth.dtype}")
    if encoding == "32FC1":
        return _image_msg(types, depth.astype(np.float32), encoding, stamp, frame_id)
    if encoding == "16UC1":
        mm = np.round(np.nan_to_num(depth, nan=0.0, posinf=0.0, neginf=0.0) * DEPTH_MM_PER_M)
        mm[(mm < 0) | (mm > np.iinfo(np.uint16).max)] = 0
        return _image_msg(types, mm.astype(np.uint16), encoding, stamp, frame_id)
    raise InputError(f"depth images are published as {list(DEPTH_ENCODINGS)}, not {encoding!r}")


def float_image_msg(types: MsgTypes, values: np.ndarray, stamp: float = 0.0, frame_id: str = ""):
    """``32FC1`` image of any (H, W) float map (the heightmap: metres above the table)."""
    return depth_to_image_msg(types, np.asarray(values, dtype=np.float32), stamp, frame_id, "32FC1")


_LAYOUT = {  # encoding -> (numpy dtype, channels)
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1), "32FC1": (np.float32, 1),
}


def image_msg_to_array(msg) -> np.ndarray:
    """The pixels of a ``sensor_msgs/Image`` as (H, W) or (H, W, C), honouring step and endianness."""
    encoding = str(msg.encoding)
    if encoding not in _LAYOUT:
        raise InputError(f"unsupported image encoding {encoding!r}; supported: {sorted(_LAYOUT)}")
    dtype, channels = _LAYOUT[encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise InputError(f"image step {step} is smaller than a {encoding} row of {width} px ({row_bytes} bytes)")
    buf = np.frombuffer(memoryview(msg.data).cast("B") if not isinstance(msg.data, (list, tuple))
                        else bytes(msg.data), dtype=np.uint8)
    if buf.size < step * height:
        raise InputError(f"image data has {buf.size} bytes, expected step * height = {step * height}; "
                         "the message is truncated")
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    pixels = pixels.astype(dtype.newbyteorder("="), copy=False)
    return pixels[..., 0] if channels == 1 else pixels


def image_msg_to_rgb(msg) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8 / bgr8 / rgba8 / bgra8 / mono8 image."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise InputError(f"expected a colour image ({list(COLOR_ENCODINGS)}), got encoding {msg.encoding!r}; "
                         "check the color topic parameter")
    pixels = image_msg_to_array(msg)
    if msg.encoding == "mono8":
        return np.repeat(pixels[..., None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[..., 2::-1]
    return np.ascontiguousarray(pixels[..., :3])


def image_msg_to_depth(msg) -> np.ndarray:
    """(H, W) float32 metres from a 16UC1 (mm, 0 = none) or 32FC1 (m) depth image."""
    if msg.encoding in ("16UC1", "mono16"):
        return image_msg_to_array(msg).astype(np.float32) / np.float32(DEPTH_MM_PER_M)
    if msg.encoding == "32FC1":
        return image_msg_to_array(msg).astype(np.float32)
    raise InputError(f"expected a depth image (16UC1 millimetres or 32FC1 metres), got encoding {msg.encoding!r}; "
                     "subscribe to the aligned depth topic, not a colorized one")


# ---------------------------------------------------------------------------------------------
# Camera info
# ---------------------------------------------------------------------------------------------

def intrinsics_to_camera_info(types: MsgTypes, intrinsics: CameraIntrinsics, stamp: float = 0.0,
                              frame_id: str = "", distortion: Sequence[float] = (0.0, 0.0, 0.0, 0.0, 0.0),
                              distortion_model: str = "plumb_bob"):
    """``sensor_msgs/CameraInfo`` of pinhole intrinsics (R = identity, P = [K | 0])."""
    k = intrinsics.K
    p = np.zeros((3, 4))
    p[:, :3] = k
    roi = types.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types.CameraInfo(header=header_msg(types, stamp, frame_id), height=int(intrinsics.height),
                            width=int(intrinsics.width), distortion_model=distortion_model,
                            d=types.float64_seq(distortion), k=types.float64_fixed(k.ravel()),
                            r=types.float64_fixed(np.eye(3).ravel()), p=types.float64_fixed(p.ravel()),
                            binning_x=0, binning_y=0, roi=roi)


def camera_info_to_intrinsics(msg) -> CameraIntrinsics:
    """:class:`CameraIntrinsics` from ``sensor_msgs/CameraInfo`` (its K matrix and size).

    Raises:
        InputError: an uncalibrated camera_info (K all zero), or binning / ROI that changes the
            image geometry (not supported; disable it in the camera driver).
    """
    k = np.asarray(list(msg.k), dtype=np.float64).reshape(3, 3)
    if not np.any(k):
        raise InputError("camera_info has an all-zero K (uncalibrated camera); check the camera_info topic "
                         "(realsense2_camera: .../color/camera_info)")
    if int(msg.binning_x) > 1 or int(msg.binning_y) > 1 or int(msg.roi.width) not in (0, int(msg.width)):
        raise InputError("camera_info uses binning or a region of interest; publish full-resolution images")
    return CameraIntrinsics.from_K(k, int(msg.width), int(msg.height))


# ---------------------------------------------------------------------------------------------
# Poses
# ---------------------------------------------------------------------------------------------

def _xyz_quat(xyz, quat_xyzw) -> tuple[np.ndarray, np.ndarray]:
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1)
    q = np.asarray(quat_xyzw, dtype=np.float64).reshape(-1)
    if xyz.shape != (3,) or q.shape != (4,) or not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(q))):
        raise InputError(f"a pose needs 3 finite xyz (m) and 4 finite quaternion x, y, z, w; got {xyz}, {q}")
    norm = np.linalg.norm(q)
    if norm < 1e-9:
        raise InputError("quaternion has zero norm")
    return xyz, q / norm


def pose_msg(types: MsgTypes, xyz, quat_xyzw):
    """``geometry_msgs/Pose`` from xyz (metres) and a quaternion (x, y, z, w), normalised."""
    xyz, q = _xyz_quat(xyz, quat_xyzw)
    return types.Pose(position=types.Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                      orientation=types.Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))


def pose_from_msg(msg) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (3,), quat_xyzw (4,)) float64 of a ``geometry_msgs/Pose``."""
    p, o = msg.position, msg.orientation
    return _xyz_quat((p.x, p.y, p.z), (o.x, o.y, o.z, o.w))


def pose_stamped_msg(types: MsgTypes, xyz, quat_xyzw, frame_id: str, stamp: float = 0.0):
    """``geometry_msgs/PoseStamped`` in ``frame_id``."""
    return types.PoseStamped(header=header_msg(types, stamp, frame_id), pose=pose_msg(types, xyz, quat_xyzw))


def pose_stamped_from_msg(msg) -> tuple[np.ndarray, np.ndarray, str, float]:
    """(xyz, quat_xyzw, frame_id, stamp seconds) of a ``geometry_msgs/PoseStamped``."""
    xyz, q = pose_from_msg(msg.pose)
    return xyz, q, str(msg.header.frame_id), time_to_seconds(msg.header.stamp)


def pose_array_msg(types: MsgTypes, poses: Iterable, frame_id: str, stamp: float = 0.0):
    """``geometry_msgs/PoseArray`` of (xyz, quat_xyzw) pairs in ``frame_id``."""
    return types.PoseArray(header=header_msg(types, stamp, frame_id),
                           poses=[pose_msg(types, xyz, q) for xyz, q in poses])


def pose_array_from_msg(msg) -> list[tuple[np.ndarray, np.ndarray]]:
    """List of (xyz, quat_xyzw) of a ``geometry_msgs/PoseArray``."""
    return [pose_from_msg(p) for p in msg.poses]


def action_to_pose_array(types: MsgTypes, action: PickPlaceAction, frame_id: str, stamp: float = 0.0):
    """PoseArray [pick, place] of a policy action, in the workspace's base frame ``frame_id``."""
    return pose_array_msg(types, [(action.pick.xyz, action.pick.quat_xyzw),
                                  (action.place.xyz, action.place.quat_xyzw)], frame_id, stamp)


def theta_from_quat(quat_xyzw, n_rotations: int = N_ROTATIONS) -> float:
    """Rotation theta (radians, in [0, 2pi)) of a CLIPort pose quaternion Euler(0, 0, -theta).

    Snapped to the nearest rotation bin when within 1e-6 rad of it (float round-trips).
    """
    yaw = Rotation.from_quat(np.asarray(quat_xyzw, dtype=np.float64)).as_euler("xyz")[2]
    theta = (-yaw) % (2 * np.pi)
    step = 2 * np.pi / n_rotations
    k = round(theta / step)
    if abs(theta - k * step) < 1e-6:
        theta = (k % n_rotations) * step
    return float(theta)


def pixel_pose_from_pose(xyz, quat_xyzw, workspace: Workspace = GENSIM_WORKSPACE) -> PixelPose:
    """:class:`PixelPose` of a base-frame pose: pixel from ``workspace.xyz_to_pix``, theta from the quaternion."""
    xyz, q = _xyz_quat(xyz, quat_xyzw)
    return PixelPose(workspace.xyz_to_pix(xyz), theta_from_quat(q), xyz, q)


def pose_array_to_action(msg, workspace: Workspace = GENSIM_WORKSPACE) -> PickPlaceAction:
    """The :class:`PickPlaceAction` of a [pick, place] PoseArray (logit maps are not carried)."""
    poses = pose_array_from_msg(msg)
    if len(poses) != 2:
        raise InputError(f"a pick-and-place PoseArray holds exactly 2 poses [pick, place], got {len(poses)}")
    return PickPlaceAction(pixel_pose_from_pose(*poses[0], workspace), pixel_pose_from_pose(*poses[1], workspace),
                           info={"frame_id": str(msg.header.frame_id), "stamp": time_to_seconds(msg.header.stamp)})


# ---------------------------------------------------------------------------------------------
# Transforms (TF)
# ---------------------------------------------------------------------------------------------

def transform_stamped_msg(types: MsgTypes, T_parent_child: np.ndarray, parent: str, child: str,
                          stamp: float = 0.0):
    """``geometry_msgs/TransformStamped`` parent <- child of a 4x4 rigid matrix (T_parent_child)."""
    from sim2real.transforms import RigidTransform

    t = RigidTransform.from_matrix(T_parent_child, f"T_{parent}_{child}")
    xyz, q = t.as_xyz_quat()
    return types.TransformStamped(
        header=header_msg(types, stamp, parent), child_frame_id=str(child),
        transform=types.Transform(translation=types.Vector3(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                                  rotation=types.Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                                            w=float(q[3]))))


def transform_to_matrix(msg) -> np.ndarray:
    """(4, 4) float64 T_parent_child of a ``geometry_msgs/Transform`` or ``TransformStamped``."""
    tf = getattr(msg, "transform", msg)
    xyz, q = _xyz_quat((tf.translation.x, tf.translation.y, tf.translation.z),
                       (tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w))
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(q).as_matrix()
    m[:3, 3] = xyz
    return m


# ---------------------------------------------------------------------------------------------
# Heightmap observations
# ---------------------------------------------------------------------------------------------

def heightmap_to_msgs(types: MsgTypes, obs: HeightmapObservation, frame_id: str):
    """(heightmap 32FC1 metres above the table, colormap rgb8) Images with the observation's stamp."""
    return (float_image_msg(types, obs.height, obs.stamp, frame_id),
            rgb_to_image_msg(types, obs.color, obs.stamp, frame_id, "rgb8"))


def heightmap_from_msgs(height_msg, color_msg, workspace: Workspace = GENSIM_WORKSPACE) -> HeightmapObservation:
    """:class:`HeightmapObservation` from the heightmap (32FC1) and colormap (rgb8) Images."""
    height = image_msg_to_array(height_msg) if height_msg.encoding == "32FC1" else None
    if height is None:
        raise InputError(f"the heightmap image must be 32FC1 metres, got {height_msg.encoding!r}")
    color = image_msg_to_rgb(color_msg)
    stamp = max(time_to_seconds(height_msg.header.stamp), time_to_seconds(color_msg.header.stamp))
    return HeightmapObservation(color, height.astype(np.float32), workspace, stamp)


# ---------------------------------------------------------------------------------------------
# RGB-D frames
# ---------------------------------------------------------------------------------------------

def rgbd_frame_from_msgs(color_msg, depth_msg, info_msg, T_base_camera=None):
    """:class:`sim2real.camera.RGBDFrame` from synchronised color / aligned depth / camera_info.

    The stamp is the color image's; depth must be aligned to color (same size as camera_info).
    """
    from sim2real.camera import RGBDFrame

    color = image_msg_to_rgb(color_msg)
    depth = image_msg_to_depth(depth_msg)
    intrinsics = camera_info_to_intrinsics(info_msg)
    if depth.shape != color.shape[:2]:
        raise InputError(f"depth {depth.shape[::-1]} and color {color.shape[1::-1]} sizes differ; subscribe to the "
                         "depth aligned to color (realsense2_camera: align_depth.enable:=true, "
                         ".../aligned_depth_to_color/image_raw)")
    return RGBDFrame(color, depth, intrinsics, frame_id=str(color_msg.header.frame_id),
                     stamp=time_to_seconds(color_msg.header.stamp), T_base_camera=T_base_camera)


def rgbd_frame_to_msgs(types: MsgTypes, frame, depth_encoding: str = "16UC1", frame_id: str = ""):
    """(color rgb8, depth, camera_info) messages of an RGBDFrame, all with its stamp and frame."""
    fid = frame_id or frame.frame_id
    return (rgb_to_image_msg(types, frame.color, frame.stamp, fid, "rgb8"),
            depth_to_image_msg(types, np.asarray(frame.depth, dtype=np.float32), frame.stamp, fid, depth_encoding),
            intrinsics_to_camera_info(types, frame.intrinsics, frame.stamp, fid))
