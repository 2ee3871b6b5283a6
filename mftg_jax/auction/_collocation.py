r"""The second equilibrium method: Chebyshev collocation of the boundary-value problem on a
fixed domain, solved for all unknowns at once (docs/auction.md, "The second method").

The bid range is mapped onto $\sigma \in [0, 1]$ by $b = \underline b + L\sigma^2$,
$L = \bar c - \underline b$ (the lowest bid enters only through $L$, an unknown). The
unknowns are the *corner ratios*

$$w_i(\sigma) = \frac{\bar c - \lambda_i(b)}{\bar c - b}, \qquad
\lambda_i = \bar c - L(1 - \sigma^2)\,w_i,$$

so the top corner $\lambda_i(\bar c) = \bar c$ holds for any finite $w_i$ and bids lie above
cost where $w_i > 1$. The level equation $dF_i(\lambda_i)/db = G_i(\lambda_i)[\dots]$ times
$db/d\sigma = 2L\sigma$ becomes

$$f_i(\lambda_i)\,\frac{d\lambda_i}{d\sigma} = 2L\sigma\,w_i\,Q_i(\lambda_i)\,\beta_i(w),
\quad Q_i(\lambda) = \frac{G_i(\lambda)}{\bar c - \lambda},\quad
\beta_i(w) = \frac{1}{K-1}\sum_k \frac{1}{w_k - 1} - \frac{1}{w_i - 1},$$

regular on the whole of $[0, 1]$: at the top $\sigma = 1$ ($Q_i(\bar c) = f_i(\bar c)$) it
reads $\beta_i(w) = 1$, the known corner slopes $w_i(1) = K/(K-1)$. It is collocated at the
$n + 1$ Chebyshev-Lobatto nodes ($w_i$ a polynomial of degree $n$ in $\sigma$) with the $K$
bottom conditions $\lambda_i(\sigma = 0) = \underline c_i$. The unknowns, $w_i = 1 + e^{v_i}$
at the nodes and $L = (\bar c - \max_i\underline c_i)\,\mathrm{sigmoid}(\ell)$, are found by
Levenberg-Marquardt (`optimistix.least_squares`), differentiated implicitly.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np
import optimistix as optx

from .._validation import is_concrete
from ._auction import Auction


def _lobatto(n: int):
    """Chebyshev-Lobatto nodes x_j = cos(pi j / n), sigma = (1 - x)/2, the differentiation
    matrix in sigma and the barycentric weights."""
    j = np.arange(n + 1)
    x = np.cos(np.pi * j / n)
    c = np.where((j == 0) | (j == n), 2.0, 1.0) * (-1.0) ** j
    diff = x[:, None] - x[None, :] + np.eye(n + 1)
    D = (c[:, None] / c[None, :]) / diff
    D = D - np.diag(D.sum(axis=1))
    return (1.0 - x) / 2.0, -2.0 * D, (-1.0) ** j * np.where((j == 0) | (j == n), 0.5, 1.0)


def _top_density(d):
    # f_i at the top of the support, approached from inside (a density defined on the open
    # support may return 0 at its end).
    return d.pdf(d.hi - 1e-12 * (d.hi - d.lo))


def _unpack(y, auction: Auction, sigma):
    v, ell = y
    L = (auction.top - jnp.max(auction.lows)) * jax.nn.sigmoid(ell)
    w = 1.0 + jnp.exp(v)
    lam = auction.top - (L * (1.0 - sigma**2))[None, :] * w
    return L, w, lam


def _residual(y, args):
    auction, sigma, D = args
    L, w, lam = _unpack(y, auction, sigma)
    K = auction.n_bidders
    dlam = lam @ D.T
    inv = 1.0 / (w - 1.0)
    beta = jnp.sum(inv, axis=0, keepdims=True) / (K - 1) - inv
    rows = []
    for i, d in enumerate(auction.bidders):
        # The density and survival at the clipped cost: continuous in the unknowns (the
        # lowest type sits on the lower end of the support, where a density may jump).
        c = jnp.clip(lam[i], d.lo, d.hi)
        gap = auction.top - c
        inside = gap > 0
        q = jnp.where(inside, d.survival(c) / jnp.where(inside, gap, 1.0), _top_density(d))
        rows.append(d.pdf(c) * dlam[i] / L - 2.0 * sigma * w[i] * q * beta[i])
    bottom = (auction.top - L * w[:, 0] - auction.lows) / (auction.top - auction.lows)
    return jnp.concatenate(rows + [bottom])


class CollocationSolution(eqx.Module):
    r"""An auction equilibrium found by [`collocate`][mftg_jax.auction.collocate].

    **Fields:** `auction`; `b_low` $\underline b$; `sigma` `(n+1,)` the nodes;
    `ratios` `(K, n+1)` $w_i$ at the nodes; `residual` the largest absolute residual of the
    collocation equations at the solution (about the discretisation error at convergence);
    `steps` the Levenberg-Marquardt steps; `converged` whether the solver met its tolerances.
    """

    auction: Auction
    b_low: Float[Array, ""]
    sigma: Float[Array, " m"]
    ratios: Float[Array, "K m"]
    residual: Float[Array, ""]
    steps: Array
    converged: Array

    @property
    def highest_bid(self) -> Float[Array, ""]:
        return self.auction.top

    def _interpolate(self, s):
        n = self.sigma.shape[-1] - 1
        x_nodes = jnp.cos(jnp.pi * jnp.arange(n + 1) / n)
        weights = jnp.asarray(_lobatto(n)[2])
        x = 1.0 - 2.0 * s
        d = x - x_nodes
        exact = d == 0
        t = weights / jnp.where(exact, 1.0, d)
        p = (self.ratios @ t) / jnp.sum(t)
        at_node = self.ratios[:, jnp.argmax(exact)]
        return jnp.where(jnp.any(exact), at_node, p)

    def inverse_bids(self, b) -> Float[Array, " K"]:
        r"""$\lambda_i(b)$ for every bidder at one bid `b` (scalar): barycentric
        interpolation of $w_i$ at $\sigma = \sqrt{(b - \underline b)/L}$;
        $\underline c_i$ below $\underline b$."""
        b = jnp.asarray(b, float)
        R = self.auction.top
        L = R - self.b_low
        s = jnp.sqrt(jnp.clip((b - self.b_low) / L, 0.0, 1.0))
        lam = R - jnp.clip(R - b, 0.0, L) * self._interpolate(s)
        return jnp.where(b < self.b_low, self.auction.lows, lam)


def _check(auction: Auction) -> None:
    if not is_concrete(auction):
        return
    eta = np.asarray(auction.top_exponents)
    if not np.allclose(eta, 1.0):
        raise ValueError(
            "collocate needs every bidder's top exponent equal to 1 (a density positive at "
            f"the top of the support), got {eta.tolist()}"
        )
    for k, d in enumerate(auction.bidders):
        if not np.all(np.asarray(_top_density(d)) > 0):
            raise ValueError(f"collocate needs Auction.bidders[{k}] density > 0 at hi")


def collocate(
    auction: Auction,
    n: int = 32,
    *,
    b_low_guess=None,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    max_steps: int = 200,
) -> CollocationSolution:
    r"""Solve the auction's equilibrium by collocation (module docstring), independently of
    the shooting of [`solve`][mftg_jax.auction.solve].

    **Arguments:** `auction` (densities positive at the common top; a `ValueError`
    otherwise); `n` the polynomial degree (static); `b_low_guess` the starting lowest bid in
    $(\max_i\underline c_i, \bar c)$ (default $\bar c - \frac{K-1}{K}(\bar c -
    \max_i\underline c_i)$); the starting $w_i$ interpolate between their bottom values and
    the corner slopes; `rtol`, `atol`, `max_steps` of the Levenberg-Marquardt solve.

    Jitted, works under `jax.vmap` over a batch of auctions (or of starting guesses), and
    differentiable (implicit differentiation of the least-squares optimum, forward or
    reverse mode).

    **Returns:** a [`CollocationSolution`][mftg_jax.auction.CollocationSolution].
    """
    if not isinstance(n, int) or n < 4:
        raise ValueError(f"collocate n (the polynomial degree) must be an integer >= 4, got {n!r}")
    _check(auction)
    return _collocate(auction, n, b_low_guess, rtol, atol, max_steps)


@eqx.filter_jit
def _collocate(auction, n, b_low_guess, rtol, atol, max_steps):
    sigma, D, _ = _lobatto(n)
    sigma, D = jnp.asarray(sigma), jnp.asarray(D)
    K, R, lows = auction.n_bidders, auction.top, auction.lows
    width = R - jnp.max(lows)
    if b_low_guess is None:
        frac = jnp.asarray((K - 1) / K)
    else:
        frac = jnp.clip((R - jnp.asarray(b_low_guess, float)) / width, 1e-6, 1 - 1e-6)
    L0 = width * frac
    slopes = auction.top_slopes()
    s2 = (sigma**2)[None, :]
    w0 = ((R - lows) / L0)[:, None] * (1.0 - s2) + slopes[:, None] * s2
    y0 = (jnp.log(w0 - 1.0), jnp.log(frac / (1.0 - frac)))
    args = (auction, sigma, D)
    sol = optx.least_squares(
        _residual,
        optx.LevenbergMarquardt(rtol=rtol, atol=atol),
        y0,
        args=args,
        max_steps=max_steps,
        throw=False,
    )
    L, w, _ = _unpack(sol.value, auction, sigma)
    res = jnp.max(jnp.abs(_residual(jax.lax.stop_gradient(sol.value), args)))
    return CollocationSolution(
        auction=auction,
        b_low=R - L,
        sigma=sigma,
        ratios=w,
        residual=res,
        steps=sol.stats["num_steps"],
        converged=sol.result == optx.RESULTS.successful,
    )


def search_equilibria(auction: Auction, n_starts: int = 8, n: int = 32, tol: float = 1e-6):
    r"""Look for several equilibria: [`collocate`][mftg_jax.auction.collocate] from
    `n_starts` starting lowest bids spread over $(\max_i\underline c_i, \bar c)$ (one
    `jax.vmap`ped call), keeping the solutions whose residual is below `tol` with bids above
    cost. Concrete values only.

    **Returns:** `(starts, b_lows, residuals, distinct)`: NumPy arrays of the starting and
    converged lowest bids, the residuals, and the distinct accepted lowest bids (those more
    than $10^{-6}$ apart).
    """
    lo, R = float(jnp.max(auction.lows)), float(auction.top)
    starts = lo + (R - lo) * (np.arange(1, n_starts + 1) / (n_starts + 1))
    sols = jax.vmap(lambda g: collocate(auction, n, b_low_guess=g))(jnp.asarray(starts))
    b, r = np.asarray(sols.b_low), np.asarray(sols.residual)
    ok = (r < tol) & np.asarray(sols.converged) & np.all(np.asarray(sols.ratios) > 1, axis=(1, 2))
    distinct: list[float] = []
    for x in np.sort(b[ok]):
        if not distinct or x - distinct[-1] > 1e-6:
            distinct.append(float(x))
    return starts, b, r, np.asarray(distinct)
