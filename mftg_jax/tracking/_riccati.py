r"""The equilibrium of the regulated-price game: Riccati equations with the target in the
linear term, integrated backwards from $t_1$ by the library's one ODE entry point.

Issuer $i$'s value is $\alpha_i(p_i-\hat p_i)^2 + \hat p^\top P_i\hat p + 2g_i^\top\hat p + d_i$
(docs/tracking.md). The deviation part decouples per asset,

$$\dot\alpha_i = -q_i + 2\eta_i\alpha_i + \eta_i^2\alpha_i^2/r_i,\qquad \alpha_i(t_1) = q^T_i,$$

and the feedback is $u_i = \hat u_i + (\eta_i\alpha_i/r_i)(p_i - \hat p_i)$,
$\hat u_i = (\eta_i/R_i)\big((P_i\hat p)_i + g_{ii}\big)$, $R_i = r_i + \bar r_i$.
With $K_{j\cdot} = (\eta_j/R_j)P_{j,j\cdot}$, $k_j = (\eta_j/R_j)g_{jj}$,
$F = \mathrm{diag}(\eta)(A - I - K)$, $f = \mathrm{diag}(\eta)(D - S - k)$, $Q_i = q_i + \bar q_i$:

$$\begin{aligned}
\dot P_i &= -\big[Q_ie_ie_i^\top + R_iK_{i\cdot}^\top K_{i\cdot} + P_iF + F^\top P_i\big],
 & P_i(t_1) &= Q^T_ie_ie_i^\top,\\
\dot g_i &= -\big[-Q_ip_{tp,i}e_i + R_ik_iK_{i\cdot}^\top + F^\top g_i + P_if\big],
 & g_i(t_1) &= -Q^T_ip_{tp,i}(t_1)e_i,\\
\dot d_i &= -\big[Q_ip_{tp,i}^2 + R_ik_i^2 + 2g_i^\top f + \Sigma_o\mathbf 1^\top P_i\mathbf 1
 + \Sigma_i\alpha_i\big], & d_i(t_1) &= Q^T_ip_{tp,i}(t_1)^2,
\end{aligned}$$

$\Sigma_i = \sigma_i^2 + \nu E Y^2$, $\Sigma_o = \sigma_o^2 + \nu_o E Y_o^2$. Without interaction
($A = 0$) $P_i = \beta_ie_ie_i^\top$, $g_i = \gamma_ie_i$ and the system is O(n):

$$\dot\beta = -Q + 2\eta\beta + \eta^2\beta^2/R,\quad
  \dot\gamma = Qp_{tp} + \eta\gamma - \eta\beta(D - S) + \eta^2\beta\gamma/R,\quad
  \dot\delta = -Qp_{tp}^2 + \eta^2\gamma^2/R - 2\eta\gamma(D-S) - \Sigma\alpha - \Sigma_o\beta.$$
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array
import numpy as np

from .._odes import checked_solution, largest_entry, last_accepted_time, solve_ode
from .._validation import is_concrete
from ._model import TrackingGame


class TrackingValues(NamedTuple):
    """The value coefficients at one time: `alpha (n,)`; `P` (`(n,)` = $\\beta$ without
    interaction, else `(n, n, n)`); `g` (`(n,)` = $\\gamma$, else `(n, n)`); `d (n,)`."""

    alpha: Array
    P: Array
    g: Array
    d: Array


def _vf_independent(t, y, game: TrackingGame):
    alpha, beta, gamma, delta = y
    c, nz = game.costs, game.noise
    eta = game.eta
    ptp = game.target(t)
    net = game.net_demand(t)
    Q, R = c.Q, c.R
    d_alpha = -c.q + 2 * eta * alpha + eta**2 * alpha**2 / c.r
    d_beta = -Q + 2 * eta * beta + eta**2 * beta**2 / R
    d_gamma = Q * ptp + eta * gamma - eta * beta * net + eta**2 * beta * gamma / R
    d_delta = (
        -Q * ptp**2
        + eta**2 * gamma**2 / R
        - 2 * eta * gamma * net
        - nz.idiosyncratic_variance_rate * alpha
        - nz.common_variance_rate * beta
    )
    return d_alpha, d_beta, d_gamma, d_delta


def _mean_closed_loop(game: TrackingGame, t, P, g):
    """`K (n, n)`, `k (n,)`, `F (n, n)`, `f (n,)` of the interacting route (module docstring)."""
    eta, R = game.eta, game.costs.R
    w = eta / R
    K = w[:, None] * jnp.einsum("jjk->jk", P)
    k = w * jnp.einsum("jj->j", g)
    n = game.n
    F = eta[:, None] * (game.cross_matrix() - jnp.eye(n, dtype=eta.dtype) - K)
    f = eta * (game.net_demand(t) - k)
    return K, k, F, f


def _vf_interacting(t, y, game: TrackingGame):
    alpha, P, g, d = y
    c, nz = game.costs, game.noise
    eta = game.eta
    n = game.n
    ptp = game.target(t)
    Q, R = c.Q, c.R
    K, k, F, f = _mean_closed_loop(game, t, P, g)
    eye = jnp.eye(n, dtype=eta.dtype)
    E = eye[:, :, None] * eye[:, None, :]  # e_i e_i^T, (n, n, n)
    d_alpha = -c.q + 2 * eta * alpha + eta**2 * alpha**2 / c.r
    PF = jnp.einsum("iab,bc->iac", P, F)
    d_P = -(
        Q[:, None, None] * E
        + R[:, None, None] * K[:, :, None] * K[:, None, :]
        + PF
        + jnp.swapaxes(PF, -1, -2)
    )
    d_g = -(
        -(Q * ptp)[:, None] * eye
        + (R * k)[:, None] * K
        + jnp.einsum("ba,ib->ia", F, g)
        + jnp.einsum("iab,b->ia", P, f)
    )
    d_d = -(
        Q * ptp**2
        + R * k**2
        + 2 * g @ f
        + nz.common_variance_rate * jnp.einsum("iab->i", P)
        + nz.idiosyncratic_variance_rate * alpha
    )
    return d_alpha, d_P, d_g, d_d


def terminal_values(game: TrackingGame, interacting: bool) -> TrackingValues:
    """The terminal conditions at $t_1$ (module docstring)."""
    c = game.costs
    ptp = game.target(game.t1)
    QT = c.Q_terminal
    if not interacting:
        return TrackingValues(c.q_terminal, QT, -QT * ptp, QT * ptp**2)
    n = game.n
    eye = jnp.eye(n, dtype=QT.dtype)
    P = QT[:, None, None] * eye[:, :, None] * eye[:, None, :]
    return TrackingValues(c.q_terminal, P, -(QT * ptp)[:, None] * eye, QT * ptp**2)


def _lead(x, ref):
    """`x (n,)` with leading unit axes to the rank of `ref` (explicit broadcasting)."""
    return jnp.reshape(x, (1,) * (jnp.ndim(ref) - jnp.ndim(x)) + jnp.shape(x))


class TrackingSolution(eqx.Module):
    """The equilibrium of a [`TrackingGame`][mftg_jax.tracking.TrackingGame] (from
    [`solve`][mftg_jax.tracking.solve]): dense Riccati values, feedback and costs."""

    game: TrackingGame
    solution: diffrax.Solution
    interacting: bool = eqx.field(static=True)

    def evaluate(self, t) -> TrackingValues:
        """The value coefficients at time `t`
        ([`TrackingValues`][mftg_jax.tracking.TrackingValues]); a solution without dense output
        (`solve(..., dense=False)`) has $t_0$ only."""
        if self.solution.interpolation is None:
            if is_concrete(t) and float(t) != float(self.game.t0):
                raise ValueError(
                    f"this solution has no dense output (dense=False): only t0 = "
                    f"{float(self.game.t0):g} is available, got t = {float(t):g}"
                )
            return TrackingValues(*(y[-1] for y in self.solution.ys))
        return TrackingValues(*self.solution.evaluate(t))

    def deviation_gain(self, t) -> Array:
        r"""$\eta_i\alpha_i(t)/r_i$: the feedback on $p_i - \hat p_i$, shape `(n,)`."""
        return self.game.eta * self.evaluate(t).alpha / self.game.costs.r

    def mean_gains(self, t) -> tuple[Array, Array]:
        r"""$(K, k)$ with $\hat u = K\hat p + k$: `K (n,)` (diagonal) without interaction,
        `(n, n)` with it; `k (n,)`."""
        v = self.evaluate(t)
        if not self.interacting:
            w = self.game.eta / self.game.costs.R
            return w * v.P, w * v.g
        K, k, _, _ = _mean_closed_loop(self.game, t, v.P, v.g)
        return K, k

    def mean_control(self, t, phat) -> Array:
        r"""$\hat u(t, \hat p)$ for `phat (..., n)`."""
        K, k = self.mean_gains(t)
        if not self.interacting:
            return _lead(K, phat) * phat + _lead(k, phat)
        return jnp.einsum("ij,...j->...i", K, phat) + _lead(k, phat)

    def controls(self, t, p, phat) -> Array:
        r"""The equilibrium feedback $u_i = \hat u_i + (\eta_i\alpha_i/r_i)(p_i - \hat p_i)$."""
        phat = jnp.broadcast_to(phat, jnp.broadcast_shapes(jnp.shape(p), jnp.shape(phat)))
        gain = self.deviation_gain(t)
        return self.mean_control(t, phat) + _lead(gain, p) * (p - phat)

    def mean_drift(self, t, phat, uhat) -> Array:
        r"""$\eta\,(D - S + A\hat p - \hat p - \hat u)$ for `phat`, `uhat (..., n)`."""
        g = self.game
        coupling = jnp.einsum("ij,...j->...i", g.cross_matrix(), phat) if self.interacting else 0
        return _lead(g.eta, phat) * (_lead(g.net_demand(t), phat) + coupling - phat - uhat)

    def cost(self) -> Array:
        r"""Equilibrium expected cost of every issuer at $t_0$, shape `(n,)`:
        $\hat p_0^\top P_i\hat p_0 + 2g_i^\top\hat p_0 + d_i$ ($p_0$ is deterministic)."""
        v = self.evaluate(self.game.t0)
        z = self.game.p0
        if not self.interacting:
            return v.P * z**2 + 2 * v.g * z + v.d
        return jnp.einsum("a,iab,b->i", z, v.P, z) + 2 * v.g @ z + v.d


def _explain(game: TrackingGame, sol: diffrax.Solution) -> str:
    if sol.interpolation is None:
        return (
            f"the tracking Riccati system has no solution on [{float(game.t0):g}, "
            f"{float(game.t1):g}] (result {sol.result}); check the step budget"
        )
    t, any_step = last_accepted_time(sol, float(game.t1))
    if not any_step:
        return "the tracking Riccati system failed at t1 (non-finite terminal values)"
    names = ("alpha", "P/beta", "g/gamma", "d/delta")
    vals = [np.asarray(x) for x in sol.evaluate(t)] if hasattr(sol, "evaluate") else []
    worst, idx, size = largest_entry(vals, names) if vals else ("?", (0,), float("nan"))
    return (
        f"the tracking Riccati system has no solution on [{float(game.t0):g}, "
        f"{float(game.t1):g}]: it stops at t = {t:g} with {worst}{list(idx)} = {size:g} "
        f"(result {sol.result}); check the step budget and that costs.q, costs.q + costs.qbar "
        "and the terminal weights are >= 0"
    )


def solve(
    game: TrackingGame,
    *,
    interacting: bool | None = None,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    max_steps: int = 4096,
    dense: bool = True,
) -> TrackingSolution:
    r"""Integrate the equilibrium's Riccati system backwards from $t_1$ (module docstring).

    **Arguments:**

    - `game`: a [`TrackingGame`][mftg_jax.tracking.TrackingGame].
    - `interacting`: the route: `False` the O(n) decoupled system (needs `cross` zero),
      `True` the n-player game with the $n\times n$ matrices $P_i$ (O(n^3) memory);
      default `game.interacting`.
    - `solver`, `stepsize_controller` (default `PIDController(1e-8, 1e-8)`), `adjoint`,
      `max_steps`: as in [`mftg_jax.solve_ode`][].
    - `dense`: keep the dense output (values at every time; memory `max_steps x 4n x
      stages`). `False` keeps the values at $t_0$ only (costs, gains at $t_0$): the choice
      for thousands of assets, where the dense buffer dominates the run time.

    **Returns:** a [`TrackingSolution`][mftg_jax.tracking.TrackingSolution] with dense output.

    **Raises:** [`mftg_jax.RiccatiExplosionError`][] when the solve fails (with concrete
    values; under `jit` an equinox runtime error).
    """
    if interacting is None:
        interacting = game.interacting
    elif not interacting and game.interacting:
        raise ValueError("interacting=False needs cross = 0 (the assets interact)")
    vf = _vf_interacting if interacting else _vf_independent
    sol = solve_ode(
        vf,
        tuple(terminal_values(game, interacting)),
        game.t1,
        game.t0,
        game,
        solver=solver,
        stepsize_controller=stepsize_controller,
        adjoint=adjoint,
        saveat=diffrax.SaveAt(dense=dense, t1=True),
        max_steps=max_steps,
    )
    sol = checked_solution(
        sol,
        lambda s: _explain(game, s),
        "the tracking Riccati system has no solution on the horizon",
    )
    return TrackingSolution(game, sol, bool(interacting))
