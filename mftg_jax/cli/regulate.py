"""`mftg regulate`: the regulated-price (tracking) game: target, equilibrium, certificate,
closed forms and a Monte Carlo of the regulated and uncontrolled prices."""

import argparse
import json
import os

import jax
import numpy as np

from .. import tracking
from .._simulation._spec import EnsembleSpec
from .._toml import load
from . import UsageError
from ._common import print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "regulate",
        help="solve and certify a regulated-price (tracking) game",
        description="Solve the regulated-price game of CONFIG.toml (slides, equation (11) "
        "with a control cost): the target's range and whether it stays in the band, the "
        "equilibrium costs, the best-response gaps, the stationary variances and a Monte "
        "Carlo of the regulated and uncontrolled prices.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="game configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write report.json and figures to DIR")
    p.add_argument("--paths", type=int, default=None, help="Monte Carlo paths (override)")
    p.add_argument("--steps", type=int, default=None, help="Monte Carlo grid steps (override)")
    p.set_defaults(func=run)


def _read(path: str):
    def build(d):
        return tracking.game_from_dict(d), tracking.simulation_settings(d)

    return load(path, build)


def regulate_report(game, settings: dict) -> dict:
    """Everything `mftg regulate` reports, as arrays (docs/tracking.md)."""
    lo, hi, inside = tracking.target_range(game)
    sol = tracking.solve(game)
    cert = tracking.nash_gap(sol)
    t1 = float(game.t1)
    moments = tracking.solve_moments(sol, [t1])
    spec = EnsembleSpec(
        n_paths=settings["n_paths"],
        n_common=settings["n_common"],
        n_steps=settings["n_steps"],
        scheme="exponential",
        save_times=(float(game.t0), t1),
        dtype="float64",
    )
    key = jax.random.key(settings["seed"])
    center = np.stack([np.asarray(game.p0), np.asarray(moments.mean[0])])
    mc = tracking.simulate(sol, key, spec, center=center)
    free = tracking.simulate(game, key, spec, controlled=False)
    mean_t1 = mc.mean["p"][-1]
    var_t1 = mc.mean["centered2"][-1] - (mean_t1 - center[-1]) ** 2
    if game.interacting:
        stationary_variance = None
    else:
        stationary_variance = tracking.stationary(game).variance
    return {
        "n": game.n,
        "t0": game.t0,
        "t1": game.t1,
        "interacting": game.interacting,
        "target_min": lo,
        "target_max": hi,
        "inside_band": [bool(x) for x in inside],
        "cost": sol.cost(),
        "nash_gap": cert.gap,
        "best_response_value": cert.best_response_value,
        "deviation_gain_t0": sol.deviation_gain(game.t0),
        "stationary_variance": stationary_variance,
        "mean_t1": moments.mean[0],
        "variance_t1": moments.variance[0],
        "mc_mean_t1": mean_t1,
        "mc_mean_t1_stderr": mc.stderr["p"][-1],
        "mc_variance_t1": var_t1,
        "mc_variance_t1_stderr": mc.stderr["centered2"][-1],
        "mc_cost": mc.mean["cost"],
        "mc_cost_stderr": mc.stderr["cost"],
        "fraction_inside_band": mc.mean["inside"],
        "fraction_inside_band_uncontrolled": free.mean["inside"],
        "mc_paths": spec.n_paths,
        "mc_steps": spec.n_steps,
    }


def _write(out: str, rep: dict, game) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(to_jsonable(rep), f, indent=1)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # figures are optional
        return
    sol = tracking.solve(game)
    ts = np.linspace(float(game.t0), float(game.t1), 201)
    mean = np.asarray(tracking.solve_moments(sol, ts).mean)
    target = np.stack([np.asarray(game.target(t)) for t in ts])
    k = min(game.n, 4)
    fig, axes = plt.subplots(1, k, figsize=(4 * k, 3), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.axhspan(float(game.band.lo[i]), float(game.band.hi[i]), color="0.9", label="band")
        ax.plot(ts, target[:, i], "k--", label="target")
        ax.plot(ts, mean[:, i], label="E p (regulated)")
        ax.set_title(f"asset {i}")
        ax.set_xlabel("t")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "mean_price.png"), dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    game, settings = _read(args.config)
    if args.paths is not None:
        if args.paths < 1:
            raise UsageError(f"--paths must be >= 1, got {args.paths}")
        settings["n_paths"] = args.paths
    if args.steps is not None:
        if args.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {args.steps}")
        settings["n_steps"] = args.steps
    rep = regulate_report(game, settings)
    if args.out:
        _write(args.out, rep, game)
    if args.json:
        print_json(rep)
        return 0
    n = game.n
    print(
        f"Regulated-price game: {n} asset(s), horizon [{float(game.t0):g}, {float(game.t1):g}]"
        + (", interacting" if game.interacting else "")
    )
    cols = (
        "target_min",
        "target_max",
        "cost",
        "nash_gap",
        "mc_mean_t1",
        "mc_variance_t1",
        "fraction_inside_band",
        "fraction_inside_band_uncontrolled",
    )
    print(f"{'asset':>6} {'inside':>7} " + " ".join(f"{c[:14]:>14}" for c in cols))
    for i in range(min(n, 20)):
        row = " ".join(f"{float(np.asarray(rep[c])[i]):>14.6g}" for c in cols)
        print(f"{i:>6} {str(rep['inside_band'][i]):>7} {row}")
    if n > 20:
        print(f"... {n - 20} more (use --json for all)")
    return 0
