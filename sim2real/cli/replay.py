"""``sim2real replay``: re-run another checkpoint on a campaign's recorded observations."""
from __future__ import annotations

from pathlib import Path

from sim2real.cli.policy_args import add_policy_args, load_checkpoint_policy


def register(sub) -> None:
    p = sub.add_parser("replay", help="would another checkpoint have done the same? (offline, recorded steps)",
                       description="Run another checkpoint on every recorded heightmap observation and goal of a "
                                   "campaign directory and compare its picks and places with the executed ones: "
                                   "pixel distance, same-object rate (twin), agreement per task. Interrupted, the "
                                   "same command resumes where it stopped.")
    p.add_argument("dir", metavar="DIR", help="campaign directory (trials.jsonl + per-trial artefacts)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="the other policy checkpoint")
    p.add_argument("--out", metavar="OUT", help="output directory (default: DIR/replay_<checkpoint name>)")
    p.add_argument("--radius-px", type=float, default=None, metavar="PX",
                   help="agreement radius in heightmap pixels (default: 10 = 3.1 cm)")
    p.add_argument("--limit", type=int, metavar="N", help="replay only the first N trials")
    add_policy_args(p)
    p.set_defaults(func=run)


def load_policy(checkpoint: str, args):
    """The checkpoint policy with the shared options (torch is only needed for replay)."""
    return load_checkpoint_policy(checkpoint, args)


def run(args) -> int:
    from sim2real.cli.paths import output_dir
    from sim2real.errors import InputError
    from sim2real.trials.provenance import sha256_file
    from sim2real.trials.replay import DEFAULT_RADIUS_PX, PROGRESS_FILE, replay_campaign, write_replay

    radius = DEFAULT_RADIUS_PX if args.radius_px is None else args.radius_px
    if not radius > 0:
        raise InputError(f"--radius-px must be > 0, got {radius}")
    out = output_dir(Path(args.out) if args.out else Path(args.dir) / f"replay_{Path(args.checkpoint).stem}", "--out")
    if not (Path(args.dir) / "trials.jsonl").is_file():
        raise InputError(f"{args.dir}: no trials.jsonl; give a campaign directory (the --out of `sim2real run`)")
    policy = load_policy(args.checkpoint, args)
    # resumable: each compared step is appended to OUT/replay_progress.jsonl; a rerun skips those
    sha = getattr(policy, "checkpoint_sha256", None) or sha256_file(args.checkpoint)
    result = replay_campaign(args.dir, policy, radius_px=radius, limit=args.limit, progress=True,
                             resume=out / PROGRESS_FILE, checkpoint_id=sha)
    path = write_replay(result, out, source=str(args.dir), checkpoint=str(args.checkpoint), radius_px=radius,
                        checkpoint_sha256=sha)
    overall = result.per_task["all"]
    rate = (lambda v: "n/a (no segmentation recorded)" if v is None else f"{100 * v:.1f}%")
    print(f"{overall['steps']} steps: agreement {100 * overall['agreement']:.1f}%, pick Δ "
          f"{overall['pick_dist_px_mean']:.1f} px, place Δ {overall['place_dist_px_mean']:.1f} px (mean); "
          f"same object: pick {rate(overall['same_pick_object_rate'])}, place {rate(overall['same_place_object_rate'])}")
    print(f"wrote {path}")
    return 0
