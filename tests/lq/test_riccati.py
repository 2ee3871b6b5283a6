"""The general game's Riccati solver: certificates (a) and (b), errors, grad and vmap.

Shapes are shared across the general-game tests (K=2 or 1 regimes, n=3 players, one mark of
each kind) so that each jitted program compiles once.
"""

import diffrax
import equinox as eqx
from general_games import duplicate_regimes, random_general_game
from helpers import assert_rel, central_difference
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import DemandIntercept, Market, RiccatiExplosionError
from mftg_jax.lq import solve
from mftg_jax.price import solve_riccati, to_lq
from mftg_jax.slides._scenarios import scenario_game

TIGHT = dict(stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))


def _price_vs_general(game):
    ref = solve_riccati(game, **TIGHT).evaluate(game.market.t0)
    sol = solve(to_lq(game), **TIGHT)
    got = sol.evaluate(game.market.t0)
    return ref, got, sol


@pytest.mark.parametrize("scenario", [2, 3])
def test_price_game_as_general_game(scenario):
    # Certificate (a): the general game minimises cost = -revenue, so its coefficients are
    # minus the price game's (alpha, beta, gamma, delta), and its cost minus the revenue.
    game = scenario_game(scenario)
    ref, got, sol = _price_vs_general(game)
    for name, r, g in zip(("alpha", "beta", "gamma", "delta"), ref, got):
        assert_rel(-np.asarray(g)[0], r, rtol=1e-8, atol=1e-12, what=name)
    revenue = solve_riccati(game, **TIGHT).revenue()
    assert_rel(-sol.cost(), revenue, rtol=1e-8, what="revenue")


def test_price_game_with_seasonal_demand_as_general_game():
    # Time-dependent coefficients: a(t) enters the drift b0 = eta a(t) through the harmonics.
    game = scenario_game(3)
    a = DemandIntercept(mean=2.0, period=0.7, cos=[0.5, 0.2], sin=[-0.3, 0.1])
    mk = game.market
    game = eqx.tree_at(lambda g: g.market, game, Market(mk.eta, a, mk.q, mk.t0, mk.t1, mk.p0))
    ref, got, _ = _price_vs_general(game)
    for name, r, g in zip(("alpha", "beta", "gamma", "delta"), ref, got):
        assert_rel(-np.asarray(g)[0], r, rtol=1e-8, atol=1e-12, what=name)


def test_identical_regimes_equal_one_regime():
    # Certificate (b): with identical regimes the coupling sum_s' q_ss'(f(s') - f(s))
    # vanishes whatever Q.
    one = random_general_game(7, K=1)
    ref = solve(one, **TIGHT)
    for Q in ([[-3.0, 3.0], [0.5, -0.5]], [[-10.0, 10.0], [10.0, -10.0]]):
        two = duplicate_regimes(one, 2, Q)
        sol = solve(two, **TIGHT)
        for t in (0.0, 0.37):
            for name, r, g in zip("abgd", ref.evaluate(t), sol.evaluate(t)):
                for s in range(2):
                    assert_rel(g[s], r[0], rtol=1e-9, atol=1e-12, what=f"{name} regime {s}")


def test_regime_coupling_matters():
    # The converse: when the regimes differ, the coupling changes the solution.
    game = random_general_game(1)
    coupled = solve(game, **TIGHT).costs()
    uncoupled = solve(eqx.tree_at(lambda g: g.generator, game, jnp.zeros((2, 2))), **TIGHT)
    assert np.max(np.abs(np.asarray(coupled - uncoupled.costs()))) > 1e-2


def test_explosion_is_reported():
    # A large negative terminal weight rewards deviation: alpha blows up backwards.
    game = random_general_game(2)
    game = eqx.tree_at(lambda g: g.terminal.q, game, -50.0 * jnp.ones((2, 3)))
    with pytest.raises(RiccatiExplosionError, match="regime"):
        solve(game, **TIGHT)


def test_loss_of_convexity_is_reported():
    # alpha < 0 with control-dependent noise makes c = r + alpha * loading^2 negative.
    game = random_general_game(3)
    game = eqx.tree_at(
        lambda g: (g.terminal.q, g.coefficients.dynamics.diffusion.u),
        game,
        (-2.0 * jnp.ones((2, 3)), 3.0 * jnp.ones((2, 3))),
    )
    with pytest.raises(RiccatiExplosionError, match="not convex"):
        solve(game, **TIGHT)


@pytest.mark.slow  # compiles the reverse pass of the solver (about 20 s here)
def test_gradient_matches_finite_differences():
    game = random_general_game(4)

    def cost(b0):
        g = eqx.tree_at(lambda g: g.coefficients.dynamics.drift.const, game, b0)
        return solve(g, **TIGHT).cost()[1]

    b0 = game.coefficients.dynamics.drift.const
    grad = jax.grad(cost)(b0)
    for s in range(2):
        e = jnp.zeros(2).at[s].set(1.0)
        fd = central_difference(lambda h, e=e: cost(b0 + h * e), 0.0, 1e-5)
        assert_rel(grad[s], fd, rtol=1e-6, atol=1e-9, what=f"d cost / d b0[{s}]")


@pytest.mark.slow  # compiles the batched solver (about 12 s here)
def test_vmap_over_games_equals_loop():
    games = [random_general_game(s) for s in (5, 6)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *games)
    costs = jax.vmap(lambda g: solve(g).costs())(batch)
    for k, g in enumerate(games):
        assert_rel(costs[k], solve(g).costs(), rtol=1e-10, atol=1e-12, what=f"game {k}")
