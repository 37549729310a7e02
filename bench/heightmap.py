"""Benchmark: RGB-D -> heightmap, sim2real vs a straightforward implementation of the reference.

Both run side by side in this process on the same 640x480 frames; outputs must be identical.
Frames: the generated sample scene (a table with blocks seen by a tilted camera whose x axis is
exactly level), a RealSense-like frame (the same scene seen from a pose as a real calibration
gives it, i.e. a fraction of a degree off any axis, with depth noise, holes, 1 mm depth steps and
colour noise), and a worst case for our fast path (a flat patch seen straight down with random
colours, so equally high points of different colours compete in every cell and the reference's
sort must decide).

Run: .venv/bin/python bench/heightmap.py [--repeats N]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_heightmap as ref  # noqa: E402
from sim2real import sample_scene  # noqa: E402
from sim2real.heightmap import project_frame  # noqa: E402
from sim2real.transforms import RigidTransform  # noqa: E402
from sim2real.workspace import GENSIM_WORKSPACE as WS  # noqa: E402


def frames():
    rng = np.random.default_rng(0)
    yield "sample scene (table + blocks, tilted camera)", sample_scene.render()
    calibrated = sample_scene.default_camera_pose() @ RigidTransform.from_xyz_euler(
        [0.002, -0.001, 0.0], np.deg2rad([0.3, -0.2, 0.4]))
    color, depth, K, T = sample_scene.render(T_base_camera=calibrated)
    noisy = depth + rng.normal(0, 0.002, depth.shape).astype(np.float32)
    noisy = np.round(noisy * 1000) / 1000  # RealSense 1 mm depth units
    noisy[rng.random(depth.shape) < 0.08] = 0  # holes
    shade = np.clip(color.astype(np.int16) + rng.integers(-6, 7, color.shape), 0, 255).astype(np.uint8)
    yield "RealSense-like (calibrated pose, noise, holes)", (shade, noisy.astype(np.float32), K, T)
    T_down = np.eye(4)
    T_down[:3, :3] = Rotation.from_euler("x", np.pi).as_matrix()
    T_down[:3, 3] = [0.5, 0.0, 0.8]
    yield "worst case (flat, top-down, random colours)", (
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), np.full((480, 640), 0.76, np.float32), K, T_down)


def reference(color, depth, K, T):
    return ref.heightmap(ref.transform(ref.pointcloud(depth, K), T), color, WS.bounds, WS.pixel_size)


def ours(color, depth, K, T):
    return project_frame(color, depth, K, T, WS)[:2]


def best_time(fn, args, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{'frame':46s} {'reference ms':>13s} {'sim2real ms':>12s} {'speed-up':>9s}  identical")
    for name, frame in frames():
        a, b = reference(*frame), ours(*frame)
        same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        r_best, r_med = best_time(reference, frame, args.repeats)
        o_best, o_med = best_time(ours, frame, args.repeats)
        print(f"{name:46s} {r_med * 1e3:13.2f} {o_med * 1e3:12.2f} {r_med / o_med:8.2f}x  {same}"
              f"   (best-of-{args.repeats}: {r_best * 1e3:.2f} vs {o_best * 1e3:.2f} ms, {r_best / o_best:.2f}x)")
        if not same:
            print("ERROR: outputs differ", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
