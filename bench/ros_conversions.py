"""Benchmark: sim2real's ROS message conversions vs the CDR transport of the same messages.

For a 640x480 RealSense frame (rgb8 color, 16UC1 / 32FC1 aligned depth, camera_info) and the
320x160 heightmap pair, it times, side by side in this process:

* ours: array -> message and message -> array (sim2real.ros.conversions, rosbags classes);
* baseline: rosbags' CDR serialise + deserialise of the very same message, i.e. what moving it
  between two nodes over DDS costs at least on the CPU.

The ratio ours / baseline says whether the conversions matter next to the transport.

Run: /tmp/venv/bin/python bench/ros_conversions.py [--repeats N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rosbags.typesys import Stores, get_typestore  # noqa: E402

from sim2real.camera import CameraIntrinsics  # noqa: E402
from sim2real.heightmap import HeightmapObservation  # noqa: E402
from sim2real.ros import conversions as cv  # noqa: E402
from sim2real.workspace import GENSIM_WORKSPACE  # noqa: E402


def best_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    ts = get_typestore(Stores.ROS2_JAZZY)
    types = cv.MsgTypes.from_typestore(ts)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 1.5, (480, 640)).astype(np.float32)
    intr = CameraIntrinsics(640, 480, 610.0, 610.0, 320.0, 240.0)
    rows, cols = GENSIM_WORKSPACE.shape
    obs = HeightmapObservation(rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8),
                               rng.uniform(0, 0.2, (rows, cols)).astype(np.float32), GENSIM_WORKSPACE, 1.0)
    cases = [
        ("rgb8 640x480", lambda: cv.rgb_to_image_msg(types, rgb), cv.image_msg_to_rgb),
        ("bgr8 640x480", lambda: cv.rgb_to_image_msg(types, rgb, encoding="bgr8"), cv.image_msg_to_rgb),
        ("16UC1 depth 640x480", lambda: cv.depth_to_image_msg(types, depth, encoding="16UC1"), cv.image_msg_to_depth),
        ("32FC1 depth 640x480", lambda: cv.depth_to_image_msg(types, depth, encoding="32FC1"), cv.image_msg_to_depth),
        ("camera_info", lambda: cv.intrinsics_to_camera_info(types, intr), cv.camera_info_to_intrinsics),
        ("heightmap 32FC1 320x160", lambda: cv.heightmap_to_msgs(types, obs, "base_link")[0], cv.image_msg_to_array),
    ]
    print(f"{'message':26s} {'ours: build':>12s} {'ours: parse':>12s} {'CDR ser+de':>12s} {'ours/CDR':>9s}")
    for name, build, parse in cases:
        msg = build()
        raw = ts.serialize_cdr(msg, msg.__msgtype__)
        t_build = best_ms(build, args.repeats)
        t_parse = best_ms(lambda: parse(msg), args.repeats)
        t_cdr = best_ms(lambda: ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__),
                        args.repeats)
        print(f"{name:26s} {t_build:10.3f}ms {t_parse:10.3f}ms {t_cdr:10.3f}ms {(t_build + t_parse) / t_cdr:8.2f}x"
              f"   ({len(raw) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
