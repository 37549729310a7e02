"""Random-weight CLIPort / GenSim checkpoints built from the key specs (tests and benchmarks only).

The specs (``test/data/spec/*.json``, copies of ``../shared/spec``) list ``[key, shape, dtype]``
for every ``state_dict`` entry of the ``cliport`` agent as built by each implementation. This
helper fills them with random values of a sensible scale (so activations stay finite in fp16)
and saves them the way PyTorch Lightning does: ``{"state_dict": ..., "epoch": ..., ...}``.

Nothing is downloaded; the weights are random, so outputs are meaningless but deterministic.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

SPEC_FILES = {"gensim": "cliport_gensim_keys.json", "cliport": "cliport_original_keys.json"}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}
_CLIP_PREFIXES = ("attention.attn_stream_two.clip_rn50.", "transport.key_stream_two.clip_rn50.",
                  "transport.query_stream_two.clip_rn50.")


def spec_dir() -> Path:
    """The spec folder: ``test/data/spec`` in the repo, else ``<repo>/../shared/spec``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "data" / "spec", here.parent.parent / "shared" / "spec"):
        if (candidate / SPEC_FILES["gensim"]).is_file():
            return candidate
    raise FileNotFoundError("key specs not found in test/data/spec or ../shared/spec")


def load_spec(family: str) -> list[tuple[str, tuple[int, ...], str]]:
    """``[(key, shape, dtype), ...]`` of ``family`` ('gensim' or 'cliport'), in state_dict order."""
    with open(spec_dir() / SPEC_FILES[family]) as f:
        return [(k, tuple(s), d) for k, s, d in json.load(f)]


def _random_entry(key: str, shape: tuple, dtype: str, gen: torch.Generator) -> torch.Tensor:
    """One tensor with a scale that keeps a forward pass finite (fp16 CLIP included): the same
    draws as ``python -m sim2real.policy.random_checkpoint``."""
    from sim2real.policy.random_checkpoint import _random_entry as entry

    return entry(key, shape, _DTYPES[dtype], gen)


def build_state_dict(family: str, seed: int = 0, identical_clip: bool = True,
                     clip_bn_stats_differ: bool = False) -> "OrderedDict[str, torch.Tensor]":
    """Random state_dict of ``family`` following its spec exactly (keys, order, shapes, dtypes).

    Args:
        identical_clip: the three CLIP copies get the same values, as in trained checkpoints.
        clip_bn_stats_differ: with identical_clip, perturb the CLIP BatchNorm running stats of
            the transport copies (the caveat of the spec README: BN stats move during training).
    """
    gen = torch.Generator().manual_seed(seed)
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    first_clip: dict[str, torch.Tensor] = {}
    for key, shape, dtype in load_spec(family):
        prefix = next((p for p in _CLIP_PREFIXES if key.startswith(p)), None)
        if prefix is not None and identical_clip:
            sub = key[len(prefix):]
            if sub not in first_clip:
                first_clip[sub] = _random_entry(key, shape, dtype, gen)
            t = first_clip[sub].clone()
            if clip_bn_stats_differ and prefix != _CLIP_PREFIXES[0] and sub.endswith("running_mean"):
                t = t + 0.01 * torch.randn(shape, generator=gen)
        else:
            t = _random_entry(key, shape, dtype, gen)
        sd[key] = t
    return sd


def save_checkpoint(path, state_dict, extra: Optional[dict] = None) -> Path:
    """Save ``state_dict`` as a Lightning-style checkpoint dict (plain types only) at ``path``."""
    ckpt = {"epoch": 0, "global_step": 1000, "pytorch-lightning_version": "1.0.3",
            "state_dict": state_dict}
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return Path(path)


def make_checkpoint(path, family: str, seed: int = 0, **kwargs) -> Path:
    """Build a random ``family`` checkpoint and save it at ``path``."""
    return save_checkpoint(path, build_state_dict(family, seed=seed, **kwargs))


if __name__ == "__main__":  # python test/ckpt_factory.py FAMILY OUT.ckpt [SEED]
    import sys
    make_checkpoint(sys.argv[2], sys.argv[1], int(sys.argv[3]) if len(sys.argv) > 3 else 0)


def scene_image(seed: int = 7) -> np.ndarray:
    """A (320, 160, 6) policy input (RGB 0-255 + height x3): coloured boxes with heights on a grey table."""
    rng = np.random.default_rng(seed)
    color = np.full((320, 160, 3), 110, np.float32) + rng.normal(0, 6, (320, 160, 3))
    height = np.zeros((320, 160), np.float32)
    for _ in range(5):
        r, c, s = rng.integers(20, 300), rng.integers(20, 140), rng.integers(8, 20)
        color[r - s:r + s, c - s:c + s] = rng.integers(0, 255, 3)
        height[r - s:r + s, c - s:c + s] = rng.uniform(0.02, 0.12)
    color = np.clip(np.round(color), 0, 255)
    return np.concatenate([color, np.repeat(height[..., None], 3, -1)], -1).astype(np.float32)
