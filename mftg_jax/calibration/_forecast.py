r"""Probabilistic price forecasts from a fit: the equilibrium's and the baselines'.

From `start` on, the equilibrium forecast is the law of the fitted game's price: the state
$(\hat p, p - \hat p)$ at `start` is Gaussian, filtered from the prices before `start`
([`state_at`][]); the game's time origin is `start` counted from the fit's time origin, so
the seasonal intercept continues; the producers follow the stationary equilibrium feedback
(stationary terminal values: no horizon effect); the paths carry the fitted noise and jumps
and are simulated on the price family's Monte Carlo engine ([`mftg_jax.price.simulate`][]).
$\hat p$ is common to a scenario, so the ensemble has many scenarios of few paths each and
its quantiles are those of the price's marginal law. The baselines come from the same fit
(`_forecast_baselines.py`); all are scored alike ([`score_quantiles`][]).
"""

import dataclasses
import inspect

import jax
import numpy as np

from .. import price as _price
from .._simulation._spec import EnsembleSpec
from ._data import PriceSeries
from ._fitfile import Fit, fitted_game
from ._forecast_baselines import (
    ar1_forecast,
    sample_model_paths,
    sarima_forecast,
    seasonal_naive,
)
from ._scores import crps_levels, score_quantiles
from ._state import as_time, state_at, StateAt

QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
METHODS = ("equilibrium", "seasonal_naive", "ar1", "mrjd", "sarima")
_COVERAGE = (0.05, 0.25, 0.75, 0.95)
_GRID = crps_levels(100)


@dataclasses.dataclass(frozen=True)
class ForecastResult:
    """A forecast of `horizon` hours from `start` (returned by [`forecast`][]).

    - `times (H,)`: the forecast times (`datetime64[s]`); `hours (H,)`: from the time origin.
    - `quantile_levels (Q,)`; `quantiles`: method -> `(Q, H)`; `mean`: method -> `(H,)`.
    - `mean_stderr (H,)`: Monte Carlo standard error of the equilibrium mean.
    - `realised (H,)`: the observed prices (NaN where there are none).
    - `scores`: method -> `{crps, pinball, coverage_50, coverage_90, n}` (empty without
      realised prices); `skipped`: method -> why it is absent.
    - `state`: the [`StateAt`][] at `start`; `paths`, `n_common`, `seed`: the ensemble.
    """

    start: np.datetime64
    times: np.ndarray
    hours: np.ndarray
    quantile_levels: np.ndarray
    quantiles: dict
    mean: dict
    mean_stderr: np.ndarray
    realised: np.ndarray
    scores: dict
    skipped: dict
    state: StateAt
    paths: int
    n_common: int
    seed: int

    @property
    def has_realised(self) -> bool:
        return bool(np.isfinite(self.realised).any())

    def to_pandas(self):
        """The quantile series as a `pandas.DataFrame` indexed by time: columns
        `{method}_mean` and `{method}_q{level}` per method, and `realised`."""
        import pandas as pd

        cols = {}
        for m, q in self.quantiles.items():
            cols[f"{m}_mean"] = self.mean[m]
            for lev, row in zip(self.quantile_levels, q):
                cols[f"{m}_q{lev:g}"] = row
        cols["realised"] = self.realised
        df = pd.DataFrame(cols, index=pd.DatetimeIndex(self.times, name="time"))
        return df

    def scores_table(self) -> dict:
        """`{method: scores}` in the order of `METHODS` (JSON-ready)."""
        return {m: self.scores[m] for m in METHODS if m in self.scores}


def _levels(quantiles) -> np.ndarray:
    q = np.asarray(quantiles, np.float64)
    if q.ndim != 1 or q.size == 0 or np.any((q <= 0) | (q >= 1)) or np.any(np.diff(q) <= 0):
        raise ValueError(f"quantiles must be increasing levels in (0, 1), got {quantiles!r}")
    return q


def _pick(q_all: np.ndarray, simulated: np.ndarray, levels: np.ndarray) -> np.ndarray:
    idx = [int(np.argmin(np.abs(simulated - v))) for v in levels]
    return q_all[idx]


def all_levels(levels) -> np.ndarray:
    """The levels simulated: the stated ones, the coverage ones, the median (the mean of the
    Gaussian baselines, the fan chart's centre line) and the CRPS grid."""
    return np.unique(np.concatenate([np.asarray(levels, np.float64), _COVERAGE, [0.5], _GRID]))


def ensemble_spec(n: int, dt: float, levels, paths: int, steps_per_hour: int) -> EnsembleSpec:
    """The ensemble of a forecast of `n` steps of `dt` hours: 4 paths per common-noise
    scenario, saved at every step up to $t_1 = t_0 + n\\,dt$."""
    sub = max(1, int(round(steps_per_hour * dt)))
    n_common = max(1, paths // 4)
    return EnsembleSpec(
        n_paths=n_common * 4,
        n_common=n_common,
        n_steps=n * sub,
        save_steps=tuple(range(0, n * sub + 1, sub)),
        dtype="float64" if jax.config.read("jax_enable_x64") else "float32",
        quantiles=tuple(float(v) for v in all_levels(levels)),
    )


def _equilibrium(fit, state, n, dt, levels, paths, seed, steps_per_hour):
    game = fitted_game(fit.equilibrium, state, n * dt)
    spec = ensemble_spec(n, dt, levels, paths, steps_per_hour)
    kw = {}
    if "initial" in inspect.signature(_price.simulate).parameters:
        kw["initial"] = _price.InitialLaw(state.mean, state.cov)
    res = _price.simulate(game, jax.random.key(seed), spec, **kw)
    return res, spec.n_common


def forecast(
    fit: Fit,
    series: PriceSeries | None,
    start,
    horizon: int,
    *,
    paths: int = 4000,
    quantiles=QUANTILES,
    seed: int = 0,
    steps_per_hour: int = 4,
    baselines: bool = True,
) -> ForecastResult:
    r"""Forecast the price `horizon` hours from `start` by the fitted game (module docstring),
    with the seasonal-naive, AR(1), MRJD and seasonal ARIMA baselines of the same fit.

    **Arguments:**

    - `fit`: a [`Fit`][] ([`load_fit`][]).
    - `series`: the prices (the fit's data file when None); the state at `start` is filtered
      from the prices before it, and those after it, where present, are scored.
    - `start`: the first forecast time (a date on the series' grid after its first price).
    - `horizon`: hours forecast (the times `start + k dt`, $k = 0..H/dt - 1$).
    - `paths`: Monte Carlo paths of the equilibrium forecast (4 per common-noise scenario).
    - `quantiles`: the quantile levels reported and scored by the pinball loss.
    - `seed`: seed of the Monte Carlo and of the sampled baselines.
    - `steps_per_hour`: simulation steps per hour.
    - `baselines`: also forecast with the baselines.

    **Returns:** a [`ForecastResult`][].
    """
    levels = _levels(quantiles)
    if not (isinstance(paths, int) and paths >= 4):
        raise ValueError(f"paths must be an integer >= 4, got {paths!r}")
    series = fit.series() if series is None else series
    dt = series.dt_hours
    n = int(round(float(horizon) / dt))
    if not n >= 1 or abs(n * dt - float(horizon)) > 1e-9:
        raise ValueError(f"horizon must be a positive multiple of the step {dt:g} h, got {horizon}")
    t_start = as_time(start)
    if t_start > series.times[-1] + series.step:
        raise ValueError(
            f"start {t_start} is after the prices of {series.source or 'the series'} (they end "
            f"at {series.times[-1]}): the state is filtered from the prices before the start; "
            "give a price file that reaches it (--data)"
        )
    state = state_at(fit.equilibrium.price_model(), series, fit.origin, t_start)
    times = t_start + np.arange(n) * series.step
    hours = state.t + dt * np.arange(n)
    realised = np.full(n, np.nan)
    pos = np.searchsorted(series.times, times)
    ok = (pos < len(series)) & (series.times[np.minimum(pos, len(series) - 1)] == times)
    realised[ok] = series.prices[pos[ok]]
    lv_all = all_levels(levels)
    res, n_common = _equilibrium(fit, state, n, dt, levels, paths, seed, steps_per_hour)
    # The last save time is t1, one step past the forecast.
    q_all = {"equilibrium": np.asarray(res.p_quantiles, np.float64)[:, :n]}
    mean = {"equilibrium": np.asarray(res.p_mean, np.float64)[:n]}
    skipped = {}
    if baselines:
        _baselines(fit, series, t_start, n, dt, lv_all, seed, q_all, mean, skipped)
    quant = {m: _pick(q, lv_all, levels) for m, q in q_all.items()}
    scores = {}
    if np.isfinite(realised).any():
        for m, q in q_all.items():
            scores[m] = score_quantiles(
                _pick(q, lv_all, _GRID),
                _GRID,
                quant[m],
                levels,
                realised,
                _pick(q, lv_all, _COVERAGE),
                np.asarray(_COVERAGE),
            )
    return ForecastResult(
        start=t_start,
        times=times,
        hours=hours,
        quantile_levels=levels,
        quantiles=quant,
        mean=mean,
        mean_stderr=np.asarray(res.p_stderr, np.float64)[:n],
        realised=realised,
        scores=scores,
        skipped=skipped,
        state=state,
        paths=n_common * 4,
        n_common=n_common,
        seed=seed,
    )


def _baselines(fit, series, t_start, n, dt, levels, seed, q_all, mean, skipped):
    i = int(np.searchsorted(series.times, t_start))
    history = np.asarray(series.prices[:i], np.float64)
    train = _train(fit, series, history)
    week = int(round(168 / dt))
    rng = np.random.default_rng(seed)
    mid = int(np.argmin(np.abs(levels - 0.5)))
    try:
        q_all["seasonal_naive"], mean["seasonal_naive"] = seasonal_naive(
            history, train, n, levels, rng, week=week
        )
    except ValueError as e:
        skipped["seasonal_naive"] = str(e)
    # AR(1) from the last price before the start, `steps` ahead of it.
    gap = int(round((t_start - series.times[i - 1]) / series.step))
    qa = ar1_forecast(fit.ar1, float(history[-1]), n + gap - 1, levels)[:, gap - 1 :]
    q_all["ar1"], mean["ar1"] = qa, qa[mid]
    mr = fit.mrjd.price_model()
    st = state_at(mr, series, fit.origin, t_start)
    factors = np.array([st.mean[0] - st.seasonal, st.mean[1]])
    hours = st.t + dt * np.arange(n)
    x = sample_model_paths(mr, jax.random.key(seed + 1), factors, st.cov, hours, dt, 4000)
    q_all["mrjd"], mean["mrjd"] = np.quantile(x, levels, axis=0), x.mean(axis=0)
    if dt != 1.0:
        skipped["sarima"] = "the seasonal ARIMA is set up for hourly prices"
        return
    qs, why = sarima_forecast(history, n, levels)
    if qs is None:
        skipped["sarima"] = why
    else:
        q_all["sarima"], mean["sarima"] = qs, qs[mid]


def _train(fit: Fit, series: PriceSeries, history: np.ndarray) -> np.ndarray:
    lo, hi = (np.datetime64(v, "s") for v in fit.data["train"])
    keep = (series.times >= lo) & (series.times <= hi)
    if keep.sum() < 2:
        # Another file than the fit's: its prices before the start stand in for the training.
        return history
    return np.asarray(series.prices[keep], np.float64)
