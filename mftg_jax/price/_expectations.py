r"""What the equilibrium implies in expectation: the mean path, two variances and the
expected running costs, all from one forward ODE.

**Mean path.** The conditional price along the mean (common-noise-free) path and the mean
deviation,

$$\frac{d\hat p}{dt} = \eta\Big(a(t) + \sum_j m_j(t) - \hat p\,(1 + \sum_j k_j(t))\Big),\qquad
  \frac{d(p - \hat p)}{dt} = -\eta\Big(1 - \eta\sum_j \frac{\alpha_j(t)}{r_j}\Big)(p - \hat p);$$

the noise terms are zero-mean and the dynamics linear, so this path is also
$t \mapsto (E[\hat p(t)], E[p(t) - \hat p(t)])$ (docs/model.md).

**Costs.** Producer $i$'s running cost (slides, "Simulation Results", panel (f) and the costs
table) is $C_i(u_i) = c_i u_i + \tfrac{r_i}{2}u_i^2 + \tfrac{\bar r_i}{2}\hat u_i^2$. With
$u_i = g_i y + k_i\hat p - m_i$, $y = p - \hat p$, $g_i = -\eta\alpha_i/r_i$, and $y$ (driven by
idiosyncratic noise) independent of $\hat p$ (driven by common noise),

$$E[C_i] = c_i E[u_i] + \tfrac{r_i}2\big(E[u_i]^2 + g_i^2 V_y + k_i^2 V_{\hat p}\big)
          + \tfrac{\bar r_i}2\big(E[\hat u_i]^2 + k_i^2 V_{\hat p}\big),$$
$$\dot V_y = -2\eta\big(1 - \eta\textstyle\sum_j\alpha_j/r_j\big)V_y + \Sigma,\qquad
  \dot V_{\hat p} = -2\eta\big(1 + \textstyle\sum_j k_j\big)V_{\hat p} + \Sigma_o,$$

$V_y(t_0) = V_{\hat p}(t_0) = 0$, $\Sigma = \sigma^2 + \nu E[Y^2]$,
$\Sigma_o = \sigma_o^2 + \nu_o E[Y_o^2]$. In a deterministic game the variances vanish and
$E[C_i]$ is the cost along the exact equilibrium path. `integrals()` is
$\int_{t_0}^{t_1} E[C_i(t)]\,dt$ (undiscounted), integrated with the path; `sums(K)` the sum
over $K$ equally spaced instants, the slides' costs-table convention
([`mftg_jax.slides.costs`][]).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._custom_types import PerProducer, Scalar
from .._odes import default_controller, solve_ode
from .._programs import persistent_jit
from ._game import Producers
from ._policy import _lift, FeedbackPolicy
from ._riccati import AbstractRiccatiSolution, gains, RiccatiValues


def running_cost(producers: Producers, u: ArrayLike, uhat: ArrayLike) -> Array:
    r"""$C_i(u_i) = c_i u_i + \tfrac{r_i}2 u_i^2 + \tfrac{\bar r_i}2\hat u_i^2$.

    **Arguments:**

    - `producers`: the [`Producers`][mftg_jax.Producers] (their $c, r, \bar r$).
    - `u`, `uhat`: outputs and conditional-mean outputs, shape `(..., n)`.

    **Returns:** the running costs, shape `(..., n)`.
    """
    u = jnp.asarray(u)
    uhat = jnp.asarray(uhat)
    shape = jnp.broadcast_shapes(u.shape, uhat.shape)
    u, uhat = jnp.broadcast_to(u, shape), jnp.broadcast_to(uhat, shape)
    c, r, rbar = (_lift(x, u) for x in (producers.c, producers.r, producers.rbar))
    return c * u + r / 2 * u**2 + rbar / 2 * uhat**2


def cost_instants(t0: ArrayLike, t1: ArrayLike, num: int) -> Array:
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


class Expectations(eqx.Module):
    r"""Dense solution of the mean path, its variances and $\int E[C_i]$ (module docstring).

    Returned by [`solve_expectations`][mftg_jax.price.solve_expectations].
    """

    riccati: AbstractRiccatiSolution
    solution: diffrax.Solution

    def phat(self, t: ArrayLike) -> Scalar:
        r"""$\hat p(t)$ on the mean path."""
        return self.solution.evaluate(t).phat

    def price(self, t: ArrayLike) -> Scalar:
        r"""$E[p(t)] = \hat p(t) + (p - \hat p)(t)$ on the mean path."""
        y = self.solution.evaluate(t)
        return y.phat + y.dev

    def controls(self, t: ArrayLike) -> Array:
        r"""$u_i^*(t, E[p(t)], \hat p(t))$, shape `(n,)`."""
        y = self.solution.evaluate(t)
        return FeedbackPolicy(self.riccati)(t, y.phat + y.dev, y.phat)

    def mean_controls(self, t: ArrayLike) -> Array:
        r"""$\hat u_i^*(t)$, shape `(n,)`."""
        return FeedbackPolicy(self.riccati).mean(t, self.phat(t))

    def variances(self, t: ArrayLike) -> tuple[Array, Array]:
        r"""$(\mathrm{Var}(p - \hat p), \mathrm{Var}(\hat p))$ at time `t`."""
        y = self.solution.evaluate(t)
        return y.var_dev, y.var_phat

    def rate(self, t: ArrayLike) -> PerProducer:
        r"""$E[C_i(u_i(t))]$, shape `(n,)`, at one time `t`."""
        return _expected_rate(t, self.solution.evaluate(t), self.riccati)

    def rates(self, ts: Float[ArrayLike, " T"]) -> Float[Array, "T n"]:
        r"""$E[C_i(u_i(t))]$ at each of the times `ts`, shape `(T, n)`."""
        return jax.vmap(self.rate)(jnp.asarray(ts))

    def integrals(self) -> PerProducer:
        r"""$\int_{t_0}^{t_1} E[C_i(t)]\,dt$, shape `(n,)`."""
        return self.solution.ys.integral[-1]

    def sums(self, num: int) -> PerProducer:
        r"""$\sum_k E[C_i(t_k)]$ over `num` $\ge 2$ equally spaced instants, end points
        included."""
        if num < 2:
            raise ValueError(f"num must be >= 2 (instants include both end points), got {num}")
        return _sums(self, num)


@persistent_jit
def _sums(path: Expectations, num: int):
    mk = path.riccati.game.market
    return jnp.sum(path.rates(cost_instants(mk.t0, mk.t1, num)), axis=0)


_DENSE = diffrax.SaveAt(t1=True, dense=True)


def solve_expectations(
    riccati: AbstractRiccatiSolution,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    dt0: float | None = None,
    max_steps: int = 4096,
) -> Expectations:
    r"""Integrate the mean path, the variances and the expected cost integrals forwards from
    $t_0$ (module docstring; dense output).

    **Arguments:**

    - `riccati`: the equilibrium (or any candidate
      [`AbstractRiccatiSolution`][mftg_jax.price.AbstractRiccatiSolution]).
    - `solver`: a diffrax solver (default `Tsit5`).
    - `stepsize_controller`: default `PIDController(rtol=1e-10, atol=1e-10)`; with a `dt0`
      and no controller, fixed steps (`ConstantStepSize`, for convergence studies and for
      reproducing fixed-step figures).
    - `dt0`: the initial (or fixed) step.
    - `max_steps`: the step budget.

    **Returns:** an [`Expectations`][mftg_jax.price.Expectations].
    """
    if stepsize_controller is None:
        if dt0 is None:
            stepsize_controller = default_controller(1e-10, 1e-10)
        else:
            stepsize_controller = diffrax.ConstantStepSize()
    game = riccati.game
    mk = game.market
    zero = jnp.zeros_like(mk.p0)
    y0 = _State(mk.phat0, mk.p0 - mk.phat0, zero, zero, jnp.zeros_like(game.producers.c))
    sol = solve_ode(
        _vector_field,
        y0,
        mk.t0,
        mk.t1,
        riccati,
        solver=solver,
        stepsize_controller=stepsize_controller,
        saveat=_DENSE,
        dt0=dt0,
        max_steps=max_steps,
    )
    return Expectations(riccati, sol)


def cost_integrals(riccati: AbstractRiccatiSolution, **kwargs) -> PerProducer:
    r"""$\int_{t_0}^{t_1} E[C_i(u_i(t))]\,dt$ for each producer (undiscounted).

    **Arguments:**

    - `riccati`: the equilibrium or a candidate.
    - `kwargs`: passed to [`solve_expectations`][mftg_jax.price.solve_expectations].

    **Returns:** shape `(n,)`.
    """
    return solve_expectations(riccati, **kwargs).integrals()
