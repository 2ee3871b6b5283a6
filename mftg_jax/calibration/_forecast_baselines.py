r"""Baseline forecasts from the same fit, each as quantiles at the forecast times.

- **Seasonal naive**: the seasonal random walk $y_t = y_{t - 168} + e_t$ with $e_t$ drawn
  from the training period's weekly differences $y_s - y_{s-168}$ (their empirical law, so
  spikes and skew are kept, not a Gaussian); $h$ hours ahead the forecast is
  $y_{t - 168k} + e^{(1)} + \dots + e^{(k)}$, $k = \lfloor h/168\rfloor + 1$.
- **AR(1)**: the fitted $y_k = c + \phi y_{k-1} + \varepsilon_k$ from the last price before
  the start, Gaussian: mean $c\,(1-\phi^h)/(1-\phi) + \phi^h y$, variance
  $s^2(1-\phi^{2h})/(1-\phi^2)$.
- **MRJD**: the fitted one-factor model ([`LinearPriceModel`][]) from its filtered state,
  sampled exactly on its own discretisation (at most one jump per step).
- **Seasonal ARIMA** (statsmodels, the `peers` extra): SARIMAX of order (1, 0, 1) with a
  daily seasonal (1, 1, 1, 24) part, fitted on the last four weeks before the start;
  Gaussian quantiles from its forecast mean and variance.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import norm

from ._baselines import AR1
from ._price_model import LinearPriceModel

WEEK = 168
SARIMA_ORDER = (1, 0, 1)
SARIMA_SEASONAL = (1, 1, 1, 24)
SARIMA_WINDOW = 4 * WEEK


def seasonal_naive(
    history: np.ndarray,
    train: np.ndarray,
    horizon: int,
    levels,
    rng,
    *,
    week: int = WEEK,
    samples: int = 4000,
) -> np.ndarray:
    """Quantiles `(Q, horizon)` and mean `(horizon,)` of the seasonal naive forecast.

    `history`: the prices before the start (at least a week); `train`: the training prices;
    `horizon` and `week` in steps; `rng`: a NumPy generator.
    """
    history = np.asarray(history, np.float64)
    if history.size < week:
        raise ValueError(f"the seasonal naive forecast needs a week of prices, got {history.size}")
    d = np.asarray(train, np.float64)
    d = d[week:] - d[:-week]
    if d.size < 2:
        raise ValueError("the seasonal naive error law needs more than a week of training prices")
    h = np.arange(horizon)
    k = h // week + 1
    # The last observed price at the same hour of the week.
    base = history[history.size - week + h % week]
    # k independent weekly differences per sample (k is at most horizon/168 + 1).
    draws = rng.choice(d, size=(samples, int(k.max())))
    csum = np.cumsum(draws, axis=1)
    x = base[None, :] + csum[:, k - 1]
    return np.quantile(x, levels, axis=0), base + k * float(np.mean(d))


def ar1_forecast(ar1: AR1, last: float, horizon: int, levels) -> np.ndarray:
    """Gaussian quantiles `(Q, horizon)` of the AR(1) `1..horizon` steps after `last`."""
    h = np.arange(1, horizon + 1)
    phi, c, s = ar1.phi, ar1.c, ar1.s
    ph = phi**h
    if abs(phi - 1) < 1e-12:
        mean, var = last + c * h, s**2 * h
    else:
        mean = c * (1 - ph) / (1 - phi) + ph * last
        var = s**2 * (1 - ph**2) / (1 - phi**2)
    z = norm.ppf(np.asarray(levels, np.float64))
    return mean[None, :] + z[:, None] * np.sqrt(np.maximum(var, 0.0))[None, :]


def sample_model_paths(
    model: LinearPriceModel, key, mean, cov, t: np.ndarray, dt: float, n: int
) -> np.ndarray:
    r"""`n` price paths `(n, len(t))` of `model` at the regular times `t` (step `dt`), the
    factors at `t[0]` drawn from $N$(`mean`, `cov`) and then moved exactly as the model's
    discretisation ([`sample_prices`][] from a given law)."""
    return np.asarray(
        _paths(model, key, jnp.asarray(mean), jnp.asarray(cov), jnp.asarray(t), dt, n)
    )


def _paths(model, key, mean, cov, t, dt, n):
    H = t.shape[0]
    dtype = model.level.dtype
    phi = jnp.exp(-model.kappa * dt)
    sd = model.sigma * jnp.sqrt(-jnp.expm1(-2 * model.kappa * dt) / (2 * model.kappa))
    pj, mu, sj = model.jump_prob, model.jump_loc, model.jump_std
    k0, k_eps, k_u, k_j = jax.random.split(key, 4)
    # A PSD square root (the second factor of a one-factor model has zero variance).
    w, v = jnp.linalg.eigh(0.5 * (cov + cov.T))
    root = v * jnp.sqrt(jnp.maximum(w, 0.0))[None, :]
    x0 = mean[None, :] + jax.random.normal(k0, (n, 2), dtype) @ root.T
    eps = jax.random.normal(k_eps, (H - 1, n, 2), dtype) * sd[None, None, :]
    u = jax.random.uniform(k_u, (H - 1, n), dtype)
    which = jnp.stack([u < pj[0], (u >= pj[0]) & (u < pj[0] + pj[1])], axis=-1)
    sizes = mu[None, None, :] + sj[None, None, :] * jax.random.normal(k_j, (H - 1, n, 2), dtype)
    shocks = eps - (pj * mu)[None, None, :] + jnp.where(which, sizes, 0.0)

    def step(x, shock):
        x = phi[None, :] * x + shock
        return x, jnp.sum(x, axis=-1)

    _, xs = jax.lax.scan(step, x0, shocks)
    xs = jnp.concatenate([jnp.sum(x0, axis=-1)[None, :], xs], axis=0)
    return (model.seasonal_mean(t)[:, None] + xs).T


def sarima_forecast(history: np.ndarray, horizon: int, levels) -> tuple[np.ndarray | None, str]:
    """Gaussian quantiles `(Q, horizon)` of the seasonal ARIMA (module docstring), or
    `(None, reason)` when statsmodels is absent or the fit fails."""
    try:
        from statsmodels.tsa.statespace.sarimax import SARIMAX
    except ImportError:
        return None, "statsmodels is not installed (pip install 'mftg-jax[peers]')"
    y = np.asarray(history, np.float64)[-SARIMA_WINDOW:]
    if y.size < 2 * WEEK:
        return None, f"needs two weeks of prices before the start, got {y.size}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SARIMAX(y, order=SARIMA_ORDER, seasonal_order=SARIMA_SEASONAL)
            res = model.fit(disp=False, maxiter=50)
            fc = res.get_forecast(horizon)
            mean = np.asarray(fc.predicted_mean, np.float64)
            var = np.asarray(fc.var_pred_mean, np.float64)
    except (ValueError, np.linalg.LinAlgError) as e:
        return None, f"the seasonal ARIMA fit failed ({e})"
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        return None, "the seasonal ARIMA forecast is not finite"
    z = norm.ppf(np.asarray(levels, np.float64))
    return mean[None, :] + z[:, None] * np.sqrt(np.maximum(var, 0.0))[None, :], ""
