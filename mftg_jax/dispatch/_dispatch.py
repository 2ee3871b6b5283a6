r"""Economic dispatch on one bus: the merit order, its quadratic (KKT) form and a mismatch loss.

$$\min_{0 \le s_k \le \bar s_k}\ \sum_k p_k s_k + q_k s_k^2 + \tfrac\kappa2 (D - S)^2,
\qquad S = \textstyle\sum_k s_k,$$

with $\kappa = \infty$ (no `mismatch`: the balance $S = D$ is a constraint, $0 \le D \le W$)
or a quadratic mismatch loss $l(x) = \tfrac\kappa2 x^2$ (slides, "Structure of the solution").
The KKT conditions with the system marginal price $\lambda$:
$s_k = \operatorname{clip}((\lambda - p_k)/(2q_k), 0, \bar s_k)$ for $q_k > 0$; for $q_k = 0$,
$s_k = \bar s_k$ if $p_k < \lambda$, $0$ if $p_k > \lambda$, anything in $[0, \bar s_k]$ if
$p_k = \lambda$; and $S(\lambda) + \lambda/\kappa = D$, i.e. $S^* = D - (l')^{-1}(\lambda)$.

**Solution.** $F(\lambda) = S(\lambda) + \lambda/\kappa - D$ is nondecreasing, with jumps at the
linear costs. (i) A linear station $k$ is *marginal* when the jump at $p_k$ straddles zero,
$F(p_k^-) \le 0 \le F(p_k^+)$ (checked exactly for every $k$): then $\lambda = p_k$ and the
marginal stations share the remainder pro rata to capacity (for linear costs this is the
merit order: sort, cumulate the capacities $W_n$, the marginal block sets the price).
(ii) Otherwise $\lambda$ lies where $F$ is continuous and piecewise linear: `optimistix`
bisection brackets it, and the active set at the root gives it exactly,
$\lambda = (D - S_{\rm fixed} + \sum_{I} p_k/2q_k)/(\sum_I 1/2q_k + 1/\kappa)$ over the
interior stations $I$. Both expressions are differentiable in $D$, $p$, $q$, $\bar s$,
$\kappa$: the derivative is the implicit-function-theorem derivative on the active set
(what `optimistix.ImplicitAdjoint` would give for (ii), and the right one for (i), where the
derivative of $F$ in $\lambda$ vanishes).

**Price convention.** At a block boundary ($D = \sum_{n' \le n} W_{n'}$, no mismatch) every
price in $[\underline\lambda, \bar\lambda] = [p_n, p_{n+1}]$ is a KKT multiplier. The
reported `price` is the slides' $\underline p_{n+1}$: the marginal cost of the cheapest
station with spare capacity, $\bar\lambda$ (at $D = W$, where $\bar\lambda = \infty$, the
price of the most expensive station, $\underline\lambda$). `price_low`, `price_high` give the
whole interval ($\mp\infty$ where it is unbounded).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np
import optimistix as optx

from .._validation import check_field, is_concrete
from ._fleet import Fleet, per_station

_BISECTION = optx.Bisection(rtol=1e-14, atol=1e-14, flip=False)


class DispatchSolution(eqx.Module):
    r"""The dispatch of a fleet at each demand level (leading axes: the demands' shape).

    **Fields:**

    - `demand`: $D$.
    - `dispatch`: $s^*_k$ per station (last axis).
    - `price`: the system marginal price $\lambda$ (module docstring: the convention).
    - `price_low`, `price_high`: the interval of KKT prices ($\mp\infty$ when unbounded).
    - `cost`: the total cost $\sum_k C_k(s_k^*) + \tfrac\kappa2(D - S^*)^2$.
    - `mismatch`: $\kappa$ ($\infty$ without a mismatch loss).
    """

    demand: Float[Array, "..."]
    dispatch: Float[Array, "... m"]
    price: Float[Array, "..."]
    price_low: Float[Array, "..."]
    price_high: Float[Array, "..."]
    cost: Float[Array, "..."]
    mismatch: Float[Array, ""]

    @property
    def production(self) -> Float[Array, "..."]:
        r"""$S^* = \sum_k s^*_k$."""
        return jnp.sum(self.dispatch, axis=-1)

    @property
    def unique_price(self) -> Array:
        """Whether the KKT price is unique (the interval has length 0, up to rounding)."""
        scale = 1.0 + jnp.abs(self.price)
        return (self.price_high - self.price_low) <= 1e-12 * scale


def _quad_supply(fleet: Fleet, lam):
    # lam: a scalar or `... 1`; the result has one entry per station on the last axis.
    lam = jnp.asarray(lam)
    like = lam if lam.ndim else lam[None]
    ps = lambda v: per_station(v, like)  # noqa: E731
    q = ps(jnp.where(fleet.linear, 1.0, fleet.quadratic))
    s = jnp.clip((lam - ps(fleet.cost)) / (2 * q), 0.0, ps(fleet.capacity))
    return jnp.where(ps(fleet.linear), 0.0, s)


def _excess(u, args):
    # F at lam = lo + (hi - lo) u, in units of the demand scale (a dimensionless root).
    fleet, D, inv_k, lo, hi, scale = args
    lam = lo + (hi - lo) * u
    lin = fleet.linear & (fleet.cost < lam)
    S = jnp.sum(_quad_supply(fleet, lam)) + jnp.sum(jnp.where(lin, fleet.capacity, 0.0))
    return (S + lam * inv_k - D) / scale


def _solve_one(fleet: Fleet, D, inv_k):
    c, W, lin = fleet.cost, fleet.capacity, fleet.linear
    # (i) marginal linear stations: the jump of F at c_k straddles zero.
    sq = jax.vmap(lambda lam: _quad_supply(fleet, lam))(c)  # (k, j): s_j(c_k)
    below = lin[None, :] & (c[None, :] < c[:, None])
    equal = lin[None, :] & (c[None, :] == c[:, None])
    f_minus = jnp.sum(sq + jnp.where(below, W[None, :], 0.0), axis=1) + c * inv_k - D
    f_plus = f_minus + jnp.sum(jnp.where(equal, W[None, :], 0.0), axis=1)
    marginal = lin & (f_minus <= 0) & (f_plus >= 0)
    case_a = jnp.any(marginal)
    lam_a = jnp.max(jnp.where(marginal, c, -jnp.inf))

    # (ii) bisection in the continuous part, then the exact active-set formula.
    Wtot = jnp.sum(W)
    mc_full = jnp.max(c + 2 * fleet.quadratic * W)
    safe_inv = jnp.where(inv_k > 0, inv_k, 1.0)
    lo = jnp.where(inv_k > 0, jnp.minimum(jnp.min(c), (D - Wtot) / safe_inv), jnp.min(c))
    hi = jnp.where(inv_k > 0, jnp.maximum(mc_full, D / safe_inv), mc_full)
    lo, hi = jax.lax.stop_gradient((lo, hi))
    hi = jnp.where(hi > lo, hi, lo + 1.0)
    scale = jax.lax.stop_gradient(Wtot + jnp.abs(D))
    root = optx.root_find(
        _excess,
        _BISECTION,
        jnp.asarray(0.5, dtype=c.dtype),
        args=jax.lax.stop_gradient((fleet, D, inv_k, lo, hi, scale)),
        options=dict(lower=0.0, upper=1.0),
        max_steps=128,
        throw=False,
    )
    lam0 = jax.lax.stop_gradient(lo + (hi - lo) * root.value)
    q = jnp.where(lin, 1.0, fleet.quadratic)
    top = c + 2 * fleet.quadratic * W
    interior = ~lin & (c < lam0) & (lam0 < top)
    full = jnp.where(lin, c < lam0, lam0 >= top) & ~interior
    fixed = jnp.sum(jnp.where(full, W, 0.0))
    denom = jnp.sum(jnp.where(interior, 1 / (2 * q), 0.0)) + inv_k
    numer = D - fixed + jnp.sum(jnp.where(interior, c / (2 * q), 0.0))
    flat = denom <= 0
    lam_b = numer / jnp.where(flat, 1.0, denom)
    # A flat piece of the supply curve (every station at a bound): the cheapest spare one.
    spare = ~full
    lam_flat = jnp.where(jnp.any(spare), jnp.min(jnp.where(spare, c, jnp.inf)), mc_full)
    lam = jnp.where(case_a, lam_a, jnp.where(flat, lam_flat, lam_b))

    # The dispatch at lam; the stations tied at the marginal cost share the remainder.
    tie = lin & (c == lam) & case_a
    s = _quad_supply(fleet, lam) + jnp.where(lin & (c < lam) & ~tie, W, 0.0)
    rest = D - lam * inv_k - jnp.sum(s)
    w_tie = jnp.where(tie, W, 0.0)
    share = w_tie / jnp.where(case_a, jnp.sum(w_tie), 1.0)
    s = s + jnp.clip(share * rest, 0.0, W) * tie
    return lam, s


def _interval(fleet: Fleet, s, lam, inv_k):
    mc = fleet.marginal_cost(s)
    lo = jnp.max(jnp.where(s > 0, mc, -jnp.inf), axis=-1)
    hi = jnp.min(jnp.where(s < per_station(fleet.capacity, s), mc, jnp.inf), axis=-1)
    unique = inv_k > 0
    return jnp.where(unique, lam, lo), jnp.where(unique, lam, hi)


def bucket(n: int) -> int:
    """The padded batch size of `n` items: a power of two >= 8, so that batches of nearby
    sizes share one compiled program."""
    return max(8, 1 << max(n - 1, 0).bit_length())


@eqx.filter_jit
def _dispatch_flat(fleet: Fleet, flat, inv_k):
    lam, s = jax.vmap(_solve_one, in_axes=(None, 0, None))(fleet, flat, inv_k)
    lo, hi = _interval(fleet, s, lam, inv_k)
    S = jnp.sum(s, axis=-1)
    kappa = jnp.where(inv_k > 0, 1 / jnp.where(inv_k > 0, inv_k, 1.0), 0.0)
    cost = jnp.sum(fleet.station_cost(s), axis=-1) + 0.5 * kappa * (flat - S) ** 2
    return lam, s, lo, hi, cost, jnp.where(inv_k > 0, kappa, jnp.inf)


def _dispatch(fleet: Fleet, demand, inv_k):
    shape = demand.shape
    flat = demand.reshape(-1)
    n = flat.shape[0]
    size = bucket(n)
    padded = jnp.concatenate([flat, jnp.broadcast_to(flat[:1] if n else 0.0, (size - n,))])
    lam, s, lo, hi, cost, kappa = _dispatch_flat(fleet, padded, inv_k)
    return DispatchSolution(
        demand=demand,
        dispatch=s[:n].reshape(shape + (fleet.m,)),
        price=lam[:n].reshape(shape),
        price_low=lo[:n].reshape(shape),
        price_high=hi[:n].reshape(shape),
        cost=cost[:n].reshape(shape),
        mismatch=kappa,
    )


def dispatch(
    fleet: Fleet, demand: Float[ArrayLike, "..."], mismatch: float | None = None
) -> DispatchSolution:
    r"""The least-cost dispatch of `fleet` at each demand level (module docstring).

    $$s^* = \arg\min_{0 \le s \le \bar s} \sum_k p_k s_k + q_k s_k^2
    + \tfrac\kappa2\Big(D - \sum_k s_k\Big)^2$$

    One jitted, vectorised program over any array of demands; differentiable in the demand
    and in the fleet's costs and capacities (`jax.grad`, `jax.jacfwd`) away from the kinks.

    **Arguments:**

    - `fleet`: a [`Fleet`][mftg_jax.dispatch.Fleet].
    - `demand`: $D$, any shape; without a mismatch loss $0 \le D \le W$ (checked when
      concrete: a larger demand cannot be covered).
    - `mismatch`: $\kappa > 0$ of the mismatch loss $l(x) = \tfrac\kappa2 x^2$, or `None` for
      the balance constraint $S = D$ ($\kappa = \infty$). With it,
      $S^* = D - (l')^{-1}(\lambda) = D - \lambda/\kappa$ (slides, "Structure of the
      solution").

    **Returns:** a [`DispatchSolution`][mftg_jax.dispatch.DispatchSolution].
    """
    demand = jnp.asarray(demand, dtype=float)
    check_field("demand", demand, "finite reals")
    if mismatch is None:
        inv_k = jnp.zeros((), dtype=demand.dtype)
        if is_concrete(demand) and fleet.concrete:
            d, W = np.asarray(demand), float(fleet.total_capacity)
            if d.size and (d.min() < 0 or d.max() > W * (1 + 1e-12)):
                raise ValueError(
                    f"demand must be in [0, {W:g}] (the fleet's total capacity) without a "
                    f"mismatch loss, got range [{d.min():g}, {d.max():g}]"
                )
    else:
        check_field("mismatch", mismatch, "> 0", lambda v: v > 0)
        inv_k = 1 / jnp.asarray(mismatch, dtype=demand.dtype)
    return _dispatch(fleet, demand, inv_k)
