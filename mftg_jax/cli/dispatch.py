"""`mftg dispatch`: the merit-order dispatch and its certificate, the risk-sensitive matching
value against Monte Carlo, and the consumers' response (docs/dispatch.md)."""

import argparse
import json
import os

import jax
import numpy as np

from .. import dispatch as dp
from . import UsageError
from ._args import integer
from ._common import check_finite, output_folder, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "dispatch",
        help="merit-order dispatch, risk-sensitive matching and consumer response",
        description="Dispatch the fleet of CONFIG.toml at each demand level (system marginal "
        "price, production per station, cost, KKT residual and duality gap); with a "
        "[dynamic] table, the risk-sensitive matching value and its Monte Carlo certainty "
        "equivalent; with [consumers], the market clearing, a large consumer and the "
        "coupling to a price game.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="dispatch configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write report.json and figures to DIR")
    p.add_argument(
        "--paths", type=integer(2, 10**7), default=None, help="Monte Carlo paths (override)"
    )
    p.set_defaults(func=run)


def _dynamic_report(cfg: dp.DispatchConfig) -> dict:
    pr = cfg.problem
    if cfg.bounded:
        sol = dp.solve_hjb(pr, cfg.grid)
        value = sol.value(pr.e0)
        neutral = dp.solve_hjb(_neutral(pr), cfg.grid).value(pr.e0)
    else:
        sol = dp.solve_riccati(pr)
        value = sol.value(pr.t0, pr.e0)
        neutral = dp.solve_riccati(_neutral(pr)).value(pr.t0, pr.e0)
    mc = dp.certainty_equivalent(
        sol, jax.random.key(cfg.mc["seed"]), cfg.mc["n_paths"], cfg.mc["n_steps"]
    )
    rep = {
        "method": "hjb_grid" if cfg.bounded else "riccati",
        "eta": pr.eta,
        "risk_sensitive_value": value,
        "risk_neutral_value": neutral,
        "mc_certainty_equivalent": mc.value,
        "stderr": mc.stderr,
        "mc_z_score": (mc.value - value) / mc.stderr,
        "mc_paths": mc.n_paths,
        "mc_steps": mc.n_steps,
    }
    star = np.asarray(dp.breakdown_eta(pr))
    if np.all(np.isfinite(star)):
        rep["breakdown_eta"] = star
    return rep


def _neutral(pr: dp.MatchingProblem) -> dp.MatchingProblem:
    import equinox as eqx

    return eqx.tree_at(lambda p: p.eta, pr, np.zeros(pr.n))


def _consumer_report(cfg: dp.DispatchConfig) -> dict:
    clr = dp.clear_market(cfg.fleet, cfg.consumers, cfg.base_demand)
    rep = {
        "base_demand": cfg.base_demand,
        "clearing_price": clr.price,
        "clearing_quantity": clr.quantity,
        "clearing_residual": clr.residual,
        "consumption": clr.consumption,
    }
    if cfg.large is not None:
        big = dp.clear_with_large_consumer(cfg.fleet, cfg.large, cfg.consumers)
        taker = dp.clear_market(cfg.fleet, _merge(cfg.consumers, cfg.large), 0.0)
        rep["large_consumer_demand"] = big.large_consumption
        rep["large_consumer_price"] = big.price
        rep["price_taking_demand"] = taker.consumption[-1]
        rep["price_taking_price"] = taker.price
    if cfg.price_game is not None:
        c = dp.couple_price_game(cfg.price_game, cfg.consumers)
        rep["coupled_price"] = c.price
        rep["fixed_demand_price"] = c.fixed_price
        rep["coupled_intercept"] = c.intercept
        rep["coupling_residual"] = c.residual
        rep["price_path_gap_t1"] = c.path[-1] - c.fixed_path[-1]
        rep["price_path_times"] = c.times
        rep["price_path"] = c.path
        rep["fixed_demand_price_path"] = c.fixed_path
    return rep


def _merge(a, b):
    import equinox as eqx

    if type(a) is not type(b):
        raise UsageError("consumers.large must use the same utility as [consumers]")
    return jax.tree.map(lambda x, y: np.concatenate([np.asarray(x), np.asarray(y)]), a, b,
                        is_leaf=eqx.is_array)  # fmt: skip


def dispatch_report(cfg: dp.DispatchConfig) -> dict:
    """Everything `mftg dispatch` reports, as arrays (docs/dispatch.md)."""
    sol = dp.dispatch(cfg.fleet, cfg.demand, cfg.mismatch)
    cert = dp.certify(cfg.fleet, sol)
    rep = {
        "demand": sol.demand,
        "price": sol.price,
        "unique_price": [bool(x) for x in np.asarray(sol.unique_price)],
        "dispatch": sol.dispatch,
        "production_by_owner": cfg.fleet.production_by_owner(sol.dispatch),
        "cost": sol.cost,
        "kkt_residual": cert.kkt_residual,
        "duality_gap": cert.duality_gap,
        "max_kkt_residual": np.max(np.asarray(cert.kkt_residual)),
        "max_duality_gap": np.max(np.abs(np.asarray(cert.duality_gap))),
    }
    if cfg.mismatch is not None:
        rep["mismatch"] = cfg.mismatch
    if cfg.problem is not None:
        rep.update(_dynamic_report(cfg))
    if cfg.consumers is not None:
        rep.update(_consumer_report(cfg))
    _check_finite(rep)
    return rep


def _check_finite(rep: dict) -> None:
    for k, v in rep.items():
        if isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, bool) for x in v)):
            continue
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{k} is not finite: {a}")


def _write(out: str, rep: dict, cfg: dp.DispatchConfig) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(to_jsonable(rep), f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fleet = cfg.fleet
    W = float(fleet.total_capacity)
    top = W if cfg.mismatch is None else max(W, float(cfg.demand.max()))
    fine = np.linspace(0.0, top, 801)
    curve = dp.dispatch(fleet, fine, cfg.mismatch)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(fine, np.asarray(curve.price), "k-", label="system marginal price")
    ax.plot(rep["demand"], rep["price"], "o", ms=3, label="demand levels")
    _, _, cum = fleet.merit_order()
    for w in cum:
        ax.axvline(w, color="0.85", lw=0.8)
    ax.set_xlabel("demand D")
    ax.set_ylabel("price")
    ax.set_title("merit order")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "merit_order.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    s = np.asarray(curve.dispatch)
    ax.stackplot(fine, s.T, labels=[f"station {k}" for k in range(fleet.m)])
    ax.set_xlabel("demand D")
    ax.set_ylabel("production")
    ax.set_title("optimal production strategies")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "production.png"), dpi=120)
    plt.close(fig)

    if "price_path" in rep:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ts = np.asarray(rep["price_path_times"])
        ax.plot(ts, np.asarray(rep["fixed_demand_price_path"]), label="fixed demand")
        ax.plot(ts, np.asarray(rep["price_path"]), label="with consumer response")
        ax.axhline(float(rep["coupled_price"]), color="C1", ls=":", lw=0.8)
        ax.axhline(float(rep["fixed_demand_price"]), color="C0", ls=":", lw=0.8)
        ax.set_xlabel("t")
        ax.set_ylabel("E p(t)")
        ax.set_title("price dynamics")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "price_dynamics.png"), dpi=120)
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    cfg = dp.load_config(args.config)
    if args.paths is not None:
        if args.paths < 2:
            raise UsageError(f"--paths must be >= 2, got {args.paths}")
        cfg.mc["n_paths"] = args.paths
    rep = dispatch_report(cfg)
    check_finite(rep)
    if args.out:
        with output_folder(args.out) as tmp:
            _write(tmp, rep, cfg)
    if args.json:
        print_json(rep)
        return 0
    print(f"Dispatch: {cfg.fleet.m} station(s), {len(cfg.demand)} demand level(s)")
    print(f"{'demand':>10} {'price':>10} {'cost':>12} {'kkt':>10} {'gap':>10}")
    for i in range(min(len(cfg.demand), 20)):
        print(
            f"{float(rep['demand'][i]):>10.4g} {float(rep['price'][i]):>10.4g} "
            f"{float(rep['cost'][i]):>12.6g} {float(rep['kkt_residual'][i]):>10.2e} "
            f"{float(rep['duality_gap'][i]):>10.2e}"
        )
    if "risk_sensitive_value" in rep:
        print(f"risk-sensitive matching ({rep['method']}):")
        for u in range(len(rep["eta"])):
            print(
                f"  station {u}: eta={float(rep['eta'][u]):g} value="
                f"{float(rep['risk_sensitive_value'][u]):.6g} MC="
                f"{float(rep['mc_certainty_equivalent'][u]):.6g} +- "
                f"{float(rep['stderr'][u]):.2g}"
            )
    if "clearing_price" in rep:
        print("market clearing: price", np.round(np.asarray(rep["clearing_price"]), 6).tolist())
    if "coupled_price" in rep:
        print(
            f"price game: stationary price {float(rep['fixed_demand_price']):.6g} at fixed "
            f"demand, {float(rep['coupled_price']):.6g} with consumer response"
        )
    return 0
