r"""Likelihood of discretely observed prices under the two-factor linear model.

State $x = (x_c, x_i)$ (common factor and deviation), observation $y_k - m(t_k) = x_c + x_i$
without observation noise. One step of $\Delta$ hours:

$$x_k = F x_{k-1} - \pi\odot\mu_J + \epsilon_k + J_k, \quad F = \mathrm{diag}(e^{-\kappa\Delta}),
  \quad \epsilon_k \sim N(0, Q),\ Q = \mathrm{diag}(\sigma^2(1-e^{-2\kappa\Delta})/2\kappa)$$

$J_k$ is zero, or (probability $\pi_c$) $N(\mu_c, s_c^2)$ on the common factor, or
(probability $\pi_i$) $N(\mu_i, s_i^2)$ on the deviation: at most one jump per step. Given a
Gaussian prior each component's predictive law is Gaussian, so the one-step predictive
density is the exact three-component mixture

$$p(y_k \mid y_{<k}) = \sum_{c=0}^2 w_c\,
  N\big(y_k;\ m(t_k) + H\hat x_{k|k-1}^{(c)},\ H P^{(c)}_{k|k-1} H^\top\big)$$

and the posterior mixture is collapsed to its mean and covariance before the next step
(moment matching, exact when there are no jumps: then this is the Kalman filter and the
likelihood is the exact Gaussian likelihood). The filter starts from the stationary law.
The seasonal mean is subtracted before filtering; prices have no gaps (the loader
interpolates missing hours, `_data.py`).

`filter="sequential"` runs the steps in one `lax.scan`; `filter="parallel"` solves the same
recursion, the same step function, by Newton iterations over the whole trajectory, each an
associative scan (`_kalman_parallel.py`), and equals it to rounding, derivatives included.
On a CPU the sequential filter is the faster (`benchmarks/calibration.py`).
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._kalman_parallel import compose_affine, parallel_trajectory
from ._price_model import LinearPriceModel


class FilterOutput(NamedTuple):
    """Per-observation outputs of [`kalman_filter`][].

    - `nll`: $-\\log p(y_k\\mid y_{<k})$.
    - `pit`: the predictive CDF at $y_k$ (uniform under the model).
    - `residual`: $\\Phi^{-1}(\\text{pit})$, standard normal under the model.
    - `mean`, `variance`: mean and variance of the one-step predictive mixture.
    - `jump_prob`: posterior probabilities of a common and an idiosyncratic jump, `(T, 2)`.
    """

    nll: Array
    pit: Array
    residual: Array
    mean: Array
    variance: Array
    jump_prob: Array


def _safe_log(p):
    pos = p > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, p, 1.0)), -jnp.inf)


class _StepParams(NamedTuple):
    """What one filter step reads of the model (per step of `dt` hours)."""

    phi: Array
    q: Array
    comp: Array
    logw: Array
    shift_c: Array
    shift_i: Array
    add_c: Array
    add_i: Array


def _step_params(model: LinearPriceModel, dt, dtype) -> _StepParams:
    kappa, sigma = model.kappa, model.sigma
    pj, mu, sj = model.jump_prob, model.jump_loc, model.jump_std
    zero = jnp.zeros((), dtype)
    return _StepParams(
        phi=jnp.exp(-kappa * dt),
        q=sigma**2 * (-jnp.expm1(-2 * kappa * dt)) / (2 * kappa),
        comp=-pj * mu,
        # Components: no jump, common jump, idiosyncratic jump.
        logw=jnp.stack([_safe_log(1 - pj[0] - pj[1]), _safe_log(pj[0]), _safe_log(pj[1])]),
        shift_c=jnp.stack([zero, mu[0], zero]),
        shift_i=jnp.stack([zero, zero, mu[1]]),
        add_c=jnp.stack([zero, sj[0] ** 2, zero]),
        add_i=jnp.stack([zero, zero, sj[1] ** 2]),
    )


def _step(p: _StepParams, carry, ek, full: bool):
    """One predict-update-collapse step from the filtered state `carry` (5-tuple) at `ek`."""
    phi, q, comp, logw = p.phi, p.q, p.comp, p.logw
    log2pi = jnp.log(2 * jnp.pi).astype(ek.dtype)
    xc, xi, pcc, pci, pii = carry
    # Predict.
    xc = phi[0] * xc + comp[0]
    xi = phi[1] * xi + comp[1]
    pcc = phi[0] ** 2 * pcc + q[0]
    pci = phi[0] * phi[1] * pci
    pii = phi[1] ** 2 * pii + q[1]
    # Per component (vectors of 3).
    mc = xc + p.shift_c
    mi = xi + p.shift_i
    Pcc = pcc + p.add_c
    Pii = pii + p.add_i
    v = ek - mc - mi
    S = Pcc + 2 * pci + Pii
    ll = -0.5 * (log2pi + jnp.log(S) + v**2 / S)
    lj = logw + ll
    lse = jax.nn.logsumexp(lj)
    w = jnp.exp(lj - lse)
    # Update each component, then collapse to one Gaussian.
    gc = (Pcc + pci) / S
    gi = (pci + Pii) / S
    uc = mc + gc * v
    ui = mi + gi * v
    Ucc = Pcc - gc**2 * S
    Uci = pci - gc * gi * S
    Uii = Pii - gi**2 * S
    xc_n = jnp.sum(w * uc)
    xi_n = jnp.sum(w * ui)
    dc, di = uc - xc_n, ui - xi_n
    new = (
        xc_n,
        xi_n,
        jnp.sum(w * (Ucc + dc * dc)),
        jnp.sum(w * (Uci + dc * di)),
        jnp.sum(w * (Uii + di * di)),
    )
    if not full:
        return new, -lse
    prior = jnp.exp(logw)
    sd = jnp.sqrt(S)
    pit = jnp.sum(prior * jax.scipy.stats.norm.cdf(v / sd))
    pmean = jnp.sum(prior * (mc + mi))
    pvar = jnp.sum(prior * (S + (mc + mi) ** 2)) - pmean**2
    return new, (-lse, pit, pmean, pvar, w[1:], new)


def _state_step(p: _StepParams, s, ek):
    """`_step` on the state as one array `(5,)` (the parallel filter's recursion)."""
    return jnp.stack(_step(p, tuple(s), ek, False)[0])


FILTERS = ("sequential", "parallel")
# Steps of the data-free covariance recursion to its steady state (geometric convergence).
_STEADY_STEPS = 256


def _guess(p: _StepParams, init, e):
    r"""A start for the parallel filter's Newton iterations: the jump-free filter with its
    steady-state gain $g$, whose mean recursion $x_k = (I - gH)(Fx_{k-1} - \pi\odot\mu_J)
    + g e_k$ is affine (one associative scan), with covariances at their steady state."""
    dtype = e.dtype
    zero = jnp.zeros_like(p.logw)
    no_jump = jnp.where(jnp.arange(3) == 0, 0.0, -jnp.inf).astype(dtype)
    free = p._replace(logw=no_jump, shift_c=zero, shift_i=zero, add_c=zero, add_i=zero)
    # Without jumps the covariances do not depend on the data.
    _, _, pcc, pci, pii = jax.lax.fori_loop(
        0, _STEADY_STEPS, lambda _, c: _step(free, c, e[0], False)[0], tuple(init)
    )
    phi, q = p.phi, p.q
    Pcc, Pci, Pii = phi[0] ** 2 * pcc + q[0], phi[0] * phi[1] * pci, phi[1] ** 2 * pii + q[1]
    g = jnp.stack([Pcc + Pci, Pci + Pii]) / (Pcc + 2 * Pci + Pii)
    M = jnp.eye(2, dtype=dtype) - g[:, None]
    A = M * phi[None, :]
    b = (M @ p.comp)[None, :] + g[None, :] * e[:, None]
    As = jnp.broadcast_to(A, (e.shape[0], 2, 2)).at[0].set(0.0)
    b = b.at[0].add(A @ jnp.stack(init[:2]))
    _, means = jax.lax.associative_scan(compose_affine, (As, b))
    covs = jnp.broadcast_to(jnp.stack([pcc, pci, pii]), (e.shape[0], 3))
    return jnp.concatenate([means, covs], axis=1)


def _filter(model: LinearPriceModel, y, t, dt, full: bool, unroll: int, filter: str):
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {filter!r}")
    dtype = jnp.result_type(y.dtype, model.level.dtype)
    e = (y - model.seasonal_mean(t)).astype(dtype)
    p = _step_params(model, dt, dtype)
    p0 = model.stationary_variance(dt)
    zero = jnp.zeros((), dtype)
    init = (zero, zero, p0[0].astype(dtype), zero, p0[1].astype(dtype))
    if filter == "sequential":
        _, out = jax.lax.scan(lambda c, ek: _step(p, c, ek, full), init, e, unroll=unroll)
        return e, out
    guess = _guess(*jax.lax.stop_gradient((p, init, e)))
    states = parallel_trajectory(_state_step, p, jnp.stack(init), e, guess=guess)
    prev = jnp.concatenate([jnp.stack(init)[None], states[:-1]], axis=0)
    # Every step's outputs from the state before it: the sequential filter's, in parallel.
    _, out = jax.vmap(lambda s, ek: _step(p, tuple(s), ek, full))(prev, e)
    return e, out


def negative_log_likelihood(
    model: LinearPriceModel,
    y: Float[Array, " T"],
    t: Float[Array, " T"],
    dt: float = 1.0,
    *,
    unroll: int = 4,
    filter: str = "sequential",
) -> Array:
    r"""$-\sum_k \log p(y_k \mid y_{<k})$ by the mixture Kalman filter (module docstring).

    Pure JAX: jit, grad, hessian and vmap apply.

    **Arguments:**

    - `model`: a [`LinearPriceModel`][].
    - `y`: observed prices; `t`: their times in hours (same origin as the model's seasonality).
    - `dt`: the step in hours.
    - `unroll`: `lax.scan` unrolling of the sequential filter (speed only).
    - `filter`: `"sequential"` (one `lax.scan` over time, the default: the faster on a
      CPU, `benchmarks/calibration.py`) or `"parallel"` (the same recursion solved by
      associative scans over time, `_kalman_parallel.py`; equal to rounding, derivatives
      included).

    **Returns:** a scalar, the sum over observations (price in its own unit).
    """
    _, nll = _filter(model, y, t, dt, False, unroll, filter)
    return jnp.sum(nll)


def nll_per_step(
    model: LinearPriceModel,
    y,
    t,
    dt: float = 1.0,
    *,
    unroll: int = 4,
    filter: str = "sequential",
) -> Array:
    """$-\\log p(y_k \\mid y_{<k})$ for each $k$ (shape of `y`); arguments as
    [`negative_log_likelihood`][]."""
    return _filter(model, y, t, dt, False, unroll, filter)[1]


@eqx.filter_jit
def kalman_filter(
    model: LinearPriceModel, y, t, dt: float = 1.0, *, filter: str = "sequential"
) -> FilterOutput:
    """Run the filter and return per-observation diagnostics ([`FilterOutput`][]); `filter`
    as in [`negative_log_likelihood`][]."""
    _, (nll, pit, mean, var, jp, _) = _filter(model, y, t, dt, True, 4, filter)
    eps = jnp.finfo(pit.dtype).eps
    resid = jax.scipy.stats.norm.ppf(jnp.clip(pit, eps, 1 - eps))
    return FilterOutput(nll, pit, resid, model.seasonal_mean(t) + mean, var, jp)


class FilteredState(NamedTuple):
    """The filtered law of the factors $x = (x_c, x_i)$ (common, deviation).

    - `mean`: $E[x_k \\mid y_{\\le k}]$, shape `(T, 2)`.
    - `cov`: its covariance, `(T, 2, 2)` (of the collapsed posterior mixture).
    """

    mean: Array
    cov: Array


@eqx.filter_jit
def filtered_state(
    model: LinearPriceModel, y, t, dt: float = 1.0, *, filter: str = "sequential"
) -> FilteredState:
    r"""The filter's posterior mean and covariance of the two factors after each observation.

    The posterior mixture of the update step collapsed to its mean and covariance (exact,
    the Kalman filter's, without jumps); the price is $m(t_k) + x_{c,k} + x_{i,k}$, so
    $\hat p_k = m(t_k) + x_{c,k}$ and $p_k - \hat p_k = x_{i,k}$ in the game's terms.

    **Arguments:** `model`, a [`LinearPriceModel`][]; `y`, the prices at the times `t`
    (hours, the model's seasonal origin); `dt`, the step in hours; `filter`, as in
    [`negative_log_likelihood`][].

    **Returns:** a [`FilteredState`][].
    """
    _, out = _filter(model, y, t, dt, True, 4, filter)
    xc, xi, pcc, pci, pii = out[-1]
    mean = jnp.stack([xc, xi], axis=-1)
    cov = jnp.stack([jnp.stack([pcc, pci], -1), jnp.stack([pci, pii], -1)], -2)
    return FilteredState(mean, cov)


def predict_state(model: LinearPriceModel, mean, cov, dt: float = 1.0, steps: int = 1):
    r"""Predict the factors' law `steps` steps of `dt` hours ahead (no observation).

    $m \mapsto F^k m$, $P \mapsto F^k P F^k + \sum_{j<k} F^j (Q + V_J) F^j$ with
    $F = \mathrm{diag}(e^{-\kappa\Delta})$, $V_J$ the per-step variance of the compensated
    jumps: the mean and covariance of the model's discretised dynamics, exactly when at
    most one factor jumps (the default); with both, the small negative covariance of the two
    factors' jumps (at most one jump a step) is left out.

    **Arguments:** `model`; `mean (2,)`, `cov (2, 2)`: the law now; `dt`; `steps` $\ge 0$.

    **Returns:** `(mean, cov)` after `steps` steps.
    """
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)
    phi = jnp.exp(-model.kappa * dt)
    q = model.sigma**2 * (-jnp.expm1(-2 * model.kappa * dt)) / (2 * model.kappa)
    pj, mu, sj = model.jump_prob, model.jump_loc, model.jump_std
    vj = pj * (sj**2 + mu**2) - (pj * mu) ** 2
    fk = phi**steps
    # The factors are independent apart from their initial covariance.
    geo = jnp.where(phi < 1, (1 - fk**2) / jnp.where(phi < 1, 1 - phi**2, 1.0), steps)
    new_mean = fk * mean
    new_cov = cov * (fk[:, None] * fk[None, :]) + jnp.diag((q + vj) * geo)
    return new_mean, new_cov
