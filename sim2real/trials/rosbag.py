"""One rosbag2 (mcap storage) per trial, written with the ``rosbags`` library (no ROS install).

The bag replays a trial in ``ros2 bag play`` or Foxglove. Topics (camera ``i`` > 0 gets
``/camera_<i>/...``):

====================================================  ==============================  =================
topic                                                 type                            per
====================================================  ==============================  =================
/camera/color/image_raw                               sensor_msgs/Image rgb8          step, camera
/camera/aligned_depth_to_color/image_raw              sensor_msgs/Image 32FC1 (m)     step, camera
/camera/color/camera_info                             sensor_msgs/CameraInfo          step, camera
/sim2real/heightmap/color                             sensor_msgs/Image rgb8          step
/sim2real/heightmap/height                            sensor_msgs/Image 32FC1 (m)     step
/sim2real/action                                      geometry_msgs/PoseArray         step [pick, place]
/sim2real/pick_pose, /sim2real/place_pose             geometry_msgs/PoseStamped       step
/sim2real/executed                                    geometry_msgs/PoseArray         step (if executed)
/sim2real/goal                                        std_msgs/String                 step
/sim2real/step                                        std_msgs/String (JSON)          step: safety, timings, error
/sim2real/label                                       std_msgs/String (JSON)          trial (at the end)
====================================================  ==============================  =================

``rosbags`` 0.11.9 is pinned; its ``Writer`` needs an explicit bag ``version`` (8 or 9). Native
Humble writes metadata version 5; whether Humble's ``ros2 bag`` accepts 8 is untested here (no
ROS on the build machine); Foxglove reads the ``.mcap`` file directly either way.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Optional

import numpy as np

from sim2real.errors import InputError

BAG_VERSION = 8
"""rosbag2 metadata version written (rosbags supports 8 and 9)."""

DEFAULT_BASE_FRAME = "base_link"
HEIGHTMAP_FRAME = "sim2real_workspace"


def _typestore(distro: str):
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise InputError(f"rosbag distro must be one of {sorted(stores)}, got {distro!r}")
    return get_typestore(stores[distro])


def _iso_to_ns(text: Optional[str], fallback_ns: int) -> int:
    if not text:
        return fallback_ns
    try:
        return int(_dt.datetime.fromisoformat(text).timestamp() * 1e9)
    except ValueError:
        return fallback_ns


class _Msgs:
    """Message constructors bound to one typestore."""

    def __init__(self, ts):
        self.ts = ts
        t = ts.types
        self.Image, self.CameraInfo = t["sensor_msgs/msg/Image"], t["sensor_msgs/msg/CameraInfo"]
        self.ROI, self.Header, self.Time = (t["sensor_msgs/msg/RegionOfInterest"], t["std_msgs/msg/Header"],
                                            t["builtin_interfaces/msg/Time"])
        self.Pose, self.PoseArray, self.PoseStamped = (t["geometry_msgs/msg/Pose"], t["geometry_msgs/msg/PoseArray"],
                                                       t["geometry_msgs/msg/PoseStamped"])
        self.Point, self.Quaternion = t["geometry_msgs/msg/Point"], t["geometry_msgs/msg/Quaternion"]
        self.String = t["std_msgs/msg/String"]

    def header(self, t_ns: int, frame_id: str):
        return self.Header(stamp=self.Time(sec=int(t_ns // 10**9), nanosec=int(t_ns % 10**9)), frame_id=frame_id)

    def image(self, array: np.ndarray, t_ns: int, frame_id: str):
        array = np.ascontiguousarray(array)
        if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
            encoding, step = "rgb8", array.shape[1] * 3
        elif array.ndim == 2 and array.dtype == np.float32:
            encoding, step = "32FC1", array.shape[1] * 4
        else:
            raise InputError(f"cannot store a {array.shape} {array.dtype} image; use (H, W, 3) uint8 or (H, W) float32")
        data = np.frombuffer(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(), dtype=np.uint8)
        return self.Image(header=self.header(t_ns, frame_id), height=array.shape[0], width=array.shape[1],
                          encoding=encoding, is_bigendian=0, step=step, data=data)

    def camera_info(self, intr: dict, t_ns: int, frame_id: str):
        fx, fy, cx, cy = (float(intr[k]) for k in ("fx", "fy", "cx", "cy"))
        return self.CameraInfo(
            header=self.header(t_ns, frame_id), height=int(intr["height"]), width=int(intr["width"]),
            distortion_model="plumb_bob", d=np.zeros(5), k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1.0]),
            r=np.eye(3).ravel(), p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1.0, 0]), binning_x=0, binning_y=0,
            roi=self.ROI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))

    def pose(self, d: dict):
        x, y, z = (float(v) for v in d["xyz"])
        qx, qy, qz, qw = (float(v) for v in d["quat_xyzw"])
        return self.Pose(position=self.Point(x=x, y=y, z=z), orientation=self.Quaternion(x=qx, y=qy, z=qz, w=qw))

    def string(self, text: str):
        return self.String(data=text)


class _BagWriter:
    def __init__(self, writer, msgs: _Msgs):
        self.writer, self.msgs, self.conns = writer, msgs, {}

    def write(self, topic: str, msg, t_ns: int) -> None:
        msgtype = msg.__msgtype__
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.msgs.ts)
        self.writer.write(self.conns[topic], int(t_ns), self.msgs.ts.serialize_cdr(msg, msgtype))


def _calibrated_base_frame(record: dict) -> Optional[str]:
    """The robot base frame named by the calibration recorded in the trial's provenance, if any."""
    cal = ((record.get("provenance") or {}).get("calibration") or {}).get("content") or {}
    frames = cal.get("frames") if isinstance(cal, dict) else None
    return frames.get("base") if isinstance(frames, dict) else None


def _camera_prefix(i: int) -> str:
    return "/camera" if i == 0 else f"/camera_{i}"


def write_trial_bag(trial_dir, record: dict, bag_path, *, distro: str = "humble",
                    base_frame: Optional[str] = None) -> Path:
    """Write the rosbag2 (mcap) of one trial from its recorded steps.

    Args:
        trial_dir: artefact directory holding step_NNN.{json,npz} (see sim2real.trials.log).
        record: the trial record (label, task, goal, ...).
        bag_path: directory to create (must not exist; rosbags refuses to overwrite).
        distro: message definitions to use: ``humble`` or ``jazzy``.
        base_frame: frame id of the poses (default: record['base_frame'], else the base frame of
            the calibration in the record's provenance, else ``base_link``).

    Returns:
        ``bag_path``.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from sim2real.trials.log import load_steps

    bag_path = Path(bag_path)
    if bag_path.exists():
        raise InputError(f"{bag_path} already exists; rosbag2 bags are never overwritten, remove it first")
    msgs = _Msgs(_typestore(distro))
    base = base_frame or record.get("base_frame") or _calibrated_base_frame(record) or DEFAULT_BASE_FRAME
    steps = load_steps(trial_dir)
    t_end = 0
    with Writer(bag_path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP) as writer:
        bag = _BagWriter(writer, msgs)
        for step in steps:
            t = _iso_to_ns(step.meta.get("t"), t_end + 1)
            t_end = max(t_end, t)
            _write_step(bag, msgs, step, t, base)
        label = {"task": record.get("task"), "trial": record.get("trial"), "success": record.get("success"),
                 "reason": record.get("reason"), "label": record.get("label")}
        t_label = max(t_end + 1, _iso_to_ns(record.get("finished"), 0))  # the label comes last
        bag.write("/sim2real/label", msgs.string(json.dumps(label)), t_label)
    return bag_path


def _write_step(bag: _BagWriter, msgs: _Msgs, step, t: int, base: str) -> None:
    a = step.arrays
    for i, fm in enumerate(step.meta.get("frames", [])):
        prefix, frame_id = _camera_prefix(i), fm.get("frame_id", "camera_color_optical_frame")
        bag.write(f"{prefix}/color/image_raw", msgs.image(a[f"frame{i}_color"], t, frame_id), t)
        bag.write(f"{prefix}/aligned_depth_to_color/image_raw",
                  msgs.image(a[f"frame{i}_depth"].astype(np.float32), t, frame_id), t)
        bag.write(f"{prefix}/color/camera_info", msgs.camera_info(fm["intrinsics"], t, frame_id), t)
    if "hm_color" in a:
        bag.write("/sim2real/heightmap/color", msgs.image(a["hm_color"], t, HEIGHTMAP_FRAME), t)
        bag.write("/sim2real/heightmap/height", msgs.image(a["hm_height"].astype(np.float32), t, HEIGHTMAP_FRAME), t)
    action = step.meta.get("action")
    if action:
        pick, place = msgs.pose(action["pick"]), msgs.pose(action["place"])
        bag.write("/sim2real/action", msgs.PoseArray(header=msgs.header(t, base), poses=[pick, place]), t)
        bag.write("/sim2real/pick_pose", msgs.PoseStamped(header=msgs.header(t, base), pose=pick), t)
        bag.write("/sim2real/place_pose", msgs.PoseStamped(header=msgs.header(t, base), pose=place), t)
    executed = step.meta.get("executed") or {}
    poses = [msgs.pose(executed[k]) for k in ("pick", "place") if isinstance(executed.get(k), dict)
             and "xyz" in executed[k] and "quat_xyzw" in executed[k]]
    if poses:
        bag.write("/sim2real/executed", msgs.PoseArray(header=msgs.header(t, base), poses=poses), t)
    if step.meta.get("goal") is not None:
        bag.write("/sim2real/goal", msgs.string(str(step.meta["goal"])), t)
    info = {k: step.meta.get(k) for k in ("index", "safety", "timings", "error")}
    bag.write("/sim2real/step", msgs.string(json.dumps(info)), t)


def read_bag(bag_path, *, distro: str = "humble") -> dict:
    """Read a bag back: {topic: [(t_ns, msgtype, deserialised message), ...]} in time order."""
    from rosbags.rosbag2 import Reader

    ts = _typestore(distro)
    out: dict = {}
    with Reader(bag_path) as reader:
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, conn.msgtype, ts.deserialize_cdr(raw, conn.msgtype)))
    return out


def image_to_array(msg) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or 32FC1) -> numpy (H, W, 3) uint8 or (H, W) float32."""
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.encoding == "rgb8":
        return data.reshape(msg.height, msg.width, 3)
    if msg.encoding == "32FC1":
        return data.view("<f4").reshape(msg.height, msg.width)
    raise InputError(f"unsupported image encoding {msg.encoding!r}")
