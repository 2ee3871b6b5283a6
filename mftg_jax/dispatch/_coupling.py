r"""Consumer response coupled to the producers' price game ([`mftg_jax.price`][]).

In the price game $dp = \eta(a - \sum_j u_j - p)\,dt + \dots$ the demand at price $p$ is
$a - p$. Price-responsive consumers add their aggregate demand at the expected price,
$\sum_i d_i^*(\hat p)$, to the intercept. With a constant intercept the stationary
equilibrium price is affine in it, $\bar p(a) = \bar p_0 + \bar p_1 a$ (the price game's
stationary Riccati values), and the coupled stationary price solves the monotone fixed point

$$p^* = \bar p\big(a_0 + \textstyle\sum_i d_i^*(p^*)\big)$$

($p - \bar p(a_0 + d(p))$ is increasing: bisection in
$[\bar p(a_0), \bar p(a_0 + d(\bar p(a_0)))]$). The equilibrium price path of the game with
the coupled intercept $a^* = a_0 + d(p^*)$ is then recomputed and set against the
fixed-demand path. The consumers respond to the stationary price level: a seasonal
intercept keeps its harmonics and has its mean shifted.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np
import optimistix as optx

from .. import price
from ._utility import AbstractUtility


class CoupledPrice(eqx.Module):
    r"""The price game with and without the consumers' response.

    **Fields:** `price` ($p^*$, the coupled stationary price), `fixed_price` ($\bar p(a_0)$),
    `intercept` ($a^*$), `response` ($\sum_i d_i^*(p^*)$), `residual`
    ($|p^* - \bar p(a^*)|$, recomputed from the coupled game), `times`, `path`
    ($\hat p(t)$ of the coupled game), `fixed_path` ($\hat p(t)$ at fixed demand),
    `game` (the coupled [`PriceGame`][mftg_jax.PriceGame]).
    """

    price: Float[Array, ""]
    fixed_price: Float[Array, ""]
    intercept: Float[Array, ""]
    response: Float[Array, ""]
    residual: Float[Array, ""]
    times: Float[Array, " T"]
    path: Float[Array, " T"]
    fixed_path: Float[Array, " T"]
    game: price.PriceGame


def _with_intercept(game: price.PriceGame, a) -> price.PriceGame:
    return eqx.tree_at(lambda g: g.market.a.mean, game, jnp.asarray(a, dtype=float))


def couple_price_game(
    game: price.PriceGame, consumers: AbstractUtility, n_times: int = 101
) -> CoupledPrice:
    r"""The consumers' response fed into the price game's demand intercept (module
    docstring).

    **Arguments:**

    - `game`: a [`PriceGame`][mftg_jax.PriceGame] (its intercept $a_0$ is the fixed demand).
    - `consumers`: an [`AbstractUtility`][mftg_jax.dispatch.AbstractUtility] group.
    - `n_times`: points of the returned price paths on $[t_0, t_1]$.

    **Returns:** a [`CoupledPrice`][mftg_jax.dispatch.CoupledPrice].
    """
    a0 = float(game.market.a.mean)
    p_at = lambda a: float(price.stationary_price(_with_intercept(game, a)))  # noqa: E731
    b0 = p_at(a0)
    b1 = p_at(a0 + 1.0) - b0

    def h(p, _):
        return p - (b0 + b1 * consumers.total_demand(p))

    upper = b0 + b1 * float(consumers.total_demand(b0))
    sol = optx.root_find(
        h,
        optx.Bisection(rtol=1e-14, atol=1e-14),
        jnp.asarray(0.5 * (b0 + upper)),
        options=dict(lower=b0, upper=upper + 1e-12 * (1 + abs(upper))),
        max_steps=200,
        throw=False,
    )
    p_star = sol.value
    response = consumers.total_demand(p_star)
    coupled = _with_intercept(game, a0 + response)
    residual = jnp.abs(p_star - price.stationary_price(coupled))
    ts = jnp.linspace(game.market.t0, game.market.t1, n_times)
    path = price.solve_expectations(price.solve_riccati(coupled))
    fixed = price.solve_expectations(price.solve_riccati(game))
    if not np.isfinite(float(residual)):
        raise ValueError("couple_price_game: the coupled stationary price is not finite")
    return CoupledPrice(
        price=p_star,
        fixed_price=jnp.asarray(b0),
        intercept=jnp.asarray(a0) + response,
        response=response,
        residual=residual,
        times=ts,
        path=jax.vmap(path.phat)(ts),
        fixed_path=jax.vmap(fixed.phat)(ts),
        game=coupled,
    )
