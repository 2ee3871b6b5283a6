"""The finished stages of a calibration report, kept on disk until the report is out.

[`calibration_report`][] runs four stages: the equilibrium fit, the MRJD fit, the Hessians
(standard errors) and the report itself. Each fit checkpoints every iteration (`_checkpoint.py`);
once a fit is finished its result is written here (`{fingerprint}.fit.npz`, then its
covariance `{fingerprint}.cov.npz`) before the iteration checkpoint is removed, so an
interrupted report resumes after the last finished stage and iteration, and a failure after
the fits (writing the outputs, a plot) never loses them. The files are removed by
[`remove_stages`][] once everything is written. Arrays are stored exactly (`.npz`): a resumed
report equals an uninterrupted one.
"""

import dataclasses
import os

import numpy as np

from ._calibrate import CalibrationResult, default_checkpoint, PriceCalibrator
from ._checkpoint import load, save
from ._data import PriceSeries

STAGES = ("fit", "cov")


def stage_path(folder: str, series: PriceSeries, calibrator: PriceCalibrator, stage: str) -> str:
    """Where the stage `stage` ("fit" or "cov") of the fit of `calibrator` to `series` is
    kept in `folder`; the iteration checkpoint is the same name without the stage."""
    base = os.path.basename(default_checkpoint(series, calibrator))
    name = base if stage == "checkpoint" else base.replace(".npz", f".{stage}.npz")
    return os.path.join(folder, name)


def _fingerprint(path: str) -> str:
    return os.path.basename(path).split(".")[0]


def save_fit(path: str, r: CalibrationResult) -> None:
    """Keep a finished fit (everything but its parametrisation, rebuilt from the settings)."""
    d = {
        "fingerprint": np.asarray(_fingerprint(path)),
        "seconds": np.asarray(r.seconds),
        "u": np.asarray(r.u, np.float64),
        "loss": np.asarray(r.loss, np.float64),
        "n_obs": np.asarray(r.n_obs),
        "converged": np.asarray(r.converged),
        "reason": np.asarray(r.reason),
        "iterations": np.asarray(r.iterations),
        "start_losses": np.asarray(r.start_losses, np.float64),
        "history": np.asarray(r.history, np.float64),
    }
    save(path, d)


def load_fit(path: str, parametrisation) -> CalibrationResult | None:
    """The fit kept at `path` (None when there is none for these data and settings)."""
    d = load(path, _fingerprint(path))
    if d is None:
        return None
    return CalibrationResult(
        parametrisation=parametrisation,
        u=d["u"],
        loss=float(d["loss"]),
        n_obs=int(d["n_obs"]),
        converged=bool(d["converged"]),
        reason=str(d["reason"]),
        iterations=int(d["iterations"]),
        seconds=float(d["seconds"]),
        start_losses=tuple(d["start_losses"].tolist()),
        history=tuple(d["history"].tolist()),
    )


def save_covariance(path: str, r: CalibrationResult) -> None:
    d = {
        "fingerprint": np.asarray(_fingerprint(path)),
        "seconds": np.asarray(0.0),
        "singular": np.asarray(r.hessian_singular),
    }
    if r.covariance is not None:
        d["covariance"] = np.asarray(r.covariance, np.float64)
    save(path, d)


def load_covariance(path: str, r: CalibrationResult) -> CalibrationResult | None:
    """`r` with the covariance kept at `path` (None when there is none)."""
    d = load(path, _fingerprint(path))
    if d is None:
        return None
    cov = d.get("covariance")
    return dataclasses.replace(r, covariance=cov, hessian_singular=bool(d["singular"]))


def remove_stages(folder: str | None, series: PriceSeries, calibrators) -> None:
    """Remove the kept stages (and any iteration checkpoint) of these fits from `folder`."""
    if folder is None:
        return
    for cal in calibrators:
        for stage in ("checkpoint",) + STAGES:
            path = stage_path(folder, series, cal, stage)
            if os.path.exists(path):
                os.remove(path)
