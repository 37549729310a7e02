"""``sim2real finetune``: fine-tune a GenSim / CLIPort checkpoint on demonstrations, as GenSim trains it."""
from __future__ import annotations

import json
from pathlib import Path

from sim2real.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a cliport checkpoint on GenSim-format demonstrations",
                       description="GenSim's training step reproduced exactly (samples as process_sample makes them, "
                                   "one Adam per module, CLIP frozen in float16). Writes OUT/last.ckpt (loadable by "
                                   "GenSim's agent.load() and `sim2real run --policy`), OUT/metrics.csv, "
                                   "OUT/loss_curve.png and a resume state. See docs/finetune.md.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="the 'cliport' agent checkpoint to start from")
    p.add_argument("--demos", required=True, action="append", metavar="DIR",
                   help="GenSim-format demonstration folder (repeat for several)")
    p.add_argument("--out", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="samples per step (GenSim's train.yaml uses 8; an epoch's last batch may be smaller)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (GenSim: 1e-4)")
    p.add_argument("--augment", choices=("none", "gensim", "sim2real"), default="gensim",
                   help="none; gensim = GenSim's perturb (random SE(2)); sim2real = perturb + colour/noise/depth noise")
    p.add_argument("--val", action="append", default=[], metavar="DIR",
                   help="held-out demonstration folder: adds pick/place error (mm) and rotation accuracy rows")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling and augmentation (default 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUTDIR")
    p.add_argument("--save-every", type=int, default=100, metavar="N",
                   help="write OUT/checkpoints/stepNNNNNN.ckpt, last.ckpt and the resume state every N steps")
    p.add_argument("--val-every", type=int, default=100, metavar="N", help="validate every N steps (with --val)")
    p.add_argument("--clip-precision", choices=("float16", "float32"), default="float16",
                   help="float16: GenSim's frozen float16 CLIP (exact, default); float32: faster on CPU, approximate")
    p.add_argument("--modules", choices=("both", "attention"), default="both",
                   help="both: GenSim's step (default); attention: train the pick module alone (cheap CPU runs)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from sim2real.training.loop import FinetuneConfig, finetune

    for d in args.demos + args.val:
        if not Path(d).is_dir():
            raise InputError(f"demonstration folder {d} does not exist; record one with `sim2real demos --out {d}`")
    if not Path(args.checkpoint).is_file():
        raise InputError(f"checkpoint {args.checkpoint} does not exist (give the path of a .ckpt file)")
    cfg = FinetuneConfig(checkpoint=args.checkpoint, demos=list(args.demos), out=args.out, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, augment=args.augment, val=list(args.val),
                         seed=args.seed, device=args.device, resume=args.resume, save_every=args.save_every,
                         val_every=args.val_every, clip_precision=args.clip_precision,
                         threads=args.threads, modules=args.modules,
                         progress=not args.no_progress)
    result = finetune(cfg)
    print(json.dumps(result))
    return 0
