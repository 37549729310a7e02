"""bench/policy: sim2real's Policy against the plain reference algorithm, same checkpoint, one run.

    python bench/policy.py [--family gensim|cliport] [--checkpoint CKPT] [--repeats 1]

Each side runs in its own child process (so that peak memory is that side's alone) on the
same random-weight checkpoint and the same input: the checkpoint is loaded, one decision
(attention + transport) warms up, then ``--repeats`` decisions are timed. Printed per side:
load time, time per decision, peak RSS (``ru_maxrss``) and peak RSS above the process's
baseline after ``import torch``; then the ratios and the largest logit differences to the
reference. Sides:

* ``reference``: :class:`sim2real.policy.reference.ReferencePolicy` -- three CLIP copies in
  float16, text encoded per stream per call, autograd on, full rotations (batch statistics;
  the BatchNorm mode does not change its cost).
* ``policy (batch)``: ``Policy`` defaults -- batch statistics, exact float16 CLIP.
* ``policy (batch:float16-emulated)``: the opt-in fast CLIP arithmetic.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GOAL = "put the red block in the green bowl"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _side(kind: str, ckpt: str, repeats: int, out_npz: str, queue) -> None:
    sys.path[:0] = [str(REPO), str(REPO / "test")]  # a spawned child starts with a fresh sys.path
    import torch
    from ckpt_factory import scene_image

    base = _current_rss_mb()
    img = scene_image()
    t0 = time.perf_counter()
    if kind == "reference":
        from sim2real.policy.reference import ReferencePolicy
        pol = ReferencePolicy(ckpt, batchnorm="batch")

        def decide():
            return pol.act(img, GOAL)
    else:
        from sim2real.policy import Policy
        mode, _, precision = kind.partition(":")
        pol = Policy.from_checkpoint(ckpt, batchnorm=mode, clip_precision=precision or "auto")

        def decide():
            a = pol.act(img, GOAL)
            return {"pick": a.pick.pixel, "place": (*a.place.pixel, a.info["place_rotation_bin"]),
                    "pick_logits": a.pick_logits, "place_logits": a.place_logits}
    load_s = time.perf_counter() - t0
    res = decide()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = decide()
        times.append(time.perf_counter() - t)
    np.savez(out_npz, pick_logits=res["pick_logits"], place_logits=res["place_logits"])
    queue.put({"side": kind, "load_s": load_s, "decision_s": float(np.median(times)), "times": times,
               "peak_rss_mb": _rss_mb(), "baseline_mb": base, "pick": list(res["pick"]),
               "place": list(res["place"]), "threads": torch.get_num_threads(),
               "clip_precision": getattr(pol, "clip_precision", "float16")})


def run_side(kind, ckpt, repeats, out_npz):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_side, args=(kind, ckpt, repeats, out_npz, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=("gensim", "cliport"), default="gensim")
    ap.add_argument("--checkpoint", help="use this checkpoint instead of a random-weight one")
    ap.add_argument("--repeats", type=int, default=1, help="timed decisions per side after one warm-up")
    ap.add_argument("--sides", default="reference,batch,batch:float16-emulated",
                    help="comma list: reference, or BATCHNORM[:CLIP_PRECISION] for the Policy")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_policy_"))
    ckpt = args.checkpoint
    if ckpt is None:
        sys.path.insert(0, str(REPO / "test"))
        from ckpt_factory import make_checkpoint
        ckpt = str(make_checkpoint(tmp / f"{args.family}.ckpt", args.family, seed=0))
        print(f"random-weight {args.family} checkpoint: {ckpt}")
    results = {}
    for side in args.sides.split(","):
        print(f"running {side} ...", flush=True)
        results[side] = run_side(side, ckpt, args.repeats, str(tmp / f"{side}.npz"))
    maps = {s: np.load(tmp / f"{s}.npz") for s in results}
    print(f"\n{'side':<34}{'CLIP':<18}{'load s':>8}{'s/decision':>12}{'peak RSS MB':>13}{'above base MB':>15}"
          f"  pick        place")
    for s, r in results.items():
        name = "reference" if s == "reference" else f"policy ({s})"
        print(f"{name:<34}{r['clip_precision']:<18}{r['load_s']:>8.1f}{r['decision_s']:>12.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_rss_mb'] - r['baseline_mb']:>15.0f}  {tuple(r['pick'])}  {tuple(r['place'])}")
    if "reference" in results:
        ref = results["reference"]
        for s, r in results.items():
            if s == "reference":
                continue
            same_mode = s.startswith("batch")  # the reference side uses batch statistics
            d_pick = float(np.abs(maps[s]["pick_logits"] - maps["reference"]["pick_logits"]).max()) if same_mode else float("nan")
            d_place = float(np.abs(maps[s]["place_logits"] - maps["reference"]["place_logits"]).max()) if same_mode else float("nan")
            r.update(speedup=ref["decision_s"] / r["decision_s"], memory_ratio=r["peak_rss_mb"] / ref["peak_rss_mb"],
                     memory_ratio_above_base=(r["peak_rss_mb"] - r["baseline_mb"]) / (ref["peak_rss_mb"] - ref["baseline_mb"]),
                     max_abs_diff_pick=d_pick, max_abs_diff_place=d_place)
            print(f"policy ({s}) vs reference: {r['speedup']:.2f}x faster per decision, peak memory "
                  f"{100 * r['memory_ratio']:.0f}% ({100 * r['memory_ratio_above_base']:.0f}% above baseline); "
                  + (f"max |d logits| pick {d_pick:.3g}, place {d_place:.3g}; argmax "
                     f"{'identical' if r['pick'] == ref['pick'] and r['place'] == ref['place'] else 'DIFFERENT'}"
                     if same_mode else "(other BatchNorm mode: logits not comparable)"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
