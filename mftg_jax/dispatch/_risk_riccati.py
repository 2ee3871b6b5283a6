r"""The risk-sensitive (exponential-of-quadratic) Riccati solution of the unbounded problem.

Without the bounds on $s$, with $x = e - \bar e$ and the ansatz
$V(t, x) = \tfrac12 P x^2 + \beta x + \gamma$, the HJB equation of
$\tfrac1\eta\log E e^{\eta L}$ (Jacobson; Whittle's risk-sensitive LQG),

$$V_t + \min_s\big[(a - s)V_x + \tfrac\kappa2(D - s)^2\big] + \tfrac q2 x^2
 + \tfrac{\sigma^2}2\big(V_{xx} + \eta V_x^2\big) = 0,$$

gives $s^* = D + V_x/\kappa$ and, with $\theta = 1/\kappa - \eta\sigma^2$,

$$\dot P = \theta P^2 - q,\quad \dot\beta = \theta P\beta - (a - D)P,\quad
\dot\gamma = -(a - D)\beta + \tfrac\theta2\beta^2 - \tfrac{\bar\sigma^2}2 P,$$

$P(t_1) = q^T$, $\beta(t_1) = \gamma(t_1) = 0$; $\bar\sigma^2 = \sigma^2$, or
$\sigma^2 + \nu E Y^2$ for $\eta = 0$. Noise enlarges the effective gain's cost: for
$\theta < 0$ ($\eta\sigma^2 > 1/\kappa$) backwards $P$ grows like $\tan$ and explodes at a finite
time-to-go (the *neurotic breakdown*: $E e^{\eta L} = \infty$ for every control);
[`breakdown_eta`][mftg_jax.dispatch.breakdown_eta] gives the threshold.

**Jumps.** With $\eta > 0$ and compensated compound-Poisson jumps the criterion is infinite
for every control: $k$ jumps in the last $\delta$ before $t_1$ (probability
$(\nu\delta)^k e^{-\nu\delta}/k!$) shift $e(t_1)$ by $\sum_{i \le k} Y_i$, and undoing
it costs at least $c\,(\sum_i Y_i)^2$ ($c = \min(q^T, \kappa/\delta)/2$), so
$E e^{\eta L} \ge \sum_k \frac{(\nu\delta)^k}{k!}E e^{\eta c (\sum_{i\le k} Y_i)^2} = \infty$
($e^{\eta c\mu^2k^2}$ outgrows $k!$ for a fixed size $\mu$; for normal sizes each term
with $2\eta c\,k\,\mathrm{var}\,Y \ge 1$ is already infinite). The exponential-of-quadratic
criterion and Poisson jumps do not go together: the jumps are exact here in the risk-neutral
case ($\eta = 0$, through $\nu E Y^2$) and rejected with an error for $\eta > 0$ (here and in
[`solve_hjb`][mftg_jax.dispatch.solve_hjb]).
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np
import optimistix as optx

from .._odes import RiccatiExplosionError, solve_ode
from ._matching import MatchingProblem


class RiskValues(NamedTuple):
    """$P$, $\\beta$, $\\gamma$ per station."""

    P: Float[Array, " n"]
    beta: Float[Array, " n"]
    gamma: Float[Array, " n"]


def check_jumps(problem: MatchingProblem) -> None:
    """Reject jumps with $\\eta > 0$: $E e^{\\eta L} = \\infty$ (module docstring)."""
    if problem.has_jumps and bool(np.any(np.asarray(problem.eta) > 0)):
        raise ValueError(
            "stations.jumps: with eta > 0, compound-Poisson jumps make E exp(eta L) infinite "
            "for every control (many jumps just before t1 cannot be undone and "
            "exp(eta c k^2) outgrows k!); use eta = 0 or no jumps"
        )


def _vector_field(t, y: RiskValues, problem: MatchingProblem) -> RiskValues:
    th = problem.theta
    drift = problem.arrival - problem.demand
    var = jnp.where(problem.eta > 0, problem.sigma**2, problem.variance_rate)
    P, b, _ = y
    return RiskValues(
        th * P * P - problem.q,
        th * P * b - drift * P,
        -drift * b + 0.5 * th * b * b - 0.5 * var * P,
    )


class RiskSensitiveSolution(eqx.Module):
    r"""The solved risk-sensitive Riccati system (dense in time).

    **Fields:** `problem` (the [`MatchingProblem`][mftg_jax.dispatch.MatchingProblem]),
    `solution` (the `diffrax.Solution`).
    """

    problem: MatchingProblem
    solution: diffrax.Solution

    def evaluate(self, t: ArrayLike) -> RiskValues:
        """$(P, \\beta, \\gamma)(t)$."""
        return RiskValues(*self.solution.evaluate(jnp.asarray(t, dtype=float)))

    def value(self, t: ArrayLike, e: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
        r"""$V(t, e) = \tfrac12 P x^2 + \beta x + \gamma$, $x = e - \bar e$: the optimal
        certainty equivalent $\tfrac1\eta\log E e^{\eta L}$ from $(t, e)$."""
        P, b, g = self.evaluate(t)
        x = jnp.asarray(e) - self.problem.target
        return 0.5 * P * x * x + b * x + g

    def control(self, t: ArrayLike, e: Float[ArrayLike, "... n"]) -> Float[Array, "... n"]:
        r"""$s^*(t, e) = D + (P x + \beta)/\kappa$ (unbounded)."""
        e = jnp.asarray(e)
        row = lambda v: v.reshape((1,) * (e.ndim - 1) + (-1,))  # noqa: E731
        P, b, _ = (row(v) for v in self.evaluate(t))
        pr = self.problem
        return row(pr.demand) + (P * (e - row(pr.target)) + b) / row(pr.kappa)


def _escape_time(phi, q, qT):
    # Time-to-go at which dP/dtau = q + phi P^2, P(0) = qT, explodes (phi > 0).
    r = jnp.sqrt(q / jnp.where(q > 0, phi, 1.0))
    with_q = (jnp.pi / 2 - jnp.arctan(qT / jnp.where(q > 0, r, 1.0))) / jnp.sqrt(q * phi)
    no_q = jnp.where(qT > 0, 1 / (phi * jnp.where(qT > 0, qT, 1.0)), jnp.inf)
    return jnp.where(q > 0, with_q, no_q)


def riccati_closed_form(problem: MatchingProblem, t: ArrayLike) -> Float[Array, " n"]:
    r"""$P(t)$ in closed form ($\tau = t_1 - t$, $\dot P = \theta P^2 - q$, $P(t_1) = q^T$):

    $\theta > 0$: $P = r\frac{q^T + r\tanh\omega\tau}{r + q^T\tanh\omega\tau}$,
    $r = \sqrt{q/\theta}$, $\omega = \sqrt{q\theta}$ ($q^T/(1 + \theta q^T\tau)$ for $q = 0$);
    $\theta = 0$: $q^T + q\tau$; $\theta < 0$: $r\tan(\omega\tau + \arctan(q^T/r))$ with
    $r = \sqrt{q/|\theta|}$, $\omega = \sqrt{q|\theta|}$ ($q^T/(1 - |\theta| q^T\tau)$ for
    $q = 0$), infinite past the escape time.
    """
    tau = problem.t1 - jnp.asarray(t, dtype=float)
    th, q, qT = problem.theta, problem.q, problem.q_terminal
    a = jnp.abs(th)
    sa = jnp.where(a > 0, a, 1.0)
    qs = jnp.where(q > 0, q, 1.0)
    r = jnp.sqrt(qs / sa)
    w = jnp.sqrt(qs * sa)
    th_ = jnp.tanh(w * tau)
    pos = jnp.where(q > 0, r * (qT + r * th_) / (r + qT * th_), qT / (1 + a * qT * tau))
    arg = w * tau + jnp.arctan(qT / r)
    neg_q = jnp.where(arg < jnp.pi / 2, r * jnp.tan(arg), jnp.inf)
    den = 1 - a * qT * tau
    neg_0 = jnp.where(den > 0, qT / jnp.where(den > 0, den, 1.0), jnp.inf)
    neg = jnp.where(q > 0, neg_q, neg_0)
    return jnp.where(th > 0, pos, jnp.where(th < 0, neg, qT + q * tau))


@eqx.filter_jit
def breakdown_eta(problem: MatchingProblem) -> Float[Array, " n"]:
    r"""The neurotic-breakdown threshold $\eta^*_u$: for $\eta_u \ge \eta^*_u$ the
    risk-sensitive Riccati equation explodes on $[t_0, t_1]$ and $E e^{\eta L} = \infty$.

    $\eta^* = (1/\kappa + \phi^*)/\sigma^2$ where $\phi^* = -\theta$ makes the escape time
    $\tau^*(\phi) = (\pi/2 - \arctan(q^T\sqrt{\phi/q}))/\sqrt{q\phi}$ ($1/(\phi q^T)$ for
    $q = 0$) equal to the horizon (a monotone root, `optimistix` bisection). $+\infty$ when
    $\sigma = 0$ or $q = q^T = 0$.
    """
    T = problem.t1 - problem.t0
    q, qT = problem.q, problem.q_terminal

    def one(q, qT):
        def f(logphi, _):
            return jnp.log(_escape_time(jnp.exp(logphi), q, qT)) - jnp.log(T)

        sol = optx.root_find(
            f,
            optx.Bisection(rtol=1e-13, atol=1e-13),
            jnp.asarray(0.0),
            options=dict(lower=-60.0, upper=60.0),
            max_steps=256,
            throw=False,
        )
        return jnp.exp(sol.value)

    phi = jax.vmap(one)(q, qT)
    trivial = (problem.sigma == 0) | ((q == 0) & (qT == 0))
    sig2 = jnp.where(problem.sigma > 0, problem.sigma**2, 1.0)
    return jnp.where(trivial, jnp.inf, (1 / problem.kappa + phi) / sig2)


def solve_riccati(
    problem: MatchingProblem,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
) -> RiskSensitiveSolution:
    r"""Integrate the risk-sensitive Riccati system backwards (module docstring) with
    [`solve_ode`][mftg_jax.solve_ode].

    **Raises:** `ValueError` when the problem has jumps and some $\eta_u > 0$ (the criterion
    is infinite, module docstring);
    [`RiccatiExplosionError`][mftg_jax.RiccatiExplosionError] at a neurotic breakdown, naming
    the stations, $\theta_u$ and the threshold $\eta^*_u$.

    **Returns:** a [`RiskSensitiveSolution`][mftg_jax.dispatch.RiskSensitiveSolution].
    """
    check_jumps(problem)
    star = np.asarray(breakdown_eta(problem))
    broken = np.asarray(problem.eta) >= star
    if broken.any():
        raise _breakdown(problem, star, broken)
    y1 = RiskValues(problem.q_terminal, jnp.zeros(problem.n), jnp.zeros(problem.n))
    sol = solve_ode(
        _vector_field,
        y1,
        problem.t1,
        problem.t0,
        problem,
        solver=solver,
        stepsize_controller=stepsize_controller,
        saveat=diffrax.SaveAt(dense=True, t1=True),
    )
    ok = sol.result == diffrax.RESULTS.successful
    if not bool(ok) or not np.all(np.isfinite(np.asarray(sol.ys.P))):
        raise _breakdown(problem, star, np.ones(problem.n, bool))
    return RiskSensitiveSolution(problem, sol)


def _breakdown(problem, star, broken) -> RiccatiExplosionError:
    idx = np.flatnonzero(broken).tolist()
    th = np.asarray(problem.theta)[idx]
    return RiccatiExplosionError(
        f"risk-sensitive Riccati equation breaks down (neurotic breakdown: "
        f"E exp(eta L) is infinite) for station(s) {idx}: theta = 1/kappa - eta sigma^2 = "
        f"{np.round(th, 6).tolist()}, eta = {np.asarray(problem.eta)[idx].tolist()} >= "
        f"threshold eta* = {np.round(star[idx], 6).tolist()}"
    )
