"""`mftg scenario N`: one of the slides' scenarios end to end, its figures and costs table."""

import argparse
from pathlib import Path

import jax
import numpy as np

from ..slides import (
    plot_equilibrium,
    plot_scenario_1,
    plot_stationary_comparison,
    prices_against_producers,
    relative_difference,
    run_scenario_1,
    run_scenario_2,
    run_scenario_3,
    save_figure,
    SLIDES_COSTS,
    stationary_vs_cournot,
)
from . import UsageError
from ._args import integer, real
from ._common import check_finite, output_folder, print_json

_SYMMETRIC_TITLE = "n identical producers: c = 5, r = rbar = 2, lam = 0.1, eta = 0.5, a = 10"


def register(sub) -> None:
    p = sub.add_parser(
        "scenario",
        help="run one of the slides' scenarios (1, 2, 3) end to end",
        description="Run one of the slides' simulation scenarios: 1 = uncontrolled price for "
        "several adjustment speeds; 2 = deterministic equilibrium (and the slides' misprinted "
        "gamma(t0) = 0, with its best-response certificate); 3 = noisy equilibrium with "
        "Monte Carlo. Prints the costs table in two conventions: 'costs' = sum of C_i over "
        "1000 equally spaced instants of [t0, t1] (both end points), as in the slides' table; "
        "'cost_integrals' = the time integral of C_i.",
    )
    p.add_argument("number", type=int, metavar="N", help="the scenario: 1, 2 or 3")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write the figures (PNG) into DIR")
    p.add_argument(
        "--paths",
        type=integer(2, 10**7),
        default=4000,
        help="Monte Carlo paths, scenario 3 (default 4000)",
    )
    p.add_argument(
        "--batch",
        type=integer(1, 10**7),
        default=2000,
        help="paths per batch, scenario 3 (default 2000)",
    )
    p.add_argument(
        "--seed", type=integer(0, 2**63 - 1), default=0, help="Monte Carlo seed, scenario 3"
    )
    p.add_argument(
        "--speeds",
        type=real(0, 1e6, open_lo=True),
        nargs="+",
        default=[1.0, 10.0, 100.0],
        help="adjustment speeds s, scenario 1 (default 1 10 100)",
    )
    p.set_defaults(func=run)


def _comparison(ours, slides) -> dict:
    return {"slides": list(slides), "relative_difference": relative_difference(ours, slides)}


def _report_1(args) -> tuple[dict, dict]:
    if any(not s > 0 for s in args.speeds):
        raise UsageError(f"--speeds must be > 0, got {args.speeds}")
    run = run_scenario_1(tuple(args.speeds))
    last = run.times >= run.times[-1] - 0.2
    report = {
        "scenario": 1,
        "speeds": list(run.speeds),
        "p_t1": run.price[:, -1],
        "max_tracking_error_last_period": np.max(
            np.abs(run.price[:, last] - run.target[last]), axis=1
        ),
    }
    return report, {"scenario_1.png": plot_scenario_1(run)}


def _report_2(args) -> tuple[dict, dict]:
    run = run_scenario_2()
    eq, bad = run.equilibrium, run.misprint
    slides = SLIDES_COSTS[2]
    table = stationary_vs_cournot()
    report = {
        "scenario": 2,
        "costs": eq.costs,
        "cost_integrals": eq.cost_integrals,
        "slides_costs": _comparison(eq.costs, slides),
        "nash_gap": eq.nash_gap,
        "mean_p_t1": eq.price[-1],
        "misprint": {
            "costs": bad.costs,
            "cost_integrals": bad.cost_integrals,
            "slides_costs": _comparison(bad.costs, slides),
            "nash_gap": bad.nash_gap,
            "mean_p_t1": bad.price[-1],
        },
        "stationary_vs_cournot": {
            name: {"stationary": row.stationary, "cournot": row.cournot}
            for name, row in table.iterrows()
        },
    }
    figures = {
        "scenario_2.png": plot_equilibrium(
            eq,
            "Scenario 2: deterministic equilibrium (solid); slides' misprint gamma(0) = 0 (dashed)",
            compare=bad,
            compare_label="misprint gamma(0) = 0",
        ),
    }
    return report, figures


def _report_3(args) -> tuple[dict, dict]:
    if args.paths < 2:
        raise UsageError(f"--paths must be >= 2, got {args.paths}")
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    run = run_scenario_3(jax.random.key(args.seed), args.paths, args.batch)
    mc, ex = run.monte_carlo, run.expected
    slides = SLIDES_COSTS[3]
    report = {
        "scenario": 3,
        "n_paths": mc.n_paths,
        "seed": args.seed,
        "costs": mc.costs,
        "costs_stderr": mc.costs_stderr,
        "cost_integrals": mc.cost_integrals,
        "cost_integrals_stderr": mc.cost_integrals_stderr,
        "expected_costs": ex.costs,
        "expected_cost_integrals": ex.cost_integrals,
        "noise_free_costs": run.noise_free_costs,
        "sample_path_costs": mc.sample_costs,
        "slides_costs": _comparison(mc.costs, slides),
        "mean_p_t1": mc.price_mean[-1],
        "stderr_mean_p_t1": mc.price_stderr[-1],
        "expected_p_t1": ex.price[-1],
    }
    figures = {
        "scenario_3.png": plot_equilibrium(
            ex,
            f"Scenario 3: sigma = 1 and jumps; exact expectations, one path and "
            f"{mc.n_paths} Monte Carlo paths",
            monte_carlo=mc,
        )
    }
    return report, figures


def _print_table(report: dict) -> None:
    n = report["scenario"]
    if n == 1:
        print("Scenario 1: uncontrolled price, dp = s (a - D(t) - p) dt")
        print(f"{'speed s':>10} {'p(t1)':>12} {'max |p - (a - D)| over last period':>36}")
        for s, p, e in zip(
            report["speeds"], report["p_t1"], report["max_tracking_error_last_period"], strict=True
        ):
            print(f"{s:>10g} {p:>12.6g} {e:>36.6g}")
        return
    rows = [("costs (sum, 1000 instants)", report["costs"])]
    if n == 3:
        rows.append(("  standard error", report["costs_stderr"]))
        rows.append(("expected (exact)", report["expected_costs"]))
    rows.append(("slides", report["slides_costs"]["slides"]))
    rows.append(("relative difference", report["slides_costs"]["relative_difference"]))
    if n == 2:
        mis = report["misprint"]
        rows.append(("misprint gamma(0)=0", mis["costs"]))
        rows.append(("  relative difference", mis["slides_costs"]["relative_difference"]))
    rows.append(("cost integrals", report["cost_integrals"]))
    if n == 3:
        rows.append(("  standard error", report["cost_integrals_stderr"]))
        rows.append(("expected (exact)", report["expected_cost_integrals"]))
    if n == 2:
        rows.append(("Nash gap", report["nash_gap"]))
        rows.append(("Nash gap, misprint", report["misprint"]["nash_gap"]))
    title = "Scenario 2 (deterministic)" if n == 2 else f"Scenario 3 ({report['n_paths']} paths)"
    print(title)
    print(f"{'':<28}" + "".join(f"{f'C_{i + 1}':>14}" for i in range(len(report["costs"]))))
    for label, values in rows:
        print(f"{label:<28}" + "".join(f"{float(v):>14.6g}" for v in np.asarray(values)))


def run(args: argparse.Namespace) -> int:
    reports = {1: _report_1, 2: _report_2, 3: _report_3}
    if args.number not in reports:
        raise UsageError(f"scenario must be 1, 2 or 3, got {args.number}")
    report, figures = reports[args.number](args)
    if args.out is not None and args.number == 2:
        # The price against the number of producers compiles one program per n: only for
        # the figure.
        numbers = (1, 2, 3, 5, 10, 20, 50, 100)
        pbar, pc = prices_against_producers(numbers)
        figures["stationary_vs_cournot.png"] = plot_stationary_comparison(
            numbers, pbar, pc, _SYMMETRIC_TITLE
        )
    check_finite(report)
    if args.out is not None:
        with output_folder(args.out) as tmp:
            for name, fig in figures.items():
                save_figure(fig, Path(tmp) / name)
        report["figures"] = [str(Path(args.out) / name) for name in figures]
    if args.json:
        print_json(report)
    else:
        _print_table(report)
        for path in report.get("figures", []):
            print(f"wrote {path}")
    return 0
