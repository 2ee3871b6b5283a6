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

from collections.abc import Callable
import dataclasses
import datetime as _dt
import os
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._csvfile import csv_records
from ._dates import _parse_date

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


@dataclasses.dataclass(frozen=True)
class Split:
    """A train/test split of one series (`test` is None without a test period).

    `test_window` says how the test window was chosen: `"given"`, `"one year after
    training"` (the default), `"one year after training, cut at the end of the data"`, or
    `"none"`."""

    train: PriceSeries
    test: PriceSeries | None
    span: PriceSeries
    test_window: str = "given"


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


# ---------------------------------------------------------------------------------------
# Parse: the header and the data records, with their file lines.


@dataclasses.dataclass(frozen=True)
class _Table:
    """A CSV file's header and its non-blank data records `(file line, fields)`."""

    path: str
    names: list[str]
    layout: str
    pcol: int
    records: list[tuple[int, list[str]]]

    @property
    def pname(self) -> str:
        return self.names[self.pcol]

    @property
    def tname(self) -> str:
        return self.names[0] or "timestamp"

    def where(self, line: int, col: int, name: str) -> str:
        return _where(self.path, line, col, name)


def _read_table(path: str, price_column: str | None) -> _Table:
    numbered = csv_records(path)
    rows = [row for _, row in numbered]
    if not rows:
        raise ValueError(f"{path}: empty file")
    header = rows[0]
    names = [h.strip() for h in header]
    layout = _detect_layout(header)
    if len(names) < 2:
        raise ValueError(f"{path}, line 1: need a timestamp and a price column, got {names}")
    pcol = _find_price_column(path, names, price_column)
    records = [(i, row) for i, row in numbered[1:] if row and not all(not x.strip() for x in row)]
    return _Table(path, names, layout, pcol, records)


@dataclasses.dataclass(frozen=True)
class _Rows:
    """Well-formed data rows: file lines, timestamps (NaT: unreadable) and prices (NaN:
    non-numeric), with the raw text of both for the messages."""

    lines: np.ndarray
    times: np.ndarray
    prices: np.ndarray
    stamps: np.ndarray
    raw: np.ndarray

    def take(self, idx) -> "_Rows":
        return _Rows(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))


def _rows(table: _Table, records: list[tuple[int, list[str]]]) -> tuple[_Rows, str]:
    """The rows' values, and the timestamp format (read from the first row)."""
    if not records:
        raise ValueError(f"{table.path}: no data rows")
    lines = np.asarray([i for i, _ in records])
    stamps = [row[0].strip() for _, row in records]
    raw = [row[table.pcol].strip() for _, row in records]
    fmt = _time_format(table.path, int(lines[0]), stamps[0])
    times = pd.to_datetime(pd.Series(stamps), format=fmt, errors="coerce")
    prices = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64)
    return _Rows(
        lines=lines,
        times=times.to_numpy().astype("datetime64[s]"),
        prices=prices,
        stamps=np.asarray(stamps, dtype=object),
        raw=np.asarray(raw, dtype=object),
    ), fmt


# ---------------------------------------------------------------------------------------
# Detect: each check returns the first defect of its kind (None: none), with the error
# raised without `repair`, the notes recorded with it, and the repair.


class _Defect(NamedTuple):
    error: str
    notes: tuple[str, ...]
    repair: Callable[[], Any]


def _settle(defect: _Defect | None, unchanged, repair: bool, repairs: list[str]):
    """Raise the defect's error, or (with `repair`) record its notes and return the repair;
    `unchanged` when there is no defect."""
    if defect is None:
        return unchanged
    if not repair:
        raise ValueError(defect.error)
    repairs.extend(defect.notes)
    return defect.repair()


def _malformed(table: _Table) -> _Defect | None:
    ncol = len(table.names)
    bad = [(i, row) for i, row in table.records if len(row) != ncol]
    if not bad:
        return None
    msgs = [
        f"{table.where(i, min(len(row), ncol) + 1, 'row')}: malformed row with {len(row)} "
        f"fields, expected {ncol}"
        for i, row in bad
    ]
    good = [(i, row) for i, row in table.records if len(row) == ncol]
    return _Defect(msgs[0], tuple(f"dropped {m}" for m in msgs), lambda: good)


def _unreadable_times(table: _Table, rows: _Rows, fmt: str) -> _Defect | None:
    bad = np.flatnonzero(np.isnat(rows.times))
    if not bad.size:
        return None
    j = bad[0]
    msg = (
        f"{table.where(rows.lines[j], 1, table.tname)}: cannot read timestamp "
        f"{rows.stamps[j]!r} (format {fmt})"
    )
    error = msg + (f"; {bad.size} such rows" if bad.size > 1 else "")
    note = f"dropped {bad.size} row(s) with unreadable timestamps, first: {msg}"
    return _Defect(error, (note,), lambda: rows.take(~np.isnat(rows.times)))


def _non_numeric(table: _Table, rows: _Rows) -> _Defect | None:
    bad = np.flatnonzero(~np.isfinite(rows.prices))
    if not bad.size:
        return None
    j = bad[0]
    where = table.where(rows.lines[j], table.pcol + 1, table.pname)
    msg = f"{where}: non-numeric price {rows.raw[j]!r}" + (
        f" ({bad.size} such rows)" if bad.size > 1 else ""
    )
    # Repaired at the end, by interpolation on the regular grid.
    return _Defect(msg, (f"interpolated {msg}",), lambda: rows)


def _backwards(table: _Table, rows: _Rows) -> _Defect | None:
    t = rows.times
    back = np.flatnonzero(np.diff(t) < np.timedelta64(0, "s"))
    if not back.size:
        return None
    j = back[0] + 1
    error = (
        f"{table.where(rows.lines[j], 1, table.tname)}: timestamp {t[j]} is before the "
        f"previous row's {t[j - 1]}"
    )
    note = f"sorted {back.size} out-of-order timestamp(s)"
    return _Defect(error, (note,), lambda: rows.take(np.argsort(t, kind="stable")))


def _duplicates(table: _Table, rows: _Rows) -> _Defect | None:
    t = rows.times
    dup = np.flatnonzero(np.diff(t) == np.timedelta64(0, "s"))
    if not dup.size:
        return None
    j = dup[0] + 1
    msg = (
        f"{table.where(rows.lines[j], 1, table.tname)}: duplicated timestamp {t[j]} (also at "
        f"line {rows.lines[j - 1]})" + (f"; {dup.size} duplicates in all" if dup.size > 1 else "")
    )

    def average() -> _Rows:
        ut, inv = np.unique(t, return_inverse=True)
        fin = np.isfinite(rows.prices)
        sums = np.bincount(inv, np.where(fin, rows.prices, 0.0))
        cnt = np.bincount(inv, fin.astype(float))
        first = np.full(ut.size, -1)
        first[inv[::-1]] = rows.lines[::-1]
        keep = np.flatnonzero(np.r_[True, np.diff(t) != np.timedelta64(0, "s")])
        out = rows.take(keep)
        prices = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
        return dataclasses.replace(out, lines=first, times=ut, prices=prices)

    return _Defect(msg, (f"averaged duplicates: {msg}",), average)


def _time_step(table: _Table, rows: _Rows, step) -> np.timedelta64:
    if step is None:
        dts = np.diff(rows.times)
        dts = dts[dts > np.timedelta64(0, "s")]
        smallest = dts.min()
        steps, counts = np.unique(dts, return_counts=True)
        usual = steps[np.argmax(counts)]
        if usual != smallest and np.sum(dts == smallest) < dts.size // 2:
            j = int(np.flatnonzero(np.diff(rows.times) == smallest)[0]) + 1
            raise ValueError(
                f"{table.where(rows.lines[j], 1, table.tname)}: irregular time steps: "
                f"{_show_step(smallest)} here, {_show_step(usual)} in most rows; give a "
                "regular series (one price per step)"
            )
        return smallest
    return pd.Timedelta(step).to_timedelta64().astype("timedelta64[s]")


def _gaps(table: _Table, rows: _Rows, step64: np.timedelta64) -> _Defect | None:
    t = rows.times
    dts = np.diff(t)
    off = np.flatnonzero(dts != step64)
    if not off.size:
        return None
    j = off[0] + 1
    gap = dts[j - 1]
    where = table.where(rows.lines[j], 1, table.tname)
    if gap % step64 != np.timedelta64(0, "s"):
        raise ValueError(
            f"{where}: timestamp {t[j]} is off the {_show_step(step64)} grid (previous {t[j - 1]})"
        )
    n_missing = int(gap // step64) - 1
    msg = (
        f"{where}: {n_missing} missing timestamp(s) between {t[j - 1]} and {t[j]} (step "
        f"{_show_step(step64)})" + (f"; {off.size} gaps in all" if off.size > 1 else "")
    )

    def fill() -> tuple[np.ndarray, np.ndarray]:
        if np.any(dts % step64 != np.timedelta64(0, "s")):
            raise ValueError(msg + "; some timestamps are off the grid, cannot repair")
        full = np.arange(t[0], t[-1] + step64, step64)
        filled = np.full(full.size, np.nan)
        filled[((t - t[0]) // step64).astype(int)] = rows.prices
        return full, filled

    return _Defect(msg, (f"interpolated missing timestamps: {msg}",), fill)


def _interpolate(table: _Table, prices: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(prices)
    if not bad.any():
        return prices
    if bad.all():
        raise ValueError(f"{table.path}: no numeric prices in column {table.pname!r}")
    idx = np.arange(prices.size)
    return np.interp(idx, idx[~bad], prices[~bad])


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
    # Parse: header, price column and records with their file lines.
    table = _read_table(path, price_column)
    # Each defect in turn (the first one found is the error): raise, or repair and record.
    repairs: list[str] = []
    records = _settle(_malformed(table), table.records, repair, repairs)
    rows, fmt = _rows(table, records)
    rows = _settle(_unreadable_times(table, rows, fmt), rows, repair, repairs)
    rows = _settle(_non_numeric(table, rows), rows, repair, repairs)
    if rows.times.size < 2:
        raise ValueError(f"{path}: need at least two observations, got {rows.times.size}")
    rows = _settle(_backwards(table, rows), rows, repair, repairs)
    rows = _settle(_duplicates(table, rows), rows, repair, repairs)
    step64 = _time_step(table, rows, step)
    t, prices = _settle(_gaps(table, rows, step64), (rows.times, rows.prices), repair, repairs)
    return PriceSeries(
        times=t,
        prices=_interpolate(table, prices),
        step=step64,
        source=path,
        column=table.pname,
        layout=table.layout,
        repairs=tuple(repairs),
    )


def _show_step(step: np.timedelta64) -> str:
    s = int(step / np.timedelta64(1, "s"))
    if s % 3600 == 0:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}min"
    return f"{s}s"
