"""YAML configuration loaded into frozen dataclasses, validated at load time.

Every problem is raised as :class:`~sim2real.errors.ConfigError` naming the file, the key and
what to change, e.g. ``config/robots/ur5.yaml: speeds.transit: must be > 0 (got -0.1)``.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from sim2real.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent
"""The installed ``sim2real`` package directory."""


def config_dir() -> Path:
    """The ``config/`` directory: next to the package in a checkout, or the installed share copy."""
    candidates = [PACKAGE_ROOT.parent / "config", PACKAGE_ROOT / "data" / "config"]
    try:  # a colcon install puts config under share/sim2real
        from ament_index_python.packages import get_package_share_directory  # type: ignore

        candidates.append(Path(get_package_share_directory("sim2real")) / "config")
    except Exception:  # noqa: BLE001 - ament is optional; any failure just means "not installed"
        pass
    for c in candidates:
        if c.is_dir():
            return c
    raise ConfigError("cannot find the sim2real config/ directory; run from a checkout or a colcon install")


def load_yaml(path) -> dict:
    """Read a YAML mapping; ConfigError when missing, unparsable or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file; expected a YAML file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, got {type(data).__name__}")
    return data


def from_mapping(cls, data: Mapping[str, Any], where: str = "config"):
    """Build frozen dataclass ``cls`` from a mapping, checking keys and simple types.

    Unknown keys and missing required keys are errors (typos must not be silently ignored).
    Nested dataclass fields are built recursively. ``cls.validate()`` runs afterwards if defined.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key {name!r}")
            continue
        kwargs[name] = _coerce(hints.get(name), data[name], f"{where}.{name}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where}: {e}") from None
    if hasattr(obj, "validate"):
        obj.validate(where)
    return obj


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if hint in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is float:
        return float(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def require(condition: bool, where: str, message: str) -> None:
    """Raise ConfigError(f"{where}: {message}") unless ``condition``."""
    if not condition:
        raise ConfigError(f"{where}: {message}")


def load_dataclass(cls, path):
    """Load YAML file ``path`` into frozen dataclass ``cls`` (see :func:`from_mapping`)."""
    return from_mapping(cls, load_yaml(path), str(path))
