"""Dates as the calibration reads them: ISO text (or `datetime64`, `datetime`, `date`) only."""

import datetime as _dt

import numpy as np

from .._validation import ISO_DATE as _ISO


def _parse_date(d, *, end: bool, name: str = "date") -> np.datetime64:
    """A `datetime64`, `datetime`, `date` or ISO text (`yyyy-mm-dd`, optionally with
    ` HH:MM[:SS]` or `THH:MM[:SS]`) as `datetime64[s]`; a bare date as an `end` is its last
    second. Anything else (`01/02/2018`: January or February?) is an error naming `name`."""
    if isinstance(d, np.datetime64):
        return d.astype("datetime64[s]")
    if isinstance(d, _dt.datetime | _dt.date):
        bare = not isinstance(d, _dt.datetime)
        t64 = np.datetime64(d, "s") if not bare else np.datetime64(d.isoformat(), "s")
    else:
        s = str(d).strip()
        t64 = None
        if _ISO.fullmatch(s):
            try:
                t64 = np.datetime64(_dt.datetime.fromisoformat(s), "s")
            except ValueError:
                pass
        if t64 is None:
            raise ValueError(
                f"{name}: cannot read date {d!r}; use an ISO date yyyy-mm-dd (or yyyy-mm-dd HH:MM)"
            )
        bare = len(s) == 10
    if end and bare:
        t64 = t64 + np.timedelta64(86399, "s")
    return t64
