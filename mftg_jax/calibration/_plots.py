"""Diagnostic figures of a calibration: seasonal level, residuals, QQ plot, distributions."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from ._calibrate import CalibrationResult
from ._data import Split
from ._report import fitted_series
from ._synthetic import sample_prices


def plot_calibration(
    result: CalibrationResult,
    split: Split,
    out_dir: str | None = None,
    *,
    key=None,
    weeks: int = 3,
) -> dict:
    """The figures of a fitted model on its training period (and test period, if any).

    - `seasonal.png`: the fitted seasonal level $E[p(t)]$ and the one-step predictions
      against the data over the last `weeks` weeks of training, and the mean weekly profile.
    - `residuals.png`: standardised residuals $\\Phi^{-1}(\\text{PIT})$ over time and their
      normal QQ plot.
    - `distribution.png`: the price distribution simulated from the fitted model (exact
      discretisation, same length as the training period) against the observed one.

    **Arguments:** the `result` of [`calibrate`][], the `split` it was fitted on, a folder to
    write PNG files into (None: only return the figures), a PRNG `key` for the simulation.

    **Returns:** `{name: matplotlib Figure}`.
    """
    import matplotlib

    if out_dir is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    key = jax.random.key(0) if key is None else key
    train = split.train
    f = fitted_series(result, split.span, train.times[0])
    n_train = len(train)
    figs = {}

    fig, ax = plt.subplots(1, 2, figsize=(13, 4))
    m = min(n_train, int(round(weeks * 168 / train.dt_hours)))
    sl = slice(n_train - m, n_train)
    ax[0].plot(f["times"][sl], f["prices"][sl], lw=0.8, label="observed")
    ax[0].plot(f["times"][sl], f["seasonal"][sl], lw=1.2, label="seasonal level E[p(t)]")
    ax[0].plot(f["times"][sl], f["predicted"][sl], lw=0.6, ls="--", label="one step ahead")
    ax[0].set_ylabel("price")
    ax[0].set_title("end of training period")
    ax[0].legend(fontsize=8)
    hours = ((f["times"][:n_train] - f["times"][0]) / np.timedelta64(1, "h")).astype(int)
    slot = hours % 168
    obs = np.bincount(slot, f["prices"][:n_train], 168) / np.maximum(
        np.bincount(slot, None, 168), 1
    )
    fit = np.bincount(slot, f["seasonal"][:n_train], 168) / np.maximum(
        np.bincount(slot, None, 168), 1
    )
    ax[1].plot(np.arange(168), obs, label="observed mean")
    ax[1].plot(np.arange(168), fit, label="fitted seasonal level")
    ax[1].set_xlabel("hour of the week (from the training start)")
    ax[1].set_title("mean weekly profile (training)")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    figs["seasonal"] = fig

    fig, ax = plt.subplots(1, 2, figsize=(13, 4))
    r = f["residual"]
    ax[0].plot(f["times"], r, lw=0.3)
    if split.test is not None:
        ax[0].axvline(split.test.times[0], color="k", ls="--", lw=1, label="test start")
        ax[0].legend(fontsize=8)
    ax[0].set_title("standardised one-step residuals")
    rs = np.sort(r[np.isfinite(r)])
    q = _normal_quantiles(rs.size)
    ax[1].plot(q, rs, ".", ms=1.5)
    lim = [min(q[0], rs[0]), max(q[-1], rs[-1])]
    ax[1].plot(lim, lim, "k--", lw=1)
    ax[1].set_xlabel("normal quantile")
    ax[1].set_ylabel("residual quantile")
    ax[1].set_title("QQ plot")
    fig.tight_layout()
    figs["residuals"] = fig

    fig, ax = plt.subplots(figsize=(7, 4))
    t = jnp.asarray(train.hours())
    sim = np.asarray(sample_prices(result.price_model(), key, t, train.dt_hours))
    lo, hi = np.percentile(np.concatenate([train.prices, sim]), [0.1, 99.9])
    bins = np.linspace(lo, hi, 80)
    ax.hist(train.prices, bins, density=True, alpha=0.5, label="observed (training)")
    ax.hist(sim, bins, density=True, alpha=0.5, label="simulated from the fit")
    ax.set_xlabel("price")
    ax.set_title("price distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    figs["distribution"] = fig

    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        for name, fg in figs.items():
            fg.savefig(os.path.join(out_dir, f"{name}.png"), dpi=110)
    # Closed for pyplot (no implicit display, no accumulation); the figures stay usable.
    for fg in figs.values():
        plt.close(fg)
    return figs


def _normal_quantiles(n: int) -> np.ndarray:
    from jax.scipy.stats import norm

    p = (np.arange(1, n + 1) - 0.5) / n
    return np.asarray(norm.ppf(jnp.asarray(p)))
