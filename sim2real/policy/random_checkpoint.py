"""A random-weight checkpoint of either family, for trying the pipeline without a trained model.

    python -m sim2real.policy.random_checkpoint --family gensim --out runs/random_gensim.ckpt

The keys, shapes and dtypes are :func:`sim2real.policy.checkpoint.expected_entries` (derived from
the networks, equal to the published key specs), so the file loads, is detected as its family and
runs a finite forward pass (fp16 CLIP included); its picks and places mean nothing. The file is a
Lightning-style dict of plain types (``weights_only`` loadable). ~1 GB for ``cliport``, less for
``gensim``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

_CLIP = ".clip_rn50."


def _random_entry(key: str, shape: tuple, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """One tensor with a scale that keeps a forward pass finite."""
    name = key.rsplit(".", 1)[-1]
    if dtype == torch.int64:
        return torch.full(shape, 1000, dtype=torch.int64)

    def randn(std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std + mean

    if name == "running_var":
        t = torch.rand(shape, generator=gen) + 0.5
    elif name == "running_mean":
        t = randn(0.1)
    elif name == "logit_scale":
        t = torch.full(shape, math.log(1 / 0.07))
    elif "embedding" in key and "positional" not in key:
        t = randn(0.02)
    elif "positional_embedding" in key:
        t = randn(0.01 if key.endswith("clip_rn50.positional_embedding") else 2048 ** -0.5)
    elif len(shape) >= 2:  # conv / linear weights, text projection: LeCun scale
        fan_in = shape[0] if name == "text_projection" else math.prod(shape[1:])
        t = randn(fan_in ** -0.5)
    elif name == "weight":  # BatchNorm / LayerNorm scale
        t = randn(0.1, 1.0)
    else:  # biases
        t = randn(0.05)
    return t.to(dtype)


def random_state_dict(family: str, seed: int = 0) -> dict:
    """``{key: tensor}`` of ``family`` ('gensim' | 'cliport'); the three CLIP copies are identical,
    as in trained checkpoints."""
    from sim2real.policy.checkpoint import expected_entries

    gen = torch.Generator().manual_seed(seed)
    clip: dict = {}
    out = {}
    for key, (shape, dtype) in expected_entries(family).items():
        if _CLIP in key:
            sub = key.split(_CLIP, 1)[1]
            if sub not in clip:
                clip[sub] = _random_entry(key, shape, dtype, gen)
            out[key] = clip[sub].clone()
        else:
            out[key] = _random_entry(key, shape, dtype, gen)
    return out


def write_random_checkpoint(path, family: str = "gensim", seed: int = 0) -> Path:
    """Save a random ``family`` checkpoint at ``path`` (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "global_step": 0, "state_dict": random_state_dict(family, seed)}, path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim2real.policy.random_checkpoint",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--family", choices=("gensim", "cliport"), default="gensim")
    ap.add_argument("--out", default="runs/random_gensim.ckpt", metavar="CKPT")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from sim2real.cli.paths import output_file
    from sim2real.errors import Sim2RealError

    try:
        output_file(args.out, "--out")
    except Sim2RealError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = write_random_checkpoint(args.out, args.family, args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, random {args.family} weights, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
