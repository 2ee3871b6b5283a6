r"""Hourly (or any regular) day-ahead price series read from CSV files.

Three layouts are recognised from the header:

- epftoolbox: `Date, Price, ...` (or an unnamed first column), timestamps `yyyy-mm-dd HH:MM:SS`;
- ENTSO-E: an unnamed timestamp column `m/d/yyyy H:MM`, then `Price_DA, ...`;
- generic: `timestamp,price` with ISO timestamps.

The timestamp is always the first column; the price column is found by name (`Price`,
`Price_DA`, else the one column whose name contains "price", case-insensitive) or given.
Negative prices and spikes are kept: they are real. Malformed rows, non-numeric prices and
duplicated, backward or missing timestamps are errors naming file, line and column, unless
`repair=True`, which fixes them and records what it did in `PriceSeries.repairs`.
"""

import csv
import dataclasses
import datetime as _dt
import os

import numpy as np
import pandas as pd

_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y-%m-%d",
)

LAYOUTS = ("epftoolbox", "entsoe", "generic")


@dataclasses.dataclass(frozen=True)
class PriceSeries:
    """A regular price series: timestamps, prices and the time step.

    **Fields:**

    - `times`: `datetime64[s]` timestamps, strictly increasing with constant step.
    - `prices`: `float64` prices in the file's unit (EUR/MWh for the shipped markets).
    - `step`: the time step, a `numpy.timedelta64`.
    - `source`: the file read; `column`: the price column; `layout`: the detected layout.
    - `repairs`: what `repair=True` changed (empty when nothing was repaired).
    """

    times: np.ndarray
    prices: np.ndarray
    step: np.timedelta64
    source: str = ""
    column: str = "price"
    layout: str = "generic"
    repairs: tuple[str, ...] = ()

    def __post_init__(self):
        if self.times.shape != self.prices.shape or self.times.ndim != 1:
            raise ValueError(
                f"times and prices must be 1-d of the same length, got {self.times.shape} "
                f"and {self.prices.shape}"
            )
        if self.step <= np.timedelta64(0, "s"):
            raise ValueError(f"step must be positive, got {self.step}")

    def __len__(self) -> int:
        return self.prices.shape[0]

    @property
    def dt_hours(self) -> float:
        """The time step in hours (the time unit of every rate the calibration reports)."""
        return float(self.step / np.timedelta64(1, "s")) / 3600.0

    def hours(self, origin: np.datetime64 | None = None) -> np.ndarray:
        """Time of each observation in hours since `origin` (default: the first timestamp)."""
        origin = self.times[0] if origin is None else np.datetime64(origin, "s")
        return (self.times - origin) / np.timedelta64(1, "s") / 3600.0

    def between(self, start=None, end=None) -> "PriceSeries":
        """The observations with `start <= time <= end`; a bare date as `end` means its last
        hour."""
        lo = _parse_date(start, end=False) if start is not None else self.times[0]
        hi = _parse_date(end, end=True) if end is not None else self.times[-1]
        keep = (self.times >= lo) & (self.times <= hi)
        if not keep.any():
            raise ValueError(
                f"no observations between {start} and {end} in {self.source or 'the series'} "
                f"(it covers {self.times[0]} to {self.times[-1]})"
            )
        return dataclasses.replace(self, times=self.times[keep], prices=self.prices[keep])

    def index_of(self, t) -> int:
        """Position of timestamp `t` in the series."""
        i = int(np.searchsorted(self.times, np.datetime64(t, "s")))
        if i >= len(self) or self.times[i] != np.datetime64(t, "s"):
            raise ValueError(f"timestamp {t} is not in the series")
        return i


def _parse_date(d, *, end: bool) -> np.datetime64:
    if isinstance(d, np.datetime64):
        return d.astype("datetime64[s]")
    s = str(d).strip()
    try:
        t = pd.Timestamp(s)
    except (ValueError, TypeError) as e:
        raise ValueError(f"cannot read date {d!r} (use yyyy-mm-dd or yyyy-mm-dd HH:MM)") from e
    bare = len(s) <= 10
    t64 = np.datetime64(t.to_datetime64(), "s")
    if end and bare:
        t64 = t64 + np.timedelta64(86399, "s")
    return t64


@dataclasses.dataclass(frozen=True)
class Split:
    """A train/test split of one series (`test` is None without a test period)."""

    train: PriceSeries
    test: PriceSeries | None
    span: PriceSeries


def split_series(
    series: PriceSeries, train_start=None, train_end=None, test_start=None, test_end=None
) -> Split:
    """Split `series` by dates (inclusive; bare dates cover whole days).

    Without test dates there is no test period. A test start alone trains on everything
    before it; a train end alone tests on everything after it (to `test_end` if given).
    `span` is the contiguous stretch from the training start to the test end, over which the
    test period is filtered one step ahead with the training parameters.
    """
    step = series.step
    ts = lambda d, e: _parse_date(d, end=e)  # noqa: E731
    t_lo = ts(train_start, False) if train_start is not None else series.times[0]
    has_test = test_start is not None or test_end is not None
    if train_end is not None:
        t_hi = ts(train_end, True)
    elif test_start is not None:
        t_hi = ts(test_start, False) - step
    else:
        t_hi = series.times[-1]
    train = series.between(t_lo, t_hi)
    if not has_test and train_end is None:
        return Split(train, None, train)
    if not has_test:
        # A train end alone: the test period is the rest of the series.
        if t_hi >= series.times[-1]:
            return Split(train, None, train)
        test = series.between(train.times[-1] + step, None)
    else:
        s_lo = ts(test_start, False) if test_start is not None else train.times[-1] + step
        s_hi = ts(test_end, True) if test_end is not None else series.times[-1]
        test = series.between(s_lo, s_hi)
    if test.times[0] <= train.times[-1]:
        raise ValueError(
            f"test period starts at {test.times[0]}, inside the training period (which ends "
            f"at {train.times[-1]}); test_start must be after train_end"
        )
    span = series.between(train.times[0], test.times[-1])
    return Split(train, test, span)


class _Reject(ValueError):
    pass


def _where(path: str, line: int, col: int, name: str) -> str:
    return f"{path}, line {line}, column {col} ({name!r})"


def _detect_layout(header: list[str]) -> str:
    names = [h.strip() for h in header]
    if names[0] in ("", "Unnamed: 0") and "Price_DA" in names:
        return "entsoe"
    if names[0] in ("Date", "") and "Price" in names:
        return "epftoolbox"
    return "generic"


def _find_price_column(path: str, names: list[str], price_column: str | None) -> int:
    if price_column is not None:
        if price_column in names:
            return names.index(price_column)
        raise ValueError(f"{path}, line 1: no column named {price_column!r}; columns are {names}")
    for exact in ("Price", "Price_DA"):
        if exact in names:
            return names.index(exact)
    hits = [i for i, n in enumerate(names) if "price" in n.lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ValueError(
            f"{path}, line 1: no price column (none is named Price or Price_DA or contains "
            f"'price'); columns are {names}; give the column with price_column / --price-column"
        )
    raise ValueError(
        f"{path}, line 1: several columns contain 'price' ({[names[i] for i in hits]}); "
        "choose one with price_column / --price-column"
    )


def _time_format(path: str, line: int, value: str) -> str:
    for fmt in _TIME_FORMATS:
        try:
            _dt.datetime.strptime(value.strip(), fmt)
            return fmt
        except ValueError:
            continue
    raise ValueError(
        f"{_where(path, line, 1, 'timestamp')}: cannot read timestamp {value!r} "
        "(expected yyyy-mm-dd HH:MM[:SS] or m/d/yyyy H:MM)"
    )


def load_prices(
    path: str | os.PathLike,
    price_column: str | None = None,
    repair: bool = False,
    *,
    step: str | np.timedelta64 | None = None,
) -> PriceSeries:
    """Read a regular price series from a CSV file (module docstring for the layouts).

    **Arguments:**

    - `path`: the CSV file.
    - `price_column`: the price column's name (default: found by name).
    - `repair`: instead of rejecting them, drop malformed rows, average duplicated
      timestamps, and fill non-numeric prices and missing timestamps by linear
      interpolation; each fix is recorded in `repairs`.
    - `step`: the expected time step (e.g. `"1h"`); default: the smallest step found.

    **Returns:** a [`PriceSeries`][].

    **Raises:** `ValueError` naming file, line and column for a malformed row, a non-numeric
    price, a duplicated, backward or missing timestamp; `OSError` when the file cannot be read.
    """
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = rows[0]
    names = [h.strip() for h in header]
    layout = _detect_layout(header)
    if len(names) < 2:
        raise ValueError(f"{path}, line 1: need a timestamp and a price column, got {names}")
    pcol = _find_price_column(path, names, price_column)
    pname = names[pcol]
    repairs: list[str] = []
    # csv.reader yields one list per record; records here never span lines, so the file
    # line of record i is i + 1.
    ncol = len(header)
    lines, stamps, raw = [], [], []
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not x.strip() for x in row):
            continue
        if len(row) != ncol:
            msg = (
                f"{_where(path, i, min(len(row), ncol) + 1, 'row')}: malformed row with "
                f"{len(row)} fields, expected {ncol}"
            )
            if not repair:
                raise ValueError(msg)
            repairs.append(f"dropped {msg}")
            continue
        lines.append(i)
        stamps.append(row[0].strip())
        raw.append(row[pcol].strip())
    if not lines:
        raise ValueError(f"{path}: no data rows")
    lines_a = np.asarray(lines)
    fmt = _time_format(path, lines[0], stamps[0])
    times = pd.to_datetime(pd.Series(stamps), format=fmt, errors="coerce")
    bad_t = np.flatnonzero(times.isna().to_numpy())
    if bad_t.size:
        j = bad_t[0]
        msg = (
            f"{_where(path, lines[j], 1, names[0] or 'timestamp')}: cannot read timestamp "
            f"{stamps[j]!r} (format {fmt})"
        )
        if not repair:
            raise ValueError(msg + (f"; {bad_t.size} such rows" if bad_t.size > 1 else ""))
        repairs.append(f"dropped {bad_t.size} row(s) with unreadable timestamps, first: {msg}")
        keep = np.ones(len(lines), bool)
        keep[bad_t] = False
        times = times[keep]
        lines_a = lines_a[keep]
        raw = [r for r, k in zip(raw, keep) if k]
    t = times.to_numpy().astype("datetime64[s]")
    prices = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64)
    bad_p = np.flatnonzero(~np.isfinite(prices))
    if bad_p.size:
        j = bad_p[0]
        msg = f"{_where(path, lines_a[j], pcol + 1, pname)}: non-numeric price {raw[j]!r}" + (
            f" ({bad_p.size} such rows)" if bad_p.size > 1 else ""
        )
        if not repair:
            raise ValueError(msg)
        repairs.append(f"interpolated {msg}")
    if t.size < 2:
        raise ValueError(f"{path}: need at least two observations, got {t.size}")
    dts = np.diff(t)
    back = np.flatnonzero(dts < np.timedelta64(0, "s"))
    if back.size and not repair:
        j = back[0] + 1
        raise ValueError(
            f"{_where(path, lines_a[j], 1, names[0] or 'timestamp')}: timestamp {t[j]} is "
            f"before the previous row's {t[j - 1]}"
        )
    if back.size:
        order = np.argsort(t, kind="stable")
        t, prices, lines_a = t[order], prices[order], lines_a[order]
        repairs.append(f"sorted {back.size} out-of-order timestamp(s)")
        dts = np.diff(t)
    dup = np.flatnonzero(dts == np.timedelta64(0, "s"))
    if dup.size:
        j = dup[0] + 1
        msg = (
            f"{_where(path, lines_a[j], 1, names[0] or 'timestamp')}: duplicated timestamp "
            f"{t[j]} (also at line {lines_a[j - 1]})"
            + (f"; {dup.size} duplicates in all" if dup.size > 1 else "")
        )
        if not repair:
            raise ValueError(msg)
        ut, inv = np.unique(t, return_inverse=True)
        fin = np.isfinite(prices)
        sums = np.bincount(inv, np.where(fin, prices, 0.0))
        cnt = np.bincount(inv, fin.astype(float))
        prices = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
        first = np.full(ut.size, -1)
        first[inv[::-1]] = lines_a[::-1]
        t, lines_a = ut, first
        repairs.append(f"averaged duplicates: {msg}")
        dts = np.diff(t)
    if step is None:
        step64 = dts[dts > np.timedelta64(0, "s")].min()
    else:
        step64 = pd.Timedelta(step).to_timedelta64().astype("timedelta64[s]")
    off = np.flatnonzero(dts != step64)
    if off.size:
        j = off[0] + 1
        gap = dts[j - 1]
        if gap % step64 != np.timedelta64(0, "s"):
            raise ValueError(
                f"{_where(path, lines_a[j], 1, names[0] or 'timestamp')}: timestamp {t[j]} is "
                f"off the {_show_step(step64)} grid (previous {t[j - 1]})"
            )
        n_missing = int(gap // step64) - 1
        msg = (
            f"{_where(path, lines_a[j], 1, names[0] or 'timestamp')}: {n_missing} missing "
            f"timestamp(s) between {t[j - 1]} and {t[j]} (step {_show_step(step64)})"
            + (f"; {off.size} gaps in all" if off.size > 1 else "")
        )
        if not repair:
            raise ValueError(msg)
        if np.any(dts % step64 != np.timedelta64(0, "s")):
            raise ValueError(msg + "; some timestamps are off the grid, cannot repair")
        full = np.arange(t[0], t[-1] + step64, step64)
        filled = np.full(full.size, np.nan)
        filled[((t - t[0]) // step64).astype(int)] = prices
        repairs.append(f"interpolated missing timestamps: {msg}")
        t, prices = full, filled
    bad = ~np.isfinite(prices)
    if bad.any():
        idx = np.arange(prices.size)
        if bad.all():
            raise ValueError(f"{path}: no numeric prices in column {pname!r}")
        prices = np.interp(idx, idx[~bad], prices[~bad])
    return PriceSeries(
        times=t,
        prices=prices,
        step=step64,
        source=path,
        column=pname,
        layout=layout,
        repairs=tuple(repairs),
    )


def _show_step(step: np.timedelta64) -> str:
    s = int(step / np.timedelta64(1, "s"))
    if s % 3600 == 0:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}min"
    return f"{s}s"
