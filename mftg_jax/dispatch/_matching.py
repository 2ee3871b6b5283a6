r"""The risk-sensitive demand-supply matching problem of a producer's stations (slides,
"Producers: how to match the demand?" and "Demand-Supply Matching").

Station $u = (j, k)$ (producer $j$, area $k$) holds an energy state

$$de_u = (a_u - s_u)\,dt + \sigma_u\,dB_u + \int\mu\,\tilde N_u(dt, d\theta),\qquad
s_u \in [0, \bar s_u],$$

with arrival rate $a_u \ge 0$, and bears the cost

$$L_u = \tfrac{q^T_u}{2}(e_u(T) - \bar e_u)^2 + \int_{t_0}^{t_1}
 \tfrac{\kappa_u}{2}(D_u - s_u)^2 + \tfrac{q_u}{2}(e_u - \bar e_u)^2\,dt,$$

the mismatch loss $l_u(D - S) = \tfrac{\kappa_u}2 (D - S)^2$ of the station's share $D_u$ of its
producer's demand. The criterion is the certainty equivalent
$\inf_s \tfrac1{\eta_u}\log E\exp(\eta_u L_u)$ ($\eta_u > 0$ risk averse, $\eta_u = 0$ the
risk-neutral $\inf E L_u$). The noises of different stations are independent, so producer
$j$'s criterion $\tfrac1{\eta_j}\log E\exp(\eta_j\sum_k L_{jk})$ is the sum over its areas of
the stations' values (with $\eta_{jk} = \eta_j$): every station is solved on its own and all
of them at once (vectorised).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._noise._jumps import CompoundPoisson, FixedJumps, NormalJumps
from .._validation import check_field, is_concrete

_PER_STATION = (
    "eta",
    "arrival",
    "demand",
    "kappa",
    "capacity",
    "sigma",
    "q",
    "q_terminal",
    "target",
    "e0",
)


def _vector(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


class MatchingProblem(eqx.Module):
    r"""Stations $u = 1..n$ of the risk-sensitive matching problem (module docstring).

    Every per-station argument is a number (the same for all) or one value per station.

    **Arguments:**

    - `eta`: risk sensitivity $\eta_u \ge 0$ ($0$: risk neutral).
    - `arrival`: arrival rate $a_u \ge 0$.
    - `demand`: the demand share $D_u$ (any real).
    - `kappa`: the mismatch weight $\kappa_u > 0$.
    - `capacity`: $\bar s_u > 0$ (used by the bounded solver
      [`solve_hjb`][mftg_jax.dispatch.solve_hjb]).
    - `sigma`: Brownian volatility $\sigma_u \ge 0$.
    - `q`: running weight on $(e - \bar e)^2$, $\ge 0$; `q_terminal`: terminal weight, $\ge 0$.
    - `target`: the energy level $\bar e_u$; `e0`: the initial energy.
    - `jumps`: compensated compound-Poisson jumps with normal (or fixed) sizes, one law for
      every station (default none).
    - `t0`, `t1`: the horizon.
    """

    eta: Float[Array, " n"] = eqx.field(converter=_vector)
    arrival: Float[Array, " n"] = eqx.field(converter=_vector)
    demand: Float[Array, " n"] = eqx.field(converter=_vector)
    kappa: Float[Array, " n"] = eqx.field(converter=_vector)
    capacity: Float[Array, " n"] = eqx.field(converter=_vector)
    sigma: Float[Array, " n"] = eqx.field(converter=_vector)
    q: Float[Array, " n"] = eqx.field(converter=_vector)
    q_terminal: Float[Array, " n"] = eqx.field(converter=_vector)
    target: Float[Array, " n"] = eqx.field(converter=_vector)
    e0: Float[Array, " n"] = eqx.field(converter=_vector)
    jumps: CompoundPoisson
    t0: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))
    t1: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))

    def __init__(
        self,
        eta,
        arrival,
        demand,
        kappa,
        capacity,
        sigma=0.0,
        q=0.0,
        q_terminal=1.0,
        target=0.0,
        e0=0.0,
        jumps=None,
        t0=0.0,
        t1=1.0,
    ):
        values = dict(
            eta=eta,
            arrival=arrival,
            demand=demand,
            kappa=kappa,
            capacity=capacity,
            sigma=sigma,
            q=q,
            q_terminal=q_terminal,
            target=target,
            e0=e0,
        )
        arrays = {k: _vector(v) for k, v in values.items()}
        n = max(a.shape[-1] for a in arrays.values())
        for k, a in arrays.items():
            if a.shape[-1] not in (1, n):
                raise ValueError(
                    f"stations.{k} must be a number or have one entry per station ({n}), "
                    f"got {a.shape[-1]} entries"
                )
            setattr(self, k, jnp.broadcast_to(a, (n,)))
        # Zero-intensity normal jumps: the same pytree as jumps with normal sizes, so that
        # problems with and without jumps share their compiled programs.
        self.jumps = CompoundPoisson(0.0, NormalJumps(0.0, 0.0)) if jumps is None else jumps
        self.t0 = t0
        self.t1 = t1

    def __check_init__(self):
        check_field("stations.eta", self.eta, ">= 0", lambda v: v >= 0)
        check_field("stations.arrival", self.arrival, ">= 0", lambda v: v >= 0)
        check_field("stations.demand", self.demand, "finite reals")
        check_field("stations.kappa", self.kappa, "> 0", lambda v: v > 0)
        check_field("stations.capacity", self.capacity, "> 0", lambda v: v > 0)
        check_field("stations.sigma", self.sigma, ">= 0", lambda v: v >= 0)
        check_field("stations.q", self.q, ">= 0", lambda v: v >= 0)
        check_field("stations.q_terminal", self.q_terminal, ">= 0", lambda v: v >= 0)
        check_field("stations.target", self.target, "finite reals")
        check_field("stations.e0", self.e0, "finite reals")
        if not isinstance(self.jumps.size, NormalJumps | FixedJumps):
            raise ValueError("stations.jumps must have normal or fixed sizes")
        if is_concrete(self.t0, self.t1) and not float(self.t1) > float(self.t0):
            raise ValueError(f"t1 must be > t0, got t0={float(self.t0)}, t1={float(self.t1)}")

    @property
    def n(self) -> int:
        """The number of stations."""
        return self.eta.shape[-1]

    @property
    def has_jumps(self) -> bool:
        """Whether the jumps are active (concrete intensity > 0 and non-zero sizes)."""
        j = self.jumps
        if not is_concrete(j.intensity):
            return True
        return bool(np.asarray(j.intensity) > 0 and np.asarray(j.size.second_moment()) > 0)

    @property
    def jump_size_moments(self) -> tuple[Array, Array]:
        """The mean and the standard deviation of the (normal) jump size."""
        m = self.jumps.size.mean()
        return m, jnp.sqrt(jnp.maximum(self.jumps.size.second_moment() - m * m, 0.0))

    @property
    def theta(self) -> Float[Array, " n"]:
        r"""$\theta_u = 1/\kappa_u - \eta_u\sigma_u^2$, the effective control gain: the
        risk-sensitive Riccati equation is $\dot P = \theta P^2 - q$."""
        return 1 / self.kappa - self.eta * self.sigma**2

    @property
    def variance_rate(self) -> Float[Array, " n"]:
        r"""$\sigma_u^2 + \nu E[Y^2]$, the variance per unit time of the noise."""
        return self.sigma**2 + self.jumps.variance_rate
