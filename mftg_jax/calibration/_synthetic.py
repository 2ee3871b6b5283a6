r"""Exact draws of a price series from a [`LinearPriceModel`][].

The factors start in their stationary law (the diffusion part exactly, the jump part by its
mean and variance, after a burn-in of `burn_in` steps from zero) and move by the
discretisation that the likelihood assumes ([`LinearPriceModel`][]).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ._price_model import LinearPriceModel


def sample_prices(
    model: LinearPriceModel,
    key: PRNGKeyArray,
    t: Array,
    dt: float = 1.0,
    *,
    burn_in: int = 0,
) -> Array:
    r"""One price path $y_k = m(t_k) + x_c(t_k) + x_i(t_k)$ at the regular times `t`.

    **Arguments:**

    - `model`: a [`LinearPriceModel`][].
    - `key`: a JAX PRNG key.
    - `t`: the observation times in hours (step `dt`).
    - `dt`: the step in hours.
    - `burn_in`: steps simulated before `t[0]` (from a stationary Gaussian start).

    **Returns:** the prices, shape of `t`.
    """
    t = jnp.asarray(t)
    n = t.shape[0] + burn_in
    dtype = model.level.dtype
    phi = jnp.exp(-model.kappa * dt)
    sd = model.sigma * jnp.sqrt(-jnp.expm1(-2 * model.kappa * dt) / (2 * model.kappa))
    pj, mu, sj = model.jump_prob, model.jump_loc, model.jump_std
    k0, k_eps, k_u, k_j = jax.random.split(key, 4)
    eps = jax.random.normal(k_eps, (n, 2), dtype) * sd[None, :]
    # At most one jump per step: on the common factor with probability pj[0], on the
    # deviation with probability pj[1].
    u = jax.random.uniform(k_u, (n,), dtype)
    which = jnp.stack([u < pj[0], (u >= pj[0]) & (u < pj[0] + pj[1])], axis=-1)
    sizes = mu[None, :] + sj[None, :] * jax.random.normal(k_j, (n, 2), dtype)
    shocks = eps - (pj * mu)[None, :] + jnp.where(which, sizes, 0.0)
    x0 = jnp.sqrt(model.stationary_variance(dt)) * jax.random.normal(k0, (2,), dtype)

    def step(x, shock):
        x = phi * x + shock
        return x, jnp.sum(x)

    _, xs = jax.lax.scan(step, x0, shocks)
    return model.seasonal_mean(t) + xs[burn_in:]
