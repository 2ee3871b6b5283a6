"""Stationary terminal values: closed forms against diffrax, the general solver, the Nash gap,
a Monte Carlo mean price that tracks the stationary seasonal level up to t1 (and the horizon
collapse of the terminal penalty), and the TOML field."""

import diffrax
import jax
import numpy as np
import pytest

import mftg_jax as m
from mftg_jax import price

TIGHT = diffrax.PIDController(rtol=1e-12, atol=1e-12)
T1 = 72.0  # hours: three daily cycles


def _game(terminal, p0=30.0, sigma_o=0.0, n=2):
    a = price.DemandIntercept(mean=40.0, period=24.0, cos=[5.0, 1.0], sin=[2.0, -0.5])
    producers = price.Producers(
        c=[1.0, 2.0][:n], r=[0.5, 1.0][:n], rbar=[0.5, 0.2][:n], lam=[0.01, 0.0][:n]
    )
    market = price.Market(eta=0.3, a=a, q=0.0, t0=0.0, t1=T1, p0=p0, terminal=terminal)
    return price.PriceGame(market, producers, price.Noise(sigma=1.0, sigma_o=sigma_o))


@pytest.fixture(scope="module")
def stationary():
    g = _game("stationary")
    return g, price.solve_riccati(g, stepsize_controller=TIGHT)


def test_stationary_terminal_is_stationary_on_the_horizon(stationary):
    game, sol = stationary
    ts = np.linspace(0.0, T1, 145)
    v = jax.vmap(sol.evaluate)(ts)
    sv = price.stationary_values(game)
    assert np.max(np.abs(v.alpha)) == 0.0
    assert np.max(np.abs(v.beta - sv.beta[None])) < 1e-9
    # The periodic formula (complex linear solve) against the backward diffrax solve.
    assert np.max(np.abs(v.gamma - price.periodic_gamma(game, ts))) < 1e-8
    # A constant intercept: the periodic gamma is the root solve's stationary gamma.
    flat = price.PriceGame(
        price.Market(eta=0.3, a=40.0, q=0.0, t0=0.0, t1=T1, p0=30.0), game.producers
    )
    assert np.allclose(price.periodic_gamma(flat, ts[:3]), price.stationary_values(flat).gamma)


@pytest.mark.slow
def test_stationary_terminal_nash_gap(stationary):
    game, sol = stationary
    # The best-response certificate uses the same terminal reward (independent HJB solve).
    assert np.max(np.abs(price.nash_gap(sol).gap)) < 1e-9


@pytest.mark.slow
def test_stationary_terminal_general_solver(stationary):
    game, sol = stationary
    # The general LQ solver on the lowered game with its terminal cost.
    general = m.lq.solve(price.to_lq(game), stepsize_controller=TIGHT)
    got = price.from_lq(general.evaluate(0.0))
    for g, r in zip(got, sol.evaluate(0.0)):
        assert np.max(np.abs(np.asarray(g) - np.asarray(r))) < 1e-9 * (1 + np.max(np.abs(r)))


@pytest.fixture(scope="module")
def mean_paths(stationary):
    """Monte Carlo mean price under the stationary and the penalty (q = 0) feedback (common
    noise), started on the stationary seasonal mean."""
    spec = m.EnsembleSpec(
        n_paths=64 * 8,
        n_common=64,
        n_steps=288,
        dtype="float64",
        save_steps=tuple(range(0, 289, 4)),
    )
    game0, sol = stationary
    level0 = float(m.calibration.price_model_from_game(game0).seasonal_mean(0.0))
    game = _game("stationary", p0=level0, sigma_o=0.5)
    penalty = price.solve_riccati(
        _game("penalty", p0=level0, sigma_o=0.5), stepsize_controller=TIGHT
    )
    # Both feedbacks as solutions of the simulated game (the feedback does not depend on p0
    # or the noise): one compiled ensemble program for both runs.
    key = jax.random.key(3)
    runs = {
        name: price.simulate(
            game, key, spec, policy=price.FeedbackPolicy(price.RiccatiSolution(game, s.solution))
        )
        for name, s in (("stationary", sol), ("penalty", penalty))
    }
    return game, runs


def test_simulated_mean_tracks_the_stationary_level_to_t1(mean_paths):
    game, runs = mean_paths
    res = runs["stationary"]
    level = np.asarray(m.calibration.price_model_from_game(game).seasonal_mean(res.times))
    assert res.times[0] == 0.0 and res.times[-1] == T1
    assert abs(res.p_mean[0] - level[0]) < 1e-9  # the start: p0 on the level, no noise yet
    z = (res.p_mean[1:] - level[1:]) / res.p_stderr[1:]
    assert np.all(np.abs(z) < 4), np.abs(z).max()
    # The penalty game (q = 0, beta = gamma = 0 at t1) collapses over the last hours.
    res = runs["penalty"]
    z = (res.p_mean[1:] - level[1:]) / res.p_stderr[1:]
    t = res.times[1:]
    assert np.all(np.abs(z[t < T1 / 2]) < 4)
    assert np.max(np.abs(z[t > T1 - 12])) > 20
    assert res.p_mean[-1] < level[-1] - 2


def test_terminal_toml_round_trip_and_validation(stationary, tmp_path):
    game, _ = stationary
    text = price.game_to_toml(game, header="fitted game\nn = 2")
    assert text.startswith("# fitted game\n# n = 2\n")
    path = tmp_path / "g.toml"
    path.write_text(text)
    back = price.load_game(path)
    assert back.market.terminal == "stationary"
    assert price.game_to_toml(back, header="fitted game\nn = 2") == text
    path.write_text(text.replace('terminal = "stationary"\n', ""))
    assert price.load_game(path).market.terminal == "penalty"
    for bad in ('"periodic"', "1"):
        path.write_text(text.replace('"stationary"', bad))
        with pytest.raises(m.ConfigError, match="market.terminal must be one of 'penalty', "):
            price.load_game(path)
    with pytest.raises(ValueError, match="terminal must be one of 'penalty', 'stationary'"):
        price.Market(eta=0.3, a=1.0, q=0.0, t0=0.0, t1=1.0, p0=1.0, terminal="steady")


@pytest.mark.slow
def test_stationary_values_attract_the_backward_flow(stationary):
    # From the terminal penalty (q = 1), 72 hours back at rates >= 2 eta = 0.6 per hour the
    # flow reaches the stationary orbit: alpha -> 0, beta -> beta^s, gamma -> periodic gamma.
    game, _ = stationary
    a = game.market.a
    penalty = price.PriceGame(
        price.Market(eta=0.3, a=a, q=1.0, t0=0.0, t1=T1, p0=30.0), game.producers, game.noise
    )
    v = price.solve_riccati(penalty, stepsize_controller=TIGHT).evaluate(0.0)
    assert np.max(np.abs(v.alpha)) < 1e-12
    assert np.max(np.abs(v.beta - price.stationary_values(game).beta)) < 1e-9
    assert np.max(np.abs(v.gamma - price.periodic_gamma(game, 0.0))) < 1e-8
