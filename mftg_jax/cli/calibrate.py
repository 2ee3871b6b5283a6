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
    mrjd_calibrator,
    PriceCalibrator,
    remove_stages,
    split_series,
    StructuralDefaults,
    write_fit_folder,
)
from . import UsageError
from ._args import integer, iso_date, real
from ._common import check_finite, output_folder, print_json, to_jsonable
from ._errors import describe, EXIT_INPUT

_FLAGS = {
    "train_start": "--train-start",
    "train_end": "--train-end",
    "test_start": "--test-start",
    "test_end": "--test-end",
}

DEFAULT_TEST_WINDOW = (
    "Windows (ISO dates yyyy-mm-dd or yyyy-mm-dd HH:MM, inclusive; a bare end date covers its "
    "whole day; a window outside the data is an error, not clipped): training from "
    "--train-start (default: the first observation) to --train-end (default: the hour "
    "before --test-start, else the last observation); test from --test-start (default: the "
    "hour after training) to --test-end (default: one year after the test start, cut at the "
    "end of the data). With none of --train-end, --test-start, --test-end everything is "
    "training and there is no test period."
)


def _structural_text() -> str:
    d = StructuralDefaults().values()
    return (
        "Structural defaults, fixed and not fitted (prices identify eta, K = sum_j k_j, the "
        "effective intercept and the noise, not these): "
        f"n = {d['n']} identical producer(s) (--producers), lam = {d['lam']:g} per hour "
        f"(--discount), c = {d['c']:g} (--cost), r/(r + rbar) = {d['r_share']:g} "
        f"(--r-share), terminal weight q = {d['q']:g}; they are written into game.toml as "
        "comments."
    )


def register(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit the price game to a price series",
        description="Fit the equilibrium price of the price game (two mean-reverting factors, "
        "seasonal demand intercept, jumps) to a price series by maximum likelihood, with "
        "Hessian standard errors, and compare it with a reduced-form mean-reverting jump "
        "diffusion (MRJD) and a Gaussian AR(1): one-step-ahead test NLLs, AIC and BIC. Time "
        "unit: hours. " + _structural_text() + " " + DEFAULT_TEST_WINDOW + " Interrupted "
        "runs resume when the same command is repeated, from the last finished stage "
        "(equilibrium fit, MRJD fit, standard errors, report) and iteration; the fits are "
        "kept in the checkpoint folder until every output is written.",
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
    helps = {
        "train-start": "first training date (default: the first observation)",
        "train-end": "last training date (default: before --test-start, else the last one)",
        "test-start": "first test date (default: the hour after training)",
        "test-end": "last test date (default: one year after the test start)",
    }
    for which in ("train", "test"):
        for end in ("start", "end"):
            p.add_argument(
                f"--{which}-{end}", type=iso_date, metavar="DATE", help=helps[f"{which}-{end}"]
            )
    p.add_argument(
        "--from",
        dest="from_date",
        type=iso_date,
        metavar="DATE",
        help="time origin and initial state of the written game.toml (its state filtered "
        "from the prices before DATE; default: the hour after training)",
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
    d = StructuralDefaults().values()
    p.add_argument(
        "--producers",
        type=integer(1, 10**6),
        default=d["n"],
        help=f"n identical producers (fixed, not fitted; default {d['n']})",
    )
    p.add_argument(
        "--discount",
        type=real(0, 10),
        default=d["lam"],
        help=f"lam per hour (fixed, not fitted; default {d['lam']:g})",
    )
    p.add_argument(
        "--cost",
        type=real(-1e9, 1e9),
        default=d["c"],
        help=f"linear cost c (fixed, not fitted; default {d['c']:g})",
    )
    p.add_argument(
        "--r-share",
        type=real(0, 1, open_lo=True),
        default=d["r_share"],
        help=f"r / (r + rbar) (fixed, not fitted; default {d['r_share']:g})",
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
        "--out",
        metavar="DIR",
        help="write the fit folder (fit.json, game.toml), report.json and the plots into DIR",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    series = load_prices(args.data, price_column=args.price_column, repair=args.repair)
    for msg in series.repairs:
        print(f"mftg calibrate: repaired: {msg}", file=sys.stderr)
    split = split_series(
        series, args.train_start, args.train_end, args.test_start, args.test_end, labels=_FLAGS
    )
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
    _check_from(args.from_date, split)
    if not args.json:
        print(_windows(split), flush=True)
    ck = args.checkpoint or os.path.dirname(default_checkpoint(split.train, cal))
    report, fits = calibration_report(
        split, cal, checkpoint_dir=ck, progress=not args.quiet, keep_stages=True
    )
    try:
        written = _outputs(args, report, fits, split, series)
    except Exception as e:
        code, msg = describe(e, args)
        where = f"the fitted models are kept in {ck} (the same command resumes from them)"
        if args.out and os.path.exists(os.path.join(args.out, "fit.json")):
            where = f"the fit is written to {os.path.join(args.out, 'fit.json')}; " + where
        kind = UsageError if code == EXIT_INPUT else RuntimeError
        raise kind(f"{msg}; {where}") from e
    remove_stages(ck, split.train, (cal, mrjd_calibrator(cal)))
    if args.json:
        print_json(report)
        return 0
    print(fits["equilibrium"].summary())
    for line in written:
        print(line)
    return 0


def _check_from(date, split) -> None:
    """Refuse a bad `--from` before fitting rather than after."""
    if date is None:
        return
    t = np.datetime64(date.replace(" ", "T"), "s")
    first, step = split.train.times[0], split.train.step
    if t <= first:
        raise UsageError(
            f"--from {date} must be after the first training hour {first} (the game's state "
            "is filtered from the prices before it)"
        )
    if (t - first) % step != np.timedelta64(0, "s"):
        raise UsageError(
            f"--from {date} is not on the time grid of the data (step {split.train.dt_hours:g} "
            f"h from {first})"
        )


def _windows(split) -> str:
    tr, te = split.train, split.test
    text = f"Training {tr.times[0]} .. {tr.times[-1]} ({len(tr)} hours); "
    if te is None:
        return text + "no test period"
    return text + f"test {te.times[0]} .. {te.times[-1]} ({len(te)} hours; {split.test_window})"


def _outputs(args, report: dict, fits: dict, split, series) -> list[str]:
    """Write the fit first (before anything that can fail), then check and write the rest;
    the lines to print about what was written."""
    written = []
    if args.out:
        with output_folder(args.out) as tmp:
            state = write_fit_folder(
                tmp,
                report,
                fits,
                split,
                start=args.from_date,
                horizon=args.horizon,
                series=series,
            )
        written.append(
            f"Fit written to {args.out} (fit.json; game.toml from {state.time}, {args.horizon:g} h)"
        )
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
            with open(os.path.join(tmp, "report.json"), "w") as f:
                json.dump(to_jsonable(report), f, indent=1)
            plot_calibration(fits["equilibrium"], split, tmp)
        written.append(f"Report and plots written to {args.out}")
    return written


def _or_none(v):
    a = np.asarray(v, dtype=float) if v is not None else None
    return None if a is None or not np.all(np.isfinite(a)) else v
