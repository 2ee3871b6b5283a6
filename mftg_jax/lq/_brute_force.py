r"""Brute-force certificate of a general game's equilibrium: one player's best response by
direct optimisation over its feedback gains.

Player $i$'s feedback gains, piecewise linear on a time grid per regime, are minimised
(optimistix's L-BFGS) against the forward-moment cost (`_certificate.py`) with the others
frozen at the candidate's feedback. (The whole game by dynamic programming on a grid is in
`_dp.py`.)
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array
import optimistix as optx

from ._certificate import _forward_rhs, _gains_tuple, _terminal_matrix, FeedbackFn
from ._game import LQGame
from ._riccati import RiccatiSolution

# Convergence is the gradient norm, tested here: the solver's own (Cauchy) termination is
# off (zero tolerances never terminate).
_SOLVER = optx.LBFGS(rtol=0.0, atol=0.0)
# Gradients by reverse mode (`jax.grad`'s).
_OPTIONS = {"autodiff_mode": "bwd"}
# Loss evaluations (line-search halvings) without an accepted step after which the search
# stops: a step of 2^-30 times L-BFGS's makes no progress (the cost is at its rounding floor).
_MAX_EVALS = 30


class BruteForceResult(NamedTuple):
    """Outcome of [`brute_force_best_response`][] for one player."""

    value: Array  # the cost at the last iterate's gains (piecewise linear)
    initial_value: Array  # the cost at the starting gains
    gains: Array  # (K, 3, nodes): deviation, mean slope, mean intercept per regime
    grad_norm: Array  # at the last iterate's gains
    iterations: int


def brute_force_best_response(
    candidate: RiccatiSolution,
    player: int,
    *,
    nodes: int = 11,
    steps: int = 200,
    iterations: int = 500,
    tol: float = 1e-10,
    start: str = "zeros",
) -> BruteForceResult:
    r"""Player `player`'s best response found by direct optimisation over its feedback gains.

    The others play the candidate's feedback; the player's gains $(g, \hat g, h)$ are
    piecewise linear in time on `nodes` equally spaced nodes per regime, the cost is the
    forward-moment cost (fixed `steps` classical RK4 steps) and the minimiser is
    `optimistix.LBFGS`. No Riccati equation is involved: if the candidate is an equilibrium,
    the value found is (up to the gain discretisation) the candidate's cost and never below
    it.

    **Arguments:**

    - `candidate`: a [`RiccatiSolution`][].
    - `player`: the deviating player's index.
    - `nodes`, `steps`, `iterations`: grid of the gains, time steps, L-BFGS iterations.
    - `tol`: stop when the gradient norm falls below it (or earlier, when the line search
      finds no further decrease).
    - `start`: `"zeros"` (all gains zero) or `"candidate"` (the candidate's gains).

    **Returns:** a [`BruteForceResult`][].
    """
    game = candidate.game
    tn = jnp.linspace(game.t0, game.t1, nodes)
    if start == "candidate":
        theta0 = jax.vmap(lambda t: jnp.stack(_gains_tuple(candidate, t))[:, :, player])(tn)
        theta0 = jnp.transpose(theta0, (2, 1, 0))  # (K, 3, nodes)
    elif start == "zeros":
        theta0 = jnp.zeros((game.num_regimes, 3, nodes), game.t0.dtype)
    else:
        raise ValueError(f"start must be 'zeros' or 'candidate', got {start!r}")
    others = _sample_others(candidate, steps)
    # The iteration count and tolerance are arrays: other values reuse the compiled program.
    theta, value, value0, gnorm, done = _minimise(
        candidate,
        others,
        theta0,
        jnp.asarray(player),
        steps,
        jnp.asarray(iterations),
        jnp.asarray(tol, theta0.dtype),
    )
    return BruteForceResult(value, value0, theta, gnorm, int(done))


def _rk4_cost(game: LQGame, feedback: FeedbackFn, steps: int) -> Array:
    """Forward-moment cost by classical RK4 on a fixed grid (a small program to differentiate
    many times; `feedback` is sampled at the grid and half-grid times only)."""
    K, n = game.num_regimes, game.n
    d = game.x0 - game.xhat0
    dt = game.t0.dtype
    h = (game.t1 - game.t0) / steps
    Z0 = jnp.array([[d**2, 0, 0], [0, game.xhat0**2, game.xhat0], [0, game.xhat0, 1.0]], dt)
    y0 = (jnp.zeros((n, K, 3, 3), dt).at[:, game.regime0].set(Z0), jnp.zeros(n, dt))
    args = (game, feedback)

    def body(y, k):
        t = game.t0 + k * h
        k1 = _forward_rhs(t, y, args)
        k2 = _forward_rhs(t + h / 2, jax.tree.map(lambda a, b: a + h / 2 * b, y, k1), args)
        k3 = _forward_rhs(t + h / 2, jax.tree.map(lambda a, b: a + h / 2 * b, y, k2), args)
        k4 = _forward_rhs(t + h, jax.tree.map(lambda a, b: a + h * b, y, k3), args)
        return jax.tree.map(
            lambda a, b1, b2, b3, b4: a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4
        ), None

    (M1, running), _ = jax.lax.scan(body, y0, jnp.arange(steps, dtype=dt))
    e = jnp.eye(3, dtype=dt)
    G = jax.vmap(
        lambda s: jax.vmap(
            lambda i: _terminal_matrix(game.terminal, s, i, e[0] + e[1], e[1], e[2])
        )(jnp.arange(n))
    )(jnp.arange(K))
    return running + 0.5 * jnp.einsum("snab,nsab->n", G, M1)


@eqx.filter_jit
def _sample_others(candidate, steps):
    game = candidate.game
    th = jnp.linspace(game.t0, game.t1, 2 * steps + 1)
    return jax.vmap(lambda t: jnp.stack(_gains_tuple(candidate, t)))(th)  # (2 steps + 1, 3, K, n)


def _deviation_cost(candidate, others, player, steps):
    game = candidate.game
    # The others' gains do not depend on the deviation: sampled once on the half grid.
    th = jnp.linspace(game.t0, game.t1, 2 * steps + 1)

    def cost(theta):
        tn = jnp.linspace(game.t0, game.t1, theta.shape[-1])

        def feedback(t):
            g, gh, hh = jax.vmap(lambda c: jnp.interp(t, th, c), in_axes=-1, out_axes=-1)(
                others.reshape(th.shape[0], -1)
            ).reshape(others.shape[1:])
            own = jax.vmap(jax.vmap(lambda c: jnp.interp(t, tn, c)))(theta)  # (K, 3)
            return (
                g.at[:, player].set(own[:, 0]),
                gh.at[:, player].set(own[:, 1]),
                hh.at[:, player].set(own[:, 2]),
            )

        return _rk4_cost(game, feedback, steps)[player]

    return cost


@eqx.filter_jit
def _minimise(candidate, others, theta0, player, steps, iterations, tol):
    """L-BFGS on the deviation cost, driven through the solver's `init`/`step` in one
    `while_loop`: until `iterations` accepted steps after the initial evaluation, a gradient
    norm below `tol`, or `_MAX_EVALS` evaluations in a row without an accepted step (no
    further decrease to be had).

    **Returns:** `(gains, value, initial value, gradient norm, iterations)`."""
    cost = _deviation_cost(candidate, others, player, steps)

    def fn(theta, _):
        return cost(theta), None

    tags = frozenset()
    f_struct = jax.ShapeDtypeStruct((), theta0.dtype)
    state = _SOLVER.init(fn, theta0, None, _OPTIONS, f_struct, None, tags)
    dynamic, static = eqx.partition(state, eqx.is_array)

    def cond(carry):
        _, dyn, _, stalled = carry
        st = eqx.combine(dyn, static)
        # The first accepted step is the evaluation at theta0 itself.
        done = st.num_accepted_steps - 1
        running = (done < iterations) & (optx.two_norm(st.f_info.grad) >= tol)
        return (st.num_accepted_steps < 1) | (running & (stalled < _MAX_EVALS))

    def body(carry):
        theta, dyn, value0, stalled = carry
        st = eqx.combine(dyn, static)
        before = st.num_accepted_steps
        theta, st, _ = _SOLVER.step(fn, theta, None, _OPTIONS, st, tags)
        value0 = jnp.where(st.num_accepted_steps == 1, st.f_info.f, value0)
        stalled = jnp.where(st.num_accepted_steps > before, 0, stalled + 1)
        return theta, eqx.filter(st, eqx.is_array), value0, stalled

    init = (theta0, dynamic, jnp.zeros((), theta0.dtype), jnp.array(0))
    theta, dynamic, value0, _ = jax.lax.while_loop(cond, body, init)
    info = eqx.combine(dynamic, static).f_info
    done = eqx.combine(dynamic, static).num_accepted_steps - 1
    return theta, info.f, value0, optx.two_norm(info.grad), done
