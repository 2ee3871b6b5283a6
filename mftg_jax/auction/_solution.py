r"""An auction equilibrium: the inverse bid functions, the bids, the win probabilities."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._auction import Auction

# Bisection steps when a bid is recovered from the inverse bid function.
_INVERSION_STEPS = 60


class AuctionSolution(eqx.Module):
    r"""The equilibrium of an [`Auction`][mftg_jax.auction.Auction] found by
    [`solve`][mftg_jax.auction.solve].

    $\lambda_i(b) = F_i^{-1}(u_i(b))$ on $[\underline b, b_\delta]$ from the dense ODE
    solution, $\lambda_i(b) = \bar c - (\bar c - \lambda_i(b_\delta))\frac{\bar c - b}{\bar c -
    b_\delta}$ on $[b_\delta, \bar c]$ (the straight line into the corner, the leading
    order of the local expansion) and $\lambda_i(b) = \underline c_i$ below $\underline b$.

    **Fields:** `auction`; `b_low` $\underline b$; `b_top` $b_\delta$; `ode` the diffrax
    solution in $s = (b - \underline b)/(b_\delta - \underline b)$.
    """

    auction: Auction
    b_low: Float[Array, ""]
    b_top: Float[Array, ""]
    ode: diffrax.Solution

    @property
    def highest_bid(self) -> Float[Array, ""]:
        r"""$\bar c$: the bid of the highest-cost types."""
        return self.auction.top

    @property
    def corner(self) -> Float[Array, " K"]:
        r"""$\lambda_i(b_\delta)$, where the integration stops."""
        u1 = jnp.clip(self.ode.evaluate(jnp.asarray(1.0)), 0.0, 1.0)
        return self.auction.inverse_bids_from_levels(u1)

    def _line(self, b, corner):
        R = self.auction.top
        frac = jnp.clip((R - b) / (R - self.b_top), 0.0, 1.0)
        return R - (R - corner) * frac

    def levels(self, b, corner=None) -> Float[Array, " K"]:
        r"""$u_i(b) = F_i(\lambda_i(b))$ at one bid `b` (scalar); `corner` optionally the
        precomputed [`corner`][mftg_jax.auction.AuctionSolution.corner]."""
        b = jnp.asarray(b, float)
        corner = self.corner if corner is None else corner
        s = jnp.clip((b - self.b_low) / (self.b_top - self.b_low), 0.0, 1.0)
        u = jnp.clip(self.ode.evaluate(s), 0.0, 1.0)
        u_line = self.auction.levels(self._line(b, corner))
        return jnp.where(b > self.b_top, u_line, jnp.where(b < self.b_low, 0.0, u))

    def inverse_bids(self, b, corner=None) -> Float[Array, " K"]:
        r"""$\lambda_i(b)$ for every bidder at one bid `b`: the cost that bids `b`."""
        b = jnp.asarray(b, float)
        corner = self.corner if corner is None else corner
        s = jnp.clip((b - self.b_low) / (self.b_top - self.b_low), 0.0, 1.0)
        lam = self.auction.inverse_bids_from_levels(jnp.clip(self.ode.evaluate(s), 0.0, 1.0))
        lam = jnp.where(b < self.b_low, self.auction.lows, lam)
        return jnp.where(b > self.b_top, self._line(b, corner), lam)

    def survivals(self, b, corner=None) -> Float[Array, " K"]:
        r"""$G_k(\lambda_k(b)) = P(\text{bidder } k \text{ bids above } b)$."""
        return 1.0 - self.levels(b, corner)

    def win_probabilities(self, b, corner=None) -> Float[Array, " K"]:
        r"""$P_i(b) = \prod_{k \ne i} G_k(\lambda_k(b))$: bidder $i$'s probability of winning
        with bid `b` against the others' equilibrium bids (exact: from their distributions)."""
        g = self.survivals(b, corner)
        K = self.auction.n_bidders
        others = ~jnp.eye(K, dtype=bool)
        return jnp.prod(jnp.where(others, g[None, :], 1.0), axis=1)

    def bids(self, i, c: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""$\beta_i(c)$ for costs `c` of bidder `i`: the bid with $\lambda_i(b) = c$, by
        bisection on $[\underline b, \bar c]$ in the level $u_i(b) = F_i(c)$."""
        c = jnp.asarray(c, float)
        corner = self.corner
        target = jax.vmap(lambda x: self.auction.levels(jnp.broadcast_to(x, corner.shape))[i])(c)

        def one(ci, ti):
            def step(_, ab):
                a, b = ab
                m = 0.5 * (a + b)
                below = self.levels(m, corner)[i] < ti
                return jnp.where(below, m, a), jnp.where(below, b, m)

            a, b = jax.lax.fori_loop(0, _INVERSION_STEPS, step, (self.b_low, self.auction.top))
            low = ci <= self.auction.lows[i]
            return jnp.where(low, self.b_low, jnp.where(ci >= self.auction.top, ci, 0.5 * (a + b)))

        return jax.vmap(one)(c, target)

    def expected_profits(self, i, c: Float[Array, " n"]) -> Float[Array, " n"]:
        r"""Bidder `i`'s interim expected profit $(\beta_i(c) - c)P_i(\beta_i(c))$ per unit."""
        c = jnp.asarray(c, float)
        b = self.bids(i, c)
        corner = self.corner
        p = jax.vmap(lambda x: self.win_probabilities(x, corner)[i])(b)
        return (b - c) * p


@eqx.filter_jit
def inverse_bid_curves(solution, b: Float[Array, " n"]) -> Float[Array, "n K"]:
    r"""$\lambda_i(b)$ for every bidder on the bids `b`, one row per bid: for an
    [`AuctionSolution`][mftg_jax.auction.AuctionSolution] or a
    [`CollocationSolution`][mftg_jax.auction.CollocationSolution] (anything with an
    `inverse_bids(b)` method), to compare the two methods."""
    return jax.vmap(solution.inverse_bids)(jnp.asarray(b, float))
