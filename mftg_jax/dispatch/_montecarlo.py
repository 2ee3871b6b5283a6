r"""Monte Carlo certainty equivalent $\tfrac1\eta\log E e^{\eta L}$ of a matching feedback.

Paths of $de = (a - s(t, e))dt + \sigma dB + dJ$ on a uniform grid (Euler-Maruyama; Poisson
jump counts per step by inversion, at most 8 per step, normal sizes, the compensator
$\nu E Y\,dt$ subtracted), the cost $L$ accumulated with the left-point rule. With
$w = e^{\eta(L - c)}$ ($c$ the sample mean of
$L$, for stability), $\widehat{CE} = c + \tfrac1\eta\log\bar w$ and, by the delta method,

$$\operatorname{se}(\widehat{CE}) = \frac{\operatorname{sd}(w)}{\eta\,\bar w\sqrt N}$$

($\eta = 0$: the sample mean of $L$ and its standard error).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._matching import MatchingProblem

_MAX_COUNT = 8


class CertaintyEquivalent(eqx.Module):
    r"""Monte Carlo estimate per station.

    **Fields:** `value` ($\widehat{CE}$), `stderr` (delta method), `mean_loss` ($\bar L$),
    `loss_stderr`, `n_paths`, `n_steps`.
    """

    value: Float[Array, " n"]
    stderr: Float[Array, " n"]
    mean_loss: Float[Array, " n"]
    loss_stderr: Float[Array, " n"]
    n_paths: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)


@eqx.filter_jit
def _losses(problem: MatchingProblem, policy, key, n_paths: int, n_steps: int, bounded: bool):
    pr = jax.tree.map(lambda v: v[None, :] if eqx.is_array(v) and v.ndim == 1 else v, problem)
    dt = (pr.t1 - pr.t0) / n_steps
    jm, js = pr.jump_size_moments
    nu = pr.jumps.intensity
    e0 = jnp.broadcast_to(pr.e0, (n_paths, problem.n))
    # Poisson counts by inversion of the step's law, truncated at _MAX_COUNT arrivals.
    k = jnp.arange(_MAX_COUNT)
    lam = nu * dt
    pmf = jnp.exp(-lam + k * jnp.log(jnp.where(lam > 0, lam, 1.0)) - jax.lax.lgamma(k + 1.0))
    pmf = jnp.where(lam > 0, pmf, (k == 0).astype(pmf.dtype))
    cdf = jnp.cumsum(pmf)

    def step(carry, k):
        e, L = carry
        t = pr.t0 + k * dt
        s = policy.control(t, e)
        if bounded:
            s = jnp.clip(s, 0.0, pr.capacity)
        x = e - pr.target
        L = L + (0.5 * pr.kappa * (pr.demand - s) ** 2 + 0.5 * pr.q * x * x) * dt
        kb, kn, ks = jax.random.split(jax.random.fold_in(key, k), 3)
        dB = jnp.sqrt(dt) * jax.random.normal(kb, e.shape)
        u = jax.random.uniform(kn, e.shape + (1,), dtype=e.dtype)
        count = jnp.sum(u > cdf[None, None, :], axis=-1).astype(e.dtype)
        dJ = count * jm + jnp.sqrt(count) * js * jax.random.normal(ks, e.shape) - nu * jm * dt
        e = e + (pr.arrival - s) * dt + pr.sigma * dB + dJ
        return (e, L), None

    (e, L), _ = jax.lax.scan(step, (e0, jnp.zeros_like(e0)), jnp.arange(n_steps))
    x = e - pr.target
    return L + 0.5 * pr.q_terminal * x * x


def certainty_equivalent(
    solution, key: PRNGKeyArray, n_paths: int = 20000, n_steps: int | None = None
) -> CertaintyEquivalent:
    r"""Estimate $\tfrac1\eta\log E e^{\eta L}$ under `solution`'s feedback from $e_0$
    (module docstring).

    **Arguments:**

    - `solution`: a [`RiskSensitiveSolution`][mftg_jax.dispatch.RiskSensitiveSolution]
      (unbounded feedback) or an [`HJBSolution`][mftg_jax.dispatch.HJBSolution] (bounded;
      the control is also clipped to $[0, \bar s]$).
    - `key`: a JAX PRNG key.
    - `n_paths`: the number of paths; `n_steps`: time steps (default: the HJB grid's, or 400).

    **Returns:** a [`CertaintyEquivalent`][mftg_jax.dispatch.CertaintyEquivalent].
    """
    from ._hjb import HJBSolution

    bounded = isinstance(solution, HJBSolution)
    if n_steps is None:
        n_steps = solution.policy.shape[1] if bounded else 400
    if n_paths < 2 or n_steps < 1:
        raise ValueError(f"n_paths must be >= 2 and n_steps >= 1, got {n_paths}, {n_steps}")
    pr = solution.problem
    L = _losses(pr, solution, key, n_paths, n_steps, bounded)
    mean = jnp.mean(L, axis=0)
    sd = jnp.std(L, axis=0, ddof=1)
    eta = pr.eta
    eta_s = jnp.where(eta > 0, eta, 1.0)
    w = jnp.exp(eta[None, :] * (L - mean[None, :]))
    wbar = jnp.mean(w, axis=0)
    ce = jnp.where(eta > 0, mean + jnp.log(wbar) / eta_s, mean)
    se_w = jnp.std(w, axis=0, ddof=1) / jnp.sqrt(n_paths)
    se = jnp.where(eta > 0, se_w / (eta_s * wbar), sd / jnp.sqrt(n_paths))
    return CertaintyEquivalent(ce, se, mean, sd / jnp.sqrt(n_paths), n_paths, n_steps)
