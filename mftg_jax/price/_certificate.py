r"""Best-response (Nash-gap) certificate for a candidate equilibrium of the price game.

Freeze every producer $j \ne i$ at the candidate feedback
$u_j = -(\eta\alpha_j/r_j)(p-\hat p) + k_j\hat p - m_j$. Producer $i$'s problem is then a
single-agent linear-quadratic control problem. With $y = p - \hat p$, $v = u_i - \hat u_i$ and
$E[\hat p u_i] = E[\hat p\hat u_i]$, $E[u_i^2] = E[\hat u_i^2] + E[v^2]$, it is written
generically with state $X = (y, \hat p, 1)$ and control $w = (v, \hat u_i)$:

$$dX = (A(t)X + Bw)\,dt + \text{noise with covariance rate } \Sigma,\qquad
  \max E\Big[\int e^{-\lambda_i t}\big(X^\top N w + \tfrac12 w^\top R_w w\big)dt
            + e^{-\lambda_i t_1}\tfrac12 X^\top G X\Big]$$

$A = \begin{pmatrix}-\eta(1-\eta A_{-i}) & 0 & 0\\ 0 & -\eta(1+K_{-i}) & \eta(a+M_{-i})
\\ 0&0&0\end{pmatrix}$, $B = -\eta\begin{pmatrix}1&0\\0&1\\0&0\end{pmatrix}$,
$N_{21} = 1$, $N_{31} = -c_i$, $R_w = -\mathrm{diag}(r_i, r_i+\bar r_i)$,
$G$ the terminal values ($\tfrac12X^\top GX = \tfrac{\alpha_i}2y^2 + \tfrac{\beta_i}2\hat p^2
+ \gamma_i\hat p + \delta_i$ at $t_1$: $G = -q\,e_1e_1^\top$ for the terminal penalty),
$\Sigma = \mathrm{diag}(\sigma^2+\nu E Y^2, \sigma_o^2+\nu_o E Y_o^2, 0)$.

The value is $\tfrac12 X^\top P X$ with the generic matrix Riccati equation
$$-\dot P + \lambda P = A^\top P + PA - (N+PB)R_w^{-1}(N+PB)^\top
   + \mathrm{tr}(P\Sigma)\,e_3e_3^\top,\quad P(t_1) = G,$$
derived here from the HJB of this generic problem, not from the game's Riccati system. The
candidate's own value, with its feedback $w = K_iX$, solves the linear (Lyapunov) equation
with $A+BK_i$ and running reward $\tfrac12X^\top(NK_i+K_i^\top N^\top+K_i^\top R_wK_i)X$.
The relative Nash gap is $(J^{BR}_i - J^{cand}_i)/\max(|J^{BR}_i|, |J^{cand}_i|)$; it
vanishes (to solver tolerance) exactly when the candidate is an equilibrium.
"""

import diffrax
import jax.numpy as jnp

from .._certify import (
    best_response_values,
    certificate,
    check_best_response,
    NashCertificate,
    PlayerProblem,
)
from .._odes import default_controller
from .._programs import persistent_jit
from ._riccati import AbstractRiccatiSolution, terminal_values


def _player_problem(t, i, riccati: AbstractRiccatiSolution) -> PlayerProblem:
    game = riccati.game
    mk, pr = game.market, game.producers
    eta = mk.eta
    v = riccati.evaluate(t)
    k, m = riccati.gains(t)
    a_r = v.alpha / pr.r
    A_mi = jnp.sum(a_r) - a_r[i]
    K_mi = jnp.sum(k) - k[i]
    M_mi = jnp.sum(m) - m[i]
    zero = jnp.zeros_like(eta)
    A = jnp.array(
        [
            [-eta * (1 - eta * A_mi), zero, zero],
            [zero, -eta * (1 + K_mi), eta * (mk.a(t) + M_mi)],
            [zero, zero, zero],
        ]
    )
    B = -eta * jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    N = jnp.array([[zero, zero], [zero, zero + 1.0], [zero, -pr.c[i]]])
    Rw = -jnp.diag(jnp.stack([pr.r[i], pr.R[i]]))
    gain = jnp.array([[-eta * v.alpha[i] / pr.r[i], zero, zero], [zero, k[i], -m[i]]])
    noise = jnp.diag(
        jnp.stack([game.noise.idiosyncratic_variance_rate, game.noise.common_variance_rate, zero])
    )
    return PlayerProblem(A, B, N, Rw, gain, noise, pr.lam[i])


@persistent_jit
def _certify(riccati: AbstractRiccatiSolution, controller, max_steps):
    game = riccati.game
    mk = game.market
    n = game.n
    tv = terminal_values(game)
    G = (
        jnp.zeros((n, 3, 3))
        .at[:, 0, 0]
        .set(tv.alpha)
        .at[:, 1, 1]
        .set(tv.beta)
        .at[:, 1, 2]
        .set(tv.gamma)
        .at[:, 2, 1]
        .set(tv.gamma)
        .at[:, 2, 2]
        .set(2 * tv.delta)
    )
    X0 = jnp.stack([mk.p0 - mk.phat0, mk.phat0, jnp.ones_like(mk.p0)])
    br, cand = best_response_values(
        _player_problem,
        riccati,
        n,
        G,
        X0,
        mk.t0,
        mk.t1,
        stepsize_controller=controller,
        max_steps=max_steps,
    )
    return certificate(br, cand, riccati.revenue(), "revenue")


def nash_gap(
    riccati: AbstractRiccatiSolution,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> NashCertificate:
    r"""Best-response certificate of a candidate equilibrium (module docstring).

    **Arguments:**

    - `riccati`: the candidate, any [`AbstractRiccatiSolution`][] (e.g. from
      [`solve_riccati`][]); its feedback is frozen for the other producers.
    - `stepsize_controller`, `max_steps`: step control of the independent matrix Riccati
      solve (default `PIDController(rtol=1e-10, atol=1e-10)`).

    **Returns:**

    A [`NashCertificate`][]: each producer's best-response value, the value its candidate
    feedback actually earns (policy evaluation), the candidate's value-function formula and
    the relative gap $(J^{BR}-J^{cand})/\max(|J^{BR}|,|J^{cand}|) \ge 0$.
    """
    controller = (
        default_controller(1e-10, 1e-10) if stepsize_controller is None else stepsize_controller
    )
    cert = _certify(riccati, controller, max_steps)
    check_best_response(cert.best_response_value)
    return cert
