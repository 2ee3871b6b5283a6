"""`mftg certify`: independent certificates of a price game's equilibrium."""

import argparse

import diffrax
import jax
import numpy as np

from .. import lq, price
from .._programs import persistent_jit
from .._simulation._spec import EnsembleSpec
from . import CertificateFailure
from ._args import check_bytes, integer
from ._common import add_game_arguments, check_finite, game_from_args, print_json

# What a passing certificate means: relative Nash gaps, relative difference of the two
# solvers, Monte Carlo z-scores of the revenues.
GAP_TOL = 1e-6
SOLVER_TOL = 1e-6
Z_TOL = 4.0


def register(sub) -> None:
    p = sub.add_parser(
        "certify",
        help="certify a price game's equilibrium by independent checks",
        description="Certify the equilibrium of a price game: each producer's best-response "
        "(Nash) gap, the largest relative difference between the price solver and the "
        "general-game solver on the same game, and Monte Carlo z-scores of the realised "
        "revenues against the value formula (simulated as a general game). Exit status 0 when "
        f"every certificate passes (Nash gaps <= {GAP_TOL:g}, solver difference <= "
        f"{SOLVER_TOL:g}, Monte Carlo |z| < {Z_TOL:g}); 1 when one fails (the report is still "
        "printed, with one line on stderr naming what failed); 2 on bad input.",
    )
    add_game_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--scenarios",
        type=integer(2, 10**6),
        default=400,
        help="Monte Carlo common-noise scenarios (default 400)",
    )
    p.add_argument(
        "--paths", type=integer(2, 10**6), default=8, help="paths per scenario (default 8)"
    )
    p.add_argument(
        "--steps", type=integer(2, 10**6), default=1000, help="Euler steps (default 1000)"
    )
    p.add_argument("--seed", type=integer(0, 2**63 - 1), default=0, help="PRNG seed (default 0)")
    p.set_defaults(func=run)


@persistent_jit
def _at_t0(riccati, general):
    # One program instead of some forty small ones run op by op (each costs a cache lookup).
    t0 = riccati.game.market.t0
    return riccati.evaluate(t0), price.from_lq(general.evaluate(t0)), riccati.revenue()


def certify_report(game, *, scenarios=400, paths=8, steps=1000, seed=0) -> dict:
    """The certificates of a price game, as arrays (see `mftg certify --help`)."""
    for name, v in (("--scenarios", scenarios), ("--paths", paths), ("--steps", steps)):
        if v < 2:
            raise ValueError(f"{name} must be >= 2, got {v}")
    tight = diffrax.PIDController(rtol=1e-10, atol=1e-10)
    riccati = price.solve_riccati(game, stepsize_controller=tight)
    gap = price.nash_gap(riccati).gap
    general = lq.solve(price.to_lq(game), stepsize_controller=tight)
    ref, got, revenue = _at_t0(riccati, general)
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
    revenue = np.asarray(revenue)
    # A noiseless game has one path and no standard error: no z-score (null in JSON).
    z = [float((m - r) / s) if s > 0 else None for m, r, s in zip(revenue_mc, revenue, se)]
    return {
        "nash_gap": gap,
        "general_vs_price_max_rel_err": float(np.max(errs)),
        "mc_revenue_z_scores": z,
        "revenue_mc_rel_err": (revenue_mc - revenue) / np.abs(revenue),
        "revenue": revenue,
        "revenue_mc": revenue_mc,
        "revenue_mc_stderr": se,
        "mc_scenarios": scenarios,
        "mc_paths": paths,
        "mc_steps": steps,
    }


def failures(rep: dict) -> list[str]:
    """What failed in a certificate report (empty: every certificate passes)."""
    out = []
    gap = np.abs(np.asarray(rep["nash_gap"], dtype=float))
    if np.max(gap) > GAP_TOL:
        out.append(f"Nash gap {np.max(gap):.3g} > {GAP_TOL:g} (producer {int(np.argmax(gap)) + 1})")
    if rep["general_vs_price_max_rel_err"] > SOLVER_TOL:
        out.append(
            f"general vs price solver differ by {rep['general_vs_price_max_rel_err']:.3g} "
            f"> {SOLVER_TOL:g}"
        )
    zs = [(i, z) for i, z in enumerate(rep["mc_revenue_z_scores"]) if z is not None]
    bad = [(i, z) for i, z in zs if not abs(z) < Z_TOL]
    if bad:
        i, z = max(bad, key=lambda x: abs(x[1]))
        out.append(
            f"Monte Carlo revenue z-score {z:.3g} beyond {Z_TOL:g} (producer {i + 1}; "
            f"{len(bad)} of {len(zs)}); more --steps reduce the Euler bias"
        )
    return out


def run(args: argparse.Namespace) -> int:
    game = game_from_args(args)
    # The Euler paths of one batch, saved on the grid, and the gain tables.
    check_bytes(
        8.0 * 4 * args.scenarios * args.paths * min(args.steps + 1, 102) * (game.n + 2)
        + 8.0 * 8 * (args.steps + 1) * game.n**2,
        "--scenarios x --paths and --steps",
        "use fewer scenarios, paths or steps",
    )
    rep = certify_report(
        game, scenarios=args.scenarios, paths=args.paths, steps=args.steps, seed=args.seed
    )
    check_finite(rep)
    failed = failures(rep)
    if args.json:
        print_json(rep)
    else:
        _print_text(game, rep)
    if failed:
        raise CertificateFailure("; ".join(failed))
    return 0


def _print_text(game, rep: dict) -> None:
    print(f"Certificates of a price game with {game.n} producer(s)")
    print(f"{'producer':>8} {'nash_gap':>12} {'revenue':>14} {'MC revenue':>14} {'z':>8}")
    for i in range(game.n):
        z = rep["mc_revenue_z_scores"][i]
        shown = f"{z:>8.2f}" if z is not None else f"{'n/a':>8}"
        print(
            f"{i + 1:>8} {float(rep['nash_gap'][i]):>12.3g} {float(rep['revenue'][i]):>14.6g} "
            f"{float(rep['revenue_mc'][i]):>14.6g} {shown}"
        )
    print(
        f"general vs price solver, max relative error = {rep['general_vs_price_max_rel_err']:.3g}"
    )
    print(
        f"Monte Carlo: {rep['mc_scenarios']} scenarios x {rep['mc_paths']} paths, "
        f"{rep['mc_steps']} Euler steps; |z| < {Z_TOL:g} expected (n/a: a noiseless game)"
    )
