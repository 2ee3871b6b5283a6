r"""Equilibrium of the general LQ mean-field-type game: per-regime Riccati system.

Derived from the HJB by the direct method (`docs/general_lq.md`). Per regime $s$ the cost
value of player $i$ is $\tfrac12\alpha_i(x-\hat x)^2 + \tfrac12\beta_i\hat x^2 + \gamma_i\hat x
+ \delta_i$. Write $y = x - \hat x$, $\hat z_{j2} = z_{j2} + \bar z_{j2}$,
$\hat z_1 = z_1 + \bar z_1$, and give every noise channel $k$ (idiosyncratic Brownian, each
idiosyncratic mark, common Brownian, each common mark) its weight $w_k$ (1 or $\nu_m$) and
its conditional-mean weight $\omega_{ik} = w_k\alpha_i$ (idiosyncratic) or $w_k\beta_i$
(common). The equilibrium feedback is

$$u_i = \hat u_i - \tfrac{\tau_i}{c_i}(x-\hat x),\qquad
  \hat u_i = -\tfrac{\bar\tau_{i1}\hat x + \bar\tau_{i0}}{\bar c_i},$$

$c_i = r_i + \alpha_i\sum_k w_k z_{ik2}^2$, $\bar c_i = r_i + \bar r_i + \sum_k\omega_{ik}
\hat z_{ik2}^2$, where the gains solve, at every time and regime, the linear systems (slides,
equation (9), corrected)

$$\tau_i + \sum_{j\ne i}\tfrac{\alpha_i G_{ij}}{c_j}\tau_j = \epsilon_{i1}
   + \alpha_i\big(b_{i2} + \textstyle\sum_k w_k z_{k1} z_{ik2}\big),\quad
  G_{ij} = \textstyle\sum_k w_k z_{ik2}z_{jk2},$$
$$\bar\tau_{il} + \sum_{j\ne i}\tfrac{\bar G_{ij}}{\bar c_j}\bar\tau_{jl} = \bar v_{il},\quad
  \bar G_{ij} = \textstyle\sum_k\omega_{ik}\hat z_{ik2}\hat z_{jk2},$$
$\bar v_{i1} = \hat\epsilon_{i1} + \beta_i\hat b_{i2} + \sum_k\omega_{ik}\hat z_{ik2}\hat z_{k1}$,
$\bar v_{i0} = \hat\epsilon_{i2} + \gamma_i\hat b_{i2} + \sum_k\omega_{ik}\hat z_{ik2}z_{k0}$.
With the others' gains $g_j = -\tau_j/c_j$, $\hat g_j = -\bar\tau_{j1}/\bar c_j$,
$h_j = -\bar\tau_{j0}/\bar c_j$ and
$a_i = b_1 + \sum_{j\ne i}b_{j2}g_j$, $S_{ik} = z_{k1} + \sum_{j\ne i}z_{jk2}g_j$,
$E^b_i = \hat b_1 + \sum_{j\ne i}\hat b_{j2}\hat g_j$, $F^b_i = b_0 + \sum_{j\ne i}\hat b_{j2}h_j$,
$E_{ik} = \hat z_{k1} + \sum_{j\ne i}\hat z_{jk2}\hat g_j$,
$F_{ik} = z_{k0} + \sum_{j\ne i}\hat z_{jk2}h_j$ and $(\mathcal Q f)(s) = \sum_{s'}
q_{ss'}(f(s') - f(s))$:

$$\begin{aligned}
\dot\alpha_i &= \lambda_i\alpha_i - \mathcal Q\alpha_i - 2a_i\alpha_i
  - \alpha_i\textstyle\sum_k w_k S_{ik}^2 - q_i + \tau_i^2/c_i, & \alpha_i(t_1) &= q_{iT}\\
\dot\beta_i &= \lambda_i\beta_i - \mathcal Q\beta_i - \hat q_i - 2\beta_iE^b_i
  - \textstyle\sum_k\omega_{ik}E_{ik}^2 + \bar\tau_{i1}^2/\bar c_i, & \beta_i(t_1) &= \hat q_{iT}\\
\dot\gamma_i &= \lambda_i\gamma_i - \mathcal Q\gamma_i - \hat\epsilon_{i3} - \beta_iF^b_i
  - \gamma_iE^b_i - \textstyle\sum_k\omega_{ik}E_{ik}F_{ik}
  + \bar\tau_{i1}\bar\tau_{i0}/\bar c_i, & \gamma_i(t_1) &= \hat\epsilon_{i3T}\\
\dot\delta_i &= \lambda_i\delta_i - \mathcal Q\delta_i - \gamma_iF^b_i
  - \tfrac12\textstyle\sum_k\omega_{ik}F_{ik}^2 + \tfrac12\bar\tau_{i0}^2/\bar c_i,
  & \delta_i(t_1) &= 0
\end{aligned}$$

(hats on cost coefficients: $\hat q = q + \bar q$ etc.). The noisy cost-measurement terms
$\xi$ do not appear: they are martingale increments.
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np

from .._linalg import small_solve
from .._odes import checked_solution, last_accepted_time, solve_ode, step_budget_message
from .._validation import check_instance, check_time
from ._game import Affine, Coefficients, LQGame


class RiccatiValues(NamedTuple):
    """Per-regime, per-player value coefficients, each of shape `(K, n)`."""

    alpha: Float[Array, " K n"]
    beta: Float[Array, " K n"]
    gamma: Float[Array, " K n"]
    delta: Float[Array, " K n"]


class Gains(NamedTuple):
    r"""Equilibrium feedback coefficients at one time, each of shape `(K, n)`.

    $u_i = \hat g_i\hat x + h_i + g_i(x - \hat x)$ in regime $s$: `deviation` $g = -\tau/c$,
    `mean_slope` $\hat g = -\bar\tau_1/\bar c$, `mean_intercept` $h = -\bar\tau_0/\bar c$;
    also $\tau$, $c$, $\bar\tau_1$, $\bar\tau_0$, $\bar c$.
    """

    deviation: Float[Array, " K n"]
    mean_slope: Float[Array, " K n"]
    mean_intercept: Float[Array, " K n"]
    tau: Float[Array, " K n"]
    c: Float[Array, " K n"]
    taubar1: Float[Array, " K n"]
    taubar0: Float[Array, " K n"]
    cbar: Float[Array, " K n"]


class Channels(NamedTuple):
    """Noise channels of one regime stacked: Brownian first, then the marks."""

    const: Array  # (C,)
    x: Array  # (C,)
    xhat: Array  # (C,)
    u: Array  # (C, n)
    uhat: Array  # (C, n)
    weight: Array  # (C,)


def channels(co: Coefficients) -> tuple[Channels, Channels]:
    """Idiosyncratic and common channels, `(..., C)` and `(..., C, n)` (any leading axes)."""
    dyn = co.dynamics

    def stack(brown: Affine, jumps) -> Channels:
        size = jumps.size
        scal = [
            jnp.concatenate([getattr(brown, k)[..., None], getattr(size, k)], axis=-1)
            for k in ("const", "x", "xhat")
        ]
        vec = [
            jnp.concatenate([getattr(brown, k)[..., None, :], getattr(size, k)], axis=-2)
            for k in ("u", "uhat")
        ]
        one = jnp.ones_like(brown.const)[..., None]
        return Channels(*scal, *vec, jnp.concatenate([one, jumps.intensity], axis=-1))

    return stack(dyn.diffusion, dyn.jumps), stack(dyn.common_diffusion, dyn.common_jumps)


def _others(M: Array, g: Array) -> Array:
    """$\\sum_{j \\ne i} M_{..j} g_j$ for every $i$: total minus own term, shape `(..., n)`."""
    return (M @ g)[..., None] - M * jnp.broadcast_to(g, M.shape)


def _offdiag(G: Array) -> Array:
    return G - jnp.diag(jnp.diag(G))


def _regime(drift, idio: Channels, com: Channels, cost, alpha, beta, gamma, delta):
    """Gains and local (uncoupled) time derivatives in one regime; all per-player `(n,)`."""
    n = alpha.shape[-1]
    eye = jnp.eye(n, dtype=alpha.dtype)
    nan = jnp.asarray(jnp.nan, dtype=alpha.dtype)
    # Deviation part: the own control loadings z_{ik2} of every channel.
    Pi, Po, wi, wo = idio.u, com.u, idio.weight, com.weight
    c = cost.r + alpha * (wi @ Pi**2 + wo @ Po**2)
    # A non-positive curvature means no best response exists: fail the step (diagnosed later).
    c = jnp.where(c > 0, c, nan)
    G = Pi.T @ (wi[:, None] * Pi) + Po.T @ (wo[:, None] * Po)
    A = eye + alpha[:, None] * _offdiag(G) / c[None, :]
    v = cost.eps1 + alpha * (drift.u + (wi * idio.x) @ Pi + (wo * com.x) @ Po)
    tau = small_solve(A, v)
    g = -tau / c
    a = drift.x + _others(drift.u, g)
    Si = idio.x[:, None] + _others(Pi, g)
    So = com.x[:, None] + _others(Po, g)
    d_alpha = (
        cost.lam * alpha - 2 * a * alpha - alpha * (wi @ Si**2 + wo @ So**2) - cost.q + tau**2 / c
    )
    # Conditional-mean part: idiosyncratic channels weigh with alpha, common ones with beta.
    Phi, Pho = idio.u + idio.uhat, com.u + com.uhat
    x1i, x1o = idio.x + idio.xhat, com.x + com.xhat
    cbar = cost.r + cost.rbar + alpha * (wi @ Phi**2) + beta * (wo @ Pho**2)
    cbar = jnp.where(cbar > 0, cbar, nan)
    Gi = Phi.T @ (wi[:, None] * Phi)
    Go = Pho.T @ (wo[:, None] * Pho)
    Abar = eye + _offdiag(alpha[:, None] * Gi + beta[:, None] * Go) / cbar[None, :]
    bh2 = drift.u + drift.uhat
    vbar1 = (
        cost.eps1
        + cost.eps1bar
        + beta * bh2
        + alpha * ((wi * x1i) @ Phi)
        + beta * ((wo * x1o) @ Pho)
    )
    vbar0 = (
        cost.eps2
        + cost.eps2bar
        + gamma * bh2
        + alpha * ((wi * idio.const) @ Phi)
        + beta * ((wo * com.const) @ Pho)
    )
    taubar = small_solve(Abar, jnp.stack([vbar1, vbar0], axis=-1))
    tb1, tb0 = taubar[:, 0], taubar[:, 1]
    gh, h = -tb1 / cbar, -tb0 / cbar
    Eb = drift.x + drift.xhat + _others(bh2, gh)
    Fb = drift.const + _others(bh2, h)
    Ei = x1i[:, None] + _others(Phi, gh)
    Fi = idio.const[:, None] + _others(Phi, h)
    Eo = x1o[:, None] + _others(Pho, gh)
    Fo = com.const[:, None] + _others(Pho, h)
    wEE = alpha * (wi @ Ei**2) + beta * (wo @ Eo**2)
    wEF = alpha * (wi @ (Ei * Fi)) + beta * (wo @ (Eo * Fo))
    wFF = alpha * (wi @ Fi**2) + beta * (wo @ Fo**2)
    d_beta = cost.lam * beta - cost.q - cost.qbar - 2 * beta * Eb - wEE + tb1**2 / cbar
    d_gamma = (
        cost.lam * gamma
        - cost.eps3
        - cost.eps3bar
        - beta * Fb
        - gamma * Eb
        - wEF
        + tb1 * tb0 / cbar
    )
    d_delta = cost.lam * delta - gamma * Fb - wFF / 2 + tb0**2 / (2 * cbar)
    gains = Gains(g, gh, h, tau, c, tb1, tb0, cbar)
    return gains, RiccatiValues(d_alpha, d_beta, d_gamma, d_delta)


def _per_regime(game: LQGame, t, y: RiccatiValues):
    co = game.at(t)
    idio, com = channels(co)
    return jax.vmap(_regime)(co.dynamics.drift, idio, com, co.cost, *y)


def equilibrium_gains(game: LQGame, t, values: RiccatiValues) -> Gains:
    """The equilibrium feedback coefficients at time `t` given the value coefficients."""
    return _per_regime(game, t, values)[0]


def vector_field(t, y: RiccatiValues, game: LQGame) -> RiccatiValues:
    """Right-hand side of the per-regime Riccati system (module docstring)."""
    _, local = _per_regime(game, t, y)
    Q = game.generator
    # (Q f)(s) = sum_{s'} q_{ss'} f(s') is the coupling sum_{s'} q_{ss'}(f(s') - f(s)), since
    # the rows of Q sum to zero.
    return jax.tree.map(lambda d, f: d - Q @ f, local, y)


def terminal_values(game: LQGame) -> RiccatiValues:
    """$(\\alpha, \\beta, \\gamma, \\delta)(t_1) = (q_T, q_T + \\bar q_T,
    \\epsilon_{3T} + \\bar\\epsilon_{3T}, 0)$."""
    te = game.terminal
    return RiccatiValues(te.q, te.q + te.qbar, te.eps3 + te.eps3bar, jnp.zeros_like(te.q))


class RiccatiSolution(eqx.Module):
    """Dense solution of the general game's Riccati system (from [`solve`][])."""

    game: LQGame
    solution: diffrax.Solution

    def evaluate(self, t: ArrayLike) -> RiccatiValues:
        """$(\\alpha, \\beta, \\gamma, \\delta)(t)$, each `(K, n)`, for `t` in the horizon."""
        check_time("t", t, self.game.t0, self.game.t1)
        return self.solution.evaluate(t)

    def gains(self, t: ArrayLike) -> Gains:
        """The equilibrium feedback coefficients at time `t` (see [`Gains`][])."""
        return equilibrium_gains(self.game, t, self.evaluate(t))

    def controls(self, t: ArrayLike, x: ArrayLike, xhat: ArrayLike, s: ArrayLike) -> Array:
        r"""Equilibrium controls $u_i = \hat g_i\hat x + h_i + g_i(x - \hat x)$ in regime `s`,
        shape `(..., n)` for scalars or arrays `x`, `xhat`, `s` of one shape."""
        gn = self.gains(t)
        x, xhat = jnp.asarray(x)[..., None], jnp.asarray(xhat)[..., None]
        return gn.mean_slope[s] * xhat + gn.mean_intercept[s] + gn.deviation[s] * (x - xhat)

    def costs(self) -> Float[Array, " K n"]:
        r"""Equilibrium cost of every player from every initial regime, shape `(K, n)`:
        $\tfrac12\alpha(x_0-\hat x_0)^2 + \tfrac12\beta\hat x_0^2 + \gamma\hat x_0 + \delta$
        at $t_0$ (slides, equation (4))."""
        g = self.game
        v = self.evaluate(g.t0)
        d = g.x0 - g.xhat0
        return v.alpha / 2 * d**2 + v.beta / 2 * g.xhat0**2 + v.gamma * g.xhat0 + v.delta

    def cost(self) -> Float[Array, " n"]:
        """Equilibrium cost of every player from the game's initial regime, shape `(n,)`."""
        return self.costs()[..., self.game.regime0, :]

    @property
    def stats(self) -> dict:
        """diffrax's step statistics."""
        return self.solution.stats


_DENSE = diffrax.SaveAt(t1=True, dense=True)


def solve(
    game: LQGame,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    max_steps: int = 4096,
) -> RiccatiSolution:
    r"""Solve the general game's per-regime Riccati system backwards from $t_1$.

    The gains $\tau$, $\bar\tau_1$, $\bar\tau_0$ are solved from their linear systems inside
    the vector field (module docstring). One jit-compiled diffrax program; works under
    `jax.vmap`, `jax.jit` and `jax.grad`.

    **Arguments:**

    - `game`: an [`LQGame`][mftg_jax.lq.LQGame].
    - `solver`, `stepsize_controller`, `adjoint`, `max_steps`: as for
      [`mftg_jax.price.solve_riccati`][] (default `PIDController(rtol=1e-8, atol=1e-8)`).

    **Returns:**

    A [`RiccatiSolution`][mftg_jax.lq.RiccatiSolution] with dense output.

    **Raises:**

    [`RiccatiExplosionError`][mftg_jax.RiccatiExplosionError] when the solution blows up, a
    gain system is singular or a best response loses convexity ($c_i \le 0$ or
    $\bar c_i \le 0$); the message says which.
    """
    check_instance("game", game, LQGame)

    def run(max_steps):
        return solve_ode(
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

    def budget(sol):
        if np.ndim(game.t1) > 0:
            return None
        horizon = f"of the horizon [t0, t1] = [{float(game.t0):g}, {float(game.t1):g}]"
        return step_budget_message(sol, max_steps, float(game.t1), float(game.t0), horizon)

    sol = checked_solution(
        run(max_steps),
        lambda sol: _explain(game, sol),
        "general Riccati solution fails on the horizon (blow-up, singular gain system or "
        "loss of convexity); call mftg_jax.lq.solve outside jit/vmap for a diagnosis",
        budget,
    )
    return RiccatiSolution(game, sol)


def _explain(game: LQGame, sol: diffrax.Solution) -> str:
    if np.ndim(game.t1) > 0:
        return (
            "general Riccati solution fails for at least one game of the batch; solve them "
            "one by one for a diagnosis"
        )
    t_last, any_step = last_accepted_time(sol, float(game.t1))
    vals = sol.evaluate(t_last) if any_step else terminal_values(game)
    where = (
        f"at t = {t_last:.6g} before reaching t0 = {float(game.t0):g} (integrating back from "
        f"t1 = {float(game.t1):g})"
    )
    if not all(np.all(np.isfinite(np.asarray(v))) for v in vals):
        return f"general Riccati solution is not finite {where}"
    co = game.at(t_last)
    idio, com = channels(co)
    c_raw = co.cost.r + vals.alpha * (
        jnp.einsum("kc,kcn->kn", idio.weight, idio.u**2)
        + jnp.einsum("kc,kcn->kn", com.weight, com.u**2)
    )
    if np.any(np.asarray(c_raw) <= 0):
        s, i = np.argwhere(np.asarray(c_raw) <= 0)[0]
        return (
            f"best response of player {i} in regime {s} is not convex {where}: "
            f"c = r + alpha * (control loadings of the noise)^2 = {float(c_raw[s, i]):.4g} "
            "<= 0 (a negative alpha with control-dependent noise); reduce the control "
            "loadings or raise r"
        )
    gains, _ = _per_regime(game, t_last, vals)
    if not np.all(np.isfinite(np.asarray(gains.cbar))):
        s, i = np.argwhere(~np.isfinite(np.asarray(gains.cbar)))[0]
        return (
            f"conditional-mean best response of player {i} in regime {s} is not convex "
            f"{where}: cbar = r + rbar + alpha, beta terms <= 0"
        )
    if not all(np.all(np.isfinite(np.asarray(x))) for x in gains):
        return (
            f"the gain system A tau = v (or Abar taubar = vbar) is singular {where}: the "
            "players' best responses to control-dependent noise have no unique solution"
        )
    names = ("alpha", "beta", "gamma", "delta")
    worst, idx, size = "alpha", (0, 0), -1.0
    for name, v in zip(names, vals):
        v = np.abs(np.asarray(v))
        if v.max() > size:
            worst, idx, size = (
                name,
                tuple(int(k) for k in np.unravel_index(v.argmax(), v.shape)),
                float(v.max()),
            )
    return (
        f"general Riccati solution explodes {where}; {worst} of player {idx[1]} in regime "
        f"{idx[0]} diverges (|{worst}| = {size:.3g}). A negative terminal or running weight "
        "q, a long horizon, an unstable drift or large control-dependent noise cause this."
    )
