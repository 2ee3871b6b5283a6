r"""Forks: a vectorised simulation of the chain race from a split, with miners switching
branch by the game's logit dynamics.

Race $j$ starts at lead $d_0$ with share $m_0$ on branch 1. Blocks arrive at total rate
$\lambda$; between blocks the share relaxes towards the logit response to the current
payoffs,

$$\dot m = \nu\big(\sigma(\beta\,\Delta(m_n, d_n)) - m\big),\qquad
  m(t) = m^\star + (m_n - m^\star)e^{-\nu(t - t_n)},$$

with $\Delta = u_1 - u_2$ the game's payoff advantage at the last block's share $m_n$ and lead
$d_n$ (miners re-evaluate when a block arrives, the only news), $\nu$ the switching rate and
$\beta$ the logit precision. $\Delta(\cdot, d)$ is tabulated once per simulation on a grid of
401 shares for every lead and interpolated linearly in $m$. A block found at time $t$ extends
branch 1 with probability $m(t)$ (the total rate is constant, so this is exact). The race ends
when a branch leads by the game's confirmation depth $k$; the loser's blocks are orphaned.

The simulation is event-driven and exact (no time grid): one `lax.scan` step per block, a
counter-based uniform pair per (race, block) from the core's Threefry counters, so race $j$
depends only on `(key, j)`, whatever the batch. The shared grid engine (`run_ensemble`) steps
a fixed time grid and would add a discretisation error to a process that can be simulated
exactly, so it is not used here; the statistics use the core's `Moments`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray
import numpy as np

from .._noise._counts import counter_uniform
from .._simulation._statistics import Moments
from .._validation import check_field
from ._game import BranchGame

_TABLE = 400  # grid cells of m on which the payoff advantage is tabulated


class ForkStatistics(eqx.Module):
    r"""Statistics of `n_races` simulated forks (numpy).

    **Fields:** `mean`, `stderr` by observable: `orphaned` (blocks on the losing branch),
    `length` (blocks on the winning branch), `duration` (hours), `lost_reward` (orphaned
    blocks times $r\bar p$ of the losing branch), `branch1_wins`; `orphaned_pmf` ($P(\text{
    orphaned} = n)$, $n = 0..$`max_orphaned`, the last bin holding the tail) with `pmf_stderr`;
    `unfinished` (races still running after `max_blocks`, counted in the statistics as
    they stand); `n_races`.
    """

    mean: dict
    stderr: dict
    orphaned_pmf: np.ndarray
    pmf_stderr: np.ndarray
    unfinished: int
    n_races: int


def _race(game: BranchGame, table, key, j, m0, nu, beta, max_blocks):
    k = game.depth
    dt = game.rate.dtype

    grid = table.shape[0] - 1

    def target(m, d):
        # Linear interpolation in m of the tabulated advantage at lead d.
        x = jnp.clip(m, 0.0, 1.0) * grid
        i = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, grid - 1)
        col = jnp.clip(d + k - 1, 0, 2 * k - 2)
        adv = table[i, col] + (x - i) * (table[i + 1, col] - table[i, col])
        return jax.nn.sigmoid(beta * adv)

    def step(c, n):
        d, m, ms, t, n1, n2, done = c
        u1 = counter_uniform(key, 2 * n, jnp.uint32(0), j, dt)
        u2 = counter_uniform(key, 2 * n + 1, jnp.uint32(0), j, dt)
        wait = -jnp.log(u1) / game.rate
        m_block = ms + (m - ms) * jnp.exp(-nu * wait)
        on1 = u2 < m_block
        d1 = d + jnp.where(on1, 1, -1)
        go = ~done
        d = jnp.where(go, d1, d)
        n1 = n1 + (go & on1)
        n2 = n2 + (go & ~on1)
        t = t + jnp.where(go, wait, 0.0)
        m = jnp.where(go, m_block, m)
        ms = jnp.where(go, target(m, d), ms)
        done = done | (jnp.abs(d) >= k)
        return (d, m, ms, t, n1, n2, done), None

    z = jnp.zeros((), jnp.int32)
    m0 = jnp.asarray(m0, dt)
    d0 = jnp.asarray(game.lead, jnp.int32)
    c0 = (d0, m0, target(m0, d0), jnp.zeros((), dt), z, z, jnp.asarray(False))
    (d, _, _, t, n1, n2, done), _ = jax.lax.scan(step, c0, jnp.arange(max_blocks, dtype=jnp.uint32))
    return d, t, n1, n2, done


@eqx.filter_jit
def _simulate(game, key, m0, nu, beta, n_races, max_blocks, max_orphaned):
    ids = jnp.arange(n_races, dtype=jnp.uint32)
    u = jax.vmap(game.payoff_by_lead)(jnp.linspace(0.0, 1.0, _TABLE + 1))
    table = u[:, 0, :] - u[:, 1, :]  # (m grid, lead)
    d, t, n1, n2, done = jax.vmap(lambda j: _race(game, table, key, j, m0, nu, beta, max_blocks))(
        ids
    )
    win1 = d > 0
    orphaned = jnp.where(win1, n2, n1)
    length = jnp.where(win1, n1, n2)
    price_lost = jnp.where(win1, game.price[1], game.price[0])
    f = lambda x: x.astype(t.dtype)  # noqa: E731
    obs = dict(
        orphaned=f(orphaned),
        length=f(length),
        duration=t,
        lost_reward=f(orphaned) * game.reward * price_lost,
        branch1_wins=f(win1),
    )
    onehot = jax.nn.one_hot(jnp.minimum(orphaned, max_orphaned), max_orphaned + 1, dtype=t.dtype)
    moms = {k: Moments.of(v, 0) for k, v in obs.items()}
    pmf = Moments.of(onehot, 0)
    return (
        {k: v.mean for k, v in moms.items()},
        {k: v.stderr for k, v in moms.items()},
        pmf.mean,
        pmf.stderr,
        jnp.sum(~done),
    )


def simulate_forks(
    game: BranchGame,
    key: PRNGKeyArray,
    *,
    share: float,
    switching_rate: float,
    precision: float = 1.0,
    n_races: int = 4096,
    max_blocks: int = 400,
    max_orphaned: int = 60,
) -> ForkStatistics:
    r"""Simulate `n_races` forks of `game` from its lead with share `share` on branch 1
    (module docstring).

    **Arguments:**

    - `game`: a [`BranchGame`][mftg_jax.mining.BranchGame] (rate, depth, lead, payoffs).
    - `key`: a JAX PRNG key.
    - `share`: $m_0 \in [0, 1]$; `switching_rate`: $\nu \ge 0$ per hour (0: nobody
      switches, the race is the gambler's ruin); `precision`: the logit's $\beta \ge 0$.
    - `n_races`; `max_blocks`: blocks simulated per race at most; `max_orphaned`: the last
      bin of the orphaned-block distribution.

    **Returns:** [`ForkStatistics`][mftg_jax.mining.ForkStatistics].
    """
    check_field("share", share, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
    check_field("switching_rate", switching_rate, ">= 0", lambda v: v >= 0)
    check_field("precision", precision, ">= 0", lambda v: v >= 0)
    for name, v in (
        ("n_races", n_races),
        ("max_blocks", max_blocks),
        ("max_orphaned", max_orphaned),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {v!r}")
    f = lambda x: jnp.asarray(x, float)  # noqa: E731
    mean, se, pmf, pmf_se, unfinished = _simulate(
        game, key, f(share), f(switching_rate), f(precision), n_races, max_blocks, max_orphaned
    )
    g = lambda d: {k: float(v) for k, v in d.items()}  # noqa: E731
    return ForkStatistics(
        g(mean), g(se), np.asarray(pmf), np.asarray(pmf_se), int(unfinished), n_races
    )
