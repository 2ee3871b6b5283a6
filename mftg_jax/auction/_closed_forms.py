r"""Closed forms: the symmetric auction, the second-price payment, two uniform bidders."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from ._auction import Auction
from ._distributions import AbstractCostDistribution


def _gauss(a, b, n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    x, w = jnp.asarray(x), jnp.asarray(w)
    return 0.5 * (b - a) * x + 0.5 * (a + b), 0.5 * (b - a) * w


@eqx.filter_jit
def symmetric_bids(
    dist: AbstractCostDistribution, K: int, c: Float[Array, " n"], n: int = 64
) -> Float[Array, " n"]:
    r"""The equilibrium bid of $K$ identical bidders with costs $\sim$ `dist`:
    $\beta(c) = c + \int_c^{\bar c} G(x)^{K-1}dx \,/\, G(c)^{K-1}$ (Gauss-Legendre, `n`
    nodes; $\beta(\bar c) = \bar c$)."""
    c = jnp.asarray(c, float)

    def one(ci):
        x, w = _gauss(ci, dist.hi, n)
        g = dist.survival(ci)
        num = jnp.sum(w * dist.survival(x) ** (K - 1))
        return jnp.where(g > 0, ci + num / jnp.where(g > 0, g, 1.0) ** (K - 1), ci)

    return jax.vmap(one)(c)


@eqx.filter_jit
def second_price_payment(auction: Auction, n: int = 256) -> Float[Array, ""]:
    r"""The buyer's expected payment in the second-price (Vickrey) procurement auction, where
    bidding one's cost is dominant: the expected second-lowest cost,
    $E[c_{(2)}] = \min_i\underline c_i + \int P(c_{(2)} > x)\,dx$ with
    $P(c_{(2)} > x) = \prod_k G_k(x) + \sum_i F_i(x)\prod_{k\ne i}G_k(x)$ (Gauss-Legendre).
    Equal to the first-price payment when the bidders are symmetric (revenue equivalence)."""
    lo = jnp.min(auction.lows)
    x, w = _gauss(lo, auction.top, n)
    F = jnp.stack([d.cdf(x) for d in auction.bidders], axis=0)  # (K, n)
    G = 1.0 - F
    K = auction.n_bidders
    others = ~jnp.eye(K, dtype=bool)
    prod_others = jnp.prod(jnp.where(others[:, :, None], G[None, :, :], 1.0), axis=1)
    tail = jnp.prod(G, axis=0) + jnp.sum(F * prod_others, axis=0)
    return lo + jnp.sum(w * tail)


def two_uniform_lowest_bid(lo1, lo2, top) -> Float[Array, ""]:
    r"""The lowest bid of two bidders with uniform costs on $[\underline c_1, \bar c]$,
    $[\underline c_2, \bar c]$: $\underline b = \bar c - \omega_1\omega_2/(\omega_1+\omega_2)$,
    $\omega_i = \bar c - \underline c_i$ (the sale auction of Griesmer, Levitan and Shubik /
    Plum mapped by $v = \bar c - c$, docs/auction.md)."""
    w1, w2 = top - lo1, top - lo2
    return top - w1 * w2 / (w1 + w2)


def two_uniform_inverse_bids(lo1, lo2, top, b: Float[Array, " n"]) -> Float[Array, "2 n"]:
    r"""$\lambda_{1,2}(b) = \bar c - \frac{2(\bar c - b)}{1 \mp k(\bar c - b)^2}$,
    $k = \omega_2^{-2} - \omega_1^{-2}$, for $b \in [\underline b, \bar c]$
    (docs/auction.md)."""
    w1, w2 = top - lo1, top - lo2
    k = 1.0 / w2**2 - 1.0 / w1**2
    t = top - jnp.asarray(b, float)
    return jnp.stack([top - 2 * t / (1 - k * t**2), top - 2 * t / (1 + k * t**2)])
