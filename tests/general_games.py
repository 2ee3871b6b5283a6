"""Random general LQ games for the general-game tests (convex costs, mild coefficients)."""

import equinox as eqx
import jax
import jax.numpy as jnp

from mftg_jax.lq import LQGame, TerminalCost, zero_coefficients


def random_general_game(
    seed: int,
    K: int = 2,
    n: int = 3,
    marks: int = 1,
    common_marks: int = 1,
    control_noise: float = 0.3,
    t1: float = 1.0,
) -> LQGame:
    """A random game: every coefficient family non-zero, convex costs, regimes that differ.

    Costs: q, qbar, r, rbar drawn so that the running cost is convex in (x, u) and in
    (xhat, uhat); control loadings of all four noise families of size `control_noise`.
    """
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 64))

    def U(shape, lo, hi):
        return jax.random.uniform(next(keys), shape, minval=lo, maxval=hi)

    co = zero_coefficients(K, n, marks, common_marks)
    dyn = co.dynamics

    def affine(aff, scale, lead):
        return type(aff)(
            U(lead, -scale, scale),
            U(lead, -scale, scale),
            U(lead, -scale, scale),
            U((*lead, n), -control_noise, control_noise),
            U((*lead, n), -control_noise, control_noise),
        )

    drift = type(dyn.drift)(
        U((K,), -1, 1), U((K,), -1, 0.2), U((K,), -0.5, 0.5), U((K, n), -1, 1), U((K, n), -0.5, 0.5)
    )
    dyn = type(dyn)(
        drift=drift,
        diffusion=affine(dyn.diffusion, 0.5, (K,)),
        jumps=type(dyn.jumps)(U((K, marks), 0.5, 2.0), affine(dyn.jumps.size, 0.4, (K, marks))),
        common_diffusion=affine(dyn.common_diffusion, 0.5, (K,)),
        common_jumps=type(dyn.common_jumps)(
            U((K, common_marks), 0.5, 2.0), affine(dyn.common_jumps.size, 0.4, (K, common_marks))
        ),
    )
    q = U((K, n), 0.2, 1.5)
    r = U((K, n), 1.0, 2.0)
    cost = type(co.cost)(
        q=q,
        qbar=U((K, n), -0.1, 0.5) * q,
        r=r,
        rbar=U((K, n), 0.0, 1.0),
        eps1=U((K, n), -0.3, 0.3),
        eps1bar=U((K, n), -0.3, 0.3),
        eps2=U((K, n), -1, 1),
        eps2bar=U((K, n), -0.5, 0.5),
        eps3=U((K, n), -1, 1),
        eps3bar=U((K, n), -0.5, 0.5),
        lam=U((K, n), 0.0, 0.3),
    )
    co = eqx.tree_at(lambda c: (c.dynamics, c.cost), co, (dyn, cost))
    rates = U((K, K), 0.5, 2.0) * (1 - jnp.eye(K))
    Q = rates - jnp.diag(rates.sum(1))
    qT = U((K, n), 0.0, 1.0)
    terminal = TerminalCost(qT, U((K, n), 0.0, 0.5) * qT, U((K, n), -1, 1), U((K, n), -0.5, 0.5))
    return LQGame(
        coefficients=co,
        terminal=terminal,
        generator=Q,
        t0=0.0,
        t1=t1,
        x0=float(U((), 0.5, 2.0)),
        xhat0=float(U((), 0.5, 1.5)),
        regime0=0,
    )


def with_generator(game: LQGame, Q) -> LQGame:
    """The same game with another regime generator."""
    return eqx.tree_at(lambda g: g.generator, game, jnp.asarray(Q, dtype=float))


def duplicate_regimes(game: LQGame, K: int, Q) -> LQGame:
    """A one-regime game copied into `K` identical regimes with generator `Q`."""
    copy = lambda x: jnp.repeat(x, K, axis=0)  # noqa: E731
    return eqx.tree_at(
        lambda g: (g.coefficients, g.terminal, g.generator),
        game,
        (
            jax.tree.map(copy, game.coefficients),
            jax.tree.map(copy, game.terminal),
            jnp.asarray(Q, dtype=float),
        ),
    )
