"""Typed readers of parsed TOML tables, shared by every family's configuration format.

Each reader names the offending key (with its table path, `where`) and the allowed values in a
[`ConfigError`][mftg_jax.ConfigError], so that a bad file fails with one line.
"""

from collections.abc import Callable, Iterable
import math
import os
import tomllib
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot describe a game; the message names the field."""


def unknown(where: str, d: dict, allowed: Iterable[str]) -> None:
    """Reject keys of `d` outside `allowed`; `where` is the table path with its final dot."""
    allowed = set(allowed)
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigError(f"unknown key {where}{extra[0]} (allowed: {', '.join(sorted(allowed))})")


def table(d: dict, key: str, where: str = "", required: bool = True) -> dict:
    """The sub-table `d[key]` (`{}` when absent and not required)."""
    if key not in d:
        if required:
            raise ConfigError(f"missing table [{where}{key}]")
        return {}
    v = d[key]
    if not isinstance(v, dict):
        raise ConfigError(f"{where}{key} must be a table, got {type(v).__name__}")
    return v


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number(d: dict, key: str, where: str = "", default: Any = ...) -> float:
    """A finite number `d[key]` (or `default` when absent; required when no default)."""
    if key not in d:
        if default is ...:
            raise ConfigError(f"missing {where}{key}")
        return default
    v = d[key]
    if not _is_number(v):
        raise ConfigError(f"{where}{key} must be a number, got {v!r}")
    if not math.isfinite(v):
        raise ConfigError(f"{where}{key} must be finite, got {v!r}")
    return float(v)


def numbers(d: dict, key: str, where: str = "") -> list[float]:
    """A list of numbers `d[key]` (a single number is a list of one)."""
    if key not in d:
        raise ConfigError(f"missing {where}{key}")
    v = d[key]
    if _is_number(v):
        v = [v]
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise ConfigError(f"{where}{key} must be a list of numbers, got {v!r}")
    return [float(x) for x in v]


def integer(d: dict, key: str, where: str = "", default: Any = ..., lo: int = 0) -> int:
    """An integer `d[key] >= lo` (or `default` when absent)."""
    if key not in d:
        if default is ...:
            raise ConfigError(f"missing {where}{key}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{where}{key} must be an integer >= {lo}, got {v!r}")
    return v


def array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A finite float array broadcast to `shape` from a number or nested lists."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number or a list of numbers, got {value!r}") from None
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    try:
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        raise ConfigError(f"{where} must broadcast to shape {shape}, got shape {a.shape}") from None


def load(path: str | os.PathLike, build: Callable[[dict], T]) -> T:
    """Parse the TOML file `path` and `build` an object from it.

    **Raises:** [`ConfigError`][mftg_jax.ConfigError] prefixed with the file name: missing
    file, invalid TOML (with its line and column) or a field `build` rejects; a `ValueError`
    from a model's own checks becomes a `ConfigError` too.
    """
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{os.fspath(path)}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{os.fspath(path)}: is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{os.fspath(path)}: not valid TOML: {e}") from None
    try:
        return build(d)
    except ConfigError as e:
        raise ConfigError(f"{os.fspath(path)}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{os.fspath(path)}: {e}") from None
