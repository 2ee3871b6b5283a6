"""The static dispatch against independent references: a loop-based merit order, SciPy's LP
(HiGHS through `scipy.optimize.linprog`) and its duals, the interior KKT closed form, finite
differences, and the certificate's ability to reject a wrong dispatch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import dispatch as dp
from tests.helpers import assert_rel

FLEET = dp.Fleet([50.0, 30.0, 40.0], [10.0, 20.0, 30.0])
QFLEET = dp.Fleet([50.0, 30.0, 40.0], [10.0, 20.0, 30.0], [0.1, 0.05, 0.2])


def _random_fleet(rng, m, quadratic):
    cap = rng.uniform(5.0, 100.0, m)
    cost = rng.uniform(0.0, 80.0, m)
    q = rng.uniform(0.005, 0.3, m) * (rng.uniform(size=m) < 0.7) if quadratic else np.zeros(m)
    return dp.Fleet(cap, cost, q)


def _loop_merit_order(cap, cost, D):
    order = sorted(range(len(cost)), key=lambda k: cost[k])
    s, left = np.zeros(len(cost)), D
    for k in order:
        s[k] = min(cap[k], left)
        left -= s[k]
    return s


def test_linear_merit_order_against_loop_and_linprog():
    from scipy.optimize import linprog

    rng = np.random.default_rng(1)
    for _ in range(10):
        f = _random_fleet(rng, 6, quadratic=False)
        cap, cost = np.asarray(f.capacity), np.asarray(f.cost)
        D = rng.uniform(0.02, 0.98, 8) * cap.sum()
        sol = dp.dispatch(f, D)
        for i, d in enumerate(D):
            ref = _loop_merit_order(cap, cost, d)
            assert_rel(sol.dispatch[i], ref, 0, 1e-10 * cap.sum(), "merit-order dispatch")
            bounds = list(zip(0 * cap, cap))
            lp = linprog(cost, A_eq=np.ones((1, len(cap))), b_eq=[d], bounds=bounds, method="highs")
            assert lp.status == 0
            assert_rel(sol.cost[i], lp.fun, 1e-9, 1e-9, "LP cost")
            # Away from block boundaries the LP dual is the unique price.
            assert_rel(sol.price[i], lp.eqlin.marginals[0], 1e-9, 1e-9, "LP dual price")


def test_block_boundary_price_interval():
    # D at a cumulative capacity: every price in [p_n, p_{n+1}] is a multiplier; the
    # reported one is the slides' p_{n+1} (cheapest station with spare capacity).
    sol = dp.dispatch(FLEET, jnp.array([0.0, 50.0, 80.0, 120.0]))
    np.testing.assert_array_equal(np.asarray(sol.price), [10.0, 20.0, 30.0, 30.0])
    np.testing.assert_array_equal(np.asarray(sol.price_low), [-np.inf, 10.0, 20.0, 30.0])
    np.testing.assert_array_equal(np.asarray(sol.price_high), [10.0, 20.0, 30.0, np.inf])
    assert not np.any(np.asarray(sol.unique_price))
    cert = dp.certify(FLEET, sol)
    assert float(cert.kkt_residual.max()) == 0.0
    # Any price of the interval is certified; one outside it is not.
    for lam, ok in ((10.0, True), (15.0, True), (20.0, True), (20.5, False), (9.5, False)):
        moved = dp.DispatchSolution(
            sol.demand[1], sol.dispatch[1], jnp.asarray(lam), sol.price_low[1],
            sol.price_high[1], sol.cost[1], sol.mismatch,
        )  # fmt: skip
        gap = float(dp.certify(FLEET, moved).duality_gap)
        assert (gap < 1e-14) == ok, (lam, gap)


def test_ties_share_pro_rata():
    f = dp.Fleet([10.0, 30.0, 20.0], [5.0, 7.0, 7.0])
    sol = dp.dispatch(f, 30.0)
    assert_rel(sol.dispatch, [10.0, 12.0, 8.0], 1e-14)
    assert float(sol.price) == 7.0


def test_quadratic_interior_closed_form_and_mixed_certificate():
    # All stations interior: lambda = (D + sum p/2q) / sum 1/2q.
    f = dp.Fleet([1e4, 1e4, 1e4], [10.0, 12.0, 15.0], [0.1, 0.2, 0.05])
    D = jnp.array([100.0, 300.0])
    sol = dp.dispatch(f, D)
    c, q = np.asarray(f.cost), np.asarray(f.quadratic)
    lam = (np.asarray(D) + np.sum(c / (2 * q))) / np.sum(1 / (2 * q))
    lam = lam[:, None]
    interior = (lam - c) / (2 * q) > 0
    assert interior.all(), "the closed form needs every station on"
    assert_rel(sol.price, lam[:, 0], 1e-13)
    assert_rel(sol.dispatch, (lam - c) / (2 * q), 1e-12)
    rng = np.random.default_rng(2)
    for _ in range(5):
        f = _random_fleet(rng, 7, quadratic=True)
        D = jnp.linspace(0.0, float(f.total_capacity), 41)
        cert = dp.certify(f, dp.dispatch(f, D))
        assert float(cert.kkt_residual.max()) < 1e-12
        assert float(jnp.abs(cert.duality_gap).max()) < 1e-12


def test_mismatch_loss_structure():
    # S* = D - (l')^{-1}(p_n) = D - p_n / kappa while D - p_n/kappa lies in block n, and flat
    # at W_n while the price climbs from p_n to p_{n+1} (slides, "Structure of the solution").
    kappa = 2.0
    D = jnp.array([20.0, 55.0, 60.0, 62.0, 90.0, 200.0])
    sol = dp.dispatch(FLEET, D, mismatch=kappa)
    S = np.asarray(sol.production)
    assert_rel(S[0], 20.0 - 10.0 / kappa, 1e-14)
    assert_rel(S[1], 50.0, 1e-14)  # block 1 full, price kappa (D - 50) = 10 in [10, 20]
    assert_rel(sol.price[1], kappa * 5.0, 1e-14)
    assert_rel(S[2], 50.0, 1e-14)
    assert_rel(sol.price[2], 20.0, 1e-14)
    assert_rel(S[3], 62.0 - 20.0 / kappa, 1e-14)
    assert_rel(S[5], 120.0, 1e-14)  # beyond capacity: all full, price kappa (D - W)
    assert_rel(sol.price[5], kappa * 80.0, 1e-14)
    cert = dp.certify(FLEET, sol)
    assert float(cert.kkt_residual.max()) < 1e-14
    assert float(jnp.abs(cert.duality_gap).max()) < 1e-14


def test_certificate_rejects_a_wrong_dispatch():
    sol = dp.dispatch(QFLEET, jnp.array(70.0))
    bad = dp.DispatchSolution(
        sol.demand, sol.dispatch + jnp.array([-1.0, 1.0, 0.0]), sol.price, sol.price_low,
        sol.price_high, sol.cost, sol.mismatch,
    )  # fmt: skip
    cert = dp.certify(QFLEET, bad)
    assert float(cert.kkt_residual) > 1e-4
    assert float(cert.duality_gap) > 1e-5


@pytest.mark.parametrize("mismatch", [None, 3.0])
def test_gradients_against_finite_differences(mismatch):
    f = dp.Fleet([50.0, 30.0, 40.0, 25.0], [10.0, 20.0, 30.0, 25.0], [0.1, 0.0, 0.2, 0.0])
    eps = 1e-6

    def out(D, cost, cap, q):
        s = dp.dispatch(dp.Fleet(cap, cost, q), D, mismatch)
        return jnp.concatenate([s.price[None], s.dispatch, s.cost[None]])

    jacobian = jax.jit(jax.jacfwd(out, argnums=(0, 1, 2, 3)))
    for D in (30.0, 76.0, 101.0):
        args = (jnp.asarray(D), f.cost, f.capacity, f.quadratic)
        jac = jacobian(*args)
        for a, J in enumerate(jac):
            x = np.asarray(args[a], dtype=float)
            for i in range(x.size):
                if a == 3 and x[i] == 0:
                    continue  # q = 0 is the edge of the domain (a linear station)
                e = np.zeros_like(x).reshape(-1)
                e[i] = eps
                e = e.reshape(x.shape)
                plus = out(*[jnp.asarray(x + e) if j == a else args[j] for j in range(4)])
                minus = out(*[jnp.asarray(x - e) if j == a else args[j] for j in range(4)])
                fd = (plus - minus) / (2 * eps)
                Ji = J if x.ndim == 0 else J[:, i]
                assert_rel(Ji, fd, 1e-5, 1e-6, f"d/d arg{a}[{i}] at D={D}")


def test_vectorised_shapes_and_owner():
    f = dp.Fleet([50.0, 30.0, 40.0], [10.0, 20.0, 30.0], owner=[0, 1, 0])
    D = jnp.linspace(0.0, 120.0, 12).reshape(3, 4)
    sol = dp.dispatch(f, D)
    assert sol.dispatch.shape == (3, 4, 3) and sol.price.shape == (3, 4)
    by_owner = f.production_by_owner(sol.dispatch)
    assert_rel(by_owner.sum(-1), D, 1e-12)
    assert_rel(by_owner[..., 0], sol.dispatch[..., 0] + sol.dispatch[..., 2], 1e-14)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(capacity=[1.0, 0.0], cost=[1.0, 2.0]), "fleet.capacity must be > 0"),
        (dict(capacity=[1.0, 1.0], cost=[1.0]), "fleet.cost must have one entry per station"),
        (dict(capacity=[1.0], cost=[1.0], quadratic=[-0.1]), "fleet.quadratic must be >= 0"),
        (dict(capacity=[1.0], cost=[np.nan]), "fleet.cost must be finite"),
        (dict(capacity=[1.0, 2.0], cost=[1.0, 2.0], owner=[0]), "fleet.owner"),
    ],
)
def test_fleet_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        dp.Fleet(**kw)


def test_demand_validation():
    with pytest.raises(ValueError, match=r"demand must be in \[0, 120\]"):
        dp.dispatch(FLEET, [10.0, 130.0])
    with pytest.raises(ValueError, match="mismatch must be > 0"):
        dp.dispatch(FLEET, 10.0, mismatch=0.0)
    with pytest.raises(ValueError, match="demand must be finite"):
        dp.dispatch(FLEET, np.nan)
