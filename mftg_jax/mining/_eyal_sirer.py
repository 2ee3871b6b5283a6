r"""The Eyal-Sirer selfish-mining strategy: its relative revenue in closed form, its break-even
share, and a Monte Carlo of its state machine with standard errors.

The strategy's private lead $n$ is a Markov chain on $\{0, 0', 1, 2, \dots\}$ ($0'$: a tie
is being raced); solving its stationary law and counting the blocks each transition locks
into the chain gives (Eyal and Sirer 2014, equation (8))

$$R(\alpha, \gamma) = \frac{\alpha(1-\alpha)^2\big(4\alpha + \gamma(1-2\alpha)\big)
  - \alpha^3}{1 - \alpha\big(1 + (2-\alpha)\alpha\big)},$$

and $R > \alpha$ exactly when $\alpha > (1-\gamma)/(3-2\gamma)$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from .._noise._counts import counter_uniform
from .._validation import check_field


def eyal_sirer_revenue(alpha: ArrayLike, gamma: ArrayLike) -> Array:
    r"""The Eyal-Sirer relative revenue $R(\alpha, \gamma)$ (module docstring).

    **Arguments:** `alpha` in $[0, 1/2)$, `gamma` in $[0, 1]$ (broadcast together).

    **Returns:** $R$, the attacker's share of the blocks in the longest chain.
    """
    check_field("alpha", alpha, "in [0, 0.5)", lambda v: (v >= 0) & (v < 0.5))
    check_field("gamma", gamma, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
    a, g = jnp.broadcast_arrays(jnp.asarray(alpha, float), jnp.asarray(gamma, float))
    num = a * (1 - a) ** 2 * (4 * a + g * (1 - 2 * a)) - a**3
    return num / (1 - a * (1 + (2 - a) * a))


def eyal_sirer_break_even(gamma: ArrayLike) -> Array:
    r"""The share $(1-\gamma)/(3-2\gamma)$ above which the Eyal-Sirer strategy beats honest
    mining (below it following the longest chain is the better of the two)."""
    check_field("gamma", gamma, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
    g = jnp.asarray(gamma, float)
    return (1 - g) / (3 - 2 * g)


class RevenueEstimate(eqx.Module):
    """A Monte Carlo relative revenue: `revenue` (ratio of pooled block counts), `stderr`
    (delta method over independent runs), `attacker_blocks`, `honest_blocks` (totals)."""

    revenue: Array
    stderr: Array
    attacker_blocks: Array
    honest_blocks: Array


def _run(key, run_id, alpha, gamma, n_blocks):
    # State: lead >= 0 and a tie flag (state 0'); counts of blocks locked into the chain.
    def step(c, k):
        lead, tie, A, H = c
        u = counter_uniform(key, k, jnp.uint32(0), run_id, alpha.dtype)
        attacker = u < alpha
        on_attacker = u < alpha + gamma * (1 - alpha)  # an honest block on the pool's branch
        # A tie (0'): pool wins both, honest on the pool's branch splits, else honest wins both.
        tA = jnp.where(attacker, 2, jnp.where(on_attacker, 1, 0))
        tH = jnp.where(attacker, 0, jnp.where(on_attacker, 1, 2))
        # No tie: the pool's block extends its lead; an honest block is answered by the lead.
        nA = jnp.where(attacker, 0, jnp.where(lead == 2, 2, jnp.where(lead > 2, 1, 0)))
        nH = jnp.where(attacker | (lead > 0), 0, 1)
        new_lead = jnp.where(attacker, lead + 1, jnp.where(lead == 2, 0, jnp.maximum(lead - 1, 0)))
        new_tie = (~attacker) & (lead == 1)
        lead = jnp.where(tie, 0, new_lead)
        A = A + jnp.where(tie, tA, nA)
        H = H + jnp.where(tie, tH, nH)
        return (lead, jnp.where(tie, False, new_tie), A, H), None

    z = jnp.zeros((), jnp.int32)
    (_, _, A, H), _ = jax.lax.scan(
        step, (z, jnp.asarray(False), z, z), jnp.arange(n_blocks, dtype=jnp.uint32)
    )
    return A, H


@eqx.filter_jit
def _simulate(key, alpha, gamma, n_runs, n_blocks):
    ids = jnp.arange(n_runs, dtype=jnp.uint32)
    A, H = jax.vmap(lambda i: _run(key, i, alpha, gamma, n_blocks))(ids)
    A, H = A.astype(alpha.dtype), H.astype(alpha.dtype)
    R = jnp.sum(A) / jnp.sum(A + H)
    resid = A - R * (A + H)
    se = jnp.std(resid, ddof=1) / jnp.mean(A + H) / jnp.sqrt(n_runs)
    return RevenueEstimate(R, se, jnp.sum(A), jnp.sum(H))


def simulate_eyal_sirer(
    key: PRNGKeyArray,
    alpha: float,
    gamma: float,
    *,
    n_runs: int = 2048,
    n_blocks: int = 5000,
) -> RevenueEstimate:
    r"""Monte Carlo of the Eyal-Sirer state machine (module docstring): `n_runs` independent
    runs of `n_blocks` blocks each, from lead 0.

    Block $k$ of run $j$ is the attacker's when a counter-based uniform $u(k, j) < \alpha$, an
    honest block on the pool's branch during a tie when $u < \alpha + \gamma(1-\alpha)$. The
    estimate is $\sum A / \sum (A + H)$ over runs, its standard error the delta-method one,
    $\mathrm{sd}(A_j - R(A_j + H_j)) / (\overline{A + H}\sqrt{n})$; blocks still private at the
    end of a run are not counted (a bias of order lead / `n_blocks`).

    **Returns:** a [`RevenueEstimate`][mftg_jax.mining.RevenueEstimate].
    """
    check_field("alpha", alpha, "in [0, 0.5)", lambda v: (v >= 0) & (v < 0.5))
    check_field("gamma", gamma, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
    for name, v in (("n_runs", n_runs), ("n_blocks", n_blocks)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {v!r}")
    return _simulate(key, jnp.asarray(alpha, float), jnp.asarray(gamma, float), n_runs, n_blocks)
