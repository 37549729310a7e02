"""The policy options ``act``, ``run`` and ``replay`` share: one definition, one way to load.

``add_policy_args(parser)`` adds --device, --batchnorm, --clip-precision, --rotation and
--trust-checkpoint; ``load_checkpoint_policy(path, args)`` loads the checkpoint with them, showing
a spinner with the elapsed time on stderr (a GenSim checkpoint is ~1 GB and takes tens of seconds
on a laptop CPU).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path


def add_policy_args(p) -> None:
    """The checkpoint-policy options (defaults: the published evaluation setup, CPU)."""
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device of the policy (default cpu)")
    p.add_argument("--batchnorm", choices=("batch", "running"), default="batch",
                   help="batch: the reference evaluation's batch statistics (default, published setup); "
                        "running: eval mode")
    p.add_argument("--clip-precision", choices=("auto", "float16", "float16-emulated", "float32"), default="auto",
                   help="CLIP visual trunk arithmetic; auto = float16, the reference's (exact); float16-emulated is "
                        "~3.9x faster on CPU but only approximately equal")
    p.add_argument("--rotation", choices=("kornia-0.4", "kornia-0.5+"),
                   help="rotation numerics (default: the family's reference, see docs/policy.md)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that need pickle code execution (only for files you trust)")


def policy_kwargs(args) -> dict:
    """Keyword arguments of ``Policy.from_checkpoint`` from parsed options."""
    return {"device": args.device, "batchnorm": args.batchnorm, "clip_precision": args.clip_precision,
            "rotation": args.rotation, "trust": args.trust_checkpoint}


@contextmanager
def status(message: str, enabled: bool = True):
    """A rich spinner on stderr with the elapsed time; prints '<message>: done in N s' afterwards."""
    from sim2real.cli.paths import console as cli_console

    console = cli_console(stderr=True)
    t0 = time.monotonic()
    if not enabled:
        yield
        return
    with console.status(f"{message} ..."):
        yield
    console.print(f"{message}: done in {time.monotonic() - t0:.1f} s", highlight=False)


def load_checkpoint_policy(path, args, progress: bool = True):
    """``Policy.from_checkpoint(path, **policy_kwargs(args))`` behind a loading spinner.

    Raises:
        CheckpointError: no such file, or the policy dependencies are missing.
    """
    from sim2real.errors import CheckpointError

    if not Path(path).is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:  # lazy: pulls in torch
        from sim2real.policy import Policy
    except ImportError as e:
        raise CheckpointError(f"cannot load policies in this install ({e}); install the policy dependencies "
                              "(torch, open_clip)") from None
    size = Path(path).stat().st_size / 1e6
    with status(f"loading {Path(path).name} ({size:.0f} MB)", enabled=progress):
        return Policy.from_checkpoint(path, **policy_kwargs(args))
