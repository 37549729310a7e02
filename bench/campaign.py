"""Oracle campaign on the twin: wall time of the full 9-task protocol, success per task, and the
render time of one 640x480 frame with EGL vs TinyRenderer (side by side, same process).

    python bench/campaign.py --trials 10            # the 9 x 10 timing (acceptance: < 15 min)
    python bench/campaign.py --trials 20 --check    # the 9 x 20 oracle acceptance (>= 90% per task)

The campaign runs through `sim2real run --task all` (the real entry point: campaign loop, trial
log with per-step artefacts, report). Results go to bench/RESULTS_twin.md by hand.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def render_times(n: int = 20) -> dict:
    """Seconds per 640x480 frame of a task scene, per renderer (first frame excluded)."""
    from sim2real.tasks import load_all
    from sim2real.twin import Twin

    out = {}
    for renderer in ("egl", "tiny"):
        try:
            twin = Twin.from_config(renderer=renderer)
        except Exception as e:  # noqa: BLE001 - report a renderer that does not load
            out[renderer] = f"unavailable: {e}"
            continue
        twin.start_trial(load_all()["build-wheel"], 0)
        from sim2real.twin.camera import render_view

        for _ in range(5):  # the first EGL frames after a reset are slow (context warm-up)
            render_view(twin.scene.conn, twin.camera.view)
        t = time.perf_counter()
        for _ in range(n):
            render_view(twin.scene.conn, twin.camera.view)
        out[renderer] = (time.perf_counter() - t) / n
        twin.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="campaign directory (default: a temp dir)")
    ap.add_argument("--check", action="store_true", help="exit 1 unless every task succeeds in >= 90%% of trials")
    ap.add_argument("--skip-render", action="store_true")
    args = ap.parse_args()
    from sim2real.cli import main as cli
    from sim2real.trials.log import load_trials

    if not args.skip_render:
        rt = render_times()
        egl, tiny = rt.get("egl"), rt.get("tiny")
        print(f"render 640x480: egl {egl if isinstance(egl, str) else f'{egl * 1000:.1f} ms'}, "
              f"tiny {tiny if isinstance(tiny, str) else f'{tiny * 1000:.1f} ms'}"
              + (f", tiny/egl = {tiny / egl:.1f}x" if isinstance(egl, float) and isinstance(tiny, float) else ""))
    out = Path(args.out or tempfile.mkdtemp(prefix="sim2real_campaign_"))
    t0 = time.perf_counter()
    rc = cli(["run", "--task", "all", "--robot", "sim", "--policy", "oracle", "--trials", str(args.trials),
              "--out", str(out), "--seed", str(args.seed), "--no-progress"])
    wall = time.perf_counter() - t0
    records = load_trials(out)
    per_task = {}
    for r in records:
        s, n = per_task.get(r["task"], (0, 0))
        per_task[r["task"]] = (s + int(bool(r["success"])), n + 1)
    steps = sum(r["steps"] for r in records)
    print(f"campaign 9 x {args.trials}: {wall:.1f} s wall ({wall / 60:.2f} min; budget 15 min = "
          f"{wall / 900:.2f} of it), {len(records)} trials, {steps} pick-and-place steps, "
          f"{wall / max(1, len(records)):.2f} s/trial, {wall / max(1, steps):.2f} s/step")
    for task, (s, n) in per_task.items():
        print(f"  {task:24s} {s:3d}/{n:<3d} {100 * s / n:5.1f}%")
    print(json.dumps({"wall_s": wall, "trials": len(records), "steps": steps, "per_task": per_task, "rc": rc}))
    if args.check and any(s / n < 0.9 for s, n in per_task.values()):
        print("FAIL: some task is below 90% oracle success")
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
