r"""The prosumers' first-price procurement auction (slides, "Prosumers market auction").

$K \ge 2$ sellers with private costs $c_i \sim F_i$ on $[\underline c_i, \bar c]$ (a common top
$\bar c$, the buyer's reserve price) bid $b_i$; the lowest bid wins and is paid its bid. With
increasing bid functions $\beta_i$ and inverses $\lambda_i = \beta_i^{-1}$, bidder $i$ bidding
$b$ wins with probability $\prod_{k \ne i} G_k(\lambda_k(b))$, and the first-order conditions
give (docs/auction.md)

$$\lambda_i'(b) = \frac{G_i(\lambda_i)}{f_i(\lambda_i)}\Big[\frac{1}{K-1}\sum_{k=1}^K
\frac{1}{b - \lambda_k(b)} - \frac{1}{b - \lambda_i(b)}\Big],$$

$\lambda_i(\underline b) = \underline c_i$ at the common unknown lowest bid $\underline b$ and
$\lambda_i(\bar c) = \bar c$.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._validation import check_field, is_concrete
from ._distributions import AbstractCostDistribution


class Auction(eqx.Module):
    r"""A first-price procurement auction between $K \ge 2$ bidders with independent costs.

    **Arguments:**

    - `bidders`: a tuple of $K \ge 2$ cost distributions
      ([`AbstractCostDistribution`][mftg_jax.auction.AbstractCostDistribution]), of any
      families; their supports must share the upper end $\bar c$ (the highest bid), their
      lower ends may differ.

    Leaves may carry a leading batch axis (build the auctions inside `jax.vmap`, or pass
    arrays): the solvers are then `jax.vmap`ped over it.
    """

    bidders: tuple[AbstractCostDistribution, ...]

    def __check_init__(self):
        if not isinstance(self.bidders, tuple) or len(self.bidders) < 2:
            n = len(self.bidders) if isinstance(self.bidders, tuple | list) else "not a tuple"
            raise ValueError(f"Auction.bidders must be a tuple of K >= 2 distributions, got {n}")
        for k, d in enumerate(self.bidders):
            if not isinstance(d, AbstractCostDistribution):
                raise ValueError(
                    f"Auction.bidders[{k}] must be an AbstractCostDistribution, got "
                    f"{type(d).__name__}"
                )
        his = [d.hi for d in self.bidders]
        if is_concrete(self.bidders):
            top = np.asarray(his[0], float)
            for k, h in enumerate(his[1:], start=1):
                if not np.allclose(np.asarray(h, float), top, rtol=1e-12, atol=1e-12):
                    raise ValueError(
                        f"Auction.bidders[{k}].hi must equal bidders[0].hi = {top} (a common "
                        f"upper end of the supports, the highest bid), got {np.asarray(h)}"
                    )
            for k, d in enumerate(self.bidders):
                # Densities positive inside the support (the bid ODE divides by f).
                x = (
                    np.asarray(d.lo, float)[..., None]
                    + np.linspace(0.05, 0.95, 7)
                    * (np.asarray(d.hi, float) - np.asarray(d.lo, float))[..., None]
                )
                check_field(
                    f"Auction.bidders[{k}] density",
                    d.pdf(jnp.asarray(x)),
                    "> 0 inside the support",
                    lambda v: v > 0,
                )

    @property
    def n_bidders(self) -> int:
        return len(self.bidders)

    @property
    def top(self) -> Float[Array, "..."]:
        r"""$\bar c$, the common upper end of the supports (the highest bid)."""
        return self.bidders[0].hi

    @property
    def lows(self) -> Float[Array, "... K"]:
        r"""$\underline c_i$, the lower ends of the supports."""
        return jnp.stack([d.lo for d in self.bidders], axis=-1)

    @property
    def top_exponents(self) -> Float[Array, "... K"]:
        return jnp.stack([jnp.asarray(d.top_exponent, float) for d in self.bidders], axis=-1)

    def top_slopes(self) -> Float[Array, "... K"]:
        r"""$\lambda_i'(\bar c) = 1 + 1/\sum_{k \ne i}\eta_k$ (docs/auction.md; $K/(K-1)$
        when every density is positive at the top)."""
        eta = self.top_exponents
        return 1.0 + 1.0 / (jnp.sum(eta, axis=-1, keepdims=True) - eta)

    def inverse_bids_from_levels(self, u: Float[Array, " K"]) -> Float[Array, " K"]:
        r"""$\lambda_i = F_i^{-1}(u_i)$ for quantile levels $u$ (one per bidder)."""
        return jnp.stack([d.quantile(u[k]) for k, d in enumerate(self.bidders)])

    def levels(self, c: Float[Array, " K"]) -> Float[Array, " K"]:
        r"""$u_i = F_i(c_i)$, one cost per bidder."""
        return jnp.stack([d.cdf(c[k]) for k, d in enumerate(self.bidders)])

    def level_rates(self, b, u: Float[Array, " K"]) -> Float[Array, " K"]:
        r"""$du_i/db = G_i(\lambda_i)\big[\frac{1}{K-1}\sum_k \frac{1}{b-\lambda_k} -
        \frac{1}{b - \lambda_i}\big]$, the bid ODE in the levels $u_i = F_i(\lambda_i)$ (no
        division by the density: regular where a density vanishes or blows up)."""
        lam = self.inverse_bids_from_levels(u)
        gap = b - lam
        inv = 1.0 / jnp.where(gap > 0, gap, jnp.finfo(gap.dtype).tiny ** 0.25)
        K = self.n_bidders
        bracket = jnp.sum(inv) / (K - 1) - inv
        return (1.0 - jnp.clip(u, 0.0, 1.0)) * bracket
