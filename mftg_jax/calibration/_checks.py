"""Checks that a price series can identify the calibrated model, made before fitting, and
that a fit is plausible for its data, made after.

A fit to data that cannot identify the model returns numbers, not an answer: a daily series
has no intra-day dynamics to fit hourly rates to, a constant series has no variance to fit
the noise to, a short series has fewer observations than a reliable fit of the parameters
needs. Each check fails with a `ValueError` saying what is wrong and what would work.
"""

import numpy as np

from ._data import PriceSeries

# Observations per fitted parameter below which a fit is refused.
OBS_PER_PARAMETER = 10


def check_series(series: PriceSeries, n_params: int, what: str = "training period") -> None:
    r"""Refuse a series that cannot identify a model of `n_params` parameters.

    Requires a time step of at most one hour, at least $10$ observations per parameter
    ($T \ge 10\,d$), and prices that vary (standard deviation above $10^{-6}$ of the
    largest price, at least three distinct values).

    **Arguments:**

    - `series`: a [`PriceSeries`][mftg_jax.calibration.PriceSeries].
    - `n_params`: the number of fitted parameters (`Parametrisation.size`).
    - `what`: how the messages name the series.

    **Raises:** `ValueError` naming the file, what is wrong and what would work.
    """
    src = series.source or "the series"
    if series.dt_hours > 1.0:
        raise ValueError(
            f"{src}: the time step is {series.dt_hours:g} hours; the calibration needs hourly "
            "(or finer) prices, whose hourly mean reversion and daily and weekly seasons it "
            "fits"
        )
    y = np.asarray(series.prices, dtype=np.float64)
    need = OBS_PER_PARAMETER * n_params
    if y.size < need:
        raise ValueError(
            f"{src}: the {what} has {y.size} observations, too few for the {n_params} "
            f"parameters of the model (at least {need}: {OBS_PER_PARAMETER} per parameter); "
            "use a longer period or fewer --harmonics"
        )
    spread = float(np.std(y))
    scale = max(float(np.max(np.abs(y))), 1.0)
    if spread <= 1e-6 * scale:
        raise ValueError(
            f"{src}: the prices of the {what} are constant (all near {float(np.mean(y)):g}, "
            f"standard deviation {spread:.2g}); a price model needs prices that vary"
        )
    if np.unique(y).size < 3:
        raise ValueError(
            f"{src}: the {what} has only {np.unique(y).size} distinct prices; a price model "
            "needs prices that vary"
        )


def check_fitted_level(level: float, series: PriceSeries, name: str = "level") -> None:
    r"""Refuse a fitted level outside the range of the prices it was fitted to.

    A stationary price $\bar p \notin [\min_k y_k, \max_k y_k]$ is a failed fit, not a
    result.

    **Arguments:**

    - `level`: the fitted level (e.g. the implied stationary price).
    - `series`: the [`PriceSeries`][mftg_jax.calibration.PriceSeries] it was fitted to.
    - `name`: how the message names the level.

    **Raises:** `ValueError` naming the level, its value and the data's range.
    """
    y = np.asarray(series.prices, dtype=np.float64)
    lo, hi = float(np.min(y)), float(np.max(y))
    if not (np.isfinite(level) and lo <= level <= hi):
        raise ValueError(
            f"the fitted {name} {level:.6g} is outside the range of the prices it was fitted "
            f"to [{lo:.6g}, {hi:.6g}] ({series.source or 'the series'}): the fit failed; try "
            "more --starts, a longer period or fewer --harmonics"
        )
