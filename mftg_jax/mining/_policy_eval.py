r"""Long-run rates of a fixed policy of the selfish-mining MDP, by its stationary distribution.

For a stationary policy $\pi$ the induced chain $P_\pi$ has a stationary distribution $\mu$
($\mu P_\pi = \mu$); the attacker's and the honest network's rates of blocks locked into the
chain per block found are $A = \sum_s \mu_s \bar r_A(s, \pi(s))$ and
$H = \sum_s \mu_s \bar r_H(s, \pi(s))$, and the relative revenue is $A/(A+H)$.

$\mu$ is found by the power method on the lazy chain $\tfrac12(I + P_\pi)$ (same stationary
law, aperiodic): a sparse scatter-add per iteration, safe under `jax.vmap` (no batched
LAPACK call) and exact to the stopping tolerance on the $\ell_1$ change.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._mdp import SelfishMiningMDP


class PolicyRevenue(eqx.Module):
    """Long-run rates of a policy (module docstring): `revenue` $A/(A+H)$, `attacker_rate`
    $A$, `honest_rate` $H$ (blocks per block found), `residual` (last $\\ell_1$ change of the
    power method), `iterations`."""

    revenue: Array
    attacker_rate: Array
    honest_rate: Array
    residual: Array
    iterations: Array


def _policy_chain(mdp: SelfishMiningMDP, policy: Array, alpha, gamma):
    P = mdp.probabilities(alpha, gamma)
    s = jnp.arange(mdp.n_states)
    p = P[s, policy]  # (S, 3)
    nxt = mdp.successor[s, policy]
    ra = jnp.sum(p * mdp.attacker_reward[s, policy], axis=-1)
    rh = jnp.sum(p * mdp.honest_reward[s, policy], axis=-1)
    return p, nxt, ra, rh


def stationary_distribution(p: Array, nxt: Array, tol: float, max_steps: int):
    """Power method on the lazy chain; `p (S, K)` probabilities to successors `nxt (S, K)`."""
    S = p.shape[0]

    def step(mu):
        moved = jnp.zeros(S, mu.dtype).at[nxt.reshape(-1)].add((mu[:, None] * p).reshape(-1))
        return 0.5 * (mu + moved)

    def cond(c):
        _, res, k = c
        return (res > tol) & (k < max_steps)

    def body(c):
        mu, _, k = c
        new = step(mu)
        return new, jnp.sum(jnp.abs(new - mu)), k + 1

    mu0 = jnp.full(S, 1.0 / S, p.dtype)
    mu, res, k = jax.lax.while_loop(cond, body, (mu0, jnp.asarray(jnp.inf, p.dtype), 0))
    return mu / jnp.sum(mu), res, k


def _evaluate(mdp, policy, alpha, gamma, tol, max_steps):
    p, nxt, ra, rh = _policy_chain(mdp, policy, alpha, gamma)
    mu, res, k = stationary_distribution(p, nxt, tol, max_steps)
    A, H = jnp.sum(mu * ra), jnp.sum(mu * rh)
    return PolicyRevenue(A / (A + H), A, H, res, k)


@eqx.filter_jit
def _evaluate_batch(mdp, pol, alpha, gamma, tol, max_steps):
    return jax.vmap(lambda p, a, g: _evaluate(mdp, p, a, g, tol, max_steps))(pol, alpha, gamma)


def policy_revenue(
    mdp: SelfishMiningMDP,
    policy: ArrayLike,
    alpha: ArrayLike,
    gamma: ArrayLike,
    *,
    tol: float = 1e-13,
    max_steps: int = 200_000,
) -> PolicyRevenue:
    r"""Relative revenue $A/(A+H)$ of a fixed policy (module docstring).

    **Arguments:**

    - `mdp`: a [`SelfishMiningMDP`][mftg_jax.mining.SelfishMiningMDP].
    - `policy`: action per state, `(S,)` (or `(..., S)` matching the batch of
      $(\alpha, \gamma)$), e.g. [`eyal_sirer_policy`][mftg_jax.mining.eyal_sirer_policy].
    - `alpha`, `gamma`: the attacker's share and tie-breaking share (broadcast together).
    - `tol`: stopping tolerance on the $\ell_1$ change of $\mu$; `max_steps`: iteration cap.

    **Returns:** a [`PolicyRevenue`][mftg_jax.mining.PolicyRevenue] with the batch shape.
    """
    alpha, gamma = jnp.broadcast_arrays(jnp.asarray(alpha, float), jnp.asarray(gamma, float))
    policy = jnp.asarray(policy, jnp.int32)
    shape = alpha.shape
    pol = jnp.broadcast_to(policy, shape + (mdp.n_states,)).reshape(-1, mdp.n_states)
    out = _evaluate_batch(mdp, pol, alpha.reshape(-1), gamma.reshape(-1), tol, max_steps)
    return jax.tree.map(lambda x: x.reshape(shape), out)
