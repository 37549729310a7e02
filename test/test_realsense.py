"""RealSense capture without hardware: software_device, .db3 recording, playback, capture CLI, failures."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sim2real.camera import CameraIntrinsics
from sim2real.errors import HardwareError, InputError

rs = pytest.importorskip("sim2real.realsense")
try:
    RS = rs.rs_module()
except HardwareError as e:  # pragma: no cover - pyrealsense2 missing on this machine
    pytest.skip(f"pyrealsense2 unavailable: {e}", allow_module_level=True)

W, H = 320, 240
COLOR_K = CameraIntrinsics(W, H, 300.0, 301.0, 161.5, 119.25)
DEPTH_K = CameraIntrinsics(W, H, 250.0, 250.0, 158.0, 121.0)


def _frames(n, seed=0):
    """Smooth synthetic scenes: a sloped floor with a box, textured colour (compresses well)."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W]
    out = []
    for k in range(n):
        depth = (700 + 0.8 * v + 2 * k).astype(np.uint16)
        r0, c0 = 60 + 5 * k, 100 + 3 * k
        depth[r0:r0 + 50, c0:c0 + 60] -= 120
        depth[rng.random((H, W)) < 0.01] = 0                       # some holes
        color = np.stack([(u + 7 * k) % 256, (v * 2) % 256, ((u + v) // 2 + 40 * k) % 256], -1).astype(np.uint8)
        out.append((color, depth))
    return out


def test_software_device_pairs_from_third_push_and_metres():
    cam = rs.SoftwareCamera(COLOR_K)
    try:
        frames = _frames(5)
        got = [cam.push(c, d) for c, d in frames]
    finally:
        cam.close()
    # the syncer delivers depth alone, then colour alone: the first complete pair comes with the 3rd
    # push, and it is the pair of the previous push (the syncer waits for the next frame to match)
    assert got[0] is None and got[1] is None
    assert [cam.converter.last_frame_number] == [3]
    for k in range(2, 5):
        f = got[k]
        idx = int(round(f.stamp * 30.0))
        assert idx == k - 1
        color, depth = frames[idx]
        assert np.array_equal(f.color, color)
        # registered streams (same intrinsics, identity extrinsics): depth passes through unresampled
        assert f.depth.dtype == np.float32
        assert np.array_equal(f.depth, depth.astype(np.float32) * np.float32(cam.converter.depth_scale))
        assert f.intrinsics == COLOR_K
        assert f.stamp == pytest.approx(idx / 30.0, abs=1e-6)        # device clock (ms -> s)
        assert abs(f.host_stamp - time.time()) < 60                  # host clock


def test_software_device_aligns_depth_to_color():
    """Different depth intrinsics and a 15 mm baseline: depth comes out in the colour camera's pixels."""
    T = np.eye(4)
    T[0, 3] = 0.015
    cam = rs.SoftwareCamera(COLOR_K, DEPTH_K, depth_to_color=T)
    depth = np.full((H, W), 800, np.uint16)
    depth[100:141, 140:181] = 600                      # a 41x41 px patch centred on depth pixel (160, 120)
    color = np.full((H, W, 3), 90, np.uint8)
    try:
        f = [cam.push(color, depth) for _ in range(4)][-1]
    finally:
        cam.close()
    assert f.depth.shape == (H, W) and f.intrinsics == COLOR_K
    # where geometry puts the patch centre in the colour image
    z = 0.6
    p = np.array([(160 - DEPTH_K.cx) / DEPTH_K.fx * z + 0.015, (120 - DEPTH_K.cy) / DEPTH_K.fy * z, z])
    uc, vc = COLOR_K.fx * p[0] / z + COLOR_K.cx, COLOR_K.fy * p[1] / z + COLOR_K.cy
    rows, cols = np.nonzero(np.abs(f.depth - 0.6) < 1e-3)
    assert abs(cols.mean() - uc) < 1.0 and abs(rows.mean() - vc) < 1.0
    # and its size scales by the focal-length ratio (41 px * 300 / 250 ~ 49 px)
    assert cols.max() - cols.min() + 1 == pytest.approx(41 * COLOR_K.fx / DEPTH_K.fx, abs=2)
    far = f.depth[(f.depth > 0) & (np.abs(f.depth - 0.6) > 1e-3)]
    assert np.allclose(far, 0.8, atol=1e-3)


def _record(path, frames, depth_k=None, depth_to_color=None):
    """Record through a software device; returns what the live path produced for each pushed frame."""
    cam = rs.SoftwareCamera(COLOR_K, depth_k, depth_to_color=depth_to_color, record_to=path, serial="112233445566")
    live = []
    try:
        for c, d in frames:
            live.append(cam.push(c, d))
    finally:
        cam.close()
    return live, cam.converter.depth_scale


def test_recording_and_playback_are_bit_exact(tmp_path):
    path = tmp_path / "sw.db3"
    frames = _frames(6)
    _, scale = _record(path, frames)
    assert path.is_file() and path.stat().st_size > 0
    cam = rs.PlaybackCamera(path)
    try:
        assert cam.serial == "112233445566"
        got = []
        while True:
            try:
                got.append(cam.read())
            except rs.EndOfRecording as e:
                assert "end of recording after 6" in str(e)
                break
    finally:
        cam.close()
    # the recorder keeps every pushed frame, even the two the live syncer could not pair yet
    assert len(got) == len(frames)
    for f, (color, depth) in zip(got, frames):
        assert np.array_equal(f.color, color)
        assert np.array_equal(f.depth, depth.astype(np.float32) * np.float32(scale))
        assert f.intrinsics == COLOR_K


def test_capture_cli_playback_writes_frame_npz_exactly(tmp_path):
    """Acceptance: record a .db3 from our own software_device, `sim2real capture --playback`, compare npz."""
    from sim2real.calibration.storage import Calibration, save_calibration
    from sim2real.cli import main
    from sim2real.frame_io import load_frame_npz

    path = tmp_path / "cap.db3"
    frames = _frames(5, seed=3)
    _, scale = _record(path, frames)
    T = np.eye(4)
    T[:3, 3] = (1.0, 0.0, 0.75)
    cal_path = save_calibration(Calibration("cap", T, COLOR_K), tmp_path / "cal.yaml")
    out = tmp_path / "frames"
    assert main(["capture", "--playback", str(path), "--frames", "4", "--out", str(out),
                 "--calibration", str(cal_path)]) == 0
    files = sorted(out.glob("frame_*.npz"))
    assert [f.name for f in files] == [f"frame_{k:04d}.npz" for k in range(4)]
    for k, f in enumerate(files):
        color, depth, K, T_bc, extras = load_frame_npz(f)
        assert np.array_equal(color, frames[k][0])
        assert depth.dtype == np.float32
        assert np.array_equal(depth, frames[k][1].astype(np.float32) * np.float32(scale))
        assert np.array_equal(K, COLOR_K.K)
        assert np.array_equal(T_bc, T)
        assert int(extras["frame_number"]) == k
        assert float(extras["stamp"]) == pytest.approx(k / 30.0, abs=1e-6)
    # readable by `sim2real heightmap`
    assert main(["heightmap", "--frame", str(files[0]), "--out", str(tmp_path / "hm.npz")]) == 0


def test_capture_cli_aligned_recording_matches_live_alignment(tmp_path):
    """With distinct depth intrinsics the npz holds the same aligned depth the live path produced."""
    from sim2real.cli import main
    from sim2real.frame_io import load_frame_npz

    T = np.eye(4)
    T[0, 3] = 0.015
    frames = _frames(6, seed=5)
    live, _ = _record(tmp_path / "al.db3", frames, DEPTH_K, T)
    out = tmp_path / "f"
    assert main(["capture", "--playback", str(tmp_path / "al.db3"), "--frames", "6", "--out", str(out)]) == 0
    for f in live[2:]:  # frames the live syncer paired (each one push late)
        k = int(round(f.stamp * 30.0))
        color, depth, K, T_bc, _ = load_frame_npz(out / f"frame_{k:04d}.npz")
        assert np.array_equal(color, f.color)
        assert np.array_equal(depth, f.depth)
        assert np.array_equal(T_bc, np.eye(4))          # no --calibration: identity


def test_capture_cli_stops_cleanly_at_end_and_bad_inputs(tmp_path, capsys):
    from sim2real.cli import main

    path = tmp_path / "s.db3"
    _record(path, _frames(3))
    assert main(["capture", "--playback", str(path), "--frames", "10", "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("*.npz"))) == 3
    assert "end of recording" in capsys.readouterr().out
    assert main(["capture", "--playback", str(tmp_path / "missing.db3"), "--out", str(tmp_path / "x")]) == 2
    assert "recording not found" in capsys.readouterr().err
    bad = tmp_path / "bad.db3"
    bad.write_bytes(b"not a bag")
    assert main(["capture", "--playback", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "not a playable RealSense recording" in capsys.readouterr().err
    assert main(["capture", "--playback", str(path), "--filters", "median", "--out", str(tmp_path / "x")]) == 2
    assert "unknown filter" in capsys.readouterr().err


def test_filters_run_on_playback(tmp_path):
    path = tmp_path / "f.db3"
    frames = _frames(4)
    _record(path, frames)
    cam = rs.PlaybackCamera(path, filters=rs.FilterConfig(spatial=True, temporal=True, hole_filling=True))
    try:
        f = cam.read()
    finally:
        cam.close()
    # hole filling removes the 1 % random holes; values stay metric
    assert np.count_nonzero(frames[0][1] == 0) > 100
    assert np.count_nonzero(f.depth == 0) < np.count_nonzero(frames[0][1] == 0) / 10
    assert 0.6 < float(np.median(f.depth[f.depth > 0])) < 1.0


def test_record_requires_db3(tmp_path):
    with pytest.raises(InputError, match=r"only \.db3"):
        rs.SoftwareCamera(COLOR_K, record_to=tmp_path / "x.bag")


def test_config_loads_and_rejects_bad_values(tmp_path):
    cfg = rs.load_realsense_config()
    assert (cfg.color.width, cfg.color.height, cfg.color.fps) == (640, 480, 30)
    p = tmp_path / "rs.yaml"
    p.write_text("color: {width: 640, height: 480, fps: 0}\n")
    from sim2real.errors import ConfigError

    with pytest.raises(ConfigError, match="fps must be positive"):
        rs.load_realsense_config(p)
    p.write_text("colour: {width: 640}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        rs.load_realsense_config(p)


# ----- live-camera logic with a fake SDK: device selection, warm-up retries, timeouts, USB drop -----

class _FakeDev:
    def __init__(self, serial):
        self.serial = serial
        self.resets = 0

    def supports(self, _):
        return True

    def get_info(self, field):
        return self.serial if field == "serial" else "Intel RealSense D435"

    def hardware_reset(self):
        self.resets += 1


class _FakeSDK:
    """Just enough of pyrealsense2 for RealSenseCamera's control flow; frames come from a SoftwareCamera."""

    class camera_info:
        serial_number, name, usb_type_descriptor = "serial", "name", "usb"

    stream = RS.stream
    format = RS.format

    def __init__(self, serials, source, fail_after=None, start_failures=0, come_back=True):
        self.devices = [_FakeDev(s) for s in serials]
        self.source, self.fail_after, self.start_failures = source, fail_after, start_failures
        self.come_back = come_back
        self.coeffs = [0.0] * 5
        self.delivered = 0
        self.starts = 0
        sdk = self

        class _Ctx:
            def query_devices(self_inner):
                return sdk.devices

        class _Cfg:
            def enable_device(self_inner, s):
                sdk.enabled = s

            def enable_stream(self_inner, *a):
                pass

            def enable_record_to_file(self_inner, p):
                sdk.record = p

        class _Profile:
            def get_stream(self_inner, kind):
                class V:
                    def as_video_stream_profile(self2):
                        return self2

                    def get_intrinsics(self2):
                        return type("I", (), {"coeffs": list(sdk.coeffs)})()
                return V()

            def get_device(self_inner):
                class D:
                    def first_depth_sensor(self2):
                        class S:
                            def get_depth_scale(self3):
                                return 0.001
                        return S()
                return D()

        class _Pipe:
            def start(self_inner, cfg):
                sdk.starts += 1
                if sdk.starts <= sdk.start_failures:
                    raise RuntimeError("xioctl(VIDIOC_S_FMT) failed")
                return _Profile()

            def stop(self_inner):
                pass

            def try_wait_for_frames(self_inner, timeout_ms):
                if sdk.fail_after is not None and sdk.delivered >= sdk.fail_after:
                    if sdk.come_back is False:
                        sdk.devices = []
                    time.sleep(min(timeout_ms, 50) / 1000.0)
                    return False, None
                sdk.delivered += 1
                return True, sdk.source()

        self.context, self.config, self.pipeline = _Ctx, _Cfg, _Pipe

    def align(self, _):
        return RS.align(RS.stream.color)

    def __getattr__(self, name):  # filters, option ... from the real module
        return getattr(RS, name)


@pytest.fixture
def frameset_source():
    """Returns framesets from a software device (pairs only), reusing one device."""
    cam = rs.SoftwareCamera(COLOR_K)
    color, depth = _frames(1)[0]
    for _ in range(2):
        cam.push(color, depth)

    def source():
        # push and grab the raw frameset (not converted) from the syncer
        for sensor, profile, arr, bpp in ((cam.depth_sensor, cam.depth_profile, depth, 2),
                                          (cam.color_sensor, cam.color_profile, color, 3)):
            f = RS.software_video_frame()
            f.pixels, f.stride, f.bpp = arr, arr.shape[1] * bpp, bpp
            f.timestamp, f.domain, f.frame_number, f.profile = cam.frame_number * 33.3, RS.timestamp_domain.hardware_clock, cam.frame_number, profile
            if bpp == 2:
                f.depth_units = 0.001
            sensor.on_video_frame(f)
        cam.frame_number += 1
        ok, fs = cam.syncer.try_wait_for_frames(1000)
        assert ok
        return fs

    yield source
    cam.close()


def _cfg(**kw):
    base = dict(warmup_frames=2, timeout_s=0.2, reconnect_attempts=2, reconnect_wait_s=0.05, connect_attempts=3)
    base.update(kw)
    return rs.RealSenseConfig(**base)


def test_serial_selection_and_clear_errors(frameset_source):
    sdk = _FakeSDK(["111", "222"], frameset_source)
    with pytest.raises(HardwareError, match=r"2 RealSense cameras are connected .*--serial"):
        rs.RealSenseCamera(_cfg(), rs=sdk).connect()
    with pytest.raises(HardwareError, match=r"serial '999' not found; connected: \['111', '222'\]"):
        rs.RealSenseCamera(_cfg(serial="999"), rs=sdk).connect()
    with pytest.raises(HardwareError, match="no RealSense camera found"):
        rs.RealSenseCamera(_cfg(), rs=_FakeSDK([], frameset_source)).connect()
    cam = rs.RealSenseCamera(_cfg(serial="222"), T_base_camera=np.eye(4), rs=sdk).connect()
    assert sdk.enabled == "222"
    f = cam.read()
    assert f.depth.dtype == np.float32 and f.T_base_camera is not None
    cam.close()
    with pytest.raises(HardwareError, match="not connected"):
        cam.read()


def test_connect_retries_with_hardware_reset_before_last_attempt(frameset_source):
    sdk = _FakeSDK(["111"], frameset_source, start_failures=2)
    cam = rs.RealSenseCamera(_cfg(), rs=sdk).connect()
    assert sdk.starts == 3 and sdk.devices[0].resets == 1
    cam.close()
    sdk = _FakeSDK(["111"], frameset_source, start_failures=5)
    with pytest.raises(HardwareError, match="could not start streaming after 3 attempts.*replug"):
        rs.RealSenseCamera(_cfg(), rs=sdk).connect()


def test_usb_drop_reconnects_then_fails_clearly_and_never_blocks(frameset_source):
    # frames stop after warm-up + 1 read, the device comes back: reconnect succeeds? No: frames stay off,
    # so every reconnect attempt times out and read() raises within a bounded time
    sdk = _FakeSDK(["111"], frameset_source, fail_after=3)
    cam = rs.RealSenseCamera(_cfg(), rs=sdk).connect()
    cam.read()
    t0 = time.monotonic()
    with pytest.raises(HardwareError, match=r"no frame for 0.2 s and 2 reconnect attempt\(s\) failed.*USB"):
        cam.read()
    assert time.monotonic() - t0 < 5.0
    assert sdk.starts == 3   # initial start + 2 reconnects


def test_usb_drop_then_recovery(frameset_source):
    sdk = _FakeSDK(["111"], frameset_source, fail_after=3)
    cam = rs.RealSenseCamera(_cfg(), rs=sdk).connect()
    cam.read()
    original_start = sdk.pipeline.start

    def start_and_recover(self_inner, cfg):
        sdk.fail_after = None        # the camera works again after the reconnect
        return original_start(self_inner, cfg)

    sdk.pipeline.start = start_and_recover
    f = cam.read()
    assert f is not None and sdk.starts == 2
    cam.close()


def test_distorted_colour_stream_warns(frameset_source):
    sdk = _FakeSDK(["111"], frameset_source)
    sdk.coeffs = [-0.055, 0.066, 0.0, 0.0, -0.021]          # a D455 colour stream
    with pytest.warns(UserWarning, match="lens distortion"):
        cam = rs.RealSenseCamera(_cfg(), rs=sdk).connect()
    cam.close()


def test_slow_reader_loses_no_frame(tmp_path):
    """Non-real-time playback with back-pressure: a reader slower than the file still gets every frame."""
    path = tmp_path / "long.db3"
    color, depth = _frames(1)[0]
    cam = rs.SoftwareCamera(COLOR_K, record_to=path)
    try:
        for i in range(40):
            d = depth.copy()
            d[0, 0] = 1000 + i                       # tag each frame
            cam.push(color, d)
    finally:
        cam.close()
    pb = rs.PlaybackCamera(path)
    from sim2real.ports import CameraPort

    tags = []
    try:
        assert isinstance(pb, CameraPort)
        while True:
            f = pb.read()
            tags.append(int(round(float(f.depth[0, 0]) / pb.converter.depth_scale)) - 1000)
            time.sleep(0.01)
    except rs.EndOfRecording:
        pass
    finally:
        pb.close()
    assert tags == list(range(40))


def test_playback_pairs_by_timestamp_not_frame_number(tmp_path):
    """Depth and colour counters differ on real cameras: pairs are matched by timestamp."""
    path = tmp_path / "off.db3"
    frames = _frames(8, seed=2)
    cam = rs.SoftwareCamera(COLOR_K, record_to=path, color_frame_offset=1000)
    try:
        for c, d in frames:
            cam.push(c, d)
    finally:
        cam.close()
    with rs.PlaybackCamera(path) as pb:
        got = []
        try:
            while True:
                got.append(pb.read())
        except rs.EndOfRecording:
            pass
    assert len(got) == 8
    for f, (color, depth) in zip(got, frames):
        assert np.array_equal(f.color, color) and np.array_equal(f.depth > 0, depth > 0)
