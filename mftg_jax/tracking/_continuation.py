r"""A real market price continued with and without the regulating strategy (the slides'
"A more stable and regulated price", docs/tracking.md, "Continuing a market price").

The uncontrolled dynamics are the calibration family's reduced form fitted to the history
(one mean-reverting factor with compensated normal jumps around a daily and weekly seasonal
level, [`mftg_jax.calibration.calibrate`][] with `model="mrjd"`),

$$dp = \kappa\,[m(t) + m'(t)/\kappa - p]\,dt + \sigma\,dB + dJ,$$

which is the tracking game's price equation for one asset with $\eta = \kappa$,
$D - S = m + m'/\kappa$ (so that $E p - m$ relaxes to zero at the rate $\kappa$) and the
fitted noise. The game's time unit is one period of the fitted seasonality (a week for
hourly data), its origin the last observed hour and $p_0$ the last observed price. The band
is a pair of quantiles of the recent history, the target the slides' example inside it.
"""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import calibration
from .._noise._jumps import CompoundPoisson, no_jumps, NormalJumps
from .._simulation._driver import EnsembleStatistics
from .._simulation._spec import EnsembleSpec
from ._certificate import nash_gap
from ._ensemble import simulate
from ._model import Band, Costs, Fourier, Noise, target_range, TrackingGame
from ._moments import solve_moments
from ._riccati import solve, TrackingSolution

_HOUR = np.timedelta64(3600, "s")
FAN_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


def band_from_history(series, quantiles=(0.1, 0.9), days: float = 365.0) -> Band:
    r"""The band $[\underline p, \bar p]$ = the `quantiles` of the last `days` days of `series`
    (the target: the slides' example inside it).

    **Arguments:** `series`: a [`mftg_jax.calibration.PriceSeries`][]; `quantiles`: two
    levels $0 < q_{lo} < q_{hi} < 1$; `days` $> 0$.

    **Returns:** a one-asset [`Band`][mftg_jax.tracking.Band].
    """
    lo_q, hi_q = (float(q) for q in quantiles)
    if not 0 < lo_q < hi_q < 1:
        raise ValueError(f"band quantiles must satisfy 0 < lo < hi < 1, got ({lo_q}, {hi_q})")
    if not (np.isfinite(days) and days > 0):
        raise ValueError(f"band days must be > 0, got {days}")
    start = series.times[-1] - np.timedelta64(int(round(days * 86400)), "s")
    window = series.prices[series.times > start]
    lo, hi = np.quantile(window, [lo_q, hi_q])
    if not hi > lo:
        raise ValueError(
            f"the {lo_q:g} and {hi_q:g} quantiles of the last {days:g} days of "
            f"{series.source or 'the series'} are equal ({lo:g}): the prices do not vary "
            "enough to set a band"
        )
    return Band(jnp.asarray([lo]), jnp.asarray([hi]))


def game_from_fit(
    model: "calibration.LinearPriceModel",
    *,
    origin_hours: float,
    p0: float,
    band: Band,
    costs: Costs,
    horizon_hours: float,
    dt_hours: float = 1.0,
) -> TrackingGame:
    r"""The one-asset tracking game whose uncontrolled price is the fitted reduced form
    (module docstring), started at `origin_hours` of the model's clock from `p0`.

    **Arguments:**

    - `model`: a one-factor [`mftg_jax.calibration.LinearPriceModel`][] (factor 0; the fit of
      `model="mrjd"`), in hours.
    - `origin_hours`: the model time of the game's $t_0 = 0$.
    - `p0`: the price at $t_0$.
    - `band`, `costs`: the game's band (with its target) and costs, in the game's time unit.
    - `horizon_hours`: $t_1$ in hours.
    - `dt_hours`: the model's observation step (its jump probabilities are per step).

    **Returns:** a [`TrackingGame`][mftg_jax.tracking.TrackingGame] in units of
    `model.period` hours.
    """
    unit = float(model.period)
    if float(model.sigma[1]) != 0.0 or float(model.jump_prob[1]) != 0.0:
        raise ValueError(
            "game_from_fit needs a one-factor model (calibration model 'mrjd'); the second "
            "factor of this model has noise"
        )
    kappa = float(model.kappa[0]) * unit
    H = max(model.harmonics, default=0)
    cos = np.zeros(H)
    sin = np.zeros(H)
    for j, h in enumerate(model.harmonics):
        phase = 2 * np.pi * h * origin_hours / unit
        C, S = float(model.cos[j]), float(model.sin[j])
        cos[h - 1] = C * np.cos(phase) + S * np.sin(phase)
        sin[h - 1] = S * np.cos(phase) - C * np.sin(phase)
    w = 2 * np.pi * np.arange(1, H + 1)
    # D = m + m'/kappa: the uncontrolled mean relaxes to the seasonal level m.
    demand = Fourier(
        jnp.asarray([float(model.level)]),
        jnp.asarray((cos + sin * w / kappa)[None, :]),
        jnp.asarray((sin - cos * w / kappa)[None, :]),
    )
    prob = float(model.jump_prob[0])
    jumps = (
        CompoundPoisson(
            prob / dt_hours * unit, NormalJumps(float(model.jump_loc[0]), float(model.jump_std[0]))
        )
        if prob > 0
        else no_jumps()
    )
    return TrackingGame(
        eta=jnp.asarray([kappa]),
        demand=demand,
        supply=Fourier.constant(0.0, 1),
        band=band,
        costs=costs,
        noise=Noise(jnp.asarray([float(model.sigma[0]) * np.sqrt(unit)]), jumps=jumps),
        p0=jnp.asarray([p0]),
        t0=0.0,
        t1=horizon_hours / unit,
    )


def default_costs() -> Costs:
    """$q = 1$, $r = 0.01$ (per unit time), no mean-specific or terminal weights."""
    return Costs(q=1.0, qbar=0.0, q_terminal=0.0, qbar_terminal=0.0, r=0.01, rbar=0.0)


def uncontrolled_moments(game: TrackingGame, ts) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact mean and variance of the uncontrolled one-asset price at times `ts`:
    $E p = m + (p_0 - m(0))e^{-\eta t}$ for the game of [`game_from_fit`][] (whose
    $D - S = m + m'/\eta$) and $\mathrm{Var}\,p = v(1 - e^{-2\eta t})/2\eta$,
    $v = \sigma^2 + \nu E Y^2$."""
    ts = np.asarray(ts, float)
    eta = float(game.eta[0])
    d = game.demand
    w = 2 * np.pi * np.arange(1, d.harmonics + 1)
    # Invert D = m + m'/eta harmonic by harmonic: m = (D-coefficients) / (1 + i w/eta).
    z = (np.asarray(d.cos[0]) - 1j * np.asarray(d.sin[0])) / (1 + 1j * w / eta)
    m = float(d.mean[0]) + np.real(z[None, :] * np.exp(1j * w[None, :] * ts[:, None])).sum(1)
    m0 = float(d.mean[0]) + float(np.real(z).sum())
    mean = m + (float(game.p0[0]) - m0) * np.exp(-eta * (ts - float(game.t0)))
    v = float(game.noise.idiosyncratic_variance_rate[0])
    var = v * -np.expm1(-2 * eta * (ts - float(game.t0))) / (2 * eta)
    return mean, var


@dataclasses.dataclass(frozen=True)
class MarketContinuation:
    """What [`continue_market`][] computed.

    - `fit`: the [`mftg_jax.calibration.CalibrationResult`][] of the uncontrolled dynamics;
      `history`, `realised`: the series up to `until` and after it over the horizon (None
      when the data end at `until`).
    - `game`, `solution`: the tracking game and its equilibrium; `gap`: the certificate.
    - `hours (S,)`, `dates (S,)`: the save times after `until`.
    - `regulated`, `uncontrolled`: [`mftg_jax.EnsembleStatistics`][] (with the fans).
    - `exact_mean`, `exact_variance`: `{"regulated", "uncontrolled"}` -> `(S,)`.
    """

    fit: object
    history: object
    realised: object
    game: TrackingGame
    solution: TrackingSolution
    gap: object
    hours: np.ndarray
    dates: np.ndarray
    regulated: EnsembleStatistics
    uncontrolled: EnsembleStatistics
    exact_mean: dict
    exact_variance: dict
    band_quantiles: tuple[float, float]

    def target(self) -> np.ndarray:
        """The target at the save times, `(S,)`."""
        unit = float(self.fit.parametrisation.period)
        return np.asarray(jax.vmap(self.game.target)(jnp.asarray(self.hours / unit)))[:, 0]

    def report(self) -> dict:
        """The figures of the continuation (docs/tracking.md): variances at the horizon and
        over it, the fractions of time inside the band, the control cost, the certificate."""
        reg, free = self.regulated, self.uncontrolled
        lo, hi, inside = target_range(self.game)
        var_r, var_f = self.exact_variance["regulated"], self.exact_variance["uncontrolled"]

        def mc_var(name):
            # E(p - c)^2 - (E p - c)^2 with c the exact mean: the sample variance at t1.
            stats, c = {"regulated": reg, "uncontrolled": free}[name], self.exact_mean[name][-1]
            v = stats.mean["centered2"][-1, 0] - (stats.mean["p"][-1, 0] - c) ** 2
            return float(v), float(stats.stderr["centered2"][-1, 0])

        rep = {
            "source": self.history.source,
            "until": str(self.history.times[-1]),
            "horizon_hours": float(self.hours[-1]),
            "fit_start": str(self.fit_series_start),
            "fit_end": str(self.history.times[-1]),
            "fit_converged": bool(self.fit.converged),
            "fit_iterations": int(self.fit.iterations),
            "fit_loss": float(self.fit.loss),
            "fit": {k: np.asarray(v).tolist() for k, v in self.fit.identified().items()},
            "band_quantiles": list(self.band_quantiles),
            "band_lo": float(self.game.band.lo[0]),
            "band_hi": float(self.game.band.hi[0]),
            "target_min": float(lo[0]),
            "target_max": float(hi[0]),
            "target_inside_band": bool(inside[0]),
            "mean_reversion_per_hour": float(self.game.eta[0]) / self._unit,
            "regulated_reversion_per_hour_t0": float(
                self.game.eta[0] * (1 + self.solution.deviation_gain(self.game.t0)[0])
            )
            / self._unit,
            "optimality_gap": float(np.max(np.asarray(self.gap.gap))),
            "cost": float(self.solution.cost()[0]),
            "variance_t1_regulated": float(var_r[-1]),
            "variance_t1_uncontrolled": float(var_f[-1]),
            "variance_reduction_t1": float(1 - var_r[-1] / var_f[-1]),
            "variance_reduction_mean": float(1 - np.mean(var_r[1:]) / np.mean(var_f[1:])),
            "mc_variance_t1_regulated": mc_var("regulated")[0],
            "mc_variance_t1_regulated_stderr": mc_var("regulated")[1],
            "mc_variance_t1_uncontrolled": mc_var("uncontrolled")[0],
            "mc_variance_t1_uncontrolled_stderr": mc_var("uncontrolled")[1],
            "mc_mean_t1_regulated": float(reg.mean["p"][-1, 0]),
            "mc_mean_t1_regulated_stderr": float(reg.stderr["p"][-1, 0]),
            "mean_t1_regulated": float(self.exact_mean["regulated"][-1]),
            "mc_mean_t1_uncontrolled": float(free.mean["p"][-1, 0]),
            "mc_mean_t1_uncontrolled_stderr": float(free.stderr["p"][-1, 0]),
            "mean_t1_uncontrolled": float(self.exact_mean["uncontrolled"][-1]),
            "fraction_inside_band_regulated": float(reg.mean["inside"][0]),
            "fraction_inside_band_regulated_stderr": float(reg.stderr["inside"][0]),
            "fraction_inside_band_uncontrolled": float(free.mean["inside"][0]),
            "fraction_inside_band_uncontrolled_stderr": float(free.stderr["inside"][0]),
            "control_cost": float(reg.mean["control_cost"][0]),
            "control_cost_stderr": float(reg.stderr["control_cost"][0]),
            "mean_control": float(np.mean(reg.mean["u"][:, 0])),
            "mc_paths": int(reg.run.n_paths),
            "time_unit_hours": self._unit,
        }
        if self.realised is not None:
            p = self.realised.prices
            band = (p >= rep["band_lo"]) & (p <= rep["band_hi"])
            rep["realised_hours"] = int(p.size)
            rep["fraction_inside_band_realised"] = float(np.mean(band))
        return rep

    @property
    def _unit(self) -> float:
        return float(self.fit.parametrisation.period)

    @property
    def fit_series_start(self):
        return self.history.times[-1] - np.timedelta64(
            int(round((self.fit.n_obs - 1) * self.history.dt_hours * 3600)), "s"
        )

    def quantile_table(self):
        """The fans as a `pandas.DataFrame` indexed by date: the target, the exact means and
        variances, and the quantiles of the regulated and uncontrolled prices and of the
        control."""
        import pandas as pd

        cols = {"hours": self.hours, "target": self.target()}
        for name in ("regulated", "uncontrolled"):
            cols[f"{name}_mean"] = self.exact_mean[name]
            cols[f"{name}_variance"] = self.exact_variance[name]
        levels = self.regulated.quantile_levels
        for name, stats in (("regulated", self.regulated), ("uncontrolled", self.uncontrolled)):
            for j, q in enumerate(levels):
                cols[f"{name}_q{q:g}"] = stats.quantiles["p"][j, :, 0]
        for j, q in enumerate(levels):
            cols[f"control_q{q:g}"] = self.regulated.quantiles["u"][j, :, 0]
        return pd.DataFrame(cols, index=pd.DatetimeIndex(self.dates, name="date"))


def continue_market(
    series,
    until,
    horizon: int,
    *,
    fit_days: float = 365.0,
    band_quantiles=(0.1, 0.9),
    band_days: float = 365.0,
    costs: Costs | None = None,
    n_paths: int = 2000,
    seed: int = 0,
    calibrator=None,
    checkpoint: str | None = None,
    progress: bool = False,
) -> MarketContinuation:
    r"""Fit, regulate and continue a market price after `until` (module docstring).

    **Arguments:**

    - `series`: a [`mftg_jax.calibration.PriceSeries`][] (hourly or finer, regular).
    - `until`: the last date of the history (a bare date means its last observation).
    - `horizon`: the continuation's length in steps of the series (hours for hourly data).
    - `fit_days`: the length of the fitting window before `until`.
    - `band_quantiles`, `band_days`: the band from the history ([`band_from_history`][]).
    - `costs`: the issuer's weights (default [`default_costs`][]), per game time unit.
    - `n_paths`, `seed`: the Monte Carlo of both continuations (common random numbers).
    - `calibrator`: a [`mftg_jax.calibration.PriceCalibrator`][] with `model="mrjd"`
      (default: 4 daily and weekly harmonics, jumps).
    - `checkpoint`: the fit's checkpoint file (resumes an interrupted fit).
    - `progress`: progress bars.

    **Returns:** a [`MarketContinuation`][mftg_jax.tracking.MarketContinuation].
    """
    if not (isinstance(horizon, int | np.integer) and 1 <= horizon <= 24 * 366 * 2):
        raise ValueError(f"horizon must be an integer number of steps in [1, 17568], got {horizon}")
    if not (np.isfinite(fit_days) and fit_days > 0):
        raise ValueError(f"fit_days must be > 0, got {fit_days}")
    if not (isinstance(n_paths, int | np.integer) and 1 <= n_paths <= 10**7):
        raise ValueError(f"n_paths must be an integer in [1, 1e7], got {n_paths}")
    history = series.between(None, until)
    step_h = history.dt_hours
    start = history.times[-1] - np.timedelta64(int(round(fit_days * 86400)), "s")
    if start < series.times[0]:
        raise ValueError(
            f"the fitting window of {fit_days:g} days before {until} starts before the data "
            f"({series.source or 'the series'} begins {series.times[0]})"
        )
    train = history.between(start + np.timedelta64(1, "s"), None)
    cal = calibrator or calibration.PriceCalibrator(model="mrjd", harmonics=4, jumps="common")
    if cal.model != "mrjd":
        raise ValueError(f"calibrator.model must be 'mrjd' (the reduced form), got {cal.model!r}")
    fit = calibration.calibrate(train, cal, checkpoint=checkpoint, progress=progress, stderr=False)
    band = band_from_history(history, band_quantiles, band_days)
    model = fit.price_model()
    origin = float((history.times[-1] - train.times[0]) / _HOUR)
    game = game_from_fit(
        model,
        origin_hours=origin,
        p0=float(history.prices[-1]),
        band=band,
        costs=default_costs() if costs is None else costs,
        horizon_hours=horizon * step_h,
        dt_hours=step_h,
    )
    sol = solve(game)
    gap = nash_gap(sol)
    unit = float(model.period)
    hours = np.arange(horizon + 1) * step_h
    ts = hours / unit
    exact_mean = {"uncontrolled": None, "regulated": None}
    exact_var = dict(exact_mean)
    exact_mean["uncontrolled"], exact_var["uncontrolled"] = uncontrolled_moments(game, ts)
    mom = solve_moments(sol, ts)
    exact_mean["regulated"] = np.asarray(mom.mean)[:, 0]
    exact_var["regulated"] = np.asarray(mom.variance)[:, 0]
    spec = EnsembleSpec(
        n_paths=n_paths,
        n_steps=horizon,
        scheme="exponential",
        save_steps=tuple(range(horizon + 1)),
        dtype="float64",
        quantiles=FAN_LEVELS,
    )
    key = jax.random.key(seed)
    stats = {}
    for name, controlled in (("regulated", True), ("uncontrolled", False)):
        center = np.asarray(exact_mean[name])[:, None]
        stats[name] = simulate(
            sol if controlled else game,
            key,
            spec,
            controlled=controlled,
            center=center,
            fan=True,
            progress=progress,
        )
    after = series.times > history.times[-1]
    end = history.times[-1] + np.timedelta64(int(round(horizon * step_h * 3600)), "s")
    realised = None
    if after.any():
        realised = series.between(series.times[after][0], min(end, series.times[-1]))
    return MarketContinuation(
        fit=fit,
        history=history,
        realised=realised,
        game=game,
        solution=sol,
        gap=gap,
        hours=hours,
        dates=history.times[-1] + (hours * 3600).astype("timedelta64[s]"),
        regulated=stats["regulated"],
        uncontrolled=stats["uncontrolled"],
        exact_mean=exact_mean,
        exact_variance=exact_var,
        band_quantiles=tuple(float(q) for q in band_quantiles),
    )


def plot_continuation(result: MarketContinuation, path: str | os.PathLike, days: float = 30.0):
    """The slides' figure: the recent history, the band, the target, fan charts (5-95% and
    25-75%) of the regulated and uncontrolled continuations, the realised prices when the
    data go on, and the control effort below. Written to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result.history
    keep = h.times > h.times[-1] - np.timedelta64(int(days * 86400), "s")
    fig, (ax, axu) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    lo, hi = float(result.game.band.lo[0]), float(result.game.band.hi[0])
    ax.axhspan(lo, hi, color="0.92", label=f"band ({result.band_quantiles[0]:g}-"
               f"{result.band_quantiles[1]:g} quantiles)")  # fmt: skip
    ax.plot(h.times[keep], h.prices[keep], color="0.35", lw=0.7, label="history")
    if result.realised is not None:
        r = result.realised
        ax.plot(r.times, r.prices, color="k", lw=0.7, label="realised")
    d = result.dates
    levels = list(result.regulated.quantile_levels)
    for name, color, stats in (
        ("uncontrolled", "tab:orange", result.uncontrolled),
        ("regulated (MFTG)", "tab:blue", result.regulated),
    ):
        q = stats.quantiles["p"][:, :, 0]
        ax.fill_between(d, q[0], q[-1], color=color, alpha=0.18, lw=0)
        ax.fill_between(d, q[1], q[-2], color=color, alpha=0.3, lw=0)
        ax.plot(d, q[levels.index(0.5)], color=color, lw=1.2, label=f"{name}: median, 50/90%")
    ax.plot(d, result.target(), "k--", lw=1, label="target")
    ax.set_ylabel(f"price ({h.column})")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax.set_title(f"{os.path.basename(h.source) or 'prices'}: continuation after {h.times[-1]}")
    qu = result.regulated.quantiles["u"][:, :, 0]
    axu.fill_between(d, qu[0], qu[-1], color="tab:blue", alpha=0.18, lw=0)
    axu.fill_between(d, qu[1], qu[-2], color="tab:blue", alpha=0.3, lw=0)
    axu.plot(d, qu[levels.index(0.5)], color="tab:blue", lw=1)
    axu.axhline(0, color="0.5", lw=0.5)
    axu.set_ylabel("control u")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
