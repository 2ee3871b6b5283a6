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
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

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


def _filter(model: LinearPriceModel, y, t, dt, full: bool, unroll: int):
    dtype = jnp.result_type(y.dtype, model.level.dtype)
    e = (y - model.seasonal_mean(t)).astype(dtype)
    kappa, sigma = model.kappa, model.sigma
    phi = jnp.exp(-kappa * dt)
    q = sigma**2 * (-jnp.expm1(-2 * kappa * dt)) / (2 * kappa)
    pj, mu, sj = model.jump_prob, model.jump_loc, model.jump_std
    comp = -pj * mu
    p0 = model.stationary_variance(dt)
    # Components: no jump, common jump, idiosyncratic jump.
    logw = jnp.stack([_safe_log(1 - pj[0] - pj[1]), _safe_log(pj[0]), _safe_log(pj[1])])
    zero = jnp.zeros((), dtype)
    shift_c = jnp.stack([zero, mu[0], zero])
    shift_i = jnp.stack([zero, zero, mu[1]])
    add_c = jnp.stack([zero, sj[0] ** 2, zero])
    add_i = jnp.stack([zero, zero, sj[1] ** 2])
    log2pi = jnp.log(2 * jnp.pi).astype(dtype)

    def step(carry, ek):
        xc, xi, pcc, pci, pii = carry
        # Predict.
        xc = phi[0] * xc + comp[0]
        xi = phi[1] * xi + comp[1]
        pcc = phi[0] ** 2 * pcc + q[0]
        pci = phi[0] * phi[1] * pci
        pii = phi[1] ** 2 * pii + q[1]
        # Per component (vectors of 3).
        mc = xc + shift_c
        mi = xi + shift_i
        Pcc = pcc + add_c
        Pii = pii + add_i
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

    init = (zero, zero, p0[0].astype(dtype), zero, p0[1].astype(dtype))
    _, out = jax.lax.scan(step, init, e, unroll=unroll)
    return e, out


def negative_log_likelihood(
    model: LinearPriceModel,
    y: Float[Array, " T"],
    t: Float[Array, " T"],
    dt: float = 1.0,
    *,
    unroll: int = 4,
) -> Array:
    r"""$-\sum_k \log p(y_k \mid y_{<k})$ by the mixture Kalman filter (module docstring).

    Pure JAX (`lax.scan`): jit, grad, hessian and vmap apply.

    **Arguments:**

    - `model`: a [`LinearPriceModel`][].
    - `y`: observed prices; `t`: their times in hours (same origin as the model's seasonality).
    - `dt`: the step in hours.
    - `unroll`: `lax.scan` unrolling (speed only).

    **Returns:** a scalar, the sum over observations (price in its own unit).
    """
    _, nll = _filter(model, y, t, dt, False, unroll)
    return jnp.sum(nll)


def nll_per_step(model: LinearPriceModel, y, t, dt: float = 1.0, *, unroll: int = 4) -> Array:
    """$-\\log p(y_k \\mid y_{<k})$ for each $k$ (shape of `y`)."""
    return _filter(model, y, t, dt, False, unroll)[1]


@eqx.filter_jit
def kalman_filter(model: LinearPriceModel, y, t, dt: float = 1.0) -> FilterOutput:
    """Run the filter and return per-observation diagnostics ([`FilterOutput`][])."""
    _, (nll, pit, mean, var, jp, _) = _filter(model, y, t, dt, True, 4)
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
def filtered_state(model: LinearPriceModel, y, t, dt: float = 1.0) -> FilteredState:
    r"""The filter's posterior mean and covariance of the two factors after each observation.

    The posterior mixture of the update step collapsed to its mean and covariance (exact,
    the Kalman filter's, without jumps); the price is $m(t_k) + x_{c,k} + x_{i,k}$, so
    $\hat p_k = m(t_k) + x_{c,k}$ and $p_k - \hat p_k = x_{i,k}$ in the game's terms.

    **Arguments:** `model`, a [`LinearPriceModel`][]; `y`, the prices at the times `t`
    (hours, the model's seasonal origin); `dt`, the step in hours.

    **Returns:** a [`FilteredState`][].
    """
    _, out = _filter(model, y, t, dt, True, 4)
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
