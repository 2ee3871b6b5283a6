r"""The optimiser run of one start of [`calibrate`][].

An optional Adam warm-up (optax), then L-BFGS (`optimistix.LBFGS`, backtracking Armijo line
search) in coordinates whitened by the exact Hessian at its starting point,
$u = u_\mathrm{ref} + Pv$ with $P^\top|H|P = I$ (whitened by the outer product of the
per-observation scores instead, which costs one forward pass, the fits to Nord Pool 2013-16
took twice the iterations: 76 and 74 against 36 and 38). The solver is driven here one iteration
(one accepted step) at a time through its `init`/`step`/`terminate` interface, so that each
iteration is tested for convergence (gradient max-norm, relative loss change), reported and
checkpointed (the solver state's array leaves), and an interrupted run resumes on the same
path.

Gradients are JAX's forward mode (optimistix's `autodiff_mode="fwd"`, `jax.jacfwd` of the
loss's linearisation), with the loss rematerialised (`jax.checkpoint`): the likelihood is a
long `lax.scan` of small operations with few parameters, and its reverse pass, which must
store and revisit every step, measures slower (`benchmarks/calibration.py`); the Hessian is
`jax.hessian` (forward over reverse), measured faster than forward over forward.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from tqdm import tqdm

from ._checkpoint import restore, save, state_leaves, state_payload
from ._kalman import negative_log_likelihood
from ._parametrisation import Parametrisation

AUTODIFF_MODE = "fwd"
# The solver's own (Cauchy) termination is not used: convergence is tested here, with the
# calibrator's gtol/ftol/patience. Zero tolerances never terminate.
SOLVER = optx.LBFGS(rtol=0.0, atol=0.0)
OPTIONS = {"autodiff_mode": AUTODIFF_MODE}
# Loss evaluations (line-search halvings) allowed in one iteration.
MAX_EVALS = 40
_TAGS = frozenset()


# ---------------------------------------------------------------------------------------
# L-BFGS one iteration at a time (also used by the simulated-moments fit).


def _init_state(solver, fn, y, args, options):
    return solver.init(fn, y, args, options, jax.ShapeDtypeStruct((), y.dtype), None, _TAGS)


@eqx.filter_jit
def lbfgs_start(fn, y0, args, solver=SOLVER, options=OPTIONS):
    """The solver state at `y0`, before any evaluation (its array leaves only: the rest is
    rebuilt from `solver.init` where needed). `fn(y, args)` returns `(loss, None)`."""
    return eqx.filter(_init_state(solver, fn, y0, args, options), eqx.is_array)


def lbfgs_iteration(fn, y, dynamic, args, solver=SOLVER, options=OPTIONS, max_evals=MAX_EVALS):
    """One L-BFGS iteration: solver steps from `y` until one is accepted, at most
    `max_evals` loss evaluations (from a fresh state the first step, which evaluates `y`
    itself, comes on top: with `max_evals=0` only that one).

    One jitted solver step per call, the acceptance read here: XLA runs the step's
    differentiated filter markedly slower inside a `while_loop` body (measured).

    **Returns:** `(y, dynamic, loss, gmax, accepted, ok)`: the last accepted point, the
    state's array leaves, the loss and the gradient's max-norm at `y`, whether a step was
    accepted, and whether the solver reports success (`terminate`'s result)."""
    before = int(dynamic.num_accepted_steps)
    # A fresh state's first step accepts `y` itself: an iteration needs one more.
    target = max(before, 1) + 1
    count, loss, gmax, ok = before, None, None, True
    for _ in range(max_evals + target - before - 1):
        y, dynamic, count, loss, gmax, ok = _lbfgs_step(fn, y, dynamic, args, solver, options)
        count, ok = int(count), bool(ok)
        if count >= target or not ok:
            break
    if loss is None:
        loss, gmax = _lbfgs_info(fn, y, dynamic, args, solver, options)
    return y, dynamic, loss, gmax, count >= target, ok


def _static_state(solver, fn, y, args, options):
    return eqx.filter(_init_state(solver, fn, y, args, options), eqx.is_array, inverse=True)


@eqx.filter_jit
def _lbfgs_step(fn, y, dynamic, args, solver, options):
    state = eqx.combine(dynamic, _static_state(solver, fn, y, args, options))
    y, state, _ = solver.step(fn, y, args, options, state, _TAGS)
    _, result = solver.terminate(fn, y, args, options, state, _TAGS)
    info = state.f_info
    return (
        y,
        eqx.filter(state, eqx.is_array),
        state.num_accepted_steps,
        info.f,
        optx.max_norm(info.grad),
        result == optx.RESULTS.successful,
    )


@eqx.filter_jit
def _lbfgs_info(fn, y, dynamic, args, solver, options):
    info = eqx.combine(dynamic, _static_state(solver, fn, y, args, options)).f_info
    return info.f, optx.max_norm(info.grad)


def lbfgs_template(fn, y0, args, solver=SOLVER, options=OPTIONS):
    """Shapes and dtypes of [`lbfgs_start`][]'s state (to restore a checkpoint into)."""
    return eqx.filter_eval_shape(lbfgs_start, fn, y0, args, solver, options)


# ---------------------------------------------------------------------------------------
# The calibration problem's programs.


def mean_nll(param: Parametrisation, y, t, u):
    """The calibration loss: mean one-step-ahead negative log-likelihood at `u`."""
    return negative_log_likelihood(param.price_model(u), y, t, param.dt) / y.shape[0]


def _whitened_loss(v, args):
    param, y, t, u_ref, P = args
    # Rematerialised: optimistix linearises the loss at every trial point and differentiates
    # the linearisation only at accepted ones. Without residuals to store, the linearisation
    # is the primal pass alone, and its forward-mode derivative one fused jvp of the filter's
    # scan (as `jax.jacfwd`), not a second scan over stored residuals (measured slower).
    loss = jax.checkpoint(lambda w: mean_nll(param, y, t, u_ref + P @ w))
    return loss(v), None


def _value_and_grad(f, u):
    if AUTODIFF_MODE == "fwd":
        grad, value = jax.jacfwd(lambda x: (lambda v: (v, v))(f(x)), has_aux=True)(u)
        return value, grad
    return jax.value_and_grad(f)(u)


@eqx.filter_jit
def _loss_jit(param, y, t, u):
    return mean_nll(param, y, t, u)


@eqx.filter_jit
def _hessian_jit(param, y, t, u):
    # The exact Hessian by forward over reverse (`jax.hessian`): measured about 3x faster
    # here than forward over forward, whose 25 x 25 second-order lanes all run through the
    # filter's scan.
    return jax.hessian(lambda v: mean_nll(param, y, t, v))(u)


@eqx.filter_jit
def _adam_step_jit(param, y, t, u, state, lr):
    value, grad = _value_and_grad(lambda v: mean_nll(param, y, t, v), u)
    updates, state = optax.adam(lr).update(grad, state, u)
    return optax.apply_updates(u, updates), state, value


class Programs(eqx.Module):
    """The jitted loss, Hessian, L-BFGS and Adam steps of one problem. They are module-level
    functions with the data as arguments: another series of the same length and settings
    (structural defaults included) reuses the compiled programs."""

    param: Parametrisation
    y: jax.Array
    t: jax.Array
    warmup_lr: float = eqx.field(static=True)

    def loss(self, u):
        return _loss_jit(self.param, self.y, self.t, u)

    def hessian(self, u):
        return _hessian_jit(self.param, self.y, self.t, u)

    def adam_init(self, u):
        return optax.adam(self.warmup_lr).init(u)

    def adam_step(self, u, state):
        return _adam_step_jit(self.param, self.y, self.t, u, state, self.warmup_lr)

    def _args(self, u_ref, P):
        return (self.param, self.y, self.t, u_ref, P)

    def lbfgs_start(self, v, u_ref, P):
        return lbfgs_start(_whitened_loss, v, self._args(u_ref, P))

    def lbfgs_template(self, v, u_ref, P):
        return lbfgs_template(_whitened_loss, v, self._args(u_ref, P))

    def lbfgs_iteration(self, v, state, u_ref, P):
        return lbfgs_iteration(_whitened_loss, v, state, self._args(u_ref, P))


def whitening(H: np.ndarray, floor: float = 1e-8) -> np.ndarray:
    r"""$P$ with $P^\top |H| P = I$ ($|H|$: eigenvalues in absolute value, floored at
    `floor` times the largest); the identity when $H$ is not finite."""
    H = np.asarray(H, np.float64)
    if not np.all(np.isfinite(H)):
        return np.eye(H.shape[0])
    evals, evecs = np.linalg.eigh(0.5 * (H + H.T))
    lam = np.maximum(np.abs(evals), floor * max(np.abs(evals).max(), 1e-300))
    return evecs / np.sqrt(lam)


# ---------------------------------------------------------------------------------------
# One start.


class Run:
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

    def start_lbfgs(self, progs: Programs, precondition: bool) -> None:
        d = self.u.shape[0]
        P = whitening(np.asarray(progs.hessian(self.u))) if precondition else np.eye(d)
        self.phase = "lbfgs"
        self.u_ref = self.u
        self.P = jnp.asarray(P, dtype=self.u.dtype)
        self.v = jnp.zeros((d,), self.u.dtype)
        self.state = progs.lbfgs_start(self.v, self.u_ref, self.P)

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
            d |= state_payload(self.state)
        return d

    @classmethod
    def restore(cls, saved: dict, progs: Programs) -> "Run":
        run = cls(jnp.asarray(saved["u"], dtype=float), str(saved["phase"]))
        run.it = int(saved["iteration"])
        run.small = int(saved["small"])
        run.history = list(saved["history"].tolist())
        leaves = state_leaves(saved)
        if run.phase == "adam":
            run.state = restore(progs.adam_init(run.u), leaves)
        elif "v" in saved:
            run.v = jnp.asarray(saved["v"], dtype=float)
            run.u_ref = jnp.asarray(saved["u_ref"], dtype=float)
            run.P = jnp.asarray(saved["P"], dtype=float)
            run.state = restore(progs.lbfgs_template(run.v, run.u_ref, run.P), leaves)
        return run


def run_start(
    run: Run,
    progs: Programs,
    cfg,
    *,
    checkpoint: Callable[[Run | None], None],
    bar: tqdm,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[bool, str]:
    """Advance `run` to convergence or to `cfg.max_iter` L-BFGS iterations (after the
    warm-up), calling `checkpoint(run)` after every iteration and then `callback(it, loss)`.
    `cfg` is the [`PriceCalibrator`][] (`warmup`, `max_iter`, `gtol`, `ftol`, `patience`,
    `precondition`).

    **Returns:** `(converged, reason)`.
    """
    converged, reason = False, f"max_iter={cfg.max_iter} reached"
    if run.phase == "adam" and run.state is None:
        run.state = progs.adam_init(run.u)
    while run.phase == "adam" and run.it < cfg.warmup:
        run.u, run.state, value = progs.adam_step(run.u, run.state)
        run.it += 1
        run.history.append(float(value))
        if run.it == cfg.warmup:
            run.phase, run.state = "lbfgs", None
        checkpoint(run)
        bar.update(1)
        bar.set_postfix(loss=f"{float(value):.6f}")
    if run.state is None:
        run.start_lbfgs(progs, cfg.precondition)
        checkpoint(run)
    prev = run.history[-1] if run.history else float(progs.loss(run.u))
    while run.it < cfg.warmup + cfg.max_iter:
        run.v, run.state, value, gmax, _, ok = progs.lbfgs_iteration(
            run.v, run.state, run.u_ref, run.P
        )
        run.u = run.u_ref + run.P @ run.v
        run.it += 1
        value, gmax = float(value), float(gmax)
        if not np.isfinite(value):
            reason = "loss became non-finite"
            break
        if not bool(ok):
            reason = "the L-BFGS solver failed"
            break
        rel = abs(prev - value) / max(1.0, abs(value))
        run.small = run.small + 1 if rel <= cfg.ftol else 0
        prev = value
        run.history.append(value)
        if gmax <= cfg.gtol:
            converged, reason = True, f"gradient max-norm {gmax:.2e} <= gtol"
        elif run.small >= cfg.patience:
            converged = True
            reason = f"relative loss change <= ftol for {cfg.patience} iterations"
        checkpoint(run)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.6f}", grad=f"{gmax:.1e}")
        if callback is not None:
            callback(run.it, value)
        if converged:
            break
    return converged, reason


def checkpointer(path: str | None, payload: Callable[[dict], dict], start: int):
    """`checkpoint(run)` for [`run_start`][]: saves the run of start `start` (or, with
    `run=None`, that the starts before `start` are done) to `path`; nothing without a path."""

    def checkpoint(run: Run | None) -> None:
        if not path:
            return
        extra = {"start": np.asarray(start)}
        if run is not None:
            extra |= run.payload()
        save(path, payload(extra))

    return checkpoint
