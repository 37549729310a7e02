"""Provenance of a campaign: what exactly produced these trials.

Recorded with every trial: the checkpoint's sha256, the calibration file's sha256, the package
version and ``git describe``, the robot and camera configs (path, sha256 and content), the
operator, the host and the time.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Optional

import yaml

from sim2real.errors import InputError


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (streamed). Raises InputError if the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; cannot record its sha256 for provenance")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def package_version() -> str:
    """Installed distribution version of sim2real, else the package's ``__version__``."""
    try:
        from importlib.metadata import version

        return version("sim2real")
    except Exception:  # noqa: BLE001 - not installed as a distribution (e.g. PYTHONPATH checkout)
        import sim2real

        return sim2real.__version__


@lru_cache(maxsize=1)
def git_describe() -> str:
    """``git describe --always --dirty --tags`` of the source checkout, or why it is unknown."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown (git unavailable: {e})"
    if out.returncode != 0:
        return f"unknown ({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'not a git checkout'})"
    return out.stdout.strip()


def file_entry(path) -> Optional[dict]:
    """{path, sha256, content} of a config file (content parsed from YAML when it is YAML)."""
    if path is None:
        return None
    path = Path(path)
    entry = {"path": str(path.resolve()), "sha256": sha256_file(path)}
    if path.suffix in (".yaml", ".yml"):
        try:
            entry["content"] = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            entry["content"] = None
    return entry


def collect_provenance(*, checkpoint=None, checkpoint_sha256: Optional[str] = None, calibration=None,
                       robot_config=None, camera_config=None, operator: str = "auto",
                       extra: Optional[dict] = None) -> dict:
    """Everything needed to say which model, calibration, code and setup produced a trial.

    Args:
        checkpoint: path of the policy checkpoint (sha256 computed), or None (e.g. the oracle).
        checkpoint_sha256: use this hash instead (``Policy.checkpoint_sha256``, avoids re-reading).
        calibration: path of the calibration YAML (sha256 + content), or None.
        robot_config, camera_config: config YAML paths, or None.
        operator: who labels (a name, or ``auto``).
        extra: more fields (e.g. twin settings), stored under ``extra``.
    """
    ckpt = None
    if checkpoint is not None or checkpoint_sha256 is not None:
        ckpt = {"path": None if checkpoint is None else str(Path(checkpoint).resolve()),
                "sha256": checkpoint_sha256 or sha256_file(checkpoint)}
    return {
        "checkpoint": ckpt,
        "calibration": file_entry(calibration),
        "robot_config": file_entry(robot_config),
        "camera_config": file_entry(camera_config),
        "package_version": package_version(),
        "git_describe": git_describe(),
        "operator": operator,
        "host": platform.node(),
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": extra or {},
    }
