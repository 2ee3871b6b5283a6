"""Checked argument types of the `mftg` commands, and size checks made before allocating.

Each `type=` helper returns a function for `argparse` that rejects a value outside its range
with a message giving the range; argparse names the flag (`argument --steps: ...`), and the
command exits 2 with that one line. Use them for every numeric flag:

    p.add_argument("--steps", type=integer(1, 10**7), default=1000)
    p.add_argument("--discount", type=real(0.0, 10.0), default=0.0)
    p.add_argument("--until", type=iso_date)

[`check_bytes`][] refuses a run whose arrays would not fit in memory, naming the flags that
set their size, before anything is allocated.
"""

import argparse
from collections.abc import Callable
import datetime as _dt
import math
import os

from .._validation import ISO_DATE

# The longest numeral read as a number: anything longer is a typo or an attack, and Python's
# `int` refuses numerals past 4300 digits with a message about a configuration setting.
_MAX_NUMERAL = 40


def _num(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _span(lo, hi, open_lo: bool = False) -> str:
    left = "(" if open_lo else "["
    lo_s = "-inf" if lo is None else _num(lo)
    hi_s = "inf" if hi is None else _num(hi)
    return f"{left}{lo_s}, {hi_s}]"


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in `[lo, hi]` (either end may be None: unbounded)."""

    def parse(text: str) -> int:
        s = text.strip()
        try:
            if len(s) > _MAX_NUMERAL:
                raise ValueError
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer in {_span(lo, hi)}, got {_short(text)}"
            ) from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be an integer in {_span(lo, hi)}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def real(
    lo: float | None = None, hi: float | None = None, *, open_lo: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in `[lo, hi]` (`(lo, hi]` with `open_lo`)."""

    def parse(text: str) -> float:
        s = text.strip()
        try:
            if len(s) > _MAX_NUMERAL:
                raise ValueError
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a finite number in {_span(lo, hi, open_lo)}, got {_short(text)}"
            ) from None
        bad = (
            not math.isfinite(v)
            or (lo is not None and (v <= lo if open_lo else v < lo))
            or (hi is not None and v > hi)
        )
        if bad:
            raise argparse.ArgumentTypeError(
                f"must be a finite number in {_span(lo, hi, open_lo)}, got {text.strip()}"
            )
        return v

    parse.__name__ = "real"
    return parse


def iso_date(text: str) -> str:
    """An argparse type: an ISO date `yyyy-mm-dd`, optionally with a time (`HH:MM[:SS]`,
    after a space or `T`)."""
    s = text.strip()
    if ISO_DATE.fullmatch(s):
        try:
            _dt.datetime.fromisoformat(s)
            return s
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(
        f"must be an ISO date yyyy-mm-dd (or yyyy-mm-dd HH:MM), got {_short(text)}"
    )


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def memory_limit() -> int:
    """Bytes a single run may allocate: half the physical memory (env `MFTG_MAX_BYTES`
    overrides)."""
    env = os.environ.get("MFTG_MAX_BYTES")
    if env:
        return int(env)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} bytes"


def check_bytes(n_bytes: float, flags: str, hint: str = "") -> None:
    """Raise `ValueError` when `n_bytes` (an estimate of the largest allocation) exceeds
    [`memory_limit`][]; `flags` names what sets the size (e.g. `"--paths x --steps"`)."""
    limit = memory_limit()
    if n_bytes > limit:
        raise ValueError(
            f"{flags} need about {_bytes(n_bytes)} of memory, more than the "
            f"{_bytes(limit)} allowed" + (f"; {hint}" if hint else "")
        )


def check_grid(t0: float, t1: float, steps: int, dtype: str, flag: str = "--steps") -> None:
    """Raise `ValueError` when `steps` grid steps of `[t0, t1]` are too fine for `dtype`
    (consecutive grid times would round to the same number)."""
    import numpy as np

    eps = float(np.finfo(dtype).eps)
    finest = (t1 - t0) / (64 * eps * max(abs(t0), abs(t1), 1.0))
    if steps > finest:
        raise ValueError(
            f"{flag} {steps} is too fine for {dtype} on [{t0:g}, {t1:g}] (at most "
            f"{int(finest)})" + ("; use --dtype float64" if dtype == "float32" else "")
        )
