r"""The filter's recursion solved in parallel over time (`jax.lax.associative_scan`).

The mixture filter of `_kalman.py` is a recursion $s_k = f_k(s_{k-1})$ on the filtered
state $s = (x_c, x_i, P_{cc}, P_{ci}, P_{ii})$, $k = 1..T$, from the stationary prior $s_0$.
Without jumps it is the Kalman filter, whose steps Särkkä and García-Fernández (2021,
"Temporal parallelization of Bayesian smoothers", IEEE TAC 66(1)) write as elements of an
associative operator; the collapse of the jump mixture to its mean and covariance (moment
matching) makes $f_k$ nonlinear in the prior mean as well (the mixture weights are Gaussian
densities of the innovation), and no finite family of elements is closed under composition.
So the recursion is solved as a root of the whole trajectory by Newton's method in sequence
space (Lim et al. 2024, "Parallelizing non-linear sequential models over the sequence
length", ICLR): linearised around the current trajectory $\bar s$,

$$s_k = J_k s_{k-1} + f_k(\bar s_{k-1}) - J_k \bar s_{k-1},
  \qquad J_k = \partial f_k(\bar s_{k-1}),$$

an affine recursion, whose prefix compositions $(A, b)\circ(A', b') = (AA', Ab' + b)$ are
one associative scan (the Kalman filter's elements are the special case where the
covariance part is data-free). Each iteration makes at least one more step exact, so $T$
iterations solve it exactly; the filter contracts, and a handful reach rounding.

Derivatives: the converged trajectory $s^*$ is held fixed (`stop_gradient`) and two more
Newton steps are taken from it, differentiably. Newton's map $N$ has $\partial_s N = 0$ at
its root, so the first step's derivative is the implicit one, $(I - J\,\mathrm{shift})^{-1}
\partial_\theta f$, and the second step's first and second derivatives are those of the
root: gradients and Hessians through this filter equal the sequential filter's.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

# Iterations before the trajectory is reported as not converged (at most T are needed).
MAX_ITERATIONS = 64


def compose_affine(earlier, later):
    """The associative operator of affine maps $x \\mapsto Ax + b$ (batched over leading
    axes): `later` after `earlier`."""
    A1, b1 = earlier
    A2, b2 = later
    return A2 @ A1, jnp.einsum("...ij,...j->...i", A2, b1) + b2


def _newton(step: Callable, params, init, e, S):
    """One Newton step of the trajectory `S` (T, d) of `s_k = step(params, s_{k-1}, e_k)`."""
    prev = jnp.concatenate([init[None], S[:-1]], axis=0)

    def linearise(s, ek):
        f = lambda x: (lambda out: (out, out))(step(params, x, ek))  # noqa: E731
        return jax.jacfwd(f, has_aux=True)(s)

    J, f = jax.vmap(linearise)(prev, e)
    b = f - jnp.einsum("tij,tj->ti", J, prev)
    # The first step starts from the known prior: its map is the constant f_1(s_0).
    J = J.at[0].set(0.0)
    b = b.at[0].set(f[0])
    _, S_new = jax.lax.associative_scan(compose_affine, (J, b))
    return S_new


def parallel_trajectory(
    step: Callable,
    params,
    init: Float[Array, " d"],
    e: Float[Array, " T"],
    *,
    guess: Float[Array, "T d"] | None = None,
    rtol: float | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> Float[Array, "T d"]:
    r"""The trajectory $s_1..s_T$ of $s_k = $ `step(params, s_{k-1}, e_k)` by Newton's
    method in sequence space, each iteration one associative scan (module docstring).

    **Arguments:**

    - `step`: the recursion's map `(params, s, e_k) -> s_k`, differentiable, states of
      shape `(d,)`.
    - `params`: a pytree of arrays, everything `step` depends on but the state and input.
    - `init`: $s_0$.
    - `e`: the inputs $e_k$, shape `(T,)`.
    - `guess`: the trajectory Newton's method starts from (default: $s_0$ throughout); a
      guess near the solution keeps the linearisations where they are good.
    - `rtol`: the iteration stops when no coordinate moves by more than `rtol` times
      $1 + |s|$ (default: the square root of the working precision's epsilon; the two
      final Newton steps square that error).
    - `max_iterations`: a trajectory that has not converged by then is an error (raised
      where the program runs, by `equinox.error_if`).

    **Returns:** the states after each input, shape `(T, d)`, with the derivatives (first
    and second order) of the recursion's exact solution with respect to `params`, `init`
    and `e`.
    """
    tol = float(np.sqrt(np.finfo(init.dtype).eps)) if rtol is None else float(rtol)
    # The iterations to convergence carry no derivatives: only the last two steps do.
    params_c, init_c, e_c = jax.lax.stop_gradient((params, init, e))
    if guess is None:
        S0 = jnp.broadcast_to(init_c, (e.shape[0],) + init_c.shape)
    else:
        S0 = jax.lax.stop_gradient(guess)

    def cond(carry):
        _, moved, k = carry
        # A non-finite trajectory (NaN data or parameters) stops at once, as NaN: what the
        # sequential filter gives, and what a line search rejects.
        return (k < max_iterations) & ~(moved <= tol) & ~jnp.isnan(moved)

    def body(carry):
        S, _, k = carry
        new = _newton(step, params_c, init_c, e_c, S)
        return new, jnp.max(jnp.abs(new - S) / (1 + jnp.abs(new))), k + 1

    inf = jnp.asarray(jnp.inf, S0.dtype)
    S, moved, _ = jax.lax.while_loop(cond, body, (S0, inf, jnp.zeros((), jnp.int32)))
    S = jnp.where(jnp.isnan(moved), jnp.nan, S)
    S = eqx.error_if(
        S,
        ~(moved <= tol) & ~jnp.isnan(moved),
        f"the parallel filter's trajectory did not converge in {max_iterations} Newton "
        "iterations (use filter='sequential')",
    )
    # A loop of fixed length (one copy of the step in the program), differentiable.
    return jax.lax.fori_loop(
        0, 2, lambda _, x: _newton(step, params, init, e, x), jax.lax.stop_gradient(S)
    )
