import diffrax
from helpers import assert_rel
import numpy as np
import pytest
from scenario_reference import alpha_beta, gamma

import mftg_jax as mj

# The slides' costs table, Scenario 2 (deterministic): C_1, C_2, C_3.
SLIDES_SCENARIO2 = np.array([180430.0, 93526.0, 57159.0])


@pytest.fixture(scope="module")
def solutions():
    game = mj.slides.scenario_game(2)
    return mj.price.solve_riccati(
        game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)
    ), mj.slides.solve_misprinted_riccati(game)


def test_boundary_conditions(solutions):
    correct, wrong = solutions
    v0, v1 = wrong.evaluate(0.0), wrong.evaluate(1.5)
    np.testing.assert_allclose(v0.gamma, 0.0, atol=1e-14)
    np.testing.assert_allclose(v1.delta, 0.0, atol=1e-14)
    np.testing.assert_allclose(v1.alpha, -1.0, atol=1e-14)
    # alpha and beta do not see gamma: identical to the correct solution.
    c0 = correct.evaluate(0.0)
    assert_rel(v0.alpha, c0.alpha, rtol=1e-14)
    assert_rel(v0.beta, c0.beta, rtol=1e-14)
    assert np.all(np.abs(np.asarray(v1.gamma)) > 0.1)


def test_gamma_against_scipy_forward_solve(solutions):
    _, wrong = solutions
    ref = gamma(alpha_beta(), misprint=True)
    for t in (0.3, 0.9, 1.5):
        assert_rel(wrong.evaluate(t).gamma, ref(t), rtol=1e-8, atol=1e-10, what=f"gamma({t})")


def test_correct_gamma_against_scipy(solutions):
    correct, _ = solutions
    ref = gamma(alpha_beta())
    assert_rel(correct.evaluate(0.0).gamma, ref(0.0), rtol=1e-8, what="gamma(0)")


def test_best_response_certificate_rejects_misprint(solutions):
    correct, wrong = solutions
    good = mj.price.nash_gap(correct)
    bad = mj.price.nash_gap(wrong)
    assert np.all(np.abs(np.asarray(good.gap)) < 1e-9)
    # Producers 2 and 3 gain from deviating: the misprint is not an equilibrium.
    assert np.all(np.asarray(bad.gap)[1:] > 1e-3)
    assert np.all(np.asarray(bad.gap) > 1e-6)
    # Nor is its value-function formula the revenue its feedback earns.
    rel = np.abs(bad.formula_value - bad.candidate_value) / np.abs(bad.candidate_value)
    assert np.all(rel[1:] > 0.3)


def test_misprint_is_closer_to_the_slides_costs(solutions):
    correct, wrong = solutions
    err_correct = np.abs(np.asarray(mj.slides.costs(correct)) / SLIDES_SCENARIO2 - 1)
    err_wrong = np.abs(np.asarray(mj.slides.costs(wrong)) / SLIDES_SCENARIO2 - 1)
    # C_1 is reproduced by both to ~0.1%; C_2, C_3 only by the misprint (to ~2%, not ~10%).
    assert np.all(err_correct[:1] < 2e-3) and np.all(err_wrong[:1] < 2e-3)
    assert np.all(err_correct[1:] > 0.05)
    assert np.all(err_wrong[1:] < 0.025)
