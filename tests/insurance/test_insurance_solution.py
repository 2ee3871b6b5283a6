"""The q = 0 closed forms: the first-order condition against a second optimiser, the exact
value against the Monte Carlo and against perturbed policies, gradients against finite
differences, and `mftg insurance` on a q = 0 study."""

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from mftg_jax import insurance
from mftg_jax.cli import main
from tests.insurance.insurance_cases import model


@pytest.fixture(scope="module")
def case():
    m = model()
    sol = insurance.solve(m)
    return m, sol


def test_first_order_condition(case):
    m, sol = case
    assert float(jnp.max(jnp.abs(sol.foc_residual))) < 1e-7
    r = sol.returns
    # a second optimiser (scipy BFGS on the same growth in numpy) at t0 for every regime
    ex = np.asarray(insurance.excess_returns(m, r, m.t0))
    f = jax.jit(lambda p, e: -insurance.log_growth(p, e, r))
    g = jax.jit(jax.grad(lambda p, e: -insurance.log_growth(p, e, r)))
    for j in range(m.m):
        res = minimize(
            lambda p, e=ex[j]: float(f(jnp.asarray(p), e)),
            np.zeros(m.d),
            jac=lambda p, e=ex[j]: np.asarray(g(jnp.asarray(p), e)),
            method="BFGS",
            options={"gtol": 1e-12},
        )
        np.testing.assert_allclose(sol.investment[0, j], res.x, atol=1e-6)


def test_merton_without_jumps(case):
    m, sol = case
    r = eqx.tree_at(lambda x: x.jump_intensity, sol.returns, jnp.asarray(0.0))
    ex = insurance.excess_returns(m, r, m.t0)
    pi, _ = insurance.optimal_investment(ex, r)
    want = np.linalg.solve(np.asarray(r.covariance), np.asarray(ex).T).T
    np.testing.assert_allclose(pi, want, rtol=1e-8)


def test_consumption_rule(case):
    m, sol = case
    t = 0.3
    reg = m.regimes
    alpha = insurance.alpha_closed_form(t, reg.generator, reg.bequest, m.discount, m.t1)
    np.testing.assert_allclose(sol.consumption_rate(t), np.exp(-0.1 * t) / np.asarray(alpha))


@pytest.mark.slow
def test_closed_form_beats_perturbed_policies(case):
    # the exact objective of proportional policies: no perturbation of the closed form is better
    m, sol = case
    best = np.asarray(sol.values())
    base = insurance.fit_feedback(m, sol.policy(), 3)
    np.testing.assert_allclose(insurance.policy_value(m, base, sol.returns), best, atol=2e-4)
    key = jax.random.key(3)
    for i in range(4):
        k1, k2, k3 = jax.random.split(jax.random.fold_in(key, i), 3)
        pert = eqx.tree_at(
            lambda p: (p.log_consumption, p.investment, p.insurance_logit),
            base,
            (
                base.log_consumption + 0.1 * jax.random.normal(k1, base.log_consumption.shape),
                base.investment + 0.1 * jax.random.normal(k2, base.investment.shape),
                base.insurance_logit + 0.3 * jax.random.normal(k3, base.insurance_logit.shape),
            ),
        )
        v = np.asarray(insurance.policy_value(m, pert, sol.returns))
        assert np.all(v < best)


def test_value_against_monte_carlo(case):
    m, sol = case
    paths = insurance.simulate_paths(m, sol.returns, sol.policy(), jax.random.key(0), 400, 20)
    v, se = insurance.mean_and_stderr(insurance.objective_samples(m, paths))
    assert int(paths.overflow) == 0 and not bool(jnp.any(paths.bankrupt))
    assert abs(float(v) - float(sol.value())) < 4 * float(se), (v, se, sol.value())
    # E[number of losses] against the regime occupation (exact from the generator)
    assert float(jnp.mean(paths.losses)) > 0


def _value(theta, l, sigma):
    m = model(loading=(theta, 0.5), loss_fraction=(l, 0.8), sigma=(sigma, 0.25))
    return insurance.solve(m).value()


@pytest.mark.slow
def test_gradients_against_finite_differences(case):
    x = (0.2, 0.6, 0.2)
    g = jax.grad(_value, argnums=(0, 1, 2))(*x)
    for i, gi in enumerate(g):
        h = 1e-4
        up = list(x)
        dn = list(x)
        up[i] += h
        dn[i] -= h
        fd = (float(_value(*up)) - float(_value(*dn))) / (2 * h)
        assert float(gi) == pytest.approx(fd, rel=1e-4, abs=1e-7), (i, float(gi), fd)


# -- `mftg insurance` at q = 0 -------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SMALL = """
[optimisation]
n_paths = 64
n_steps = 8
steps = 5
certificate_directions = 2
certificate_sizes = [0.1]
"""


def _config(tmp_path, q):
    text = (ROOT / "examples" / "insurance.toml").read_text()
    text = text.split("[optimisation]")[0].replace("q = 0.5 ", f"q = {q} ")
    p = tmp_path / f"small_{q}.toml"
    p.write_text(text + SMALL)
    return p


def test_cli_q0_json(case, tmp_path, capsys):
    # The example at q = 0 has the shapes of `model()`, and the Monte Carlo is the one of
    # `test_value_against_monte_carlo` (400 paths, 20 steps): their compiled programs are reused.
    p = _config(tmp_path, 0.0)
    out = tmp_path / "out"
    rc = main(["insurance", str(p), "--json", "--paths", "400", "--steps", "20", "--out", str(out)])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    for k in ("consumption_rate", "investment_fraction", "insurance_fraction", "value",
              "value_mc", "value_mc_stderr"):  # fmt: skip
        assert k in rep
    assert len(rep["consumption_rate"]) == 2
    assert len(rep["investment_fraction"]) == 2 and len(rep["investment_fraction"][0]) == 2
    assert abs(rep["value"] - rep["value_mc"]) < 4 * rep["value_mc_stderr"]
    assert (out / "report.json").exists() and (out / "policy.png").exists()
    assert (out / "terminal_wealth.png").exists()
