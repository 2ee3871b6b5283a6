"""The insurance rule under both conventions, the alpha ODE and the model's validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import insurance
from tests.insurance.insurance_cases import market, regimes


@pytest.mark.parametrize("convention", ["compensated", "poisson"])
def test_rule_maximises_the_insurance_growth(convention):
    # brute force over a fine grid of covers: an independent check of the first-order condition
    grid = np.linspace(0.0, 1.5, 150001)
    for l, th, lam in [(0.6, 0.2, 0.5), (0.8, 0.5, 2.0), (0.3, 0.1, 1.0), (0.9, -0.3, 1.0)]:
        h = np.asarray(insurance.loss_growth(grid, l, th, lam, convention))
        best = grid[np.argmax(h)]
        assert float(insurance.insurance_fraction(l, th, convention)) == pytest.approx(
            best, abs=2e-5
        )


def test_compensated_reading_gives_the_slides_formula():
    th = jnp.linspace(-0.5, 3.0, 11)
    l = 0.9
    np.testing.assert_allclose(
        insurance.insurance_fraction(l, th, "compensated"),
        np.maximum(l - (1 + th) / (2 + th), 0),
        rtol=1e-14,
    )
    np.testing.assert_allclose(
        insurance.insurance_fraction(l, th, "poisson"), np.maximum(l - th / (1 + th), 0), rtol=1e-14
    )
    # the two differ: the Poisson reading keeps less of the loss
    assert np.all(
        np.asarray(insurance.insurance_fraction(l, th, "poisson"))
        > np.asarray(insurance.insurance_fraction(l, th, "compensated"))
    )


@pytest.mark.parametrize("convention", ["compensated", "poisson"])
def test_rule_is_decreasing_and_convex_in_the_loading(convention):
    th = np.linspace(-0.9, 4.0, 2001)
    f = np.asarray(insurance.insurance_fraction(0.95, th, convention))
    df = np.diff(f)
    assert np.all(df <= 1e-15) and np.any(df < 0)
    second = f[:-2] - 2 * f[1:-1] + f[2:]
    assert np.all(second >= -1e-14)
    # strictly convex where the cover is positive, by automatic differentiation
    g2 = jax.vmap(jax.grad(jax.grad(lambda t: insurance.insurance_fraction(0.95, t, convention))))
    inside = th[f > 1e-3]
    assert np.all(np.asarray(g2(jnp.asarray(inside))) > 0)


def test_alpha_ode_matches_closed_forms():
    m = insurance.InsuranceModel(market(), regimes(), discount=0.3, n_grid=5)
    ts = jnp.linspace(0.0, 1.0, 5)
    ode = np.asarray(insurance.solve_alpha(m, ts))
    reg = m.regimes
    cf = np.stack(
        [
            np.asarray(insurance.alpha_closed_form(t, reg.generator, reg.bequest, 0.3, 1.0))
            for t in ts
        ]
    )
    np.testing.assert_allclose(ode, cf, rtol=1e-7)
    # uncoupled: alpha_j = b_j e^{-lam t1} + (e^{-lam t} - e^{-lam t1}) / lam
    G0 = jnp.zeros((2, 2))
    t = 0.25
    want = np.asarray(reg.bequest) * np.exp(-0.3) + (np.exp(-0.3 * t) - np.exp(-0.3)) / 0.3
    got = insurance.alpha_closed_form(t, G0, reg.bequest, 0.3, 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # lam -> 0 limit: t1 - t
    got0 = insurance.alpha_closed_form(t, G0, reg.bequest, 0.0, 1.0)
    np.testing.assert_allclose(got0, np.asarray(reg.bequest) + 0.75, rtol=1e-12)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("loss_fraction", [1.0, 0.5], "regimes.loss_fraction must be in \\[0, 1\\)"),
        ("loss_fraction", [-0.1, 0.5], "regimes.loss_fraction"),
        ("loading", [-1.0, 0.2], "regimes.loading must be > -1"),
        ("loss_intensity", [-1.0, 0.2], "regimes.loss_intensity must be >= 0"),
        ("bequest", [0.0, 1.0], "regimes.bequest must be > 0"),
        ("generator", [[-1.0, 0.5], [1.0, -1.0]], "rows must sum to 0"),
        ("generator", [[1.0, -1.0], [1.0, -1.0]], "off-diagonal"),
        ("riskless_rate", [0.0, 0.0, 0.0], "one entry per regime"),
    ],
)
def test_regimes_validation(field, value, match):
    kw = dict(
        generator=[[-1.0, 1.0], [2.0, -2.0]],
        riskless_rate=[0.02, 0.01],
        asset_premium=[[0.0, 0.0], [0.0, 0.0]],
        loss_intensity=[0.5, 2.0],
        loss_fraction=[0.6, 0.8],
        loading=[0.2, 0.5],
        bequest=[1.0, 1.0],
    )
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        insurance.Regimes(**kw)


def test_model_validation():
    g, r = market(), regimes()
    for kw, match in [
        (dict(discount=-0.1), "discount must be >= 0"),
        (dict(q=-1.0), "q must be >= 0"),
        (dict(s0=0.0), "s0 must be > 0"),
        (dict(regime0=2), "regime0 must be in 0..1"),
        (dict(convention="gross"), "convention must be one of"),
        (dict(n_grid=1), "n_grid must be >= 2"),
    ]:
        with pytest.raises(ValueError, match=match):
            insurance.InsuranceModel(g, r, **kw)
    bad = insurance.Regimes(
        generator=[[0.0]], riskless_rate=[0.0], asset_premium=[[0.0, 0.0, 0.0]],
        loss_intensity=[0.0], loss_fraction=[0.0], loading=[0.0], bequest=[1.0],
    )  # fmt: skip
    with pytest.raises(ValueError, match="asset_premium must have d = 2 columns"):
        insurance.InsuranceModel(g, bad)
    with pytest.raises(ValueError, match="n_paths must be even"):
        m = insurance.InsuranceModel(g, r)
        insurance.simulate_paths(m, None, None, jax.random.key(0), 3, 2)
