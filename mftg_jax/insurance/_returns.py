r"""The energy assets' returns under the regulated-price equilibrium, equation (13).

The regulated prices of [`mftg_jax.tracking`][] are read as log-prices: the asset's price is
$P_k = e^{p_k}$ with

$$dp_k = \eta_k[D_k - p_k - (S_k + u_{mftg,k})]dt + \sigma_kdB_k + \sigma_odB_o
 + \int\mu_k\tilde N_k(dt, d\theta) + \int\mu_o\tilde N_o(dt, d\theta),$$

so Ito's formula gives the return $dP_k/P_{k-} = \mathrm{Drift}_k\,dt + \mathrm{Diffusion}_k
+ \mathrm{Jump}_k$ of equation (13), with the corrections
$\tfrac12(\sigma_k^2 + \sigma_o^2) + \nu E[e^{\mu} - 1 - \mu] + \nu_o E[e^{\mu_o} - 1 - \mu_o]$.
The slides write $\mathrm{Drift}_k(\bar s)$: a coefficient, not a function of the random
price. It is taken along the equilibrium's mean price $E p_k(t)$, which is exact in mean
($E[\eta_k(D_k - p_k - S_k - u_k)] = \eta_k(D_k - Ep_k - S_k - \hat u_k(Ep))$ as the feedback is
linear); docs/insurance.md discusses what this leaves out.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array
import numpy as np

from .. import tracking
from .._noise._jumps import AbstractJumpSize, ExponentialJumps, FixedJumps, NormalJumps
from ._model import InsuranceModel


def jump_quadrature(size: AbstractJumpSize, n: int) -> tuple[Array, Array]:
    r"""Gauss nodes and weights of a jump-size law: $E f(Y) \approx \sum_i w_i f(y_i)$.

    Normal sizes: Gauss-Hermite (exact for polynomials of degree $< 2n$); exponential:
    Gauss-Laguerre; fixed: the value (all `n` nodes equal, weights $1/n$).

    **Returns:** `(nodes (n,), weights (n,))`.
    """
    if isinstance(size, NormalJumps):
        x, w = np.polynomial.hermite_e.hermegauss(n)
        return size.loc + size.std * jnp.asarray(x), jnp.asarray(w / np.sqrt(2 * np.pi))
    if isinstance(size, ExponentialJumps):
        x, w = np.polynomial.laguerre.laggauss(n)
        return size.sign * size.scale * jnp.asarray(x), jnp.asarray(w)
    if isinstance(size, FixedJumps):
        return jnp.full((n,), 1.0) * size.value, jnp.full((n,), 1.0 / n)
    raise TypeError(f"no quadrature for jump sizes of type {type(size).__name__}")


class AssetReturns(eqx.Module):
    r"""The assets' return coefficients on the time grid of the closed forms.

    - `ts (T,)`: the grid; `mean_price (T, d)`: $E p_k(t)$ under the regulated equilibrium.
    - `drift (T, d)`: $\mathrm{Drift}_k(t)$ of equation (13), the expected return rate.
    - `covariance (d, d)`: $\mathrm{diag}(\sigma_k^2) + \sigma_o^2\mathbf 1\mathbf 1^\top$.
    - `jump_intensity`, `jump_returns (Q,)`, `jump_weights (Q,)`: $\nu$ and the quadrature of
      $e^{\mu} - 1$ (the same law for every asset, independent across assets).
    - `common_intensity`, `common_returns (Q,)`, `common_weights (Q,)`: the same for the
      common jumps $\nu_o$, $e^{\mu_o} - 1$ (one jump moves every asset).
    """

    ts: Array
    mean_price: Array
    drift: Array
    covariance: Array
    jump_intensity: Array
    jump_returns: Array
    jump_weights: Array
    common_intensity: Array
    common_returns: Array
    common_weights: Array

    def drift_at(self, t) -> Array:
        r"""$\mathrm{Drift}(t)$ by linear interpolation on the grid, shape `(d,)`."""
        return jax.vmap(lambda col: jnp.interp(t, self.ts, col), in_axes=1)(self.drift)


def asset_returns(model: InsuranceModel) -> AssetReturns:
    """The [`AssetReturns`][mftg_jax.insurance.AssetReturns] of a model: the regulated
    equilibrium (`tracking.solve`), its mean price (`tracking.solve_moments`) and the Ito and
    jump corrections of equation (13)."""
    game = model.assets
    sol = tracking.solve(game)
    ts = jnp.linspace(game.t0, game.t1, model.n_grid)
    mean = tracking.solve_moments(sol, ts).mean
    mean_drift = jax.vmap(lambda t, p: sol.mean_drift(t, p, sol.mean_control(t, p)))(ts, mean)
    nz = game.noise
    y, w = jump_quadrature(nz.jumps.size, model.n_quadrature)
    yo, wo = jump_quadrature(nz.common_jumps.size, model.n_quadrature)
    ito = 0.5 * (nz.sigma**2 + nz.sigma_o**2)
    jump_corr = nz.jumps.intensity * jnp.sum(w * (jnp.expm1(y) - y))
    common_corr = nz.common_jumps.intensity * jnp.sum(wo * (jnp.expm1(yo) - yo))
    drift = mean_drift + (ito + jump_corr + common_corr)[None, :]
    d = game.n
    cov = jnp.diag(nz.sigma**2) + nz.sigma_o**2 * jnp.ones((d, d))
    return AssetReturns(
        ts=ts,
        mean_price=mean,
        drift=drift,
        covariance=cov,
        jump_intensity=nz.jumps.intensity,
        jump_returns=jnp.expm1(y),
        jump_weights=w,
        common_intensity=nz.common_jumps.intensity,
        common_returns=jnp.expm1(yo),
        common_weights=wo,
    )
