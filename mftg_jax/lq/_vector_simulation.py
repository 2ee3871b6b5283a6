r"""Monte Carlo of a vector game under its equilibrium feedback (a second route to the value).

Every path has its own regime path, common noise and idiosyncratic noise, so the paths are
independent and the standard error is the sample one. On the grid $t_k = t_0 + k\Delta t$:
the regime moves by the exact transition matrix $e^{Q\Delta t}$; the state by
Euler-Maruyama with compensated Poisson increments $\Delta N - \nu\Delta t$,

$$\Delta x = b\,\Delta t + \textstyle\sum_k z_k(x, u)\,\Delta W_k,\qquad
  \Delta\hat x = \hat b\,\Delta t + \textstyle\sum_{k\ \mathrm{common}}\hat z_k\,\Delta W_k,$$

($\hat z$: $z$ with $x \to \hat x$, $u_j \to \hat u_j$); the discounted running cost by the
left-point rule. The initial deviation $x_0 - \hat x_0$ gets a random sign per path, so
that it has conditional mean zero. The increments of step $k$ of path $j$ are functions of
`fold_in(fold_in(key, j), k)` only: the paths do not depend on how many are simulated.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._linalg import small_expm
from ._vector_riccati import noise_channels, VectorRiccatiSolution


class VectorMonteCarlo(eqx.Module):
    """Realised discounted costs of the paths, `(paths, n)`, with their statistics."""

    costs: Float[Array, "P n"]

    def mean_cost(self) -> Float[Array, " n"]:
        """Sample mean cost of every player."""
        return jnp.mean(self.costs, axis=0)

    def standard_error(self) -> Float[Array, " n"]:
        """Standard error of `mean_cost` (independent paths)."""
        return jnp.std(self.costs, axis=0, ddof=1) / jnp.sqrt(self.costs.shape[0])


def _affine(aff, x, xh, u, uh):
    """Value of a (channel-stacked) affine coefficient at one point."""
    return (
        aff[0]
        + jnp.einsum("...ab,b->...a", aff[1], x)
        + jnp.einsum("...ab,b->...a", aff[2], xh)
        + jnp.einsum("...jap,jp->...a", aff[3], u)
        + jnp.einsum("...jap,jp->...a", aff[4], uh)
    )


def _running(cost, s, x, xh, u, uh):
    c = jax.tree.map(lambda a: a[s], cost)
    return (
        0.5 * jnp.einsum("a,jab,b->j", x, c.q, x)
        + 0.5 * jnp.einsum("a,jab,b->j", xh, c.qbar, xh)
        + 0.5 * jnp.einsum("jp,jpq,jq->j", u, c.r, u)
        + 0.5 * jnp.einsum("jp,jpq,jq->j", uh, c.rbar, uh)
        + jnp.einsum("a,jap,jp->j", x, c.eps1, u)
        + jnp.einsum("a,jap,jp->j", xh, c.eps1bar, uh)
        + jnp.einsum("jp,jp->j", c.eps2, u)
        + jnp.einsum("jp,jp->j", c.eps2bar, uh)
        + c.eps3 @ x
        + c.eps3bar @ xh
    )


def _terminal(te, s, x, xh):
    return (
        0.5 * jnp.einsum("a,jab,b->j", x, te.q[s], x)
        + 0.5 * jnp.einsum("a,jab,b->j", xh, te.qbar[s], xh)
        + te.eps3[s] @ x
        + te.eps3bar[s] @ xh
    )


@eqx.filter_jit
def _simulate(solution: VectorRiccatiSolution, key, paths: int, steps: int):
    game = solution.game
    dt = (game.t1 - game.t0) / steps
    ts = game.t0 + dt * jnp.arange(steps)
    gains = solution.gains_on(ts)
    ch = noise_channels(game)
    dr = game.dynamics.drift
    cum = jnp.cumsum(small_expm(game.generator * dt), axis=1)
    C = ch.weight.shape[-1]
    is_jump = jnp.concatenate(
        [
            jnp.zeros(game.dynamics.diffusion.const.shape[1]),
            jnp.ones(game.dynamics.jumps.intensity.shape[1]),
            jnp.zeros(game.dynamics.common_diffusion.const.shape[1]),
            jnp.ones(game.dynamics.common_jumps.intensity.shape[1]),
        ]
    )

    def path(j):
        kp = jax.random.fold_in(key, j)
        sign = jnp.where(jax.random.bernoulli(jax.random.fold_in(kp, steps), 0.5), 1.0, -1.0)
        x0 = game.xhat0 + sign * (game.x0 - game.xhat0)

        def step(carry, k):
            x, xh, s, disc, cost = carry
            ks = jax.random.split(jax.random.fold_in(kp, k), 3)
            Kd, Kh, kh = (g[k, s] for g in gains)
            uh = jnp.einsum("jpa,a->jp", Kh, xh) + kh
            u = jnp.einsum("jpa,a->jp", Kd, x - xh) + uh
            cost = cost + disc * _running(game.cost, s, x, xh, u, uh) * dt
            w = ch.weight[s]
            gauss = jax.random.normal(ks[0], (C,)) * jnp.sqrt(dt)
            pois = jax.random.poisson(ks[1], w * dt, (C,)) - w * dt
            dW = jnp.where(is_jump > 0, pois, gauss)
            chan = tuple(a[s] for a in ch[:5])
            full = _affine(chan, x, xh, u, uh)  # (C, d)
            mean = _affine(chan, xh, jnp.zeros_like(xh), uh, jnp.zeros_like(uh))
            mean = mean + jnp.einsum("cab,b->ca", chan[2], xh)
            mean = mean + jnp.einsum("cjap,jp->ca", chan[4], uh)
            drift = tuple(a[s] for a in (dr.const, dr.x, dr.xhat, dr.u, dr.uhat))
            b = _affine(drift, x, xh, u, uh)
            bh = _affine(drift, xh, xh, uh, uh)
            x = x + b * dt + jnp.einsum("c,ca->a", dW, full)
            xh = xh + bh * dt + jnp.einsum("c,ca->a", dW * ch.common[s], mean)
            disc = disc * jnp.exp(-game.cost.lam[s] * dt)
            s_new = jnp.sum(jax.random.uniform(ks[2]) > cum[s]).astype(s.dtype)
            return (x, xh, jnp.minimum(s_new, game.num_regimes - 1), disc, cost), None

        n = game.n
        init = (x0, game.xhat0, game.regime0, jnp.ones(n), jnp.zeros(n))
        (x, xh, s, disc, cost), _ = jax.lax.scan(step, init, jnp.arange(steps))
        return cost + disc * _terminal(game.terminal, s, x, xh)

    return VectorMonteCarlo(jax.vmap(path)(jnp.arange(paths)))


def simulate_vector(
    solution: VectorRiccatiSolution, key: PRNGKeyArray, *, paths: int, steps: int
) -> VectorMonteCarlo:
    r"""Monte Carlo of every player's discounted cost under the equilibrium feedback.

    **Arguments:**

    - `solution`: a [`VectorRiccatiSolution`][mftg_jax.lq.VectorRiccatiSolution].
    - `key`: a JAX PRNG key; `paths`: number of independent paths; `steps`: Euler steps.

    **Returns:** a [`VectorMonteCarlo`][mftg_jax.lq.VectorMonteCarlo]; its mean estimates
    `solution.cost()` up to its standard error and an $O(\Delta t)$ bias.
    """
    return _simulate(solution, key, paths, steps)
