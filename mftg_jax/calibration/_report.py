r"""Fit the equilibrium model and the baselines to one split, and compare them out of sample.

Every negative log-likelihood is per observation, of the price in its own unit, one step
ahead; the test period is filtered with the parameters fitted on the training period,
continuing from the training data when the two periods are contiguous.
"""

import dataclasses
import os
import time

import jax.numpy as jnp
import numpy as np

from ._baselines import fit_ar1
from ._calibrate import calibrate, CalibrationResult, default_checkpoint, PriceCalibrator
from ._data import PriceSeries, Split
from ._kalman import kalman_filter
from ._price_model import StructuralDefaults

IDENTIFIED = (
    "eta (= idiosyncratic mean-reversion rate kappa_i, per hour)",
    "K = sum_j k_j (common rate kappa_c = eta (1 + K), per hour)",
    "stationary mean price (a + sum_j m_j) / (1 + K) and its seasonal harmonics",
    "sigma_o, sigma (per square-root hour) and the jump laws",
)
NOT_IDENTIFIED = (
    "n, and each producer's share of K (producers taken identical)",
    "lam (enters only through lam + 2 eta (1 + K))",
    "the split of R = r + rbar into r and rbar (stationary alpha = 0)",
    "c versus a (only a + sum_j m_j matters); q (terminal weight)",
)


def _test_slice(split: Split) -> slice:
    i0 = split.span.index_of(split.test.times[0])
    return slice(i0, i0 + len(split.test))


def test_nll(result: CalibrationResult, split: Split) -> float:
    """Mean one-step-ahead NLL of the test period, filtering the whole span."""
    span = split.span
    t = span.hours(origin=split.train.times[0])
    out = kalman_filter(
        result.price_model(), jnp.asarray(span.prices), jnp.asarray(t), span.dt_hours
    )
    return float(np.mean(np.asarray(out.nll)[_test_slice(split)]))


def _jsonable_game(result: CalibrationResult) -> dict:
    g = result.game()
    mk, pr, nz = g.market, g.producers, g.noise
    return {
        "eta": mk.eta,
        "a_mean": mk.a.mean,
        "a_period_hours": mk.a.period,
        "a_cos": mk.a.cos,
        "a_sin": mk.a.sin,
        "q": mk.q,
        "c": pr.c,
        "r": pr.r,
        "rbar": pr.rbar,
        "lam": pr.lam,
        "sigma": nz.sigma,
        "sigma_o": nz.sigma_o,
        "jump_intensity": nz.jumps.intensity,
        "common_jump_intensity": nz.common_jumps.intensity,
    }


def calibration_report(
    split: Split,
    calibrator: PriceCalibrator = PriceCalibrator(),
    *,
    checkpoint_dir: str | None = None,
    progress: bool = False,
) -> tuple[dict, dict]:
    """Fit the equilibrium model, the MRJD baseline (same code, one factor) and the AR(1)
    baseline on `split.train`; evaluate all three on `split.test`.

    **Arguments:**

    - `split`: a [`Split`][] (from [`split_series`][]).
    - `calibrator`: settings of the equilibrium fit; the MRJD fit uses the same ones.
    - `checkpoint_dir`: where to checkpoint both fits (None: no checkpoints).
    - `progress`: tqdm progress bars.

    **Returns:** `(report, fits)`: the report (plain numbers and arrays, keys listed by
    `mftg calibrate --help`), and `{"equilibrium": CalibrationResult, "mrjd": ...,
    "ar1": AR1}`.
    """
    t0 = time.perf_counter()
    train = split.train

    def ck(cal):
        # One file per data and settings: concurrent runs do not share checkpoints.
        if checkpoint_dir is None:
            return None
        return os.path.join(checkpoint_dir, os.path.basename(default_checkpoint(train, cal)))

    eq = calibrate(train, calibrator, checkpoint=ck(calibrator), progress=progress)
    # The same optimiser settings; the reduced-form model has no structural defaults.
    mrjd_cal = dataclasses.replace(
        calibrator,
        model="mrjd",
        jumps="none" if calibrator.jumps == "none" else "common",
        defaults=StructuralDefaults(),
    )
    mrjd = calibrate(train, mrjd_cal, checkpoint=ck(mrjd_cal), progress=progress)
    ar1 = fit_ar1(train.prices)
    report = {
        "data": _data_info(split),
        "params": eq.identified(),
        "stderr": eq.stderr("identified"),
        "implied": eq.implied(),
        "implied_stderr": eq.stderr("implied"),
        "game": _jsonable_game(eq),
        "identified": list(IDENTIFIED),
        "fixed_defaults": {
            **{k: v for k, v in calibrator.defaults.values().items() if k != "horizon"},
            "not_identified": list(NOT_IDENTIFIED),
        },
        "nll_train_per_obs": eq.loss,
        "nll_test_per_obs": None,
        "baseline_nll_train_per_obs": float(np.mean(ar1.nll_per_step(train.prices))),
        "baseline_nll_test_per_obs": None,
        "mrjd_nll_train_per_obs": mrjd.loss,
        "mrjd_nll_test_per_obs": None,
        "converged": eq.converged,
        "convergence": eq.reason,
        "iterations": eq.iterations,
        "start_losses": list(eq.start_losses),
        "hessian_singular": eq.hessian_singular,
        "mrjd": {
            "params": mrjd.identified(),
            "stderr": mrjd.stderr("identified"),
            "converged": mrjd.converged,
            "iterations": mrjd.iterations,
        },
        "ar1": {"c": ar1.c, "phi": ar1.phi, "s": ar1.s},
        "units": "time in hours; rates per hour; prices in the data's unit",
        "seconds": None,
    }
    if split.test is not None:
        report["nll_test_per_obs"] = test_nll(eq, split)
        report["mrjd_nll_test_per_obs"] = test_nll(mrjd, split)
        sl = _test_slice(split)
        ar = ar1.nll_per_step(split.span.prices)
        report["baseline_nll_test_per_obs"] = float(np.mean(ar[sl.start - 1 : sl.stop - 1]))
    report["seconds"] = time.perf_counter() - t0
    return report, {"equilibrium": eq, "mrjd": mrjd, "ar1": ar1}


def _data_info(split: Split) -> dict:
    tr, te = split.train, split.test
    info = {
        "file": tr.source,
        "column": tr.column,
        "layout": tr.layout,
        "dt_hours": tr.dt_hours,
        "time_origin": str(tr.times[0]),
        "train": [str(tr.times[0]), str(tr.times[-1])],
        "n_train": len(tr),
        "test": None if te is None else [str(te.times[0]), str(te.times[-1])],
        "n_test": 0 if te is None else len(te),
        "repairs": list(tr.repairs),
    }
    return info


def fitted_series(result: CalibrationResult, series: PriceSeries, origin) -> dict:
    """Seasonal level, one-step predictions and standardised residuals along `series`."""
    t = series.hours(origin=origin)
    model = result.price_model()
    out = kalman_filter(model, jnp.asarray(series.prices), jnp.asarray(t), series.dt_hours)
    return {
        "times": series.times,
        "prices": series.prices,
        "seasonal": np.asarray(model.seasonal_mean(jnp.asarray(t))),
        "predicted": np.asarray(out.mean),
        "residual": np.asarray(out.residual),
        "nll": np.asarray(out.nll),
    }
