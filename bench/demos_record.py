"""Cost and content of recorded demonstrations, against plain oracle trials in the same process.

For each task x seed: a plain oracle trial (``Twin.run_trial``, the baseline), then the same seed
recorded in the gensim view and in the camera view (``sim2real.demos.record.record_episode`` +
``save_episode`` into a temporary folder). Prints seconds per episode with the ratio to the plain
trial, MB per episode, the oracle's success rate, and, over every stored step, the empty cells and
the table height of ``DemoDataset.image`` (GenSim's own data: 0.02 % empty, table 1.6 mm).

    python bench/demos_record.py --seeds 1                  # the 9 real-world tasks, TinyRenderer
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1, help="seeds per task (train seeds 0, 2, ...)")
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--renderer", default="tiny", choices=["tiny", "egl"])
    args = ap.parse_args()
    from sim2real.demos import DemoDataset, save_episode
    from sim2real.demos.record import record_episode
    from sim2real.tasks import resolve_many
    from sim2real.twin import Twin

    twin = Twin.from_config(renderer=args.renderer)
    specs = resolve_many(args.tasks)
    rows = {"plain trial": [], "gensim view": [], "camera view": []}
    extra = {"gensim view": [], "camera view": []}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            for k in range(args.seeds):
                seed = 2 * k
                t0 = time.perf_counter()
                result = twin.run_trial(spec, seed, "oracle")
                rows["plain trial"].append((time.perf_counter() - t0, bool(result.success)))
                for view in ("gensim", "camera"):
                    t0 = time.perf_counter()
                    attempt = record_episode(twin, spec, seed, view)
                    root = Path(tmp) / view / f"{spec.name}-train"
                    if attempt.success:
                        save_episode(root, attempt.episode, seed)
                    rows[f"{view} view"].append((time.perf_counter() - t0, attempt.success))
            print(f"{spec.name}: done", file=sys.stderr)
        for view in ("gensim", "camera"):
            for root in sorted((Path(tmp) / view).glob("*-train")):
                ds = DemoDataset(root)
                for i in range(ds.n_episodes):
                    size = sum((root / f / ds._names[i]).stat().st_size for f in ("action", "color", "depth",
                                                                                  "info", "reward"))
                    steps = ds.episode(i)
                    stats = []
                    for obs, _, _, info in steps:
                        img = ds.image(obs, info)
                        h = img[..., 3]
                        stats.append((float((img[..., :3].sum(-1) == 0).mean()),
                                      float(np.median(h[(h > 0) & (h < 0.005)]))))
                    extra[f"{view} view"].append((size / 1e6, len(steps) - 1, stats))
    base = np.mean([t for t, _ in rows["plain trial"]])
    print(f"{len(specs)} task(s) x {args.seeds} seed(s), renderer {twin.renderer}")
    print("| what | s / episode | vs plain trial | oracle success | MB / episode | actions / episode | "
          "empty cells mean / max | table median |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        t = np.mean([x for x, _ in r])
        ok = np.mean([s for _, s in r])
        if name in extra and extra[name]:
            e = extra[name]
            st = [s for _, _, ss in e for s in ss]
            cells = (f"{np.mean([m for m, _, _ in e]):.1f} | {np.mean([n for _, n, _ in e]):.2f} | "
                     f"{100 * np.mean([a for a, _ in st]):.2f} % / {100 * np.max([a for a, _ in st]):.2f} % | "
                     f"{1000 * np.median([b for _, b in st]):.2f} mm")
        else:
            cells = "- | - | - | -"
        print(f"| {name} | {t:.2f} | {t / base:.2f}x | {100 * ok:.0f} % | {cells} |")
    twin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
