"""`mftg calibrate`: fit the price game to a price series and compare it with baselines."""

import argparse
import json
import os
import sys

from ..calibration import (
    calibration_report,
    default_checkpoint,
    load_prices,
    PriceCalibrator,
    split_series,
    StructuralDefaults,
)
from ..price import game_to_toml
from ._common import print_json, to_jsonable


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
            p.add_argument(f"--{which}-{end}", metavar="D", help=f"{which} period {end} date")
    p.add_argument(
        "--harmonics",
        type=int,
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
    p.add_argument("--starts", type=int, default=1, help="number of optimiser starts")
    p.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations per start")
    p.add_argument("--producers", type=int, default=1, help="n identical producers (fixed)")
    p.add_argument("--discount", type=float, default=0.0, help="lam per hour (fixed)")
    p.add_argument("--cost", type=float, default=0.0, help="linear cost c (fixed)")
    p.add_argument("--r-share", type=float, default=0.5, help="r / (r + rbar) (fixed)")
    p.add_argument(
        "--horizon",
        type=float,
        default=672.0,
        help="t1 - t0 of the written game, hours (default 672)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="checkpoint folder (default: OUT, else a folder in the temp dir)",
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
    ck = args.checkpoint or args.out or os.path.dirname(default_checkpoint(split.train, cal))
    report, fits = calibration_report(split, cal, checkpoint_dir=ck, progress=not args.quiet)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "game.toml"), "w") as f:
            f.write(_toml_header(report) + game_to_toml(fits["equilibrium"].game()))
        with open(os.path.join(args.out, "report.json"), "w") as f:
            json.dump(to_jsonable(report), f, indent=1)
        from ..calibration import plot_calibration

        plot_calibration(fits["equilibrium"], split, args.out)
    if args.json:
        print_json(report)
        return 0
    _print_text(report)
    return 0


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
        print(f"  {k:34s} {float(rep['params'][k]):12.6g} {float(rep['stderr'][k]):12.3g}")
    for k, v in rep["params"].items():
        if "jump" in k:
            print(f"  {k:34s} {float(v):12.6g} {float(rep['stderr'][k]):12.3g}")
    print("Implied")
    for k, v in rep["implied"].items():
        print(f"  {k:34s} {float(v):12.6g} {float(rep['implied_stderr'][k]):12.3g}")
    print("Negative log-likelihood per observation      train        test")
    for name, key in (("equilibrium", ""), ("MRJD", "mrjd_"), ("AR(1)", "baseline_")):
        tr = rep[f"{key}nll_train_per_obs"]
        te = rep[f"{key}nll_test_per_obs"]
        te_s = "-" if te is None else f"{te:.5f}"
        print(f"  {name:38s} {tr:10.5f} {te_s:>11s}")
    if rep["hessian_singular"]:
        print("warning: singular Hessian; some standard errors are NaN")
