r"""Mean-field equilibria of the branch-choice game, their stability and exploitability.

A split $m$ (share of branch 1) is an equilibrium when no small miner gains by switching
branch: interior $m \in (0, 1)$ with $\Delta(m) = u_1(m) - u_2(m) = 0$; all on branch 1
($m = 1$) when $\Delta(1) \ge 0$; all on branch 2 ($m = 0$) when $\Delta(0) \le 0$. Its
exploitability is the largest gain of a unilateral deviation of a miner in its support,
$\max_{b:\,m_b > 0} \max_{b'} (u_{b'} - u_b)$, which is $|\Delta(m)|$ at an interior split
and $\max(0, \mp\Delta)$ at a corner.

Interior equilibria are bracketed by the sign changes of $\Delta$ on a grid and refined by
bisection to the last bit of $m$ (all cells at once, one compiled program). Stability is that
of the replicator dynamics of the shares, $\dot m = F(m) = m(1-m)\Delta(m)$ (the best-response
and logit dynamics have the same rest points' stability in one dimension): stable when the
Jacobian $F'(m) < 0$, computed by `jax.jacfwd` ($F'(m) = m(1-m)\Delta'(m)$ inside, $F'(1) =
-\Delta(1)$, $F'(0) = \Delta(0)$).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._game import BranchGame

_BISECTION_STEPS = 52  # a cell of width 1/200 halved to below 1e-17


class Equilibrium(eqx.Module):
    """One mean-field equilibrium: `shares` $(m, 1 - m)$, `kind` (`"branch 1"`,
    `"branch 2"`, `"interior"`), `exploitability` (module docstring), `jacobian` $F'(m)$ of
    the replicator dynamics, `stable` ($F'(m) < 0$), `payoff` $(u_1, u_2)$."""

    shares: np.ndarray
    kind: str = eqx.field(static=True)
    exploitability: float = eqx.field(static=True)
    jacobian: float = eqx.field(static=True)
    stable: bool = eqx.field(static=True)
    payoff: np.ndarray


def _replicator(game: BranchGame, m):
    return m * (1 - m) * game.advantage(m)


@eqx.filter_jit
def _analyse(game: BranchGame, grid: int):
    """One program: the advantage on the grid, a bisection root in every cell (used where the
    sign changes), the replicator Jacobian and the payoffs at every candidate."""
    ms = jnp.linspace(0.0, 1.0, grid + 1)
    delta = jax.vmap(game.advantage)(ms)

    def root(lo, hi):
        # Bisection keeping the sign change (a cell without one converges to an end, unused).
        f_lo = game.advantage(lo)

        def body(_, c):
            a, b = c
            mid = 0.5 * (a + b)
            same = jnp.sign(game.advantage(mid)) == jnp.sign(f_lo)
            return jnp.where(same, mid, a), jnp.where(same, b, mid)

        a, b = jax.lax.fori_loop(0, _BISECTION_STEPS, body, (lo, hi))
        return 0.5 * (a + b)

    roots = jax.vmap(root)(ms[:-1], ms[1:])
    cands = jnp.concatenate([jnp.array([1.0, 0.0]), ms, roots])
    jac = jax.vmap(jax.jacfwd(lambda m: _replicator(game, m)))(cands)
    pay = jax.vmap(game.payoff)(cands)
    return delta, cands, jac, pay


@eqx.filter_jit
def _payoff(game: BranchGame, m):
    return game.payoff(m)


def exploitability(game: BranchGame, m) -> float:
    """The exploitability of the split $m$ (module docstring): the largest gain of a small
    miner on a branch with positive share from switching branch."""
    u = np.asarray(_payoff(game, jnp.asarray(m, float)))
    shares = np.array([float(m), 1 - float(m)])
    best = u.max()
    return float(max(best - u[b] for b in (0, 1) if shares[b] > 0))


def equilibria(game: BranchGame, *, grid: int = 200) -> list[Equilibrium]:
    r"""All mean-field equilibria of `game` (module docstring), corners first.

    **Arguments:** `game`; `grid`: number of grid cells of $(0, 1)$ bracketing interior
    roots (two roots in one cell are missed).

    **Returns:** a list of [`Equilibrium`][mftg_jax.mining.Equilibrium].
    """
    delta, cands, jac, pay = (np.asarray(x) for x in _analyse(game, grid))
    found: list[tuple[int, str]] = []
    if delta[-1] >= 0:
        found.append((0, "branch 1"))
    if delta[0] <= 0:
        found.append((1, "branch 2"))
    for i in range(1, grid):
        if delta[i] == 0.0:
            found.append((2 + i, "interior"))
    for i in range(grid):
        lo, hi = delta[i], delta[i + 1]
        if lo * hi < 0:
            found.append((grid + 3 + i, "interior"))
    out = []
    for i, kind in found:
        m = float(cands[i])
        shares = np.array([m, 1 - m])
        u = pay[i]
        gain = max(u.max() - u[b] for b in (0, 1) if shares[b] > 0)
        out.append(
            Equilibrium(
                shares=shares,
                kind=kind,
                exploitability=float(gain),
                jacobian=float(jac[i]),
                stable=bool(jac[i] < 0),
                payoff=u,
            )
        )
    return out
