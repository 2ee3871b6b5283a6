r"""What the auction delivers: the buyer's expected payment, the win probabilities, and a
Monte Carlo of payments and efficiency with standard errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from ._solution import AuctionSolution


def _gauss(a, b, n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    x, w = jnp.asarray(x), jnp.asarray(w)
    return 0.5 * (b - a) * x + 0.5 * (a + b), 0.5 * (b - a) * w


def _nodes(solution: AuctionSolution, n: int):
    # Two panels: the integrated range and the last sliver up to the corner.
    x1, w1 = _gauss(solution.b_low, solution.b_top, n)
    x2, w2 = _gauss(solution.b_top, solution.auction.top, max(n // 8, 8))
    return jnp.concatenate([x1, x2]), jnp.concatenate([w1, w2])


@eqx.filter_jit
def expected_payment(solution: AuctionSolution, n: int = 256) -> Float[Array, ""]:
    r"""The buyer's expected payment, the expected lowest bid:
    $E[\min_i b_i] = \underline b + \int_{\underline b}^{\bar c}\prod_k G_k(\lambda_k(b))\,db$
    (Gauss-Legendre with `n` nodes)."""
    x, w = _nodes(solution, n)
    corner = solution.corner
    g = jax.vmap(lambda b: jnp.prod(solution.survivals(b, corner)))(x)
    return solution.b_low + jnp.sum(w * g)


@eqx.filter_jit
def win_probability(solution: AuctionSolution, n: int = 256) -> Float[Array, " K"]:
    r"""Each bidder's ex-ante probability of winning,
    $P(i \text{ wins}) = \int u_i'(b)\prod_{k \ne i}(1 - u_k(b))\,db$ with
    $u_i(b) = F_i(\lambda_i(b))$ (Gauss-Legendre with `n` nodes); they sum to 1."""
    x, w = _nodes(solution, n)
    corner = solution.corner

    def integrand(b):
        u, du = jax.jvp(lambda y: solution.levels(y, corner), (b,), (jnp.ones_like(b),))
        K = u.shape[0]
        others = ~jnp.eye(K, dtype=bool)
        return du * jnp.prod(jnp.where(others, 1.0 - u[None, :], 1.0), axis=1)

    return jnp.sum(w[:, None] * jax.vmap(integrand)(x), axis=0)


class AuctionMonteCarlo(eqx.Module):
    r"""Monte Carlo estimates from sampled costs and the equilibrium bids.

    **Fields:** `n` draws; `payment`, `payment_stderr` (the realised lowest bid);
    `win_frequency`, `win_frequency_stderr` `(K,)`; `efficiency`, `efficiency_stderr` (the
    frequency with which the lowest-cost bidder wins).
    """

    n: int = eqx.field(static=True)
    payment: Float[Array, ""]
    payment_stderr: Float[Array, ""]
    win_frequency: Float[Array, " K"]
    win_frequency_stderr: Float[Array, " K"]
    efficiency: Float[Array, ""]
    efficiency_stderr: Float[Array, ""]


def _mean_se(x, axis=0):
    n = x.shape[axis]
    return jnp.mean(x, axis=axis), jnp.std(x, axis=axis, ddof=1) / jnp.sqrt(n)


@eqx.filter_jit
def _simulate(solution, key, n):
    auction = solution.auction
    keys = jax.random.split(key, auction.n_bidders)
    costs = jnp.stack([d.sample(k, (n,)) for d, k in zip(auction.bidders, keys)])
    bids = jnp.stack([solution.bids(i, costs[i]) for i in range(auction.n_bidders)])
    winner = jnp.argmin(bids, axis=0)
    payment = jnp.min(bids, axis=0)
    wins = (winner[None, :] == jnp.arange(auction.n_bidders)[:, None]).astype(float)
    efficient = (winner == jnp.argmin(costs, axis=0)).astype(float)
    return payment, wins, efficient


def monte_carlo(solution: AuctionSolution, key, n: int = 20000) -> AuctionMonteCarlo:
    r"""Draw `n` cost profiles (inversion of each $F_i$ with `jax.random`, key split per
    bidder), bid $\beta_i(c_i)$, and estimate the payment, the win frequencies and the
    efficiency with their standard errors (sample standard deviation / $\sqrt n$).

    A static auction has no time grid, so the draws are plain vectorised `jax.random`, not
    the shared path-ensemble engine.
    """
    payment, wins, efficient = _simulate(solution, key, n)
    p, p_se = _mean_se(payment)
    w, w_se = _mean_se(wins, axis=1)
    e, e_se = _mean_se(efficient)
    return AuctionMonteCarlo(n, p, p_se, w, w_se, e, e_se)
