"""Pickle I/O for demonstration files: an allow-list reader and a writer old NumPy can read.

Reading: :func:`restricted_load` resolves only the globals that plain data needs (NumPy arrays,
dtypes and scalars, a few builtin types); any other global -- ``os.system``, ``subprocess``,
``builtins.eval``, a class with ``__reduce__`` -- is refused *before* it is called, so a hostile
file can never execute code. Persistent ids are refused too.

Writing: :func:`dump` pickles with protocol 4 (GenSim's default, ``pickle.dump`` on Python 3.8)
and names NumPy's reconstruction helpers by their NumPy-1 module paths
(``numpy.core.multiarray._reconstruct``, ``...scalar``). NumPy 2 writes ``numpy._core...``,
which NumPy < 1.26 (GenSim's environment: Python 3.8) cannot import; the NumPy-1 names load
without a warning under both NumPy 1 and 2.
"""
from __future__ import annotations

import builtins
import io
import pickle
from types import FunctionType
from typing import BinaryIO

import numpy as np

from sim2real.errors import DatasetError

PROTOCOL = 4
"""Pickle protocol of GenSim's ``pickle.dump`` (Python 3.8's default)."""

_NUMPY1_MODULES = {"numpy._core.multiarray": "numpy.core.multiarray", "numpy._core.numeric": "numpy.core.numeric"}
"""NumPy-2 module paths -> the NumPy-1 paths both versions can unpickle."""


def _allowed_globals() -> dict:
    """(module, name) -> object for every global a dataset pickle may reference."""
    from numpy._core import multiarray, numeric  # the real objects; never the deprecated shims

    import _codecs

    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # Protocol <= 2 stores bytes as _codecs.encode(str, 'latin1'): a pure conversion.
    allowed[("_codecs", "encode")] = _codecs.encode
    for name in ("set", "frozenset", "complex", "bytearray", "bytes"):
        allowed[("builtins", name)] = getattr(builtins, name)
    return allowed


_ALLOWED = None


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the allow-listed globals."""

    def find_class(self, module: str, name: str):
        global _ALLOWED
        if _ALLOWED is None:
            _ALLOWED = _allowed_globals()
        obj = _ALLOWED.get((module, name))
        if obj is None:
            # numpy dtype classes (numpy.dtypes.Float32DType, ...) are data descriptions only.
            if module == "numpy.dtypes" and name.endswith("DType") and isinstance(getattr(np.dtypes, name, None), type):
                return getattr(np.dtypes, name)
            raise pickle.UnpicklingError(f"refused global {module}.{name} (not plain data)")
        return obj

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id (not plain data)")


def restricted_load(path):
    """Unpickle ``path`` allowing only plain data; never executes code from the file.

    Allowed: NumPy arrays (any shape; object arrays only of allowed items), dtypes and scalars;
    builtin containers (list, tuple, dict, set, frozenset), numbers, strings, bytes, None, bools.

    Raises:
        DatasetError: naming the file, when it is missing, truncated, not a pickle, or references
        anything else (the message says so; nothing from the file has run).
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found; the dataset is incomplete (re-record the episode)") from None
    except pickle.UnpicklingError as e:
        if "refused" in str(e):
            raise DatasetError(f"{path}: unsafe pickle, {e}; demonstration files may hold only arrays, numbers, "
                               "strings and builtin containers. Do not use this file; re-record it") from None
        raise DatasetError(f"{path}: not a readable pickle ({e}); delete the episode and re-record it") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
            MemoryError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: corrupt or truncated pickle ({type(e).__name__}: {e}); "
                           "delete the episode and re-record it") from None


class _Numpy1Pickler(pickle._Pickler):
    """Pure-Python pickler that writes NumPy's NumPy-2 module paths as their NumPy-1 equivalents.

    The C pickler cannot rename a global, so this subclass reroutes every global it saves
    through :meth:`save_global`; the array payloads are still written as single byte strings.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_global(self, obj, name=None):
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        module = pickle.whichmodule(obj, name)
        module = _NUMPY1_MODULES.get(module, module)
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("utf-8"))
        self.memoize(obj)

    dispatch[FunctionType] = save_global
    dispatch[type] = save_global


def dump(obj, f: BinaryIO) -> None:
    """Pickle ``obj`` to the open binary file ``f`` (protocol 4, NumPy-1 compatible names)."""
    _Numpy1Pickler(f, protocol=PROTOCOL).dump(obj)


def dumps(obj) -> bytes:
    """:func:`dump` to bytes."""
    buf = io.BytesIO()
    dump(obj, buf)
    return buf.getvalue()
