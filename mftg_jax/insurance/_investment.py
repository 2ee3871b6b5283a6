r"""The investment first-order condition per regime and time: with jumps, a nonlinear equation.

With log utility the value is $\alpha\log s + \beta$ and the fractions $\pi = u^I/s$ maximise
the log-growth (docs/insurance.md)

$$g(\pi) = \pi\cdot\mu^{ex} - \tfrac12\pi^\top\Sigma\pi
 + \nu\sum_k E\big[\log(1 + \pi_kJ) - \pi_kJ\big]
 + \nu_oE\big[\log(1 + \mathbf 1\cdot\pi\,J_o) - \mathbf 1\cdot\pi\,J_o\big],$$

$\mu^{ex}_{jk}(t) = \hat\mu_{jk} + \mathrm{Drift}_k(t) - r_j$, $J = e^{\mu} - 1$. Its
first-order condition $\nabla g(\pi) = 0$,

$$\mu^{ex} - \Sigma\pi + \nu E\Big[\frac{J}{1 + \pi_kJ} - J\Big]_k
 + \nu_o E\Big[\frac{J_o}{1 + \mathbf 1\cdot\pi J_o} - J_o\Big]\mathbf 1 = 0,$$

is nonlinear; $g$ is strictly concave (where $1 + \pi J > 0$ on the jump support), so the
root is its maximiser. It is found by `optimistix.minimise` (BFGS on $-g$, which needs no
linear solve), vectorised over regimes and times with `vmap`; the residual of the
first-order condition is returned with it. Without jumps $\pi = \Sigma^{-1}\mu^{ex}$.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array
import optimistix as optx

from ._returns import AssetReturns


def log_growth(pi, excess, r: AssetReturns) -> Array:
    r"""$g(\pi)$ of the module docstring for `pi (d,)`, `excess (d,)` $= \mu^{ex}$."""
    quad = 0.5 * pi @ (r.covariance @ pi)
    J = r.jump_returns
    xj = pi[:, None] * J[None, :]
    idio = r.jump_intensity * jnp.sum(r.jump_weights[None, :] * (_safe_log1p(xj) - xj))
    xo = jnp.sum(pi) * r.common_returns
    common = r.common_intensity * jnp.sum(r.common_weights * (_safe_log1p(xo) - xo))
    return pi @ excess - quad + idio + common


def _safe_log1p(x):
    return jnp.where(x > -1 + 1e-12, jnp.log1p(jnp.where(x > -1 + 1e-12, x, 0.0)), -1e6)


def _solve_one(excess, r: AssetReturns, rtol, atol, max_steps):
    def neg(pi, _):
        return -log_growth(pi, excess, r)

    y0 = jnp.zeros_like(excess)
    sol = optx.minimise(neg, optx.BFGS(rtol=rtol, atol=atol), y0, max_steps=max_steps, throw=False)
    pi = sol.value
    residual = jax.grad(log_growth)(pi, excess, r)
    return pi, residual


def optimal_investment(
    excess, r: AssetReturns, *, rtol: float = 1e-12, atol: float = 1e-12, max_steps: int = 256
) -> tuple[Array, Array]:
    r"""The maximisers of $g$ (module docstring) for a batch of excess returns.

    **Arguments:** `excess (..., d)`: $\mu^{ex}$ per regime and time; `r`: the
    [`AssetReturns`][mftg_jax.insurance.AssetReturns]; `rtol`, `atol`, `max_steps`: of the
    BFGS solve.

    **Returns:** `(pi (..., d), residual (..., d))`, the fractions and $\nabla g(\pi)$.
    """
    shape = excess.shape
    flat = excess.reshape((-1, shape[-1]))
    pi, res = jax.vmap(lambda e: _solve_one(e, r, rtol, atol, max_steps))(flat)
    return pi.reshape(shape), res.reshape(shape)
