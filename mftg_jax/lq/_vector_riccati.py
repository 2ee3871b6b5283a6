r"""Equilibrium of the vector-state LQ game: matrix Riccati equations (docs/vector_lq.md).

Per regime, player $i$'s cost value is $\tfrac12y^\top P_iy + \tfrac12\hat x^\top\bar P_i\hat x
+ \gamma_i^\top\hat x + \delta_i$, $y = x - \hat x$. Stack all noise channels $k$ (Brownian
motions with weight $w_k = 1$, marks with $w_k = \nu_k$), write $\hat Z = Z + \bar Z$ and
$\Omega_{ik} = w_kP_i$ for idiosyncratic channels, $w_k\bar P_i$ for common ones. The
equilibrium feedback is $u_i = K_iy + \hat K_i\hat x + k_i$, where at every time the gains
solve the block linear systems (one for the deviation, one for the mean)

$$\big(r_i + G_{ii}\big)K_i + \textstyle\sum_{j\ne i}G_{ij}K_j = -\big(\epsilon_{i1}^\top
  + B_i^\top P_i + \sum_k w_kZ_{ik}^\top P_iX_k\big),\quad
  G_{ij} = \textstyle\sum_k w_kZ_{ik}^\top P_iZ_{jk},$$
$$\big(\hat r_i + \bar G_{ii}\big)[\hat K_i, k_i] + \textstyle\sum_{j\ne i}\bar G_{ij}
  [\hat K_j, k_j] = -\big[\hat\epsilon_{i1}^\top + \hat B_i^\top\bar P_i + \sum_k\hat Z_{ik}^\top
  \Omega_{ik}\hat X_k,\ \hat\epsilon_{i2} + \hat B_i^\top\gamma_i + \sum_k\hat Z_{ik}^\top
  \Omega_{ik}c_k\big],\quad \bar G_{ij} = \textstyle\sum_k\hat Z_{ik}^\top\Omega_{ik}\hat Z_{jk}$$

($X_k$ the channel's state loading, $c_k$ its constant, hats: $\hat X = X + \bar X$,
$\hat\epsilon = \epsilon + \bar\epsilon$, $\hat r = r + \bar r$, $\hat q = q + \bar q$). With the
closed-loop $A^c = A + \sum_jB_jK_j$, $S_k = X_k + \sum_jZ_{jk}K_j$, $\hat A^c = \hat A
+ \sum_j\hat B_j\hat K_j$, $b^c = c + \sum_j\hat B_jk_j$, $E_k = \hat X_k + \sum_j\hat Z_{jk}
\hat K_j$, $F_k = c_k + \sum_j\hat Z_{jk}k_j$ and $(\mathcal QV)(s) = \sum_{s'}q_{ss'}V(s')$:

$$\begin{aligned}
-\dot P_i &= -\lambda_iP_i + \mathcal QP_i + q_i + K_i^\top r_iK_i + \epsilon_{i1}K_i
  + K_i^\top\epsilon_{i1}^\top + P_iA^c + A^{c\top}P_i + \textstyle\sum_kw_kS_k^\top P_iS_k\\
-\dot{\bar P}_i &= -\lambda_i\bar P_i + \mathcal Q\bar P_i + \hat q_i + \hat K_i^\top\hat r_i
  \hat K_i + \hat\epsilon_{i1}\hat K_i + \hat K_i^\top\hat\epsilon_{i1}^\top + \bar P_i\hat A^c
  + \hat A^{c\top}\bar P_i + \textstyle\sum_kE_k^\top\Omega_{ik}E_k\\
-\dot\gamma_i &= -\lambda_i\gamma_i + \mathcal Q\gamma_i + \hat\epsilon_{i3} + \hat K_i^\top
  \hat r_ik_i + \hat K_i^\top\hat\epsilon_{i2} + \hat\epsilon_{i1}k_i + \hat A^{c\top}\gamma_i
  + \bar P_ib^c + \textstyle\sum_kE_k^\top\Omega_{ik}F_k\\
-\dot\delta_i &= -\lambda_i\delta_i + \mathcal Q\delta_i + \tfrac12k_i^\top\hat r_ik_i
  + \hat\epsilon_{i2}^\top k_i + \gamma_i^\top b^c + \tfrac12\textstyle\sum_kF_k^\top
  \Omega_{ik}F_k
\end{aligned}$$

with $P_i(t_1) = q_{iT}$, $\bar P_i(t_1) = \hat q_{iT}$, $\gamma_i(t_1) = \hat\epsilon_{i3T}$,
$\delta_i(t_1) = 0$. The noise and the jumps enter $\delta$ through $F_k$ (the value's
constant) and, when they depend on the state or the controls, every equation.

The block systems of all regimes are solved as one block-diagonal system: a single unbatched
linear solve per evaluation of the vector field.
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np

from .._linalg import small_solve
from .._odes import checked_solution, last_accepted_time, solve_ode
from ._vector_game import VectorLQGame


class VectorValues(NamedTuple):
    """Per-regime, per-player value coefficients: `P`, `Pbar` `(K, n, d, d)`, `gamma`
    `(K, n, d)`, `delta` `(K, n)`."""

    P: Float[Array, "K n d d"]
    Pbar: Float[Array, "K n d d"]
    gamma: Float[Array, "K n d"]
    delta: Float[Array, "K n"]


class VectorGains(NamedTuple):
    r"""Equilibrium feedback $u_i = K_i(x-\hat x) + \hat K_i\hat x + k_i$ at one time:
    `deviation` $K$ and `mean` $\hat K$ `(K, n, m, d)`, `intercept` $k$ `(K, n, m)`."""

    deviation: Float[Array, "K n m d"]
    mean: Float[Array, "K n m d"]
    intercept: Float[Array, "K n m"]


class NoiseChannels(NamedTuple):
    """All noise channels of every regime stacked: idiosyncratic Brownian, idiosyncratic
    marks, common Brownian, common marks. `weight` is 1 or the intensity; `common` 0 or 1."""

    const: Array  # (K, C, d)
    x: Array  # (K, C, d, d)
    xhat: Array  # (K, C, d, d)
    u: Array  # (K, C, n, d, m)
    uhat: Array  # (K, C, n, d, m)
    weight: Array  # (K, C)
    common: Array  # (K, C)


def noise_channels(game: VectorLQGame) -> NoiseChannels:
    """The game's noise channels stacked along one axis (see [`NoiseChannels`][])."""
    dyn = game.dynamics
    fams = (dyn.diffusion, dyn.jumps.size, dyn.common_diffusion, dyn.common_jumps.size)
    K = game.num_regimes
    dt = dyn.drift.const.dtype
    ones = [jnp.ones((K, dyn.diffusion.const.shape[1]), dt), dyn.jumps.intensity]
    ones += [jnp.ones((K, dyn.common_diffusion.const.shape[1]), dt), dyn.common_jumps.intensity]
    flags = [jnp.zeros_like(w) if f < 2 else jnp.ones_like(w) for f, w in enumerate(ones)]
    cat = lambda k: jnp.concatenate([getattr(a, k) for a in fams], axis=1)  # noqa: E731
    return NoiseChannels(
        *(cat(k) for k in ("const", "x", "xhat", "u", "uhat")),
        jnp.concatenate(ones, axis=1),
        jnp.concatenate(flags, axis=1),
    )


def block_diagonal_solve(M: Array, rhs: Array) -> Array:
    """Solve the systems `M[b] X[b] = rhs[b]` (`M (B, p, p)`, `rhs (B, p, c)`) as one
    block-diagonal system, by the library's elimination without LAPACK calls (`_linalg`), so
    that it stays safe when a caller vmaps over times or games."""
    B, p, c = rhs.shape
    eye = jnp.eye(B, dtype=M.dtype)
    big = (eye[:, None, :, None] * M[:, :, None, :]).reshape(B * p, B * p)
    return small_solve(big, rhs.reshape(B * p, c)).reshape(B, p, c)


def _nash_solve(G: Array, own: Array, rhs: Array) -> Array:
    """Gains of all regimes from `sum_j (G[s,i,j] + delta_ij own[s,i]) X[s,j] = rhs[s,i]`.

    `G (K, n, n, m, m)`, `own (K, n, m, m)`, `rhs (K, n, m, c)`; returns `(K, n, m, c)`.
    """
    K, n, m, c = rhs.shape
    eye = jnp.eye(n, dtype=G.dtype)
    full = G + eye[None, :, :, None, None] * own[:, :, None, :, :]
    mat = jnp.swapaxes(full, 2, 3).reshape(K, n * m, n * m)
    return block_diagonal_solve(mat, rhs.reshape(K, n * m, c)).reshape(K, n, m, c)


def _sym(M: Array) -> Array:
    return M + jnp.swapaxes(M, -1, -2)


def gains_and_rates(game: VectorLQGame, y: VectorValues) -> tuple[VectorGains, VectorValues]:
    """Equilibrium gains and the local right-hand sides $H$ (so that $-\\dot V = H
    - \\lambda V + \\mathcal QV$) of all regimes, from the value coefficients `y`."""
    P, Pb, ga, de = y
    dyn, co = game.dynamics, game.cost
    dr = dyn.drift
    ch = noise_channels(game)
    w = ch.weight
    Z, X = ch.u, ch.x
    # Deviation part: every channel loads y with P_i.
    G = jnp.einsum("sc,scjap,sjab,sckbq->sjkpq", w, Z, P, Z)
    T = (
        jnp.swapaxes(co.eps1, -1, -2)
        + jnp.einsum("sjap,sjab->sjpb", dr.u, P)
        + jnp.einsum("sc,scjap,sjab,scbe->sjpe", w, Z, P, X)
    )
    Kd = _nash_solve(G, co.r, -T)
    Ac = dr.x + jnp.einsum("sjap,sjpb->sab", dr.u, Kd)
    S = X + jnp.einsum("scjap,sjpb->scab", Z, Kd)
    PA = jnp.einsum("sjab,sbe->sjae", P, Ac)
    cross = jnp.einsum("sjap,sjpb->sjab", co.eps1, Kd)
    H_P = (
        co.q
        + jnp.einsum("sjpa,sjpq,sjqb->sjab", Kd, co.r, Kd)
        + _sym(cross)
        + _sym(PA)
        + jnp.einsum("sc,scea,sjeb,scbf->sjaf", w, S, P, S)
    )
    # Conditional-mean part: idiosyncratic channels weigh with P_i, common ones with Pbar_i.
    Om = jnp.einsum("sc,sjab->sjcab", w * (1 - ch.common), P) + jnp.einsum(
        "sc,sjab->sjcab", w * ch.common, Pb
    )
    Zh, Xh = ch.u + ch.uhat, ch.x + ch.xhat
    Bh = dr.u + dr.uhat
    rh, e1h = co.r + co.rbar, co.eps1 + co.eps1bar
    e2h, e3h, qh = co.eps2 + co.eps2bar, co.eps3 + co.eps3bar, co.q + co.qbar
    Gb = jnp.einsum("scjap,sjcab,sckbq->sjkpq", Zh, Om, Zh)
    R1 = (
        jnp.swapaxes(e1h, -1, -2)
        + jnp.einsum("sjap,sjab->sjpb", Bh, Pb)
        + jnp.einsum("scjap,sjcab,scbe->sjpe", Zh, Om, Xh)
    )
    R0 = (
        e2h
        + jnp.einsum("sjap,sja->sjp", Bh, ga)
        + jnp.einsum("scjap,sjcab,scb->sjp", Zh, Om, ch.const)
    )
    sol = _nash_solve(Gb, rh, -jnp.concatenate([R1, R0[..., None]], axis=-1))
    Kh, kh = sol[..., :-1], sol[..., -1]
    Ahc = dr.x + dr.xhat + jnp.einsum("sjap,sjpb->sab", Bh, Kh)
    bc = dr.const + jnp.einsum("sjap,sjp->sa", Bh, kh)
    E = Xh + jnp.einsum("scjap,sjpb->scab", Zh, Kh)
    F = ch.const + jnp.einsum("scjap,sjp->sca", Zh, kh)
    PbA = jnp.einsum("sjab,sbe->sjae", Pb, Ahc)
    H_Pb = (
        qh
        + jnp.einsum("sjpa,sjpq,sjqb->sjab", Kh, rh, Kh)
        + _sym(jnp.einsum("sjap,sjpb->sjab", e1h, Kh))
        + _sym(PbA)
        + jnp.einsum("scea,sjceb,scbf->sjaf", E, Om, E)
    )
    H_ga = (
        e3h
        + jnp.einsum("sjpa,sjpq,sjq->sja", Kh, rh, kh)
        + jnp.einsum("sjpa,sjp->sja", Kh, e2h)
        + jnp.einsum("sjap,sjp->sja", e1h, kh)
        + jnp.einsum("sba,sjb->sja", Ahc, ga)
        + jnp.einsum("sjab,sb->sja", Pb, bc)
        + jnp.einsum("scea,sjceb,scb->sja", E, Om, F)
    )
    H_de = (
        0.5 * jnp.einsum("sjp,sjpq,sjq->sj", kh, rh, kh)
        + jnp.einsum("sjp,sjp->sj", e2h, kh)
        + jnp.einsum("sja,sa->sj", ga, bc)
        + 0.5 * jnp.einsum("sca,sjcab,scb->sj", F, Om, F)
    )
    return VectorGains(Kd, Kh, kh), VectorValues(H_P, H_Pb, H_ga, H_de)


def vector_field(t, y: VectorValues, game: VectorLQGame) -> VectorValues:
    """$\\dot V = \\lambda V - H - \\mathcal QV$ for all four value coefficients."""
    _, H = gains_and_rates(game, y)
    lam = game.cost.lam
    Q = game.generator

    def rate(h, v):
        disc = lam.reshape(lam.shape + (1,) * (v.ndim - 2))
        return disc * v - h - jnp.tensordot(Q, v, axes=1)

    return VectorValues(*(rate(h, v) for h, v in zip(H, y)))


def terminal_values(game: VectorLQGame) -> VectorValues:
    """$(P, \\bar P, \\gamma, \\delta)(t_1) = (q_T, q_T + \\bar q_T, \\epsilon_{3T}
    + \\bar\\epsilon_{3T}, 0)$."""
    te = game.terminal
    return VectorValues(te.q, te.q + te.qbar, te.eps3 + te.eps3bar, jnp.zeros(te.q.shape[:2]))


class VectorRiccatiSolution(eqx.Module):
    """Dense solution of a vector game's Riccati system (from [`solve_vector`][])."""

    game: VectorLQGame
    solution: diffrax.Solution

    def evaluate(self, t: ArrayLike) -> VectorValues:
        """$(P, \\bar P, \\gamma, \\delta)(t)$ at a scalar time."""
        return _evaluate(self.solution, jnp.asarray(t, dtype=float))

    def gains(self, t: ArrayLike) -> VectorGains:
        """Equilibrium gains at a scalar time `t` (see [`VectorGains`][])."""
        return _gains(self, jnp.asarray(t, dtype=float))

    def gains_on(self, ts: ArrayLike) -> VectorGains:
        """Equilibrium gains on a time grid `ts (T,)`, leading axis `T` (computed one time
        after another, never as a batched linear solve)."""
        return _gains_on(self, jnp.asarray(ts, dtype=float))

    def controls(self, t: ArrayLike, x: ArrayLike, xhat: ArrayLike, s: ArrayLike) -> Array:
        r"""Equilibrium controls $u_i = K_i(x-\hat x) + \hat K_ix + k_i$ in regime `s`,
        shape `(n, m)` for `x`, `xhat` of shape `(d,)`."""
        g = self.gains(t)
        x, xhat = jnp.asarray(x), jnp.asarray(xhat)
        return (
            jnp.einsum("jpa,a->jp", g.deviation[s], x - xhat)
            + jnp.einsum("jpa,a->jp", g.mean[s], xhat)
            + g.intercept[s]
        )

    def costs(self) -> Float[Array, "K n"]:
        r"""Equilibrium cost of every player from every initial regime, `(K, n)`:
        $\tfrac12y_0^\top P y_0 + \tfrac12\hat x_0^\top\bar P\hat x_0 + \gamma^\top\hat x_0
        + \delta$ at $t_0$."""
        return _costs(self)

    def cost(self) -> Float[Array, " n"]:
        """Equilibrium cost of every player from the initial regime, `(n,)`."""
        return self.costs()[self.game.regime0]


@eqx.filter_jit
def _costs(sol: VectorRiccatiSolution) -> Array:
    g = sol.game
    v = sol.solution.evaluate(g.t0)
    y0 = g.x0 - g.xhat0
    return (
        0.5 * jnp.einsum("a,sjab,b->sj", y0, v.P, y0)
        + 0.5 * jnp.einsum("a,sjab,b->sj", g.xhat0, v.Pbar, g.xhat0)
        + jnp.einsum("sja,a->sj", v.gamma, g.xhat0)
        + v.delta
    )


@eqx.filter_jit
def _evaluate(solution: diffrax.Solution, t) -> VectorValues:
    return solution.evaluate(t)


def _gains_unjitted(sol: VectorRiccatiSolution, t) -> VectorGains:
    return gains_and_rates(sol.game, sol.solution.evaluate(t))[0]


_gains = eqx.filter_jit(_gains_unjitted)


@eqx.filter_jit
def _gains_on(sol: VectorRiccatiSolution, ts) -> VectorGains:
    return jax.lax.map(lambda t: _gains_unjitted(sol, t), ts)


_DENSE = diffrax.SaveAt(t1=True, dense=True)


def solve_vector(
    game: VectorLQGame,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    max_steps: int = 4096,
) -> VectorRiccatiSolution:
    r"""Solve a vector game's matrix Riccati system backwards from $t_1$ (module docstring).

    The Nash gains are solved from their block linear systems inside the vector field. One
    jit-compiled diffrax program through the library's `solve_ode`.

    **Arguments:**

    - `game`: a [`VectorLQGame`][mftg_jax.lq.VectorLQGame].
    - `solver`, `stepsize_controller` (default `PIDController(rtol=1e-8, atol=1e-8)`),
      `adjoint`, `max_steps`: as for `diffrax.diffeqsolve`.

    **Returns:** a [`VectorRiccatiSolution`][mftg_jax.lq.VectorRiccatiSolution] with dense
    output.

    **Raises:** [`RiccatiExplosionError`][mftg_jax.RiccatiExplosionError] when the solution
    blows up or a gain system is singular.
    """
    sol = solve_ode(
        vector_field,
        terminal_values(game),
        game.t1,
        game.t0,
        game,
        solver=solver,
        stepsize_controller=stepsize_controller,
        adjoint=adjoint,
        saveat=_DENSE,
        max_steps=max_steps,
    )
    sol = checked_solution(
        sol,
        lambda sol: _explain(game, sol),
        "vector Riccati solution fails on the horizon (blow-up or a singular gain system)",
    )
    return VectorRiccatiSolution(game, sol)


def _explain(game: VectorLQGame, sol: diffrax.Solution) -> str:
    t_last, _ = last_accepted_time(sol, float(game.t1))
    if bool(np.all(np.asarray(sol.result == diffrax.RESULTS.max_steps_reached))):
        return (
            f"vector Riccati solution needs more than max_steps steps (reached t = "
            f"{t_last:.6g} integrating back from t1 = {float(game.t1):g}): raise max_steps, "
            "shorten the horizon or relax the tolerances"
        )
    return (
        f"vector Riccati solution fails at t = {t_last:.6g} before reaching t0 = "
        f"{float(game.t0):g} (integrating back from t1 = {float(game.t1):g}): it blows up, "
        "or a players' gain system is singular (control-dependent noise with a non-convex "
        "best response). A negative weight q, a long horizon or an unstable drift cause this."
    )
