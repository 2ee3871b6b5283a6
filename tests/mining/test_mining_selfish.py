"""Selfish mining against independent references: the Eyal-Sirer closed form against a Monte
Carlo of its state machine, the MDP's optimum against a dense stationary solve of the policy it
returns, the Eyal-Sirer policy inside the MDP, the break-even shares, risk-averse values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import mining as mm

ALPHA = np.array([0.1, 0.25, 0.35, 0.45])
GAMMA = np.array([0.0, 0.5, 1.0])
DEPTH = 8


@pytest.fixture(scope="module")
def mdp():
    return mm.SelfishMiningMDP(DEPTH)


@pytest.fixture(scope="module")
def grid(mdp):
    A, G = np.meshgrid(ALPHA, GAMMA)
    return A, G, mm.optimal_deviation(mdp, A, G)


def _dense_revenue(mdp, policy, alpha, gamma):
    """Stationary law of the policy's chain by one dense (non-batched) least-squares solve."""
    P = np.asarray(mdp.probabilities(alpha, gamma))
    S = mdp.n_states
    s = np.arange(S)
    pol = np.asarray(policy)
    nxt = np.asarray(mdp.successor)[s, pol]
    p = P[s, pol]
    M = np.zeros((S, S))
    np.add.at(M, (np.repeat(s, 3), nxt.ravel()), p.ravel())
    ra = np.sum(p * np.asarray(mdp.attacker_reward)[s, pol], -1)
    rh = np.sum(p * np.asarray(mdp.honest_reward)[s, pol], -1)
    lhs = np.vstack([M.T - np.eye(S), np.ones((1, S))])
    rhs = np.zeros(S + 1)
    rhs[-1] = 1.0
    mu = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return mu @ ra / (mu @ (ra + rh))


def test_closed_form_against_monte_carlo():
    alpha, gamma = 0.35, 0.5
    est = mm.simulate_eyal_sirer(jax.random.key(3), alpha, gamma, n_runs=256, n_blocks=2000)
    exact = float(mm.eyal_sirer_revenue(alpha, gamma))
    assert abs(float(est.revenue) - exact) < 4 * float(est.stderr)
    assert float(est.stderr) < 3e-3


def test_closed_form_break_even():
    g = np.linspace(0.0, 1.0, 5)
    a = np.asarray(mm.eyal_sirer_break_even(g))
    np.testing.assert_allclose(
        np.asarray(mm.eyal_sirer_revenue(a[:-1], g[:-1])), a[:-1], atol=1e-14
    )
    above = np.asarray(mm.eyal_sirer_revenue(a[:-1] + 0.01, g[:-1]))
    assert np.all(above > a[:-1] + 0.01)


def test_optimal_against_dense_policy_evaluation(mdp, grid):
    A, G, opt = grid
    for i, j in [(0, 2), (1, 3), (2, 1), (2, 3)]:
        dense = _dense_revenue(mdp, opt.policy[i, j], A[i, j], G[i, j])
        assert abs(dense - float(opt.revenue[i, j])) < 1e-9
    assert np.max(np.asarray(opt.gain_bound)) < 1e-9


def test_optimal_dominates_eyal_sirer_and_honest(mdp, grid):
    A, G, opt = grid
    es = mm.policy_revenue(mdp, mm.eyal_sirer_policy(mdp), A, G)
    honest = mm.policy_revenue(mdp, mm.honest_policy(mdp), A, G)
    np.testing.assert_allclose(np.asarray(honest.revenue), A, atol=1e-12)
    assert np.all(np.asarray(opt.revenue) >= np.asarray(es.revenue) - 1e-10)
    assert np.all(np.asarray(opt.revenue) >= A - 1e-10)
    # Below the Eyal-Sirer break-even (1/3 at gamma = 0) the optimum is honest mining here.
    assert abs(float(opt.revenue[0, 0]) - 0.1) < 1e-10
    assert float(opt.revenue[0, 3]) > float(es.revenue[0, 3]) + 1e-3


def test_eyal_sirer_policy_converges_to_closed_form():
    closed = float(mm.eyal_sirer_revenue(0.3, 0.5))
    errs = []
    for depth in (6, DEPTH, 12):
        m = mm.SelfishMiningMDP(depth)
        errs.append(
            abs(float(mm.policy_revenue(m, mm.eyal_sirer_policy(m), 0.3, 0.5).revenue) - closed)
        )
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 2e-3


def test_break_even_shares(mdp):
    g = jnp.array([0.0, 0.5, 1.0])
    be = np.asarray(mm.optimal_break_even(mdp, g))
    es = np.asarray(mm.eyal_sirer_break_even(g))
    # Strictly below Eyal-Sirer at gamma = 0; equal up to the truncation at gamma = 0.5.
    assert be[0] < es[0] - 1e-4
    assert abs(be[1] - es[1]) < 1e-3
    assert be[2] < 1e-3
    # Just below the share, honest mining is optimal; just above, it is not.
    below = mm.optimal_deviation(mdp, be[0] - 1e-3, 0.0)
    above = mm.optimal_deviation(mdp, be[0] + 1e-3, 0.0)
    assert abs(float(below.revenue) - (be[0] - 1e-3)) < 1e-10
    assert float(above.revenue) > be[0] + 1e-3 + 1e-9


def test_risk_averse_certainty_equivalents(mdp):
    a = jnp.asarray(ALPHA)
    honest_mdp = mm.policy_certainty_equivalent(mdp, mm.honest_policy(mdp), a, 0.5, 0.7)
    np.testing.assert_allclose(honest_mdp, mm.honest_certainty_equivalent(a, 0.7), atol=1e-10)
    es = mm.eyal_sirer_policy(mdp)
    small = mm.policy_certainty_equivalent(mdp, es, a, 0.5, 1e-7)
    np.testing.assert_allclose(small, mm.policy_revenue(mdp, es, a, 0.5).revenue, atol=1e-6)
    big = mm.policy_certainty_equivalent(mdp, es, a, 0.5, 1.0)
    assert np.all(np.asarray(big) < np.asarray(small))


def test_bad_input_names_the_field(mdp):
    with pytest.raises(ValueError, match="alpha"):
        mm.optimal_deviation(mdp, 0.6, 0.0)
    with pytest.raises(ValueError, match="gamma"):
        mm.eyal_sirer_revenue(0.2, 1.5)
    with pytest.raises(ValueError, match="depth"):
        mm.SelfishMiningMDP(1)
    with pytest.raises(ValueError, match="n_runs"):
        mm.simulate_eyal_sirer(jax.random.key(0), 0.2, 0.0, n_runs=1)


@pytest.mark.slow
def test_truncation_convergence_and_ssz_value():
    # SSZ (2016) report 0.33705 at alpha = 1/3, gamma = 0 for the optimal policy.
    vals = [float(mm.optimal_deviation(mm.SelfishMiningMDP(d), 1 / 3, 0.0).revenue)
            for d in (20, 30, 40)]  # fmt: skip
    assert abs(vals[2] - vals[1]) < abs(vals[1] - vals[0])
    assert abs(vals[2] - 0.33705) < 5e-5
