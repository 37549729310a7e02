"""Checkpoint loading: safe unpickling, family detection and validation.

A checkpoint is a PyTorch Lightning ``.ckpt`` whose ``state_dict`` holds the ``cliport`` agent's
weights under ``attention.`` and ``transport.``. Two incompatible implementations exist
(``gensim`` = liruiw/GenSim's smaller network, ``cliport`` = cliport/cliport's original); the
family is detected from the keys and shapes, which are derived here from the model definition
itself (they equal the published key specs; the tests check that).

Loading uses ``torch.load(weights_only=True)``: tensors and plain containers only, no code
runs. A real Lightning checkpoint also pickles objects next to the weights (``callbacks``:
ModelCheckpoint state; ``hyper_parameters``: an AttributeDict holding an OmegaConf config);
``weights_only`` refuses those files. They are then read by :class:`InertUnpickler`, which
rebuilds tensors and plain data with torch's own allowlist of safe globals and turns every other
class or function into an inert :class:`InertObject` record: no code from the file is imported,
called, or given its state (``__reduce__``, ``__setstate__``, ``os.system`` never run). The
skipped names are reported in a :class:`SkippedObjectsWarning`. Objects inside the ``state_dict``
itself are still refused; ``trust=True`` (``--trust-checkpoint``) is for those files.
"""
from __future__ import annotations

import pickle
import sys
import warnings
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


class SkippedObjectsWarning(UserWarning):
    """Pickled objects outside the state_dict were replaced by inert records (their code never ran)."""


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


_NOT_A_CHECKPOINT = "the file is truncated or not a torch checkpoint -- download it again"


def read_checkpoint(path, trust: bool = False) -> dict:
    """Unpickle ``path`` safely and return its state_dict (a dict of tensors).

    Order: ``torch.load(weights_only=True)`` (memory-mapped); if the file pickles objects besides
    tensors, :func:`read_inert` (nothing from the file runs, skipped classes are warned about);
    with ``trust`` the plain ``torch.load`` first, falling back to :func:`read_inert` when the
    pickled classes cannot be imported (e.g. Lightning is not installed).

    Raises:
        CheckpointError: missing file; UnsafeCheckpointError when the state_dict itself holds
            pickled objects and ``trust`` is False; TruncatedCheckpointError for damaged files and
            anything that is not a torch checkpoint (a text file, say).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (give the path of a .ckpt file)")
    is_zip = zipfile.is_zipfile(path)
    inert = False
    try:
        # zip-format files are memory-mapped: fast, and tensors that are dropped never get copied
        obj = torch.load(path, map_location="cpu", weights_only=not trust, mmap=is_zip)
    except pickle.UnpicklingError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        globals_ = [line for line in lines if "Unsupported global" in line or "GLOBAL" in line]
        if not globals_:
            raise TruncatedCheckpointError(
                f"checkpoint {path} could not be unpickled ({lines[-1] if lines else 'unknown error'}); "
                f"{_NOT_A_CHECKPOINT}") from None
        if not is_zip:
            raise UnsafeCheckpointError(
                f"checkpoint {path} is in torch's legacy (non-zip) format and contains pickled Python objects "
                f"besides tensors ({globals_[0]}); loading it would run code from the file, so it was refused. "
                "If you trust where it came from, pass --trust-checkpoint (CLI) or trust=True (API).") from None
        obj, inert = read_inert(path), True
    except (ModuleNotFoundError, AttributeError) as e:
        if not (trust and is_zip):
            raise TruncatedCheckpointError(f"checkpoint {path} could not be read ({type(e).__name__}: {e}); "
                                           f"{_NOT_A_CHECKPOINT}") from None
        obj, inert = read_inert(path), True  # trusted, but its classes are not installed: read it inertly
    except Exception as e:  # noqa: BLE001 - torch.load raises KeyError / IndexError / ... on non-checkpoints
        first = str(e).splitlines()[0] if str(e) else ""
        raise TruncatedCheckpointError(
            f"checkpoint {path} could not be read ({type(e).__name__}: {first}); {_NOT_A_CHECKPOINT}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        raise CheckpointError(f"checkpoint {path} has no 'state_dict' (found keys "
                              f"{sorted(map(str, obj))[:_MAX_LISTED] if isinstance(obj, dict) else type(obj).__name__}); "
                              "expected a PyTorch Lightning .ckpt of the cliport agent")
    bad = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad and inert:
        raise UnsafeCheckpointError(
            f"checkpoint {path}: state_dict entries are pickled Python objects, not tensors: {_listing(bad)}; "
            "loading them would run code from the file, so it was refused. If you trust where it came from, "
            "pass --trust-checkpoint (CLI) or trust=True (API).")
    if bad:
        raise CheckpointError(f"checkpoint {path}: state_dict entries are not tensors: {_listing(bad)}")
    return state


class InertObject:
    """Stands in for a pickled object whose class (or function) is not on torch's safe list.

    Keeps what the pickle said about it - constructor ``args``, ``state``, ``items`` (dict-like),
    ``listitems`` (list-like) - as plain data; no method of the real class ever runs.
    Subclasses are made per pickled name; ``pickled_name`` says which.
    """

    pickled_name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, items={}, listitems=[])
        return obj

    def __init__(self, *args, **kwargs):  # REDUCE calls the "class" with its arguments: keep them, run nothing
        pass

    def __setstate__(self, state):  # BUILD
        self.__dict__["state"] = state

    def __setitem__(self, key, value):  # SETITEM(S) on a dict subclass
        self.__dict__["items"][key] = value

    def append(self, value):  # APPEND(S) on a list subclass
        self.__dict__["listitems"].append(value)

    def extend(self, values):
        self.__dict__["listitems"].extend(values)

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def _safe_globals() -> dict:
    """``{"module.name": object}`` that may be called while unpickling: torch's weights_only allowlist
    (tensor rebuild functions, dtypes, storage types, OrderedDict, ...) minus sparse / nested tensors,
    which need extra validation after loading."""
    import codecs
    import collections

    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = dict(_get_allowed_globals())
    except (ImportError, AttributeError):  # a torch without it: the few entries a state_dict needs
        allowed = {"collections.OrderedDict": collections.OrderedDict, "torch.Size": torch.Size,
                   "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
                   "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
                   "torch.nn.parameter.Parameter": torch.nn.Parameter, "_codecs.encode": codecs.encode}
        allowed.update({f"torch.{t.__name__}": t for t in torch._storage_classes})
    return {k: v for k, v in allowed.items() if "sparse" not in k.lower() and "nested" not in k.lower()}


class InertUnpickler(pickle.Unpickler):
    """Unpickles a torch zip checkpoint's ``data.pkl`` without running code from the file.

    ``find_class`` returns only :func:`_safe_globals` entries; any other name becomes an
    :class:`InertObject` subclass (recorded in ``skipped``). ``persistent_load`` reads tensor
    storages from the zip's ``data/`` records.
    """

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file, encoding="utf-8")
        self.archive, self.prefix = archive, prefix
        self.allowed = _safe_globals()
        self.skipped: dict[str, type] = {}
        self.storages: dict[str, object] = {}

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in self.allowed:
            return self.allowed[full]
        if full not in self.skipped:
            self.skipped[full] = type(f"Inert[{full}]", (InertObject,), {"pickled_name": full})
        return self.skipped[full]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:]
        if storage_type is torch.UntypedStorage:
            dtype = torch.uint8
        elif isinstance(storage_type, type) and issubclass(storage_type, InertObject):
            raise pickle.UnpicklingError(f"unknown storage type {storage_type.pickled_name}")
        else:
            dtype = storage_type.dtype
        key = str(key)
        if key not in self.storages:
            with self.archive.open(f"{self.prefix}data/{key}") as f:
                buf = bytearray(f.read())
            if len(buf) != int(numel) * torch._utils._element_size(dtype):
                raise pickle.UnpicklingError(f"storage {key} has {len(buf)} bytes, expected {numel} x {dtype}")
            untyped = torch.frombuffer(buf, dtype=torch.uint8).untyped_storage() if buf else torch.UntypedStorage(0)
            self.storages[key] = torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)
        return self.storages[key]


def read_inert(path) -> object:
    """The object a torch zip checkpoint pickles, with non-allowlisted objects as inert records.

    Warns :class:`SkippedObjectsWarning` naming every skipped class / function.

    Raises:
        TruncatedCheckpointError: not a readable torch zip checkpoint.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if len(names) != 1:
                raise pickle.UnpicklingError("no unique <archive>/data.pkl record")
            prefix = names[0][: -len("data.pkl")]
            order = f"{prefix}byteorder"
            if order in archive.namelist() and archive.read(order).decode().strip() != sys.byteorder:
                raise pickle.UnpicklingError("the tensors were saved with the other byte order")
            with archive.open(names[0]) as f:
                unpickler = InertUnpickler(f, archive, prefix)
                obj = unpickler.load()
    except Exception as e:  # noqa: BLE001 - any failure here means the file is not what it claims
        first = str(e).splitlines()[0] if str(e) else ""
        raise TruncatedCheckpointError(f"checkpoint {path} could not be read safely ({type(e).__name__}: {first}); "
                                       f"{_NOT_A_CHECKPOINT}") from None
    if unpickler.skipped:
        warnings.warn(f"checkpoint {path}: {len(unpickler.skipped)} pickled classes/functions outside the tensors "
                      f"were not loaded (kept as inert records, none of their code ran): "
                      f"{', '.join(sorted(unpickler.skipped))}", SkippedObjectsWarning, stacklevel=3)
    return obj


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
