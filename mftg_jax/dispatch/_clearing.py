r"""Market clearing with the merit-order supply: price takers and a large (price-moving)
consumer (slides, "Consumer response": the demand depends on the price, the price on the
supply).

**Price takers.** The clearing price solves $Q(p) \in [S(p^-), S(p^+)]$ with
$Q(p) = D_0 + \sum_i d_i^*(p)$ (nonincreasing) and the supply relation $S$ of the fleet
(nondecreasing, with jumps at the linear costs): the excess supply $S(p^-) - Q(p)$ is
increasing, its crossing is found by `optimistix` bisection and snapped to a linear cost
when it lies within rounding of one (then the marginal station is partly loaded).

**A large consumer** $i$ anticipates that the price clears the residual market,
$p = P(d) : S(P) = d + Q_{-i}(P)$, and maximises $w_i(d) - P(d)\,d$ (a monopsony: it buys
where $w_i'(d) = P(d) + P'(d)\,d$, less than a price taker would). The payoff is maximised
over a grid of $d$ (every point a vectorised clearing) and refined by golden-section search.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np
import optimistix as optx

from ._dispatch import _quad_supply, bucket, dispatch, DispatchSolution
from ._fleet import Fleet, per_station
from ._utility import AbstractUtility

_BISECTION = optx.Bisection(rtol=1e-15, atol=1e-15, flip=False)


class MarketClearing(eqx.Module):
    r"""A cleared market.

    **Fields:** `price` ($p^*$), `quantity` ($Q(p^*)$), `consumption` ($d_i^*$ per consumer),
    `dispatch` (the [`DispatchSolution`][mftg_jax.dispatch.DispatchSolution] at $Q$),
    `residual` ($\mathrm{dist}(Q, [S(p^-), S(p^+)])/W$, the clearing certificate), and
    `large_consumption` (the large consumer's $d$, `nan` for price takers only).
    """

    price: Float[Array, "..."]
    quantity: Float[Array, "..."]
    consumption: Float[Array, "... n"]
    dispatch: DispatchSolution
    residual: Float[Array, "..."]
    large_consumption: Float[Array, "..."]


def supply_bounds(fleet: Fleet, p) -> tuple[Array, Array]:
    r"""$S(p^-)$ and $S(p^+)$: the fleet's output at price $p$ with the linear stations at
    $p_k = p$ off and on."""
    p = jnp.asarray(p)[..., None]
    sq = jnp.sum(_quad_supply(fleet, p), axis=-1)
    W = per_station(jnp.where(fleet.linear, fleet.capacity, 0.0), p)
    cost = per_station(fleet.cost, p)
    below = jnp.sum(jnp.where(cost < p, W, 0.0), axis=-1)
    at = jnp.sum(jnp.where(cost == p, W, 0.0), axis=-1)
    return sq + below, sq + below + at


def _excess(u, args):
    fleet, consumers, base, lo, hi = args
    p = lo + (hi - lo) * u
    s_minus, _ = supply_bounds(fleet, p)
    Q = base + consumers.total_demand(p)
    return (s_minus - jnp.minimum(Q, fleet.total_capacity)) / fleet.total_capacity


def _bracket(fleet: Fleet, consumers: AbstractUtility, base):
    lo = jnp.min(fleet.cost)
    hi = jnp.max(fleet.marginal_cost(fleet.capacity))
    return lo, hi + 1.0


def _clear_one(fleet, consumers, base, lo, hi):
    root = optx.root_find(
        _excess,
        _BISECTION,
        jnp.asarray(0.5, dtype=float),
        args=(fleet, consumers, base, lo, hi),
        options=dict(lower=0.0, upper=1.0),
        max_steps=128,
        throw=False,
    )
    p = lo + (hi - lo) * root.value
    near = fleet.linear & (jnp.abs(fleet.cost - p) <= 1e-12 * (1 + jnp.abs(p)))
    p = jnp.where(jnp.any(near), jnp.max(jnp.where(near, fleet.cost, -jnp.inf)), p)
    return p


def _hi_price(fleet: Fleet, consumers: AbstractUtility, base) -> float:
    # A price at which the consumers' demand fits in the capacity (scarcity pricing).
    W = float(fleet.total_capacity)
    hi = float(jnp.max(fleet.marginal_cost(fleet.capacity)))
    for _ in range(200):
        if float(np.max(np.asarray(base))) + float(consumers.total_demand(hi)) <= W:
            return hi
        hi = 2 * hi + 1.0
    raise ValueError("consumers: demand exceeds the fleet's capacity at every price")


def clear_market(
    fleet: Fleet, consumers: AbstractUtility, base_demand: Float[Array, "..."] = 0.0
) -> MarketClearing:
    r"""The price-taking market equilibrium for each base demand $D_0$ (module docstring).

    **Arguments:**

    - `fleet`: the supply side, a [`Fleet`][mftg_jax.dispatch.Fleet].
    - `consumers`: an [`AbstractUtility`][mftg_jax.dispatch.AbstractUtility] group of price
      takers.
    - `base_demand`: the price-inelastic demand $D_0 \ge 0$ (any shape; vectorised).

    **Returns:** a [`MarketClearing`][mftg_jax.dispatch.MarketClearing]; at a scarcity price
    (demand above capacity at the most expensive station's cost) the price rises until the
    demand fits.
    """
    base = jnp.asarray(base_demand, dtype=float)
    W = float(fleet.total_capacity)
    if np.any(np.asarray(base) < 0) or np.any(np.asarray(base) > W):
        raise ValueError(f"base_demand must be in [0, {W:g}] (the fleet's total capacity)")
    lo = jnp.min(fleet.cost)
    hi = jnp.asarray(_hi_price(fleet, consumers, base))
    flat = base.reshape(-1)
    n = flat.shape[0]
    padded = jnp.concatenate([flat, jnp.broadcast_to(flat[:1], (bucket(n) - n,))])
    out = _clear(fleet, consumers, padded, lo, hi)
    return jax.tree.map(
        lambda x: x[:n].reshape(base.shape + x.shape[1:]) if jnp.ndim(x) else x, out
    )


@eqx.filter_jit
def _clear(fleet, consumers, flat, lo, hi):
    p = jax.vmap(_clear_one, in_axes=(None, None, 0, None, None))(fleet, consumers, flat, lo, hi)
    d = consumers.demand(p)
    Q = jnp.clip(flat + jnp.sum(d, axis=-1), 0.0, fleet.total_capacity)
    sm, sp = supply_bounds(fleet, p)
    res = jnp.maximum(jnp.maximum(sm - Q, Q - sp), 0.0) / fleet.total_capacity
    return MarketClearing(
        price=p,
        quantity=Q,
        consumption=d,
        dispatch=dispatch(fleet, Q),
        residual=res,
        large_consumption=jnp.full(flat.shape, jnp.nan),
    )


def clear_with_large_consumer(
    fleet: Fleet,
    large: AbstractUtility,
    consumers: AbstractUtility | None = None,
    base_demand: float = 0.0,
    n_grid: int = 513,
) -> MarketClearing:
    r"""The market with one large consumer who moves the price (module docstring).

    **Arguments:**

    - `fleet`: the supply, a [`Fleet`][mftg_jax.dispatch.Fleet].
    - `large`: the large consumer's utility (a group of one).
    - `consumers`: the price takers (default none).
    - `base_demand`: the inelastic demand $D_0$.
    - `n_grid`: grid points of the search over the large consumer's demand.

    **Returns:** a [`MarketClearing`][mftg_jax.dispatch.MarketClearing] with
    `large_consumption` its demand and `consumption` the price takers'.
    """
    from ._utility import QuadraticUtility

    if large.n != 1:
        raise ValueError(f"large must be a group of one consumer, got {large.n}")
    if consumers is None:
        consumers = QuadraticUtility([0.0], [1.0])  # demands nothing at positive prices
    W = float(fleet.total_capacity)
    if not 0 <= base_demand <= W:
        raise ValueError(f"base_demand must be in [0, {W:g}]")
    dmax = W - base_demand
    lo = jnp.min(fleet.cost)
    hi = jnp.asarray(_hi_price(fleet, consumers, jnp.asarray(W)))
    d = _large(fleet, large, consumers, jnp.asarray(base_demand, dtype=float), dmax, lo, hi, n_grid)
    clr = clear_market(fleet, consumers, base_demand + d)
    return eqx.tree_at(lambda c: c.large_consumption, clr, d)


@eqx.filter_jit
def _large(fleet, large, consumers, base, dmax, lo, hi, n_grid: int):
    def payoff(d):
        p = jax.vmap(_clear_one, in_axes=(None, None, 0, None, None))(
            fleet, consumers, base + d, lo, hi
        )
        return large.payoff(d[:, None], p)[:, 0]

    ds = jnp.linspace(0.0, dmax, n_grid)
    vals = payoff(ds)
    k = jnp.argmax(vals)
    a = ds[jnp.maximum(k - 1, 0)]
    b = ds[jnp.minimum(k + 1, n_grid - 1)]
    g = (np.sqrt(5) - 1) / 2

    def golden(_, ab):
        a, b = ab
        x1, x2 = b - g * (b - a), a + g * (b - a)
        f = payoff(jnp.stack([x1, x2]))
        return jnp.where(f[0] >= f[1], a, x1), jnp.where(f[0] >= f[1], x2, b)

    a, b = jax.lax.fori_loop(0, 80, golden, (a, b))
    d = 0.5 * (a + b)
    return jnp.where(payoff(d[None])[0] >= vals[k], d, ds[k])
