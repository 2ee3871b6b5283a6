r"""The prosumer's side of the market (slides, "Prosumers market interaction: consumption"):
sell in the auction or buy, depending on the available energy reserve.

A prosumer with demand $d$, reserve $e$, generation cost $c(s) = c_1 s + c_2 s^2/2$ and
utility $w(y) = \theta\log(1 + y)$ either

- buys $-x > 0$ (net position $x < 0$), generating $s = x + d - e \ge 0$ (the slides'
  $x + d_i + \epsilon$ with $\epsilon = -e$), with payoff
  $\pi_B(x) = -c(s) + w(-x) + p x + p_D x^2/2$ (the slides' $\hat r_i$ for $\hat q_i < 0$ with
  the unit price $p + p_D x/2$). Its first-order condition is
  $-c'(x + d - e) - w'(-x) + p + p_D x = 0$; the slides print $+c'$ (docs/auction.md);
- or offers $q$ units in the auction as bidder `bidder`, at the unit cost
  $\kappa = [c(s_0 + q) - c(s_0)]/q$, $s_0 = \max(d - e, 0)$, with payoff
  $\pi_S = w(d) - c(s_0) + q\,U(\kappa)$, $U$ the equilibrium interim profit per unit.

It sells when $\pi_S \ge \pi_B(x^*)$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import optimistix as optx

from .._validation import check_field
from ._solution import AuctionSolution


def _float(x):
    return jnp.asarray(x, dtype=float)


class Prosumer(eqx.Module):
    r"""A prosumer of the module docstring.

    **Arguments:** `demand` $d > 0$; `offer` $q > 0$ the quantity offered in the auction;
    `c1 >= 0`, `c2 > 0` the generation cost coefficients; `theta > 0` the utility scale;
    `price` $p \ge 0$ the market price; `price_slope` $p_D$ (with $p_D < c_2$ the buying
    payoff is concave); `bidder` (static) its index in the auction.
    """

    demand: Float[Array, ""] = eqx.field(converter=_float)
    offer: Float[Array, ""] = eqx.field(converter=_float)
    c1: Float[Array, ""] = eqx.field(converter=_float)
    c2: Float[Array, ""] = eqx.field(converter=_float)
    theta: Float[Array, ""] = eqx.field(converter=_float)
    price: Float[Array, ""] = eqx.field(converter=_float)
    price_slope: Float[Array, ""] = eqx.field(converter=_float)
    bidder: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_field("Prosumer.demand", self.demand, "> 0", lambda v: v > 0)
        check_field("Prosumer.offer", self.offer, "> 0", lambda v: v > 0)
        check_field("Prosumer.c1", self.c1, ">= 0", lambda v: v >= 0)
        check_field("Prosumer.c2", self.c2, "> 0", lambda v: v > 0)
        check_field("Prosumer.theta", self.theta, "> 0", lambda v: v > 0)
        check_field("Prosumer.price", self.price, ">= 0", lambda v: v >= 0)
        check_field("Prosumer.price_slope", self.price_slope - self.c2, "< c2", lambda v: v < 0)
        if self.bidder < 0:
            raise ValueError(f"Prosumer.bidder must be >= 0, got {self.bidder}")

    def cost(self, s):
        return self.c1 * s + 0.5 * self.c2 * s * s

    def utility(self, y):
        return self.theta * jnp.log1p(y)

    def buy_payoff(self, x, reserve):
        r"""$\pi_B(x) = -c(\max(x + d - e, 0)) + w(-x) + p x + p_D x^2/2$ (no generation
        once the reserve covers the demand)."""
        return (
            -self.cost(jnp.maximum(x + self.demand - reserve, 0.0))
            + self.utility(-x)
            + self.price * x
            + 0.5 * self.price_slope * x * x
        )

    def buy_foc(self, x, reserve):
        r"""$\pi_B'(x) = -c'(x + d - e) - w'(-x) + p + p_D x$."""
        s = x + self.demand - reserve
        return -(self.c1 + self.c2 * s) - self.theta / (1.0 - x) + self.price + self.price_slope * x


def _foc(x, args):
    prosumer, reserve = args
    return prosumer.buy_foc(x, reserve)


@eqx.filter_jit
def buy_position(prosumer: Prosumer, reserves: Float[Array, " n"]) -> Float[Array, " n"]:
    r"""The optimal buying position $x^* \in [e - d, 0]$ for each reserve $e < d$: the root of
    the first-order condition (`optimistix.Bisection`, `jax.vmap`ped over the reserves), or
    the end of the interval where the payoff is monotone; $x^* = 0$ when $e \ge d$."""

    def one(e):
        lower = jnp.minimum(e - prosumer.demand, 0.0)
        upper = jnp.asarray(0.0)
        f_lo, f_hi = prosumer.buy_foc(lower, e), prosumer.buy_foc(upper, e)
        lower_s = jnp.where(lower < upper, lower, upper - 1.0)
        sol = optx.root_find(
            _foc,
            optx.Bisection(rtol=1e-12, atol=1e-12, flip=True),
            0.5 * (lower_s + upper),
            args=(prosumer, e),
            options=dict(lower=lower_s, upper=upper),
            max_steps=200,
            throw=False,
        )
        x = jnp.where(f_hi >= 0, upper, jnp.where(f_lo <= 0, lower, sol.value))
        return jnp.where(lower < upper, x, 0.0)

    return jax.vmap(one)(_float(reserves))


class ProsumerDecision(eqx.Module):
    r"""The prosumer's choice for each reserve.

    **Fields:** `reserve` $e$; `buy_position` $x^*$; `buy_payoff` $\pi_B(x^*)$;
    `unit_cost` $\kappa$; `sell_payoff` $\pi_S$; `sells` ($\pi_S \ge \pi_B$).
    """

    reserve: Float[Array, " n"]
    buy_position: Float[Array, " n"]
    buy_payoff: Float[Array, " n"]
    unit_cost: Float[Array, " n"]
    sell_payoff: Float[Array, " n"]
    sells: Array


@eqx.filter_jit
def decide(
    prosumer: Prosumer, solution: AuctionSolution, reserves: Float[Array, " n"]
) -> ProsumerDecision:
    r"""Sell (bid in the auction) or buy, for each reserve (module docstring). The unit cost
    is clipped to the bidder's support: below it the prosumer bids the lowest bid and wins
    for sure; at or above the top it cannot win."""
    e = _float(reserves)
    i = prosumer.bidder
    x = buy_position(prosumer, e)
    pb = prosumer.buy_payoff(x, e)
    s0 = jnp.maximum(prosumer.demand - e, 0.0)
    s1 = jnp.maximum(prosumer.demand - e + prosumer.offer, 0.0)
    kappa = (prosumer.cost(s1) - prosumer.cost(s0)) / prosumer.offer
    lo = solution.auction.lows[i]
    top = solution.auction.top
    inside = jnp.clip(kappa, lo, top)
    profit = solution.expected_profits(i, inside)
    profit = jnp.where(kappa < lo, solution.b_low - kappa, jnp.where(kappa >= top, 0.0, profit))
    ps = prosumer.utility(prosumer.demand) - prosumer.cost(s0) + prosumer.offer * profit
    return ProsumerDecision(e, x, pb, kappa, ps, ps >= pb)
