"""Output paths of the command line, checked before any work starts.

Every ``--out`` / ``--png`` / ``--save-maps`` goes through :func:`output_file` or
:func:`output_dir`: a file where a directory is needed (or the reverse), a path under a file, or a
place the user may not write to is an :class:`~sim2real.errors.InputError` (one line, exit 2)
before a camera opens, a checkpoint loads or a campaign starts, so no work is lost and no
half-written ``.NAME.tmp-PID`` is left behind.

Shipped files (the repository's ``calibration/`` and ``config/``) are never overwritten without
``--force``: :func:`refuse_shipped`. Calibrations go to :data:`USER_CALIBRATION_DIR` by default.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from sim2real.config import config_dir
from sim2real.errors import InputError

USER_CALIBRATION_DIR = Path("runs") / "calibration"
"""Where ``sim2real calibrate`` writes calibrations and check images by default (relative to the
working directory, like ``runs/demo``; ``runs/`` is git-ignored)."""


def _existing_ancestor(path: Path, flag: str) -> Path:
    """The nearest existing ancestor of ``path``: it must be a directory we can write in."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{flag} {path}: {parent} is a file, not a directory; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InputError(f"{flag} {path}: cannot write in {parent} (permission denied); choose another path")
            return parent
    raise InputError(f"{flag} {path}: no existing parent directory")  # unreachable: / exists


def output_file(path, flag: str = "--out") -> Optional[Path]:
    """Check that ``path`` can be written as a file (an existing file is overwritten); None passes.

    Raises:
        InputError: ``path`` is a directory, lies under a file, or is not writable.
    """
    if path is None:
        return None
    p = Path(path)
    if str(path) == "" or p.is_dir():
        raise InputError(f"{flag} {path or repr('')}: is a directory; give a file name (e.g. {p / 'out'}"
                         f"{_suffix(flag)})")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{flag} {path}: the file exists and is not writable; choose another path")
    if not p.exists():
        _existing_ancestor(p, flag)
    elif not os.access(p.absolute().parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: cannot write in {p.absolute().parent} (permission denied)")
    return p


def output_dir(path, flag: str = "--out") -> Optional[Path]:
    """Check that ``path`` is, or can be created as, a writable directory; None passes.

    Raises:
        InputError: ``path`` is a file, lies under a file, or is not writable.
    """
    if path is None:
        return None
    p = Path(path)
    if str(path) == "":
        raise InputError(f"{flag}: give a directory")
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{flag} {path}: is a file; give a directory (it is created if missing)")
        if not os.access(p, os.W_OK | os.X_OK):
            raise InputError(f"{flag} {path}: directory not writable (permission denied)")
        return p
    _existing_ancestor(p, flag)
    return p


def _suffix(flag: str) -> str:
    return ".png" if "png" in flag else ".npz" if flag in ("--save-maps", "--out") else ""


def shipped_roots() -> tuple[Path, ...]:
    """The repository folders whose files ship with sim2real (calibration/, config/)."""
    root = config_dir().parent
    return (root / "calibration", config_dir())


def is_shipped(path) -> bool:
    """True when ``path`` is (or would be) a file inside a shipped folder."""
    p = Path(path).resolve()
    return any(p.is_relative_to(r.resolve()) for r in shipped_roots())


def refuse_shipped(path, flag: str, force: bool) -> None:
    """InputError when ``path`` is an existing shipped file and ``force`` is off."""
    if path is not None and not force and Path(path).exists() and is_shipped(path):
        raise InputError(f"{flag} {path} is a file shipped with sim2real; write elsewhere (default "
                         f"{USER_CALIBRATION_DIR}/) or pass --force to overwrite it")


WIDE_COLUMNS = 200
"""Output width when not writing to a terminal (rich would wrap tables and lines at 80 columns)."""


def console(stderr: bool = False):
    """A rich Console: the terminal's width on a terminal, else WIDE_COLUMNS (logs and pipes keep
    whole lines; a table never folds its cells at column 80)."""
    from rich.console import Console

    c = Console(stderr=stderr)
    if not c.is_terminal:
        c = Console(stderr=stderr, width=WIDE_COLUMNS)
    return c
