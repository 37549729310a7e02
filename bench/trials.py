"""Benchmarks of the trial logger and the gallery (python bench/trials.py [--trials N]).

Each figure is printed next to a baseline measured in the same process:

1. commit of one trial (3 steps of a 640x480 RGB-D frame + heightmap + logit maps):
   TrialLog (fsync per file and record, atomic rename, compressed npz) vs a naive writer
   (np.savez + json append, no fsync, no rename) -- the price of crash safety;
2. the same with compress=False;
3. rosbag2 (mcap) export of the trial;
4. one gallery step image: the PIL renderer vs a 4-panel matplotlib figure (the first version).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim2real.action import PickPlaceAction, PixelPose  # noqa: E402
from sim2real.camera import CameraIntrinsics, RGBDFrame  # noqa: E402
from sim2real.heightmap import HeightmapObservation  # noqa: E402
from sim2real.trials.log import TrialLog, load_steps, serialise_step  # noqa: E402
from sim2real.workspace import GENSIM_WORKSPACE  # noqa: E402

STEPS = 3


def make_step(rng) -> dict:
    """A realistic step: one 640x480 RGB-D frame, the heightmap, pick and place logits."""
    # camera-like content: smooth shading plus sensor noise (pure noise would not compress at all)
    yy, xx = np.mgrid[0:480, 0:640]
    depth = (0.8 + 0.1 * yy / 480 + 0.002 * rng.standard_normal((480, 640))).astype(np.float32)
    shade = (90 + 60 * xx / 640 + 30 * yy / 480)[..., None] + rng.normal(0, 3, (480, 640, 3))
    color = np.clip(shade * np.array([1.0, 0.9, 0.8]), 0, 255).astype(np.uint8)
    frame = RGBDFrame(color, depth, CameraIntrinsics(640, 480, 615.0, 615.0, 320.0, 240.0))
    height = np.zeros((320, 160), np.float32)
    height[100:120, 50:70] = 0.04
    hm = np.full((320, 160, 3), 120, np.uint8)
    hm[100:120, 50:70] = (200, 30, 30)
    obs = HeightmapObservation(hm, height, GENSIM_WORKSPACE)
    action = PickPlaceAction(PixelPose.from_pixel((110, 60), 0.0, height, GENSIM_WORKSPACE),
                             PixelPose.from_pixel((250, 120), 1.0, height, GENSIM_WORKSPACE),
                             rng.standard_normal((320, 160)).astype(np.float32),
                             rng.standard_normal((36, 320, 160)).astype(np.float32))
    return {"frames": [frame], "observation": obs, "goal": "put the red block in the green bowl", "action": action,
            "safety": {"ok": True, "reasons": []}, "timings": {"policy_s": 0.3},
            "executed": {"pick": (action.pick.xyz, action.pick.quat_xyzw)}, "error": None}


def record() -> dict:
    return {"success": True, "steps": STEPS, "reason": "success", "policy": "bench",
            "label": {"outcome": "success", "category": None, "note": "", "by": "auto"}}


def bench_trial_log(steps, n: int, root: Path, **kw) -> tuple:
    """(seconds per committed trial, campaign directory)."""
    out = root / f"log_{len(list(root.iterdir()))}"
    with TrialLog(out, **kw) as log:
        t0 = time.perf_counter()
        for k in range(n):
            with log.begin("bench", k, k) as w:
                for s in steps:
                    w.add_step(s)
                w.finish(record())
        return (time.perf_counter() - t0) / n, out


def bench_naive(steps, n: int, root: Path) -> float:
    out = root / f"naive_{len(list(root.iterdir()))}"
    out.mkdir()
    t0 = time.perf_counter()
    with open(out / "trials.jsonl", "a") as f:
        for k in range(n):
            d = out / f"{k:04d}"
            d.mkdir()
            for i, s in enumerate(steps):
                arrays, meta = serialise_step(s, i)
                np.savez(d / f"step_{i:03d}.npz", **arrays)
                (d / f"step_{i:03d}.json").write_text(json.dumps(meta))
            f.write(json.dumps({**record(), "task": "bench", "trial": k, "seed": k}) + "\n")
            f.flush()
    return (time.perf_counter() - t0) / n


def bench_bag(root: Path) -> float:
    from sim2real.trials.rosbag import write_trial_bag

    trial = next(p for p in root.glob("log_*/trials/bench/0000"))
    rec = json.loads((trial / "trial.json").read_text())
    t0 = time.perf_counter()
    write_trial_bag(trial, rec, root / "bag_bench")
    return time.perf_counter() - t0


def bench_gallery(root: Path, reps: int = 5) -> tuple:
    from sim2real.trials.gallery import _plot_step
    from sim2real.trials.report import _pyplot

    step = load_steps(next(p for p in root.glob("log_*/trials/bench/0000")))[0]
    _plot_step(step, root / "warm.png", "warm-up")
    t0 = time.perf_counter()
    for i in range(reps):
        _plot_step(step, root / f"pil_{i}.png", "bench")
    pil = (time.perf_counter() - t0) / reps

    plt = _pyplot()

    def mpl_figure(path):
        fig, axes = plt.subplots(1, 4, figsize=(12, 6.4), constrained_layout=True)
        a = step.arrays
        axes[0].imshow(a["hm_color"])
        im = axes[1].imshow(a["hm_height"], cmap="viridis")
        fig.colorbar(im, ax=axes[1], shrink=0.6)
        for ax, key in ((axes[2], "pick_logits"), (axes[3], "place_logits_max")):
            ax.imshow(a["hm_color"].mean(axis=2), cmap="gray")
            ax.imshow(a[key].astype(np.float32), cmap="hot", alpha=0.6)
        for ax in axes:
            ax.plot(60, 110, "o", mfc="none")
            ax.set_xlabel("column (x)")
            ax.set_ylabel("row (y)")
        fig.savefig(path, dpi=70)
        plt.close(fig)

    mpl_figure(root / "warm_mpl.png")
    t0 = time.perf_counter()
    for i in range(reps):
        mpl_figure(root / f"mpl_{i}.png")
    return pil, (time.perf_counter() - t0) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="trials per measurement")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    steps = [make_step(rng) for _ in range(STEPS)]
    root = Path(tempfile.mkdtemp(prefix="bench_trials_"))
    try:
        bench_naive(steps, 1, root)  # warm-up (imports, page cache)
        naive = bench_naive(steps, args.trials, root)
        safe, out_c = bench_trial_log(steps, args.trials, root, compress=True, rosbag=False)
        size = sum(p.stat().st_size for p in (out_c / "trials/bench/0000").iterdir())
        safe_raw, out_raw = bench_trial_log(steps, args.trials, root, compress=False, rosbag=False)
        size_raw = sum(p.stat().st_size for p in (out_raw / "trials/bench/0000").iterdir())
        default, _ = bench_trial_log(steps, args.trials, root)
        naive_raw = naive
        bag = bench_bag(root)
        pil, mpl = bench_gallery(root)
        print(f"trial = {STEPS} steps of a 640x480 RGB-D frame + 320x160 heightmap + pick/place logit maps: "
              f"{size_raw / 1e6:.1f} MB on disk ({size / 1e6:.1f} MB compressed)")
        print(f"commit per trial, TrialLog no bag, compress=False (fsync)   : {1000 * safe_raw:8.1f} ms   "
              f"naive np.savez, no fsync: {1000 * naive_raw:8.1f} ms   ratio {safe_raw / naive_raw:.2f}x")
        print(f"commit per trial, TrialLog no bag, compress=True            : {1000 * safe:8.1f} ms   "
              f"naive np.savez, no fsync: {1000 * naive:8.1f} ms   ratio {safe / naive:.2f}x")
        print(f"commit per trial, TrialLog default (+ rosbag2 per trial)    : {1000 * default:8.1f} ms   "
              f"naive np.savez, no fsync: {1000 * naive:8.1f} ms   ratio {default / naive:.2f}x")
        print(f"rosbag2 (mcap) export of one trial                          : {1000 * bag:8.1f} ms   "
              f"(= {bag / safe_raw:.2f}x the commit without bag)")
        print(f"gallery step image, PIL renderer                            : {1000 * pil:8.1f} ms   "
              f"matplotlib 4-panel figure: {1000 * mpl:8.1f} ms   ratio {mpl / pil:.1f}x faster")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
