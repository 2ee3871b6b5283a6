"""`mftg solve`: the equilibrium of a price game, its revenues, prices and Nash gaps."""

import argparse

import jax.numpy as jnp
import numpy as np

from ..price import cournot_price, nash_gap, solve_expectations, solve_riccati, stationary_price
from ._common import add_game_arguments, check_finite, game_from_args, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "solve",
        help="solve a price game's equilibrium",
        description="Solve the Riccati system of a price game and report the equilibrium: "
        "coefficients at t0, revenues, stationary and Cournot prices, the exact "
        "conditional price at t1, the controls at t1 on the mean path, and each "
        "producer's best-response (Nash) gap.",
    )
    add_game_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def solve_report(game) -> dict:
    """Everything `mftg solve` prints, as arrays."""
    riccati = solve_riccati(game)
    mean = solve_expectations(riccati)
    v = riccati.evaluate(game.market.t0)
    t1 = game.market.t1
    cert = nash_gap(riccati)
    return {
        "n": game.n,
        "terminal": game.market.terminal,
        "t0": game.market.t0,
        "t1": t1,
        "alpha": v.alpha,
        "beta": v.beta,
        "gamma": v.gamma,
        "delta": v.delta,
        "revenue": riccati.revenue(),
        "stationary_price": stationary_price(game),
        "cournot_price": cournot_price(game),
        "phat_t1": mean.phat(t1),
        "mean_p_t1": mean.price(t1),
        "u_t1": mean.controls(t1),
        "nash_gap": cert.gap,
        "best_response_value": cert.best_response_value,
    }


def run(args: argparse.Namespace) -> int:
    game = game_from_args(args)
    rep = solve_report(game)
    check_finite(rep)
    if args.json:
        print_json(rep)
        return 0
    n = game.n
    print(
        f"Price game: {n} producer(s), horizon [{float(rep['t0']):g}, {float(rep['t1']):g}], "
        f"{rep['terminal']} terminal values"
    )
    cols = ("alpha", "beta", "gamma", "delta", "revenue", "u_t1", "nash_gap")
    shown = min(n, 20)
    print(f"{'producer':>8} " + " ".join(f"{c:>14}" for c in cols))
    for i in range(shown):
        row = [float(np.asarray(rep[c])[i]) for c in cols]
        print(f"{i + 1:>8} " + " ".join(f"{x:>14.6g}" for x in row))
    if shown < n:
        print(f"... {n - shown} more (use --json for all)")
    print(f"conditional price phat(t1) = {float(rep['phat_t1']):.6g}")
    print(f"mean price E[p(t1)]        = {float(rep['mean_p_t1']):.6g}")
    print(f"stationary feedback price  = {float(rep['stationary_price']):.6g}")
    print(f"one-shot Cournot price     = {float(rep['cournot_price']):.6g}")
    print(f"max relative Nash gap      = {float(jnp.max(jnp.abs(rep['nash_gap']))):.3g}")
    return 0
