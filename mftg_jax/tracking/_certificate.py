r"""Best-response certificate of the regulated-price equilibrium, on the shared solver.

Freeze every other issuer at the candidate feedback. Issuer $i$ faces a single-agent LQ
problem with state $X = (y_i, \hat p, 1)$, $y_i = p_i - \hat p_i$ ($\hat p$ all $n$
conditional means with interaction, only $\hat p_i$ without), control
$(v_i, \hat u_i) = (u_i - \hat u_i, \hat u_i)$:

$$dy_i = -\eta_i(y_i + v_i)dt + \dots,\qquad
  d\hat p = \mathrm{diag}(\eta)\big[(A - I - K_{-i})\hat p + D - S - k_{-i} - \hat u_ie_i\big]dt
  + \dots$$

($K_{-i}, k_{-i}$: the others' mean feedback, row $i$ zero). The shared generic solver
[`mftg_jax._certify.best_response_values`][] has running reward $X^\top Nw + \tfrac12w^\top Rw$
and no state cost, so the state cost
$q_iy_i^2 + Q_i(\hat p_i - p_{tp,i})^2 = \tfrac12\|N_e^\top X\|^2$ is carried by two dummy
controls $w_e$ with $B_e = 0$ and weight $R_e = -1$: the stationary point in $w_e$ is
$w_e = N_e^\top X$, which adds exactly $\tfrac12X^\top N_eN_e^\top X$ to the Hamiltonian (a
maximum in $w_e$, the real controls still minimise; $R$ is block diagonal so the blocks do not
mix). The candidate's value is its policy evaluation with the same dummy gain. Both come from
the generic matrix Riccati / Lyapunov equations, independently of this family's system.
"""

import diffrax
import equinox as eqx
import jax.numpy as jnp

from .._certify import (
    best_response_values,
    certificate,
    check_best_response,
    NashCertificate,
    PlayerProblem,
)
from .._odes import default_controller
from ._riccati import TrackingSolution


def _state_cost_columns(d, iy, iz, q, Q, ptp, dtype):
    """$N_e$ `(d, 2)`: $\\sqrt{2q}e_y$ and $\\sqrt{2Q}(e_z - p_{tp}e_{\\rm const})$."""
    Ne = jnp.zeros((d, 2), dtype)
    Ne = Ne.at[iy, 0].set(jnp.sqrt(2 * q))
    Ne = Ne.at[iz, 1].set(jnp.sqrt(2 * Q))
    return Ne.at[d - 1, 1].set(-jnp.sqrt(2 * Q) * ptp)


def _assemble(A, Bc, Nc, Rc, Kc, Ne, noise):
    d = A.shape[0]
    dtype = A.dtype
    B = jnp.concatenate([Bc, jnp.zeros((d, 2), dtype)], 1)
    N = jnp.concatenate([Nc, Ne], 1)
    R = jnp.zeros((4, 4), dtype).at[:2, :2].set(Rc).at[2, 2].set(-1.0).at[3, 3].set(-1.0)
    K = jnp.concatenate([Kc, Ne.T], 0)
    return PlayerProblem(A, B, N, R, K, noise, jnp.zeros((), dtype))


def _problem_independent(t, i, sol: TrackingSolution) -> PlayerProblem:
    g = sol.game
    c, nz = g.costs, g.noise
    eta = g.eta[i]
    dtype = g.eta.dtype
    v = sol.evaluate(t)
    zero = jnp.zeros((), dtype)
    A = jnp.array([[-eta, zero, zero], [zero, -eta, eta * g.net_demand(t)[i]], [zero] * 3])
    Bc = jnp.array([[-eta, zero], [zero, -eta], [zero, zero]])
    Nc = jnp.zeros((3, 2), dtype)
    Rc = jnp.diag(jnp.stack([2 * c.r[i], 2 * c.R[i]]))
    w = eta / c.R[i]
    Kc = jnp.array([[eta * v.alpha[i] / c.r[i], zero, zero], [zero, w * v.P[i], w * v.g[i]]])
    Ne = _state_cost_columns(3, 0, 1, c.q[i], c.Q[i], g.target(t)[i], dtype)
    noise = jnp.diag(jnp.stack([nz.idiosyncratic_variance_rate[i], nz.common_variance_rate, zero]))
    return _assemble(A, Bc, Nc, Rc, Kc, Ne, noise)


def _problem_interacting(t, i, sol: TrackingSolution) -> PlayerProblem:
    g = sol.game
    c, nz = g.costs, g.noise
    n = g.n
    d = n + 2
    dtype = g.eta.dtype
    eta = g.eta
    v = sol.evaluate(t)
    K, k = sol.mean_gains(t)
    K_mi = K.at[i].set(0.0)
    k_mi = k.at[i].set(0.0)
    A = jnp.zeros((d, d), dtype)
    A = A.at[0, 0].set(-eta[i])
    A = A.at[1 : n + 1, 1 : n + 1].set(
        eta[:, None] * (g.cross_matrix() - jnp.eye(n, dtype=dtype) - K_mi)
    )
    A = A.at[1 : n + 1, d - 1].set(eta * (g.net_demand(t) - k_mi))
    Bc = jnp.zeros((d, 2), dtype).at[0, 0].set(-eta[i]).at[1 + i, 1].set(-eta[i])
    Nc = jnp.zeros((d, 2), dtype)
    Rc = jnp.diag(jnp.stack([2 * c.r[i], 2 * c.R[i]]))
    Kc = jnp.zeros((2, d), dtype)
    Kc = Kc.at[0, 0].set(eta[i] * v.alpha[i] / c.r[i])
    Kc = Kc.at[1, 1 : n + 1].set(K[i]).at[1, d - 1].set(k[i])
    Ne = _state_cost_columns(d, 0, 1 + i, c.q[i], c.Q[i], g.target(t)[i], dtype)
    noise = jnp.zeros((d, d), dtype).at[0, 0].set(nz.idiosyncratic_variance_rate[i])
    noise = noise.at[1 : n + 1, 1 : n + 1].set(nz.common_variance_rate)
    return _assemble(A, Bc, Nc, Rc, Kc, Ne, noise)


def _terminal(sol: TrackingSolution):
    g = sol.game
    c = g.costs
    n = g.n
    ptp1 = g.target(g.t1)
    QT = c.Q_terminal
    d = n + 2 if sol.interacting else 3
    iz = 1 + jnp.arange(n) if sol.interacting else jnp.ones((n,), int)
    G = jnp.zeros((n, d, d), g.eta.dtype)
    a = jnp.arange(n)
    G = G.at[a, 0, 0].set(2 * c.q_terminal)
    G = G.at[a, iz, iz].set(2 * QT)
    G = G.at[a, iz, d - 1].set(-2 * QT * ptp1)
    G = G.at[a, d - 1, iz].set(-2 * QT * ptp1)
    G = G.at[a, d - 1, d - 1].set(2 * QT * ptp1**2)
    return G


@eqx.filter_jit
def _certify(sol: TrackingSolution, controller, max_steps):
    g = sol.game
    n = g.n
    G = _terminal(sol)
    one = jnp.ones((1,), g.eta.dtype)
    zero = jnp.zeros((1,), g.eta.dtype)
    problem = _problem_interacting if sol.interacting else _problem_independent
    if sol.interacting:
        X0 = jnp.concatenate([zero, g.p0, one])
        br, cand = best_response_values(
            problem,
            sol,
            n,
            G,
            X0,
            g.t0,
            g.t1,
            stepsize_controller=controller,
            max_steps=max_steps,
        )
    else:
        # Each asset's own state (y_i, phat_i, 1): the start differs per player, so the
        # start is folded into the problem as a per-player scaling of the candidate values.
        br, cand = _independent_values(problem, sol, G, controller, max_steps)
    return certificate(br, cand, sol.cost(), "cost")


def _independent_values(problem, sol, G, controller, max_steps):
    import jax

    g = sol.game
    n = g.n

    def one(i):
        def prob(t, _j, model):
            return problem(t, i, model)

        Gi = G[i][None]
        X0 = jnp.stack([jnp.zeros((), g.eta.dtype), g.p0[i], jnp.ones((), g.eta.dtype)])
        br, cand = best_response_values(
            prob,
            sol,
            1,
            Gi,
            X0,
            g.t0,
            g.t1,
            stepsize_controller=controller,
            max_steps=max_steps,
        )
        return br[0], cand[0]

    return jax.vmap(one)(jnp.arange(n))


def nash_gap(
    sol: TrackingSolution,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> NashCertificate:
    r"""Best-response certificate of the equilibrium (module docstring): without interaction
    each issuer's optimality gap, with it the Nash gap.

    **Arguments:**

    - `sol`: a [`TrackingSolution`][mftg_jax.tracking.TrackingSolution] (the candidate).
    - `stepsize_controller`, `max_steps`: of the generic solve (default
      `PIDController(rtol=1e-10, atol=1e-10)`).

    **Returns:** a [`mftg_jax.NashCertificate`][] with `objective="cost"`: `gap >= 0` is the
    relative gain from deviating, zero to solver tolerance at the equilibrium.
    """
    controller = (
        default_controller(1e-10, 1e-10) if stepsize_controller is None else stepsize_controller
    )
    cert = _certify(sol, controller, max_steps)
    check_best_response(cert.best_response_value)
    return cert
