r"""The law of the price model's state at a date, filtered from the prices before it.

The mixture Kalman filter ([`filtered_state`][]) runs over the last `window` observations
before `start` from the stationary law (the filter forgets its start at the slow rate
$\kappa_i$: after 2016 hours the weight of the start is $e^{-2016\kappa_i}$), then predicts
([`predict_state`][]) the steps from the last observation to `start`. In the game's terms
$\hat p = m(t) + x_c$ and $p - \hat p = x_i$, so the law of $(\hat p, p - \hat p)$ at `start`
is Gaussian with mean $(m(t) + E x_c, E x_i)$ and the factors' covariance.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from ._data import _parse_date, PriceSeries
from ._kalman import filtered_state, predict_state
from ._price_model import LinearPriceModel

WINDOW = 2016


@dataclasses.dataclass(frozen=True)
class StateAt:
    """The law of $(\\hat p, p - \\hat p)$ at `time` (hours `t` from the time origin).

    - `mean (2,)`, `cov (2, 2)`: Gaussian law of $(\\hat p, p - \\hat p)$.
    - `seasonal`: the model's mean price $m(t)$ at `time`.
    - `last_observed`: the last observation used; `steps`: prediction steps after it.
    """

    time: np.datetime64
    t: float
    mean: np.ndarray
    cov: np.ndarray
    seasonal: float
    last_observed: np.datetime64
    steps: int


def as_time(d) -> np.datetime64:
    """A date (ISO text, `datetime64`, `datetime`) as `datetime64[s]`; a bare date is its
    first hour."""
    return _parse_date(d, end=False)


def state_at(
    model: LinearPriceModel,
    series: PriceSeries,
    origin,
    start,
    *,
    window: int = WINDOW,
) -> StateAt:
    """The law of the state at `start` given the observations of `series` before it.

    **Arguments:**

    - `model`: a [`LinearPriceModel`][] whose seasonal time origin is `origin`.
    - `series`: the prices; `start`: a date on its time grid after its first observation.
    - `window`: at most this many observations before `start` are filtered.

    **Returns:** a [`StateAt`][]. **Raises:** `ValueError` naming `start` when it is not
    after the first observation or not on the series' grid.
    """
    t_start = as_time(start)
    origin = np.datetime64(origin, "s")
    times = series.times
    step = series.step
    if t_start <= times[0]:
        raise ValueError(
            f"start {t_start} must be after the first observation {times[0]} of "
            f"{series.source or 'the series'}: the state is filtered from the prices before it"
        )
    off = (t_start - times[0]) / step
    if off != int(off):
        raise ValueError(
            f"start {t_start} is not on the time grid of {series.source or 'the series'} "
            f"(step {series.dt_hours:g} h from {times[0]})"
        )
    i = int(np.searchsorted(times, t_start))  # observations strictly before start
    lo = max(0, i - window)
    y = np.asarray(series.prices[lo:i], np.float64)
    tt = (times[lo:i] - origin) / np.timedelta64(1, "s") / 3600.0
    dt = series.dt_hours
    fs = filtered_state(model, jnp.asarray(y), jnp.asarray(tt), dt)
    steps = int(round((t_start - times[i - 1]) / step))
    m, P = predict_state(model, fs.mean[-1], fs.cov[-1], dt, steps)
    t = float((t_start - origin) / np.timedelta64(1, "s") / 3600.0)
    seasonal = float(model.seasonal_mean(jnp.asarray(t)))
    m = np.asarray(m, np.float64)
    P = np.asarray(P, np.float64)
    P = 0.5 * (P + P.T)
    return StateAt(
        time=t_start,
        t=t,
        mean=np.array([seasonal + m[0], m[1]]),
        cov=P,
        seasonal=seasonal,
        last_observed=times[i - 1],
        steps=steps,
    )
