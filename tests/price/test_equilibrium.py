"""Equilibrium objects: mean path, value identity, stationary and Cournot prices, Nash gaps."""

import json

import diffrax
import equinox as eqx
from helpers import assert_rel
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax.cli import main


@pytest.fixture(scope="module")
def scenario2():
    game = mj.slides.scenario_game(2)
    sol = mj.price.solve_riccati(
        game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)
    )
    return (
        game,
        sol,
        mj.price.solve_expectations(
            sol, stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11)
        ),
    )


def _noisy_game(p0=40.0, phat0=36.0):
    return mj.PriceGame(
        mj.Market(
            eta=0.6,
            a=mj.DemandIntercept(mean=30.0, period=1.0, cos=[3.0], sin=[-2.0]),
            q=0.8,
            t0=0.0,
            t1=2.0,
            p0=p0,
            phat0=phat0,
        ),
        mj.Producers(c=[2.0, 4.0], r=[1.0, 1.5], rbar=[0.5, 2.0], lam=[0.05, 0.2]),
        mj.Noise(
            sigma=1.5,
            sigma_o=0.8,
            jumps=mj.CompoundPoisson(3.0, mj.NormalJumps(0.5, 1.0)),
            common_jumps=mj.CompoundPoisson(0.5, mj.FixedJumps(-2.0)),
        ),
    )


def test_slides_euler_price(scenario2):
    # docs/model.md: deterministic p(1.5) = 14.1301 with Euler and 1500 steps.
    _, sol, exact = scenario2
    euler = mj.price.solve_expectations(sol, solver=diffrax.Euler(), dt0=1.5 / 1500)
    assert_rel(euler.price(1.5), 14.1301, rtol=0, atol=5e-5, what="Euler p(1.5)")
    # The exact (adaptive) path differs from Euler's by the O(dt) discretisation error.
    assert abs(float(exact.price(1.5)) - 14.1301) > 1e-3


def test_mean_path_convergence_order(scenario2):
    # Fixed-step Euler (order 1) and Heun (order 2) converge to the adaptive solution at
    # their orders, so the adaptive path is the exact limit (to its tolerance).
    _, sol, exact = scenario2
    ref = float(exact.phat(1.5))
    for solver, order in ((diffrax.Euler(), 1), (diffrax.Heun(), 2)):
        errs = []
        for k in (7, 8, 9, 10):
            path = mj.price.solve_expectations(sol, solver=solver, dt0=1.5 / 2**k)
            errs.append(abs(float(path.phat(1.5)) - ref))
        rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        assert np.all(np.abs(rates - order) < 0.15), (solver, errs, rates)


def test_controls_are_feedback_on_mean_path(scenario2):
    game, sol, exact = scenario2
    t = 0.7
    v = sol.evaluate(t)
    phat = exact.phat(t)
    eta, pr = game.market.eta, game.producers
    u = (phat * (1 - eta * v.beta) - (pr.c + eta * v.gamma)) / pr.R
    assert_rel(exact.controls(t), u, rtol=1e-12)


def test_value_identity_with_noise():
    # The value formula against an independent SciPy integration of the expected discounted
    # revenue under the equilibrium feedback, through the first and second moments of
    # (phat, y = p - phat): E[phat u_i] = k E[phat^2] - m E[phat],
    # E[u_i^2] = E[uhat^2] + g^2 E[y^2] with g = -eta alpha_i / r_i.
    from scipy.integrate import solve_ivp

    game = _noisy_game()
    sol = mj.price.solve_riccati(
        game, stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11)
    )
    mk, pr, nz = game.market, game.producers, game.noise
    eta = float(mk.eta)
    c, r, R, lam = (np.asarray(x) for x in (pr.c, pr.r, pr.R, pr.lam))
    var, var_o = float(nz.idiosyncratic_variance_rate), float(nz.common_variance_rate)
    coeffs = jax.jit(lambda t: (sol.evaluate(t), sol.gains(t), mk.a(t)))

    def rhs(t, y):
        m1, m2, s2 = y[:3]
        v, (k, m), a = coeffs(t)
        alpha, k, m, a = np.asarray(v.alpha), np.asarray(k), np.asarray(m), float(a)
        drift_lin = -eta * (1 + k.sum())
        drift_aff = eta * (a + m.sum())
        d_m1 = drift_lin * m1 + drift_aff
        d_m2 = 2 * (drift_lin * m2 + drift_aff * m1) + var_o
        d_s2 = -2 * eta * (1 - eta * np.sum(alpha / r)) * s2 + var
        e_uhat = k * m1 - m
        e_uhat2 = k**2 * m2 - 2 * k * m * m1 + m**2
        g = -eta * alpha / r
        e_phat_u = k * m2 - m * m1
        reward = e_phat_u - c * e_uhat - R / 2 * e_uhat2 - r / 2 * g**2 * s2
        return np.concatenate([[d_m1, d_m2, d_s2], np.exp(-lam * t) * reward])

    phat0, y0 = float(mk.phat0), float(mk.p0 - mk.phat0)
    start = np.concatenate([[phat0, phat0**2, y0**2], np.zeros(game.n)])
    out = solve_ivp(rhs, (0.0, 2.0), start, method="DOP853", rtol=1e-11, atol=1e-11)
    s2_t1 = out.y[2, -1]
    revenue = out.y[3:, -1] - float(mk.q) / 2 * np.exp(-lam * 2.0) * s2_t1
    assert_rel(sol.revenue(), revenue, rtol=1e-7, what="value formula vs expected revenue")


def test_stationary_values_against_long_horizon():
    # The root solve against the backward flow run over a long horizon (independent route).
    game = _noisy_game()
    long = eqx.tree_at(lambda g: g.market.t1, game, jnp.asarray(60.0))
    long = eqx.tree_at(lambda g: g.market.a, long, mj.DemandIntercept(mean=30.0))
    st = mj.price.stationary_values(game)
    v = mj.price.solve_riccati(
        long, stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11)
    ).evaluate(0.0)
    assert_rel(st.beta, v.beta, rtol=1e-8, what="beta")
    assert_rel(st.gamma, v.gamma, rtol=1e-8, what="gamma")
    k, m = mj.price.solve_riccati(long).gains(0.0)
    assert_rel(st.price, (30.0 + jnp.sum(m)) / (1 + jnp.sum(k)), rtol=1e-7, what="price")


def test_cournot_price_closed_form():
    # Scenario 2: docs/model.md's 2.24432; also the first-order conditions of the one-shot game.
    game = mj.slides.scenario_game(2)
    pc = float(mj.price.cournot_price(game))
    assert_rel(pc, 2.24432, rtol=0, atol=5e-6)
    pr = game.producers
    u = (pc - np.asarray(pr.c)) / (1 + np.asarray(pr.R))  # p - c_i - R_i u_i - u_i = 0
    assert_rel(pc, 1.0 - u.sum(), rtol=1e-12, what="p = a - D")


def test_nash_gap_scenario2(scenario2):
    _, sol, _ = scenario2
    cert = mj.price.nash_gap(sol)
    assert np.max(np.abs(cert.gap)) < 1e-6
    assert_rel(cert.candidate_value, cert.formula_value, rtol=1e-7, what="policy value")


def test_nash_gap_random_games():
    keys = jax.random.split(jax.random.key(7), 4)
    for key in keys:
        k = jax.random.split(key, 5)
        n = 4
        game = mj.PriceGame(
            mj.Market(
                eta=jax.random.uniform(k[0], minval=0.2, maxval=1.5),
                a=30.0,
                q=jax.random.uniform(k[1], minval=0.0, maxval=2.0),
                t0=0.0,
                t1=1.5,
                p0=35.0,
                phat0=30.0,
            ),
            mj.Producers(
                c=jax.random.uniform(k[2], (n,), minval=0.0, maxval=10.0),
                r=jax.random.uniform(k[3], (n,), minval=0.5, maxval=3.0),
                rbar=jax.random.uniform(k[4], (n,), minval=-0.4, maxval=3.0),
                lam=jnp.full(n, 0.1),
            ),
            mj.Noise(sigma=1.0, sigma_o=0.7, jumps=mj.CompoundPoisson(1.0, mj.FixedJumps(1.0))),
        )
        cert = mj.price.nash_gap(
            mj.price.solve_riccati(
                game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)
            )
        )
        assert np.max(np.abs(cert.gap)) < 1e-6, cert


class _Foreign(mj.price.AbstractRiccatiSolution):
    """A wrong candidate: another game's coefficients presented for this game."""

    game: mj.PriceGame
    other: mj.price.RiccatiSolution

    def evaluate(self, t):
        return self.other.evaluate(t)


def test_nash_gap_detects_wrong_equilibrium(scenario2):
    game, _, _ = scenario2
    # Feedback computed for costs c + 5: every producer can gain by deviating. The loss is
    # second order in the error of the feedback, hence the moderate size of the gaps.
    shifted = eqx.tree_at(lambda g: g.producers.c, game, game.producers.c + 5.0)
    cert = mj.price.nash_gap(_Foreign(game, mj.price.solve_riccati(shifted)))
    assert np.min(cert.gap) > 5e-5, cert.gap
    assert np.all(cert.best_response_value > cert.candidate_value)


# -- `mftg solve --scenario 2` ----------------------------------------------------------------


def test_solve_scenario2_json(scenario2, capsys):
    # The solve, certificate and stationary values of `scenario2`: the programs of the tests
    # above are reused.
    assert main(["solve", "--scenario", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert_rel(out["alpha"], (-0.130120, -0.120383, -0.117454), 1e-6, 5e-7, "alpha")
    assert_rel(out["beta"], (0.240678, 0.121399, 0.081066), 1e-6, 5e-7, "beta")
    assert_rel(out["gamma"], (-0.063049, -0.795575, -1.169752), 1e-6, 5e-7, "gamma")
    assert_rel(out["delta"], (0.084729, 2.774551, 9.348738), 1e-6, 5e-7, "delta")
    assert_rel(out["cournot_price"], 2.24432, 0, 5e-6, "cournot")
    for key in ("revenue", "stationary_price", "phat_t1", "u_t1", "nash_gap"):
        assert key in out
    assert max(abs(g) for g in out["nash_gap"]) < 1e-6
    assert len(out["u_t1"]) == 3


def test_human_table(scenario2, capsys):
    assert main(["solve", "--scenario", "2"]) == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "stationary feedback price" in out and "-0.13012" in out
