"""The procurement auction against independent references: closed forms (two uniform
bidders, symmetric bidders, the second-price payment), the best-response certificate, Monte
Carlo with standard errors, finite differences, vmap, and the second equilibrium method
(collocation) against the first (shooting)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import auction as au
from mftg_jax.cli.auction import auction_report
from tests.helpers import assert_rel, central_difference, execute_notebook

EXAMPLE = "examples/auction.toml"
# The collocation degree of the tests and of the notebook (shared compiled programs).
DEGREE = 32


@pytest.fixture(scope="module")
def example():
    auction, settings, prosumer = au.load_config(EXAMPLE)
    # The settings of the file, so that `mftg auction` reuses the compiled programs.
    rep, sol = auction_report(auction, settings, prosumer)
    return auction, settings, rep, sol


# -- the certificate on the asymmetric three-bidder example --------------------------------------


def test_best_response_gap_below_1e_6(example):
    _, _, rep, _ = example
    gap = np.asarray(rep["best_response_gap"])
    assert gap.shape == (3,) and np.all(gap < 1e-6), gap


def test_wrong_lowest_bid_has_a_gap(example):
    auction, settings, _, sol = example
    wrong = eqx.tree_at(lambda s: s.b_low, sol, sol.b_low + 0.02)
    cert = au.best_response_gap(wrong, settings["n_costs"], settings["n_bids"])
    assert np.max(np.asarray(cert.gap)) > 1e-4


def test_monotone_and_above_cost(example):
    _, _, rep, _ = example
    bids, costs = np.asarray(rep["bids"]["bids"]), np.asarray(rep["bids"]["costs"])
    assert np.all(np.diff(bids, axis=1) > 0)
    assert np.all(bids[:, :-1] > costs[:, :-1]) and np.allclose(bids[:, -1], 1.0)
    assert np.allclose(bids[:, 0], float(rep["lowest_bid"]))
    assert rep["monotone"] and rep["bids_above_cost"]


def test_win_probabilities_sum_to_one_and_match_monte_carlo(example):
    _, _, rep, _ = example
    p = np.asarray(rep["win_probability"])
    assert abs(p.sum() - 1.0) < 1e-6
    z = (np.asarray(rep["mc_win_frequency"]) - p) / np.asarray(rep["mc_win_frequency_stderr"])
    assert np.all(np.abs(z) < 4), z


def test_expected_payment_matches_monte_carlo(example):
    _, _, rep, _ = example
    z = (rep["mc_payment"] - rep["expected_payment"]) / rep["mc_payment_stderr"]
    assert abs(float(z)) < 4, z
    assert 0.5 < float(rep["efficiency"]) < 1.0 and float(rep["efficiency_stderr"]) > 0


@pytest.mark.slow  # about 15 s: compiles the residual
def test_shooting_residual_changes_sign_once(example):
    auction, _, rep, _ = example
    lo = float(jnp.max(auction.lows))
    r_low = au.shooting_residual(auction, lo + 0.5 * (float(rep["lowest_bid"]) - lo))
    r_high = au.shooting_residual(auction, float(rep["lowest_bid"]) + 0.05)
    assert float(r_low) < 0 < float(r_high)
    # The root is bracketed to 1e-9: the residual is steep there (the shooting's sensitivity).
    b = float(rep["lowest_bid"])
    assert (
        float(au.shooting_residual(auction, b - 1e-9))
        < 0
        < float(au.shooting_residual(auction, b + 1e-9))
    )


# -- the second method: collocation against shooting ---------------------------------------------


@pytest.fixture(scope="module")
def collocated(example):
    # The program `mftg auction` compiled for its report (the file's degree).
    assert example[1]["collocation_degree"] == DEGREE
    return au.collocate(example[0], DEGREE)


def test_collocation_agrees_with_shooting(example, collocated):
    _, _, rep, sol = example
    col = collocated
    assert float(rep["collocation"]["lowest_bid"]) == float(col.b_low)
    assert bool(col.converged) and float(col.residual) < 1e-5, col.residual
    # Measured: 6.6e-12 in the lowest bid, 1.7e-8 in the inverse bids (n = 32).
    assert abs(float(col.b_low) - float(sol.b_low)) < 1e-10
    b = jnp.linspace(float(sol.b_low), 1.0, 401)
    lam_c, lam_s = au.inverse_bid_curves(col, b), au.inverse_bid_curves(sol, b)
    assert_rel(lam_c, lam_s, 0, 1e-7, "inverse bids, collocation vs shooting")
    assert np.all(np.asarray(col.ratios) > 1)  # bids above cost at every node
    # The corner slopes come out of the collocation at the top node, not imposed (measured
    # 8.4e-7 away: the least-squares compromise at the singular node).
    assert_rel(col.ratios[:, -1], np.full(3, 1.5), 0, 1e-5, "top slopes K/(K-1)")


@pytest.mark.slow  # 122 s on a loaded 2-core CPU: the forward-mode derivative of a vmapped solve
def test_collocation_two_uniform_batched_and_differentiated():
    # vmap over seven auctions and forward-mode implicit derivatives in one program.
    lo2 = jnp.linspace(0.0, 0.6, 7)
    grid = jnp.linspace(0.0, 1.0, 41)

    def f(x):
        col = au.collocate(au.Auction((au.Uniform(0.0, 1.0), au.Uniform(x, 1.0))), 24)
        b = col.b_low + (1.0 - col.b_low) * grid
        return col.b_low, b, jax.vmap(col.inverse_bids)(b)

    (b_low, b, lam), (db, _, _) = jax.jvp(jax.vmap(f), (lo2,), (jnp.ones_like(lo2),))
    assert_rel(b_low, au.two_uniform_lowest_bid(0.0, lo2, 1.0), 0, 1e-12, "b_low")
    exact = jax.vmap(lambda x, y: au.two_uniform_inverse_bids(0.0, x, 1.0, y).T)(lo2, b)
    assert_rel(lam, exact, 0, 1e-10, "inverse bids")
    # d b_low / d lo2 = w1^2 / (w1 + w2)^2, w1 = 1, w2 = 1 - lo2.
    assert_rel(db, 1.0 / (2.0 - lo2) ** 2, 0, 1e-8, "d b_low / d lo2")


@pytest.mark.slow  # 183 s on a loaded 2-core CPU: reverse mode through the least-squares solve
def test_collocation_reverse_mode_against_finite_differences():
    def f(x):
        a = au.Auction((au.Uniform(0.0, 1.0), au.TruncatedNormal(0.2, 1.0, 0.5, 0.2),
                        au.Power(0.1, 1.0, x)))  # fmt: skip
        return au.collocate(a, 24).b_low

    g = jax.grad(f)(2.0)
    fd = central_difference(lambda x: float(f(x)), 2.0, 1e-5)
    assert abs(float(g) - fd) < 1e-7, (float(g), fd)


@pytest.mark.slow  # 174 s on a loaded 2-core CPU: eight vmapped solves from spread starts
def test_search_finds_a_single_equilibrium(example):
    auction, _, rep, _ = example
    starts, b, r, distinct = au.search_equilibria(auction, 8, DEGREE)
    assert len(distinct) == 1 and abs(distinct[0] - float(rep["lowest_bid"])) < 1e-9
    assert np.sum(r < 1e-6) >= 4  # most starts converge to it


# -- closed forms ---------------------------------------------------------------------------------


def _two_uniform(lo2):
    return au.lowest_bid(au.Auction((au.Uniform(0.0, 1.0), au.Uniform(lo2, 1.0))))


def test_two_uniform_closed_form_batched():
    lo2 = jnp.linspace(0.0, 0.6, 7)  # lo2 = 0: the symmetric case, b_low = 1/2
    b = jax.vmap(_two_uniform)(lo2)
    assert_rel(b, au.two_uniform_lowest_bid(0.0, lo2, 1.0), 0, 1e-10, "b_low")
    assert abs(float(b[0]) - 0.5) < 1e-10


@pytest.mark.slow  # about 10 s: compiles a second solve
def test_two_uniform_closed_form_solves_the_first_order_conditions():
    # The closed form (derived by v = cbar - c from Griesmer-Levitan-Shubik) checked on its
    # own against the ODE by finite differences, and against the solver's paths.
    lo1, lo2, R = 0.0, 0.4, 1.0
    bl = float(au.two_uniform_lowest_bid(lo1, lo2, R))
    b = jnp.linspace(bl + 0.01, R - 0.01, 9)
    lam = au.two_uniform_inverse_bids(lo1, lo2, R, b)
    dlam = (au.two_uniform_inverse_bids(lo1, lo2, R, b + 1e-6)
            - au.two_uniform_inverse_bids(lo1, lo2, R, b - 1e-6)) / 2e-6  # fmt: skip
    # Uniform: G/f = R - lambda; K = 2: lambda_1' = (R - lambda_1)/(b - lambda_2).
    assert_rel(dlam[0], (R - lam[0]) / (b - lam[1]), 1e-7, 0, "lambda_1'")
    assert_rel(dlam[1], (R - lam[1]) / (b - lam[0]), 1e-7, 0, "lambda_2'")
    ends = au.two_uniform_inverse_bids(lo1, lo2, R, jnp.array([bl]))
    assert_rel(ends[:, 0], [lo1, lo2], 0, 1e-12, "lambda(b_low)")
    sol = au.solve(au.Auction((au.Uniform(lo1, R), au.Uniform(lo2, R))))
    got = jax.vmap(sol.inverse_bids)(b).T
    assert_rel(got, lam, 0, 1e-9, "inverse bids")


def test_gradient_implicit_vs_closed_form_and_finite_differences():
    g = jax.jacfwd(_two_uniform)(0.4)
    w1, w2 = 1.0, 0.6
    assert abs(float(g) - w1**2 / (w1 + w2) ** 2) < 1e-8
    fd = central_difference(lambda x: float(_two_uniform(x)), 0.4, 1e-5)
    assert abs(float(g) - fd) < 1e-7


def test_symmetric_two_uniform_revenue_equivalence():
    a = au.Auction((au.Uniform(0.0, 1.0), au.Uniform(0.0, 1.0)))
    sol = au.solve(a)
    # Second-lowest of two U(0, 1): 2/3; the second-price payment by quadrature too.
    assert abs(float(au.expected_payment(sol)) - 2.0 / 3.0) < 1e-9
    assert abs(float(au.second_price_payment(a)) - 2.0 / 3.0) < 1e-12
    c = jnp.linspace(0.0, 0.99, 12)
    assert_rel(sol.bids(0, c), (1.0 + c) / 2, 0, 1e-9, "bid")


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: au.Uniform(1.0, 0.5), "Uniform.hi must be > lo"),
        (lambda: au.Power(0.0, 1.0, -1.0), "Power.a must be > 0"),
        (lambda: au.TruncatedNormal(0.0, 1.0, 0.5, 0.0), "TruncatedNormal.std must be > 0"),
        (lambda: au.Beta(0.0, 1.0, 2.0, float("nan")), "Beta.beta must be finite"),
        (lambda: au.Auction((au.Uniform(0.0, 1.0),)), "K >= 2"),
        (lambda: au.Auction((au.Uniform(0.0, 1.0), au.Uniform(0.0, 2.0))), "bidders\\[1\\].hi"),
        (lambda: au.Auction((au.Uniform(0.0, 1.0), 3.0)), "AbstractCostDistribution"),
        (
            lambda: au.collocate(au.Auction((au.Uniform(0.0, 1.0), au.Beta(0.0, 1.0, 2.0, 3.0)))),
            "top exponent equal to 1",
        ),
    ],
)
def test_validation_names_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.slow  # about 8 s: compiles four distributions
def test_distributions_cdf_quantile_pdf():
    dists = [
        au.Uniform(0.1, 1.0),
        au.Power(0.1, 1.0, 2.5),
        au.TruncatedNormal(0.1, 1.0, 0.4, 0.3),
        au.Beta(0.1, 1.0, 2.0, 3.0),
    ]
    u = jnp.linspace(0.01, 0.99, 9)

    @eqx.filter_jit
    def check(d):
        c = d.quantile(u)
        fd = (d.cdf(c + 1e-6) - d.cdf(c - 1e-6)) / 2e-6
        return d.cdf(c), d.pdf(c), fd

    for d in dists:
        back, pdf, fd = check(d)
        assert_rel(back, u, 0, 1e-10, type(d).__name__)
        assert_rel(pdf, fd, 1e-6, 1e-8, type(d).__name__ + " pdf")
    # The generic quantile (bisection + Newton step) against the closed form.
    generic = eqx.filter_jit(au.AbstractCostDistribution.quantile)(dists[2], u)
    assert_rel(generic, dists[2].quantile(u), 0, 1e-12, "generic quantile")


@pytest.mark.slow  # about 20 s: a three-bidder solve, bids and payments
def test_symmetric_truncated_normal_closed_form_and_revenue_equivalence():
    d = au.TruncatedNormal(0.0, 1.0, 0.4, 0.3)
    a = au.Auction((d, d, d))
    sol = au.solve(a)
    c = jnp.linspace(0.0, 0.99, 23)
    # Within 1e-7: the last 1e-4 of the bid range is the straight line into the corner.
    assert_rel(sol.bids(0, c), au.symmetric_bids(d, 3, c), 0, 1e-7, "symmetric bids")
    assert_rel(sol.bids(2, c), sol.bids(0, c), 0, 1e-9, "identical bidders bid alike")
    assert abs(float(au.expected_payment(sol)) - float(au.second_price_payment(a))) < 1e-8
    assert_rel(au.win_probability(sol), np.full(3, 1 / 3), 0, 1e-7, "win probability")


@pytest.mark.slow  # about 60 s: a beta bidder (generic quantile) and the certificate
def test_beta_bidder_certificate_and_a_single_equilibrium():
    a = au.Auction((au.Uniform(0.0, 1.0), au.Beta(0.2, 1.0, 2.0, 3.0), au.Power(0.1, 1.0, 0.5)))
    sol = au.solve(a)
    cert = au.best_response_gap(sol, 101, 1001)
    assert np.all(np.asarray(cert.gap) < 1e-6), cert.gap
    assert np.all(np.diff(np.asarray(cert.bid), axis=1) > 0)
    _, r, roots = au.scan_lowest_bids(a, 40)
    assert len(roots) == 1 and abs(roots[0] - float(sol.b_low)) < 0.05
    assert r[0] < 0 < r[-1]


@pytest.mark.slow  # about 15 s
def test_end_point_delta_convergence():
    a = au.Auction((au.Uniform(0.0, 1.0), au.Uniform(0.4, 1.0)))
    exact = float(au.two_uniform_lowest_bid(0.0, 0.4, 1.0))
    errs = [abs(float(au.lowest_bid(a, delta=d)) - exact) for d in (1e-3, 1e-4, 1e-5)]
    assert max(errs) < 1e-11, errs


# -- the notebook (last: the programs above are in the compilation cache) -------------------------


def test_notebook_executes(tmp_path, example, collocated):
    execute_notebook("auction", tmp_path, full=False)


@pytest.mark.slow
def test_notebook_full_sizes(tmp_path):
    execute_notebook("auction", tmp_path, full=True)
