"""Risk-sensitive matching against independent references: the Riccati closed form, the
breakdown threshold, the forward (risk-neutral) policy evaluation, the grid HJB against the
Riccati value with wide bounds, and Monte Carlo certainty equivalents with delta-method
standard errors (fixed keys, within 4 s.e.)."""

import jax
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax import dispatch as dp
from tests.helpers import assert_rel

BASE = dict(
    eta=[0.0, 0.5, 1.0],
    arrival=1.0,
    demand=[0.8, 1.2, 1.0],
    kappa=2.0,
    capacity=1.1,
    sigma=0.4,
    q=[0.0, 1.0, 1.0],
    q_terminal=1.0,
    e0=0.3,
)
GRID = dp.HJBGrid(n_x=201, n_t=100)
JUMPS = mj.CompoundPoisson(2.0, mj.NormalJumps(0.1, 0.3))


def _problem(**kw):
    return dp.MatchingProblem(**{**BASE, **kw})


@pytest.fixture(scope="module")
def riccati():
    return dp.solve_riccati(_problem())


@pytest.fixture(scope="module")
def bounded():
    return dp.solve_hjb(_problem(), GRID)


def test_riccati_against_closed_form():
    # theta > 0, theta = 0 (eta = 1/(kappa sigma^2)) and theta < 0 below the breakdown.
    for eta in (0.5, 1 / (2.0 * 0.16), 4.0):
        pr = _problem(eta=eta, q=[0.0, 1.0, 3.0])
        sol = dp.solve_riccati(pr, stepsize_controller=None)
        for t in (0.0, 0.4, 0.9):
            assert_rel(sol.evaluate(t).P, dp.riccati_closed_form(pr, t), 1e-6, 0, f"P({t})")


def test_breakdown_threshold():
    # q = 0: P = qT / (1 - phi qT tau) explodes at tau = 1/(phi qT):
    # eta* sigma^2 = 1/kappa + 1/(qT T).
    pr = _problem(q=0.0)
    star = np.asarray(dp.breakdown_eta(pr))
    assert_rel(star, (0.5 + 1.0) / 0.16, 1e-10)
    star_q = np.asarray(dp.breakdown_eta(_problem(q=[1.0, 1.0, 1.0])))[0]
    ok = dp.solve_riccati(_problem(q=1.0, eta=0.999 * star_q))
    assert np.all(np.isfinite(np.asarray(ok.evaluate(0.0).P)))
    assert float(ok.evaluate(0.0).P[0]) > 20.0  # close to the explosion
    with pytest.raises(
        mj.RiccatiExplosionError, match=r"neurotic breakdown.*station\(s\) \[0, 1, 2\]"
    ):
        dp.solve_riccati(_problem(q=1.0, eta=1.001 * star_q))


def test_risk_neutral_value_is_the_expected_loss():
    # eta = 0, jumps included: the backward value equals the forward policy evaluation.
    pr = _problem(eta=0.0, jumps=JUMPS)
    sol = dp.solve_riccati(pr)
    assert_rel(sol.value(pr.t0, pr.e0), dp.expected_loss(sol), 1e-7)
    # eta -> 0: the certainty equivalent tends to the risk-neutral value, from above.
    v0 = np.asarray(dp.solve_riccati(_problem(eta=0.0)).value(0.0, pr.e0))
    gaps = [np.asarray(dp.solve_riccati(_problem(eta=e)).value(0.0, pr.e0)) - v0
            for e in (1e-2, 1e-3)]  # fmt: skip
    assert np.all(gaps[0] > 0) and np.all(gaps[1] > 0)
    assert_rel(gaps[0] / gaps[1], 10.0, 0.02, 0, "linear in eta")


def test_riccati_value_against_monte_carlo(riccati):
    mc = dp.certainty_equivalent(riccati, jax.random.key(3), n_paths=8000, n_steps=200)
    z = (np.asarray(mc.value) - np.asarray(riccati.value(0.0, riccati.problem.e0))) / np.asarray(
        mc.stderr
    )
    assert np.all(np.abs(z) < 4), z


def test_hjb_with_wide_bounds_against_riccati():
    pr = _problem(capacity=100.0)
    ref = np.asarray(dp.solve_riccati(pr).value(0.0, pr.e0))
    errs = []
    for n_t in (50, 100):
        h = dp.solve_hjb(pr, dp.HJBGrid(n_x=201, n_t=n_t))
        errs.append(np.abs(np.asarray(h.value(pr.e0)) - ref))
    assert np.all(errs[1] < 3e-3 * np.abs(ref)), errs
    assert np.all(errs[1] < 0.7 * errs[0]), errs  # first order in dt


def test_hjb_jumps_risk_neutral_against_riccati():
    pr = _problem(eta=0.0, capacity=100.0, jumps=JUMPS)
    ref = np.asarray(dp.solve_riccati(pr).value(0.0, pr.e0))
    h = dp.solve_hjb(pr, GRID)
    assert_rel(h.value(pr.e0), ref, 3e-3)


def test_bounded_value_against_monte_carlo(bounded, riccati):
    pr = bounded.problem
    v = np.asarray(bounded.value(pr.e0))
    mc = dp.certainty_equivalent(bounded, jax.random.key(5), n_paths=8000)
    z = (np.asarray(mc.value) - v) / np.asarray(mc.stderr)
    assert np.all(np.abs(z) < 4), z
    # The bounds bind (s <= 1.1 < D + V_x / kappa somewhere): the value is larger than the
    # unbounded one, and risk aversion raises it.
    assert np.all(v > np.asarray(riccati.value(0.0, pr.e0)) + 1e-3)
    policy = np.asarray(bounded.policy)
    assert policy.min() >= 0.0 and policy.max() <= 1.1


def test_jumps_with_risk_aversion_are_rejected():
    pr = _problem(jumps=JUMPS)
    with pytest.raises(ValueError, match="jumps make E exp"):
        dp.solve_riccati(pr)
    with pytest.raises(ValueError, match="jumps make E exp"):
        dp.solve_hjb(pr, GRID)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(eta=-0.1), "stations.eta must be >= 0"),
        (dict(kappa=0.0), "stations.kappa must be > 0"),
        (dict(arrival=-1.0), "stations.arrival must be >= 0"),
        (dict(capacity=[1.0, 2.0]), "stations.capacity must be a number or have one entry"),
        (dict(t1=0.0), "t1 must be > t0"),
        (dict(jumps=mj.CompoundPoisson(1.0, mj.ExponentialJumps(0.1))), "normal or fixed"),
    ],
)
def test_problem_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        _problem(**kw)


def test_grid_validation():
    with pytest.raises(ValueError, match="grid.n_x must be >= 3"):
        dp.HJBGrid(n_x=2)
