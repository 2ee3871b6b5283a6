r"""Maximum-likelihood calibration of the price game to a price series (optax, jitted).

The loss is the mean one-step-ahead negative log-likelihood of the training prices,
$\ell(u) = -\tfrac1T\sum_k \log p_u(y_k \mid y_{<k})$ ([`negative_log_likelihood`][]), a
function of the unconstrained coordinates $u$ of the identified quantities
([`Parametrisation`][]) through the game's stationary Riccati values. It is minimised by
optax's L-BFGS (zoom line search), after an optional Adam warm-up, with a convergence test on
the gradient's max-norm and on the relative change of the loss; standard errors come from the
Hessian of the total negative log-likelihood ($\mathrm{Cov}(\hat u) \approx H^{-1}$) and the
delta method.

Progress is checkpointed after every iteration (an atomic file replace), so an interrupted
run (Ctrl-C, kill) restarted with the same data and settings continues from the last
iteration and follows the same path to the same optimum.
"""

from collections.abc import Callable
import dataclasses
import hashlib
import os
import tempfile
import time
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from ._data import PriceSeries
from ._kalman import negative_log_likelihood
from ._parametrisation import Parametrisation, seasonal_harmonics
from ._price_model import StructuralDefaults


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
    defaults: StructuralDefaults = eqx.field(static=True, default=StructuralDefaults())
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

    def price_model(self):
        return self.parametrisation.price_model(jnp.asarray(self.u))

    def game(self):
        return self.parametrisation.game(jnp.asarray(self.u))

    def identified(self) -> dict:
        return _numpy(self.parametrisation.identified(jnp.asarray(self.u)))

    def implied(self) -> dict:
        return _numpy(self.parametrisation.implied(jnp.asarray(self.u)))

    def stderr(self, what: str = "identified") -> dict:
        """Delta-method standard errors of `identified()` or `implied()` (NaN without a
        covariance)."""
        f = getattr(self.parametrisation, what)
        vals = f(jnp.asarray(self.u))
        if self.covariance is None:
            return {k: np.full(np.shape(v), np.nan) for k, v in vals.items()}
        jac = jax.jacfwd(f)(jnp.asarray(self.u))
        cov = jnp.asarray(self.covariance)
        out = {}
        for k, J in jac.items():
            J = jnp.reshape(J, (-1, cov.shape[0]))
            var = jnp.einsum("ij,jk,ik->i", J, cov, J)
            out[k] = np.sqrt(np.maximum(np.asarray(var), 0.0)).reshape(np.shape(vals[k]))
        return out


def _numpy(d: dict) -> dict:
    return {k: np.asarray(v) for k, v in d.items()}


def _fingerprint(series: PriceSeries, cal: PriceCalibrator, param: Parametrisation) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(series.prices).tobytes())
    h.update(str(series.times[0]).encode())
    h.update(repr(cal).encode())
    h.update(repr(param).encode())
    h.update(str(jnp.zeros(()).dtype).encode())
    return h.hexdigest()[:16]


def default_checkpoint(series: PriceSeries, calibrator: PriceCalibrator) -> str:
    """A checkpoint path keyed on the data and the settings (in the temporary directory)."""
    fp = _fingerprint(series, calibrator, calibrator.parametrisation(series))
    return os.path.join(tempfile.gettempdir(), "mftg-calibrate", f"{fp}.npz")


def _save(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _load(path: str, fingerprint: str) -> dict | None:
    if not path or not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None
    if str(d.get("fingerprint")) != fingerprint:
        return None
    return d


class _Programs(eqx.Module):
    """The jitted loss, Hessian, L-BFGS and Adam steps of one problem (compiled once)."""

    loss: Callable
    hessian: Callable
    lbfgs_step: Callable
    adam_step: Callable
    lbfgs: optax.GradientTransformationExtraArgs = eqx.field(static=True)
    adam: optax.GradientTransformation = eqx.field(static=True)


_LBFGS = optax.lbfgs()


def _plain_loss(param: Parametrisation, y, t, u):
    return negative_log_likelihood(param.price_model(u), y, t, param.dt) / y.shape[0]


@eqx.filter_jit
def _loss_jit(param, y, t, u):
    return _plain_loss(param, y, t, u)


@eqx.filter_jit
def _hessian_jit(param, y, t, u):
    # Forward over forward: the exact Hessian, faster here than jax.hessian's
    # forward-over-reverse for the same reason as the gradient.
    return jax.jacfwd(jax.jacfwd(lambda v: _plain_loss(param, y, t, v)))(u)


@eqx.filter_jit
def _lbfgs_step_jit(param, y, t, v, state, u_ref, P):
    loss = forward_mode_gradient(lambda u: _plain_loss(param, y, t, u))

    # L-BFGS in whitened coordinates u = u_ref + P v.
    def loss_v(v):
        return loss(u_ref + P @ v)

    value, grad = optax.value_and_grad_from_state(loss_v)(v, state=state)
    updates, state = _LBFGS.update(grad, state, v, value=value, grad=grad, value_fn=loss_v)
    v = optax.apply_updates(v, updates)
    new_value = optax.tree_utils.tree_get(state, "value")
    new_grad = optax.tree_utils.tree_get(state, "grad")
    return v, state, new_value, jnp.max(jnp.abs(new_grad))


@eqx.filter_jit
def _adam_step_jit(param, y, t, u, state, lr):
    adam = optax.adam(lr)
    loss = forward_mode_gradient(lambda u: _plain_loss(param, y, t, u))
    value, grad = jax.value_and_grad(loss)(u)
    updates, state = adam.update(grad, state, u)
    return optax.apply_updates(u, updates), state, value


def _programs(param: Parametrisation, y, t, lr: float) -> _Programs:
    # Module-level jitted functions with the data as arguments: another series of the same
    # length and settings reuses the compiled programs.
    return _Programs(
        loss=lambda u: _loss_jit(param, y, t, u),
        hessian=lambda u: _hessian_jit(param, y, t, u),
        lbfgs_step=lambda v, s, u_ref, P: _lbfgs_step_jit(param, y, t, v, s, u_ref, P),
        adam_step=lambda u, s: _adam_step_jit(param, y, t, u, s, lr),
        lbfgs=_LBFGS,
        adam=optax.adam(lr),
    )


def whitening(H: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    """$P$ with $P^\top |H| P = I$ ($|H|$: eigenvalues in absolute value, floored at
    `floor` times the largest); the identity when $H$ is not finite."""
    H = np.asarray(H, np.float64)
    if not np.all(np.isfinite(H)):
        return np.eye(H.shape[0])
    evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
    lam = np.maximum(np.abs(evals), floor * max(np.abs(evals).max(), 1e-300))
    return evecs / np.sqrt(lam)


def forward_mode_gradient(f: Callable) -> Callable:
    """`f` (a scalar function of a vector) whose reverse-mode gradient is computed by
    forward mode: one `jvp` per coordinate, batched with `vmap`.

    The likelihood is a long `lax.scan` of small operations with few parameters; its
    reverse pass must store and revisit every step, and measures slower than the batched
    forward pass (`benchmarks/calibration.py`).
    """

    @jax.custom_vjp
    def g(u):
        return f(u)

    def fwd(u):
        eye = jnp.eye(u.shape[0], dtype=u.dtype)
        value, jac = jax.vmap(lambda e: jax.jvp(f, (u,), (e,)), out_axes=(None, 0))(eye)
        return value, jac

    def bwd(jac, ct):
        return (ct * jac,)

    g.defvjp(fwd, bwd)
    return g


def _restore(template, leaves):
    flat, treedef = jax.tree.flatten(template)
    if len(flat) != len(leaves):
        raise ValueError("checkpoint does not match the optimiser state")
    return jax.tree.unflatten(
        treedef, [jnp.asarray(x, dtype=jnp.asarray(f).dtype) for f, x in zip(flat, leaves)]
    )


def _state_payload(state) -> dict:
    return {f"state_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}


def _state_leaves(d: dict) -> list:
    n = sum(1 for k in d if k.startswith("state_"))
    return [d[f"state_{i}"] for i in range(n)]


def calibrate(
    series: PriceSeries,
    calibrator: PriceCalibrator = PriceCalibrator(),
    *,
    checkpoint: str | None = None,
    progress: bool = False,
    stderr: bool = True,
    callback: Callable[[int, int, float], None] | None = None,
) -> CalibrationResult:
    r"""Fit the price model of `calibrator` to `series` by maximum likelihood (module doc).

    **Arguments:**

    - `series`: the training [`PriceSeries`][] (time unit: hours, origin its first time).
    - `calibrator`: a [`PriceCalibrator`][].
    - `checkpoint`: a file to checkpoint to and resume from (None: no checkpoint). A
      checkpoint written for other data or settings is ignored. It is removed on completion.
    - `progress`: show a tqdm bar with the current loss.
    - `stderr`: compute the Hessian and the covariance of the coordinates.
    - `callback`: called as `callback(start, iteration, loss)` after each L-BFGS iteration
      (after the checkpoint is written); it may raise to stop the run.

    **Returns:** a [`CalibrationResult`][].
    """
    cal = calibrator
    param = cal.parametrisation(series)
    y = jnp.asarray(series.prices, dtype=float)
    t = jnp.asarray(series.hours(), dtype=float)
    progs = _programs(param, y, t, cal.warmup_lr)
    fp = _fingerprint(series, cal, param)
    saved = _load(checkpoint, fp) if checkpoint else None
    u_init = param.initial(series.prices, series.hours())
    rng = np.random.default_rng(cal.seed)
    perturb = rng.normal(size=(cal.starts, param.size))
    done: list[tuple] = []
    if saved is not None and "done_loss" in saved:
        for i in range(saved["done_loss"].size):
            done.append(
                (
                    saved["done_u"][i],
                    float(saved["done_loss"][i]),
                    bool(saved["done_conv"][i]),
                    str(saved["done_reason"][i]),
                    int(saved["done_iter"][i]),
                    tuple(saved[f"done_hist_{i}"].tolist()),
                )
            )
    elapsed0 = float(saved["seconds"]) if saved is not None else 0.0
    t_start = time.perf_counter()

    def payload(extra: dict) -> dict:
        d = {
            "fingerprint": np.asarray(fp),
            "seconds": np.asarray(elapsed0 + time.perf_counter() - t_start),
        }
        if done:
            d["done_u"] = np.stack([r[0] for r in done])
            d["done_loss"] = np.asarray([r[1] for r in done])
            d["done_conv"] = np.asarray([r[2] for r in done])
            d["done_reason"] = np.asarray([r[3] for r in done])
            d["done_iter"] = np.asarray([r[4] for r in done])
            for i, r in enumerate(done):
                d[f"done_hist_{i}"] = np.asarray(r[5])
        d.update(extra)
        return d

    for s in range(len(done), cal.starts):
        u0 = u_init.copy()
        if s > 0:
            u0 = u0 + _perturbation(param, perturb[s])
        run = _Run(u=jnp.asarray(u0, dtype=float), phase="adam" if cal.warmup else "lbfgs")
        if saved is not None and "start" in saved and int(saved["start"]) == s:
            run = _Run.restore(saved, progs)
            saved = None
        elif run.phase == "adam":
            run.state = progs.adam.init(run.u)
        bar = tqdm(
            total=cal.warmup + cal.max_iter,
            initial=run.it,
            desc=f"calibrate {param.model} start {s + 1}/{cal.starts}",
            disable=not progress,
            leave=False,
        )
        converged, reason = False, f"max_iter={cal.max_iter} reached"
        try:
            while run.phase == "adam" and run.it < cal.warmup:
                run.u, run.state, value = progs.adam_step(run.u, run.state)
                run.it += 1
                run.history.append(float(value))
                if run.it == cal.warmup:
                    run.phase, run.state = "lbfgs", None
                _checkpoint(checkpoint, payload, s, run)
                bar.update(1)
                bar.set_postfix(loss=f"{float(value):.6f}")
            if run.state is None:
                run.start_lbfgs(progs, cal.precondition)
                _checkpoint(checkpoint, payload, s, run)
            prev = run.history[-1] if run.history else float(progs.loss(run.u))
            while run.it < cal.warmup + cal.max_iter:
                run.v, run.state, value, gmax = progs.lbfgs_step(run.v, run.state, run.u_ref, run.P)
                run.u = run.u_ref + run.P @ run.v
                run.it += 1
                value, gmax = float(value), float(gmax)
                if not np.isfinite(value):
                    reason = "loss became non-finite"
                    break
                rel = abs(prev - value) / max(1.0, abs(value))
                run.small = run.small + 1 if rel <= cal.ftol else 0
                prev = value
                run.history.append(value)
                if gmax <= cal.gtol:
                    converged, reason = True, f"gradient max-norm {gmax:.2e} <= gtol"
                elif run.small >= cal.patience:
                    converged = True
                    reason = f"relative loss change <= ftol for {cal.patience} iterations"
                _checkpoint(checkpoint, payload, s, run)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.6f}", grad=f"{gmax:.1e}")
                if callback is not None:
                    callback(s, run.it, value)
                if converged:
                    break
        finally:
            bar.close()
        loss_u = float(progs.loss(run.u))
        done.append((np.asarray(run.u), loss_u, converged, reason, run.it, tuple(run.history)))
        _checkpoint(checkpoint, payload, s + 1, None)
    best = int(np.argmin([r[1] if np.isfinite(r[1]) else np.inf for r in done]))
    u_best, loss_best, conv, reason, iters, hist = done[best]
    seconds = elapsed0 + time.perf_counter() - t_start
    cov, singular = (None, False)
    if stderr:
        cov, singular = _covariance(param, progs, u_best, int(y.shape[0]))
    if checkpoint and os.path.exists(checkpoint):
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
        start_losses=tuple(r[1] for r in done),
        history=hist,
        covariance=cov,
        hessian_singular=singular,
    )


class _Run:
    """The mutable state of one start: coordinates, optimiser state, counters."""

    def __init__(self, u, phase):
        self.u = u
        self.phase = phase
        self.it = 0
        self.small = 0
        self.history: list[float] = []
        self.state = None
        self.v = None
        self.u_ref = None
        self.P = None

    def start_lbfgs(self, progs: _Programs, precondition: bool) -> None:
        d = self.u.shape[0]
        if precondition:
            P = whitening(np.asarray(progs.hessian(self.u)))
        else:
            P = np.eye(d)
        self.phase = "lbfgs"
        self.u_ref = self.u
        self.P = jnp.asarray(P, dtype=self.u.dtype)
        self.v = jnp.zeros((d,), self.u.dtype)
        self.state = progs.lbfgs.init(self.v)

    def payload(self) -> dict:
        d = {
            "phase": np.asarray(self.phase),
            "iteration": np.asarray(self.it),
            "small": np.asarray(self.small),
            "history": np.asarray(self.history, dtype=np.float64),
            "u": np.asarray(self.u),
        }
        if self.phase == "lbfgs" and self.state is not None:
            d |= {"v": np.asarray(self.v), "u_ref": np.asarray(self.u_ref)}
            d["P"] = np.asarray(self.P)
        if self.state is not None:
            d |= _state_payload(self.state)
        return d

    @classmethod
    def restore(cls, saved: dict, progs: _Programs) -> "_Run":
        run = cls(jnp.asarray(saved["u"], dtype=float), str(saved["phase"]))
        run.it = int(saved["iteration"])
        run.small = int(saved["small"])
        run.history = list(saved["history"].tolist())
        leaves = _state_leaves(saved)
        if run.phase == "adam":
            run.state = _restore(progs.adam.init(run.u), leaves)
        elif "v" in saved:
            run.v = jnp.asarray(saved["v"], dtype=float)
            run.u_ref = jnp.asarray(saved["u_ref"], dtype=float)
            run.P = jnp.asarray(saved["P"], dtype=float)
            run.state = _restore(progs.lbfgs.init(run.v), leaves)
        return run


def _checkpoint(path, payload, s, run: _Run | None) -> None:
    if not path:
        return
    extra = {"start": np.asarray(s)}
    if run is not None:
        extra |= run.payload()
    _save(path, payload(extra))


def _perturbation(param: Parametrisation, z: np.ndarray) -> np.ndarray:
    """Perturb rates, volatilities and jump laws; keep level and seasonality."""
    scale = np.zeros(param.size)
    for i, name in enumerate(param.names):
        if name.startswith("log_") or name.startswith("logit_"):
            scale[i] = 0.5
        elif "jump_loc" in name:
            scale[i] = 0.5
    return scale * z


def _covariance(param: Parametrisation, progs: _Programs, u, n: int) -> tuple[np.ndarray, bool]:
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
