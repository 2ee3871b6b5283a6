"""Time to calibrate the price game to one year of hourly prices: mftg_jax against SciPy.

Both minimise the same jitted negative log-likelihood (float64, same data, same start):

- mftg_jax: `calibrate` (L-BFGS from optimistix in Hessian-whitened coordinates,
  forward-mode gradients), compile time measured apart (first call minus a second, cached
  call);
- SciPy: `scipy.optimize.minimize(method="L-BFGS-B")` with finite-difference gradients
  (its default when no gradient is given) on the same jitted loss.

Usage: `python benchmarks/calibration.py [--data FILE] [--year 2016]`; the data default is
`$MFTG_DATA_DIR/epftoolbox_NP.csv` (else `../shared/data/`).
"""

import argparse
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
    calibrate,
    load_prices,
    negative_log_likelihood,
    PriceCalibrator,
)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    default_dir = os.environ.get("MFTG_DATA_DIR", os.path.join(here, "..", "..", "shared", "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(default_dir, "epftoolbox_NP.csv"))
    ap.add_argument("--year", default="2016")
    ap.add_argument("--harmonics", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = ap.parse_args()

    print(f"device: {jax.devices()[0].device_kind} ({platform.processor() or platform.machine()})")
    print(
        f"jax {jax.__version__}, scipy {scipy.__version__}, mftg_jax {mftg_jax.__version__}, "
        f"numpy {np.__version__}"
    )
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
                {
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
