r"""The best-response certificate of an auction equilibrium.

For bidder $i$ and each cost $c$ on a grid, the best reply to the others' equilibrium bids,
$\max_b (b - c)\prod_{k\ne i}G_k(\lambda_k(b))$ (exact win probability from their
distributions), is found on a dense bid grid and refined by golden-section search around the
best grid point; it is compared with the equilibrium bid's profit $U_i(c)$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._solution import AuctionSolution

_GOLDEN = 0.5 * (jnp.sqrt(5.0) - 1.0)


class AuctionCertificate(eqx.Module):
    r"""Best-response gaps of an auction equilibrium.

    **Fields:**

    - `costs`: `(K, n)` the cost grid of each bidder.
    - `profit`: `(K, n)` $U_i(c)$ at the equilibrium bids.
    - `best_profit`: `(K, n)` the best-response profit.
    - `best_bid`, `bid`: `(K, n)` the best-response and equilibrium bids.
    - `gap`: `(K,)` $\max_c [\text{best} - U_i(c)] / \max_c U_i(c)$, the relative gap of each
      bidder (normalised by its largest profit, at its lowest cost).
    """

    costs: Float[Array, "K n"]
    profit: Float[Array, "K n"]
    best_profit: Float[Array, "K n"]
    best_bid: Float[Array, "K n"]
    bid: Float[Array, "K n"]
    gap: Float[Array, " K"]


@eqx.filter_jit
def best_response_gap(
    solution: AuctionSolution, n_costs: int = 201, n_bids: int = 2001, refine_steps: int = 60
) -> AuctionCertificate:
    r"""The best-response certificate (module docstring).

    **Arguments:** `solution`; `n_costs` costs per bidder, uniform on its support; `n_bids`
    bids on $[\underline b, \bar c]$ for the grid search; `refine_steps` golden-section
    steps on the two grid cells around the best grid bid.

    **Returns:** an [`AuctionCertificate`][mftg_jax.auction.AuctionCertificate].
    """
    auction = solution.auction
    R = auction.top
    corner = solution.corner
    grid = jnp.linspace(solution.b_low, R, n_bids)
    p_grid = jax.vmap(lambda b: solution.win_probabilities(b, corner))(grid)  # (n_bids, K)
    h = grid[1] - grid[0]
    frac = jnp.linspace(0.0, 1.0, n_costs)

    def bidder(i):
        lo = auction.lows[i]
        costs = lo + frac * (R - lo)
        profit = solution.expected_profits(i, costs)
        bid = solution.bids(i, costs)
        p_i = jnp.take(p_grid, i, axis=1)

        def payoff(b, c):
            return (b - c) * solution.win_probabilities(b, corner)[i]

        def best(c):
            values = (grid - c) * p_i
            j = jnp.argmax(values)
            a = jnp.maximum(grid[j] - h, solution.b_low)
            b = jnp.minimum(grid[j] + h, R)

            def step(_, ab):
                a, b = ab
                x1 = b - _GOLDEN * (b - a)
                x2 = a + _GOLDEN * (b - a)
                left = payoff(x1, c) > payoff(x2, c)
                return jnp.where(left, a, x1), jnp.where(left, x2, b)

            a, b = jax.lax.fori_loop(0, refine_steps, step, (a, b))
            x = 0.5 * (a + b)
            vx = payoff(x, c)
            better = vx > values[j]
            return jnp.where(better, x, grid[j]), jnp.maximum(vx, values[j])

        best_bid, best_profit = jax.vmap(best)(costs)
        return costs, profit, best_profit, best_bid, bid

    costs, profit, best_profit, best_bid, bid = jax.vmap(bidder)(jnp.arange(auction.n_bidders))
    gap = jnp.max(best_profit - profit, axis=1) / jnp.max(profit, axis=1)
    return AuctionCertificate(costs, profit, best_profit, best_bid, bid, gap)
