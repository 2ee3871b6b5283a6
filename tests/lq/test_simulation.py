"""Certificate (d): Monte Carlo realised costs against the value formula; the noisy
cost-measurement terms leave the equilibrium unchanged and only spread the realised costs."""

import functools

import diffrax
import equinox as eqx
from general_games import random_general_game
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax.lq import simulate, simulate_paths, solve

MC = mj.EnsembleSpec(n_paths=4000, n_common=1000, n_steps=200, scheme="euler", dtype="float64")


@functools.cache
def run(with_xi: bool):
    game = random_general_game(0)
    if with_xi:
        game = eqx.tree_at(
            lambda g: (
                g.coefficients.cost_noise.xi0,
                g.coefficients.cost_noise.xi2,
                g.coefficients.cost_noise.jump_xi1,
            ),
            game,
            (
                jnp.full((2, 3), 2.0, float),
                jnp.full((2, 3), 1.0, float),
                jnp.full((2, 1, 3), 1.5, float),
            ),
        )
    sol = solve(game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))
    return sol, simulate_paths(sol, jax.random.PRNGKey(0), MC)


def test_monte_carlo_costs_match_the_value_formula():
    sol, sim = run(False)
    z = (sim.mean_cost() - sol.cost()) / sim.standard_error()
    assert np.all(np.abs(np.asarray(z)) < 4), z
    # The test has power: the standard errors are small against the costs.
    assert np.all(np.asarray(sim.standard_error()) < 0.05 * np.abs(np.asarray(sol.cost())))


def test_regime_paths_are_shared_and_follow_the_chain():
    sol, sim = run(False)
    regimes = np.asarray(sim.regimes)
    # Fraction of time in regime 0 at t1 against the exact law exp(Q t) e_{s0}.
    Q = np.asarray(sol.game.generator, dtype=np.float64)
    p1 = np.asarray(jax.scipy.linalg.expm(jnp.asarray(Q)))[0]
    frac = np.mean(regimes[:, -1] == 0)
    se = np.sqrt(p1[0] * (1 - p1[0]) / regimes.shape[0])
    assert abs(frac - p1[0]) < 4 * se


def test_law_of_large_numbers_within_a_scenario():
    # The paths of one scenario average to its conditional mean xhat(t1): the error has mean
    # zero and the variance of a mean of P independent paths, var / P.
    _, sim = run(False)
    err = np.asarray(jnp.mean(sim.x1, axis=1) - sim.xhat1)
    var_mean = np.asarray(jnp.var(sim.x1, axis=1, ddof=1)) / sim.x1.shape[1]
    assert abs(err.mean()) < 4 * err.std(ddof=1) / np.sqrt(err.size)
    ratio = np.mean(err**2) / np.mean(var_mean)
    assert 0.85 < ratio < 1.15, ratio


def test_cost_measurement_noise_only_spreads_realised_costs():
    sol0, sim0 = run(False)
    sol1, sim1 = run(True)
    # The equilibrium is unchanged: the xi terms are martingale increments.
    for a, b in zip(sol0.evaluate(0.0), sol1.evaluate(0.0)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Same paths (same key): the realised costs differ by a mean-zero martingale...
    diff = np.asarray(jnp.mean(sim1.costs - sim0.costs, axis=1))  # per scenario
    z = diff.mean(axis=0) / (diff.std(axis=0, ddof=1) / np.sqrt(diff.shape[0]))
    assert np.all(np.abs(z) < 4), z
    # ...that spreads them.
    assert np.all(
        np.asarray(jnp.std(sim1.costs, axis=(0, 1)) > 1.2 * jnp.std(sim0.costs, axis=(0, 1)))
    )


def test_engine_agrees_with_the_independent_reference_simulator():
    # The compact Euler simulator kept in tests/ (its own keys, its own loop) estimates the
    # same expected costs: the two means agree within their combined standard errors.
    from reference_lq_simulator import reference_simulate

    sol, sim = run(False)
    # The reference is the library's earlier code, written with implicit rank promotion.
    with jax.numpy_rank_promotion("allow"):
        ref = reference_simulate(sol, jax.random.PRNGKey(1), scenarios=1000, paths=4, steps=200)
    se = np.sqrt(np.asarray(sim.standard_error()) ** 2 + np.asarray(ref.standard_error()) ** 2)
    z = (np.asarray(sim.mean_cost()) - np.asarray(ref.mean_cost())) / se
    assert np.all(np.abs(z) < 4), z


@pytest.mark.slow  # a long check: `make test-slow`
def test_results_do_not_depend_on_batching_or_on_the_number_of_paths():
    sol, sim = run(False)
    spec = mj.EnsembleSpec(
        n_paths=400, n_common=100, n_steps=200, scheme="euler", dtype="float64", batch_size=2
    )
    batched = simulate(sol, jax.random.PRNGKey(0), spec)
    # Scenario m's paths are the same whatever the ensemble size: the first 100 scenarios
    # of 4 paths of the big run, cut to their first 4 paths, are the small run's paths.
    small = simulate_paths(sol, jax.random.PRNGKey(0), spec)
    # Equal up to float rounding (the compiled programs have different shapes).
    np.testing.assert_allclose(
        np.asarray(small.costs), np.asarray(sim.costs)[:100], rtol=1e-10, atol=1e-12
    )
    np.testing.assert_array_equal(np.asarray(small.regimes), np.asarray(sim.regimes)[:100])
    np.testing.assert_allclose(batched.cost_mean, np.asarray(small.mean_cost()), rtol=1e-10)
    np.testing.assert_allclose(batched.cost_stderr, np.asarray(small.standard_error()), rtol=1e-9)
    np.testing.assert_array_equal(batched.regimes, np.asarray(small.regimes))


def test_general_game_rejects_the_exponential_scheme():
    sol, _ = run(False)
    with pytest.raises(ValueError, match="euler"):
        simulate_paths(sol, jax.random.PRNGKey(0), mj.EnsembleSpec(n_paths=8))


def test_float32_agrees_with_float64():
    sol, _ = run(False)
    kw = dict(n_paths=400, n_common=100, n_steps=200, scheme="euler")
    f32 = simulate(sol, jax.random.PRNGKey(0), mj.EnsembleSpec(dtype="float32", **kw))
    f64 = simulate(sol, jax.random.PRNGKey(0), mj.EnsembleSpec(dtype="float64", **kw))
    # The same paths in two precisions: they differ by rounding, far below the standard error.
    assert np.all(np.abs(f32.cost_mean - f64.cost_mean) < 1e-3 * f64.cost_stderr)
