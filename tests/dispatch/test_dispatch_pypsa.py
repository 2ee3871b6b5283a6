"""The dispatch against PyPSA (single-bus networks solved by HiGHS): the same generators,
capacities and linear or quadratic costs must give the same dispatch and marginal price.

Every random case is one snapshot of one network (time-varying costs, availabilities and
loads; snapshots do not interact in a dispatch without storage), so each network is solved
once. Skipped where PyPSA is not installed (`pip install -e '.[peers]'`).
"""

import logging
import warnings

import numpy as np
import pytest

from mftg_jax import dispatch as dp
from tests.helpers import assert_rel

pypsa = pytest.importorskip("pypsa", reason="PyPSA is not installed (the `peers` extra)")
pd = pytest.importorskip("pandas", reason="pandas is needed by PyPSA")

K = 40  # random cases per network
M = 3  # generators per case


def _solve(cap, cost, quad, load, p_min=None):
    """One PyPSA network, snapshot i = case i; returns dispatch (K, M) and price (K,)."""
    for name in ("pypsa", "linopy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Set explicitly (and restored) so that PyPSA does not warn about the pandas string dtype
    # it will adopt in a later version.
    previous = pypsa.options.api.legacy_string_dtype
    pypsa.options.api.legacy_string_dtype = True
    try:
        return _build_and_solve(cap, cost, quad, load, p_min)
    finally:
        pypsa.options.api.legacy_string_dtype = previous


def _build_and_solve(cap, cost, quad, load, p_min):
    k, m = cap.shape
    n = pypsa.Network()
    n.set_snapshots(range(k))
    n.add("Bus", "bus")
    p_nom = cap.max(axis=0)
    for j in range(m):
        n.add(
            "Generator",
            f"g{j}",
            bus="bus",
            p_nom=p_nom[j],
            p_max_pu=pd.Series(cap[:, j] / p_nom[j], n.snapshots),
            p_min_pu=pd.Series(0.0 if p_min is None else p_min[:, j] / p_nom[j], n.snapshots),
            marginal_cost=pd.Series(cost[:, j], n.snapshots),
            marginal_cost_quadratic=pd.Series(quad[:, j], n.snapshots),
        )
    n.add("Load", "load", bus="bus", p_set=pd.Series(load, n.snapshots))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status = n.optimize(
            solver_name="highs",
            include_objective_constant=False,
            log_to_console=False,
            primal_feasibility_tolerance=1e-10,
            dual_feasibility_tolerance=1e-10,
            qp_regularization_value=0.0,
        )
    assert status == ("ok", "optimal"), status
    p = n.generators_t.p[[f"g{j}" for j in range(m)]].to_numpy()
    return p, n.buses_t.marginal_price["bus"].to_numpy()


def _cases(rng, quadratic):
    cap = rng.uniform(10.0, 100.0, (K, M))
    cost = rng.uniform(5.0, 60.0, (K, M))
    quad = rng.uniform(0.01, 0.2, (K, M)) if quadratic else np.zeros((K, M))
    frac = rng.uniform(0.03, 0.97, K)
    if not quadratic:
        # Keep the linear cases away from block boundaries (non-unique prices) by 2 % of a block.
        cum = np.sort(cap, axis=1).cumsum(axis=1) / cap.sum(axis=1, keepdims=True)
        for i in range(K):
            while np.min(np.abs(frac[i] - cum[i])) < 0.02:
                frac[i] = rng.uniform(0.03, 0.97)
    return cap, cost, quad, frac * cap.sum(axis=1)


def _ours(cap, cost, quad, load):
    out = [dp.dispatch(dp.Fleet(cap[i], cost[i], quad[i]), load[i]) for i in range(len(load))]
    return np.stack([np.asarray(o.dispatch) for o in out]), np.array([float(o.price) for o in out])


@pytest.mark.parametrize("quadratic", [False, True], ids=["linear", "quadratic"])
def test_random_cases_match_pypsa(quadratic):
    rng = np.random.default_rng(11 + quadratic)
    cap, cost, quad, load = _cases(rng, quadratic)
    p_ref, price_ref = _solve(cap, cost, quad, load)
    s, price = _ours(cap, cost, quad, load)
    scale = cap.sum(axis=1, keepdims=True)
    assert_rel(s / scale, p_ref / scale, 0, 1e-6, "dispatch / total capacity")
    assert_rel(price, price_ref, 1e-6, 0, "marginal price")


def test_block_boundary_price_in_interval():
    # At D = W_1 the LP's price may be any point of [p_1, p_2]; PyPSA/HiGHS reports one of
    # them, ours is the upper end (docs/dispatch.md). Both dispatches are the same.
    cap = np.array([[50.0, 30.0, 40.0]] * 2)
    cost = np.array([[10.0, 20.0, 30.0]] * 2)
    load = np.array([50.0, 80.0])
    p_ref, price_ref = _solve(cap, cost, np.zeros_like(cap), load)
    sol = dp.dispatch(dp.Fleet(cap[0], cost[0]), load)
    assert_rel(np.asarray(sol.dispatch), p_ref, 0, 1e-6, "dispatch at the boundary")
    lo, hi = np.asarray(sol.price_low), np.asarray(sol.price_high)
    assert np.all((lo - 1e-6 <= price_ref) & (price_ref <= hi + 1e-6)), (price_ref, lo, hi)
    np.testing.assert_array_equal(np.asarray(sol.price), [20.0, 30.0])


def test_textbook_three_unit_economic_dispatch():
    # Wood & Wollenberg, Power Generation, Operation and Control, Example 3A: F_i(P) =
    # a_i + b_i P + c_i P^2 with P_min <= P <= P_max, load 850 MW: lambda = 9.148 $/MWh,
    # P = (393.2, 334.6, 122.2) MW. Minimum outputs are a shift s = P - P_min of our
    # zero-based stations (cost b + 2 c P_min, capacity P_max - P_min, demand 850 - sum P_min);
    # PyPSA takes them directly (p_min_pu).
    b = np.array([7.92, 7.85, 7.97])
    c = np.array([0.001562, 0.00194, 0.00482])
    pmin = np.array([150.0, 100.0, 50.0])
    pmax = np.array([600.0, 400.0, 200.0])
    load = 850.0
    fleet = dp.Fleet(pmax - pmin, b + 2 * c * pmin, c)
    sol = dp.dispatch(fleet, load - pmin.sum())
    P = np.asarray(sol.dispatch) + pmin
    assert_rel(float(sol.price), 9.148, 5e-5, 0, "textbook lambda")
    assert_rel(P, [393.2, 334.6, 122.2], 0, 0.05, "textbook dispatch")
    p_ref, price_ref = _solve(pmax[None], b[None], c[None], np.array([load]), p_min=pmin[None])
    assert_rel(P, p_ref[0], 1e-6, 0, "dispatch vs PyPSA")
    assert_rel(float(sol.price), price_ref[0], 1e-6, 0, "price vs PyPSA")
    cert = dp.certify(fleet, sol)
    assert float(cert.kkt_residual) < 1e-12 and abs(float(cert.duality_gap)) < 1e-12
