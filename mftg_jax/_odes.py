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

from ._validation import is_concrete

#: Default tolerances of the library's adaptive solves.
RTOL = 1e-8
ATOL = 1e-8


class RiccatiExplosionError(ValueError):
    """A Riccati system has no solution on the horizon (finite-time blow-up, a singular gain
    system or a loss of convexity); the message names where and why."""


def default_controller(rtol: float = RTOL, atol: float = ATOL) -> diffrax.PIDController:
    """The library's default step-size controller, `diffrax.PIDController(rtol, atol)`."""
    return diffrax.PIDController(rtol=rtol, atol=atol)


def _solve(vector_field, solver, t0, t1, dt0, y0, args, saveat, controller, adjoint, max_steps):
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


_solve_jit = eqx.filter_jit(_solve)


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
    - `max_steps`: the step budget.

    **Returns:** the `diffrax.Solution`.
    """
    if stepsize_controller is None:
        stepsize_controller = default_controller()
    if dt0 is not None:
        # An array, not a Python float: a new step size must not trigger a recompilation.
        dt0 = jnp.asarray(dt0, dtype=jnp.result_type(t0))
    return _solve_jit(
        vector_field, solver, t0, t1, dt0, y0, args, saveat, stepsize_controller, adjoint, max_steps
    )


def solve_ok(sol: diffrax.Solution) -> Array:
    """True (per batch element) when the solve succeeded and all saved values are finite."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(sol.ys)]))
    return (sol.result == diffrax.RESULTS.successful) & finite


def checked_solution(
    sol: diffrax.Solution, explain: Callable[[diffrax.Solution], str], traced_message: str
) -> diffrax.Solution:
    """Raise [`RiccatiExplosionError`][] when a solve failed or left non-finite values.

    With concrete values the message is `explain(sol)`; under `jit`/`vmap` (traced values)
    an equinox runtime error with `traced_message` is attached to the solution instead.
    """
    ok = solve_ok(sol)
    if is_concrete(ok):
        if not bool(jnp.all(ok)):
            raise RiccatiExplosionError(explain(sol))
        return sol
    return eqx.error_if(sol, ~ok, traced_message)


def last_accepted_time(sol: diffrax.Solution, default: float) -> tuple[float, bool]:
    """The last time a dense solve reached, and whether any step was accepted."""
    ts = np.asarray(sol.interpolation.ts)
    ts = ts[np.isfinite(ts)]
    if ts.size < 2:
        return float(default), False
    return float(ts[-1]), True


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
