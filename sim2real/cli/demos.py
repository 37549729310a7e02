"""``sim2real demos``: record oracle demonstrations in the twin, in GenSim's dataset format.

    sim2real demos --task put-block-in-bowl --robot sim --episodes 10 --out data/put-block-in-bowl-train
    sim2real demos --task stack-block --episodes 5 --out data/stack-block-train --view camera

``--out`` is a split folder ``{task}-{train|val|test}`` (GenSim's ``data_dir/{task}-{mode}``); it is
resumed and appended to: the command records until the folder holds ``--episodes`` episodes, new ones
take the next index and seed. ``--view gensim`` (default) stores the simulator's three D415 images,
which GenSim's own ``RavensDataset`` / ``train.py`` read unchanged; ``--view camera`` stores what the
real robot sees (our calibrated camera and the heightmap we make of it). See docs/demos.md.
"""
from __future__ import annotations

import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demos", help="record oracle demonstrations in the twin (GenSim's dataset format)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="one task name or alias (e.g. put-block-in-bowl)")
    p.add_argument("--robot", default="sim", help="'sim' (the twin; real-robot demonstrations are recorded with "
                                                  "the operator console)")
    p.add_argument("--episodes", type=int, required=True, metavar="N",
                   help="episodes the folder should hold (GenSim's n); already recorded ones count")
    p.add_argument("--out", required=True, metavar="DIR", help="split folder, e.g. data/put-block-in-bowl-train")
    p.add_argument("--view", choices=["gensim", "camera"], default="gensim",
                   help="gensim: the simulator's 3 D415 cameras (GenSim reads it unchanged; default); camera: our "
                        "calibrated camera + intrinsics, pose and heightmap per step")
    p.add_argument("--split", choices=["train", "val", "test"],
                   help="GenSim's seed convention: train 0,2,4..; val 1,3,..; test 10001,10003,.. "
                        "(default: from DIR's -train/-val/-test suffix, else train)")
    p.add_argument("--seed", type=int, help="first seed of a new folder (default: the split's); a resumed folder "
                                            "continues after its largest seed")
    p.add_argument("--max-attempts", type=int, help="seeds to try in this run (default 3 x N, as GenSim)")
    p.add_argument("--max-steps", type=int, help="override the task's step budget")
    p.add_argument("--arm", choices=["ur5", "xarm6"], help="twin arm (default: config/robots/sim.yaml)")
    p.add_argument("--tool", choices=["suction", "gripper"], help="twin end effector (default: config)")
    p.add_argument("--calibration", metavar="YAML", help="calibration the camera view's frames are stamped with "
                                                         "(default camera.calibrated in config/robots/sim.yaml)")
    p.add_argument("--renderer", choices=["egl", "tiny"],
                   help="force a renderer (default: tiny for --view gensim, as GenSim renders; else EGL if it loads)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from sim2real.demos.record import prepare, record_demos, split_of
    from sim2real.errors import InputError
    from sim2real.tasks import resolve

    console = Console(stderr=True)
    if args.robot != "sim":
        raise InputError(f"--robot {args.robot}: `sim2real demos` records oracle demonstrations in the twin "
                         "(--robot sim); record real-robot demonstrations with the operator console")
    spec = resolve(args.task)
    split = args.split or split_of(args.out) or "train"
    had, first, attempts = prepare(args.out, args.view, split, args.episodes, args.seed, args.max_attempts)
    if args.max_steps is not None and args.max_steps < 1:
        raise InputError(f"--max-steps must be >= 1, got {args.max_steps}")
    if had >= args.episodes:
        console.print(f"{args.out} already holds {had} episode(s) (>= --episodes {args.episodes}); nothing to record")
        return 0
    if args.seed is not None and had:
        console.print(f"note: {args.out} already has episodes; --seed is ignored, continuing at seed {first}",
                      markup=False)
    if split_of(args.out) is None:
        console.print(f"note: GenSim's train.py reads DATA_DIR/{spec.name}-{split}; name the folder like that")

    from sim2real.twin import Twin, load_twin_config

    # GenSim renders its D415 views with PyBullet's TinyRenderer (OpenGL requested in a DIRECT
    # connection without the EGL plugin); EGL rasterises the table ~0.5 mm lower in the heightmap.
    renderer = args.renderer or ("tiny" if args.view == "gensim" else None)
    twin = Twin(load_twin_config(None, args.arm, args.tool), calibration=args.calibration, renderer=renderer)
    if args.view == "gensim" and twin.renderer != "tiny":
        console.print(f"note: renderer {twin.renderer}; GenSim's own images come from TinyRenderer (--renderer tiny)")
    console.print(f"demos: {spec.name}, view {args.view}, split {split}: {had} recorded, recording "
                  f"{args.episodes - had} more from seed {first} (at most {attempts} attempts) -> {args.out} "
                  f"(twin {twin.config.robot} + {twin.config.tool}, renderer {twin.renderer})", markup=False)
    t0 = time.monotonic()
    try:
        with _Bar(console, args.episodes, had, enabled=not args.no_progress) as bar:
            col = record_demos(twin, spec, args.out, args.episodes, args.view, split, args.seed, args.max_attempts,
                               args.max_steps, on_attempt=bar.update)
    finally:
        twin.close()
    _summary(console, col, time.monotonic() - t0)
    return 0 if col.total >= args.episodes else 1


class _Bar:
    """A rich progress bar of saved episodes with the attempts and ETA (silent when disabled)."""

    def __init__(self, console, total: int, done: int, enabled: bool = True):
        self.enabled = enabled
        if enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(TextColumn("[bold]demos[/]"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                     TimeRemainingColumn(), console=console)
            self.task = self.progress.add_task("demos", total=total, completed=done, note="")

    def __enter__(self):
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()

    def update(self, attempt, col) -> None:
        if not self.enabled:
            return
        note = f"seed {attempt.seed}: {'saved' if attempt.success else attempt.reason} ({attempt.seconds:.1f} s)"
        self.progress.update(self.task, completed=col.total, note=note)


def _summary(console, col, seconds: float) -> None:
    n_new = len(col.saved)
    per = seconds / max(1, n_new + len(col.failed))
    size = sum(p.stat().st_size for p in Path(col.out).glob("*/*.pkl")) / 1e6
    console.print(f"saved {n_new} new episode(s) {[i for i, _ in col.saved]}, seeds {[s for _, s in col.saved]}; "
                  f"{len(col.failed)} attempt(s) failed; {col.total}/{col.target} in {col.out} ({size:.1f} MB); "
                  f"{seconds:.1f} s ({per:.1f} s per attempt)", markup=False)
    for a in col.failed[:10]:
        console.print(f"  seed {a.seed}: {a.reason} after {a.steps} step(s), reward {a.total_reward:.2f}", markup=False)
    if col.total < col.target:
        console.print(f"[red]only {col.total} of {col.target} episodes: ran out of attempts; re-run the same command "
                      "to continue (or raise --max-attempts)[/]")
