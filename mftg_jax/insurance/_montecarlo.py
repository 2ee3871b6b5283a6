r"""Monte Carlo of wealth under a proportional policy: asset diffusions and jumps, losses and
the regime chain (common noise), on a fixed grid with pathwise-differentiable outputs.

On each step $[t_n, t_{n+1}]$ the fractions are frozen at the midpoint and the regime at
$j_n$; the log-wealth increment is then exact,

$$\Delta\log s = \big(a - \tfrac12\pi^\top\Sigma\pi - \nu\,\pi\cdot EJ
 - \nu_o\mathbf 1\cdot\pi\,EJ_o\big)\Delta t + \pi\cdot\Delta W
 + \sum_{\text{jumps}}\log(1 + \pi_kJ) + \sum_{\text{common}}\log(1 + \mathbf 1\cdot\pi J_o)
 + \Delta N\log(1 - l + I),$$

$a = r + \pi\cdot\mu^{ex} - c - \bar\lambda(1+\theta)I\ (+\bar\lambda(l - I)$ compensated);
at most `max_jumps` asset jumps per step and source are kept (the rest has probability
$O((\nu\Delta t)^{K+1})$, counted in `overflow`). The regime moves at the grid times with the
exact transition matrix $e^{G\Delta t}$. The running utility is integrated by the trapezoid
rule. Paths come in antithetic pairs (path $i$ and $i + N/2$ share the regime, jump and loss
noise and have opposite Brownian increments, so the linear Brownian term of the log-wealth
cancels in each pair); statistics are taken over the $N/2$ pair means.

The shared engine (`mftg_jax._simulation`) streams statistics over batches and returns no
per-path values to differentiate; the policy search needs the pathwise gradient of the
sample objective, so this is one jitted `lax.scan` over the grid with a fixed key (common
random numbers: the sample objective is a deterministic, smooth function of the policy).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._linalg import small_expm
from ._model import InsuranceModel
from ._policy import AbstractPolicy
from ._returns import AssetReturns
from ._solution import excess_returns


class WealthPaths(eqx.Module):
    """Per-path results (`(N,)` each): `utility` (running plus bequest, no penalty),
    `terminal_wealth`, `min_wealth` (over the grid), `terminal_regime`, `losses` (number of
    losses), `bankrupt` (a jump took wealth to $\\le 0$), and `overflow` (dropped jumps)."""

    utility: Array
    terminal_wealth: Array
    min_wealth: Array
    terminal_regime: Array
    losses: Array
    bankrupt: Array
    overflow: Array


def _log1p_checked(x):
    ok = x > -1
    return jnp.log1p(jnp.where(ok, x, 0.0)) + jnp.where(ok, 0.0, -jnp.inf), ~ok


def _pair(x):
    return jnp.concatenate([x, x])


def _truncated_poisson(u, mean, K: int):
    """Poisson counts by inverse CDF from uniforms `u`, `K + 1` meaning "more than K"."""
    p = jnp.exp(-mean)
    cdf = p
    n = jnp.zeros(u.shape, int)
    for k in range(K + 1):
        n = n + (u > cdf)
        p = p * mean / (k + 1)
        cdf = cdf + p
    return n


def _counts(key, mean, shape, K: int):
    return _truncated_poisson(jax.random.uniform(key, shape), mean, K)


@eqx.filter_jit
def simulate_paths(
    model: InsuranceModel,
    returns: AssetReturns,
    policy: AbstractPolicy,
    key,
    n_paths: int,
    n_steps: int,
    max_jumps: int = 3,
) -> WealthPaths:
    """The wealth paths of the module docstring (`n_paths` even, antithetic pairs)."""
    if n_paths % 2:
        raise ValueError(f"n_paths must be even (antithetic pairs), got {n_paths}")
    reg = model.regimes
    nz = model.assets.noise
    N, d, K = n_paths, model.d, max_jumps
    H = N // 2
    t0, t1 = model.t0, model.t1
    dt = (t1 - t0) / n_steps
    P = small_expm(reg.generator * dt)
    cum = jnp.cumsum(P, axis=1)
    EJ = jnp.sum(returns.jump_weights * returns.jump_returns)
    EJo = jnp.sum(returns.common_weights * returns.common_returns)
    lam = model.discount
    sig = nz.sigma
    ls0 = jnp.log(model.s0)

    def felicity(t, c, j, logs):
        return jnp.exp(-lam * t) * (jnp.log(c[j]) + logs)

    c0, _, _ = policy.fractions(t0)
    j0 = jnp.full((N,), model.regime0)
    logs0 = jnp.full((N,), ls0)
    zeros = jnp.zeros((N,))
    init = (j0, logs0, zeros, logs0, zeros, jnp.zeros((N,), bool), jnp.zeros((), int), c0)

    def step(carry, n):
        j, logs, U, mins, losses, bad, over, c_now = carry
        t = t0 + n * dt
        mid = t + dt / 2
        c, pi, ins = policy.fractions(mid)
        ex = excess_returns(model, returns, mid)
        k = jax.random.fold_in(key, n)
        kb, ko, kjc, kjs, kcc, kcs, kl, kr = jax.random.split(k, 8)
        # pairs (i, i + N/2) share every noise but the Brownian one, which is negated
        zb = jax.random.normal(kb, (H, d))
        zo = jax.random.normal(ko, (H,))
        zb = jnp.concatenate([zb, -zb])
        zo = jnp.concatenate([zo, -zo])
        pj, cj, ij = pi[j], c[j], ins[j]
        spi = jnp.sum(pj, -1)
        a = (
            reg.riskless_rate[j]
            + jnp.sum(pj * ex[j], -1)
            - cj
            - reg.loss_intensity[j] * (1 + reg.loading[j]) * ij
        )
        if model.convention == "compensated":
            a = a + reg.loss_intensity[j] * (reg.loss_fraction[j] - ij)
        quad = jnp.sum(pj * (pj @ returns.covariance), -1)
        comp = returns.jump_intensity * spi * EJ + returns.common_intensity * spi * EJo
        diff = jnp.sum(pj * sig[None, :] * zb, -1) + spi * nz.sigma_o * zo
        inc = (a - 0.5 * quad - comp) * dt + jnp.sqrt(dt) * diff
        cnt = _pair(_counts(kjc, returns.jump_intensity * dt, (H, d), K))
        y = _pair(nz.jumps.size.sample(kjs, (H, d, K)))
        used = jnp.arange(K)[None, None, :] < cnt[:, :, None]
        lj, badj = _log1p_checked(pj[:, :, None] * jnp.expm1(y))
        inc = inc + jnp.sum(jnp.where(used, lj, 0.0), (1, 2))
        bad = bad | jnp.any(used & badj, (1, 2))
        cnto = _pair(_counts(kcc, returns.common_intensity * dt, (H,), K))
        yo = _pair(nz.common_jumps.size.sample(kcs, (H, K)))
        usedo = jnp.arange(K)[None, :] < cnto[:, None]
        lo, bado = _log1p_checked(spi[:, None] * jnp.expm1(yo))
        inc = inc + jnp.sum(jnp.where(usedo, lo, 0.0), 1)
        bad = bad | jnp.any(usedo & bado, 1)
        over = over + jnp.sum(cnt > K) + jnp.sum(cnto > K)
        ul = _pair(jax.random.uniform(kl, (H,)))
        nl = _truncated_poisson(ul, reg.loss_intensity[j] * dt, K)
        over = over + jnp.sum(nl > K)
        inc = inc + jnp.minimum(nl, K) * jnp.log(1 - reg.loss_fraction[j] + ij)
        logs_new = jnp.where(bad, -jnp.inf, logs + inc)
        u = _pair(jax.random.uniform(kr, (H,)))
        j_new = jnp.sum(u[:, None] > cum[j, :-1], -1)
        c_next, _, _ = policy.fractions(t + dt)
        f0 = felicity(t, c_now, j, jnp.where(bad, 0.0, logs))
        f1 = felicity(t + dt, c_next, j_new, jnp.where(bad, 0.0, logs_new))
        U = U + 0.5 * dt * (f0 + f1)
        mins = jnp.minimum(mins, logs_new)
        return (j_new, logs_new, U, mins, losses + nl, bad, over, c_next), None

    carry, _ = jax.lax.scan(step, init, jnp.arange(n_steps))
    j, logs, U, mins, losses, bad, over, _ = carry
    U = U + reg.bequest[j] * jnp.exp(-lam * t1) * logs
    return WealthPaths(
        utility=U,
        terminal_wealth=jnp.exp(logs),
        min_wealth=jnp.exp(mins),
        terminal_regime=j,
        losses=losses,
        bankrupt=bad,
        overflow=over,
    )


def pair_means(x: Array) -> Array:
    """Means of the antithetic pairs `(x[i] + x[i + N/2]) / 2`, shape `(N/2,)`."""
    h = x.shape[0] // 2
    return 0.5 * (x[:h] + x[h:])


def objective_samples(model: InsuranceModel, paths: WealthPaths) -> Array:
    r"""Per-pair samples whose mean is the objective's estimate,
    $U_i - q e^{-\lambda t_1}(s_i(t_1) - \bar s(t_1))^2$ ($\bar s$ the sample mean),
    shape `(N/2,)`."""
    s = paths.terminal_wealth
    pen = model.q * jnp.exp(-model.discount * model.t1) * (s - jnp.mean(s)) ** 2
    return pair_means(paths.utility - pen)


def mean_and_stderr(samples: Array) -> tuple[Array, Array]:
    """Sample mean and its standard error."""
    n = samples.shape[0]
    return jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(n)
