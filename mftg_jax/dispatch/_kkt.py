r"""KKT residuals and the duality gap of a dispatch: a certificate of optimality per demand.

With the multiplier $\lambda$ (the reported price) the implied bound multipliers are
$\mu^-_k = \max(C_k'(s_k) - \lambda, 0)$ (at $s_k = 0$) and
$\mu^+_k = \max(\lambda - C_k'(s_k), 0)$ (at $s_k = \bar s_k$). The residual is the largest of
the balance error $|S + \lambda/\kappa - D|$ (or $|S - D|$), the bound violations and the
complementarity products $s_k\mu^-_k$, $(\bar s_k - s_k)\mu^+_k$, each scaled to be
dimensionless. The Lagrange dual function

$$g(\lambda) = \lambda D - \frac{\lambda^2}{2\kappa}
 + \sum_k \min_{0 \le s \le \bar s_k} \big(C_k(s) - \lambda s\big)$$

is a lower bound of the cost for every $\lambda$ (weak duality); the gap
$C(s^*) - g(\lambda) \ge 0$ vanishes only at a primal-dual optimum. Both are computed from the
solution alone, independently of how it was found.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._dispatch import DispatchSolution
from ._fleet import Fleet, per_station


class DispatchCertificate(eqx.Module):
    r"""Per-demand optimality certificate of a dispatch.

    **Fields:**

    - `balance`: $|S + \lambda/\kappa - D| / (W + |D|)$.
    - `bounds`: the largest bound violation $\max(-s_k, s_k - \bar s_k, 0) / \bar s_k$.
    - `complementarity`: $\max_k(s_k\mu^-_k, (\bar s_k - s_k)\mu^+_k) / (\bar s_k\,\Lambda)$,
      $\Lambda$ the fleet's price scale $1 + \max_k |C_k'(\bar s_k)|$.
    - `kkt_residual`: the largest of the three.
    - `duality_gap`: $(C(s^*) - g(\lambda)) / (|C(s^*)| + W\Lambda)$, relative.
    - `dual_value`: $g(\lambda)$.
    """

    balance: Float[Array, "..."]
    bounds: Float[Array, "..."]
    complementarity: Float[Array, "..."]
    kkt_residual: Float[Array, "..."]
    duality_gap: Float[Array, "..."]
    dual_value: Float[Array, "..."]


def _inner_min(fleet: Fleet, lam):
    # min over [0, sbar] of c s + q s^2 - lam s: at the clipped stationary point.
    lam = lam[..., None]
    ps = lambda v: per_station(v, lam)  # noqa: E731
    q = ps(jnp.where(fleet.linear, 1.0, fleet.quadratic))
    cap, cost = ps(fleet.capacity), ps(fleet.cost)
    s_q = jnp.clip((lam - cost) / (2 * q), 0.0, cap)
    s_l = jnp.where(cost < lam, cap, 0.0)
    s = jnp.where(ps(fleet.linear), s_l, s_q)
    return jnp.sum(fleet.station_cost(s) - lam * s, axis=-1)


@eqx.filter_jit
def certify(fleet: Fleet, solution: DispatchSolution) -> DispatchCertificate:
    r"""KKT residuals and the duality gap of every dispatch in `solution` (module docstring).

    **Arguments:**

    - `fleet`: the [`Fleet`][mftg_jax.dispatch.Fleet] that was dispatched.
    - `solution`: its [`DispatchSolution`][mftg_jax.dispatch.DispatchSolution].

    **Returns:** a [`DispatchCertificate`][mftg_jax.dispatch.DispatchCertificate] with one
    entry per demand level.
    """
    s, lam, D = solution.dispatch, solution.price, solution.demand
    kappa = solution.mismatch
    finite = jnp.isfinite(kappa)
    inv_k = jnp.where(finite, 1 / jnp.where(finite, kappa, 1.0), 0.0)
    W = fleet.total_capacity
    S = jnp.sum(s, axis=-1)
    balance = jnp.abs(S + lam * inv_k - D) / (W + jnp.abs(D))
    cap = per_station(fleet.capacity, s)
    bounds = jnp.max(jnp.maximum(jnp.maximum(-s, s - cap), 0.0) / cap, axis=-1)
    scale = 1.0 + jnp.max(jnp.abs(fleet.marginal_cost(fleet.capacity)))
    r = fleet.marginal_cost(s) - lam[..., None]
    comp = jnp.maximum(jnp.abs(s) * jnp.maximum(r, 0.0), jnp.abs(cap - s) * jnp.maximum(-r, 0.0))
    comp = jnp.max(comp / (cap * scale), axis=-1)
    primal = jnp.sum(fleet.station_cost(s), axis=-1)
    primal = primal + jnp.where(finite, 0.5 * jnp.where(finite, kappa, 0.0) * (D - S) ** 2, 0.0)
    dual = lam * D - 0.5 * lam**2 * inv_k + _inner_min(fleet, lam)
    gap = (primal - dual) / (jnp.abs(primal) + W * scale)
    kkt = jnp.maximum(jnp.maximum(balance, bounds), comp)
    return DispatchCertificate(balance, bounds, comp, kkt, gap, dual)
