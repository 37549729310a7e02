"""Checkpoint loading: safe unpickling, family detection and validation.

A checkpoint is a PyTorch Lightning ``.ckpt`` whose ``state_dict`` holds the ``cliport`` agent's
weights under ``attention.`` and ``transport.``. Two incompatible implementations exist
(``gensim`` = liruiw/GenSim's smaller network, ``cliport`` = cliport/cliport's original); the
family is detected from the keys and shapes, which are derived here from the model definition
itself (they equal the published key specs; the tests check that).

Loading uses ``torch.load(weights_only=True)``: tensors and plain containers only, no code
runs. A file that needs arbitrary unpickling (e.g. Lightning callback objects or an OmegaConf
config pickled next to the weights) is refused unless the caller trusts it.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch

from sim2real.errors import CheckpointError

CLIP_PREFIXES = {
    "attention": "attention.attn_stream_two.clip_rn50.",
    "key": "transport.key_stream_two.clip_rn50.",
    "query": "transport.query_stream_two.clip_rn50.",
}
"""Where each of the three CLIP copies sits in the state_dict."""

_MAX_LISTED = 8


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint needs pickle code execution; it is loaded only with explicit trust."""


class TruncatedCheckpointError(CheckpointError):
    """The file is not a complete torch checkpoint (truncated download, wrong file)."""


class CheckpointFamilyError(CheckpointError):
    """The keys or shapes match neither GenSim's nor cliport's ``cliport`` agent."""


class NonFiniteWeightsError(CheckpointError):
    """Some weights are NaN or infinite."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A validated checkpoint: its family and its ``state_dict`` (CPU tensors)."""

    path: Path
    family: str
    state_dict: dict


def _clip_entries() -> dict[str, tuple]:
    """(key -> (shape, reference dtype)) of one CLIP RN50 copy as OpenAI's build_model makes it."""
    from sim2real.compat import import_open_clip
    from sim2real.policy.clip_rn50 import TextEncoder, _to_reference_dtypes

    open_clip = import_open_clip()
    with torch.device("meta"):  # the full trunk, attention pool included (it is in the checkpoint)
        visual = open_clip.modified_resnet.ModifiedResNet(layers=[3, 4, 6, 3], output_dim=1024, heads=32,
                                                          image_size=224, width=64)
    _to_reference_dtypes(visual)
    entries = {"visual." + k: (tuple(v.shape), v.dtype) for k, v in visual.state_dict().items()}
    entries.update({k: (tuple(v.shape), v.dtype) for k, v in TextEncoder().text.state_dict().items()})
    entries["logit_scale"] = ((), torch.float32)
    return entries


@lru_cache(maxsize=None)
def expected_entries(family: str) -> dict[str, tuple]:
    """``{key: (shape, dtype)}`` of every state_dict entry of ``family`` ('gensim' | 'cliport')."""
    from sim2real.policy.transporter import Attention, Transport
    from sim2real.policy.rotation import KORNIA_0_5

    entries: dict[str, tuple] = {}
    clip = _clip_entries()
    with torch.device("meta"):
        modules = {"attention": Attention(family, KORNIA_0_5), "transport": Transport(family, KORNIA_0_5)}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            entries[f"{name}.{k}"] = (tuple(v.shape), v.dtype)
    for prefix in CLIP_PREFIXES.values():
        for k, (shape, dtype) in clip.items():
            entries[prefix + k] = (shape, dtype)
    return entries


def read_checkpoint(path, trust: bool = False) -> dict:
    """Unpickle ``path`` safely and return its state_dict (a dict of tensors).

    Raises:
        CheckpointError: missing file; UnsafeCheckpointError when the file needs pickle code
            execution and ``trust`` is False; TruncatedCheckpointError for damaged files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (give the path of a .ckpt file)")
    try:
        # zip-format files are memory-mapped: fast, and tensors that are dropped never get copied
        obj = torch.load(path, map_location="cpu", weights_only=not trust, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        globals_ = [line for line in lines if "Unsupported global" in line or "GLOBAL" in line]
        if not globals_:
            raise TruncatedCheckpointError(
                f"checkpoint {path} could not be unpickled ({lines[-1] if lines else 'unknown error'}); the file "
                "is truncated or not a torch checkpoint -- download it again") from None
        raise UnsafeCheckpointError(
            f"checkpoint {path} contains pickled Python objects besides tensors ({globals_[0]}); loading it "
            "would run code from the file, so it was refused. If you trust where it came from, pass "
            "--trust-checkpoint (CLI) or trust=True (API).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError, ModuleNotFoundError) as e:
        raise TruncatedCheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "the file is truncated or not a torch checkpoint -- download it again") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' (found keys "
                              f"{sorted(obj)[:_MAX_LISTED] if isinstance(obj, dict) else type(obj).__name__}); "
                              "expected a PyTorch Lightning .ckpt of the cliport agent")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: state_dict entries are not tensors: {_listing(bad)}")
    return state


def _listing(keys) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return ", ".join(keys[:_MAX_LISTED]) + more


def _mismatch(state: dict, family: str):
    exp = expected_entries(family)
    missing = [k for k in exp if k not in state]
    unexpected = [k for k in state if k not in exp]
    shapes = [f"{k} {tuple(state[k].shape)} (expected {exp[k][0]})" for k in exp
              if k in state and tuple(state[k].shape) != exp[k][0]]
    return missing, unexpected, shapes


def detect_family(state: dict) -> str:
    """'gensim' or 'cliport' from keys and shapes; CheckpointFamilyError naming the differences."""
    from sim2real.policy.networks import FAMILIES

    results = {f: _mismatch(state, f) for f in FAMILIES}
    for f, (missing, unexpected, shapes) in results.items():
        if not missing and not unexpected and not shapes:
            return f
    nearest = min(FAMILIES, key=lambda f: sum(len(x) for x in results[f]))
    missing, unexpected, shapes = results[nearest]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} wrong shapes: {'; '.join(shapes[:_MAX_LISTED])}")
    names = {"gensim": "GenSim (liruiw/GenSim)", "cliport": "CLIPort (cliport/cliport)"}
    raise CheckpointFamilyError(
        f"the checkpoint is neither a GenSim nor a CLIPort 'cliport' agent; nearest is {names[nearest]}, "
        f"which differs by {', and '.join(parts)}. Use a checkpoint of the two-stream CLIP-LingUNet "
        "lateral transporter agent ('cliport').")


def check_values(state: dict, family: str) -> None:
    """Dtypes and finiteness: floats where floats belong, no NaN/inf anywhere."""
    exp = expected_entries(family)
    wrong = [f"{k} is {v.dtype}" for k, v in state.items()
             if exp[k][1].is_floating_point and not v.dtype.is_floating_point]
    if wrong:
        raise CheckpointError(f"checkpoint entries have non-float dtypes: {'; '.join(wrong[:_MAX_LISTED])}")
    bad = [k for k, v in state.items() if v.dtype.is_floating_point and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteWeightsError(f"{len(bad)} checkpoint entries contain NaN or inf values: {_listing(bad)}; "
                                    "the training run diverged or the file is corrupt -- use another checkpoint")


def load_checkpoint(path, trust: bool = False, family: Optional[str] = None) -> LoadedCheckpoint:
    """Read, detect the family of, and validate ``path``.

    Args:
        trust: allow pickle code execution (``weights_only=False``) for files you trust.
        family: require this family ('gensim' | 'cliport'); None detects it.
    """
    state = read_checkpoint(path, trust=trust)
    detected = detect_family(state)
    if family is not None and family != detected:
        raise CheckpointFamilyError(f"checkpoint {path} is a {detected} checkpoint, not {family}")
    check_values(state, detected)
    return LoadedCheckpoint(Path(path), detected, state)
