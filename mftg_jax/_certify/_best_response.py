r"""The single-agent best response of a linear-quadratic player, by a generic matrix Riccati
equation, and the value of a given linear feedback, by policy evaluation.

Freeze every other player at the candidate's feedback: player $i$ faces a single-agent LQ
problem with state $X \in \mathbb R^d$ whose last component is the constant 1, control
$w \in \mathbb R^m$ and additive noise of covariance rate $\Sigma$,

$$dX = (A(t)X + B(t)w)\,dt + dW,\qquad
  J = E\Big[\int e^{-\lambda t}\big(X^\top N w + \tfrac12 w^\top R w\big)dt
            + e^{-\lambda t_1}\tfrac12 X^\top G X\Big]$$

(a revenue to maximise with $R \prec 0$, or a cost to minimise with $R \succ 0$: the first-order
condition is the same). The value is $\tfrac12 X^\top P X$ with, from the HJB of this generic
problem,

$$-\dot P + \lambda P = A^\top P + PA - (N+PB)R^{-1}(N+PB)^\top
   + \mathrm{tr}(P\Sigma)\,e_de_d^\top,\qquad P(t_1) = G;$$

the value of the feedback $w = KX$ solves the linear (Lyapunov) equation with $A + BK$ and
running reward $\tfrac12 X^\top(NK + K^\top N^\top + K^\top RK)X$. Both are integrated backwards
together by the library's one ODE entry point. A family supplies its player problem at a time;
nothing here knows a game.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._linalg import small_solve
from .._odes import checked_solution, RiccatiExplosionError, solve_ode, solve_ok
from .._validation import is_concrete


class PlayerProblem(NamedTuple):
    """Player $i$'s LQ problem at one time (module docstring), the others frozen.

    `A (d, d)`, `B (d, m)`, `N (d, m)`, `R (m, m)`, `gain (m, d)` (the candidate feedback
    $K$), `noise (d, d)` (the covariance rate $\\Sigma$), `discount` ($\\lambda$, a scalar).
    """

    A: Array
    B: Array
    N: Array
    R: Array
    gain: Array
    noise: Array
    discount: Array


def _vector_field(t, y, args):
    problem, n, model = args
    P, L = y
    d = P.shape[-1]
    e = jnp.zeros((d, d), P.dtype).at[d - 1, d - 1].set(1.0)

    def one(i, P, L):
        pb = problem(t, i, model)
        A, B, N, R, K, S, lam = pb
        NPB = N + P @ B
        dP = lam * P - A.T @ P - P @ A + NPB @ small_solve(R, NPB.T)
        dP = dP - jnp.trace(P @ S) * e
        Ac = A + B @ K
        Qc = N @ K + K.T @ N.T + K.T @ R @ K
        dL = lam * L - Qc - Ac.T @ L - L @ Ac - jnp.trace(L @ S) * e
        return dP, dL

    return jax.vmap(one)(jnp.arange(n), P, L)


BEST_RESPONSE_FAILED = (
    "the best-response Riccati equation of the certificate has no solution on the horizon"
)


def check_best_response(values: Array) -> Array:
    """Raise [`RiccatiExplosionError`][] when concrete best-response `values` are not finite
    (the solve of [`best_response_values`][] failed under `jit`); return `values`."""
    if is_concrete(values) and not bool(jnp.all(jnp.isfinite(values))):
        raise RiccatiExplosionError(BEST_RESPONSE_FAILED)
    return values


def best_response_values(
    problem: Callable[[Any, Array, Any], PlayerProblem],
    model: Any,
    n: int,
    terminal: Array,
    x0: Array,
    t0,
    t1,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController,
    max_steps: int,
) -> tuple[Array, Array]:
    """Best-response values and candidate values of `n` players at $X_0$.

    **Arguments:**

    - `problem`: `problem(t, i, model)` -> [`PlayerProblem`][] of player `i` at time `t`
      (a module-level function, so that compiled programs are reused).
    - `model`: what `problem` reads (e.g. a Riccati solution).
    - `n`: number of players; `terminal`: $G$ per player, `(n, d, d)`; `x0`: $X_0$, `(d,)`.
    - `t0`, `t1`: the horizon; `stepsize_controller`, `max_steps`: the backward solve's.

    **Returns:** `(best_response, candidate)`, each `(n,)`: $\\tfrac12 X_0^\\top P X_0$ and
    $\\tfrac12 X_0^\\top L X_0$ at $t_0$. A failed solve raises [`RiccatiExplosionError`][]
    with concrete inputs, and gives NaN values under `jit` ([`check_best_response`][]).
    """
    sol = solve_ode(
        _vector_field,
        (terminal, terminal),
        t1,
        t0,
        (problem, n, model),
        stepsize_controller=stepsize_controller,
        max_steps=max_steps,
    )
    ok = solve_ok(sol)
    if is_concrete(ok):
        checked_solution(sol, lambda sol: BEST_RESPONSE_FAILED, BEST_RESPONSE_FAILED)
    P, L = (x[-1] for x in sol.ys)
    br = 0.5 * jnp.einsum("i,nij,j->n", x0, P, x0)
    cand = 0.5 * jnp.einsum("i,nij,j->n", x0, L, x0)
    if not is_concrete(ok):
        # Under `jit` a failed solve gives NaN values (which fail the certificate, and
        # [`check_best_response`][] raises on them) rather than a run-time check: a host
        # callback would keep the whole program out of the persistent compilation cache.
        br = jnp.where(ok, br, jnp.nan)
        cand = jnp.where(ok, cand, jnp.nan)
    return br, cand
