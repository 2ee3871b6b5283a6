"""Calibration timings: end to end on Nord Pool, the two filters, and against SciPy.

1. End to end: `calibration_report` (the equilibrium and MRJD fits, their Hessians, the
   report) on Nord Pool, train 2013-2016, test 2017, called twice in one process: the
   second call is the run time, the first minus the second the compile time; the run is
   split into L-BFGS iterations and Hessians, and XLA's compile seconds are counted
   (`jax.monitoring`).
2. The sequential filter (`lax.scan`) against the parallel one (associative scans,
   `filter="parallel"`): the loss and the loss with its forward-mode gradient (the
   calibration's) at the moment-estimate start, on 1 to 6 years of hourly Nord Pool prices
   (the series tiled past its end), with their largest relative differences.
3. One year: both minimise the same jitted negative log-likelihood (float64, same data, same start):

- mftg_jax: `calibrate` (L-BFGS from optimistix in Hessian-whitened coordinates,
  forward-mode gradients), compile time measured apart (first call minus a second, cached
  call);
- SciPy: `scipy.optimize.minimize(method="L-BFGS-B")` with finite-difference gradients
  (its default when no gradient is given) on the same jitted loss.

Usage: `python benchmarks/calibration.py [--data FILE] [--year 2016] [--years 1,2,3,4,5,6]
[--quick] [--json]`; `--quick` times the filters on 1 and 2 years and skips SciPy. The data
default is `$MFTG_DATA_DIR/epftoolbox_NP.csv` (else `../shared/data/`).
"""

import argparse
import collections
import json
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.optimize  # noqa: E402

import mftg_jax  # noqa: E402
from mftg_jax.calibration import (  # noqa: E402
    _optimiser,  # noqa: E402
    calibrate,
    calibration_report,
    load_prices,
    negative_log_likelihood,
    PriceCalibrator,
    split_series,
)

_COMPILE = [0, 0.0]


def _on_duration(event, seconds, **kw):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILE[0] += 1
        _COMPILE[1] += seconds


jax.monitoring.register_event_duration_secs_listener(_on_duration)


def _timed_programs() -> dict:
    """Time the calibration's L-BFGS iterations and Hessians (wall, blocked)."""
    timers = collections.defaultdict(lambda: [0, 0.0])
    for name in ("lbfgs_iteration", "hessian"):
        f = getattr(_optimiser.Programs, name)

        def timed(*a, f=f, name=name, **k):
            t0 = time.perf_counter()
            out = jax.block_until_ready(f(*a, **k))
            timers[name][0] += 1
            timers[name][1] += time.perf_counter() - t0
            return out

        setattr(_optimiser.Programs, name, timed)
    return timers


def end_to_end(path: str) -> dict:
    """`calibration_report` on Nord Pool 2013-16 / 2017, cold then warm."""
    series = load_prices(path)
    split = split_series(series, None, "2016-12-31", "2017-01-01", "2017-12-31")
    timers = _timed_programs()
    out = {}
    for call in ("cold", "warm"):
        timers.clear()
        _COMPILE[:] = [0, 0.0]
        t0 = time.perf_counter()
        report, fits = calibration_report(split, PriceCalibrator())
        wall = time.perf_counter() - t0
        out[call] = {
            "seconds": wall,
            "xla_compiles": _COMPILE[0],
            "xla_compile_s": _COMPILE[1],
            "lbfgs_iterations": timers["lbfgs_iteration"][0],
            "lbfgs_s": timers["lbfgs_iteration"][1],
            "hessians": timers["hessian"][0],
            "hessian_s": timers["hessian"][1],
            "loss_equilibrium": fits["equilibrium"].loss,
            "loss_mrjd": fits["mrjd"].loss,
            "test_nll_equilibrium": report["nll_test_per_obs"],
        }
        print(
            f"end to end ({call}): {wall:.2f} s; XLA compiled {_COMPILE[0]} programs in "
            f"{_COMPILE[1]:.2f} s; {timers['lbfgs_iteration'][0]} L-BFGS iterations "
            f"{timers['lbfgs_iteration'][1]:.2f} s, {timers['hessian'][0]} Hessians "
            f"{timers['hessian'][1]:.2f} s; loss {fits['equilibrium'].loss:.12f} (MRJD "
            f"{fits['mrjd'].loss:.12f}), test NLL {report['nll_test_per_obs']:.6f}",
            flush=True,
        )
    out["run_s"] = out["warm"]["seconds"]
    out["compile_s"] = out["cold"]["seconds"] - out["warm"]["seconds"]
    print(f"end to end: run {out['run_s']:.2f} s, compile {out['compile_s']:.2f} s apart")
    return out


def _best(f, *args, repeats: int = 3):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*args))
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(*args))
        best = min(best, time.perf_counter() - t0)
    return out, best, first - best


def _filter_programs(param, y, t, name: str):
    """The jitted loss and loss with forward-mode gradient (the calibration's) of one filter."""

    def loss(v):
        m = param.price_model(v)
        return negative_log_likelihood(m, y, t, param.dt, filter=name) / y.shape[0]

    def value_grad(v):
        g, val = jax.jacfwd(lambda x: (lambda a: (a, a))(loss(x)), has_aux=True)(v)
        return val, g

    return jax.jit(loss), jax.jit(value_grad)


def filters(path: str, years: list[int], repeats: int = 3) -> list[dict]:
    """Sequential against parallel filter, loss and loss + forward-mode gradient."""
    full = load_prices(path)
    rows = []
    for n_years in years:
        T = 8760 * n_years
        reps = -(-T // len(full))
        y = jnp.asarray(np.tile(np.asarray(full.prices), reps)[:T])
        t = jnp.arange(T, dtype=float) * full.dt_hours
        series = full.between(str(full.times[0])[:10], str(full.times[min(T, len(full)) - 1]))
        param = PriceCalibrator().parametrisation(series)
        u = jnp.asarray(param.initial(np.asarray(y), np.asarray(t)))
        row = {"years": n_years, "hours": T}
        res = {}
        for name in ("sequential", "parallel"):
            loss, value_grad = _filter_programs(param, y, t, name)
            val, tv, cv = _best(loss, u, repeats=repeats)
            (_, g), tg, cg = _best(value_grad, u, repeats=repeats)
            res[name] = (float(val), np.asarray(g))
            row |= {f"{name}_value_s": tv, f"{name}_value_grad_s": tg}
            row |= {f"{name}_compile_s": cv + cg}
        row["value_rel_diff"] = abs(res["parallel"][0] - res["sequential"][0]) / abs(
            res["sequential"][0]
        )
        gs, gp = res["sequential"][1], res["parallel"][1]
        row["grad_rel_diff"] = float(np.max(np.abs(gp - gs)) / np.max(np.abs(gs)))
        print(
            f"{n_years} year(s), {T} hours: sequential {row['sequential_value_s']:.4f} s "
            f"(+grad {row['sequential_value_grad_s']:.4f} s), parallel "
            f"{row['parallel_value_s']:.4f} s (+grad {row['parallel_value_grad_s']:.4f} s); "
            f"parallel / sequential {row['parallel_value_s'] / row['sequential_value_s']:.1f}x"
            f" / {row['parallel_value_grad_s'] / row['sequential_value_grad_s']:.1f}x; "
            f"relative differences {row['value_rel_diff']:.1e} (value), "
            f"{row['grad_rel_diff']:.1e} (gradient)",
            flush=True,
        )
        rows.append(row)
    return rows


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.environ.get("MFTG_DATA_DIR", os.path.join(here, "..", "..", "shared", "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(default_dir, "epftoolbox_NP.csv"))
    ap.add_argument("--year", default="2016")
    ap.add_argument("--harmonics", type=int, default=4)
    ap.add_argument("--years", default="1,2,3,4,5,6", help="years of hourly data for the filters")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls (best kept) per filter")
    ap.add_argument("--quick", action="store_true", help="filters on 1 and 2 years, no SciPy")
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end run")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args()

    print(f"device: {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()})")
    print(
        f"jax {jax.__version__}, scipy {scipy.__version__}, mftg_jax {mftg_jax.__version__}, "
        f"numpy {np.__version__}"
    )
    print(f"load average: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    summary = {}
    if not args.no_end_to_end:
        summary["end_to_end"] = end_to_end(args.data)
    years = [1, 2] if args.quick else [int(v) for v in args.years.split(",")]
    summary["filters"] = filters(args.data, years, args.repeats)
    if args.quick:
        if args.json:
            print(json.dumps(summary))
        return
    series = load_prices(args.data).between(f"{args.year}-01-01", f"{args.year}-12-31")
    print(f"data: {args.data}, {len(series)} hours of {args.year}")
    cal = PriceCalibrator(harmonics=args.harmonics)

    t0 = time.perf_counter()
    first = calibrate(series, cal, stderr=False)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = calibrate(series, cal, stderr=False)
    t_jax = time.perf_counter() - t0
    print(
        f"mftg_jax: loss {res.loss:.10f}, {res.iterations} iterations, converged "
        f"{res.converged}; run {t_jax:.2f} s, compile {t_first - t_jax:.2f} s"
    )
    assert np.allclose(first.u, res.u)

    param = cal.parametrisation(series)
    y = jnp.asarray(series.prices)
    t = jnp.asarray(series.hours())
    n = y.shape[0]
    loss = jax.jit(lambda u: negative_log_likelihood(param.price_model(u), y, t, param.dt) / n)
    u0 = param.initial(series.prices, series.hours())
    f = lambda u: float(loss(jnp.asarray(u)))  # noqa: E731
    f(u0)  # compile apart
    counter = {"n": 0}

    def counted(u):
        counter["n"] += 1
        return f(u)

    t0 = time.perf_counter()
    sp = scipy.optimize.minimize(counted, u0, method="L-BFGS-B", options={"maxiter": 5000})
    t_scipy = time.perf_counter() - t0
    print(
        f"scipy L-BFGS-B (finite differences): loss {sp.fun:.10f}, {sp.nit} iterations, "
        f"{counter['n']} loss evaluations, success {sp.success} ({sp.message}); {t_scipy:.2f} s"
    )
    rel = abs(sp.fun - res.loss) / abs(res.loss)
    print(f"relative difference of the optima: {rel:.2e} (same optimum to 1e-4: {rel <= 1e-4})")
    print(f"speed-up (scipy time / mftg_jax run time): {t_scipy / t_jax:.1f}x")
    if args.json:
        print(
            json.dumps(
                summary
                | {
                    "hours": len(series),
                    "jax_run_s": t_jax,
                    "jax_compile_s": t_first - t_jax,
                    "jax_iterations": res.iterations,
                    "jax_loss": res.loss,
                    "scipy_s": t_scipy,
                    "scipy_iterations": int(sp.nit),
                    "scipy_evaluations": counter["n"],
                    "scipy_loss": float(sp.fun),
                    "relative_difference": rel,
                    "speedup": t_scipy / t_jax,
                }
            )
        )


if __name__ == "__main__":
    main()
