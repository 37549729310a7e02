"""Single calibrated camera (the real robot's path) vs the simulator's 3-camera view (what the
policy saw in training), on the same twin scenes.

For each task x seed: reset the twin, render the twin camera (placed from its calibration YAML)
and GenSim's three RealSense D415 views, project both through sim2real.heightmap.project_frames,
and compare on the cells both see (colour not black in both maps): height RMSE (mm), mean
absolute colour difference (0-255), and the fraction of cells the single camera sees. The
baseline column is the noise-free single camera; the second column adds a D435-like depth model
(2 mm at 1 m, growing with z^2; 1% holes; edge holes), and the ratio is printed side by side.

    python bench/sim_vs_real_view.py --seeds 3
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def compare(single, fused) -> dict:
    """Metrics on cells visible in both heightmaps (colour not black)."""
    seen_s = single.color.sum(axis=2) > 0
    seen_f = fused.color.sum(axis=2) > 0
    both = seen_s & seen_f
    dh = single.height[both].astype(np.float64) - fused.height[both]
    dc = np.abs(single.color[both].astype(np.float64) - fused.color[both]).mean(axis=1)
    return {"height_rmse_mm": 1000 * float(np.sqrt(np.mean(dh ** 2))) if both.any() else float("nan"),
            "color_mad": float(dc.mean()) if both.any() else float("nan"),
            "coverage": float(both.sum() / max(1, seen_f.sum()))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--tasks", default="all")
    args = ap.parse_args()
    from sim2real.heightmap import project_frames
    from sim2real.tasks import load_all, resolve_many
    from sim2real.twin import Twin
    from sim2real.twin.camera import DepthNoise, gensim_views, render_view

    twin = Twin.from_config()
    noise = DepthNoise(sigma_m=0.002, hole_fraction=0.01, edge_holes=True)
    rng = np.random.default_rng(0)
    views = gensim_views()
    rows, t0 = [], time.perf_counter()
    print(f"{'task':24s} {'h RMSE mm':>10s} {'+noise':>8s} {'ratio':>6s} {'colour MAD':>10s} {'+noise':>8s} {'coverage':>8s}")
    for spec in resolve_many(args.tasks, load_all()):
        acc = []
        for seed in range(args.seeds):
            twin.start_trial(spec, seed)
            twin.scene.settle()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fused = project_frames([render_view(twin.scene.conn, v) for v in views])
                frame = render_view(twin.scene.conn, twin.camera.view)
                single = project_frames([frame])
                noisy = project_frames([render_view(twin.scene.conn, twin.camera.view, noise, rng)])
            acc.append((compare(single, fused), compare(noisy, fused)))
        m = {k: float(np.mean([a[0][k] for a in acc])) for k in acc[0][0]}
        n = {k: float(np.mean([a[1][k] for a in acc])) for k in acc[0][1]}
        rows.append((spec.name, m, n))
        print(f"{spec.name:24s} {m['height_rmse_mm']:10.2f} {n['height_rmse_mm']:8.2f} "
              f"{n['height_rmse_mm'] / m['height_rmse_mm']:6.2f} {m['color_mad']:10.1f} {n['color_mad']:8.1f} "
              f"{m['coverage']:8.3f}")
    allm = {k: float(np.mean([r[1][k] for r in rows])) for k in rows[0][1]}
    alln = {k: float(np.mean([r[2][k] for r in rows])) for k in rows[0][2]}
    print(f"{'mean':24s} {allm['height_rmse_mm']:10.2f} {alln['height_rmse_mm']:8.2f} "
          f"{alln['height_rmse_mm'] / allm['height_rmse_mm']:6.2f} {allm['color_mad']:10.1f} {alln['color_mad']:8.1f} "
          f"{allm['coverage']:8.3f}")
    print(f"({len(rows) * args.seeds} scenes in {time.perf_counter() - t0:.1f} s)")
    twin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
