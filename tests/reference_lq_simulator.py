r"""An independent reference: a compact Euler Monte Carlo of a general game (jax.random keys
split per scenario and path, `lax.scan` over steps), kept apart from the library's engine.

Monte Carlo of a general game under its equilibrium feedback.

Scenarios share nothing; within a scenario the paths share the common noise: the regime path,
$B_o$ and $\tilde N_o$. The regime path is simulated exactly as a Markov chain at the grid
times (transition matrix $e^{Q\,\Delta t}$); the state by Euler-Maruyama with compensated
Poisson increments on the finite mark sets; $\hat x$ by its own conditional-mean equation
driven by the common noise,

$$d\hat x = \hat b\,dt + \hat\sigma_o\,dB_o + \textstyle\sum_m \hat\mu_{o,m}\,d\tilde N_{o,m},$$

where $\hat z$ is $z$ with $x \to \hat x$, $u_j \to \hat u_j$. Each path accumulates its
realised discounted cost of equation (2), including the noisy measurement terms
$(\xi\dots)\,dB_o$ and $(\xi\dots)\,d\tilde N_{o,m}$ (Itô sums), which have mean zero.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jaxtyping import Array, Float, Int, PRNGKeyArray

from mftg_jax.lq import RiccatiSolution
from mftg_jax.lq._riccati import channels


class ReferenceSimulation(NamedTuple):
    """Monte Carlo output.

    - `costs`: realised discounted costs, `(scenarios, paths, n)`.
    - `x1`: terminal states `(scenarios, paths)`; `xhat1`: terminal conditional means
      `(scenarios,)`.
    - `regimes`: regime paths on the grid, `(scenarios, steps + 1)`.
    """

    costs: Float[Array, "S P n"]
    x1: Float[Array, "S P"]
    xhat1: Float[Array, " S"]
    regimes: Int[Array, "S T"]

    def mean_cost(self) -> Float[Array, " n"]:
        """Sample mean cost of every player."""
        return jnp.mean(self.costs, axis=(0, 1))

    def standard_error(self) -> Float[Array, " n"]:
        """Standard error of `mean_cost`, from the scenario means (paths within a scenario
        are correlated through the common noise)."""
        m = jnp.mean(self.costs, axis=1)
        return jnp.std(m, axis=0, ddof=1) / jnp.sqrt(m.shape[0])


def _affine(aff, x, xhat, u, uhat):
    """Evaluate an affine coefficient; `x, xhat` broadcast against the coefficient."""
    return (
        aff[0] + aff[1] * x + aff[2] * xhat + jnp.sum(aff[3] * u, -1) + jnp.sum(aff[4] * uhat, -1)
    )


# Poisson counts per step by inversion, truncated at this many arrivals: exact up to a
# probability below 1e-10 while the expected count per step nu*dt stays below 0.5 (checked).
_MAX_ARRIVALS = 12
_MAX_MEAN_ARRIVALS = 0.5


def _poisson(key, lam):
    """Poisson counts of means `lam` by CDF inversion (branch-free, vectorises well)."""
    u = jax.random.uniform(key, lam.shape, lam.dtype)
    p = jnp.exp(-lam)
    cdf = p
    count = jnp.zeros_like(lam)
    for k in range(1, _MAX_ARRIVALS + 1):
        count = count + (u > cdf)
        p = p * lam / k
        cdf = cdf + p
    return count


def _ito_cost(cost, x, xhat, u, uhat):
    return (
        0.5 * (cost.q * x**2 + cost.qbar * xhat**2 + cost.r * u**2 + cost.rbar * uhat**2)
        + cost.eps1 * x * u
        + cost.eps1bar * xhat * uhat
        + cost.eps2 * u
        + cost.eps2bar * uhat
        + cost.eps3 * x
        + cost.eps3bar * xhat
    )


@eqx.filter_jit
def _simulate(solution: RiccatiSolution, key, scenarios, paths, steps):
    game = solution.game
    dtype = game.t0.dtype
    n = game.n
    dt = (game.t1 - game.t0) / steps
    ts = game.t0 + dt * jnp.arange(steps + 1, dtype=dtype)
    gains = jax.vmap(solution.gains)(ts[:-1])  # each (steps, K, n)
    trans = jsl.expm(game.generator * dt)
    d0 = game.x0 - game.xhat0

    def scenario(skey):
        ckey, pkey, rkey = jax.random.split(skey, 3)
        pkeys = jax.random.split(pkey, paths)
        sign = jnp.where(
            jax.vmap(lambda k: jax.random.bernoulli(jax.random.fold_in(k, steps)))(pkeys), 1.0, -1.0
        )
        x = game.xhat0 + d0 * sign.astype(dtype)  # E[(x0 - xhat0)^2] = d0^2, mean zero
        xhat = game.xhat0
        s = jnp.asarray(game.regime0)
        disc = jnp.ones(n, dtype)
        cost = jnp.zeros((paths, n), dtype)

        def step(carry, k):
            x, xhat, s, disc, cost = carry
            t = ts[k]
            co = jax.tree.map(lambda a: a[s], game.at(t))
            g, gh, h = (a[k, s] for a in gains[:3])
            uhat = gh * xhat + h  # (n,)
            u = uhat + g * (x - xhat)[:, None]  # (P, n)
            dyn = co.dynamics
            idio, com = channels(co)
            dr = (dyn.drift.const, dyn.drift.x, dyn.drift.xhat, dyn.drift.u, dyn.drift.uhat)
            ic = tuple(idio[:5])
            oc = tuple(com[:5])
            # Common noise of the scenario at step k.
            kc = jax.random.fold_in(ckey, k)
            kb, kn = jax.random.split(kc)
            dBo = jnp.sqrt(dt) * jax.random.normal(kb, (), dtype)
            nu_o = com.weight[1:] * dt
            dNo = _poisson(kn, nu_o) - nu_o
            dWo = jnp.concatenate([dBo[None], dNo])  # (Co,)
            # Idiosyncratic noise of every path at step k.

            def idio_noise(pk):
                kb_, kn_ = jax.random.split(jax.random.fold_in(pk, k))
                dB = jnp.sqrt(dt) * jax.random.normal(kb_, (), dtype)
                nu = idio.weight[1:] * dt
                dN = _poisson(kn_, nu) - nu
                return jnp.concatenate([dB[None], dN])

            dW = jax.vmap(idio_noise)(pkeys)  # (P, Ci)
            xc = x[:, None]
            b = _affine(dr, x, xhat, u, uhat)
            zi = _affine(ic, xc, xhat, u[:, None, :], uhat)  # (P, Ci)
            zo = _affine(oc, xc, xhat, u[:, None, :], uhat)  # (P, Co)
            bh = _affine(dr, xhat, xhat, uhat, uhat)
            zoh = _affine(oc, xhat, xhat, uhat, uhat)  # (Co,)
            x_new = x + b * dt + jnp.sum(zi * dW, -1) + zo @ dWo
            xhat_new = xhat + bh * dt + zoh @ dWo
            cn = co.cost_noise
            meas = (
                cn.xi0 + cn.xi1 * xhat + 0.5 * cn.xi2 * xc**2 + 0.5 * cn.xi2bar * xhat**2
            ) * dBo + (
                (
                    cn.jump_xi0
                    + cn.jump_xi1 * xhat
                    + 0.5 * cn.jump_xi2 * xc[:, None] ** 2
                    + 0.5 * cn.jump_xi2bar * xhat**2
                )
                * dNo[:, None]
            ).sum(-2)
            run = _ito_cost(co.cost, xc, xhat, u, uhat) * dt + meas
            cost = cost + disc * run
            disc = disc * jnp.exp(-co.cost.lam * dt)
            s_new = jax.random.categorical(jax.random.fold_in(rkey, k), jnp.log(trans[s])).astype(
                s.dtype
            )
            return (x_new, xhat_new, s_new, disc, cost), s

        (x, xhat, s, disc, cost), regimes = jax.lax.scan(
            step, (x, xhat, s, disc, cost), jnp.arange(steps)
        )
        te = jax.tree.map(lambda a: a[s], game.terminal)
        xc = x[:, None]
        term = 0.5 * (te.q * xc**2 + te.qbar * xhat**2) + te.eps3 * xc + te.eps3bar * xhat
        cost = cost + disc * term
        return cost, x, xhat, jnp.concatenate([regimes, s[None]])

    skeys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(scenarios))
    return ReferenceSimulation(*jax.vmap(scenario)(skeys))


def reference_simulate(
    solution: RiccatiSolution,
    key: PRNGKeyArray,
    *,
    scenarios: int = 500,
    paths: int = 8,
    steps: int = 200,
) -> ReferenceSimulation:
    r"""Simulate the equilibrium of a general game and record each path's realised cost.

    **Arguments:**

    - `solution`: a [`RiccatiSolution`][] (its game and equilibrium feedback).
    - `key`: a JAX PRNG key; scenario `i` uses `fold_in(key, i)`, so results do not depend
      on how scenarios are batched.
    - `scenarios`: number of common-noise scenarios (regime path, $B_o$, $N_o$).
    - `paths`: idiosyncratic paths per scenario.
    - `steps`: Euler steps on $[t_0, t_1]$ (weak error $O(\Delta t)$).

    **Returns:** a [`ReferenceSimulation`][]. The initial deviation $x_0 - \hat x_0$ is given a
    random sign per path so that it has conditional mean zero.
    """
    return _simulate(solution, key, scenarios, paths, steps)
