r"""The producers' running costs along the equilibrium, in the slides' two conventions.

Producer $i$'s running cost (slides, "Simulation Results", panel (f) and the costs table) is

$$C_i(u_i) = c_i u_i + \tfrac{r_i}{2}u_i^2 + \tfrac{\bar r_i}{2}\hat u_i^2 .$$

Its expectation along the equilibrium needs the mean path and two variances:
$u_i = g_i y + k_i\hat p - m_i$ with $y = p - \hat p$, $g_i = -\eta\alpha_i/r_i$, and $y$
(driven by idiosyncratic noise) is independent of $\hat p$ (driven by common noise), so

$$E[C_i] = c_i E[u_i] + \tfrac{r_i}2\big(E[u_i]^2 + g_i^2 V_y + k_i^2 V_{\hat p}\big)
          + \tfrac{\bar r_i}2\big(E[\hat u_i]^2 + k_i^2 V_{\hat p}\big),$$
$$\dot V_y = -2\eta\big(1 - \eta\textstyle\sum_j\alpha_j/r_j\big)V_y + \Sigma,\qquad
  \dot V_{\hat p} = -2\eta\big(1 + \textstyle\sum_j k_j\big)V_{\hat p} + \Sigma_o,$$

$V_y(t_0) = V_{\hat p}(t_0) = 0$, $\Sigma = \sigma^2 + \nu E[Y^2]$,
$\Sigma_o = \sigma_o^2 + \nu_o E[Y_o^2]$. In a deterministic game (Scenario 2) the variances
vanish and $E[C_i]$ is the cost along the exact equilibrium path.

Two ways of adding the cost up over the horizon (both undiscounted, as in the slides):

- `cost_integrals`: $\int_{t_0}^{t_1} E[C_i(t)]\,dt$, integrated with the path by an adaptive
  ODE solver;
- `costs`: $\sum_{k=0}^{K-1} E[C_i(t_k)]$ over $K = 1000$ equally spaced instants
  $t_k = t_0 + k(t_1-t_0)/(K-1)$, *both end points included* (`numpy.linspace(t0, t1, K)`).

The slides' table (180430, 93526, 57159 for Scenario 2) has the magnitude of the sum, not of
the integral (which is about $(t_1-t_0)/(K-1)$ times smaller: 270, 149, 95).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._custom_types import PerProducer
from ._game import Producers
from ._riccati import AbstractRiccatiSolution, gains, RiccatiValues

NUM_COST_INSTANTS = 1000
_TSIT5 = diffrax.Tsit5()


def running_cost(producers: Producers, u: ArrayLike, uhat: ArrayLike) -> Array:
    r"""$C_i(u_i) = c_i u_i + \tfrac{r_i}2 u_i^2 + \tfrac{\bar r_i}2\hat u_i^2$.

    **Arguments:**

    - `producers`: the [`Producers`][] (their $c, r, \bar r$).
    - `u`, `uhat`: outputs and conditional-mean outputs, shape `(..., n)`.

    **Returns:** the running costs, shape `(..., n)`.
    """
    u = jnp.asarray(u)
    uhat = jnp.asarray(uhat)
    return producers.c * u + producers.r / 2 * u**2 + producers.rbar / 2 * uhat**2


def cost_instants(t0: ArrayLike, t1: ArrayLike, num: int = NUM_COST_INSTANTS) -> Array:
    """The `num` equally spaced instants of the sum convention, end points included."""
    return jnp.linspace(t0, t1, num)


class _State(eqx.Module):
    phat: Array
    dev: Array
    var_dev: Array
    var_phat: Array
    integral: Array


def _expected_rate_from(game, v: RiccatiValues, y: _State) -> PerProducer:
    pr = game.producers
    g = -game.market.eta * v.alpha / pr.r
    k, m = gains(game, v)
    mean_uhat = k * y.phat - m
    mean_u = g * y.dev + mean_uhat
    var_uhat = k**2 * y.var_phat
    var_u = g**2 * y.var_dev + var_uhat
    return pr.c * mean_u + pr.r / 2 * (mean_u**2 + var_u) + pr.rbar / 2 * (mean_uhat**2 + var_uhat)


def _expected_rate(t, y: _State, riccati: AbstractRiccatiSolution) -> PerProducer:
    return _expected_rate_from(riccati.game, riccati.evaluate(t), y)


def _vector_field(t, y: _State, riccati: AbstractRiccatiSolution) -> _State:
    # One evaluation of the (dense) Riccati solution per call: it dominates tracing time.
    game = riccati.game
    eta = game.market.eta
    v = riccati.evaluate(t)
    k, m = gains(game, v)
    d_phat = eta * (game.market.a(t) + jnp.sum(m) - y.phat * (1 + jnp.sum(k)))
    kappa = eta * (1 - eta * jnp.sum(v.alpha / game.producers.r))
    d_dev = -kappa * y.dev
    d_var_dev = -2 * kappa * y.var_dev + game.noise.idiosyncratic_variance_rate
    d_var_phat = -2 * eta * (1 + jnp.sum(k)) * y.var_phat + game.noise.common_variance_rate
    return _State(d_phat, d_dev, d_var_dev, d_var_phat, _expected_rate_from(game, v, y))


class ExpectedCostPath(eqx.Module):
    r"""Dense solution of the mean path, its variances and $\int E[C_i]$ (module docstring).

    Returned by [`solve_expected_costs`][].
    """

    riccati: AbstractRiccatiSolution
    solution: diffrax.Solution

    def rate(self, t: ArrayLike) -> PerProducer:
        r"""$E[C_i(u_i(t))]$, shape `(n,)`, at one time `t`."""
        return _expected_rate(t, self.solution.evaluate(t), self.riccati)

    def rates(self, ts: Float[ArrayLike, " T"]) -> Float[Array, "T n"]:
        r"""$E[C_i(u_i(t))]$ at each of the times `ts`, shape `(T, n)`."""
        return jax.vmap(self.rate)(jnp.asarray(ts))

    def variances(self, t: ArrayLike) -> tuple[Array, Array]:
        r"""$(\mathrm{Var}(p - \hat p), \mathrm{Var}(\hat p))$ at time `t`."""
        y = self.solution.evaluate(t)
        return y.var_dev, y.var_phat

    def integrals(self) -> PerProducer:
        r"""$\int_{t_0}^{t_1} E[C_i(t)]\,dt$, shape `(n,)`."""
        return self.solution.ys.integral[-1]

    def sums(self, num: int = NUM_COST_INSTANTS) -> PerProducer:
        r"""$\sum_k E[C_i(t_k)]$ over `num` equally spaced instants, end points included."""
        return _sums(self, num)


@eqx.filter_jit
def _sums(path: ExpectedCostPath, num: int):
    mk = path.riccati.game.market
    return jnp.sum(path.rates(cost_instants(mk.t0, mk.t1, num)), axis=0)


@eqx.filter_jit
def _solve(riccati, solver, controller, max_steps):
    game = riccati.game
    mk = game.market
    zero = jnp.zeros_like(mk.p0)
    y0 = _State(mk.phat0, mk.p0 - mk.phat0, zero, zero, jnp.zeros_like(game.producers.c))
    return diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        solver,
        t0=mk.t0,
        t1=mk.t1,
        dt0=None,
        y0=y0,
        args=riccati,
        saveat=diffrax.SaveAt(t1=True, dense=True),
        stepsize_controller=controller,
        max_steps=max_steps,
    )


def solve_expected_costs(
    riccati: AbstractRiccatiSolution,
    *,
    solver: diffrax.AbstractSolver = _TSIT5,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    max_steps: int = 4096,
) -> ExpectedCostPath:
    r"""Integrate the mean path, the variances and the expected cost integrals (adaptive).

    **Arguments:**

    - `riccati`: the equilibrium (or any candidate [`AbstractRiccatiSolution`][]).
    - `solver`, `rtol`, `atol`, `max_steps`: the diffrax solver and its step-size control.

    **Returns:** an [`ExpectedCostPath`][].
    """
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    return ExpectedCostPath(riccati, _solve(riccati, solver, controller, max_steps))


def cost_integrals(riccati: AbstractRiccatiSolution, **kwargs) -> PerProducer:
    r"""$\int_{t_0}^{t_1} E[C_i(u_i(t))]\,dt$ for each producer (undiscounted).

    **Arguments:**

    - `riccati`: the equilibrium or a candidate.
    - `kwargs`: passed to [`solve_expected_costs`][].

    **Returns:** shape `(n,)`.
    """
    return solve_expected_costs(riccati, **kwargs).integrals()


def costs(riccati: AbstractRiccatiSolution, num: int = NUM_COST_INSTANTS, **kwargs) -> PerProducer:
    r"""$\sum_{k=0}^{K-1} E[C_i(u_i(t_k))]$ over $K$ = `num` equally spaced instants of
    $[t_0, t_1]$, both end points included (the slides' costs table convention).

    **Arguments:**

    - `riccati`: the equilibrium or a candidate.
    - `num`: the number of instants $K \ge 2$ (1000 in the slides).
    - `kwargs`: passed to [`solve_expected_costs`][].

    **Returns:** shape `(n,)`.
    """
    if num < 2:
        raise ValueError(f"num must be >= 2 (instants include both end points), got {num}")
    return solve_expected_costs(riccati, **kwargs).sums(num)
