r"""Stochastic loads with jumps and a common (system-wide) noise, on the shared noise paths.

The load deviation at load bus $i$ follows an Ornstein-Uhlenbeck process driven by Levy
noise,

$$dL_i = -\kappa L_i\,dt + \sigma_i\,dW_i + dJ_i + \sigma_o\,dW_o + dJ_o,\qquad L_i(0) = 0,$$

with independent Brownian motions $W_i$, compensated compound-Poisson $J_i$ (intensity $\nu$,
sizes $Y$), and one common Brownian $W_o$ and compensated compound-Poisson $J_o$ shared by all
buses; the bus injection is $P_i - L_i(t)$. On the grid $t_k = k\Delta t$ the scheme is exact
in distribution: $L_{k+1} = e^{-\kappa\Delta t}L_k + \int_{t_k}^{t_{k+1}}
e^{-\kappa(t_{k+1}-s)}dL^{noise}_s$, the weighted increments drawn by the shared counter-based
[`GridLevyPath`][mftg_jax.GridLevyPath] (so a scenario's path depends only
on the key and the scenario index). Between grid points the swing solver sees the path
linearly interpolated (a random ODE; the load path itself has the exact law on the grid).

Moments (tests): $E[L_i(t)] = 0$ and
$\mathrm{Cov}(L_i(t), L_j(t)) = (\delta_{ij}(\sigma_i^2 + \nu E[Y^2]) + \sigma_o^2 +
\nu_o E[Y_o^2])\,(1 - e^{-2\kappa t})/(2\kappa)$ at noisy buses $i, j$ (the noise,
idiosyncratic and common, acts at the buses with $\sigma_i > 0$ only).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray
import numpy as np

from .._noise._jumps import CompoundPoisson, no_jumps
from .._noise._levy_path import GridLevyPath, poisson_max_count
from .._validation import check_field
from ._network import Network


class LoadPath(eqx.Module):
    r"""A load-deviation path on a grid, $\Delta P(t) = -L(t)$ linearly interpolated.

    **Fields:** `ts` `(K+1,)`, `L` `(K+1, n)` (p.u.).
    """

    ts: Float[Array, " K"]
    L: Float[Array, "K n"]

    def evaluate(self, t) -> Float[Array, " n"]:
        """The injection change $-L(t)$ at time `t`, shape `(n,)`."""
        return -jax.vmap(lambda col: jnp.interp(t, self.ts, col), in_axes=1)(self.L)


class StochasticLoads(eqx.Module):
    r"""The load noise: reversion $\kappa$, idiosyncratic $\sigma_i$ and jumps, common
    $\sigma_o$ and jumps (module docstring).

    **Arguments:**

    - `sigma`: $\sigma_i \ge 0$ per bus (p.u./$\sqrt{s}$); zero at buses without load noise.
    - `reversion`: $\kappa > 0$ (1/s).
    - `jumps`: the idiosyncratic [`CompoundPoisson`][mftg_jax.CompoundPoisson]
      (applied at the buses with $\sigma_i > 0$); default none.
    - `common_sigma`: $\sigma_o \ge 0$; `common_jumps`: the common jumps; default none.
    """

    sigma: Float[Array, " n"] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))
    reversion: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))
    jumps: CompoundPoisson = eqx.field(default_factory=no_jumps)
    common_sigma: Float[Array, ""] = eqx.field(
        default=0.0, converter=lambda x: jnp.asarray(x, dtype=float)
    )
    common_jumps: CompoundPoisson = eqx.field(default_factory=no_jumps)

    def __check_init__(self):
        if self.sigma.ndim != 1:
            raise ValueError(f"StochasticLoads.sigma must be one per bus, got {self.sigma.shape}")
        check_field("StochasticLoads.sigma", self.sigma, ">= 0", lambda v: v >= 0)
        check_field("StochasticLoads.reversion", self.reversion, "> 0 (1/s)", lambda v: v > 0)
        check_field("StochasticLoads.common_sigma", self.common_sigma, ">= 0", lambda v: v >= 0)

    def variance(self, t) -> Float[Array, "n n"]:
        """The covariance matrix of $L(t)$ (closed form, module docstring)."""
        k = self.reversion
        factor = -jnp.expm1(-2 * k * jnp.asarray(t)) / (2 * k)
        on = (self.sigma > 0).astype(float)
        idio = self.sigma**2 + on * self.jumps.variance_rate
        common = self.common_sigma**2 + self.common_jumps.variance_rate
        return factor * (jnp.diag(idio) + common * on[:, None] * on[None, :])

    def path(self, key: PRNGKeyArray, scenario, t1: float, n_steps: int) -> LoadPath:
        """Scenario `scenario`'s load path on `n_steps` grid steps of $[0, t_1]$."""
        n = self.sigma.shape[0]
        dt = float(t1) / n_steps
        k_idio, k_common = jax.random.split(key)
        scen = jnp.asarray(scenario, jnp.uint32)

        def grid(k, paths, jumps):
            rate = float(jumps.intensity) * dt
            return GridLevyPath(k, jnp.asarray(0.0), jnp.asarray(float(t1)), scen,
                                jnp.arange(paths, dtype=jnp.uint32), jumps, n_steps,
                                max_count=poisson_max_count(rate), dtype="float64")  # fmt: skip

        idio, common = grid(k_idio, n, self.jumps), grid(k_common, 1, self.common_jumps)
        on = (self.sigma > 0).astype(float)
        decay = jnp.exp(-self.reversion * dt)

        def step(L, i):
            a = idio.increment(i, decay=self.reversion)
            c = common.increment(i, decay=self.reversion)
            noise = self.sigma * a.brownian + on * a.jumps
            shared = self.common_sigma * c.brownian[0] + jnp.broadcast_to(c.jumps, (1,))[0]
            L = decay * L + noise + on * shared
            return L, L

        _, Ls = jax.lax.scan(step, jnp.zeros(n), jnp.arange(n_steps))
        L = jnp.concatenate([jnp.zeros((1, n)), Ls])
        return LoadPath(jnp.linspace(0.0, float(t1), n_steps + 1), L)


def load_noise(network: Network, sigma: float, reversion: float, **kwargs) -> StochasticLoads:
    r"""[`StochasticLoads`][mftg_jax.frequency.StochasticLoads] with $\sigma_i = \sigma$ at the
    network's load buses ($P_i < 0$) and 0 elsewhere; `kwargs` the jumps and common noise."""
    loads = np.asarray(network.P) < 0
    return StochasticLoads(jnp.where(jnp.asarray(loads), sigma, 0.0), reversion, **kwargs)
