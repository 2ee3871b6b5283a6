"""Progress bars that suit where they are written: a live tqdm bar on a terminal (or in a
notebook), a few plain lines in a log file.

tqdm redraws its bar with a carriage return at every refresh; written to a file, a pipe or
a CI log those redraws pile up (tens of kilobytes of bars for one calibration). On a stream
that is not a terminal, [`progress_bar`][] returns a [`LineProgress`][] instead: one line
each time another `every` percent is done (and one at the end), nothing else.
"""

import sys
import time


class LineProgress:
    """The tqdm interface used here (`update`, `set_postfix`, `close`), as plain lines.

    **Arguments:** `total` steps, `initial` steps already done, `desc` (the line's prefix),
    `every` (percent between lines), `file` (default: `sys.stderr` at each write).
    """

    def __init__(self, total, initial=0, desc="", every=5.0, file=None, unit="it"):
        self.total = total
        self.n = initial
        self.desc = desc
        self.every = every
        self.file = file
        self.unit = unit
        self.postfix: dict = {}
        self._t0 = time.perf_counter()
        self._next = self._threshold_after(initial)
        self._written = initial

    def _threshold_after(self, n) -> float:
        if not self.total:
            return float("inf")
        step = self.total * self.every / 100.0
        return (int(n / step) + 1) * step

    def _line(self) -> str:
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        post = "".join(f", {k}={v}" for k, v in self.postfix.items())
        secs = time.perf_counter() - self._t0
        total = f"/{self.total}" if self.total else ""
        return f"{self.desc}: {self.n}{total} {self.unit}{pct}, {secs:.1f} s{post}"

    def _write(self) -> None:
        f = sys.stderr if self.file is None else self.file
        print(self._line(), file=f, flush=True)
        self._written = self.n

    def update(self, n=1) -> None:
        self.n += n
        if self.n >= self._next:
            self._write()
            self._next = self._threshold_after(self.n)

    def set_postfix(self, **kwargs) -> None:
        self.postfix = {k: str(v) for k, v in kwargs.items()}

    def close(self) -> None:
        if self.n > self._written:
            self._write()


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def progress_bar(
    *, total, initial=0, desc="", disable=False, unit="it", leave=True, file=None, every=5.0
):
    """A tqdm bar on a terminal or in a notebook; a [`LineProgress`][] on any other stream
    (`file`, default `sys.stderr`); a disabled tqdm bar with `disable`."""
    from tqdm.auto import tqdm

    stream = sys.stderr if file is None else file
    isatty = getattr(stream, "isatty", None)
    tty = bool(isatty()) if callable(isatty) else False
    if disable or tty or (_in_notebook() and file is None):
        return tqdm(
            total=total,
            initial=initial,
            desc=desc,
            disable=disable,
            unit=unit,
            leave=leave,
            file=file,
        )
    return LineProgress(total, initial, desc, every, file, unit)
