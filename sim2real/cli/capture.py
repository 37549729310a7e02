"""``sim2real capture``: RealSense (live or a recorded .db3) -> frame_0000.npz ... (FRAME.npz format).

Each file holds color (H, W, 3) uint8 RGB, depth (H, W) float32 metres aligned to colour, K (3, 3)
(the colour intrinsics from the device) and T_base_camera (4, 4): the calibration's camera pose in
the frame the heightmap is laid out in (``Calibration.T_workspace_camera()``: the workspace frame
when the calibration has one, else the robot base), or the identity without ``--calibration``.
Also stamp (device clock, s), host_stamp (host clock, s), frame_number, serial.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sim2real.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("capture", help="capture aligned RGB-D frames from a RealSense (or a .db3 recording)",
                       description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--serial", metavar="S", help="RealSense serial number (default: the only connected camera)")
    src.add_argument("--playback", metavar="FILE", help="read a recorded .db3 (or .bag) instead of a live camera")
    p.add_argument("--frames", type=int, default=1, metavar="N", help="number of frames to write (default 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory for frame_0000.npz, ...")
    p.add_argument("--calibration", metavar="FILE", help="calibration YAML (T_base_camera); identity without it")
    p.add_argument("--config", metavar="YAML", help="camera config (default config/cameras/realsense.yaml)")
    p.add_argument("--record", metavar="FILE.db3", help="also record the live stream to a .db3 file")
    p.add_argument("--every", type=int, default=1, metavar="K", help="keep every K-th frame (default 1)")
    p.add_argument("--filters", metavar="LIST", help="depth filters to enable: any of spatial,temporal,hole_filling")
    p.add_argument("--timeout", type=float, metavar="S", help="longest wait for one frame in seconds")
    p.set_defaults(func=run)


def _filters(base, text):
    from dataclasses import replace

    if not text:
        return base
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in ("spatial", "temporal", "hole_filling")]
    if bad:
        raise InputError(f"--filters: unknown filter(s) {bad}; choose from spatial, temporal, hole_filling")
    return replace(base, **{n: True for n in names})


def open_camera(args, T):
    """The camera port for the arguments: PlaybackCamera or a connected RealSenseCamera."""
    from dataclasses import replace

    from sim2real.realsense import PlaybackCamera, RealSenseCamera, load_realsense_config

    cfg = load_realsense_config(args.config, serial=args.serial)
    cfg = replace(cfg, filters=_filters(cfg.filters, args.filters),
                  timeout_s=args.timeout if args.timeout else cfg.timeout_s)
    if args.playback:
        if args.record:
            raise InputError("--record needs a live camera; it cannot be combined with --playback")
        return PlaybackCamera(args.playback, T, filters=cfg.filters, timeout_s=min(cfg.timeout_s, 2.0),
                              frame_id=cfg.frame_id)
    return RealSenseCamera(cfg, T, record_to=args.record).connect()


def run(args) -> int:
    from sim2real.frame_io import save_frame_npz
    from sim2real.realsense import EndOfRecording

    from sim2real.cli.paths import output_dir

    if args.frames < 1 or args.every < 1:
        raise InputError("--frames and --every must be >= 1")
    output_dir(args.out, "--out")
    cal = None
    T = np.eye(4)
    if args.calibration:
        from sim2real.calibration.storage import load_calibration

        cal = load_calibration(args.calibration)
        T = cal.T_workspace_camera()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = open_camera(args, T)
    written, seen, t0 = 0, 0, time.monotonic()
    try:
        progress = _progress(args.frames)
        while written < args.frames:
            try:
                frame = camera.read()
            except EndOfRecording as e:
                if written == 0:
                    raise InputError(f"{e}; the recording holds no complete depth+colour pair") from None
                print(f"sim2real capture: {e}; stopping")
                break
            seen += 1
            if (seen - 1) % args.every:
                continue
            if cal is not None and (frame.intrinsics.width, frame.intrinsics.height) != (
                    cal.intrinsics.width, cal.intrinsics.height):
                raise InputError(f"{args.calibration} is for {cal.intrinsics.width}x{cal.intrinsics.height} but the "
                                 f"camera streams {frame.intrinsics.width}x{frame.intrinsics.height}; recalibrate or "
                                 "change the profile in config/cameras/realsense.yaml")
            if written == 0:
                _warn_intrinsics(cal, frame, args.calibration)
            path = out / f"frame_{written:04d}.npz"
            save_frame_npz(path, frame.color, frame.depth, frame.K, T, stamp=np.float64(frame.stamp),
                           host_stamp=np.float64(frame.host_stamp or 0.0),
                           frame_number=np.int64(camera.converter.last_frame_number),
                           frame_id=np.str_(frame.frame_id), serial=np.str_(getattr(camera, "serial", "")))
            written += 1
            progress(written)
    finally:
        camera.close()
    dt = time.monotonic() - t0
    source = f"playback {args.playback}" if args.playback else f"RealSense {getattr(camera, 'serial', '')}"
    print(f"wrote {written} frame(s) from {source} to {out}/ ({written / max(dt, 1e-9):.1f} frames/s); "
          f"T_base_camera {'from ' + args.calibration if cal else 'identity (no --calibration)'}")
    if args.record and not args.playback:
        print(f"recorded {args.record}")
    return 0


def _warn_intrinsics(cal, frame, path) -> None:
    """Warn when the calibration was made with intrinsics > 1 % different from the device's."""
    if cal is None:
        return
    a, b = cal.intrinsics, frame.intrinsics
    rel = max(abs(a.fx - b.fx) / b.fx, abs(a.fy - b.fy) / b.fy, abs(a.cx - b.cx) / b.fx, abs(a.cy - b.cy) / b.fy)
    if rel > 0.01:
        print(f"sim2real capture: warning: {path} was calibrated with fx={a.fx:.1f} fy={a.fy:.1f} cx={a.cx:.1f} "
              f"cy={a.cy:.1f} but the camera reports fx={b.fx:.1f} fy={b.fy:.1f} cx={b.cx:.1f} cy={b.cy:.1f}; "
              "is this the same camera? recalibrate if not")


def _progress(total: int):
    if total < 10:
        return lambda n: None
    try:
        from tqdm import tqdm
    except ImportError:
        return lambda n: None
    bar = tqdm(total=total, unit="frame", desc="capture")

    def update(n):
        bar.update(1)
        if n >= total:
            bar.close()

    return update
