"""Certificates (c) and (e) of the general game, and the forward-moment value check."""

import functools

import diffrax
import equinox as eqx
from general_games import random_general_game
from helpers import assert_rel
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax.lq import brute_force_best_response, dp_equilibrium, nash_gap, policy_cost, solve

TIGHT = dict(stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))
SEEDS = (0, 1, 2)


@functools.cache
def solved(seed):
    game = random_general_game(seed)
    return game, solve(game, **TIGHT)


@functools.cache
def decoupled(seed):
    """A wrong candidate: the regimes solved as if they never switched (Q = 0)."""
    game, _ = solved(seed)
    return solve(eqx.tree_at(lambda g: g.generator, game, jnp.zeros((2, 2))), **TIGHT)


@pytest.mark.parametrize("seed", SEEDS)
def test_best_response_gap_vanishes(seed):
    # Certificate (c): independent single-agent solve against the others' frozen feedback,
    # on random two-regime games with control-dependent diffusion and jumps of every kind.
    game, sol = solved(seed)
    cert = nash_gap(sol)
    assert np.max(np.abs(np.asarray(cert.gap))) < 1e-6
    assert_rel(
        cert.candidate_value,
        cert.formula_value,
        rtol=1e-8,
        atol=1e-10,
        what="policy evaluation vs value formula",
    )


def test_best_response_gap_detects_a_wrong_equilibrium():
    game, _ = solved(0)
    cert = nash_gap(decoupled(0), game)
    assert np.max(np.asarray(cert.gap)) > 1e-3
    assert np.min(np.asarray(cert.gap)) > -1e-9  # a best response never costs more


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_forward_moments_reproduce_the_value_formula(seed):
    # Policy evaluation by the Kolmogorov forward equations of (y, xhat, 1): no HJB involved.
    game, sol = solved(seed)
    assert_rel(policy_cost(sol), sol.cost(), rtol=1e-8, atol=1e-10, what="forward moments")


def test_forward_moments_disagree_with_a_wrong_value_formula():
    game, _ = solved(0)
    wrong = decoupled(0)
    err = np.abs(np.asarray(policy_cost(wrong, game) - wrong.cost()))
    assert err.max() > 1e-3


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_dynamic_programming_on_a_fine_grid(seed):
    # Certificate (e): the n-player Bellman recursion on a time grid (exact regime
    # transitions, Euler moments, joint first-order conditions per step), Richardson
    # extrapolated, against the Riccati solution, per initial regime and player.
    game, sol = solved(seed)
    assert not np.allclose(game.coefficients.cost.q[0], game.coefficients.cost.q[1])
    dp = dp_equilibrium(game, 500)
    assert_rel(dp.costs, sol.costs(), rtol=5e-6, atol=5e-6, what="costs")
    gn = sol.gains(game.t0)
    for name in ("deviation", "mean_slope", "mean_intercept"):
        assert_rel(getattr(dp, name), getattr(gn, name), rtol=1e-5, atol=1e-5, what=name)
    # The check can fail: the regime-decoupled solution is far from the DP.
    assert np.max(np.abs(np.asarray(dp.costs - decoupled(seed).costs()))) > 1e-3


@pytest.mark.slow  # L-BFGS through the forward moments compiles for about a minute here
def test_direct_optimisation_over_gains_cannot_beat_the_equilibrium():
    game, sol = solved(0)
    res = brute_force_best_response(sol, 1, nodes=5, steps=40, iterations=300)
    v = float(sol.cost()[1])
    assert float(res.initial_value) > v + 1e-2  # zero gains are far from optimal
    assert float(res.value) >= v - 1e-8 * abs(v)  # no profitable deviation
    assert float(res.value) <= v + 1e-4 * abs(v)  # and the optimiser reaches it
