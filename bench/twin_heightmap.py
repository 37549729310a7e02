"""Completeness and table height of the twin camera's heightmap vs the simulator's 3-camera view.

For each task x seed: reset the twin, read its camera (as ``sim2real run --robot sim`` does:
calibrated pose, lifted by GENSIM_TABLE_READING) and render GenSim's three RealSense D415 views
of the same scene; project both with sim2real.heightmap.project_frames. Prints the fraction of
empty cells (colour all zero) and the median height (the table: most cells are table), with the
ratio single / 3-camera side by side.

    python bench/twin_heightmap.py --seeds 2            # SIM2REAL_RENDERER=tiny for GenSim's renderer
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def stats(obs) -> tuple[float, float]:
    """(empty-cell fraction, median height in metres) of a HeightmapObservation."""
    return float(np.mean(~obs.color.any(axis=-1))), float(np.median(obs.height))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--tasks", default="all")
    args = ap.parse_args()
    from sim2real.heightmap import project_frames
    from sim2real.tasks import load_all, resolve_many
    from sim2real.twin import Twin
    from sim2real.twin.camera import gensim_views, render_view

    twin = Twin.from_config()
    rows, t0 = {"twin camera": [], "GenSim 3 views": []}, time.perf_counter()
    for spec in resolve_many(args.tasks, load_all()):
        for seed in range(args.seeds):
            twin.start_trial(spec, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rows["twin camera"].append(stats(project_frames([twin.camera.read()])))
                rows["GenSim 3 views"].append(stats(project_frames([render_view(twin.scene.conn, v)
                                                                    for v in gensim_views()])))
    print(f"renderer {twin.renderer}; {len(rows['twin camera'])} scenes")
    print(f"{'view':16s} {'empty mean %':>12s} {'empty max %':>11s} {'table median mm':>15s}")
    summary = {}
    for name, r in rows.items():
        a = np.array(r)
        summary[name] = (a[:, 0].mean(), a[:, 0].max(), np.median(a[:, 1]))
        print(f"{name:16s} {100 * a[:, 0].mean():12.2f} {100 * a[:, 0].max():11.2f} {1000 * np.median(a[:, 1]):15.2f}")
    s, g = summary["twin camera"], summary["GenSim 3 views"]
    print(f"{'ratio':16s} {s[0] / max(g[0], 1e-9):12.1f} {s[1] / max(g[1], 1e-9):11.1f} {s[2] / g[2]:15.2f}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    twin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
