"""Training and test windows of a price series, checked against the data."""

import datetime as _dt

import numpy as np

from ._data import PriceSeries, Split
from ._dates import _parse_date

# The names of `split_series`'s arguments in its messages (the command line passes flags).
_ARGS = ("train_start", "train_end", "test_start", "test_end")


def _one_year_after(t: np.datetime64) -> np.datetime64:
    """The same calendar time one year later (29 February -> 28 February)."""
    d = t.astype(_dt.datetime)
    try:
        return np.datetime64(d.replace(year=d.year + 1), "s")
    except ValueError:
        return np.datetime64(d.replace(year=d.year + 1, day=28), "s")


def split_series(
    series: PriceSeries,
    train_start=None,
    train_end=None,
    test_start=None,
    test_end=None,
    *,
    labels: dict | None = None,
) -> Split:
    """Split `series` by dates (ISO dates, inclusive; bare end dates cover their whole day).

    - Training: from `train_start` (default: the first observation) to `train_end`
      (default: the hour before `test_start`, else the last observation).
    - Test: from `test_start` (default: the observation after training) to `test_end`
      (default: **one year after the test start**, cut at the end of the data). Without
      `train_end`, `test_start` and `test_end` there is no test period.
    - Every given date must lie in the data: a window outside it is an error, not a clip
      (ends may lie within one time step after the last observation).

    `span` is the contiguous stretch from the training start to the test end, over which the
    test period is filtered one step ahead with the training parameters.

    **Arguments:** the series, the four dates, and `labels`, how messages name each
    argument (`{"train_start": "--train-start", ...}`; default: the argument names).

    **Raises:** `ValueError` naming the argument.
    """
    names = {k: (labels or {}).get(k, k) for k in _ARGS}
    given = dict(zip(_ARGS, (train_start, train_end, test_start, test_end)))
    step = series.step
    first, last = series.times[0], series.times[-1]
    t = {
        k: _parse_date(v, end=k.endswith("end"), name=names[k])
        for k, v in given.items()
        if v is not None
    }
    for k, v in t.items():
        # An end may be the last second of the day of the last observation.
        bad = v < first if k.endswith("start") else v >= last + step
        if bad or v > last + step:
            raise ValueError(
                f"{names[k]} {given[k]} is outside the data ({first} to {last} in "
                f"{series.source or 'the series'}): no observations there; windows are not "
                "clipped to the data"
            )
    t_lo = t.get("train_start", first)
    if "train_end" in t:
        t_hi = t["train_end"]
    elif "test_start" in t:
        t_hi = t["test_start"] - step
    elif "test_end" in t:
        raise ValueError(
            f"{names['test_end']} needs {names['train_end']} or {names['test_start']} (where "
            "the training ends)"
        )
    else:
        t_hi = last
    if t_hi < t_lo:
        raise ValueError(
            f"the training window {t_lo} to {t_hi} is empty ({names['train_start']} after "
            "the training end)"
        )
    train = series.between(t_lo, t_hi)
    if not any(k in t for k in ("train_end", "test_start", "test_end")):
        return Split(train, None, train, "none")
    s_lo = t.get("test_start", train.times[-1] + step)
    if s_lo <= train.times[-1]:
        raise ValueError(
            f"test period starts at {s_lo}, inside the training period (which ends at "
            f"{train.times[-1]}); {names['test_start']} must be after {names['train_end']}"
        )
    if s_lo > last:
        if "test_start" in t or "test_end" in t:
            raise ValueError(
                f"no observations after the training period (it ends at {train.times[-1]}, "
                f"the data at {last}): no test period"
            )
        return Split(train, None, train, "none")
    if "test_end" in t:
        s_hi, rule = t["test_end"], "given"
    else:
        s_hi = _one_year_after(s_lo) - np.timedelta64(1, "s")
        rule = "one year after training"
        if s_hi > last:
            s_hi, rule = last, "one year after training, cut at the end of the data"
    if s_hi < s_lo:
        raise ValueError(
            f"the test window {s_lo} to {s_hi} is empty ({names['test_end']} before the test start)"
        )
    test = series.between(s_lo, s_hi)
    span = series.between(train.times[0], test.times[-1])
    return Split(train, test, span, rule)
