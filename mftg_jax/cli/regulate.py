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
from ._args import integer, iso_date, real
from ._common import check_finite, output_folder, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "regulate",
        help="solve and certify a regulated-price (tracking) game",
        description="Solve the regulated-price game of CONFIG.toml (slides, equation (11) "
        "with a control cost): the target's range and whether it stays in the band, the "
        "equilibrium costs, the best-response gaps, the stationary variances and a Monte "
        "Carlo of the regulated and uncontrolled prices. Or, with --prices, continue a real "
        "market price after --until with and without the regulating strategy.",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="game configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write report.json and figures to DIR (with --prices: default "
        "out/regulate_<file>_<date>)",
    )
    p.add_argument(
        "--paths", type=integer(1, 10**7), default=None, help="Monte Carlo paths (override)"
    )
    p.add_argument(
        "--steps", type=integer(1, 10**6), default=None, help="Monte Carlo grid steps (override)"
    )
    m = p.add_argument_group(
        "real-market continuation",
        "Instead of CONFIG.toml: fit the uncontrolled dynamics to a price history (the "
        "calibration's reduced form), set the band from its quantiles and continue it after "
        "--until with and without the regulating strategy.",
    )
    m.add_argument("--prices", metavar="DATA.csv", help="price history (hourly CSV)")
    m.add_argument(
        "--until", type=iso_date, metavar="DATE", help="last date of the history (yyyy-mm-dd)"
    )
    m.add_argument(
        "--horizon", type=integer(1, 17568), metavar="H", help="continuation length in hours"
    )
    m.add_argument(
        "--fit-days",
        type=real(28, 36600),
        default=365.0,
        help="fitting window before --until (365)",
    )
    m.add_argument(
        "--band-quantiles",
        type=real(0, 1, open_lo=True),
        nargs=2,
        default=(0.1, 0.9),
        metavar=("LO", "HI"),
        help="band = these quantiles of the recent history (0.1 0.9)",
    )
    m.add_argument(
        "--band-days", type=real(1, 36600), default=365.0, help="history window of the band (365)"
    )
    m.add_argument("--q", type=real(0, 1e12), default=1.0, help="weight of the price variance (1)")
    m.add_argument(
        "--r", type=real(0, 1e12, open_lo=True), default=0.01, help="weight of the control (0.01)"
    )
    m.add_argument("--seed", type=integer(0, 2**63 - 1), default=0, help="Monte Carlo seed (0)")
    m.add_argument("--quiet", action="store_true", help="no progress bars")
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


def _write(final: str, rep: dict, game) -> None:
    with output_folder(final) as out:
        _write_into(out, rep, game)


def _write_into(out: str, rep: dict, game) -> None:
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


def _continuation(args: argparse.Namespace) -> int:
    from ..calibration import default_checkpoint, load_prices, PriceCalibrator

    for flag in ("until", "horizon"):
        if getattr(args, flag) is None:
            raise UsageError(f"--prices needs --{flag}")
    if args.steps is not None:
        raise UsageError("--steps does not apply to --prices (the grid is the data's step)")
    if not 1 <= args.horizon <= 17568:
        raise UsageError(f"--horizon must be in [1, 17568] hours, got {args.horizon}")
    paths = 2000 if args.paths is None else args.paths
    if not 1 <= paths <= 10**6:
        raise UsageError(f"--paths must be in [1, 1000000], got {paths}")
    checks = {"--fit-days": (args.fit_days, 28, 36600), "--band-days": (args.band_days, 1, 36600)}
    for flag, (v, lo, hi) in checks.items():
        if not lo <= v <= hi:
            raise UsageError(f"{flag} must be in [{lo}, {hi}] days, got {v:g}")
    qlo, qhi = args.band_quantiles
    if not 0 < qlo < qhi < 1:
        raise UsageError(f"--band-quantiles must satisfy 0 < LO < HI < 1, got {qlo:g} {qhi:g}")
    if not (args.q >= 0 and np.isfinite(args.q)):
        raise UsageError(f"--q must be finite and >= 0, got {args.q:g}")
    if not (args.r > 0 and np.isfinite(args.r)):
        raise UsageError(f"--r must be finite and > 0, got {args.r:g}")
    if not 0 <= args.seed < 2**63:
        raise UsageError(f"--seed must be in [0, 2^63), got {args.seed}")
    try:
        until = np.datetime64(str(args.until), "D")
    except ValueError:
        raise UsageError(f"--until must be an ISO date yyyy-mm-dd, got {args.until!r}") from None
    series = load_prices(args.prices)
    if series.dt_hours > 1.0:
        raise UsageError(
            f"--prices needs hourly (or finer) prices; {args.prices} has a step of "
            f"{series.dt_hours:g} hours"
        )
    if not series.times[0] < until.astype("datetime64[s]") + 86399 <= series.times[-1]:
        raise UsageError(
            f"--until {args.until} is outside {args.prices} (it covers {series.times[0]} to "
            f"{series.times[-1]})"
        )
    costs = tracking.Costs(
        q=args.q, qbar=0.0, q_terminal=0.0, qbar_terminal=0.0, r=args.r, rbar=0.0
    )
    cal = PriceCalibrator(model="mrjd", harmonics=4, jumps="common")
    history = series.between(None, str(until))
    fit_start = history.times[-1] - np.timedelta64(int(round(args.fit_days * 86400)), "s")
    ck = None
    if fit_start >= series.times[0]:
        ck = default_checkpoint(history.between(fit_start + np.timedelta64(1, "s"), None), cal)
    res = tracking.continue_market(
        series,
        str(until),
        args.horizon,
        fit_days=args.fit_days,
        band_quantiles=(qlo, qhi),
        band_days=args.band_days,
        costs=costs,
        n_paths=paths,
        seed=args.seed,
        calibrator=cal,
        checkpoint=ck,
        progress=not (args.quiet or args.json),
    )
    rep = res.report()
    stem = os.path.splitext(os.path.basename(args.prices))[0]
    out = args.out or os.path.join("out", f"regulate_{stem}_{until}")
    rep["figure"] = os.path.join(out, "continuation.png")
    rep["quantiles_csv"] = os.path.join(out, "continuation.csv")
    check_finite(rep)
    with output_folder(out) as tmp:
        with open(os.path.join(tmp, "report.json"), "w") as f:
            json.dump(to_jsonable(rep), f, indent=1)
        res.quantile_table().to_csv(os.path.join(tmp, "continuation.csv"))
        tracking.plot_continuation(res, os.path.join(tmp, "continuation.png"))
    if args.json:
        print_json(rep)
        return 0
    print(
        f"{stem}: fit {rep['fit_start']} to {rep['fit_end']} (reduced form, "
        f"{'converged' if rep['fit_converged'] else 'NOT converged'}), continued "
        f"{args.horizon} h"
    )
    print(
        f"  band [{rep['band_lo']:.4g}, {rep['band_hi']:.4g}] ({qlo:g}-{qhi:g} quantiles of "
        f"the last {args.band_days:g} days), target in [{rep['target_min']:.4g}, "
        f"{rep['target_max']:.4g}]"
    )
    print(
        f"  variance at the horizon: {rep['variance_t1_uncontrolled']:.4g} uncontrolled, "
        f"{rep['variance_t1_regulated']:.4g} regulated (reduction "
        f"{100 * rep['variance_reduction_t1']:.1f}%, over the horizon "
        f"{100 * rep['variance_reduction_mean']:.1f}%)"
    )
    line = (
        f"  time inside the band: {100 * rep['fraction_inside_band_uncontrolled']:.1f}% "
        f"uncontrolled, {100 * rep['fraction_inside_band_regulated']:.1f}% regulated"
    )
    if "fraction_inside_band_realised" in rep:
        line += f", {100 * rep['fraction_inside_band_realised']:.1f}% realised"
    print(line)
    print(
        f"  control cost {rep['control_cost']:.4g} +- {rep['control_cost_stderr']:.2g}, "
        f"optimality gap {rep['optimality_gap']:.2g}"
    )
    print(f"  wrote {out}/report.json, continuation.png, continuation.csv")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.prices is not None:
        if args.config is not None:
            raise UsageError("give CONFIG.toml or --prices DATA.csv, not both")
        return _continuation(args)
    if args.config is None:
        raise UsageError("give CONFIG.toml or --prices DATA.csv --until DATE --horizon H")
    for flag in ("until", "horizon"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} needs --prices")
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
    check_finite(rep)
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
