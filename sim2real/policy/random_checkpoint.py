"""Random-weight ``cliport`` checkpoints from the model definition (benchmarks, learning curves).

No pretrained weights can be downloaded here, so fine-tuning demonstrations start from random
weights of a sensible scale (activations stay finite in float16 CLIP): LeCun-scaled conv/linear
weights, BatchNorm scales near 1, small biases, and the three CLIP copies identical, as in
trained checkpoints. Keys, shapes and dtypes are :func:`~sim2real.policy.checkpoint.expected_entries`;
the result is saved the way PyTorch Lightning saves (``{"state_dict": ..., "epoch": ..., ...}``).
The scale rules are those of the test suite's factory (``test/ckpt_factory.py``).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import torch

from sim2real.policy.checkpoint import CLIP_PREFIXES, expected_entries


def _entry(key: str, shape: tuple, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    name = key.rsplit(".", 1)[-1]
    if not dtype.is_floating_point:
        return torch.full(shape, 1000, dtype=dtype)

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
    elif len(shape) >= 2:
        fan_in = shape[0] if name == "text_projection" else math.prod(shape[1:])
        t = randn(fan_in ** -0.5)
    elif name == "weight":
        t = randn(0.1, 1.0)
    else:
        t = randn(0.05)
    return t.to(dtype)


def random_state_dict(family: str = "gensim", seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """Random state_dict of ``family`` ('gensim' | 'cliport'); one CLIP drawn and copied three times."""
    gen = torch.Generator().manual_seed(seed)
    prefixes = tuple(CLIP_PREFIXES.values())
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    clip: dict = {}
    for key, (shape, dtype) in expected_entries(family).items():
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            out[key] = _entry(key, shape, dtype, gen)
            continue
        sub = key[len(prefix):]
        if sub not in clip:
            clip[sub] = _entry(key, shape, dtype, gen)
        out[key] = clip[sub].clone()
    return out


def save_random_checkpoint(path, family: str = "gensim", seed: int = 0) -> Path:
    """Write a random ``family`` checkpoint at ``path`` (Lightning layout, plain types only)."""
    torch.save({"epoch": 0, "global_step": 0, "pytorch-lightning_version": "1.9.5",
                "state_dict": random_state_dict(family, seed)}, path)
    return Path(path)
