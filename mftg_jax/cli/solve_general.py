"""`mftg solve-general`: the equilibrium of a general LQ game with regime switching."""

import argparse

import diffrax
import numpy as np

from .. import lq
from ._common import check_finite, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "solve-general",
        help="solve a general LQ mean-field-type game (regimes, jumps, common noise)",
        description="Solve the per-regime Riccati system of a general game given as TOML "
        "(schema: docs/general_lq.md) and report, per regime and player, the value "
        "coefficients and feedback gains at t0, the equilibrium costs and the best-response "
        "(Nash) gaps.",
    )
    p.add_argument("config", metavar="GAME.toml", help="general game configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def solve_general_report(game) -> dict:
    """Everything `mftg solve-general` prints, as arrays (per regime, per player)."""
    # Tight tolerances: the Nash gaps below are then meaningful to about 1e-9.
    sol = lq.solve(game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))
    v = sol.evaluate(game.t0)
    gn = sol.gains(game.t0)
    cert = lq.nash_gap(sol)
    return {
        "players": game.n,
        "regimes": game.num_regimes,
        "regime0": int(game.regime0),
        "t0": game.t0,
        "t1": game.t1,
        "alpha": v.alpha,
        "beta": v.beta,
        "gamma": v.gamma,
        "delta": v.delta,
        "deviation_gain": gn.deviation,
        "mean_slope": gn.mean_slope,
        "mean_intercept": gn.mean_intercept,
        "cost": sol.cost(),
        "costs_by_regime": sol.costs(),
        "nash_gap": cert.gap,
    }


def run(args: argparse.Namespace) -> int:
    game = lq.load_game(args.config)
    rep = solve_general_report(game)
    check_finite(rep)
    if args.json:
        print_json(rep)
        return 0
    K, n = game.num_regimes, game.n
    print(
        f"General game: {n} player(s), {K} regime(s), horizon "
        f"[{float(rep['t0']):g}, {float(rep['t1']):g}], initial regime {int(game.regime0)}"
    )
    cols = (
        "alpha",
        "beta",
        "gamma",
        "delta",
        "deviation_gain",
        "mean_slope",
        "mean_intercept",
        "costs_by_regime",
        "nash_gap",
    )
    heads = ("alpha", "beta", "gamma", "delta", "g", "ghat", "h", "cost", "nash_gap")
    print(f"{'regime':>6} {'player':>6} " + " ".join(f"{c:>12}" for c in heads))
    for s in range(K):
        for i in range(n):
            row = [float(np.asarray(rep[c])[s, i]) for c in cols]
            print(f"{s:>6} {i:>6} " + " ".join(f"{x:>12.6g}" for x in row))
    print("equilibrium controls: u_i = ghat_i xhat + h_i + g_i (x - xhat) in each regime")
    print(f"max relative Nash gap = {float(np.max(np.abs(np.asarray(rep['nash_gap'])))):.3g}")
    return 0
