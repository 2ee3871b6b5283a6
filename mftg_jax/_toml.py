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

from ._validation import MAX_MAGNITUDE, type_problem

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
        raise ConfigError(f"{where}{key} must be a number, got {_short(v)}")
    return _finite(v, f"{where}{key}")


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _finite(v, name: str) -> float:
    """`float(v)` for a finite number of magnitude at most `MAX_MAGNITUDE`."""
    try:
        x = float(v)
    except OverflowError:
        raise ConfigError(
            f"{name} must be a finite number, got an integer of {len(str(abs(v)))} digits "
            "(too large for a float)"
        ) from None
    if not math.isfinite(x):
        raise ConfigError(f"{name} must be finite, got {v!r}")
    if abs(x) > MAX_MAGNITUDE:
        raise ConfigError(
            f"{name} must have magnitude <= {MAX_MAGNITUDE:g} (larger values overflow in "
            f"float64 arithmetic), got {x:g}"
        )
    return x


def numbers(d: dict, key: str, where: str = "") -> list[float]:
    """A list of numbers `d[key]` (a single number is a list of one)."""
    if key not in d:
        raise ConfigError(f"missing {where}{key}")
    v = d[key]
    if _is_number(v):
        v = [v]
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        raise ConfigError(f"{where}{key} must be a list of numbers, got {_short(v)}")
    return [_finite(x, f"{where}{key}[{i}]") for i, x in enumerate(v)]


def integer(
    d: dict, key: str, where: str = "", default: Any = ..., lo: int = 0, hi: int = 2**31 - 1
) -> int:
    """An integer `lo <= d[key] <= hi` (or `default` when absent)."""
    if key not in d:
        if default is ...:
            raise ConfigError(f"missing {where}{key}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{where}{key} must be an integer in [{lo}, {hi}], got {_short(v)}")
    return v


def array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A finite float array broadcast to `shape` from a number or nested lists (no strings
    or booleans)."""
    problem = type_problem(value)
    if problem is not None:
        raise ConfigError(f"{where} must be a number or a list of numbers, got {problem}")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(
            f"{where} must be a number or a (rectangular) list of numbers, got {_short(value)}"
        ) from None
    if not np.all(np.isfinite(a)):
        raise ConfigError(f"{where} must be finite, got {_short(value)}")
    if np.any(np.abs(a) > MAX_MAGNITUDE):
        raise ConfigError(
            f"{where} must have magnitude <= {MAX_MAGNITUDE:g} (larger values overflow in "
            "float64 arithmetic)"
        )
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
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{os.fspath(path)}: not a UTF-8 TOML file (byte {e.start} cannot be decoded)"
        ) from None
    except PermissionError:
        raise ConfigError(f"{os.fspath(path)}: permission denied") from None
    except OSError as e:  # a path through a file, a name too long, a read error ...
        raise ConfigError(f"{os.fspath(path)}: cannot be read ({e.strerror or e})") from None
    try:
        return build(d)
    except ConfigError as e:
        raise ConfigError(f"{os.fspath(path)}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"{os.fspath(path)}: {e}") from None
