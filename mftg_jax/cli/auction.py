"""`mftg auction`: the prosumers' first-price procurement auction: equilibrium bids, the
best-response certificate, payments, efficiency and the prosumer's sell-or-buy decision."""

import argparse
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import auction as au
from . import UsageError
from ._args import integer
from ._common import print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "auction",
        help="solve and certify an asymmetric first-price procurement auction",
        description="Solve the prosumers' auction of CONFIG.toml (slides, 'Prosumers market "
        "auction'): the common lowest bid, the bid functions, the best-response gaps, the "
        "win probabilities, the buyer's expected payment, a Monte Carlo of payments and "
        "efficiency, and the prosumer's decision against its reserve.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="auction configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write report.json and figures to DIR")
    p.add_argument(
        "--draws", type=integer(2, 10**8), default=None, help="Monte Carlo draws (override)"
    )
    p.set_defaults(func=run)


def _finite(rep: dict) -> None:
    for k, v in rep.items():
        if isinstance(v, dict):
            _finite(v)
        elif isinstance(v, bool | str | int) or v is None:
            continue
        else:
            a = np.asarray(v, dtype=float)
            if not np.all(np.isfinite(a)):
                raise ValueError(f"the {k} is not finite: the auction could not be solved")


def _collocation(auction, sol, degree: int):
    """The second method against the first, or None where it does not apply (degree 0, or
    a density that is not positive at the top)."""
    if degree == 0 or not np.allclose(np.asarray(auction.top_exponents), 1.0):
        return None
    col = au.collocate(auction, degree)
    b = jnp.linspace(sol.b_low, auction.top, 401)
    diff = au.inverse_bid_curves(col, b) - au.inverse_bid_curves(sol, b)
    return {
        "degree": degree,
        "lowest_bid": col.b_low,
        "lowest_bid_difference": col.b_low - sol.b_low,
        "max_inverse_bid_difference": jnp.max(jnp.abs(diff)),
        "residual": col.residual,
        "converged": bool(col.converged),
    }


def auction_report(auction, settings: dict, prosumer=None):
    """Everything `mftg auction` reports (docs/auction.md), and the solution."""
    sol = au.solve(auction, delta=settings["delta"], rtol=settings["rtol"], atol=settings["atol"])
    cert = au.best_response_gap(sol, settings["n_costs"], settings["n_bids"])
    mc = au.monte_carlo(sol, jax.random.key(settings["seed"]), settings["n_mc"])
    rep = {
        "n_bidders": auction.n_bidders,
        "lowest_bid": sol.b_low,
        "highest_bid": sol.highest_bid,
        "bids": {"costs": cert.costs, "bids": cert.bid},
        "best_response_gap": cert.gap,
        "win_probability": au.win_probability(sol),
        "expected_payment": au.expected_payment(sol),
        "second_price_payment": au.second_price_payment(auction),
        "mc_draws": mc.n,
        "mc_payment": mc.payment,
        "mc_payment_stderr": mc.payment_stderr,
        "mc_win_frequency": mc.win_frequency,
        "mc_win_frequency_stderr": mc.win_frequency_stderr,
        "efficiency": mc.efficiency,
        "efficiency_stderr": mc.efficiency_stderr,
        "monotone": bool(np.all(np.diff(np.asarray(cert.bid), axis=1) >= 0)),
        "bids_above_cost": bool(np.all(np.asarray(cert.bid) >= np.asarray(cert.costs))),
    }
    rep["collocation"] = _collocation(auction, sol, settings.get("collocation_degree", 32))
    if prosumer is not None:
        pro, (r0, r1, n) = prosumer
        dec = au.decide(pro, sol, jnp.linspace(r0, r1, n))
        rep["prosumer"] = {
            "bidder": pro.bidder,
            "reserve": dec.reserve,
            "sells": [bool(x) for x in np.asarray(dec.sells)],
            "buy_position": dec.buy_position,
            "buy_payoff": dec.buy_payoff,
            "sell_payoff": dec.sell_payoff,
            "unit_cost": dec.unit_cost,
        }
    _finite(rep)
    return rep, sol


def _write(out: str, rep: dict, sol) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(to_jsonable(rep), f, indent=1)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # figures are optional
        return
    costs, bids = np.asarray(rep["bids"]["costs"]), np.asarray(rep["bids"]["bids"])
    fig, ax = plt.subplots(figsize=(5, 4))
    for i in range(costs.shape[0]):
        ax.plot(costs[i], bids[i], label=f"bidder {i}")
    top = float(sol.highest_bid)
    ax.plot([float(np.min(costs)), top], [float(np.min(costs)), top], "k:", label="bid = cost")
    ax.set_xlabel("cost c")
    ax.set_ylabel("equilibrium bid")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bids.png"), dpi=120)
    plt.close(fig)
    if "prosumer" in rep:
        p = rep["prosumer"]
        r = np.asarray(p["reserve"])
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(r, np.asarray(p["sell_payoff"]), label="sell (auction)")
        ax.plot(r, np.asarray(p["buy_payoff"]), label="buy")
        sells = np.asarray(p["sells"])
        ax.fill_between(
            r, 0, 1, where=sells, transform=ax.get_xaxis_transform(), color="0.9", label="sells"
        )
        ax.set_xlabel("energy reserve e")
        ax.set_ylabel("payoff")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "decision.png"), dpi=120)
        plt.close(fig)


def run(args: argparse.Namespace) -> int:
    auction, settings, prosumer = au.load_config(args.config)
    if args.draws is not None:
        if args.draws < 2:
            raise UsageError(f"--draws must be >= 2, got {args.draws}")
        settings["n_mc"] = args.draws
    rep, sol = auction_report(auction, settings, prosumer)
    if args.out:
        _write(args.out, rep, sol)
    if args.json:
        print_json(rep)
        return 0
    print(f"First-price procurement auction: {auction.n_bidders} bidders")
    print(f"lowest bid {float(rep['lowest_bid']):.10g}, highest bid {float(rep['highest_bid']):g}")
    print(f"{'bidder':>6} {'gap':>12} {'P(win)':>10} {'MC P(win)':>10} {'s.e.':>8}")
    for i in range(auction.n_bidders):
        print(
            f"{i:>6} {float(rep['best_response_gap'][i]):>12.3e} "
            f"{float(rep['win_probability'][i]):>10.6f} {float(rep['mc_win_frequency'][i]):>10.6f}"
            f" {float(rep['mc_win_frequency_stderr'][i]):>8.2g}"
        )
    print(
        f"expected payment {float(rep['expected_payment']):.8f} (MC "
        f"{float(rep['mc_payment']):.6f} +- {float(rep['mc_payment_stderr']):.2g}); "
        f"second-price {float(rep['second_price_payment']):.8f}"
    )
    print(f"efficiency {float(rep['efficiency']):.4f} +- {float(rep['efficiency_stderr']):.2g}")
    col = rep["collocation"]
    if col is not None:
        print(
            f"collocation (degree {col['degree']}): lowest bid {float(col['lowest_bid']):.10g}, "
            f"largest inverse-bid difference {float(col['max_inverse_bid_difference']):.2g}, "
            f"residual {float(col['residual']):.2g}"
        )
    if "prosumer" in rep:
        sells = rep["prosumer"]["sells"]
        r = np.asarray(rep["prosumer"]["reserve"])
        first = next((float(r[k]) for k, s in enumerate(sells) if s), math.nan)
        print(f"prosumer (bidder {rep['prosumer']['bidder']}): sells from reserve {first:g}")
    return 0
