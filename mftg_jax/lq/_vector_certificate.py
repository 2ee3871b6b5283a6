r"""Best-response certificate of a vector game's equilibrium, in matrix form.

Freeze every player $j \ne i$ at the candidate feedback $u_j = K_jy + \hat K_j\hat x + k_j$.
Player $i$'s problem is a single-agent LQ problem in $\xi = (y, \hat x, 1, v, \hat u_i)$,
$y = x - \hat x$, $v = u_i - \hat u_i$. Every coefficient of the state equation is a linear
map $\ell\,\xi$ into $\mathbb R^d$, assembled here generically from the raw coefficients (not
from the solver's closed-loop terms); the running cost is $\tfrac12\xi^\top L\xi$, whose
$(y, v)$-$(\hat x, 1, \hat u)$ cross block has zero conditional mean. With value
$\tfrac12y^\top Py + \tfrac12z^\top\Pi z$, $z = (\hat x, 1)$, the single-agent matrix
Riccati equations (per regime, $\mathcal Q$ the regime coupling, drift blocks $a, b$ on
$(y, v)$ and $\mathcal A, \mathcal B$ on $(z, \hat u)$, channel blocks $s_k, p_k$ and
$e_k, \hat p_k$) are

$$-\dot P + \lambda P = L_{yy} + a^\top P + Pa + \textstyle\sum_kw_ks_k^\top Ps_k
  + \mathcal QP - N\rho^{-1}N^\top,\quad N = L_{yv} + Pb + \textstyle\sum_kw_ks_k^\top Pp_k,
  \quad\rho = L_{vv} + \textstyle\sum_kw_kp_k^\top Pp_k,$$
$$-\dot\Pi + \lambda\Pi = L_{zz} + \mathcal A^\top\Pi + \Pi\mathcal A
  + \textstyle\sum_ke_k^\top\Omega_ke_k + \mathcal Q\Pi - \ell\hat\rho^{-1}\ell^\top,\quad
  \ell = L_{z\hat u} + \Pi\mathcal B + \textstyle\sum_ke_k^\top\Omega_k\hat p_k,\quad
  \hat\rho = L_{\hat u\hat u} + \textstyle\sum_k\hat p_k^\top\Omega_k\hat p_k$$

($\Omega_k = w_kP$ for idiosyncratic channels, $w_k\Pi_{\hat x\hat x}$ for common ones).
They give the best-response value and the best-response gains $-\rho^{-1}N^\top$,
$-\hat\rho^{-1}\ell^\top$; the same equations without the minimisation and with player $i$'s
own candidate feedback (Lyapunov equations) give the value its candidate feedback earns.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._certify import certificate, NashCertificate
from .._odes import checked_solution, default_controller, solve_ode
from ._vector_game import VectorLQGame
from ._vector_riccati import block_diagonal_solve, noise_channels, VectorRiccatiSolution


class MatrixCertificate(eqx.Module):
    """Best-response certificate of a vector game's candidate equilibrium.

    **Fields:**

    - `nash`: the [`NashCertificate`][mftg_jax.NashCertificate] of values per initial regime
      and player `(K, n)` (best response, candidate feedback's value, candidate formula, gap).
    - `gain_error`: per regime and player, the largest entry of the difference between the
      best-response gains $(K, \\hat K, k)$ and the candidate's at five equally spaced
      times of the horizon (ends included), `(K, n)`.
    """

    nash: NashCertificate
    gain_error: Array

    @property
    def max_gap(self) -> Array:
        """The largest relative value gap."""
        return self.nash.max_gap


def _sym(M):
    return M + jnp.swapaxes(M, -1, -2)


def _layout(d: int, m: int):
    """Slices of xi = (y, xhat, 1, v, uhat) and its size."""
    Y, XH, ONE = slice(0, d), slice(d, 2 * d), 2 * d
    V, UH = slice(2 * d + 1, 2 * d + 1 + m), slice(2 * d + 1 + m, 2 * d + 1 + 2 * m)
    return Y, XH, ONE, V, UH, 2 * d + 1 + 2 * m


def _units(d: int, m: int, dt):
    Y, XH, ONE, V, UH, D = _layout(d, m)
    eye_d, eye_m = jnp.eye(d, dtype=dt), jnp.eye(m, dtype=dt)
    X = jnp.zeros((d, D), dt).at[:, Y].set(eye_d).at[:, XH].set(eye_d)
    Xh = jnp.zeros((d, D), dt).at[:, XH].set(eye_d)
    one = jnp.zeros(D, dt).at[ONE].set(1.0)
    U = jnp.zeros((m, D), dt).at[:, V].set(eye_m).at[:, UH].set(eye_m)
    Uh = jnp.zeros((m, D), dt).at[:, UH].set(eye_m)
    return X, Xh, one, U, Uh


def _player_forms(dr, ch, gains, i, d, m):
    """Drift `(d, D)` and channel `(C, d, D)` forms over xi for player i in one regime."""
    Kd, Kh, kh = gains  # (n, m, d), (n, m, d), (n, m)
    n = Kd.shape[0]
    dt = Kd.dtype
    Y, XH, ONE, V, UH, D = _layout(d, m)
    X, Xh, one, Uown, Uhown = _units(d, m, dt)
    others = jnp.zeros((n, m, D), dt).at[:, :, Y].set(Kd).at[:, :, XH].set(Kh)
    others = others.at[:, :, ONE].set(kh)
    others_h = others.at[:, :, Y].set(0.0)
    mine = (jnp.arange(n) == i)[:, None, None]
    U = jnp.where(mine, jnp.broadcast_to(Uown, (n, m, D)), others)
    Uh = jnp.where(mine, jnp.broadcast_to(Uhown, (n, m, D)), others_h)

    def form(const, x, xhat, u, uhat):
        return (
            const[..., :, None] * jnp.broadcast_to(one, const.shape + (D,))
            + jnp.einsum("...ab,bD->...aD", x, X)
            + jnp.einsum("...ab,bD->...aD", xhat, Xh)
            + jnp.einsum("...jap,jpD->...aD", u, U)
            + jnp.einsum("...jap,jpD->...aD", uhat, Uh)
        )

    drift = form(dr.const, dr.x, dr.xhat, dr.u, dr.uhat)
    chan = form(ch.const, ch.x, ch.xhat, ch.u, ch.uhat)
    return drift, chan


def _running_matrix(c, d, m, dt):
    """$L$ of player i's running cost $\\tfrac12\\xi^\\top L\\xi$ (`c`: its cost leaves)."""
    X, Xh, one, U, Uh = _units(d, m, dt)

    def quad(F, W, G):
        return F.T @ W @ G

    def lin(F, v):
        return jnp.outer(F.T @ v, one)

    return (
        quad(X, c.q, X)
        + quad(Xh, c.qbar, Xh)
        + quad(U, c.r, U)
        + quad(Uh, c.rbar, Uh)
        + _sym(quad(X, c.eps1, U))
        + _sym(quad(Xh, c.eps1bar, Uh))
        + _sym(lin(U, c.eps2) + lin(Uh, c.eps2bar) + lin(X, c.eps3) + lin(Xh, c.eps3bar))
    )


def _terminal(game: VectorLQGame):
    """$P(t_1)$ `(K, n, d, d)` and $\\Pi(t_1)$ `(K, n, d+1, d+1)` of the terminal cost."""
    d, m = game.d, game.m
    te = game.terminal
    dt = te.q.dtype
    X, Xh, one, _, _ = _units(d, m, dt)
    X, Xh, one = X[:, : 2 * d + 1], Xh[:, : 2 * d + 1], one[: 2 * d + 1]

    def one_player(q, qbar, e3, e3bar):
        G = X.T @ q @ X + Xh.T @ qbar @ Xh
        return G + _sym(jnp.outer(X.T @ e3, one) + jnp.outer(Xh.T @ e3bar, one))

    G = jax.vmap(jax.vmap(one_player))(te.q, te.qbar, te.eps3, te.eps3bar)
    return G[..., :d, :d], G[..., d:, d:]


def _pieces(dr, ch, cost, gains, i, P, Pi, PL, PiL):
    """Player i's single-agent Riccati pieces in one regime (no linear solve here)."""
    d, m = P.shape[-1], cost.r.shape[-1]
    Y, XH, ONE, V, UH, D = _layout(d, m)
    Z = jnp.r_[jnp.arange(d, 2 * d), 2 * d]
    c = jax.tree.map(lambda a: a[i], cost)
    L = _running_matrix(c, d, m, P.dtype)
    drift, chan = _player_forms(dr, ch, gains, i, d, m)
    w, com = ch.weight, ch.common
    # Deviation problem in (y, v): every channel loads y.
    a, b = drift[:, Y], drift[:, V]
    s, p = chan[:, :, Y], chan[:, :, V]
    Lyy, Lyv, Lvv = L[Y, Y], L[Y, V], L[V, V]

    def dev(P):
        base = Lyy + _sym(P @ a) + jnp.einsum("c,cea,eb,cbf->af", w, s, P, s)
        N = Lyv + P @ b + jnp.einsum("c,cea,eb,cbp->ap", w, s, P, p)
        rho = Lvv + jnp.einsum("c,cap,ab,cbq->pq", w, p, P, p)
        return base, N, rho

    # Mean problem in z = (xhat, 1), control uhat.
    A = jnp.zeros((d + 1, d + 1), P.dtype).at[:d].set(drift[:, Z])
    B = jnp.zeros((d + 1, m), P.dtype).at[:d].set(drift[:, UH])
    e, ph = chan[:, :, Z], chan[:, :, UH]
    Lzz, Lzu, Luu = L[Z][:, Z], L[Z, UH], L[UH, UH]

    def mean(P, Pi):
        Om = (w * (1 - com))[:, None, None] * P[None] + (w * com)[:, None, None] * Pi[None, :d, :d]
        base = Lzz + _sym(Pi @ A) + jnp.einsum("cea,ceb,cbf->af", e, Om, e)
        ell = Lzu + Pi @ B + jnp.einsum("cea,ceb,cbp->ap", e, Om, ph)
        rho = Luu + jnp.einsum("cap,cab,cbq->pq", ph, Om, ph)
        return base, ell, rho

    base_P, N, rho = dev(P)
    base_Pi, ell, rhoh = mean(P, Pi)
    # Policy evaluation of the candidate's own feedback v = K y, uhat = Kz z.
    K = gains[0][i]
    Kz = jnp.concatenate([gains[1][i], gains[2][i][:, None]], axis=1)
    ev_P = _lyap_dev(Lyy, Lyv, Lvv, a, b, s, p, w, K, PL)
    ev_Pi = _lyap_mean(Lzz, Lzu, Luu, A, B, e, ph, w, com, Kz, PL, PiL, d)
    return base_P, N, rho, base_Pi, ell, rhoh, ev_P, ev_Pi


def _lyap_dev(Lyy, Lyv, Lvv, a, b, s, p, w, K, PL):
    ac = a + b @ K
    sc = s + jnp.einsum("cap,pb->cab", p, K)
    return (
        Lyy
        + _sym(Lyv @ K)
        + K.T @ Lvv @ K
        + _sym(PL @ ac)
        + jnp.einsum("c,cea,eb,cbf->af", w, sc, PL, sc)
    )


def _lyap_mean(Lzz, Lzu, Luu, A, B, e, ph, w, com, Kz, PL, PiL, d):
    Ac = A + B @ Kz
    ec = e + jnp.einsum("cap,pb->cab", ph, Kz)
    Om = (w * (1 - com))[:, None, None] * PL[None] + (w * com)[:, None, None] * PiL[None, :d, :d]
    return (
        Lzz
        + _sym(Lzu @ Kz)
        + Kz.T @ Luu @ Kz
        + _sym(PiL @ Ac)
        + jnp.einsum("cea,ceb,cbf->af", ec, Om, ec)
    )


def _all_pieces(game: VectorLQGame, candidate: VectorRiccatiSolution, t, y):
    g = candidate.gains(t)
    ch = noise_channels(game)
    players = jnp.arange(game.n)
    per_player = jax.vmap(_pieces, in_axes=(None, None, None, None, 0, 0, 0, 0, 0))
    per_regime = jax.vmap(per_player, in_axes=(0, 0, 0, 0, None, 0, 0, 0, 0))
    return per_regime(game.dynamics.drift, ch, game.cost, tuple(g), players, *y), g


def _minimisers(N, rho, ell, rhoh):
    """$\\rho^{-1}N^\\top$ and $\\hat\\rho^{-1}\\ell^\\top$ of all regimes and players, each as
    one block-diagonal solve."""
    K, n, m = rho.shape[:3]

    def solve(M, R):
        R = jnp.swapaxes(R, -1, -2)
        out = block_diagonal_solve(M.reshape(K * n, m, m), R.reshape(K * n, m, R.shape[-1]))
        return out.reshape(K, n, m, R.shape[-1])

    return solve(rho, N), solve(rhoh, ell)


def _rhs(t, y, args):
    game, candidate = args
    (base_P, N, rho, base_Pi, ell, rhoh, ev_P, ev_Pi), _ = _all_pieces(game, candidate, t, y)
    RN, Rl = _minimisers(N, rho, ell, rhoh)
    H = (
        base_P - jnp.einsum("snap,snpb->snab", N, RN),
        base_Pi - jnp.einsum("snap,snpb->snab", ell, Rl),
        ev_P,
        ev_Pi,
    )
    lam = game.cost.lam[..., None, None]
    Q = game.generator
    return tuple(lam * v - h - jnp.tensordot(Q, v, axes=1) for h, v in zip(H, y))


def _gain_error(game, candidate, t, y):
    """Largest entry of best-response gains minus the candidate's at time t, `(K, n)`."""
    (_, N, rho, _, ell, rhoh, _, _), g = _all_pieces(game, candidate, t, y)
    RN, Rl = _minimisers(N, rho, ell, rhoh)
    err_dev = jnp.max(jnp.abs(RN + g.deviation), axis=(-1, -2))
    cand = jnp.concatenate([g.mean, g.intercept[..., None]], axis=-1)
    return jnp.maximum(err_dev, jnp.max(jnp.abs(Rl + cand), axis=(-1, -2)))


_CHECK_TIMES = 5


@eqx.filter_jit
def _certify(game, candidate, controller, max_steps):
    P_T, Pi_T = _terminal(game)
    sol = checked_solution(
        solve_ode(
            _rhs,
            (P_T, Pi_T, P_T, Pi_T),
            game.t1,
            game.t0,
            (game, candidate),
            stepsize_controller=controller,
            saveat=diffrax.SaveAt(ts=jnp.linspace(game.t1, game.t0, _CHECK_TIMES)),
            max_steps=max_steps,
        ),
        lambda sol: "the best-response Riccati equations of the certificate have no solution",
        "the best-response Riccati equations of the certificate have no solution on the horizon",
    )
    errs = jax.lax.map(lambda a: _gain_error(game, candidate, a[0], a[1]), (sol.ts, sol.ys))
    P, Pi, PL, PiL = (v[-1] for v in sol.ys)
    y0 = game.x0 - game.xhat0
    z0 = jnp.concatenate([game.xhat0, jnp.ones((1,), game.xhat0.dtype)])

    def value(P, Pi):
        return 0.5 * jnp.einsum("a,snab,b->sn", y0, P, y0) + 0.5 * jnp.einsum(
            "a,snab,b->sn", z0, Pi, z0
        )

    nash = certificate(value(P, Pi), value(PL, PiL), candidate.costs(), "cost")
    return MatrixCertificate(nash, jnp.max(errs, axis=0))


def vector_nash_gap(
    candidate: VectorRiccatiSolution,
    game: VectorLQGame | None = None,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> MatrixCertificate:
    r"""Best-response certificate of a vector game's candidate equilibrium (module docstring).

    For each player, freeze the others at the candidate feedback and solve the player's
    single-agent problem by its own matrix Riccati equations; evaluate the candidate's own
    feedback by the Lyapunov equations; compare values and gains.

    **Arguments:**

    - `candidate`: a [`VectorRiccatiSolution`][mftg_jax.lq.VectorRiccatiSolution].
    - `game`: the game to test it in (default: the candidate's own).
    - `stepsize_controller`, `max_steps`: of the independent solve (default
      `PIDController(rtol=1e-10, atol=1e-10)`).

    **Returns:** a [`MatrixCertificate`][mftg_jax.lq.MatrixCertificate].
    """
    if stepsize_controller is None:
        stepsize_controller = default_controller(1e-10, 1e-10)
    game = candidate.game if game is None else game
    return _certify(game, candidate, stepsize_controller, max_steps)
