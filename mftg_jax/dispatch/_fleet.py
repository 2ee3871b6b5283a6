r"""The power stations of a single-bus system: capacities and (linear or quadratic) costs.

Station $k$ produces $s_k \in [0, \bar s_k]$ at cost $C_k(s) = p_k s + q_k s^2$ (the cost
convention of PyPSA's `marginal_cost` and `marginal_cost_quadratic`), marginal cost
$C_k'(s) = p_k + 2 q_k s$ (slides, "Structure of the solution": $p_{jk}$, $\bar s_{jk}$).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np

from .._validation import check_field, is_concrete


def _vector(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


def per_station(v: Array, like: Array) -> Array:
    """`v` (one entry per station) reshaped to broadcast against `like` (`... m`)."""
    return v.reshape((1,) * (jnp.ndim(like) - 1) + (-1,))


class Fleet(eqx.Module):
    r"""Power stations $k = 1..m$ with capacity $\bar s_k$ and cost $p_k s + q_k s^2$.

    **Arguments:**

    - `capacity`: $\bar s_k > 0$.
    - `cost`: the linear (constant marginal) cost $p_k$, any real.
    - `quadratic`: the quadratic coefficient $q_k \ge 0$ (default $0$: the merit order of
      constant marginal costs); a station with $q_k = 0$ is linear, one with $q_k > 0$ has a
      rising marginal cost $p_k + 2q_k s$.
    - `owner`: optional producer index $j$ of each station (integers $\ge 0$, default: station
      $k$ is owned by producer $k$), used by `production_by_owner`.
    """

    capacity: Float[Array, " m"] = eqx.field(converter=_vector)
    cost: Float[Array, " m"] = eqx.field(converter=_vector)
    quadratic: Float[Array, " m"] = eqx.field(converter=_vector, default=0.0)
    owner: tuple[int, ...] | None = eqx.field(static=True, default=None)

    def __init__(self, capacity, cost, quadratic=0.0, owner=None):
        self.capacity = capacity
        self.cost = cost
        q = _vector(quadratic)
        self.quadratic = jnp.broadcast_to(q, jnp.shape(_vector(cost))) if q.shape == (1,) else q
        self.owner = None if owner is None else tuple(int(j) for j in np.ravel(owner))

    def __check_init__(self):
        m = self.capacity.shape[-1]
        if m < 1:
            raise ValueError("fleet.capacity must have at least one station (m >= 1)")
        for name in ("cost", "quadratic"):
            if getattr(self, name).shape != self.capacity.shape:
                raise ValueError(
                    f"fleet.{name} must have one entry per station ({m}), got shape "
                    f"{getattr(self, name).shape}"
                )
        check_field("fleet.capacity", self.capacity, "> 0", lambda v: v > 0)
        check_field("fleet.cost", self.cost, "finite reals")
        check_field("fleet.quadratic", self.quadratic, ">= 0", lambda v: v >= 0)
        if self.owner is not None:
            if len(self.owner) != m:
                raise ValueError(f"fleet.owner must have one entry per station ({m})")
            if min(self.owner) < 0:
                raise ValueError(f"fleet.owner must be integers >= 0, got {list(self.owner)}")

    @property
    def m(self) -> int:
        """The number of stations."""
        return self.capacity.shape[-1]

    @property
    def total_capacity(self) -> Array:
        r"""$W = \sum_k \bar s_k$, the largest demand the fleet covers without mismatch."""
        return jnp.sum(self.capacity, axis=-1)

    @property
    def linear(self) -> Array:
        """Boolean mask of the stations with a constant marginal cost ($q_k = 0$)."""
        return self.quadratic == 0

    @property
    def concrete(self) -> bool:
        return is_concrete(self.capacity, self.cost, self.quadratic)

    def marginal_cost(self, s: Float[ArrayLike, "... m"]) -> Float[Array, "... m"]:
        r"""$C_k'(s_k) = p_k + 2 q_k s_k$."""
        s = jnp.asarray(s)
        return per_station(self.cost, s) + 2 * per_station(self.quadratic, s) * s

    def station_cost(self, s: Float[ArrayLike, "... m"]) -> Float[Array, "... m"]:
        r"""$C_k(s_k) = p_k s_k + q_k s_k^2$."""
        s = jnp.asarray(s)
        return per_station(self.cost, s) * s + per_station(self.quadratic, s) * s * s

    def merit_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""The stations by increasing marginal cost at zero output (slides: $PS_n$ the $n$-th
        cheapest): `(order, cost, cumulative)` with `cumulative[n]` $= \sum_{n' \le n} W_{n'}$
        (NumPy, concrete fleets)."""
        c = np.asarray(self.cost)
        order = np.argsort(c, kind="stable")
        return order, c[order], np.cumsum(np.asarray(self.capacity)[order])

    def production_by_owner(self, s: Float[ArrayLike, "... m"]) -> Float[Array, "... J"]:
        r"""$S_j = \sum_{k \in j} s_{jk}$, the production of each producer $j$."""
        s = jnp.asarray(s)
        owner = np.arange(self.m) if self.owner is None else np.asarray(self.owner)
        onehot = jnp.asarray(owner[:, None] == np.arange(owner.max() + 1)[None, :], s.dtype)
        return jnp.tensordot(s, onehot, axes=1)
