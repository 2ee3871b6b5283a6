r"""Risk-averse certainty equivalents of honest and selfish mining, per block of the chain.

With the difficulty adjusted so that the longest chain grows at a fixed rate, a miner's pay
is counted per block of the chain. Over $N$ chain blocks the attacker earns $R_A(N)$; the
certainty equivalent per chain block of a risk-averse miner ($\eta > 0$) is the $\kappa$ with
$E\,e^{-\eta(R_A - \kappa (R_A + R_H))} \asymp 1$ over a long horizon, i.e. the root of

$$\Lambda(\kappa) = \log \varrho\big(M_\kappa\big) = 0,\qquad
  M_\kappa(s, s') = \sum_{\text{transitions } s\to s'} P\,e^{-\eta(r_A - \kappa(r_A + r_H))},$$

$\varrho$ the Perron root of the tilted chain of the policy (the large-deviation rate of the
pair $(R_A, R_A + R_H)$; $\Lambda$ increases in $\kappa$). At $\eta \to 0$, $\kappa$ is the
relative revenue $A/(A + H)$. For honest mining every block found is a chain block and
$\kappa = -\frac1\eta\log(1 - \alpha + \alpha e^{-\eta})$.

$\varrho$ is found by the left power method on the lazy tilted chain from the state $(1, 0)$
(its support stays in that state's closed class), $\kappa$ by bisection on $[0, 1]$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._validation import check_field
from ._mdp import SelfishMiningMDP


def honest_certainty_equivalent(alpha: ArrayLike, eta: ArrayLike) -> Array:
    r"""$\kappa_H = -\frac1\eta\log(1 - \alpha + \alpha e^{-\eta})$ ($\alpha$ at $\eta = 0$):
    the risk-averse value per chain block of following the longest chain."""
    check_field("eta", eta, ">= 0", lambda v: v >= 0)
    a, e = jnp.broadcast_arrays(jnp.asarray(alpha, float), jnp.asarray(eta, float))
    safe = jnp.where(e > 0, e, 1.0)
    return jnp.where(e > 0, -jnp.log1p(a * jnp.expm1(-safe)) / safe, a)


def _log_perron(mdp, policy, alpha, gamma, eta, kappa, tol, max_steps):
    P = mdp.probabilities(alpha, gamma)
    s = jnp.arange(mdp.n_states)
    p = P[s, policy]
    ra = mdp.attacker_reward[s, policy]
    rh = mdp.honest_reward[s, policy]
    w = p * jnp.exp(-eta * (ra - kappa * (ra + rh)))
    nxt = mdp.successor[s, policy]
    S = mdp.n_states

    def body(c):
        u, _, _, k = c
        moved = jnp.zeros(S, u.dtype).at[nxt.reshape(-1)].add((u[:, None] * w).reshape(-1))
        new = 0.5 * (u + moved)
        rho = jnp.sum(new)
        new = new / rho
        return new, rho, jnp.sum(jnp.abs(new - u)), k + 1

    u0 = jnp.zeros(S, p.dtype).at[mdp.index(1, 0, 0)].set(1.0)
    one = jnp.ones((), p.dtype)
    _, rho, _, _ = jax.lax.while_loop(
        lambda c: (c[2] > tol) & (c[3] < max_steps), body, (u0, one, jnp.inf * one, 0)
    )
    return jnp.log(2 * rho - 1)


def _kappa(mdp, policy, alpha, gamma, eta, tol, max_steps, n_bisect):
    def body(_, c):
        lo, hi = c
        mid = 0.5 * (lo + hi)
        up = _log_perron(mdp, policy, alpha, gamma, eta, mid, tol, max_steps) > 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    z = jnp.zeros((), jnp.asarray(alpha).dtype)
    lo, hi = jax.lax.fori_loop(0, n_bisect, body, (z, z + 1))
    return 0.5 * (lo + hi)


@eqx.filter_jit
def _kappa_batch(mdp, policy, alpha, gamma, eta, tol, max_steps, n_bisect):
    fn = lambda p, a, g, e: _kappa(mdp, p, a, g, e, tol, max_steps, n_bisect)  # noqa: E731
    return jax.vmap(fn)(policy, alpha, gamma, eta)


def policy_certainty_equivalent(
    mdp: SelfishMiningMDP,
    policy: ArrayLike,
    alpha: ArrayLike,
    gamma: ArrayLike,
    eta: ArrayLike,
    *,
    tol: float = 1e-13,
    max_steps: int = 100_000,
    n_bisect: int = 44,
) -> Array:
    r"""The certainty equivalent $\kappa$ per chain block of a policy of the selfish-mining
    MDP for risk aversion $\eta > 0$ (module docstring).

    **Arguments:** `mdp`; `policy` `(S,)` or `(..., S)`; `alpha`, `gamma`, `eta` (broadcast
    together; $\eta > 0$); `tol`, `max_steps`: the power method; `n_bisect`: bisection steps
    on $\kappa \in [0, 1]$.

    **Returns:** $\kappa$ with the batch shape.
    """
    check_field("eta", eta, "> 0", lambda v: v > 0)
    a, g, e = jnp.broadcast_arrays(*(jnp.asarray(x, float) for x in (alpha, gamma, eta)))
    shape = a.shape
    pol = jnp.broadcast_to(jnp.asarray(policy, jnp.int32), shape + (mdp.n_states,))
    out = _kappa_batch(
        mdp,
        pol.reshape(-1, mdp.n_states),
        a.reshape(-1),
        g.reshape(-1),
        e.reshape(-1),
        tol,
        max_steps,
        n_bisect,
    )
    return out.reshape(shape)
