r"""The price game lowered to the general LQ game of [`mftg_jax.lq`][]: the same equilibrium
computed by the general solver, a cross-check of both (`mftg certify`).

The price $p$ is the state $x$; producer $i$ minimises the cost $-R_i$ (minus the revenue), so
every cost coefficient is minus the corresponding revenue coefficient (docs/general_lq.md).
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ..lq import (
    Coefficients,
    LQGame,
    RiccatiValues as LQRiccatiValues,
    TerminalCost,
    zero_coefficients,
)
from ._game import PriceGame
from ._riccati import RiccatiValues, terminal_values


def to_lq(game: PriceGame) -> LQGame:
    r"""The price game of docs/model.md written as a general game (one regime).

    $x = p$, $b = \eta a(t) - \eta x - \eta\sum_j u_j$, $\sigma_0 = \sigma$,
    $\sigma_{o0} = \sigma_o$; each compound-Poisson noise becomes one mark of intensity $\nu$
    and size $\sqrt{E[Y^2]}$ (the equilibrium only sees $\nu E[Y^2]$). The revenue is turned
    into a cost: $r$, $\bar r$, $\bar\epsilon_1 = -1$ ($E[\hat p u_i] = E[\hat p\hat u_i]$),
    $\epsilon_2 = c_i$, $q_T = q$, $\bar q_T = -q$ (so $\tfrac q2(p-\hat p)^2$ in expectation;
    with stationary terminal values $q_T = -\alpha(t_1)$, $\bar q_T = \alpha(t_1) - \beta(t_1)$,
    $\bar\epsilon_{3T} = -\gamma(t_1)$).
    The general solution's $(\alpha, \beta, \gamma, \delta)$ are then minus the price game's.

    **Arguments:** `game`: a `PriceGame`.

    **Returns:** a [`LQGame`][] with `K = 1`.
    """
    mk, pr, nz = game.market, game.producers, game.noise
    n = pr.n
    co = zero_coefficients(1, n, 1, 1)
    eta = mk.eta
    one = jnp.ones((1, n))
    dyn = co.dynamics
    dyn = eqx.tree_at(
        lambda d: (
            d.drift.const,
            d.drift.x,
            d.drift.u,
            d.diffusion.const,
            d.common_diffusion.const,
            d.jumps.intensity,
            d.jumps.size.const,
            d.common_jumps.intensity,
            d.common_jumps.size.const,
        ),
        dyn,
        (
            jnp.reshape(eta * mk.a.mean, (1,)),
            jnp.reshape(-eta, (1,)),
            -eta * one,
            jnp.reshape(nz.sigma, (1,)),
            jnp.reshape(nz.sigma_o, (1,)),
            jnp.reshape(nz.jumps.intensity, (1, 1)),
            jnp.reshape(jnp.sqrt(nz.jumps.size.second_moment()), (1, 1)),
            jnp.reshape(nz.common_jumps.intensity, (1, 1)),
            jnp.reshape(jnp.sqrt(nz.common_jumps.size.second_moment()), (1, 1)),
        ),
    )
    cost = eqx.tree_at(
        lambda c: (c.r, c.rbar, c.eps1bar, c.eps2, c.lam),
        co.cost,
        (pr.r[None], pr.rbar[None], -one, pr.c[None], pr.lam[None]),
    )
    co = Coefficients(dyn, cost, co.cost_noise)
    zeros = jnp.zeros((1, n))
    # Terminal reward alpha/2 (p - phat)^2 + beta/2 phat^2 + gamma phat, as a cost in
    # expectation (E[p phat] = E[phat^2]); delta(t1) = 0 in both terminal modes.
    tv = terminal_values(game)
    terminal = TerminalCost(-tv.alpha[None], (tv.alpha - tv.beta)[None], zeros, -tv.gamma[None])
    cos = sin = None
    if not mk.a.is_constant:
        H = mk.a.cos.shape[-1]
        base = jax.tree.map(lambda x: jnp.zeros((H, *x.shape)), co)
        cos = eqx.tree_at(lambda c: c.dynamics.drift.const, base, (eta * mk.a.cos)[:, None])
        sin = eqx.tree_at(lambda c: c.dynamics.drift.const, base, (eta * mk.a.sin)[:, None])
    return LQGame(
        coefficients=co,
        terminal=terminal,
        generator=jnp.zeros((1, 1)),
        t0=mk.t0,
        t1=mk.t1,
        x0=mk.p0,
        xhat0=mk.phat0,
        regime0=0,
        period=mk.a.period,
        cos=cos,
        sin=sin,
    )


def from_lq(values: LQRiccatiValues) -> RiccatiValues:
    r"""The price game's $(\alpha, \beta, \gamma, \delta)$ from the lowered game's values
    (regime 0): the general game minimises cost $= -$revenue, so each is minus its
    counterpart.

    **Arguments:** `values`: [`mftg_jax.lq.RiccatiValues`][] of `to_lq(game)`, each `(1, n)`.

    **Returns:** [`RiccatiValues`][mftg_jax.price.RiccatiValues], each `(n,)`.
    """
    return RiccatiValues(*(-v[0] for v in values))


def revenue_from_lq_cost(cost):
    """A producer's revenue from the lowered game's cost (its negative)."""
    return -cost
