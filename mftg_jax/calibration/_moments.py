r"""Calibration by simulated moments, with pathwise gradients through the simulation.

For models without a likelihood. With a fixed key (common random numbers) the ensemble of
equilibrium price paths ([`simulate_paths`][]) is a smooth function of the game's
parameters, so the moment distance

$$Q(u) = \sum_k W_k\,\big(\bar m_k(u) - m_k(y)\big)^2$$

between the mean moments of $R$ simulated paths $\bar m(u)$ (each as long as the data, after
a burn-in) and the data's moments $m(y)$ — mean, variance, autocorrelations at a few lags and
tail quantiles — is minimised by optimistix's L-BFGS on reverse-mode gradients of the
simulation. $W$ is the
inverse variance of each moment across simulated paths at the starting point. Standard errors
are the sandwich $(J^\top WJ)^{-1}J^\top W\Omega WJ(J^\top WJ)^{-1}$ with $J = \partial\bar m/
\partial u$ (pathwise, `jax.jacrev`) and $\Omega = (1 + 1/R)S$, $S$ the covariance of one
path's moments.

The seasonal terms and jumps are not matched here (a constant intercept, no jumps): Poisson
counts have no pathwise derivative.
"""

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._linalg import small_solve
from .._simulation._spec import EnsembleSpec
from ..price import simulate_paths
from ._data import PriceSeries
from ._optimiser import lbfgs_iteration, lbfgs_start
from ._parametrisation import Parametrisation
from ._price_model import StructuralDefaults

LAGS = (1, 3, 12, 48)
QUANTILES = (0.05, 0.95)


def price_moments(y, lags=LAGS, quantiles=QUANTILES):
    """Mean, variance, autocorrelations at `lags` and `quantiles` along the last axis."""
    mean = jnp.mean(y, -1, keepdims=True)
    d = y - mean
    var = jnp.mean(d**2, -1)
    acf = [jnp.mean(d[..., lag:] * d[..., :-lag], -1) / var for lag in lags]
    qs = jnp.moveaxis(jnp.quantile(y, jnp.asarray(quantiles, y.dtype), axis=-1), 0, -1)
    return jnp.concatenate([mean, var[..., None], jnp.stack(acf, -1), qs], -1)


@dataclasses.dataclass(frozen=True)
class MomentResult:
    """What [`calibrate_moments`][] found: coordinates `u`, their covariance, the loss."""

    parametrisation: Parametrisation
    u: np.ndarray
    covariance: np.ndarray
    loss: float
    converged: bool
    iterations: int
    seconds: float
    observed: np.ndarray
    simulated: np.ndarray

    def identified(self) -> dict:
        return {
            k: np.asarray(v)
            for k, v in self.parametrisation.identified(jnp.asarray(self.u)).items()
        }

    def stderr(self) -> dict:
        f = self.parametrisation.identified
        jac = jax.jacfwd(f)(jnp.asarray(self.u))
        cov = jnp.asarray(self.covariance)
        return {
            k: np.sqrt(np.maximum(np.asarray(jnp.einsum("j,jk,k->", J, cov, J)), 0.0))
            for k, J in jac.items()
            if J.ndim == 1
        }


def _simulated(param, key, u, n_paths, burn_in, T, dtype):
    game = param.game(u)
    spec = EnsembleSpec(
        n_paths=n_paths,
        n_common=n_paths,
        n_steps=burn_in + T,
        save_steps=tuple(range(burn_in, burn_in + T)),
        dtype=dtype,
    )
    paths = simulate_paths(game, key, spec, track_revenue=False)
    return price_moments(paths.p[:, 0, :])


def calibrate_moments(
    series: PriceSeries,
    u0=None,
    *,
    key=None,
    n_paths: int = 32,
    burn_in: int = 500,
    defaults: StructuralDefaults = StructuralDefaults(),
    max_iter: int = 100,
    gtol: float = 1e-6,
    ftol: float = 1e-10,
) -> MomentResult:
    r"""Fit $(\eta, K, \bar p, \sigma_o, \sigma)$ of the price game by simulated moments.

    **Arguments:**

    - `series`: the observed prices (regular, step in hours).
    - `u0`: starting coordinates (default: moment estimates, [`Parametrisation.initial`][]).
    - `key`: PRNG key of the common random numbers (default `jax.random.key(0)`).
    - `n_paths`: simulated paths $R$, each of the data's length after `burn_in` hours.
    - `defaults`: the unidentified game parameters; the horizon is set to the simulation's.
    - `max_iter`, `gtol`, `ftol`: L-BFGS iterations and convergence tests (gradient
      max-norm, relative change of $Q$).

    **Returns:** a [`MomentResult`][].
    """
    y = np.asarray(series.prices, np.float64)
    T = y.size
    if series.dt_hours != 1.0:
        raise ValueError(f"simulated moments need an hourly series, got step {series.dt_hours} h")
    dflt = dataclasses.replace(defaults, horizon=float(burn_in + T))
    param = Parametrisation(
        model="equilibrium",
        harmonics=(),
        jumps="none",
        mean=float(y.mean()),
        scale=float(y.std()),
        dt=1.0,
        defaults=dflt,
        p0=float(y.mean()),
    )
    key = jax.random.key(0) if key is None else key
    dtype = jnp.zeros(()).dtype
    sim = eqx.filter_jit(lambda u: _simulated(param, key, u, n_paths, burn_in, T, dtype))
    observed = price_moments(jnp.asarray(y, dtype))
    u = jnp.asarray(param.initial(y, series.hours()) if u0 is None else u0, dtype)
    weights = 1.0 / jnp.var(sim(u), axis=0)

    def loss(u):
        return jnp.sum(weights * (jnp.mean(sim(u), 0) - observed) ** 2)

    # L-BFGS in u = u0 + c v with c^2 = min(1, 1/max|g0|): the first step (a gradient
    # step; the iteration is invariant to c after it) moves u by at most 1 per coordinate,
    # where a longer one can leave the region where the game's Riccati solution exists.
    def fn(v, args):
        u0, c = args
        return loss(u0 + c * v), None

    # Reverse mode (as `jax.grad`) through the simulation.
    options = {"autodiff_mode": "bwd"}
    t0 = time.perf_counter()
    v = jnp.zeros_like(u)
    args = (u, jnp.ones((), dtype))
    state = lbfgs_start(fn, v, args, options=options)
    g0 = lbfgs_iteration(fn, v, state, args, options=options, max_evals=0)[3]
    args = (u, jnp.sqrt(jnp.minimum(1.0, 1.0 / g0)))
    scale = float(args[1])
    state = lbfgs_start(fn, v, args, options=options)
    prev, converged, it = np.inf, False, 0
    while it < max_iter:
        it += 1
        v, state, value, gmax, _, ok = lbfgs_iteration(fn, v, state, args, options=options)
        value = float(value)
        if not bool(ok):
            break
        # gtol applies to the gradient in u: d/du = (d/dv) / c.
        small_step = abs(prev - value) <= ftol * max(1.0, abs(value))
        if float(gmax) / scale <= gtol or small_step:
            converged = True
            break
        prev = value
    u = args[0] + args[1] * v
    m_paths = sim(u)
    J = jax.jacrev(lambda v: jnp.mean(sim(v), 0))(u)
    S = jnp.cov(m_paths.T)
    W = jnp.diag(weights)
    Om = (1 + 1 / n_paths) * S
    H = J.T @ W @ J
    bread = small_solve(H, jnp.eye(H.shape[0], dtype=H.dtype))
    cov = bread @ J.T @ W @ Om @ W @ J @ bread
    return MomentResult(
        parametrisation=param,
        u=np.asarray(u),
        covariance=np.asarray(cov),
        loss=float(loss(u)),
        converged=converged,
        iterations=it,
        seconds=time.perf_counter() - t0,
        observed=np.asarray(observed),
        simulated=np.asarray(jnp.mean(m_paths, 0)),
    )
