"""`mftg forecast`: probabilistic price forecasts from a fit folder, scored against baselines."""

import argparse
import json
import os

import numpy as np

from ..calibration import forecast, load_fit, plot_forecast
from ._args import integer, iso_date, real
from ._common import check_finite, output_folder, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast prices from a fit folder (mftg calibrate --out)",
        description="Forecast the price H hours from --from by the fitted game: the state "
        "(phat, p - phat) at the start is filtered from the prices before it (its mean and "
        "covariance are the initial law), the seasonal intercept continues, and the producers "
        "follow the stationary equilibrium feedback, with the fitted noise and jumps on the "
        "Monte Carlo engine. Baselines from the same fit: seasonal naive (the price a week "
        "earlier plus a training weekly difference), AR(1), the MRJD from its filtered state, "
        "and a seasonal ARIMA (1,0,1)x(1,1,1,24) on the last four weeks (statsmodels, the "
        "'peers' extra). Where realised prices exist each forecast is scored: CRPS, pinball "
        "loss over the quantile levels, coverage of the 50% and 90% central intervals. "
        "Time unit: hours.",
    )
    p.add_argument("fit", metavar="FIT_DIR", help="fit folder written by mftg calibrate --out")
    p.add_argument(
        "--from",
        dest="start",
        type=iso_date,
        metavar="DATE",
        help="first forecast time, yyyy-mm-dd[ HH:MM] (default: the fit's game origin)",
    )
    p.add_argument(
        "--horizon", type=integer(1, 8760), default=168, metavar="H", help="hours (default 168)"
    )
    p.add_argument(
        "--paths", type=integer(4, 10**6), default=4000, help="Monte Carlo paths (default 4000)"
    )
    p.add_argument(
        "--quantiles",
        type=real(0, 1, open_lo=True),
        nargs="+",
        metavar="Q",
        default=None,
        help="quantile levels in (0, 1) (default: 0.05 0.1 0.25 0.5 0.75 0.9 0.95)",
    )
    p.add_argument(
        "--data", metavar="FILE", help="price file (default: the fit's data file, same column)"
    )
    p.add_argument("--seed", type=integer(0, 2**31 - 1), default=0, help="random seed")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write fan_chart.png, quantiles.csv, quantiles.parquet and scores.json into DIR",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _check_levels(q: list[float] | None) -> dict:
    if q is None:
        return {}
    lv = sorted(set(q))
    if any(v >= 1 for v in lv):
        raise ValueError(f"--quantiles must be levels in (0, 1), got {q}")
    return {"quantiles": lv}


def run(args: argparse.Namespace) -> int:
    levels = _check_levels(args.quantiles)
    fit = load_fit(args.fit)
    series = fit.series(args.data)
    start = args.start or fit.start
    res = forecast(fit, series, start, args.horizon, paths=args.paths, seed=args.seed, **levels)
    out = _summary(args, fit, res)
    check_finite(out)
    if args.out:
        df = res.to_pandas()
        with output_folder(args.out) as tmp:
            df.to_csv(os.path.join(tmp, "quantiles.csv"), index_label="time")
            df.to_parquet(os.path.join(tmp, "quantiles.parquet"))
            with open(os.path.join(tmp, "scores.json"), "w") as f:
                json.dump(to_jsonable(out), f, indent=1)
            lo = max(0, int(np.searchsorted(series.times, res.start)) - 72)
            i = int(np.searchsorted(series.times, res.start))
            hist = (series.times[lo:i], series.prices[lo:i])
            plot_forecast(res, os.path.join(tmp, "fan_chart.png"), history=hist)
        out["files"] = [
            os.path.join(os.path.abspath(args.out), n)
            for n in ("fan_chart.png", "quantiles.csv", "quantiles.parquet", "scores.json")
        ]
    if args.json:
        print_json(out)
        return 0
    _print_text(out)
    return 0


def _summary(args, fit, res) -> dict:
    st = res.state
    return {
        "fit": fit.folder,
        "data": fit.data["file"] if args.data is None else os.path.abspath(args.data),
        "start": str(res.start),
        "horizon_hours": int(args.horizon),
        "paths": res.paths,
        "scenarios": res.n_common,
        "seed": res.seed,
        "quantile_levels": res.quantile_levels,
        "initial_state": {
            "phat0_mean": st.mean[0],
            "deviation_mean": st.mean[1],
            "cov": st.cov,
            "seasonal_level": st.seasonal,
            "last_observed": str(st.last_observed),
            "prediction_steps": st.steps,
        },
        "realised_hours": int(np.isfinite(res.realised).sum()),
        "scores": res.scores_table(),
        "skipped": dict(res.skipped),
    }


def _print_text(out: dict) -> None:
    st = out["initial_state"]
    print(
        f"Forecast from {out['start']} for {out['horizon_hours']} h, {out['paths']} paths "
        f"({out['scenarios']} common-noise scenarios)"
    )
    sd = np.sqrt(np.diag(np.asarray(st["cov"])))
    print(
        f"State at the start (filtered to {st['last_observed']}, {st['prediction_steps']} "
        f"prediction step(s)): phat = {st['phat0_mean']:.4g} +- {sd[0]:.3g}, p - phat = "
        f"{st['deviation_mean']:.4g} +- {sd[1]:.3g}; seasonal level {st['seasonal_level']:.4g}"
    )
    if not out["scores"]:
        print("No realised prices in the forecast window: nothing scored.")
    else:
        print(f"Scores over {out['realised_hours']} realised hours (lower CRPS/pinball is better)")
        print(
            f"  {'method':16s} {'CRPS':>10s} {'pinball':>10s} {'cover 50%':>10s} {'cover 90%':>10s}"
        )
        for m, s in out["scores"].items():
            print(
                f"  {m:16s} {s['crps']:10.4g} {s['pinball']:10.4g} "
                f"{s['coverage_50']:10.2f} {s['coverage_90']:10.2f}"
            )
    for m, why in out["skipped"].items():
        print(f"  {m}: skipped ({why})")
    for f in out.get("files", []):
        print(f"wrote {f}")
