import diffrax
from helpers import assert_rel
import numpy as np
import pytest
from scenario_reference import alpha_beta, controls, cost_rate, ETA, gamma, price_and_costs, R_

import mftg_jax as mj
from mftg_jax.price import cost_integrals, solve_expectations
from mftg_jax.slides import cost_instants, costs


@pytest.fixture(scope="module")
def scenario2():
    game = mj.slides.scenario_game(2)
    return game, mj.price.solve_riccati(
        game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)
    )


@pytest.fixture(scope="module")
def reference():
    return price_and_costs()


def test_sum_convention_against_scipy(scenario2, reference):
    _, riccati = scenario2
    _, rate = reference
    ts = np.linspace(0.0, 1.5, 1000)
    expected = np.sum([rate(t) for t in ts], axis=0)
    assert_rel(costs(riccati), expected, rtol=1e-8, what="sum of C_i over 1000 instants")


def test_integral_convention_against_scipy(scenario2, reference):
    _, riccati = scenario2
    sol, _ = reference
    assert_rel(cost_integrals(riccati), sol.y[2:, -1], rtol=1e-8, what="integral of C_i")


def test_sum_is_riemann_sum_of_integral(scenario2):
    # The two conventions differ by the factor (K - 1)/(t1 - t0) up to O(dt) end corrections:
    # the slides' magnitudes (1e5) are sums, not integrals (1e2).
    _, riccati = scenario2
    path = solve_expectations(riccati)
    K = 1000
    trapezoid = path.sums(K) - 0.5 * (path.rate(0.0) + path.rate(1.5))
    assert_rel(trapezoid * 1.5 / (K - 1), path.integrals(), rtol=1e-6, what="trapezoid rule")


def test_instants_include_end_points():
    ts = np.asarray(cost_instants(0.0, 1.5, 1000))
    assert ts.shape == (1000,) and ts[0] == 0.0 and ts[-1] == 1.5
    with pytest.raises(ValueError, match="num"):
        costs(None, num=1)


def test_expected_costs_with_noise_against_monte_carlo(scenario2, reference):
    """Scenario 3's expected cost sum against an independent NumPy Euler Monte Carlo.

    Only $y = p - \\hat p$ is random (no common noise), so the paths of $y$ are simulated
    with Brownian increments and Poisson-many normal jumps (no compensation: the sizes have
    mean zero), and $u_i = g_i y + \\hat u_i$ with $g_i$, $\\hat u_i$ from the SciPy reference.
    """
    game = mj.slides.scenario_game(3)
    exact = np.asarray(
        costs(
            mj.price.solve_riccati(
                game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)
            )
        )
    )
    det = np.asarray(costs(scenario2[1]))
    sol, _ = reference
    K, n_paths = 1000, 4000
    ts = np.linspace(0.0, 1.5, K)
    dt = ts[1] - ts[0]
    ab = alpha_beta()
    ga = gamma(ab)
    alpha = np.stack([ab(t)[:3] for t in ts])
    g = -ETA * alpha / R_
    kappa = ETA * (1 - ETA * np.sum(alpha / R_, axis=1))
    uhat = np.stack([controls(t, sol.sol(t)[1], sol.sol(t)[1], ab, ga)[1] for t in ts])
    intensity = float(game.noise.jumps.intensity)
    std = float(game.noise.jumps.size.std)
    rng = np.random.default_rng(0)
    y = np.zeros(n_paths)
    total = np.zeros((n_paths, 3))
    quadratic = np.zeros((n_paths, 3))
    for k in range(K):
        u = g[k] * y[:, None] + uhat[k]
        total += cost_rate(u, uhat[k])
        quadratic += R_ / 2 * (g[k] * y[:, None]) ** 2
        counts = rng.poisson(intensity * dt, n_paths)
        jumps = std * np.sqrt(counts) * rng.standard_normal(n_paths)
        y = y - kappa[k] * y * dt + np.sqrt(dt) * rng.standard_normal(n_paths) + jumps
    # Euler's bias on Var(y) is O(dt) relative, ~1e-3 of the noise contribution (~500).
    mc, se = total.mean(0), total.std(0, ddof=1) / np.sqrt(n_paths)
    assert np.all(np.abs(mc - exact) <= 4 * se + 1.0), (mc, exact, se)
    # The noise adds E[sum_k r_i/2 g_i^2 y^2] (the term linear in y has mean zero): compare
    # this increment alone, with its much smaller standard error.
    mc, se = quadratic.mean(0), quadratic.std(0, ddof=1) / np.sqrt(n_paths)
    assert np.all(se < 0.05 * mc)
    assert np.all(np.abs(mc - (exact - det)) <= 4 * se + 1.0), (mc, exact - det, se)
