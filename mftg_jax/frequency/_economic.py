r"""The economic dispatch of a network: the equal-marginal-cost (lambda) solution and its KKT
certificate.

$$\min_u \sum_i J_i(u_i) = \sum_i \tfrac{a_i}{2} u_i^2 + b_i u_i
\quad\text{s.t.}\quad \sum_i (P_i + u_i) = 0,\qquad \underline u_i \le u_i \le \bar u_i$$

(slides, "Closed-loop frequency control"; Barreiro-Gomez, Dorfler, Tembine, ACC 2018, eq. (3)).
A bus that is not controllable has $\underline u_i = \bar u_i = 0$.

**KKT conditions.** With the multiplier $\lambda$ of the balance, unit $i$ solves
$\min_{u \in [\underline u_i, \bar u_i]} J_i(u) - \lambda u$:
$u_i(\lambda) = \operatorname{clip}((\lambda - b_i)/a_i, \underline u_i, \bar u_i)$ for $a_i > 0$;
for a linear cost ($a_i = 0$) $u_i = \bar u_i$ if $b_i < \lambda$, $\underline u_i$ if
$b_i > \lambda$, anything in between if $b_i = \lambda$. The unconstrained units share the
marginal cost $J_i'(u_i) = \lambda$.

**Solution (exact, no iteration).** $S(\lambda) = \sum_i u_i(\lambda)$ is nondecreasing and
piecewise linear with breakpoints $b_i + a_i\underline u_i$, $b_i + a_i\bar u_i$ (quadratic
units) and jumps at $b_i$ (linear units). $S$ and its left and right limits are evaluated at
every breakpoint at once (an $n \times 2n$ array): (i) if a jump straddles the demand
$r = -\sum_i P_i$, $\lambda$ is that breakpoint and the linear units tied at it share the
remainder pro rata to their range; (ii) otherwise $\lambda$ lies between two consecutive
breakpoints, where the active set is fixed and
$\lambda = (r - U_{\rm fixed} + \sum_I b_i/a_i) / \sum_I 1/a_i$ over the interior units $I$.
Both are differentiable: the active set is chosen without gradients and the formula carries the
implicit-function-theorem derivative. This is a different algorithm from the bisection of
[`mftg_jax.dispatch.dispatch`][], against which it is tested.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np

from .._validation import check_field, is_concrete


def _vec(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


class DispatchProblem(eqx.Module):
    r"""The economic dispatch $\min \sum_i \tfrac{a_i}{2}u_i^2 + b_i u_i$ s.t.
    $\sum_i u_i = r$, $\underline u_i \le u_i \le \bar u_i$ (module docstring).

    **Arguments:**

    - `cost_a`: $a_i \ge 0$ (zero: a linear cost).
    - `cost_b`: $b_i$, any real.
    - `u_min`, `u_max`: the bounds, $\underline u_i \le \bar u_i$ (equal: not dispatchable).
    - `demand`: $r = -\sum_i P_i$, the power the controls must supply; feasible
      ($\sum_i \underline u_i \le r \le \sum_i \bar u_i$, checked when concrete).
    """

    cost_a: Float[Array, " n"] = eqx.field(converter=_vec)
    cost_b: Float[Array, " n"] = eqx.field(converter=_vec)
    u_min: Float[Array, " n"] = eqx.field(converter=_vec)
    u_max: Float[Array, " n"] = eqx.field(converter=_vec)
    demand: Float[Array, ""] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))

    def __check_init__(self):
        n = self.cost_a.shape[-1]
        for name in ("cost_b", "u_min", "u_max"):
            if getattr(self, name).shape != self.cost_a.shape:
                raise ValueError(
                    f"dispatch.{name} must have one entry per bus ({n}), got shape "
                    f"{getattr(self, name).shape}"
                )
        check_field("dispatch.cost_a", self.cost_a, ">= 0", lambda v: v >= 0)
        check_field("dispatch.cost_b", self.cost_b, "finite reals")
        check_field("dispatch.u_min", self.u_min, "finite reals")
        check_field("dispatch.u_max", self.u_max, "finite reals")
        check_field("dispatch.demand", self.demand, "finite reals")
        if is_concrete(self.u_min, self.u_max, self.demand):
            lo, hi = np.asarray(self.u_min), np.asarray(self.u_max)
            if np.any(lo > hi):
                raise ValueError(f"dispatch.u_min must be <= u_max, got {lo} > {hi}")
            r, tol = float(self.demand), 1e-12 * (1 + np.sum(np.abs(lo) + np.abs(hi)))
            if not lo.sum() - tol <= r <= hi.sum() + tol:
                raise ValueError(
                    f"dispatch.demand must be in [{lo.sum():g}, {hi.sum():g}] (the sum of the "
                    f"control bounds) for a feasible dispatch, got {r:g}"
                )

    @classmethod
    def from_network(cls, network) -> "DispatchProblem":
        r"""The dispatch of a [`Network`][mftg_jax.frequency.Network]: its costs and bounds,
        $r = -\sum_i P_i$."""
        return cls(
            network.cost_a, network.cost_b, network.u_min, network.u_max, -jnp.sum(network.P)
        )

    @property
    def linear(self) -> Array:
        """Mask of the units with a linear cost ($a_i = 0$)."""
        return self.cost_a == 0

    def marginal_cost(self, u: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
        r"""$J_i'(u_i) = a_i u_i + b_i$."""
        return self.cost_a * jnp.asarray(u) + self.cost_b

    def cost(self, u: Float[ArrayLike, " n"]) -> Float[Array, ""]:
        r"""$\sum_i J_i(u_i)$."""
        u = jnp.asarray(u)
        return jnp.sum(0.5 * self.cost_a * u * u + self.cost_b * u)

    def response(self, lam: Float[ArrayLike, ""]) -> Float[Array, " n"]:
        r"""$u_i(\lambda) = \arg\min_{[\underline u_i, \bar u_i]} J_i(u) - \lambda u$ (linear
        units at a tie $b_i = \lambda$: the lower bound)."""
        return _response(self, jnp.asarray(lam), strict=True)


def _response(p: DispatchProblem, lam, strict: bool):
    a = jnp.where(p.linear, 1.0, p.cost_a)
    quad = jnp.clip((lam - p.cost_b) / a, p.u_min, p.u_max)
    up = (p.cost_b < lam) if strict else (p.cost_b <= lam)
    lin = jnp.where(up, p.u_max, p.u_min)
    return jnp.where(p.linear, lin, quad)


class EconomicDispatch(eqx.Module):
    r"""The solution of a [`DispatchProblem`][mftg_jax.frequency.DispatchProblem].

    **Fields:**

    - `dispatch`: $u^*_i$.
    - `price`: $\lambda^*$, the common marginal cost of the unconstrained units (where the
      multiplier is not unique, the lowest one).
    - `cost`: $\sum_i J_i(u^*_i)$.
    """

    dispatch: Float[Array, " n"]
    price: Float[Array, ""]
    cost: Float[Array, ""]


def _solve(p: DispatchProblem) -> tuple[Array, Array]:
    a, b, lo, hi, r = p.cost_a, p.cost_b, p.u_min, p.u_max, p.demand
    lin = p.linear
    a_safe = jnp.where(lin, 1.0, a)
    # Breakpoints: both ends of every quadratic unit's ramp; the jump of a linear unit.
    cand = jnp.concatenate([jnp.where(lin, b, b + a * lo), jnp.where(lin, b, b + a * hi)])
    left = jax.vmap(lambda lam: jnp.sum(_response(p, lam, strict=True)))(cand)
    right = jax.vmap(lambda lam: jnp.sum(_response(p, lam, strict=False)))(cand)
    left, right = jax.lax.stop_gradient((left, right))
    hit = (left <= r) & (r <= right)
    # (i) lambda at a breakpoint: the lowest one whose left/right limits straddle r.
    case_a = jnp.any(hit)
    lam_a = jnp.min(jnp.where(hit, cand, jnp.inf))
    # (ii) lambda strictly between the last breakpoint below and the first above.
    below = jnp.max(jnp.where(right < r, cand, -jnp.inf))
    above = jnp.min(jnp.where(left > r, cand, jnp.inf))
    below = jnp.where(jnp.isfinite(below), below, above - 1.0)
    above = jnp.where(jnp.isfinite(above), above, below + 1.0)
    mid = jax.lax.stop_gradient(0.5 * (below + above))
    interior = ~lin & (b + a * lo < mid) & (mid < b + a * hi)
    fixed = jnp.sum(jnp.where(interior, 0.0, _response(p, mid, strict=True)))
    denom = jnp.sum(jnp.where(interior, 1 / a_safe, 0.0))
    numer = r - fixed + jnp.sum(jnp.where(interior, b / a_safe, 0.0))
    lam_b = numer / jnp.where(denom > 0, denom, 1.0)
    lam_b = jnp.where(denom > 0, lam_b, mid)
    lam = jnp.where(case_a, lam_a, lam_b)
    # Differentiable lambda at a breakpoint: the breakpoint's own expression.
    u = _response(p, lam, strict=True)
    tie = lin & (b == jax.lax.stop_gradient(lam)) & case_a
    rest = r - jnp.sum(u)
    width = jnp.where(tie, hi - lo, 0.0)
    total = jnp.sum(width)
    share = width / jnp.where(total > 0, total, 1.0)
    u = u + jnp.where(tie, jnp.clip(share * rest, 0.0, hi - lo), 0.0)
    return u, lam


@eqx.filter_jit
def economic_dispatch(problem: DispatchProblem) -> EconomicDispatch:
    r"""The exact economic dispatch by the equal-marginal-cost search (module docstring).

    One jitted program; `jax.vmap` over stacked problems; differentiable in the costs, bounds
    and demand away from the kinks of the active set.

    **Arguments:**

    - `problem`: a [`DispatchProblem`][mftg_jax.frequency.DispatchProblem] (for a network:
      `DispatchProblem.from_network(network)`).

    **Returns:** an [`EconomicDispatch`][mftg_jax.frequency.EconomicDispatch].
    """
    u, lam = _solve(problem)
    return EconomicDispatch(u, lam, problem.cost(u))


class KKTCertificate(eqx.Module):
    r"""The KKT residuals of a candidate dispatch $(u, \lambda)$, each dimensionless.

    With $g_i = J_i'(u_i) - \lambda$ the implied bound multipliers are $\mu^-_i = \max(g_i, 0)$
    (lower bound) and $\mu^+_i = \max(-g_i, 0)$ (upper bound), so stationarity
    $g_i - \mu^-_i + \mu^+_i = 0$ holds by construction and optimality rests on:

    **Fields:**

    - `balance`: primal feasibility of the balance, $|\sum_i (P_i + u_i)| / s$,
      $s = 1 + \sum_i |\underline u_i| + |\bar u_i|$.
    - `bounds`: the largest bound violation, $\max_i(\underline u_i - u_i, u_i - \bar u_i, 0)/s$.
    - `complementarity`: $\max_i(\mu^-_i (u_i - \underline u_i), \mu^+_i(\bar u_i - u_i))
      / (s \Lambda)$, $\Lambda = 1 + \max_i |J_i'|$ at the bounds (zero: the stationarity of
      every unit with slack on a side).
    - `marginal_cost_spread`: $\max - \min$ of $J_i'(u_i)$ over the units strictly inside
      their bounds (relative margin $10^{-9}$), over $\Lambda$; zero means equal marginal
      costs across the unconstrained units.
    - `duality_gap`: $(\sum_i J_i(u_i) - g(\lambda)) / (s\Lambda)$ with the dual function
      $g(\lambda) = \lambda r + \sum_i \min_{[\underline u_i, \bar u_i]}(J_i(u) - \lambda u)$
      (nonnegative for feasible $u$, zero only at the optimum).
    - `kkt_residual`: the largest of `balance`, `bounds`, `complementarity` (relative: a
      threshold on it is a threshold on the absolute residuals divided by $s$ or $s\Lambda$).
    - `absolute_balance`: $|\sum_i (P_i + u_i)|$ (p.u.), unscaled.
    - `absolute_complementarity`: $\max_i(\mu^-_i (u_i - \underline u_i), \mu^+_i(\bar u_i -
      u_i))$ (price units times p.u.), unscaled.
    """

    balance: Float[Array, ""]
    bounds: Float[Array, ""]
    complementarity: Float[Array, ""]
    marginal_cost_spread: Float[Array, ""]
    duality_gap: Float[Array, ""]
    kkt_residual: Float[Array, ""]
    absolute_balance: Float[Array, ""]
    absolute_complementarity: Float[Array, ""]


@eqx.filter_jit
def kkt_certificate(
    problem: DispatchProblem, u: Float[ArrayLike, " n"], price: Float[ArrayLike, ""]
) -> KKTCertificate:
    r"""The KKT residuals and duality gap of the dispatch `u` with multiplier `price`,
    computed from $(u, \lambda)$ alone (independently of how they were found).

    **Arguments:**

    - `problem`: the [`DispatchProblem`][mftg_jax.frequency.DispatchProblem].
    - `u`: a candidate dispatch $u_i$.
    - `price`: a candidate multiplier $\lambda$.

    **Returns:** a [`KKTCertificate`][mftg_jax.frequency.KKTCertificate].
    """
    p = problem
    u, lam = jnp.asarray(u, dtype=float), jnp.asarray(price, dtype=float)
    lo, hi = p.u_min, p.u_max
    s = 1.0 + jnp.sum(jnp.abs(lo) + jnp.abs(hi))
    scale = 1.0 + jnp.maximum(
        jnp.max(jnp.abs(p.marginal_cost(lo))), jnp.max(jnp.abs(p.marginal_cost(hi)))
    )
    abs_balance = jnp.abs(jnp.sum(u) - p.demand)
    balance = abs_balance / s
    bounds = jnp.max(jnp.maximum(jnp.maximum(lo - u, u - hi), 0.0)) / s
    g = p.marginal_cost(u) - lam
    comp = jnp.maximum(jnp.maximum(g, 0.0) * (u - lo), jnp.maximum(-g, 0.0) * (hi - u))
    abs_comp = jnp.max(jnp.abs(comp))
    comp = abs_comp / (s * scale)
    margin = 1e-9 * (1.0 + jnp.abs(hi - lo))
    free = (u > lo + margin) & (u < hi - margin)
    mc = p.marginal_cost(u)
    spread = jnp.max(jnp.where(free, mc, -jnp.inf)) - jnp.min(jnp.where(free, mc, jnp.inf))
    spread = jnp.where(jnp.any(free), spread, 0.0) / scale
    inner = jnp.sum(
        0.5 * p.cost_a * _response(p, lam, True) ** 2 + (p.cost_b - lam) * _response(p, lam, True)
    )
    gap = (p.cost(u) - lam * p.demand - inner) / (s * scale)
    kkt = jnp.maximum(jnp.maximum(balance, bounds), comp)
    return KKTCertificate(balance, bounds, comp, spread, gap, kkt, abs_balance, abs_comp)


def dispatch_family_check(problem: DispatchProblem):
    r"""The same dispatch by [`mftg_jax.dispatch.dispatch`][] (bisection on the price), for a
    cross-check: its [`Fleet`][mftg_jax.dispatch.Fleet] has outputs $s \in [0, \bar s]$, so the
    dispatchable units are shifted, $s_i = u_i - \underline u_i$, $\bar s_i = \bar u_i -
    \underline u_i$, costs $p_i = b_i + a_i\underline u_i$, $q_i = a_i/2$ (up to a constant)
    and demand $D = r - \sum_i \underline u_i$; units with $\underline u_i = \bar u_i$ are fixed.

    **Returns:** `(u, price)` (NumPy; concrete problems only).
    """
    from ..dispatch import dispatch as fleet_dispatch, Fleet

    a, b = np.asarray(problem.cost_a), np.asarray(problem.cost_b)
    lo, hi = np.asarray(problem.u_min), np.asarray(problem.u_max)
    free = hi > lo
    fleet = Fleet(hi[free] - lo[free], b[free] + a[free] * lo[free], a[free] / 2)
    D = float(problem.demand) - lo.sum()
    sol = fleet_dispatch(fleet, min(max(D, 0.0), float(fleet.total_capacity)))
    u = lo.copy()
    u[free] += np.asarray(sol.dispatch)
    return u, float(sol.price)
