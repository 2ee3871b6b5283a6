r"""Maximum-likelihood calibration of the price game to a price series (jitted).

The loss is the mean one-step-ahead negative log-likelihood of the training prices,
$\ell(u) = -\tfrac1T\sum_k \log p_u(y_k \mid y_{<k})$ ([`negative_log_likelihood`][]), a
function of the unconstrained coordinates $u$ of the identified quantities
([`Parametrisation`][]) through the game's stationary Riccati values. It is minimised by
optimistix's L-BFGS in Hessian-whitened coordinates, after an optional Adam warm-up (optax),
with a convergence test on the gradient's max-norm and on the relative change of the loss
(`_optimiser.py`); standard errors come from the Hessian of the total negative
log-likelihood ($\mathrm{Cov}(\hat u) \approx H^{-1}$) and the delta method.

Progress is checkpointed after every iteration (an atomic file replace, `_checkpoint.py`),
so an interrupted run (Ctrl-C, kill) restarted with the same data and settings continues
from the last iteration and follows the same path to the same optimum.
"""

from collections.abc import Callable
import dataclasses
import os
import time
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._simulation._progress import progress_bar
from ._checkpoint import default_checkpoint as default_checkpoint, fingerprint, load
from ._criteria import information_criteria
from ._data import PriceSeries
from ._optimiser import checkpointer, Programs, Run, run_start
from ._parametrisation import Parametrisation, seasonal_harmonics
from ._price_model import StructuralDefaults
from ._summary import format_summary


class CalibrationWarning(UserWarning):
    """A calibration result to be read with care (singular Hessian, no convergence)."""


class PriceCalibrator(eqx.Module):
    """Settings of [`calibrate`][].

    **Arguments:**

    - `model`: `"equilibrium"` (the price game) or `"mrjd"` (reduced-form baseline).
    - `harmonics`: daily and weekly Fourier harmonics $K$ of the seasonal level.
    - `jumps`: which factor jumps: `"common"`, `"idiosyncratic"`, `"both"` or `"none"`.
    - `defaults`: the game parameters prices cannot identify ([`StructuralDefaults`][]).
    - `max_iter`: L-BFGS iterations per start.
    - `gtol`: converged when $\\max_j|\\partial_j\\ell| \\le$ `gtol` (per observation, in the
      scaled coordinates), or
    - `ftol`: when the relative loss change stays $\\le$ `ftol` for `patience` iterations.
    - `starts`: number of starts (the first from moment estimates, the others perturbed);
      the best optimum is kept.
    - `seed`: seed of the perturbations.
    - `warmup`, `warmup_lr`: Adam steps (and their learning rate) before L-BFGS.
    - `precondition`: run L-BFGS in coordinates whitened by the exact Hessian at its
      starting point ($u = u_0 + Pv$, $P^\top|H|P = I$); the likelihood's Hessian spans
      five orders of magnitude (slow factor, level and volatilities), which plain L-BFGS
      crawls through. The gradient test then reads in whitened coordinates.
    """

    model: str = eqx.field(static=True, default="equilibrium")
    harmonics: int = eqx.field(static=True, default=4)
    jumps: str = eqx.field(static=True, default="common")
    defaults: StructuralDefaults = StructuralDefaults()
    max_iter: int = eqx.field(static=True, default=500)
    gtol: float = eqx.field(static=True, default=1e-5)
    ftol: float = eqx.field(static=True, default=1e-10)
    patience: int = eqx.field(static=True, default=3)
    starts: int = eqx.field(static=True, default=1)
    seed: int = eqx.field(static=True, default=0)
    warmup: int = eqx.field(static=True, default=0)
    warmup_lr: float = eqx.field(static=True, default=0.02)
    precondition: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        for name in ("max_iter", "starts", "patience"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        for name in ("gtol", "ftol", "warmup_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def parametrisation(self, series: PriceSeries) -> Parametrisation:
        """The [`Parametrisation`][] for this training series."""
        y = np.asarray(series.prices, np.float64)
        return Parametrisation(
            model=self.model,
            harmonics=seasonal_harmonics(self.harmonics),
            jumps=self.jumps,
            mean=float(y.mean()),
            scale=float(max(y.std(), 1e-12)),
            dt=series.dt_hours,
            defaults=self.defaults,
            p0=float(y[0]),
        )


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """What [`calibrate`][] found.

    - `parametrisation`, `u`: the coordinates of the best optimum.
    - `loss`: mean training negative log-likelihood at `u`; `n_obs` training observations.
    - `converged`, `reason`, `iterations` (of the best start), `seconds` (wall, all starts).
    - `start_losses`: the optimum of each start.
    - `history`: loss per iteration of the best start.
    - `covariance`: $H^{-1}$ of the coordinates (None without standard errors);
      `hessian_singular`: whether $H$ was singular or indefinite.
    - `evaluation`: what [`calibration_report`][] measured beside the fit (test NLL, the
      baselines' NLLs and information criteria, the data's windows; None otherwise), shown
      by `summary()`.
    """

    parametrisation: Parametrisation
    u: np.ndarray
    loss: float
    n_obs: int
    converged: bool
    reason: str
    iterations: int
    seconds: float
    start_losses: tuple[float, ...]
    history: tuple[float, ...]
    covariance: np.ndarray | None = None
    hessian_singular: bool = False
    evaluation: dict | None = None

    @property
    def n_params(self) -> int:
        """The number of fitted coordinates $k$."""
        return self.parametrisation.size

    def information(self) -> dict:
        """Log-likelihood and information criteria of the fit ([`information_criteria`][])."""
        return information_criteria(self.loss, self.n_obs, self.n_params)

    def summary(self) -> str:
        """A statsmodels-style table of the fit: the identified quantities with standard
        errors, $z$ and 95% intervals, the implied quantities, the log-likelihood, AIC and
        BIC, and (from `evaluation`) the train and test NLL against the baselines."""
        return format_summary(self)

    def price_model(self):
        return _evaluate(self.parametrisation, jnp.asarray(self.u), "price_model")

    def game(self):
        return _evaluate(self.parametrisation, jnp.asarray(self.u), "game")

    def identified(self) -> dict:
        return _numpy(_evaluate(self.parametrisation, jnp.asarray(self.u), "identified"))

    def implied(self) -> dict:
        return _numpy(_evaluate(self.parametrisation, jnp.asarray(self.u), "implied"))

    def stderr(self, what: str = "identified") -> dict:
        """Delta-method standard errors of `identified()` or `implied()` (NaN without a
        covariance)."""
        vals = _evaluate(self.parametrisation, jnp.asarray(self.u), what)
        if self.covariance is None:
            return {k: np.full(np.shape(v), np.nan) for k, v in vals.items()}
        jac = _jacobian(self.parametrisation, jnp.asarray(self.u), what)
        cov = jnp.asarray(self.covariance)
        out = {}
        for k, J in jac.items():
            J = jnp.reshape(J, (-1, cov.shape[0]))
            var = jnp.einsum("ij,jk,ik->i", J, cov, J)
            out[k] = np.sqrt(np.maximum(np.asarray(var), 0.0)).reshape(np.shape(vals[k]))
        return out


# One compiled program per parametrisation and quantity: run eagerly, the map from the
# coordinates to the game (stationary values, seasonal transfer) dispatches and compiles
# hundreds of small operations, which took most of a report's time after the fits.
@eqx.filter_jit
def _evaluate(param: Parametrisation, u, what: str):
    return getattr(param, what)(u)


@eqx.filter_jit
def _jacobian(param: Parametrisation, u, what: str):
    return jax.jacfwd(getattr(param, what))(u)


def _numpy(d: dict) -> dict:
    return {k: np.asarray(v) for k, v in d.items()}


def calibrate(
    series: PriceSeries,
    calibrator: PriceCalibrator = PriceCalibrator(),
    *,
    checkpoint: str | None = None,
    progress: bool = False,
    stderr: bool = True,
    callback: Callable[[int, int, float], None] | None = None,
    keep_checkpoint: bool = False,
) -> CalibrationResult:
    r"""Fit the price model of `calibrator` to `series` by maximum likelihood (module doc).

    **Arguments:**

    - `series`: the training [`PriceSeries`][] (time unit: hours, origin its first time).
    - `calibrator`: a [`PriceCalibrator`][].
    - `checkpoint`: a file to checkpoint to and resume from (None: no checkpoint). A
      checkpoint written for other data or settings is ignored. It is removed on completion
      unless `keep_checkpoint` (the caller then removes it once the result is safe).
    - `progress`: show progress with the current loss (a live bar on a terminal, a line per
      5% of the iterations on any other stream).
    - `stderr`: compute the Hessian and the covariance of the coordinates.
    - `callback`: called as `callback(start, iteration, loss)` after each L-BFGS iteration
      (after the checkpoint is written); it may raise to stop the run.

    **Returns:** a [`CalibrationResult`][].
    """
    cal = calibrator
    # Parse: the parametrisation and the data as arrays.
    param = cal.parametrisation(series)
    y = jnp.asarray(series.prices, dtype=float)
    t = jnp.asarray(series.hours(), dtype=float)
    # Set up: compiled programs, starting points, what a checkpoint says is done already.
    progs = Programs(param, y, t, cal.warmup_lr)
    fp = fingerprint(series, cal, param)
    saved = load(checkpoint, fp) if checkpoint else None
    starts = _starting_points(cal, param, series)
    done = _Done.restore(saved)
    elapsed0 = float(saved["seconds"]) if saved is not None else 0.0
    t_start = time.perf_counter()

    def payload(extra: dict) -> dict:
        seconds = elapsed0 + time.perf_counter() - t_start
        head = {"fingerprint": np.asarray(fp), "seconds": np.asarray(seconds)}
        return head | done.payload() | extra

    # Run: every start not done yet, resuming the interrupted one.
    for s in range(len(done), cal.starts):
        run = Run(u=jnp.asarray(starts[s], dtype=float), phase="adam" if cal.warmup else "lbfgs")
        if saved is not None and "start" in saved and int(saved["start"]) == s:
            run, saved = Run.restore(saved, progs), None
        bar = progress_bar(
            total=cal.warmup + cal.max_iter,
            initial=run.it,
            desc=f"calibrate {param.model} start {s + 1}/{cal.starts}",
            disable=not progress,
            leave=False,
        )
        try:
            converged, reason = run_start(
                run,
                progs,
                cal,
                checkpoint=checkpointer(checkpoint, payload, s),
                bar=bar,
                callback=None if callback is None else lambda it, v, s=s: callback(s, it, v),
            )
        finally:
            bar.close()
        done.add(
            np.asarray(run.u), float(progs.loss(run.u)), converged, reason, run.it, run.history
        )
        checkpointer(checkpoint, payload, s + 1)(None)
    u_best, loss_best, conv, reason, iters, hist = done.best()
    seconds = elapsed0 + time.perf_counter() - t_start
    # Covariance of the coordinates at the best optimum.
    cov, singular = (None, False)
    if stderr:
        cov, singular = _covariance(param, progs, u_best, int(y.shape[0]))
    if checkpoint and os.path.exists(checkpoint) and not keep_checkpoint:
        os.remove(checkpoint)
    if not conv:
        warnings.warn(
            f"calibration of the {param.model} model did not converge: {reason}",
            CalibrationWarning,
            stacklevel=2,
        )
    return CalibrationResult(
        parametrisation=param,
        u=np.asarray(u_best),
        loss=loss_best,
        n_obs=int(y.shape[0]),
        converged=conv,
        reason=reason,
        iterations=iters,
        seconds=seconds,
        start_losses=done.losses(),
        history=hist,
        covariance=cov,
        hessian_singular=singular,
    )


def with_covariance(result: CalibrationResult, series: PriceSeries) -> CalibrationResult:
    """`result` (fitted to `series`) with the covariance of its coordinates, $H^{-1}$ at the
    optimum (what `calibrate(..., stderr=True)` computes)."""
    param = result.parametrisation
    y = jnp.asarray(series.prices, dtype=float)
    t = jnp.asarray(series.hours(), dtype=float)
    progs = Programs(param, y, t, 0.02)
    cov, singular = _covariance(param, progs, jnp.asarray(result.u), int(y.shape[0]))
    return dataclasses.replace(result, covariance=cov, hessian_singular=singular)


def _starting_points(cal: PriceCalibrator, param: Parametrisation, series) -> list:
    """The first start from moment estimates, the others perturbed from it."""
    u_init = param.initial(series.prices, series.hours())
    perturb = np.random.default_rng(cal.seed).normal(size=(cal.starts, param.size))
    return [u_init] + [u_init + _perturbation(param, perturb[s]) for s in range(1, cal.starts)]


class _Done:
    """The finished starts: `(u, loss, converged, reason, iterations, history)` each."""

    def __init__(self):
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, u, loss, converged, reason, iterations, history) -> None:
        self.rows.append((u, loss, converged, reason, iterations, tuple(history)))

    def losses(self) -> tuple[float, ...]:
        return tuple(r[1] for r in self.rows)

    def best(self) -> tuple:
        return self.rows[int(np.argmin([r[1] if np.isfinite(r[1]) else np.inf for r in self.rows]))]

    def payload(self) -> dict:
        if not self.rows:
            return {}
        d = {
            "done_u": np.stack([r[0] for r in self.rows]),
            "done_loss": np.asarray([r[1] for r in self.rows]),
            "done_conv": np.asarray([r[2] for r in self.rows]),
            "done_reason": np.asarray([r[3] for r in self.rows]),
            "done_iter": np.asarray([r[4] for r in self.rows]),
        }
        for i, r in enumerate(self.rows):
            d[f"done_hist_{i}"] = np.asarray(r[5])
        return d

    @classmethod
    def restore(cls, saved: dict | None) -> "_Done":
        done = cls()
        if saved is None or "done_loss" not in saved:
            return done
        for i in range(saved["done_loss"].size):
            done.add(
                saved["done_u"][i],
                float(saved["done_loss"][i]),
                bool(saved["done_conv"][i]),
                str(saved["done_reason"][i]),
                int(saved["done_iter"][i]),
                saved[f"done_hist_{i}"].tolist(),
            )
        return done


def _perturbation(param: Parametrisation, z: np.ndarray) -> np.ndarray:
    """Perturb rates, volatilities and jump laws; keep level and seasonality."""
    scale = np.zeros(param.size)
    for i, name in enumerate(param.names):
        if name.startswith("log_") or name.startswith("logit_"):
            scale[i] = 0.5
        elif "jump_loc" in name:
            scale[i] = 0.5
    return scale * z


def _covariance(param: Parametrisation, progs: Programs, u, n: int) -> tuple[np.ndarray, bool]:
    # The loss is the mean over n observations; the information is n times its Hessian.
    H = n * np.asarray(progs.hessian(jnp.asarray(u)))
    H = 0.5 * (H + H.T)
    evals, evecs = np.linalg.eigh(H)
    top = max(abs(evals).max(), 1e-300)
    bad = evals <= 1e-10 * top
    if bad.any():
        worst = evecs[:, int(np.argmin(evals))]
        names = [param.names[i] for i in np.argsort(-np.abs(worst))[:3]]
        warnings.warn(
            "the Hessian of the negative log-likelihood is singular or indefinite at the "
            f"optimum (smallest eigenvalue {evals.min():.3g}, largest {top:.3g}); the "
            f"direction is mostly {', '.join(names)}: those parameters are not identified by "
            "these data and their standard errors are not reliable",
            CalibrationWarning,
            stacklevel=3,
        )
        inv = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, evals))
        cov = (evecs * inv) @ evecs.T
        return _nan_on(cov, evecs[:, bad]), True
    return (evecs / evals) @ evecs.T, False


def _nan_on(cov: np.ndarray, null: np.ndarray) -> np.ndarray:
    """NaN for the coordinates that load on the null space of the Hessian."""
    touched = np.any(np.abs(null) > 1e-6, axis=1)
    cov = cov.copy()
    cov[touched, :] = np.nan
    cov[:, touched] = np.nan
    return cov
