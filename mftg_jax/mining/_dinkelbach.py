r"""The optimal selfish-mining deviation: the ratio objective of the SSZ MDP by Dinkelbach's
method, each step an average-reward problem solved by relative value iteration.

The relative revenue of a policy is $\rho(\pi) = A(\pi)/(A(\pi) + H(\pi))$ (long-run block
rates, `_policy_eval.py`). For a trial ratio $\rho$ the transformed reward
$r_\rho = r_A - \rho\,(r_A + r_H)$ has optimal gain
$g(\rho) = \max_\pi [A(\pi) - \rho(A(\pi) + H(\pi))]$, decreasing in $\rho$, with
$g(\rho^*) = 0$ exactly at the optimal ratio $\rho^* = \max_\pi \rho(\pi)$ (SSZ, section 4).
Dinkelbach's iteration $\rho_{k+1} = \rho(\pi_k)$, with $\pi_k$ greedy for $r_{\rho_k}$,
increases $\rho_k$ and stops in finitely many steps; it starts at the honest policy's
$\rho_0 = \alpha$.

Each $g(\rho)$ comes from relative value iteration on the lazy MDP
$P' = \tau P + (1-\tau)I$ (same stationary laws and gains, aperiodic):
$V \leftarrow TV - (TV)(s_0)$ with $TV(s) = \max_a [r_\rho(s,a) + \tau\sum_{s'}P(s'|s,a)V(s')
+ (1-\tau)V(s)]$, stopped when $\mathrm{span}(TV - V) <$ `tol`; then
$\min(TV - V) \le g(\rho) \le \max(TV - V)$ (Puterman, theorem 8.5.5). The upper bound at the
final $\rho$ certifies optimality: no policy earns more than $\rho + \bar g/(A + H)$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._validation import check_field
from ._mdp import SelfishMiningMDP
from ._policy_eval import stationary_distribution

_TAU = 0.9


class OptimalDeviation(eqx.Module):
    r"""The optimal deviation at each $(\alpha, \gamma)$ of a batch.

    **Fields:**

    - `revenue`: $\rho^*$, the relative revenue of the returned policy (evaluated by its
      stationary distribution, so attained).
    - `policy`: the optimal action per state, `(..., S)`.
    - `attacker_rate`, `honest_rate`: $A$, $H$ of the policy (blocks per block found).
    - `gain_bound`: the value-iteration upper bound $\bar g$ of
      $\max_\pi[A - \rho^*(A+H)]$ at the final ratio (module docstring), $\approx 0$.
    - `outer_steps`: Dinkelbach steps; `inner_steps`: value-iteration sweeps, all steps.
    """

    revenue: Array
    policy: Array
    attacker_rate: Array
    honest_rate: Array
    gain_bound: Array
    outer_steps: Array
    inner_steps: Array


def _expected_rewards(mdp: SelfishMiningMDP, alpha, gamma):
    P = mdp.probabilities(alpha, gamma)
    ra = jnp.sum(P * mdp.attacker_reward, axis=-1)
    rh = jnp.sum(P * mdp.honest_reward, axis=-1)
    return P, ra, rh


def relative_value_iteration(mdp: SelfishMiningMDP, P, r, V0, tol: float, max_steps: int):
    """RVI of the lazy MDP (module docstring): `(V, gain_lo, gain_hi, policy, sweeps)`."""
    ref = mdp.index(1, 0, 0)
    nxt = mdp.successor

    def q(V):
        Q = r + _TAU * jnp.sum(P * V[nxt], axis=-1) + (1 - _TAU) * V[:, None]
        return jnp.where(mdp.feasible, Q, -jnp.inf)

    def cond(c):
        _, lo, hi, k = c
        return (hi - lo > tol) & (k < max_steps)

    def body(c):
        V, _, _, k = c
        TV = jnp.max(q(V), axis=-1)
        d = TV - V
        return TV - TV[ref], jnp.min(d), jnp.max(d), k + 1

    inf = jnp.asarray(jnp.inf, r.dtype)
    V, lo, hi, k = jax.lax.while_loop(cond, body, (V0, -inf, inf, 0))
    return V, lo, hi, jnp.argmax(q(V), axis=-1).astype(jnp.int32), k


def _solve_point(mdp, alpha, gamma, tol, max_steps, max_outer):
    P, ra, rh = _expected_rewards(mdp, alpha, gamma)
    S = mdp.n_states
    s = jnp.arange(S)

    def rates(pol):
        p = P[s, pol]
        mu, _, _ = stationary_distribution(p, mdp.successor[s, pol], tol * 1e-2, 50 * max_steps)
        return jnp.sum(mu * ra[s, pol]), jnp.sum(mu * rh[s, pol])

    def cond(c):
        return (~c["done"]) & (c["k"] < max_outer)

    def body(c):
        r = ra - c["rho"] * (ra + rh)
        V, _, hi, pol, n = relative_value_iteration(mdp, P, r, c["V"], tol, max_steps)
        A, H = rates(pol)
        rho_new = A / (A + H)
        better = rho_new > c["rho"]
        return dict(
            rho=jnp.where(better, rho_new, c["rho"]),
            V=V,
            pol=jnp.where(better, pol, c["pol"]),
            A=jnp.where(better, A, c["A"]),
            H=jnp.where(better, H, c["H"]),
            hi=hi,
            done=rho_new - c["rho"] <= 10 * tol,
            k=c["k"] + 1,
            n=c["n"] + n,
        )

    alpha = jnp.asarray(alpha, float)
    honest = jnp.where(mdp.feasible[:, 1], 1, 0).astype(jnp.int32)
    init = dict(
        rho=alpha,
        V=jnp.zeros(S, alpha.dtype),
        pol=honest,
        A=alpha,
        H=1 - alpha,
        hi=jnp.asarray(jnp.inf, alpha.dtype),
        done=jnp.asarray(False),
        k=0,
        n=0,
    )
    c = jax.lax.while_loop(cond, body, init)
    return OptimalDeviation(c["rho"], c["pol"], c["A"], c["H"], c["hi"], c["k"], c["n"])


@eqx.filter_jit
def _solve_batch(mdp, alpha, gamma, tol, max_steps, max_outer):
    return jax.vmap(lambda a, g: _solve_point(mdp, a, g, tol, max_steps, max_outer))(alpha, gamma)


def optimal_deviation(
    mdp: SelfishMiningMDP,
    alpha: ArrayLike,
    gamma: ArrayLike,
    *,
    tol: float = 1e-11,
    max_steps: int = 20_000,
    max_outer: int = 50,
) -> OptimalDeviation:
    r"""The attacker's optimal relative revenue $\rho^*(\alpha, \gamma)$ and policy (module
    docstring), one jitted program `jax.vmap`-ed over the batch.

    **Arguments:**

    - `mdp`: a [`SelfishMiningMDP`][mftg_jax.mining.SelfishMiningMDP] (its depth).
    - `alpha`, `gamma`: shares, broadcast together to the batch shape; $0 < \alpha < 1/2$,
      $0 \le \gamma \le 1$.
    - `tol`: the span tolerance of value iteration (the gains are exact to it).
    - `max_steps`: value-iteration sweeps per Dinkelbach step; `max_outer`: Dinkelbach steps.

    **Returns:** an [`OptimalDeviation`][mftg_jax.mining.OptimalDeviation].
    """
    alpha, gamma = _checked_shares(alpha, gamma)
    shape = alpha.shape
    out = _solve_batch(mdp, alpha.reshape(-1), gamma.reshape(-1), tol, max_steps, max_outer)
    return jax.tree.map(lambda x: x.reshape(shape + x.shape[1:]), out)


def _checked_shares(alpha, gamma):
    check_field("alpha", alpha, "in (0, 0.5)", lambda v: (v > 0) & (v < 0.5))
    check_field("gamma", gamma, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
    return jnp.broadcast_arrays(jnp.asarray(alpha, float), jnp.asarray(gamma, float))


def _break_even_point(mdp, gamma, tol, max_steps, n_bisect, eps):
    def gain_at(alpha, V):
        P, ra, rh = _expected_rewards(mdp, alpha, gamma)
        V, lo, hi, _, _ = relative_value_iteration(
            mdp, P, ra - alpha * (ra + rh), V, tol, max_steps
        )
        return 0.5 * (lo + hi), V

    def body(_, c):
        lo, hi, V = c
        mid = 0.5 * (lo + hi)
        g, V = gain_at(mid, V)
        profitable = g > eps
        return jnp.where(profitable, lo, mid), jnp.where(profitable, mid, hi), V

    z = jnp.zeros((), jnp.asarray(gamma).dtype)
    lo, hi, _ = jax.lax.fori_loop(
        0, n_bisect, body, (z + 1e-6, z + 0.5 - 1e-6, jnp.zeros(mdp.n_states, z.dtype))
    )
    return 0.5 * (lo + hi)


@eqx.filter_jit
def _break_even_batch(mdp, gamma, tol, max_steps, n_bisect, eps):
    return jax.vmap(lambda g: _break_even_point(mdp, g, tol, max_steps, n_bisect, eps))(gamma)


def optimal_break_even(
    mdp: SelfishMiningMDP,
    gamma: ArrayLike,
    *,
    tol: float = 1e-12,
    max_steps: int = 20_000,
    n_bisect: int = 34,
    eps: float = 1e-9,
) -> Array:
    r"""The smallest attacker share $\alpha^*(\gamma)$ at which some deviation beats following
    the longest chain in the truncated MDP.

    Below $\alpha^*$ the honest policy is optimal: $g(\alpha) = \max_\pi[A - \alpha(A + H)]$
    is $0$ (honest mining earns $A = \alpha$, $A + H = 1$) and above it $g > 0$. The share is
    found by bisection on $g(\alpha) > \varepsilon$ in $(0, 1/2)$, each $g$ by relative value
    iteration (module docstring), `jax.vmap`-ed over `gamma`.

    **Arguments:** `mdp`; `gamma` (any shape, in $[0, 1]$); `tol`, `max_steps`: value
    iteration; `n_bisect`: bisection steps (width $2^{-n}/2$); `eps`: the gain threshold.

    **Returns:** $\alpha^*$ with the shape of `gamma`.
    """
    check_field("gamma", gamma, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
    g = jnp.asarray(gamma, float)
    return _break_even_batch(mdp, g.reshape(-1), tol, max_steps, n_bisect, eps).reshape(g.shape)
