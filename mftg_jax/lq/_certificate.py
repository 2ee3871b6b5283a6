r"""Certificates of a general game's equilibrium, by routes independent of its Riccati system.

**Best response (Nash gap).** Freeze every player $j \ne i$ at the candidate feedback
$u_j = \hat g_j\hat x + h_j + g_j(x-\hat x)$. Player $i$'s problem is a single-agent LQ
problem in $\xi = (y, \hat x, 1, v, \hat u_i)$, $y = x - \hat x$, $v = u_i - \hat u_i$. Every
coefficient of equation (1) is a linear form $\ell\cdot\xi$, built here generically from the
raw coefficients (not from the game's $E, F, S$ terms); its conditional mean $\hat\ell$ drops
the $(y, v)$ columns. The running cost is $\tfrac12\xi^\top L\xi$; its $(y,v)$-$(\hat x,1,\hat u)$
cross block has zero expectation. With value $\tfrac12\alpha y^2 + \tfrac12 z^\top\Pi z$,
$z = (\hat x, 1)$, the generic Riccati equations (per regime, $\mathcal Q$ the regime coupling)

$$-\dot\alpha + \lambda\alpha = 2a\alpha + L_{yy} + \alpha\textstyle\sum_k w_k s_k^2
  + \mathcal Q\alpha - \frac{(L_{yv} + \alpha b + \alpha\sum_k w_k s_kp_k)^2}
  {L_{vv} + \alpha\sum_k w_kp_k^2}$$
$$-\dot\Pi + \lambda\Pi = A^\top\Pi + \Pi A + L_{zz} + \textstyle\sum_k\omega_k e_ke_k^\top
  + \mathcal Q\Pi - \ell\ell^\top/\rho,\quad
  \ell = L_{z\hat u} + \Pi B + \textstyle\sum_k\omega_k e_k\hat p_k,\quad
  \rho = L_{\hat u\hat u} + \textstyle\sum_k\omega_k\hat p_k^2$$

($\omega_k = w_k\alpha$ for idiosyncratic channels, $w_k\Pi_{11}$ for common ones) give the
best-response value; the same equations without minimisation and with player $i$'s own
candidate feedback give the value its candidate feedback earns.

**Forward moments (policy evaluation by a second route).** Under linear feedback of all
players, $Z = (y, \hat x, 1)$ is linear: $dZ = FZ\,dt + \sum_k D_kZ\,dW_k$, and the discounted
regime-indexed moments $M_s = E[e^{-\Lambda}ZZ^\top 1_{s(t)=s}]$ solve the forward equation
$\dot M_s = FM_s + M_sF^\top + \sum_k w_kD_kM_sD_k^\top - \lambda_sM_s + \sum_{s'}q_{s's}M_{s'}$.
The expected cost is $\int\sum_s\tfrac12\mathrm{tr}(L_sM_s)\,dt + \sum_s\tfrac12
\mathrm{tr}(G_sM_s(t_1))$, with no HJB anywhere.

**Brute force** (`_brute_force.py`). Player $i$'s feedback gains, piecewise linear on a time
grid per regime, minimised (L-BFGS) against the forward-moment cost with the others frozen.
(The whole game by dynamic programming on a grid is in `_dp.py`.)
"""

from collections.abc import Callable

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._certify import certificate, NashCertificate
from .._odes import checked_solution, default_controller, solve_ode
from .._programs import persistent_jit
from ._game import Affine, Coefficients, LQGame
from ._riccati import channels, RiccatiSolution

# Index of each entry of xi = (y, xhat, 1, v, uhat).
_Y, _XH, _ONE, _V, _UH = range(5)


def _times(a: Array, v: Array) -> Array:
    """Every entry of `a` times the vector `v`, shape `a.shape + v.shape`."""
    a = jnp.asarray(a)
    return a[..., None] * jnp.broadcast_to(v, a.shape + v.shape)


def _unit(k: int, size: int, dtype) -> Array:
    return jnp.zeros(size, dtype).at[k].set(1.0)


def _forms_for_player(co: Coefficients, g, gh, h, i):
    """Linear forms over xi of the drift and each channel, player i free, others frozen.

    Returns `(drift (5,), idio (C, 5), com (C, 5), weights)` for one regime.
    """
    dt = g.dtype
    n = g.shape[-1]
    e = [_unit(k, 5, dt) for k in range(5)]
    x = e[_Y] + e[_XH]
    others = jnp.arange(n) != i
    # u_j over xi for j != i: g_j y + gh_j xhat + h_j; own: v + uhat.
    own = jnp.broadcast_to(e[_V] + e[_UH], (n, 5))
    U = jnp.where(others[:, None], _times(g, e[_Y]) + _times(gh, e[_XH]) + _times(h, e[_ONE]), own)
    own_h = jnp.broadcast_to(e[_UH], (n, 5))
    Uh = jnp.where(others[:, None], _times(gh, e[_XH]) + _times(h, e[_ONE]), own_h)

    def form(aff_const, aff_x, aff_xhat, aff_u, aff_uhat):
        return (
            _times(aff_const, e[_ONE])
            + _times(aff_x, x)
            + _times(aff_xhat, e[_XH])
            + aff_u @ U
            + aff_uhat @ Uh
        )

    dyn = co.dynamics
    drift = form(*(getattr(dyn.drift, k) for k in ("const", "x", "xhat", "u", "uhat")))
    idio, com = channels(co)
    li = form(idio.const, idio.x, idio.xhat, idio.u, idio.uhat)
    lo = form(com.const, com.x, com.xhat, com.u, com.uhat)
    return drift, li, lo, idio.weight, com.weight


def _running_cost_matrix(cost, i, x, xh, one, u, uh):
    """$L$ with running cost $\\tfrac12\\xi^\\top L\\xi$ for player i, given the unit forms."""

    def sym(a, b):
        return jnp.outer(a, b) + jnp.outer(b, a)

    return (
        cost.q[i] * jnp.outer(x, x)
        + cost.qbar[i] * jnp.outer(xh, xh)
        + cost.r[i] * jnp.outer(u, u)
        + cost.rbar[i] * jnp.outer(uh, uh)
        + cost.eps1[i] * sym(x, u)
        + cost.eps1bar[i] * sym(xh, uh)
        + cost.eps2[i] * sym(u, one)
        + cost.eps2bar[i] * sym(uh, one)
        + cost.eps3[i] * sym(x, one)
        + cost.eps3bar[i] * sym(xh, one)
    )


def _terminal_matrix(te, s, i, x, xh, one):
    def sym(a, b):
        return jnp.outer(a, b) + jnp.outer(b, a)

    return (
        te.q[s, i] * jnp.outer(x, x)
        + te.qbar[s, i] * jnp.outer(xh, xh)
        + te.eps3[s, i] * sym(x, one)
        + te.eps3bar[s, i] * sym(xh, one)
    )


def _xi_units(dtype):
    e = [_unit(k, 5, dtype) for k in range(5)]
    return e[_Y] + e[_XH], e[_XH], e[_ONE], e[_V] + e[_UH], e[_UH]


def _player_regime(co_s: Coefficients, cost_s, gains_s, i):
    """Single-agent problem of player i in one regime: its generic matrices."""
    g, gh, h = gains_s
    drift, li, lo, wi, wo = _forms_for_player(co_s, g, gh, h, i)
    L = _running_cost_matrix(cost_s, i, *_xi_units(g.dtype))
    dev, mean = jnp.array([_Y, _V]), jnp.array([_XH, _ONE, _UH])
    return drift, li, lo, wi, wo, L, dev, mean, cost_s.lam[i]


def _gains_tuple(candidate: RiccatiSolution, t):
    gn = candidate.gains(t)
    return gn.deviation, gn.mean_slope, gn.mean_intercept


def _br_rhs(t, y, args):
    game, candidate = args
    alpha, Pi, alpha_L, Pi_L = y  # (K, n), (K, n, 2, 2), ...
    co = game.at(t)
    gains = _gains_tuple(candidate, t)
    n = alpha.shape[-1]

    def one(co_s, g_s, gh_s, h_s, i, a, P, aL, PL):
        drift, li, lo, wi, wo, L, _, _, lam = _player_regime(co_s, co_s.cost, (g_s, gh_s, h_s), i)
        # Deviation problem in (y, v).
        a_y, b_y = drift[_Y], drift[_V]
        s_all = jnp.concatenate([li[:, _Y], lo[:, _Y]])
        p_all = jnp.concatenate([li[:, _V], lo[:, _V]])
        w_all = jnp.concatenate([wi, wo])
        Lyy, Lyv, Lvv = L[_Y, _Y], L[_Y, _V], L[_V, _V]
        num = Lyv + a * b_y + a * jnp.sum(w_all * s_all * p_all)
        den = Lvv + a * jnp.sum(w_all * p_all**2)
        f_alpha = 2 * a_y * a + Lyy + a * jnp.sum(w_all * s_all**2) - num**2 / den - lam * a
        # Conditional-mean problem in z = (xhat, 1) with control uhat.
        A = jnp.zeros((2, 2), a.dtype).at[0].set(drift[jnp.array([_XH, _ONE])])
        B = jnp.zeros(2, a.dtype).at[0].set(drift[_UH])
        ei = li[:, jnp.array([_XH, _ONE])]
        eo = lo[:, jnp.array([_XH, _ONE])]
        pi_, po_ = li[:, _UH], lo[:, _UH]
        Lzz = L[jnp.array([_XH, _ONE])][:, jnp.array([_XH, _ONE])]
        Lzu = L[jnp.array([_XH, _ONE]), _UH]
        Luu = L[_UH, _UH]

        def zpart(alpha_w, P):
            om_i, om_o = wi * alpha_w, wo * P[0, 0]
            base = (
                A.T @ P
                + P @ A
                + Lzz
                + jnp.einsum("k,ka,kb->ab", om_i, ei, ei)
                + jnp.einsum("k,ka,kb->ab", om_o, eo, eo)
            )
            ell = (
                Lzu
                + P @ B
                + jnp.einsum("k,ka,k->a", om_i, ei, pi_)
                + jnp.einsum("k,ka,k->a", om_o, eo, po_)
            )
            rho = Luu + jnp.sum(om_i * pi_**2) + jnp.sum(om_o * po_**2)
            return base, ell, rho

        base, ell, rho = zpart(a, P)
        f_Pi = base - jnp.outer(ell, ell) / rho - lam * P
        # Policy evaluation of the candidate's own feedback v = g_i y, uhat = gh_i xhat + h_i.
        gi = g_s[i]
        K_own = jnp.stack([gh_s[i], h_s[i]])
        f_alpha_L = (
            2 * (a_y + b_y * gi) * aL
            + Lyy
            + 2 * Lyv * gi
            + Lvv * gi**2
            + aL * jnp.sum(w_all * (s_all + p_all * gi) ** 2)
            - lam * aL
        )
        Ac = A + jnp.outer(B, K_own)
        eci = ei + pi_[:, None] * K_own[None, :]
        eco = eo + po_[:, None] * K_own[None, :]
        om_i, om_o = wi * aL, wo * PL[0, 0]
        f_Pi_L = (
            Ac.T @ PL
            + PL @ Ac
            + Lzz
            + jnp.outer(Lzu, K_own)
            + jnp.outer(K_own, Lzu)
            + Luu * jnp.outer(K_own, K_own)
            + jnp.einsum("k,ka,kb->ab", om_i, eci, eci)
            + jnp.einsum("k,ka,kb->ab", om_o, eco, eco)
            - lam * PL
        )
        return f_alpha, f_Pi, f_alpha_L, f_Pi_L

    over_players = jax.vmap(one, in_axes=(None, None, None, None, 0, 0, 0, 0, 0))
    over_regimes = jax.vmap(over_players, in_axes=(0, 0, 0, 0, None, 0, 0, 0, 0))
    f = over_regimes(co, *gains, jnp.arange(n), alpha, Pi, alpha_L, Pi_L)
    Q = game.generator
    coupled = (
        f[0] + Q @ alpha,
        f[1] + jnp.einsum("st,tnab->snab", Q, Pi),
        f[2] + Q @ alpha_L,
        f[3] + jnp.einsum("st,tnab->snab", Q, Pi_L),
    )
    # The equations read -dV/dt = f; return dV/dt.
    return jax.tree.map(jnp.negative, coupled)


@persistent_jit
def _certify(game: LQGame, candidate: RiccatiSolution, controller, max_steps):
    K, n = game.num_regimes, game.n
    dt = game.t0.dtype
    x, xh, one = jnp.array([1.0, 1, 0], dt), jnp.array([0.0, 1, 0], dt), jnp.array([0.0, 0, 1], dt)
    G = jax.vmap(
        lambda s: jax.vmap(lambda i: _terminal_matrix(game.terminal, s, i, x, xh, one))(
            jnp.arange(n)
        )
    )(jnp.arange(K))  # (K, n, 3, 3) over (y, xhat, 1)
    alpha_T = G[:, :, 0, 0]
    Pi_T = G[:, :, 1:, 1:]
    sol = checked_solution(
        solve_ode(
            _br_rhs,
            (alpha_T, Pi_T, alpha_T, Pi_T),
            game.t1,
            game.t0,
            (game, candidate),
            stepsize_controller=controller,
            max_steps=max_steps,
        ),
        lambda sol: "the best-response Riccati equations of the certificate have no solution",
        "the best-response Riccati equations of the certificate have no solution on the horizon",
    )
    alpha, Pi, alpha_L, Pi_L = (v[-1] for v in sol.ys)
    d = game.x0 - game.xhat0
    z0 = jnp.stack([game.xhat0, jnp.ones_like(game.xhat0)])

    def value(a, P):
        return a / 2 * d**2 + 0.5 * jnp.einsum("a,snab,b->sn", z0, P, z0)

    br, cand = value(alpha, Pi), value(alpha_L, Pi_L)
    formula = candidate.costs()
    return certificate(br, cand, formula, "cost")


def nash_gap(
    candidate: RiccatiSolution,
    game: LQGame | None = None,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> NashCertificate:
    r"""Best-response certificate of a candidate equilibrium of a general game.

    For each player, freeze the others at the candidate feedback and solve the player's
    single-agent problem by the generic matrix Riccati equations of the module docstring.

    **Arguments:**

    - `candidate`: a [`RiccatiSolution`][] whose feedback is tested.
    - `game`: the game to test it in (default: the candidate's own game).
    - `stepsize_controller`, `max_steps`: step control of the independent solve (default
      `PIDController(rtol=1e-10, atol=1e-10)`).

    **Returns:**

    A [`NashCertificate`][] per initial regime and player (costs, lower is better):
    the best-response value, the value the candidate feedback actually costs, the
    candidate's value formula, and the relative gap
    $(J^{cand}-J^{BR})/\max(|J^{BR}|,|J^{cand}|) \ge 0$.
    """
    if stepsize_controller is None:
        stepsize_controller = default_controller(1e-10, 1e-10)
    game = candidate.game if game is None else game
    return _certify(game, candidate, stepsize_controller, max_steps)


# ----------------------------------------------------------------------------------------
# Forward moments and brute force.

FeedbackFn = Callable[[Array], tuple[Array, Array, Array]]


def _forward_rhs(t, y, args):
    game, feedback = args
    M, _ = y  # M: (n, K, 3, 3) discounted moments per player's discount; costs: (n,)
    co = game.at(t)
    g, gh, h = feedback(t)  # each (K, n)
    n = game.n
    dt = M.dtype
    e = [_unit(k, 3, dt) for k in range(3)]  # over Z = (y, xhat, 1)
    x = e[0] + e[1]

    def regime(co_s, g_s, gh_s, h_s, M_s):
        U = _times(g_s, e[0]) + _times(gh_s, e[1]) + _times(h_s, e[2])  # (n, 3)
        Uh = _times(gh_s, e[1]) + _times(h_s, e[2])

        def form(aff: Affine | tuple):
            const, ax, axh, au, auh = aff
            return _times(const, e[2]) + _times(ax, x) + _times(axh, e[1]) + au @ U + auh @ Uh

        dr = co_s.dynamics.drift
        lb = form((dr.const, dr.x, dr.xhat, dr.u, dr.uhat))
        mean_mask = jnp.array([0.0, 1.0, 1.0], dt)
        F = jnp.stack([lb * (1 - mean_mask), lb * mean_mask, jnp.zeros(3, dt)])
        idio, com = channels(co_s)
        li = form(idio[:5])  # (C, 3)
        lo = form(com[:5])
        Di = jnp.stack([li, jnp.zeros_like(li), jnp.zeros_like(li)], axis=1)  # (C, 3, 3)
        Do = jnp.stack(
            [lo * (1 - mean_mask)[None, :], lo * mean_mask[None, :], jnp.zeros_like(lo)], axis=1
        )
        lam = co_s.cost.lam  # (n,)

        def per_player(Mi, i):
            dM = (
                F @ Mi
                + Mi @ F.T
                + jnp.einsum("k,kab,bc,kdc->ad", idio.weight, Di, Mi, Di)
                + jnp.einsum("k,kab,bc,kdc->ad", com.weight, Do, Mi, Do)
                - lam[i] * Mi
            )
            L = _running_cost_matrix(co_s.cost, i, x, e[1], e[2], U[i], Uh[i])
            return dM, 0.5 * jnp.sum(L * Mi)

        return jax.vmap(per_player)(M_s, jnp.arange(n))

    dM, run = jax.vmap(regime, in_axes=(0, 0, 0, 0, 1), out_axes=(1, 1))(co, g, gh, h, M)
    # Probability flows into regime s from s' at rate q_{s's}.
    dM = dM + jnp.einsum("ts,ntab->nsab", game.generator, M)
    return dM, jnp.sum(run, axis=1)


def _forward_cost(game: LQGame, feedback: FeedbackFn, stepsize_controller, dt0, max_steps):
    K, n = game.num_regimes, game.n
    d = game.x0 - game.xhat0
    dt = game.t0.dtype
    Z0 = jnp.array([[d**2, 0, 0], [0, game.xhat0**2, game.xhat0], [0, game.xhat0, 1.0]], dt)
    M0 = jnp.zeros((n, K, 3, 3), dt).at[:, game.regime0].set(Z0)
    sol = checked_solution(
        solve_ode(
            _forward_rhs,
            (M0, jnp.zeros(n, dt)),
            game.t0,
            game.t1,
            (game, feedback),
            stepsize_controller=stepsize_controller,
            dt0=dt0,
            max_steps=max_steps,
        ),
        lambda sol: "the forward moment equations have no solution on the horizon",
        "the forward moment equations have no solution on the horizon",
    )
    M1, running = (v[-1] for v in sol.ys)
    e = jnp.eye(3, dtype=dt)
    x, xh, one = e[0] + e[1], e[1], e[2]
    G = jax.vmap(
        lambda s: jax.vmap(lambda i: _terminal_matrix(game.terminal, s, i, x, xh, one))(
            jnp.arange(n)
        )
    )(jnp.arange(K))  # (K, n, 3, 3)
    terminal = 0.5 * jnp.einsum("snab,nsab->n", G, M1)
    return running + terminal


@persistent_jit
def _policy_cost_jit(game, candidate, controller, max_steps):
    return _forward_cost(game, lambda t: _gains_tuple(candidate, t), controller, None, max_steps)


def policy_cost(
    candidate: RiccatiSolution,
    game: LQGame | None = None,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> Float[Array, " n"]:
    r"""Expected cost of every player when all play the candidate's feedback, from the
    game's initial regime, by the forward moment equations (module docstring).

    **Arguments:** `candidate`, `game` (default: the candidate's), tolerances.

    **Returns:** the costs, shape `(n,)`; equal to `candidate.cost()` when the candidate's
    value formula is right.
    """
    if stepsize_controller is None:
        stepsize_controller = default_controller(1e-10, 1e-10)
    game = candidate.game if game is None else game
    return _policy_cost_jit(game, candidate, stepsize_controller, max_steps)
