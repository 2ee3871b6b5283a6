r"""The longest-chain race between two public branches as an absorbing random walk.

With shares $m$ and $1 - m$ of the hash power on branches 1 and 2 and blocks arriving at total
rate $\lambda$, each block extends branch 1 with probability $p = m$, so the lead
$d = L_1 - L_2$ is a simple random walk. The race is decided when one branch leads by the
confirmation depth $k$: its blocks are then $k$ deep (their rewards mature) and the other
branch is orphaned. For a functional $f(d) = E_d[w^{S} \phi]$ of the number $S$ of blocks to
absorption with per-block weights,

$$f(d) = w\big[p\,z_1 f(d+1) + q\,z_2 f(d-1)\big],\quad |d| < k,\qquad
  f(\pm k) = \text{given},$$

a tridiagonal system of $2k - 1$ unknowns, solved here by the Thomas algorithm in a
`lax.scan` (pure JAX: safe under `vmap`, differentiable). With $w = z = 1$ and boundary
values $1, 0$ it gives the gambler's-ruin probability
$P_d(\text{branch 1 wins}) = \frac{1 - (q/p)^{d+k}}{1 - (q/p)^{2k}}$.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array


def _thomas(lower, diag, upper, rhs):
    """Solve a tridiagonal system (sub-, main, super-diagonal, right-hand side), `(n,)` each."""

    def fwd(c, x):
        cp, dp = c
        a, b, cc, d = x
        den = b - a * cp
        cn = cc / den
        dn = (d - a * dp) / den
        return (cn, dn), (cn, dn)

    z = jnp.zeros((), diag.dtype)
    _, (cp, dp) = jax.lax.scan(fwd, (z, z), (lower, diag, upper, rhs))

    def back(x_next, c):
        cpi, dpi = c
        x = dpi - cpi * x_next
        return x, x

    _, xs = jax.lax.scan(back, z, (cp, dp), reverse=True)
    return xs


def race_functional(p, depth: int, w, z1, z2, f_win, f_lose) -> Array:
    r"""$f(d)$ for $d = -k+1, \dots, k-1$ (module docstring): `(2k - 1,)`.

    **Arguments:** `p` (branch 1's share), `depth` ($k$, static), `w`, `z1`, `z2` (weights of
    a step, of a branch-1 block, of a branch-2 block), `f_win`, `f_lose` ($f(k)$, $f(-k)$).
    """
    n = 2 * depth - 1
    p = jnp.asarray(p, float)
    q = 1 - p
    up = w * p * z1  # coefficient of f(d + 1)
    down = w * q * z2  # coefficient of f(d - 1)
    ones = jnp.ones(n, p.dtype)
    lower = -down * ones
    upper = -up * ones
    rhs = jnp.zeros(n, p.dtype).at[0].add(down * f_lose).at[n - 1].add(up * f_win)
    return _thomas(lower.at[0].set(0.0), ones, upper.at[n - 1].set(0.0), rhs)


def win_probability(p, depth: int, lead=0) -> Array:
    r"""$P_d(\text{branch 1 reaches a lead of } k \text{ first})$ with share `p` on branch 1,
    from lead $d$ = `lead` ($|d| < k$), by the absorbing chain."""
    f = race_functional(p, depth, 1.0, 1.0, 1.0, 1.0, 0.0)
    return f[jnp.asarray(lead) + depth - 1]


def expected_race_blocks(p, depth: int, lead=0) -> Array:
    """$E_d[S]$, the expected number of blocks found (on both branches) until the race is
    decided, by differentiating $E[w^S]$ at $w = 1$."""
    g = lambda w: race_functional(p, depth, w, 1.0, 1.0, 1.0, 1.0)  # noqa: E731
    _, dg = jax.jvp(g, (jnp.asarray(1.0),), (jnp.asarray(1.0),))
    return dg[jnp.asarray(lead) + depth - 1]
