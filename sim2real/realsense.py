"""Intel RealSense capture (pyrealsense2): live camera, recorded-file playback, software device.

The live camera and the playback are camera ports (``read(timeout_s) -> RGBDFrame``, ``close()``);
the software device takes frames pushed in (``push``) and returns what librealsense makes of
them. All three share one frame converter, so a recording replays exactly like the live camera:

    frameset --(optional spatial / temporal / hole-filling filters on depth)--> align depth to
    colour (skipped when depth is already registered to colour) --> RGBDFrame(color RGB uint8,
    depth float32 metres = z16 * depth_scale, colour intrinsics, device + host timestamps)

Live camera (:class:`RealSenseCamera`): device chosen by serial, stream profiles from
``config/cameras/realsense.yaml``, depth scale and intrinsics read from the device, warm-up frames,
every wait bounded by a timeout, and after a USB drop a bounded reconnect that ends in a clear
:class:`~sim2real.errors.HardwareError` (never blocks forever). Recording: pyrealsense2 >= 2.58
writes ``.db3`` (rosbag2 sqlite3) files; :class:`PlaybackCamera` reads them back.

pyrealsense2 is imported through :func:`sim2real.compat.import_pyrealsense2`, which preloads pip's
libusb when the system has none.
"""
from __future__ import annotations

import atexit
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sim2real.camera import CameraIntrinsics, RGBDFrame
from sim2real.config import config_dir, from_mapping, load_yaml
from sim2real.errors import ConfigError, HardwareError, InputError

DEFAULT_CONFIG = "realsense.yaml"


def rs_module():
    """``pyrealsense2`` with the libusb preload; HardwareError naming the install command if missing."""
    from sim2real.compat import import_pyrealsense2

    try:
        return import_pyrealsense2()
    except ImportError as e:
        raise HardwareError(str(e)) from None


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamProfile:
    """One stream: size in pixels and frame rate."""

    width: int = 640
    height: int = 480
    fps: int = 30

    def validate(self, where: str = "profile") -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ConfigError(f"{where}: width, height and fps must be positive, got {self}")


@dataclass(frozen=True)
class FilterConfig:
    """librealsense post-processing filters on depth (applied before alignment, Intel's order).

    Defaults are librealsense's own defaults; see rs-post-processing.
    """

    spatial: bool = False
    spatial_magnitude: int = 2
    spatial_alpha: float = 0.5
    spatial_delta: int = 20
    temporal: bool = False
    temporal_alpha: float = 0.4
    temporal_delta: int = 20
    hole_filling: bool = False
    hole_filling_mode: int = 1          # 0 fill from left, 1 farthest from around, 2 nearest from around

    def validate(self, where: str = "filters") -> None:
        if not 0 < self.spatial_alpha <= 1 or not 0 < self.temporal_alpha <= 1:
            raise ConfigError(f"{where}: spatial_alpha / temporal_alpha must be in (0, 1]")
        if self.hole_filling_mode not in (0, 1, 2):
            raise ConfigError(f"{where}: hole_filling_mode must be 0, 1 or 2, got {self.hole_filling_mode}")


@dataclass(frozen=True)
class RealSenseConfig:
    """``config/cameras/realsense.yaml``.

    Attributes:
        serial: device serial number ('' = the only connected device).
        color, depth: stream profiles (default 640x480 at 30 fps).
        warmup_frames: frames dropped after start (auto-exposure settles).
        timeout_s: longest wait for one frameset.
        connect_attempts: start attempts (a USB hardware reset before the last one).
        reconnect_attempts, reconnect_wait_s: after a frame timeout / USB drop.
        filters: optional depth post-processing.
        frame_id: TF name of the colour optical frame.
    """

    serial: str = ""
    color: StreamProfile = field(default_factory=StreamProfile)
    depth: StreamProfile = field(default_factory=StreamProfile)
    warmup_frames: int = 30
    timeout_s: float = 5.0
    connect_attempts: int = 3
    reconnect_attempts: int = 3
    reconnect_wait_s: float = 2.0
    filters: FilterConfig = field(default_factory=FilterConfig)
    frame_id: str = "camera_color_optical_frame"

    def validate(self, where: str = "realsense") -> None:
        self.color.validate(f"{where}.color")
        self.depth.validate(f"{where}.depth")
        self.filters.validate(f"{where}.filters")
        if self.warmup_frames < 0 or self.timeout_s <= 0 or self.connect_attempts < 1 or self.reconnect_attempts < 0:
            raise ConfigError(f"{where}: need warmup_frames >= 0, timeout_s > 0, connect_attempts >= 1, "
                              "reconnect_attempts >= 0")


def load_realsense_config(path=None, **overrides) -> RealSenseConfig:
    """Load ``config/cameras/realsense.yaml`` (or ``path``); ``overrides`` replace top-level keys."""
    path = Path(path) if path is not None else config_dir() / "cameras" / DEFAULT_CONFIG
    data = load_yaml(path) if path.is_file() else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(RealSenseConfig, data, str(path))


# ----------------------------------------------------------------------------------------------
# Frame conversion (shared by live, playback and software device)
# ----------------------------------------------------------------------------------------------

def intrinsics_from_rs(intr) -> CameraIntrinsics:
    return CameraIntrinsics(int(intr.width), int(intr.height), float(intr.fx), float(intr.fy),
                            float(intr.ppx), float(intr.ppy))


def _registered(depth_profile, color_profile) -> bool:
    """True when depth pixels already coincide with colour pixels (same intrinsics, identity extrinsics)."""
    di = depth_profile.as_video_stream_profile().get_intrinsics()
    ci = color_profile.as_video_stream_profile().get_intrinsics()
    same = (di.width, di.height, di.fx, di.fy, di.ppx, di.ppy) == (ci.width, ci.height, ci.fx, ci.fy, ci.ppx, ci.ppy)
    if not same:
        return False
    try:
        ext = depth_profile.get_extrinsics_to(color_profile)
    except RuntimeError:
        return False
    return np.allclose(ext.rotation, np.eye(3).ravel()) and np.allclose(ext.translation, 0.0)


class FrameConverter:
    """frameset -> RGBDFrame: filters, depth-to-colour alignment, metres, intrinsics, timestamps."""

    def __init__(self, rs, depth_scale: float, filters: FilterConfig = FilterConfig(), frame_id: str = "",
                 T_base_camera=None):
        self.rs = rs
        self.depth_scale = np.float32(depth_scale)
        self.align = rs.align(rs.stream.color)
        self.filters = _make_filters(rs, filters)
        self.frame_id = frame_id or "camera_color_optical_frame"
        self.T_base_camera = None if T_base_camera is None else np.asarray(T_base_camera, np.float64)
        self._skip_align: Optional[bool] = None
        self.last_raw_depth: Optional[np.ndarray] = None   # z16 of the last frame, for recorders/tests
        self.last_frame_number: int = -1

    def __call__(self, frameset) -> Optional[RGBDFrame]:
        """None when the frameset lacks depth or colour (e.g. the first frames of a syncer)."""
        host = time.time()
        depth, color = frameset.get_depth_frame(), frameset.get_color_frame()
        if not depth or not color:
            return None
        for f in self.filters:
            frameset = f.process(frameset).as_frameset()
        if self._skip_align is None:
            self._skip_align = _registered(depth.get_profile(), color.get_profile())
        if not self._skip_align:
            frameset = self.align.process(frameset)
        depth, color = frameset.get_depth_frame(), frameset.get_color_frame()
        if not depth or not color:
            return None
        z16 = np.asanyarray(depth.get_data()).copy()
        rgb = np.asanyarray(color.get_data()).copy()
        fmt = color.get_profile().format()
        if fmt == self.rs.format.bgr8:
            rgb = rgb[:, :, ::-1].copy()
        elif fmt != self.rs.format.rgb8:
            raise HardwareError(f"colour format {fmt} is not supported; configure rgb8 (or bgr8)")
        self.last_raw_depth = z16
        self.last_frame_number = int(depth.get_frame_number())
        intr = intrinsics_from_rs(color.get_profile().as_video_stream_profile().get_intrinsics())
        metres = z16.astype(np.float32) * self.depth_scale
        return RGBDFrame(rgb, metres, intr, frame_id=self.frame_id, stamp=float(frameset.get_timestamp()) / 1000.0,
                         T_base_camera=self.T_base_camera, host_stamp=host)


def _make_filters(rs, cfg: FilterConfig) -> list:
    out = []
    if cfg.spatial:
        f = rs.spatial_filter()
        f.set_option(rs.option.filter_magnitude, cfg.spatial_magnitude)
        f.set_option(rs.option.filter_smooth_alpha, cfg.spatial_alpha)
        f.set_option(rs.option.filter_smooth_delta, cfg.spatial_delta)
        out.append(f)
    if cfg.temporal:
        f = rs.temporal_filter()
        f.set_option(rs.option.filter_smooth_alpha, cfg.temporal_alpha)
        f.set_option(rs.option.filter_smooth_delta, cfg.temporal_delta)
        out.append(f)
    if cfg.hole_filling:
        out.append(rs.hole_filling_filter(cfg.hole_filling_mode))
    return out


# ----------------------------------------------------------------------------------------------
# Live camera
# ----------------------------------------------------------------------------------------------

def _color_distortion(rs, profile) -> list:
    """Non-zero distortion coefficients of the colour stream ([] for a pinhole stream, as on D415/D435)."""
    try:
        intr = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
    except RuntimeError:
        return []
    coeffs = [float(c) for c in intr.coeffs]
    return coeffs if any(abs(c) > 1e-6 for c in coeffs) else []


def list_devices(rs=None) -> list[dict]:
    """Connected RealSense devices: [{serial, name, usb}]."""
    rs = rs or rs_module()
    out = []
    for dev in rs.context().query_devices():
        info = {}
        for key, field_ in (("serial", rs.camera_info.serial_number), ("name", rs.camera_info.name),
                            ("usb", rs.camera_info.usb_type_descriptor)):
            info[key] = dev.get_info(field_) if dev.supports(field_) else ""
        out.append(info)
    return out


class RealSenseCamera:
    """A live RealSense as a camera port.

    Args:
        config: streams, filters, timeouts.
        T_base_camera: (4, 4) from the calibration (put on every frame) or None.
        record_to: optional ``.db3`` path: everything streamed is also recorded.
        rs: the pyrealsense2 module (injectable for tests).
    """

    def __init__(self, config: RealSenseConfig = RealSenseConfig(), T_base_camera=None, record_to=None, rs=None):
        self.config = config
        self.rs = rs or rs_module()
        self.T_base_camera = T_base_camera
        self.record_to = None if record_to is None else Path(record_to)
        if self.record_to is not None and self.record_to.suffix != ".db3":
            raise InputError(f"{self.record_to}: pyrealsense2 >= 2.58 records only .db3 (rosbag2) files; "
                             "use a .db3 name")
        self.pipeline = None
        self.converter: Optional[FrameConverter] = None
        self.serial = config.serial
        self.depth_scale = float("nan")
        self.frames_read = 0

    # -- connection
    def connect(self) -> "RealSenseCamera":
        """Start streaming and warm up; retries, with a USB hardware reset before the last attempt."""
        devices = list_devices(self.rs)
        if not devices:
            raise HardwareError("no RealSense camera found: plug it into a USB3 port (check `rs-enumerate-devices` "
                                "or `lsusb`), or use --playback FILE")
        serials = [d["serial"] for d in devices]
        if self.config.serial and self.config.serial not in serials:
            raise HardwareError(f"RealSense with serial {self.config.serial!r} not found; connected: {serials}. "
                                "Pass one of these with --serial")
        if not self.config.serial and len(devices) > 1:
            raise HardwareError(f"{len(devices)} RealSense cameras are connected ({serials}); choose one with --serial")
        self.serial = self.config.serial or serials[0]
        last = None
        for attempt in range(1, self.config.connect_attempts + 1):
            if attempt == self.config.connect_attempts and attempt > 1:
                self._hardware_reset()
            try:
                self._start()
                self._warm_up()
                return self
            except (RuntimeError, HardwareError) as e:
                last = e
                self._release()
        raise HardwareError(f"RealSense {self.serial}: could not start streaming after {self.config.connect_attempts} "
                            f"attempts ({last}); replug the USB cable (USB3 port), close other programs using the "
                            "camera (realsense-viewer, ROS node), then retry")

    def _start(self) -> None:
        rs, c = self.rs, self.config
        cfg = rs.config()
        cfg.enable_device(self.serial)
        cfg.enable_stream(rs.stream.depth, c.depth.width, c.depth.height, rs.format.z16, c.depth.fps)
        cfg.enable_stream(rs.stream.color, c.color.width, c.color.height, rs.format.rgb8, c.color.fps)
        if self.record_to is not None:
            self.record_to.parent.mkdir(parents=True, exist_ok=True)
            cfg.enable_record_to_file(str(self.record_to))
        self.pipeline = rs.pipeline()
        profile = self.pipeline.start(cfg)
        self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
        self.distortion = _color_distortion(rs, profile)
        self.converter = FrameConverter(rs, self.depth_scale, c.filters, c.frame_id, self.T_base_camera)

    def _warm_up(self) -> None:
        if self.distortion and self.frames_read == 0:
            import warnings

            warnings.warn(f"RealSense {self.serial}: the colour stream has lens distortion {self.distortion}; the "
                          "heightmap and the board pose assume a pinhole image, expect errors of a few pixels at the "
                          "image borders (D455 colour); keep the workspace near the image centre", stacklevel=3)
        for _ in range(self.config.warmup_frames):
            ok, _fs = self.pipeline.try_wait_for_frames(int(self.config.timeout_s * 1000))
            if not ok:
                raise HardwareError(f"no frames within {self.config.timeout_s} s during warm-up")

    def _hardware_reset(self) -> None:
        for dev in self.rs.context().query_devices():
            if dev.get_info(self.rs.camera_info.serial_number) == self.serial:
                try:
                    dev.hardware_reset()
                except RuntimeError:
                    pass
                time.sleep(self.config.reconnect_wait_s)

    def _release(self) -> None:
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:
                pass
        self.pipeline = None

    def _wait_for_device(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            try:
                if self.serial in [d["serial"] for d in list_devices(self.rs)]:
                    return True
            except RuntimeError:
                pass
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        return False

    # -- CameraPort
    def read(self, timeout_s: Optional[float] = None) -> RGBDFrame:
        """Next aligned frame. On a timeout (USB drop) reconnects up to ``reconnect_attempts`` times.

        Raises:
            HardwareError: not connected, or no frame and the reconnect failed; says what to check.
        """
        if self.pipeline is None:
            raise HardwareError("RealSense is not connected; call connect() first (or it was closed)")
        timeout_s = self.config.timeout_s if timeout_s is None else float(timeout_s)
        frame = self._try_read(timeout_s)
        attempts = 0
        while frame is None and attempts < self.config.reconnect_attempts:
            attempts += 1
            self._release()
            if self._wait_for_device(time.monotonic() + self.config.reconnect_wait_s + timeout_s):
                try:
                    self._start()
                    frame = self._try_read(timeout_s)
                except (RuntimeError, HardwareError):
                    self._release()
        if frame is None:
            self._release()
            raise HardwareError(
                f"RealSense {self.serial}: no frame for {timeout_s:.1f} s and {attempts} reconnect attempt(s) failed "
                "(USB dropped?). Check the cable and that it is in a USB3 port, then restart the capture")
        self.frames_read += 1
        return frame

    def _try_read(self, timeout_s: float) -> Optional[RGBDFrame]:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ok, fs = self.pipeline.try_wait_for_frames(max(1, int(left * 1000)))
            except RuntimeError:
                return None
            if not ok:
                return None
            frame = self.converter(fs)
            if frame is not None:
                return frame

    def close(self) -> None:
        """Stop streaming (finalises a recording). Safe to call twice."""
        self._release()

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------------------------------
# Playback of a recording
# ----------------------------------------------------------------------------------------------

_OPEN_PLAYBACKS = weakref.WeakSet()


def _close_open_playbacks() -> None:
    """At interpreter exit: stop playback threads still blocked in our callback (they would abort Python)."""
    for cam in list(_OPEN_PLAYBACKS):
        cam.close()


atexit.register(_close_open_playbacks)


class EndOfRecording(HardwareError):
    """A playback camera has delivered every frame of its file."""


class PlaybackCamera:
    """A recorded ``.db3`` (or legacy ``.bag``) file as a camera port, every frame, in order.

    The file is opened as a playback device (not through ``rs.pipeline``, whose real-time start
    drops the first frames) in non-real-time mode, where librealsense hands each frame to the
    sensor callback synchronously. Our callback puts it in a bounded queue and waits when the
    queue is full, so a slow reader pauses the file instead of losing frames. Depth and colour
    are paired by timestamp (within half a frame period), then go through the same converter as
    the live camera (filters, alignment, metres).

    Raises:
        InputError: the file is missing or not a RealSense recording with depth and colour.
        EndOfRecording: from ``read`` after the last frame.
    """

    PREFETCH = 8
    """Frames read ahead of the consumer."""

    def __init__(self, path, T_base_camera=None, filters: FilterConfig = FilterConfig(), timeout_s: float = 2.0,
                 frame_id: str = "camera_color_optical_frame", rs=None):
        import queue

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: recording not found; record one with `sim2real capture --record FILE.db3`")
        rs = self.rs = rs or rs_module()
        self.timeout_s = float(timeout_s)
        self.frames_read = 0
        self.sensors = []
        self._closing = False
        self._queue = queue.Queue(maxsize=self.PREFETCH)
        self._pending = {rs.stream.depth: [], rs.stream.color: []}
        try:
            self.device = rs.context().load_device(str(self.path))
        except RuntimeError as e:
            raise InputError(f"{self.path}: not a playable RealSense recording ({e}); it must be a .db3/.bag written "
                             "by librealsense with depth and colour streams") from None
        self.playback = self.device.as_playback()
        self.playback.set_real_time(False)
        fps = {}
        for sensor in self.device.query_sensors():
            profiles = [p for p in sensor.get_stream_profiles() if p.stream_type() in self._pending]
            for prof in profiles:
                fps[prof.stream_type()] = prof.fps()
            if profiles:
                sensor.open(profiles)
                self.sensors.append(sensor)
        if set(fps) != set(self._pending):
            self.close()
            raise InputError(f"{self.path}: the recording needs a depth and a colour stream, it has "
                             f"{sorted(str(k) for k in fps)}")
        # pair depth and colour whose timestamps differ by less than half a frame period (ms)
        self.pair_tolerance_ms = 500.0 / max(1, min(fps.values()))
        self.serial = (self.device.get_info(rs.camera_info.serial_number)
                       if self.device.supports(rs.camera_info.serial_number) else "")
        try:
            self.depth_scale = float(self.device.first_depth_sensor().get_depth_scale())
        except RuntimeError as e:
            self.close()
            raise InputError(f"{self.path}: the recording has no depth scale ({e})") from None
        self.converter = FrameConverter(rs, self.depth_scale, filters, frame_id, T_base_camera)
        self._out = rs.frame_queue(4, keep_frames=True)
        self._pair: list = []
        self._composer = rs.processing_block(
            lambda f, src: src.frame_ready(src.allocate_composite_frame(self._pair)))
        self._composer.start(self._out)
        self.playback.pause()            # every sensor is started before the first frame is read
        for sensor in self.sensors:
            sensor.start(self._on_frame)
        _OPEN_PLAYBACKS.add(self)
        self.playback.resume()

    def _on_frame(self, frame) -> None:
        import queue

        frame.keep()
        while not self._closing:
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def _next_raw(self, deadline: float):
        """The next frame from the file, or None at the end (or after the timeout)."""
        import queue

        while True:
            try:
                return self._queue.get(timeout=0.05)
            except queue.Empty:
                stopped = self.playback.current_status() == self.rs.playback_status.stopped
                if (stopped and self._queue.empty()) or time.monotonic() > deadline:
                    return None

    def _compose(self, depth, color):
        self._pair[:] = [depth, color]
        self._composer.invoke(depth)
        return self._out.wait_for_frame(1000).as_frameset()

    def _next_pair(self, deadline: float):
        d_list, c_list = self._pending[self.rs.stream.depth], self._pending[self.rs.stream.color]
        while True:
            while d_list and c_list:
                d, c = d_list[0], c_list[0]
                dt = d.get_timestamp() - c.get_timestamp()
                if abs(dt) <= self.pair_tolerance_ms:
                    d_list.pop(0)
                    c_list.pop(0)
                    return self._compose(d, c)
                (d_list if dt < 0 else c_list).pop(0)   # the older frame has no partner: skip it
            raw = self._next_raw(deadline)
            if raw is None:
                return None
            self._pending[raw.get_profile().stream_type()].append(raw)

    def read(self, timeout_s: Optional[float] = None) -> RGBDFrame:
        if not self.sensors:
            raise EndOfRecording(f"{self.path}: playback is closed")
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else float(timeout_s))
        while True:
            fs = self._next_pair(deadline)
            if fs is None:
                raise EndOfRecording(f"{self.path}: end of recording after {self.frames_read} frame(s)")
            frame = self.converter(fs)
            if frame is not None:
                self.frames_read += 1
                return frame

    def __enter__(self) -> "PlaybackCamera":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the playback threads and release the file. Safe to call twice."""
        self._closing = True
        _OPEN_PLAYBACKS.discard(self)
        sensors, self.sensors = self.sensors, []
        for sensor in sensors:
            try:
                sensor.stop()
            except RuntimeError:
                pass
            try:
                sensor.close()
            except RuntimeError:
                pass


# ----------------------------------------------------------------------------------------------
# Software device: synthetic frames through the real librealsense path (tests, simulation, recording)
# ----------------------------------------------------------------------------------------------

def _rs_intrinsics(rs, intr: CameraIntrinsics):
    i = rs.intrinsics()
    i.width, i.height = int(intr.width), int(intr.height)
    i.fx, i.fy, i.ppx, i.ppy = float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy)
    i.model = rs.distortion.brown_conrady
    i.coeffs = [0.0] * 5
    return i


class SoftwareCamera:
    """An ``rs.software_device`` with a depth and a colour sensor: push frames in, read RGBDFrames out.

    Frames go through librealsense's syncer and align exactly like a live camera's. The syncer
    delivers single-stream framesets for the first two pushes; pairs come from the third push on,
    so :meth:`push` returns None until then.

    Args:
        color_intrinsics, depth_intrinsics: the two sensors' pinhole intrinsics.
        depth_to_color: (4, 4) extrinsics depth -> colour (metres); identity by default.
        depth_units: metres per z16 unit (D400 default 0.001).
        record_to: optional ``.db3`` path: every pushed frame is recorded (finalised by ``close``).
        color_frame_offset: the colour sensor's frame counter starts here (a real camera's depth and
            colour counters are independent; pairing must go by timestamp).
    """

    def __init__(self, color_intrinsics: CameraIntrinsics, depth_intrinsics: Optional[CameraIntrinsics] = None,
                 depth_to_color=None, depth_units: float = 0.001, fps: int = 30, record_to=None,
                 serial: str = "000000000000", T_base_camera=None, filters: FilterConfig = FilterConfig(),
                 color_frame_offset: int = 0, rs=None):
        rs = self.rs = rs or rs_module()
        self.color_frame_offset = int(color_frame_offset)
        depth_intrinsics = depth_intrinsics or color_intrinsics
        self.depth_units = float(depth_units)
        self.dev = rs.software_device()
        self.dev.register_info(rs.camera_info.name, "sim2real software RealSense")
        self.dev.register_info(rs.camera_info.serial_number, serial)
        self.depth_sensor = self.dev.add_sensor("Stereo Module")
        self.color_sensor = self.dev.add_sensor("RGB Camera")
        self.depth_sensor.add_read_only_option(rs.option.depth_units, self.depth_units)
        self.depth_profile = self._add_stream(self.depth_sensor, rs.stream.depth, rs.format.z16, 2, 0,
                                              depth_intrinsics, fps)
        self.color_profile = self._add_stream(self.color_sensor, rs.stream.color, rs.format.rgb8, 3, 1,
                                              color_intrinsics, fps)
        T = np.eye(4) if depth_to_color is None else np.asarray(depth_to_color, float)
        ext = rs.extrinsics()
        ext.rotation = [float(v) for v in T[:3, :3].T.ravel()]  # librealsense stores column-major
        ext.translation = [float(v) for v in T[:3, 3]]
        self.depth_profile.register_extrinsics_to(self.color_profile, ext)
        self.dev.create_matcher(rs.matchers.dlr_c)
        self.recorder = None
        if record_to is not None:
            record_to = Path(record_to)
            if record_to.suffix != ".db3":
                raise InputError(f"{record_to}: pyrealsense2 >= 2.58 records only .db3 files")
            record_to.parent.mkdir(parents=True, exist_ok=True)
            self.recorder = rs.recorder(str(record_to), self.dev)  # before open/start, or nothing is recorded
        self.syncer = rs.syncer(10)
        self.depth_sensor.open(self.depth_profile)
        self.color_sensor.open(self.color_profile)
        self.depth_sensor.start(self.syncer)
        self.color_sensor.start(self.syncer)
        self.converter = FrameConverter(rs, self.depth_units, filters, "camera_color_optical_frame", T_base_camera)
        self.frame_number = 0
        self.color_intrinsics = color_intrinsics
        self.depth_intrinsics = depth_intrinsics

    def _add_stream(self, sensor, kind, fmt, bpp, uid, intr: CameraIntrinsics, fps: int):
        rs = self.rs
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = kind, 0, uid
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = int(intr.width), int(intr.height), int(fps), bpp, fmt
        vs.intrinsics = _rs_intrinsics(rs, intr)
        return rs.video_stream_profile(sensor.add_video_stream(vs))

    def push(self, color: np.ndarray, depth_z16: np.ndarray, timestamp_ms: Optional[float] = None,
             timeout_s: float = 1.0) -> Optional[RGBDFrame]:
        """Push one colour (H, W, 3) uint8 RGB and depth (H, W) uint16 pair; return the synced frame or None."""
        rs = self.rs
        color = np.ascontiguousarray(color, dtype=np.uint8)
        depth_z16 = np.ascontiguousarray(depth_z16)
        if depth_z16.dtype != np.uint16:
            raise InputError(f"software camera depth must be uint16 z16 units, got {depth_z16.dtype}")
        if color.shape[:2] != (self.color_intrinsics.height, self.color_intrinsics.width) or color.shape[2:] != (3,):
            raise InputError(f"colour must be ({self.color_intrinsics.height}, {self.color_intrinsics.width}, 3), "
                             f"got {color.shape}")
        if depth_z16.shape != (self.depth_intrinsics.height, self.depth_intrinsics.width):
            raise InputError(f"depth must be ({self.depth_intrinsics.height}, {self.depth_intrinsics.width}), "
                             f"got {depth_z16.shape}")
        ts = self.frame_number * 1000.0 / 30.0 if timestamp_ms is None else float(timestamp_ms)
        for sensor, profile, arr, bpp, number in (
                (self.depth_sensor, self.depth_profile, depth_z16, 2, self.frame_number),
                (self.color_sensor, self.color_profile, color, 3, self.frame_number + self.color_frame_offset)):
            f = rs.software_video_frame()
            f.pixels = arr
            f.stride = arr.shape[1] * bpp
            f.bpp = bpp
            f.timestamp = ts
            f.domain = rs.timestamp_domain.hardware_clock
            f.frame_number = number
            f.profile = profile
            if bpp == 2:
                f.depth_units = self.depth_units
            sensor.on_video_frame(f)
        self.frame_number += 1
        ok, fs = self.syncer.try_wait_for_frames(int(timeout_s * 1000))
        return self.converter(fs) if ok else None

    def close(self) -> None:
        """Stop the sensors and finalise the recording (if any). Safe to call twice."""
        if self.dev is None:
            return
        for s in (self.depth_sensor, self.color_sensor):
            try:
                s.stop()
                s.close()
            except RuntimeError:
                pass
        self.recorder = None  # dropping the recorder writes the file
        self.dev = None


def depth_to_z16(depth_m: np.ndarray, depth_units: float = 0.001) -> np.ndarray:
    """Metres -> uint16 z16 units (rounded; 0 stays 0; saturates at 65535)."""
    d = np.nan_to_num(np.asarray(depth_m, np.float64), nan=0.0)
    return np.clip(np.round(d / depth_units), 0, 65535).astype(np.uint16)
