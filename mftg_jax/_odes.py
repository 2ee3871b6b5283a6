r"""One entry point for every deterministic ODE solve of the library, and its failure check.

Every family's Riccati system (integrated backwards from $t_1$) and every forward equation
(mean paths, moments, expected costs, certificates) goes through [`solve_ode`][]: the family
builds its vector field and terminal or initial values; the solver, step-size controller,
`SaveAt` and adjoint are arguments with defaults, as in `diffrax.diffeqsolve`.

A backward Riccati solve may blow up in finite time. [`checked_solution`][] turns a failed or
non-finite solve into a [`RiccatiExplosionError`][] with the family's explanation (concrete
values), or attaches an equinox runtime error to the result (under `jit`/`vmap`).
"""

from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree
import numpy as np

from ._programs import not_exportable, persistent_jit
from ._validation import is_concrete

#: Default tolerances of the library's adaptive solves.
RTOL = 1e-8
ATOL = 1e-8


class RiccatiExplosionError(ValueError):
    """A Riccati system has no solution on the horizon (finite-time blow-up, a singular gain
    system or a loss of convexity); the message names where and why."""


class StepBudgetError(ValueError):
    """A solve ran out of its step budget (`max_steps`) although its solution stays finite;
    the message says how many steps it needs."""


def default_controller(rtol: float = RTOL, atol: float = ATOL) -> diffrax.PIDController:
    """The library's default step-size controller, `diffrax.PIDController(rtol, atol)`."""
    return diffrax.PIDController(rtol=rtol, atol=atol)


class _LargestProblemNorm(eqx.Module):
    """The largest of the norms of the problems stacked on axis 0 of every leaf.

    As the error norm of a stacked solve, a step is accepted only when every problem's own
    (scaled) error passes, so each problem meets the tolerance it would meet alone.
    """

    norm: Callable[[PyTree], Array]

    def __call__(self, y):
        return jnp.max(jax.vmap(self.norm)(y))


def _stacked_controller(controller):
    if isinstance(controller, diffrax.PIDController):
        return eqx.tree_at(lambda c: c.norm, controller, _LargestProblemNorm(controller.norm))
    # A constant step size has no error norm: the stacked steps are the unstacked ones.
    return controller


def _solve(
    vector_field, solver, t0, t1, dt0, y0, args, saveat, controller, adjoint, max_steps, chunk
):
    if chunk is None:
        return _diffeqsolve(
            vector_field, solver, t0, t1, dt0, y0, args, saveat, controller, adjoint, max_steps
        )
    field = jax.vmap(vector_field, in_axes=(None, 0, 0))
    controller = _stacked_controller(controller)
    size = jax.tree.leaves(y0)[0].shape[0]
    chunks = -(-size // chunk)

    def split(x):
        # Padding repeats the last problem: a copy takes the same steps as its original, so
        # the padded chunk's shared step sizes are unchanged.
        x = jnp.concatenate([x, jnp.repeat(x[-1:], chunks * chunk - size, axis=0)])
        return x.reshape(chunks, chunk, *x.shape[1:])

    def one_chunk(y0_args):
        y0_c, args_c = y0_args
        return _diffeqsolve(
            field, solver, t0, t1, dt0, y0_c, args_c, saveat, controller, adjoint, max_steps
        )

    return jax.lax.map(one_chunk, jax.tree.map(split, (y0, args)))


def _diffeqsolve(
    vector_field, solver, t0, t1, dt0, y0, args, saveat, controller, adjoint, max_steps
):
    return diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=adjoint,
        max_steps=max_steps,
        throw=False,
    )


_solve_jit = persistent_jit(_solve, name="solve_ode")


def solve_ode(
    vector_field: Callable[[Any, PyTree, Any], PyTree],
    y0: PyTree,
    t0,
    t1,
    args: Any = None,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    saveat: diffrax.SaveAt = diffrax.SaveAt(t1=True),
    dt0=None,
    max_steps: int = 4096,
    stacked_chunk: int | None = None,
) -> diffrax.Solution:
    r"""Solve $\dot y = f(t, y, \mathrm{args})$ from `t0` to `t1` (backwards when `t1 < t0`).

    One jit-compiled diffrax program (cached across calls with the same shapes and the same
    module-level `vector_field`); `throw=False`, so failures are reported by
    `checked_solution` or by the caller, never as a traceback from inside the solver.

    **Arguments:**

    - `vector_field`: $f(t, y, \mathrm{args})$, a module-level function (a new closure per
      call would defeat the compilation cache).
    - `y0`, `t0`, `t1`, `args`: as in `diffrax.diffeqsolve`.
    - `solver`: a diffrax ODE solver (default `Tsit5`).
    - `stepsize_controller`: default `PIDController(rtol=1e-8, atol=1e-8)`; pass
      `diffrax.ConstantStepSize()` with a `dt0` for fixed steps.
    - `adjoint`: the diffrax adjoint for reverse-mode gradients.
    - `saveat`: a `diffrax.SaveAt` (default: the end point only).
    - `dt0`: the initial (or fixed) step; `None` lets the controller choose.
    - `max_steps`: the step budget (per chunk of a stacked solve).
    - `stacked_chunk`: `None` solves one problem (`jax.vmap` the call for a batch). An
      integer $C$ solves a batch stacked on axis 0 of every leaf of `y0` and `args` ($B$
      problems sharing `t0`, `t1`) as one ODE per chunk of $C$ problems: `vector_field`
      is vmapped over the chunk inside one `diffeqsolve`, the chunk shares its step sizes,
      and a `PIDController`'s error norm becomes the largest of the problems' own norms
      ($\max_b \lVert e_b \rVert$), so every problem meets its own tolerance. The chunks
      run one after another (`lax.map`); $B$ is padded to a multiple of $C$ by repeating
      the last problem. Read the result with `mftg_jax.stacked_evaluate` (dense) and
      `mftg_jax.stacked_ys` (saved times).

    **Returns:** the `diffrax.Solution`; for a stacked solve one per chunk, stacked on a
    leading axis of every leaf (`result` and `stats` per chunk).
    """
    check_solve_options(stepsize_controller, max_steps)
    check_stacked_chunk(stepsize_controller, stacked_chunk)
    if stacked_chunk is not None and (jnp.ndim(t0) or jnp.ndim(t1)):
        raise ValueError(
            "a stacked solve shares t0 and t1: pass scalars, got shapes "
            f"{jnp.shape(t0)} and {jnp.shape(t1)}"
        )
    if stepsize_controller is None:
        stepsize_controller = default_controller()
    if dt0 is not None:
        # An array, not a Python float: a new step size must not trigger a recompilation.
        dt0 = jnp.asarray(dt0, dtype=jnp.result_type(t0))
    return _solve_jit(
        vector_field,
        solver,
        t0,
        t1,
        dt0,
        y0,
        args,
        saveat,
        stepsize_controller,
        adjoint,
        max_steps,
        stacked_chunk,
    )


def check_stacked_chunk(stepsize_controller, stacked_chunk, name: str = "stacked_chunk") -> None:
    """Reject a chunk size (the argument `name`) that is not a positive integer, and a
    stacked solve under a step-size controller whose error norm it cannot take per problem."""
    if stacked_chunk is None:
        return
    if isinstance(stacked_chunk, bool) or not isinstance(stacked_chunk, int | np.integer):
        raise ValueError(f"{name} must be a positive integer or None, got {stacked_chunk!r}")
    if stacked_chunk < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {stacked_chunk}")
    if stepsize_controller is not None and not isinstance(
        stepsize_controller, diffrax.PIDController | diffrax.ConstantStepSize
    ):
        raise ValueError(
            "a stacked solve takes stepsize_controller = diffrax.PIDController or "
            f"diffrax.ConstantStepSize, got {type(stepsize_controller).__name__}"
        )


def stacked_evaluate(sol: diffrax.Solution, t, size: int) -> PyTree:
    """Evaluate a dense stacked solve (`solve_ode` with `stacked_chunk`) at `t`.

    **Arguments:**

    - `sol`: the solution, one dense solve per chunk.
    - `t`: one time for every problem (a scalar) or one per problem (shape `(size,)`).
    - `size`: the number of problems $B$ (the padding is dropped).

    **Returns:** the state at `t`, every leaf with the $B$ problems on axis 0.
    """
    interp = sol.interpolation
    t = jnp.asarray(t, dtype=interp.ts.dtype)
    chunks, chunk = jax.tree.leaves(interp.y0_if_trivial)[0].shape[:2]

    def chunk_at(interp_c, t_c):
        if t_c.ndim == 0:
            return interp_c.evaluate(t_c)

        def one(infos, y0, tb):
            # One problem's interpolation: the chunk's step times, that problem's stages.
            mine = eqx.tree_at(lambda i: (i.infos, i.y0_if_trivial), interp_c, (infos, y0))
            return mine.evaluate(tb)

        axes = _problem_axes(interp_c.infos, interp_c.y0_if_trivial)
        return jax.vmap(one, in_axes=(axes, 0, 0))(interp_c.infos, interp_c.y0_if_trivial, t_c)

    if t.ndim == 0:
        out = jax.vmap(chunk_at, in_axes=(0, None))(interp, t)
    else:
        if t.shape != (size,):
            raise ValueError(f"t must be a scalar or of shape ({size},), got shape {t.shape}")
        t = jnp.concatenate([t, jnp.repeat(t[-1:], chunks * chunk - size)])
        out = jax.vmap(chunk_at)(interp, t.reshape(chunks, chunk))
    return jax.tree.map(lambda x: x.reshape(chunks * chunk, *x.shape[2:])[:size], out)


def _problem_axes(infos, y):
    # diffrax keeps per-step interpolation data shaped like the state with leading axes (the
    # step, a Runge-Kutta stage): the problems' axis is the state's first one, counted from
    # the end. A solver whose data is not shaped like the state cannot be read per problem.
    if not isinstance(infos, dict):
        raise ValueError(
            f"{type(infos).__name__} dense output cannot be evaluated at one time per problem; "
            "evaluate all problems at one time"
        )
    try:
        return {k: jax.tree.map(lambda x, yy: x.ndim - yy.ndim, v, y) for k, v in infos.items()}
    except ValueError:
        raise ValueError(
            "this solver's dense output cannot be evaluated at one time per problem; "
            "evaluate all problems at one time"
        ) from None


def stacked_ys(sol: diffrax.Solution, size: int) -> PyTree:
    """The saved values of a stacked solve, every leaf of shape `(size, len(ts), ...)`."""

    def unchunk(y):
        # (chunks, times, chunk, ...) -> (problems, times, ...)
        y = jnp.moveaxis(y, 1, 2)
        return y.reshape(y.shape[0] * y.shape[1], *y.shape[2:])[:size]

    return jax.tree.map(unchunk, sol.ys)


def solve_ok(sol: diffrax.Solution) -> Array:
    """True (per batch element) when the solve succeeded and all saved values are finite."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(sol.ys)]))
    return (sol.result == diffrax.RESULTS.successful) & finite


def checked_solution(
    sol: diffrax.Solution,
    explain: Callable[[diffrax.Solution], str],
    traced_message: str,
    budget: Callable[[diffrax.Solution], str | None] | None = None,
) -> diffrax.Solution:
    """Raise [`RiccatiExplosionError`][] when a solve failed or left non-finite values.

    With concrete values the message is `explain(sol)`, or a [`StepBudgetError`][] with the
    message of `budget(sol)` when that is not `None` (see [`step_budget_message`][]).
    Under `jit` (traced values) an equinox runtime error with `traced_message` is attached
    to the solution instead; under a bare `vmap` it is raised at once as a
    `RiccatiExplosionError`.
    """
    ok = solve_ok(sol)
    if is_concrete(ok):
        if not bool(jnp.all(ok)):
            msg = budget(sol) if budget is not None else None
            if msg is not None:
                raise StepBudgetError(msg)
            raise RiccatiExplosionError(explain(sol))
        return sol
    # A runtime check is a host callback, which a program kept on disk cannot hold: such a
    # program runs as the plain jit instead.
    not_exportable("a traced solve check")
    try:
        return eqx.error_if(sol, ~ok, traced_message)
    except eqx.EquinoxRuntimeError:
        raise RiccatiExplosionError(traced_message) from None


def last_accepted_time(sol: diffrax.Solution, default: float) -> tuple[float, bool]:
    """The last time a dense solve reached, and whether any step was accepted.

    diffrax integrates a backward solve ($t_1 < t_0$) in reversed time and stores the
    interpolation's times negated; the time returned here is in the caller's time.
    """
    ts = np.asarray(sol.interpolation.ts)
    ts = ts[np.isfinite(ts)]
    if ts.size < 2:
        return float(default), False
    return float(ts[-1]) * float(np.asarray(sol.interpolation.direction)), True


def budget_exhausted(sol: diffrax.Solution) -> bool:
    """True when an unbatched solve stopped because it ran out of `max_steps`."""
    hit = np.asarray(sol.result == diffrax.RESULTS.max_steps_reached)
    return hit.ndim == 0 and bool(hit)


#: Below this fraction of the horizon, the last steps of a failed solve count as collapsing
#: (the step-size controller chasing a blow-up) rather than as a budget running out.
COLLAPSED_STEP = 1e-9


def step_budget_message(
    sol: diffrax.Solution, max_steps: int, t_start: float, t_end: float, horizon: str
) -> str | None:
    """Why a solve stopped, when the cause is the step budget rather than a blow-up.

    When `sol` (a dense solve from `t_start` towards `t_end`) ran out of `max_steps` with
    finite values and steps of ordinary size, the message says "step budget too small",
    estimates the steps needed from the fraction of the horizon covered, and says what to
    change. Otherwise (a blow-up: non-finite values or step sizes collapsing) `None`, for
    the caller to explain. `horizon` describes the interval, e.g. `"of [t0, t1] = [0, 1]"`.
    """
    if not budget_exhausted(sol) or sol.interpolation is None:
        return None
    t_stop, any_step = last_accepted_time(sol, t_start)
    if not any_step:
        return None
    values = [np.asarray(v) for v in jax.tree.leaves(sol.evaluate(t_stop))]
    if not all(np.all(np.isfinite(v)) for v in values):
        return None
    ts = np.asarray(sol.interpolation.ts)
    ts = ts[np.isfinite(ts)]
    total = abs(t_end - t_start)
    if np.min(np.abs(np.diff(ts[-4:]))) < COLLAPSED_STEP * total:
        return None
    covered = abs(t_stop - t_start)
    need = int(np.ceil(max_steps * total / covered)) if covered > 0 else None
    what = f"about {need} steps" if need is not None else "many more steps"
    fix = f"pass max_steps >= {2 * need}" if need is not None else "raise max_steps"
    return (
        f"step budget too small: max_steps = {max_steps} ran out at t = {t_stop:.6g} {horizon} "
        f"with the values still finite; the solve needs {what} at these tolerances: {fix}, "
        "loosen rtol/atol or shorten the horizon"
    )


def check_solve_options(stepsize_controller, max_steps) -> None:
    """Reject a step budget that is not a positive integer and negative or non-finite
    tolerances of a `diffrax.PIDController`, naming the argument."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer):
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps}")
    if isinstance(stepsize_controller, diffrax.PIDController):
        for name in ("rtol", "atol"):
            v = getattr(stepsize_controller, name)
            if is_concrete(v):
                a = np.asarray(v, dtype=np.float64)
                if not (np.all(np.isfinite(a)) and np.all(a >= 0)):
                    raise ValueError(
                        f"stepsize_controller.{name} must be finite and >= 0, got {v!r}"
                    )
        if is_concrete(stepsize_controller.rtol, stepsize_controller.atol):
            if np.all(np.asarray(stepsize_controller.rtol) == 0) and np.all(
                np.asarray(stepsize_controller.atol) == 0
            ):
                raise ValueError("stepsize_controller: rtol and atol must not both be 0")
    elif stepsize_controller is not None and not isinstance(
        stepsize_controller, diffrax.AbstractStepSizeController
    ):
        raise ValueError(
            "stepsize_controller must be a diffrax step-size controller, got "
            f"{type(stepsize_controller).__name__}"
        )


def largest_entry(values, names) -> tuple[str, tuple[int, ...], float]:
    """Name, index and size of the largest (in absolute value, non-finite first) entry."""
    worst, idx, size = names[0], (0,), -np.inf
    for name, v in zip(names, values):
        v = np.abs(np.asarray(v))
        v = np.where(np.isfinite(v), v, np.inf)
        if v.size and v.max() > size:
            flat = int(v.argmax())
            worst, size = name, float(v.max())
            idx = tuple(int(k) for k in np.unravel_index(flat, v.shape))
    return worst, idx, size
