"""`mftg calibrate`: fit the price game to a price series and compare it with baselines."""

import argparse
import json
import os
import sys

import numpy as np

from ..calibration import (
    calibration_report,
    check_fitted_level,
    check_series,
    default_checkpoint,
    load_prices,
    PriceCalibrator,
    split_series,
    StructuralDefaults,
)
from ..price import game_to_toml
from ._args import integer, iso_date, real
from ._common import check_finite, output_folder, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit the price game to a price series",
        description="Fit the equilibrium price of the price game (two mean-reverting factors, "
        "seasonal demand intercept, jumps) to a price series by maximum likelihood, with "
        "Hessian standard errors, and compare one-step-ahead test NLLs with a reduced-form "
        "mean-reverting jump diffusion and a Gaussian AR(1). Time unit: hours. Prices alone "
        "identify eta, K = sum_j k_j, the effective intercept and the noise; n, lam, c and "
        "the r/rbar split are fixed (--producers, --discount, --cost, --r-share). "
        "Interrupted runs resume from a checkpoint when the same command is repeated.",
    )
    p.add_argument(
        "data",
        metavar="DATA.csv",
        help="price series (epftoolbox, ENTSO-E or timestamp,price layout)",
    )
    p.add_argument("--price-column", metavar="NAME", help="price column (default: by name)")
    p.add_argument(
        "--repair",
        action="store_true",
        help="repair malformed rows, duplicates and gaps instead of rejecting them",
    )
    for which in ("train", "test"):
        for end in ("start", "end"):
            p.add_argument(
                f"--{which}-{end}", type=iso_date, metavar="D", help=f"{which} period {end} date"
            )
    p.add_argument(
        "--harmonics",
        type=integer(0, 12),
        default=4,
        metavar="K",
        help="daily and weekly Fourier harmonics of the seasonal level (default 4)",
    )
    p.add_argument(
        "--jumps",
        default="common",
        choices=("common", "idiosyncratic", "both", "none"),
        help="which factor jumps (default: common)",
    )
    p.add_argument("--starts", type=integer(1, 100), default=1, help="number of optimiser starts")
    p.add_argument(
        "--max-iter", type=integer(1, 100_000), default=500, help="L-BFGS iterations per start"
    )
    p.add_argument(
        "--producers", type=integer(1, 10**6), default=1, help="n identical producers (fixed)"
    )
    p.add_argument("--discount", type=real(0, 10), default=0.0, help="lam per hour (fixed)")
    p.add_argument("--cost", type=real(-1e9, 1e9), default=0.0, help="linear cost c (fixed)")
    p.add_argument(
        "--r-share", type=real(0, 1, open_lo=True), default=0.5, help="r / (r + rbar) (fixed)"
    )
    p.add_argument(
        "--horizon",
        type=real(0, 1e6, open_lo=True),
        default=672.0,
        help="t1 - t0 of the written game, hours (default 672)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="checkpoint folder (default: a folder in the temporary directory; never OUT)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--out", metavar="DIR", help="write game.toml, report.json and the plots into DIR"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    series = load_prices(args.data, price_column=args.price_column, repair=args.repair)
    for msg in series.repairs:
        print(f"mftg calibrate: repaired: {msg}", file=sys.stderr)
    split = split_series(series, args.train_start, args.train_end, args.test_start, args.test_end)
    cal = PriceCalibrator(
        harmonics=args.harmonics,
        jumps=args.jumps,
        starts=args.starts,
        max_iter=args.max_iter,
        defaults=StructuralDefaults(
            n=args.producers,
            lam=args.discount,
            c=args.cost,
            r_share=args.r_share,
            horizon=args.horizon,
        ),
    )
    # Data that cannot identify the model are refused before anything is compiled.
    n_params = cal.parametrisation(split.train).size
    check_series(split.train, n_params)
    if split.test is not None and len(split.test) < 2:
        raise ValueError(f"{args.data}: the test period has {len(split.test)} observation(s)")
    ck = args.checkpoint or os.path.dirname(default_checkpoint(split.train, cal))
    report, fits = calibration_report(split, cal, checkpoint_dir=ck, progress=not args.quiet)
    check_fitted_level(
        float(report["implied"]["stationary_price"]), split.train, "stationary price"
    )
    check_fitted_level(float(report["params"]["level"]), split.train, "seasonal level")
    if report["hessian_singular"]:
        # Not identified at this optimum: no standard error (null), said so in the report.
        for k in ("stderr", "implied_stderr"):
            report[k] = {n: _or_none(v) for n, v in report[k].items()}
        report["mrjd"]["stderr"] = {n: _or_none(v) for n, v in report["mrjd"]["stderr"].items()}
    check_finite(report)
    if args.out:
        from ..calibration import plot_calibration

        with output_folder(args.out) as tmp:
            with open(os.path.join(tmp, "game.toml"), "w") as f:
                f.write(_toml_header(report) + game_to_toml(fits["equilibrium"].game()))
            with open(os.path.join(tmp, "report.json"), "w") as f:
                json.dump(to_jsonable(report), f, indent=1)
            plot_calibration(fits["equilibrium"], split, tmp)
    if args.json:
        print_json(report)
        return 0
    _print_text(report)
    return 0


def _or_none(v):
    a = np.asarray(v, dtype=float) if v is not None else None
    return None if a is None or not np.all(np.isfinite(a)) else v


def _se(v) -> str:
    return f"{'n/a':>12s}" if v is None else f"{float(v):12.3g}"


def _toml_header(report: dict) -> str:
    d = report["data"]
    return (
        f"# Fitted to {d['file']} ({d['column']}), training {d['train'][0]} to "
        f"{d['train'][1]}.\n# Time unit: hours; t = 0 is {d['time_origin']}.\n"
    )


def _print_text(rep: dict) -> None:
    d = rep["data"]
    print(
        f"Data: {d['file']} ({d['column']}), {d['n_train']} training hours "
        f"{d['train'][0]} .. {d['train'][1]}"
        + (f", {d['n_test']} test hours {d['test'][0]} .. {d['test'][1]}" if d["test"] else "")
    )
    print(
        f"Converged: {rep['converged']} ({rep['convergence']}), {rep['iterations']} "
        f"iterations, {rep['seconds']:.1f} s"
    )
    print("Identified quantities (per hour)      value        stderr")
    for k in ("eta", "K", "level", "sigma_o", "sigma"):
        print(f"  {k:34s} {float(rep['params'][k]):12.6g} {_se(rep['stderr'][k])}")
    for k, v in rep["params"].items():
        if "jump" in k:
            print(f"  {k:34s} {float(v):12.6g} {_se(rep['stderr'][k])}")
    print("Implied")
    for k, v in rep["implied"].items():
        print(f"  {k:34s} {float(v):12.6g} {_se(rep['implied_stderr'][k])}")
    print("Negative log-likelihood per observation      train        test")
    for name, key in (("equilibrium", ""), ("MRJD", "mrjd_"), ("AR(1)", "baseline_")):
        tr = rep[f"{key}nll_train_per_obs"]
        te = rep[f"{key}nll_test_per_obs"]
        te_s = "-" if te is None else f"{te:.5f}"
        print(f"  {name:38s} {tr:10.5f} {te_s:>11s}")
    if rep["hessian_singular"]:
        print("warning: singular Hessian; some standard errors are not available (n/a)")
