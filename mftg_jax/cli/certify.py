"""`mftg certify`: independent certificates of a price game's equilibrium."""

import argparse

import diffrax
import jax
import numpy as np

from .. import lq, price
from .._simulation._spec import EnsembleSpec
from ._common import add_game_arguments, game_from_args, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "certify",
        help="certify a price game's equilibrium by independent checks",
        description="Certify the equilibrium of a price game: each producer's best-response "
        "(Nash) gap, the largest relative difference between the price solver and the "
        "general-game solver on the same game, and Monte Carlo z-scores of the realised "
        "revenues against the value formula (simulated as a general game).",
    )
    add_game_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--scenarios",
        type=int,
        default=400,
        help="Monte Carlo common-noise scenarios (default 400)",
    )
    p.add_argument("--paths", type=int, default=8, help="paths per scenario (default 8)")
    p.add_argument("--steps", type=int, default=1000, help="Euler steps (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.set_defaults(func=run)


def certify_report(game, *, scenarios=400, paths=8, steps=1000, seed=0) -> dict:
    """The certificates of a price game, as arrays (see `mftg certify --help`)."""
    for name, v in (("--scenarios", scenarios), ("--paths", paths), ("--steps", steps)):
        if v < 2:
            raise ValueError(f"{name} must be >= 2, got {v}")
    tight = diffrax.PIDController(rtol=1e-10, atol=1e-10)
    riccati = price.solve_riccati(game, stepsize_controller=tight)
    gap = price.nash_gap(riccati).gap
    general = lq.solve(price.to_lq(game), stepsize_controller=tight)
    ref = riccati.evaluate(game.market.t0)
    got = price.from_lq(general.evaluate(game.market.t0))
    errs = [
        np.max(np.abs(np.asarray(g) - np.asarray(r)) / np.maximum(np.abs(np.asarray(r)), 1e-300))
        for g, r in zip(got, ref)
    ]
    spec = EnsembleSpec(
        n_paths=scenarios * paths,
        n_common=scenarios,
        n_steps=steps,
        scheme="euler",
        dtype="float64",
    )
    sim = lq.simulate(general, jax.random.PRNGKey(seed), spec)
    revenue_mc = np.asarray(price.revenue_from_lq_cost(sim.mean_cost()))
    se = np.asarray(sim.standard_error())
    revenue = np.asarray(riccati.revenue())
    # A noiseless game has one path and no standard error: no z-score (null in JSON).
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (revenue_mc - revenue) / np.where(se > 0, se, 1.0), np.nan)
    return {
        "nash_gap": gap,
        "general_vs_price_max_rel_err": float(np.max(errs)),
        "mc_cost_z_scores": z,
        "revenue_mc_rel_err": (revenue_mc - revenue) / np.abs(revenue),
        "revenue": revenue,
        "revenue_mc": revenue_mc,
        "revenue_mc_stderr": se,
        "mc_scenarios": scenarios,
        "mc_paths": paths,
        "mc_steps": steps,
    }


def run(args: argparse.Namespace) -> int:
    game = game_from_args(args)
    rep = certify_report(
        game, scenarios=args.scenarios, paths=args.paths, steps=args.steps, seed=args.seed
    )
    if args.json:
        print_json(rep)
        return 0
    print(f"Certificates of a price game with {game.n} producer(s)")
    print(f"{'producer':>8} {'nash_gap':>12} {'revenue':>14} {'MC revenue':>14} {'z':>8}")
    for i in range(game.n):
        z = float(rep["mc_cost_z_scores"][i])
        shown = f"{z:>8.2f}" if np.isfinite(z) else f"{'n/a':>8}"
        print(
            f"{i:>8} {float(rep['nash_gap'][i]):>12.3g} {float(rep['revenue'][i]):>14.6g} "
            f"{float(rep['revenue_mc'][i]):>14.6g} {shown}"
        )
    print(
        f"general vs price solver, max relative error = {rep['general_vs_price_max_rel_err']:.3g}"
    )
    print(
        f"Monte Carlo: {rep['mc_scenarios']} scenarios x {rep['mc_paths']} paths, "
        f"{rep['mc_steps']} Euler steps; |z| < 4 expected (n/a: a noiseless game)"
    )
    return 0
