r"""Fit the equilibrium model and the baselines to one split, and compare them out of sample.

Every negative log-likelihood is per observation, of the price in its own unit, one step
ahead; the test period is filtered with the parameters fitted on the training period,
continuing from the training data when the two periods are contiguous.
"""

from collections.abc import Callable
import dataclasses
import os
import time
import warnings

import jax.numpy as jnp
import numpy as np

from ._baselines import fit_ar1
from ._calibrate import (
    calibrate,
    CalibrationResult,
    CalibrationWarning,
    PriceCalibrator,
    with_covariance,
)
from ._criteria import earns_parameters, information_criteria, likelihood_ratio
from ._data import PriceSeries, Split
from ._kalman import kalman_filter
from ._price_model import StructuralDefaults
from ._stages import (
    load_covariance,
    load_fit,
    remove_stages,
    save_covariance,
    save_fit,
    stage_path,
)

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
    keep_stages: bool = False,
    callback: Callable[[str, int, int, float], None] | None = None,
) -> tuple[dict, dict]:
    """Fit the equilibrium model, the MRJD baseline (same code, one factor) and the AR(1)
    baseline on `split.train`; evaluate all three on `split.test`.

    Four stages, each resumed from `checkpoint_dir` when it was finished before
    (`_stages.py`): the equilibrium fit, the MRJD fit (each also resumed from its last
    iteration), their Hessians (standard errors), and the report.

    **Arguments:**

    - `split`: a [`Split`][] (from [`split_series`][]).
    - `calibrator`: settings of the equilibrium fit; the MRJD fit uses the same ones.
    - `checkpoint_dir`: where to keep the iteration checkpoints and the finished stages
      (None: nothing kept, nothing resumed).
    - `progress`: progress of the fits (see [`calibrate`][]).
    - `keep_stages`: keep the finished stages after the report (to be removed by
      [`remove_stages`][] once the report is safely written); by default they are removed.
    - `callback`: called as `callback(stage, start, iteration, loss)` after each optimiser
      iteration of the fits (`stage` "equilibrium" or "mrjd"), and as
      `callback(stage, 0, 0, nan)` when the stage "stderr" or "report" begins; it may raise
      to stop the run.

    **Returns:** `(report, fits)`: the report (plain numbers and arrays, keys listed by
    `mftg calibrate --help`), and `{"equilibrium": CalibrationResult, "mrjd": ...,
    "ar1": AR1}`; the equilibrium result carries the comparison in `evaluation` (its
    `summary()` shows it).
    """
    t0 = time.perf_counter()
    train = split.train
    # The same optimiser settings; the reduced-form model has no structural defaults.
    mrjd_cal = mrjd_calibrator(calibrator)
    tell = callback or (lambda *a: None)

    def fitted(name: str, cal: PriceCalibrator) -> CalibrationResult:
        param = cal.parametrisation(train)
        where = None if checkpoint_dir is None else stage_path(checkpoint_dir, train, cal, "fit")
        kept = None if where is None else load_fit(where, param)
        if kept is not None:
            if not kept.converged:
                # As `calibrate` says of a fit that did not converge.
                warnings.warn(
                    f"calibration of the {param.model} model did not converge: {kept.reason}",
                    CalibrationWarning,
                    stacklevel=3,
                )
            return kept
        ck = None if where is None else stage_path(checkpoint_dir, train, cal, "checkpoint")
        r = calibrate(
            train,
            cal,
            checkpoint=ck,
            progress=progress,
            stderr=False,
            callback=lambda s, it, v: tell(name, s, it, v),
            keep_checkpoint=True,
        )
        if where is not None:
            # The result is safe on disk before its iteration checkpoint goes.
            save_fit(where, r)
            if os.path.exists(ck):
                os.remove(ck)
        return r

    def with_stderr(r: CalibrationResult, cal: PriceCalibrator) -> CalibrationResult:
        where = None if checkpoint_dir is None else stage_path(checkpoint_dir, train, cal, "cov")
        kept = None if where is None else load_covariance(where, r)
        if kept is not None:
            return kept
        r = with_covariance(r, train)
        if where is not None:
            save_covariance(where, r)
        return r

    eq = fitted("equilibrium", calibrator)
    mrjd = fitted("mrjd", mrjd_cal)
    tell("stderr", 0, 0, float("nan"))
    eq = with_stderr(eq, calibrator)
    mrjd = with_stderr(mrjd, mrjd_cal)
    tell("report", 0, 0, float("nan"))
    ar1 = fit_ar1(train.prices)
    nll_train = {
        "equilibrium": eq.loss,
        "mrjd": mrjd.loss,
        "ar1": float(np.mean(ar1.nll_per_step(train.prices))),
    }
    nll_test = {"equilibrium": None, "mrjd": None, "ar1": None}
    if split.test is not None:
        nll_test["equilibrium"] = test_nll(eq, split)
        nll_test["mrjd"] = test_nll(mrjd, split)
        sl = _test_slice(split)
        ar = ar1.nll_per_step(split.span.prices)
        nll_test["ar1"] = float(np.mean(ar[sl.start - 1 : sl.stop - 1]))
    info = {
        "equilibrium": eq.information(),
        "mrjd": mrjd.information(),
        # Conditional on the first price: T - 1 terms; c, phi, s.
        "ar1": information_criteria(nll_train["ar1"], len(train) - 1, 3),
    }
    lr = likelihood_ratio(info["equilibrium"], info["mrjd"])
    data = _data_info(split)
    evaluation = {
        "data": data,
        "nll_train": nll_train,
        "nll_test": nll_test,
        "information": info,
        "lr_vs_mrjd": lr,
        "earns_parameters": earns_parameters(info, nll_test),
    }
    eq = dataclasses.replace(eq, evaluation=evaluation)
    mrjd = dataclasses.replace(mrjd, evaluation=evaluation)
    report = {
        "data": data,
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
        "nll_test_per_obs": nll_test["equilibrium"],
        "baseline_nll_train_per_obs": nll_train["ar1"],
        "baseline_nll_test_per_obs": nll_test["ar1"],
        "mrjd_nll_train_per_obs": mrjd.loss,
        "mrjd_nll_test_per_obs": nll_test["mrjd"],
        "information_criteria": info,
        "lr_vs_mrjd": lr,
        "earns_parameters": evaluation["earns_parameters"],
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
    report["seconds"] = time.perf_counter() - t0
    if not keep_stages:
        remove_stages(checkpoint_dir, train, (calibrator, mrjd_cal))
    return report, {"equilibrium": eq, "mrjd": mrjd, "ar1": ar1}


def mrjd_calibrator(calibrator: PriceCalibrator) -> PriceCalibrator:
    """The settings of the MRJD fit that [`calibration_report`][] pairs with `calibrator`."""
    return dataclasses.replace(
        calibrator,
        model="mrjd",
        jumps="none" if calibrator.jumps == "none" else "common",
        defaults=StructuralDefaults(),
    )


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
        "test_window": split.test_window,
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
