r"""The general game's equilibrium by dynamic programming on a fine time grid (brute force).

On the grid $t_k$ every player's value is $\tfrac12\alpha y^2 + \tfrac12 z^\top\Pi z$,
$z = (\hat x, 1)$, per regime. One step back, the expected continuation under the Euler step of
the state (second moments of the noise increments), the exact regime transition matrix
$e^{Q\Delta t}$ and the discount $e^{-\lambda\Delta t}$ is, for each player, a quadratic form in
$\xi = (y, \hat x, 1, v_1..v_n, \hat u_1..\hat u_n)$ built from the raw coefficients; its
deviation block $(y, v)$ and conditional-mean block $(\hat x, 1, \hat u)$ separate in
expectation. The players' first-order conditions in $v_i$ and in $\hat u_i$ are solved jointly
(the one-step Nash equilibrium), and the values updated. Nothing here uses the Riccati system
of `_general_riccati.py` or its gain systems.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._linalg import small_expm, small_solve
from ._certificate import _running_cost_matrix, _times
from ._game import Coefficients, LQGame
from ._riccati import channels


class DPEquilibrium(NamedTuple):
    """Outcome of [`dp_equilibrium`][]: costs per initial regime and player `(K, n)` and the
    feedback gains at $t_0$ (`deviation`, `mean_slope`, `mean_intercept`, each `(K, n)`)."""

    costs: Float[Array, " K n"]
    deviation: Float[Array, " K n"]
    mean_slope: Float[Array, " K n"]
    mean_intercept: Float[Array, " K n"]


def _dp_forms(co_s: Coefficients, n: int, dtype):
    """Raw linear forms over xi = (y, xhat, 1, v_1..v_n, uhat_1..uhat_n) of one regime."""
    m = 3 + 2 * n
    eye = jnp.eye(m, dtype=dtype)
    ey, exh, e1 = eye[0], eye[1], eye[2]
    ev, euh = eye[3 : 3 + n], eye[3 + n :]
    U, Uh = ev + euh, euh

    def form(const, x, xhat, u, uhat):
        return _times(const, e1) + _times(x, ey + exh) + _times(xhat, exh) + u @ U + uhat @ Uh

    dev_mask = jnp.zeros(m, dtype).at[0].set(1.0).at[3 : 3 + n].set(1.0)
    dr = co_s.dynamics.drift
    drift = form(dr.const, dr.x, dr.xhat, dr.u, dr.uhat)
    idio, com = channels(co_s)
    li = form(*idio[:5])
    lo = form(*com[:5])
    return drift, li, lo, idio.weight, com.weight, dev_mask, (ey + exh, exh, e1, U, Uh)


def _dp_step(co, P, h, alpha_next, Pi_next, n):
    """One backward step of the n-player Bellman recursion in every regime."""
    dtype = alpha_next.dtype
    m = 3 + 2 * n
    dev_idx = jnp.concatenate([jnp.array([0]), 3 + jnp.arange(n)])
    mean_idx = jnp.concatenate([jnp.array([1, 2]), 3 + n + jnp.arange(n)])
    # Continuation mixed over the next regime: exact chain transition over the step.
    a_mix = P @ alpha_next  # (K, n)
    Pi_mix = jnp.einsum("st,tnab->snab", P, Pi_next)

    def regime(co_s, a_s, Pi_s):
        drift, li, lo, wi, wo, dev_mask, units = _dp_forms(co_s, n, dtype)
        eye = jnp.eye(m, dtype=dtype)
        b = eye[0] + h * drift * dev_mask  # y' mean part
        a = eye[1] + h * drift * (1 - dev_mask)  # xhat'
        lo_dev, lo_mean = lo * dev_mask[None, :], lo * (1 - dev_mask)[None, :]
        Eyy = jnp.outer(b, b) + h * (
            jnp.einsum("k,ka,kb->ab", wi, li, li) + jnp.einsum("k,ka,kb->ab", wo, lo_dev, lo_dev)
        )
        Exx = jnp.outer(a, a) + h * jnp.einsum("k,ka,kb->ab", wo, lo_mean, lo_mean)
        Ex1 = jnp.outer(a, eye[2]) + jnp.outer(eye[2], a)
        E11 = jnp.outer(eye[2], eye[2])
        x, xh, one, U, Uh = units

        def player(i, a_i, Pi_i):
            L = _running_cost_matrix(co_s.cost, i, x, xh, one, U[i], Uh[i])
            cont = a_i * Eyy + Pi_i[0, 0] * Exx + Pi_i[0, 1] * Ex1 + Pi_i[1, 1] * E11
            return h * L + jnp.exp(-co_s.cost.lam[i] * h) * cont

        H = jax.vmap(player)(jnp.arange(n), a_s, Pi_s)  # (n, m, m)
        Hd = H[:, dev_idx][:, :, dev_idx]  # (n, 1+n, 1+n): (y, v_1..v_n)
        Hm = H[:, mean_idx][:, :, mean_idx]  # (n, 2+n, 2+n): (xhat, 1, uhat_1..uhat_n)
        rows = jnp.arange(n)
        # First-order conditions of all players at once: d/dv_i of player i's value.
        Ad = Hd[rows, 1 + rows][:, 1:]  # (n, n): H^i[v_i, v_j]
        K = small_solve(Ad, -Hd[rows, 1 + rows, 0])
        Am = Hm[rows, 2 + rows][:, 2:]
        Kh = small_solve(Am, -Hm[rows, 2 + rows, :2])  # (n, 2)
        eta = jnp.concatenate([jnp.ones(1, dtype), K])
        zeta = jnp.concatenate([jnp.eye(2, dtype=dtype), Kh], axis=0)  # (2+n, 2)
        alpha = jnp.einsum("a,iab,b->i", eta, Hd, eta)
        Pi = jnp.einsum("ac,iab,bd->icd", zeta, Hm, zeta)
        return alpha, Pi, K, Kh

    return jax.vmap(regime)(co, a_mix, Pi_mix)


@eqx.filter_jit
def _dp(game: LQGame, steps: int):
    K, n = game.num_regimes, game.n
    dtype = game.t0.dtype
    h = (game.t1 - game.t0) / steps
    P = small_expm(game.generator * h)
    te = game.terminal
    alpha = te.q
    Pi = (
        jnp.zeros((K, n, 2, 2), dtype)
        .at[..., 0, 0]
        .set(te.q + te.qbar)
        .at[..., 0, 1]
        .set(te.eps3 + te.eps3bar)
        .at[..., 1, 0]
        .set(te.eps3 + te.eps3bar)
    )

    def body(carry, k):
        alpha, Pi, _, _ = carry
        t = game.t1 - (k + 1) * h
        alpha, Pi, Kd, Kh = _dp_step(game.at(t), P, h, alpha, Pi, n)
        return (alpha, Pi, Kd, Kh), None

    init = (alpha, Pi, jnp.zeros((K, n), dtype), jnp.zeros((K, n, 2), dtype))
    (alpha, Pi, Kd, Kh), _ = jax.lax.scan(body, init, jnp.arange(steps))
    d = game.x0 - game.xhat0
    z0 = jnp.stack([game.xhat0, jnp.ones_like(game.xhat0)])
    costs = alpha / 2 * d**2 + 0.5 * jnp.einsum("a,snab,b->sn", z0, Pi, z0)
    return DPEquilibrium(costs, Kd, Kh[..., 0], Kh[..., 1])


def dp_equilibrium(game: LQGame, steps: int = 1000, *, extrapolate: bool = True) -> DPEquilibrium:
    r"""The game's equilibrium by backward dynamic programming on a fine time grid.

    A brute-force route sharing nothing with the Riccati system: on the grid $t_k$, every
    player's value is $\tfrac12\alpha y^2 + \tfrac12 z^\top\Pi z$ per regime; one step back,
    the expected continuation under the Euler step of the state (second moments of the
    noise increments), the exact regime transition matrix $e^{Q\Delta t}$ and the discount
    $e^{-\lambda\Delta t}$ gives each player a quadratic form in
    $(y, \hat x, 1, v_1..v_n, \hat u_1..\hat u_n)$, built from the raw coefficients; the
    players' first-order conditions in $v_i$ and $\hat u_i$ are solved jointly (a Nash
    equilibrium of the one-step game) and the values updated. First order in $\Delta t$;
    with `extrapolate` the result is the Richardson combination $2V_{2N} - V_N$ (second
    order).

    **Arguments:**

    - `game`: a [`LQGame`][].
    - `steps`: number of grid steps $N$.
    - `extrapolate`: combine $N$ and $2N$ steps.

    **Returns:** a [`DPEquilibrium`][] (costs per initial regime and player; gains at $t_0$).
    """
    coarse = _dp(game, steps)
    if not extrapolate:
        return coarse
    fine = _dp(game, 2 * steps)
    return jax.tree.map(lambda c, f: 2 * f - c, coarse, fine)
