"""Learning end to end on the twin: record demos, fine-tune a random-weight checkpoint, evaluate.

1. a random-weight GenSim checkpoint (``sim2real.policy.random_checkpoint``: no pretrained weights
   can be downloaded here);
2. twin demonstrations of one task through the real camera path (``sim2real demos --view camera``):
   a training folder of max(--demos) episodes and a held-out folder of --val-episodes;
3. for each number of demos n in --demos: ``sim2real.training.finetune`` on the first n episodes,
   checkpoints and held-out pick/place errors at every step count in --steps;
4. twin success of each checkpoint through ``sim2real run --policy CKPT`` (--trials per point, the
   same seeds for every point) unless --no-run.

Prints one table (demos x steps: held-out pick/place error in mm, rotation accuracy, twin success)
and writes OUT/learning_curve.json and OUT/learning_curve.png.

    python bench/learning_curve.py --out runs/learning_curve --device cuda               # the real run (GPU)
    python bench/learning_curve.py --out runs/lc_cpu --demos 1,5 --steps 25,50,100 \\
        --modules attention --clip-precision float32 --no-run                              # what a CPU allows
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sim2real(*args) -> None:
    """Run a ``sim2real`` subcommand (the installed CLI's code, this checkout)."""
    subprocess.run([sys.executable, "-m", "sim2real", *map(str, args)], check=True, cwd=REPO)


def record(task: str, out: Path, episodes: int, split: str, view: str) -> Path:
    if not (out / "action").is_dir() or len(list((out / "action").glob("*.pkl"))) < episodes:
        sim2real("demos", "--task", task, "--robot", "sim", "--episodes", episodes, "--out", out,
                 "--view", view, "--split", split, "--no-progress")
    return out


def subset(folder: Path, n: int):
    """An EpisodeSource over the first n episodes of a demonstration folder."""
    from sim2real.demos.dataset import DemoDataset
    from sim2real.training.loop import EpisodeSource

    ds = DemoDataset(folder)
    if ds.n_episodes < n:
        raise SystemExit(f"{folder} holds {ds.n_episodes} episodes, fewer than {n}")
    return EpisodeSource(f"{folder.name}[:{n}]", n, ds.episode, ds.image)


def twin_success(ckpt: Path, task: str, trials: int, seed: int, out: Path, device: str) -> float:
    sim2real("run", "--task", task, "--robot", "sim", "--policy", ckpt, "--trials", trials, "--seed", seed,
             "--out", out, "--device", device, "--no-progress")
    rows = [json.loads(line) for line in open(out / "trials.jsonl") if line.strip()]
    return sum(bool(r.get("success")) for r in rows) / max(len(rows), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--task", default="put-block-in-bowl")
    ap.add_argument("--view", choices=("camera", "gensim"), default="camera")
    ap.add_argument("--demos", default="1,5,10", help="comma list of demonstration counts")
    ap.add_argument("--steps", default="100,500,1000", help="comma list of step counts to evaluate at")
    ap.add_argument("--val-episodes", type=int, default=3)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--augment", default="gensim")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clip-precision", choices=("float16", "float32"), default="float16")
    ap.add_argument("--modules", choices=("both", "attention"), default="both")
    ap.add_argument("--no-run", action="store_true", help="skip the twin success trials")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from sim2real.policy.random_checkpoint import write_random_checkpoint
    from sim2real.training.loop import FinetuneConfig, finetune, plot_curve  # noqa: F401

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demos = [int(x) for x in args.demos.split(",")]
    steps = sorted(int(x) for x in args.steps.split(","))
    ckpt = out / "random.ckpt"
    if not ckpt.is_file():
        write_random_checkpoint(ckpt, "gensim", seed=args.seed)
    train_dir = record(args.task, out / "demos" / f"{args.task}-train", max(demos), "train", args.view)
    val_dir = record(args.task, out / "demos" / f"{args.task}-val", args.val_episodes, "val", args.view)
    val_source = subset(val_dir, args.val_episodes)
    results = []
    for n in demos:
        run_dir = out / f"n{n}"
        save_every = steps[0] if len(steps) == 1 else min(b - a for a, b in zip([0] + steps, steps))
        cfg = FinetuneConfig(checkpoint=str(ckpt), demos=[str(train_dir)], out=str(run_dir), steps=steps[-1],
                             batch_size=args.batch_size, augment=args.augment, seed=args.seed, device=args.device,
                             resume=True, save_every=save_every, val_every=save_every,
                             clip_precision=args.clip_precision, modules=args.modules)
        t = time.time()
        finetune(cfg, sources=[subset(train_dir, n)], val_sources=[val_source])
        print(f"n={n}: {steps[-1]} steps in {time.time() - t:.0f} s", flush=True)
        import csv
        rows = {int(r["step"]): r for r in csv.DictReader(open(run_dir / "metrics.csv")) if r["kind"] == "val"}
        for s in steps:
            r = rows.get(s, {})
            entry = {"demos": n, "steps": s, "pick_err_mm": float(r.get("pick_err_mm", "nan") or "nan"),
                     "place_err_mm": float(r.get("place_err_mm", "nan") or "nan"),
                     "rot_acc": float(r.get("rot_acc", "nan") or "nan"), "twin_success": None}
            if not args.no_run:
                ck = run_dir / "checkpoints" / f"step{s:06d}.ckpt"
                entry["twin_success"] = twin_success(ck, args.task, args.trials, 10000, run_dir / f"run{s}", args.device)
            results.append(entry)
    base = {"demos": 0, "steps": 0, "twin_success": None}
    if not args.no_run:
        base["twin_success"] = twin_success(ckpt, args.task, args.trials, 10000, out / "run_random", args.device)
    (out / "learning_curve.json").write_text(json.dumps({"args": vars(args), "random": base, "results": results}, indent=1))
    print(f"\n{args.task}, view {args.view}, modules {args.modules}, CLIP {args.clip_precision}, {args.device}")
    print("demos  steps  pick_err_mm  place_err_mm  rot_acc  twin_success")
    for e in results:
        print(f"{e['demos']:5d}  {e['steps']:5d}  {e['pick_err_mm']:11.1f}  {e['place_err_mm']:12.1f}  "
              f"{e['rot_acc']:7.2f}  {e['twin_success']}")
    _plot(results, out / "learning_curve.png")


def _plot(results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in sorted({e["demos"] for e in results}):
        pts = [e for e in results if e["demos"] == n]
        ax.plot([e["steps"] for e in pts], [e["pick_err_mm"] for e in pts], "o-", label=f"pick, {n} demos")
        if any(e["place_err_mm"] == e["place_err_mm"] for e in pts):
            ax.plot([e["steps"] for e in pts], [e["place_err_mm"] for e in pts], "s--", label=f"place, {n} demos")
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("held-out error (mm)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


if __name__ == "__main__":
    main()
