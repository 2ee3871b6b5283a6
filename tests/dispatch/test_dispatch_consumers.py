"""Consumer response against closed forms: linear demand meets a single quadratic station
(price takers and a monopsonist), isoelastic demand at a merit-order price, the clearing
certificate, and the coupling to the price game (the fixed point and the recomputed path)."""

import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax import dispatch as dp
from tests.helpers import assert_rel

FLEET = dp.Fleet([50.0, 30.0, 40.0], [10.0, 20.0, 30.0], [0.0, 0.0, 0.05])
ONE = dp.Fleet([1000.0], [10.0], [0.5])


def test_price_takers_against_closed_form():
    # One quadratic station p = c + 2 q Q, linear demand Q = D0 + sum (alpha_i - p)/beta_i.
    c = dp.QuadraticUtility([40.0, 35.0], [1.0, 2.0])
    D0 = jnp.array([0.0, 5.0, 10.0])
    clr = dp.clear_market(ONE, c, D0)
    b = 1 / 1.0 + 1 / 2.0
    a = 40.0 / 1.0 + 35.0 / 2.0
    p = (10.0 + 2 * 0.5 * (np.asarray(D0) + a)) / (1 + 2 * 0.5 * b)
    assert_rel(clr.price, p, 1e-12)
    assert_rel(clr.quantity, np.asarray(D0) + a - b * p, 1e-12)
    assert float(clr.residual.max()) < 1e-12
    assert_rel(clr.dispatch.price, clr.price, 1e-10)


def test_clearing_on_the_merit_order_steps():
    c = dp.QuadraticUtility([60.0, 45.0], [1.0, 0.5])
    clr = dp.clear_market(FLEET, c, jnp.array([0.0, 30.0, 60.0, 90.0]))
    assert float(clr.residual.max()) < 1e-12
    # Each price is either a station's cost (the marginal one partly loaded) or lies in a gap
    # of the supply curve where the demand equals a cumulative capacity.
    for p, Q in zip(np.asarray(clr.price), np.asarray(clr.quantity)):
        lo, hi = (np.asarray(x) for x in dp.supply_bounds(FLEET, p))
        assert lo - 1e-9 <= Q <= hi + 1e-9
    iso = dp.IsoelasticUtility([100.0], [0.5])
    clr = dp.clear_market(FLEET, iso, jnp.array([0.0]))
    assert_rel(clr.quantity, (100.0 / clr.price) ** 0.5, 1e-12)


def test_large_consumer_is_a_monopsonist():
    # max alpha d - beta d^2/2 - (c + 2 q d) d: d = (alpha - c)/(beta + 4q), a price taker
    # buys (alpha - c)/(beta + 2q).
    big = dp.QuadraticUtility([40.0], [1.0])
    out = dp.clear_with_large_consumer(ONE, big)
    assert_rel(out.large_consumption, (40.0 - 10.0) / (1.0 + 4 * 0.5), 1e-7)
    assert_rel(out.price, 10.0 + 2 * 0.5 * out.large_consumption, 1e-10)
    taker = dp.clear_market(ONE, big, 0.0)
    assert_rel(taker.quantity, (40.0 - 10.0) / (1.0 + 2 * 0.5), 1e-12)
    assert float(taker.price) > float(out.price)


def test_utilities():
    u = dp.QuadraticUtility([10.0], [2.0])
    assert_rel(u.demand(4.0), [3.0], 1e-15)
    assert_rel(u.marginal(u.demand(4.0)), [4.0], 1e-15)
    assert_rel(u.demand(12.0), [0.0], 0)
    iso = dp.IsoelasticUtility([3.0, 2.0], [1.0, 2.0], [10.0, 10.0])
    d = iso.demand(1.5)
    assert_rel(iso.marginal(d), [1.5, 1.5], 1e-13)
    assert_rel(iso.demand(0.01), [10.0, 10.0], 0)
    eps = 1e-6
    fd = (iso.utility(d + eps) - iso.utility(d - eps)) / (2 * eps)
    assert_rel(fd, iso.marginal(d), 1e-7)
    with pytest.raises(ValueError, match="consumers.beta must be > 0"):
        dp.QuadraticUtility([1.0], [0.0])
    with pytest.raises(ValueError, match="consumers.elasticity must be > 0"):
        dp.IsoelasticUtility([1.0], [-1.0])


@pytest.fixture(scope="module")
def coupled():
    game = mj.price.load_game("examples/price_game.toml")
    return game, dp.couple_price_game(game, dp.QuadraticUtility([6.0, 4.0], [2.0, 4.0]))


def test_coupling_fixed_point(coupled):
    game, c = coupled
    # The consumers' response at p* is what shifted the intercept, and the coupled game's own
    # stationary price is p* again.
    assert_rel(c.response, 6.0 / 2 + 4.0 / 4 - c.price * (1 / 2 + 1 / 4), 1e-12)
    assert_rel(c.intercept, float(game.market.a.mean) + c.response, 1e-14)
    assert float(c.residual) < 1e-10
    assert_rel(mj.price.stationary_price(c.game), c.price, 1e-10)
    assert float(c.price) > float(c.fixed_price)  # more demand, higher price
    # The paths start together and separate towards their stationary levels.
    assert_rel(c.path[0], c.fixed_path[0], 1e-12)
    assert float(c.path[-1] - c.fixed_path[-1]) > 0


@pytest.mark.slow
def test_coupled_path_tends_to_the_coupled_price(coupled):
    game, c = coupled
    import equinox as eqx

    long = eqx.tree_at(lambda g: g.market.t1, c.game, jnp.asarray(60.0))
    long = eqx.tree_at(lambda g: (g.market.p0, g.market.phat0), long, (c.price, c.price))
    path = mj.price.solve_expectations(mj.price.solve_riccati(long))
    assert_rel(path.phat(5.0), c.price, 1e-6)
