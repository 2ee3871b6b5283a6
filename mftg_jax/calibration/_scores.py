r"""Scores of probabilistic forecasts: CRPS, pinball loss, central-interval coverage.

For a forecast law $F$ and a realised value $y$,

$$\mathrm{CRPS}(F, y) = \int (F(x) - \mathbb 1\{y \le x\})^2 dx
  = E|X - y| - \tfrac12 E|X - X'| = 2\int_0^1 \rho_\tau(y - q_\tau)\,d\tau,$$

$\rho_\tau(e) = e\,(\tau - \mathbb 1\{e < 0\})$ the pinball (quantile) loss, $q_\tau$ the
$\tau$-quantile of $F$ (Gneiting and Raftery 2007). From samples the CRPS is the energy form
with sorted samples; from quantiles the last integral by the midpoint rule on the levels
[`crps_levels`][]. The pinball score averages $\rho_\tau$ over the stated levels; the
coverage of the central $1-2a$ interval is the share of $y$ in $[q_a, q_{1-a}]$. Lower CRPS
and pinball are better; a calibrated forecast covers 50% and 90%.
"""

import numpy as np
from scipy.stats import norm


def crps_levels(n: int = 100) -> np.ndarray:
    """The midpoint levels $(i - \\tfrac12)/n$, $i = 1..n$, of the quantile form of the CRPS."""
    return (np.arange(n) + 0.5) / n


def pinball(q: np.ndarray, levels: np.ndarray, y: np.ndarray) -> np.ndarray:
    """$\\rho_\\tau(y - q_\\tau)$ per level and time: `q (Q, H)`, `levels (Q,)`, `y (H,)`."""
    q = np.asarray(q, np.float64)
    e = np.asarray(y, np.float64)[None, :] - q
    tau = np.asarray(levels, np.float64)[:, None]
    return e * (tau - (e < 0))


def crps_from_quantiles(q: np.ndarray, levels: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS per time from quantiles `q (Q, H)` at the midpoint `levels` of [`crps_levels`][]:
    $2\\,\\overline{\\rho_\\tau(y - q_\\tau)}$."""
    return 2.0 * np.mean(pinball(q, levels, y), axis=0)


def crps_from_samples(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS per time from samples `x (S, H)`: $E|X - y| - \\tfrac12 E|X - X'|$, the second
    term from the sorted samples, $\\tfrac{1}{S^2}\\sum_i (2i - S - 1)\\,x_{(i)}$."""
    x = np.sort(np.asarray(x, np.float64), axis=0)
    y = np.asarray(y, np.float64)
    S = x.shape[0]
    a = np.mean(np.abs(x - y[None, :]), axis=0)
    w = (2 * np.arange(1, S + 1) - S - 1)[:, None]
    return a - np.sum(w * x, axis=0) / S**2


def crps_gaussian(mean, sd, y) -> np.ndarray:
    """Closed form for $N(\\mu, s^2)$: $s\\,[z(2\\Phi(z) - 1) + 2\\varphi(z) - 1/\\sqrt\\pi]$,
    $z = (y - \\mu)/s$."""
    mean, sd, y = (np.asarray(v, np.float64) for v in (mean, sd, y))
    z = (y - mean) / sd
    return sd * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def coverage(q: np.ndarray, levels: np.ndarray, y: np.ndarray, width: float) -> float:
    """Share of `y` inside the central `width` interval $[q_{(1-w)/2}, q_{(1+w)/2}]$."""
    levels = np.asarray(levels, np.float64)
    lo, hi = (1 - width) / 2, (1 + width) / 2
    i, j = (int(np.argmin(np.abs(levels - v))) for v in (lo, hi))
    if abs(levels[i] - lo) > 1e-9 or abs(levels[j] - hi) > 1e-9:
        raise ValueError(f"quantile levels must include {lo:g} and {hi:g} for {width:.0%} coverage")
    y = np.asarray(y, np.float64)
    return float(np.mean((y >= q[i]) & (y <= q[j])))


def score_quantiles(
    q_grid: np.ndarray,
    grid: np.ndarray,
    q: np.ndarray,
    levels: np.ndarray,
    y: np.ndarray,
    q_cover: np.ndarray | None = None,
    cover_levels: np.ndarray | None = None,
) -> dict:
    """`crps` (mean over times, from the grid quantiles), `pinball` (mean over the stated
    `levels` and times), `coverage_50`, `coverage_90` and `n` (times scored) where `y` is
    finite. The coverages read the quantiles `q_cover` at `cover_levels` (which must hold
    0.05, 0.25, 0.75 and 0.95) when given, else the stated ones."""
    ok = np.isfinite(np.asarray(y, np.float64))
    if not ok.any():
        raise ValueError("no realised prices to score")
    y = np.asarray(y, np.float64)[ok]
    qg, qs = np.asarray(q_grid)[:, ok], np.asarray(q)[:, ok]
    if q_cover is None:
        qc, lc = qs, levels
    else:
        qc, lc = np.asarray(q_cover)[:, ok], cover_levels
    return {
        "crps": float(np.mean(crps_from_quantiles(qg, grid, y))),
        "pinball": float(np.mean(pinball(qs, levels, y))),
        "coverage_50": coverage(qc, lc, y, 0.5),
        "coverage_90": coverage(qc, lc, y, 0.9),
        "n": int(ok.sum()),
    }
