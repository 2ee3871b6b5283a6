r"""The equilibrium by shooting on the common lowest bid $\underline b$ (docs/auction.md).

From a trial $\underline b$ the bid ODE is integrated upwards in the quantile levels
$u_i = F_i(\lambda_i)$, $u_i(\underline b) = 0$, to $b_\delta = \bar c - \delta(\bar c -
\max_i \underline c_i)$. Near the singular top corner every equilibrium path has
$b - \lambda_i(b) \approx (\bar c - b)/\sum_{k\ne i}\eta_k$; the shooting residual

$$r(\underline b) = \min_i \frac{(b_\delta - \lambda_i(b_\delta))\sum_{k \ne i}\eta_k}
{\bar c - b_\delta} - 1$$

is negative when $\underline b$ is too low (a path reaches the diagonal $\lambda_i = b$, bids
below cost: the solve stops there) and positive when it is too high (the paths miss the
corner). The root is bracketed and found by bisection (`optimistix`), differentiated
implicitly; the last sliver $[b_\delta, \bar c]$ is the straight line to the corner.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import optimistix as optx

from ._auction import Auction
from ._solution import AuctionSolution

#: Default distance of the end of the integration from the top, relative to the bid range.
DELTA = 1e-4
# A path whose normalised distance to the diagonal falls below this has failed.
_KAPPA = 1e-3


def _field(s, u, args):
    auction, b_low, b_top = args
    b = b_low + s * (b_top - b_low)
    return (b_top - b_low) * auction.level_rates(b, u)


def _normalised_gap(auction: Auction, b, u) -> Array:
    lam = auction.inverse_bids_from_levels(u)
    eta = auction.top_exponents
    return (b - lam) * (jnp.sum(eta) - eta) / (auction.top - b)


def _failed(t, y, args, **kwargs):
    auction, b_low, b_top = args
    b = b_low + t * (b_top - b_low)
    return jnp.min(_normalised_gap(auction, b, y)) - _KAPPA


def top_of_integration(auction: Auction, delta: float = DELTA) -> Array:
    r"""$b_\delta = \bar c - \delta(\bar c - \max_i \underline c_i)$."""
    return auction.top - delta * (auction.top - jnp.max(auction.lows))


def _integrate(auction, b_low, b_top, controller, saveat):
    u0 = jnp.zeros(auction.n_bidders, dtype=jnp.result_type(b_low, float))
    return diffrax.diffeqsolve(
        diffrax.ODETerm(_field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=1.0,
        dt0=None,
        y0=u0,
        args=(auction, b_low, b_top),
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=diffrax.ForwardMode(),
        event=diffrax.Event(_failed),
        max_steps=4096,
        throw=False,
    )


@eqx.filter_jit
def shooting_residual(
    auction: Auction, b_low, *, delta: float = DELTA, rtol: float = 1e-10, atol: float = 1e-12
) -> Array:
    r"""The shooting residual $r(\underline b)$ of the module docstring (negative: the trial
    lowest bid is too low; positive: too high; zero at the equilibrium).

    **Arguments:** `auction`; `b_low` the trial lowest bid in $(\max_i\underline c_i,
    b_\delta)$; `delta` the relative distance of the end point from the top; `rtol`, `atol`
    the tolerances of the adaptive Tsit5 integration.
    """
    b_top = top_of_integration(auction, delta)
    start = jnp.min(_normalised_gap(auction, b_low, jnp.zeros(auction.n_bidders)))
    sol = _integrate(
        auction, b_low, b_top, diffrax.PIDController(rtol=rtol, atol=atol), diffrax.SaveAt(t1=True)
    )
    u1 = sol.ys[-1]
    s1 = sol.ts[-1]
    b1 = b_low + s1 * (b_top - b_low)
    m = jnp.min(_normalised_gap(auction, b1, u1))
    ok = (sol.result == diffrax.RESULTS.successful) & (s1 >= 1.0) & jnp.isfinite(m)
    return jnp.where((start > _KAPPA) & ok, m - 1.0, _KAPPA - 1.0)


def _residual_fn(b_low, args):
    auction, delta, rtol, atol = args
    return shooting_residual(auction, b_low, delta=delta, rtol=rtol, atol=atol)


@eqx.filter_jit
def lowest_bid(
    auction: Auction,
    *,
    delta: float = DELTA,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    bisection_steps: int = 64,
) -> Float[Array, ""]:
    r"""The equilibrium lowest bid $\underline b$: the root of
    [`shooting_residual`][mftg_jax.auction.shooting_residual] in $(\max_i \underline c_i,
    b_\delta)$ by bisection (`optimistix.Bisection`, `bisection_steps` halvings of the
    bracket), differentiable by the implicit function theorem (forward mode: `jax.jvp`,
    `jax.jacfwd`). Works under `jax.vmap` over a batch of auctions.

    Where the residual has several roots (several equilibria), bisection keeps one of them;
    [`scan_lowest_bids`][mftg_jax.auction.scan_lowest_bids] lists all sign changes.
    """
    lo = jnp.max(auction.lows)
    b_top = top_of_integration(auction, delta)
    width = b_top - lo
    # Start of the bracket: where the normalised gap at the bottom reaches 2 kappa.
    eta = auction.top_exponents
    s = jnp.sum(eta) - eta
    need = 2 * _KAPPA * (auction.top - auction.lows) / (s + 2 * _KAPPA)
    lower = jnp.maximum(jnp.max(auction.lows + need), lo + 1e-12 * width)
    upper = b_top - 1e-9 * width
    solver = optx.Bisection(rtol=0.0, atol=1e-300, flip=False)
    sol = optx.root_find(
        _residual_fn,
        solver,
        0.5 * (lower + upper),
        args=(auction, delta, rtol, atol),
        options=dict(lower=lower, upper=upper),
        max_steps=bisection_steps,
        throw=False,
    )
    return sol.value


@eqx.filter_jit
def solve(
    auction: Auction,
    *,
    delta: float = DELTA,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> AuctionSolution:
    r"""Solve the auction's equilibrium: the lowest bid by
    [`lowest_bid`][mftg_jax.auction.lowest_bid], then the inverse bid functions
    $\lambda_i$ on $[\underline b, b_\delta]$ (dense diffrax output) and the straight line to
    the corner $(\bar c, \bar c)$ on $[b_\delta, \bar c]$.

    **Arguments:** `auction`; `delta`, `rtol`, `atol` as in `lowest_bid`.

    **Returns:** an [`AuctionSolution`][mftg_jax.auction.AuctionSolution].
    """
    b_low = lowest_bid(auction, delta=delta, rtol=rtol, atol=atol)
    b_top = top_of_integration(auction, delta)
    sol = _integrate(
        auction,
        b_low,
        b_top,
        diffrax.PIDController(rtol=rtol, atol=atol),
        diffrax.SaveAt(t1=True, dense=True),
    )
    return AuctionSolution(auction=auction, b_low=b_low, b_top=b_top, ode=sol)


def scan_lowest_bids(auction: Auction, n: int = 200, *, delta: float = DELTA):
    r"""All sign changes of the shooting residual on `n` trial lowest bids spanning the
    bracket: one per equilibrium the shooting can reach (several where the auction has
    several equilibria). Concrete values only.

    **Returns:** `(trials, residuals, roots)`: NumPy arrays of the trial bids, the residuals
    and the midpoints of the sign changes.
    """
    import numpy as np

    lo = float(jnp.max(auction.lows))
    b_top = float(top_of_integration(auction, delta))
    trials = jnp.linspace(lo, b_top, n + 2)[1:-1]
    r = np.asarray(jax.vmap(lambda b: shooting_residual(auction, b, delta=delta))(trials))
    t = np.asarray(trials)
    sign = np.sign(r)
    idx = np.nonzero(sign[:-1] * sign[1:] < 0)[0]
    return t, r, 0.5 * (t[idx] + t[idx + 1])
