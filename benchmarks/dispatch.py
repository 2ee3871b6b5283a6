"""Dispatch speed: 10^5 demand levels in one vectorised call against PyPSA one by one.

    python benchmarks/dispatch.py [--levels 100000] [--pypsa-cases 200] [--quick] [--json]

One fleet of 10 stations (five linear, five quadratic, random costs and capacities) is
dispatched at `--levels` demand levels by `mftg_jax.dispatch.dispatch` (one jitted `vmap`,
float64, compile time reported apart, after `block_until_ready()`), and the first
`--pypsa-cases` of them by PyPSA (one single-snapshot network per case, built and solved by
HiGHS, as a modeller solving cases one at a time would). The ratio is per case. The script
also reports the agreement on the PyPSA cases (largest dispatch difference over the total
capacity, largest relative price difference) and the certificate of the 10^5 solutions.
`--quick`: 10^4 levels and 20 PyPSA cases.
"""

import argparse
import json
import logging
import platform
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mftg_jax import dispatch as dp  # noqa: E402


def fleet(seed=0, m=10):
    rng = np.random.default_rng(seed)
    cap = rng.uniform(20.0, 120.0, m)
    cost = rng.uniform(5.0, 80.0, m)
    quad = np.where(np.arange(m) % 2 == 1, rng.uniform(0.01, 0.2, m), 0.0)
    return dp.Fleet(cap, cost, quad)


def pypsa_one(f, demand):
    import pandas as pd  # noqa: F401
    import pypsa

    n = pypsa.Network()
    n.add("Bus", "bus")
    for k in range(f.m):
        n.add(
            "Generator",
            f"g{k}",
            bus="bus",
            p_nom=float(f.capacity[k]),
            marginal_cost=float(f.cost[k]),
            marginal_cost_quadratic=float(f.quadratic[k]),
        )
    n.add("Load", "load", bus="bus", p_set=float(demand))
    status = n.optimize(
        solver_name="highs",
        include_objective_constant=False,
        log_to_console=False,
        qp_regularization_value=0.0,
        primal_feasibility_tolerance=1e-10,
        dual_feasibility_tolerance=1e-10,
    )
    assert status == ("ok", "optimal"), status
    return (
        n.generators_t.p[[f"g{k}" for k in range(f.m)]].to_numpy()[0],
        float(n.buses_t.marginal_price["bus"].iloc[0]),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--levels", type=int, default=100_000)
    ap.add_argument("--pypsa-cases", type=int, default=200)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.levels, args.pypsa_cases = 10_000, 20
    f = fleet()
    W = float(f.total_capacity)
    rng = np.random.default_rng(1)
    D = jnp.asarray(rng.uniform(0.01, 0.99, args.levels) * W)

    t = time.perf_counter()
    sol = dp.dispatch(f, D)
    sol.price.block_until_ready()
    first = time.perf_counter() - t
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        sol = dp.dispatch(f, D)
        sol.price.block_until_ready()
        runs.append(time.perf_counter() - t)
    run = min(runs)
    cert = dp.certify(f, sol)

    out = {
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "stations": f.m,
        "levels": args.levels,
        "compile_s": first - run,
        "run_s": run,
        "per_level_us": run / args.levels * 1e6,
        "max_kkt_residual": float(cert.kkt_residual.max()),
        "max_duality_gap": float(jnp.abs(cert.duality_gap).max()),
    }
    try:
        import pypsa
    except ImportError:
        out["pypsa"] = "not installed (pip install -e '.[peers]')"
    else:
        pypsa.options.api.legacy_string_dtype = True
        for name in ("pypsa", "linopy"):
            logging.getLogger(name).setLevel(logging.ERROR)
        k = args.pypsa_cases
        ds, ps = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyPSA's deprecation notices, not ours
            pypsa_one(f, float(D[0]))  # warm-up (imports, first solver start)
            t = time.perf_counter()
            for i in range(k):
                s, p = pypsa_one(f, float(D[i]))
                ds.append(s)
                ps.append(p)
            pypsa_s = time.perf_counter() - t
        ours_s = np.asarray(sol.dispatch[:k])
        ours_p = np.asarray(sol.price[:k])
        out.update(
            pypsa_version=pypsa.__version__,
            pypsa_cases=k,
            pypsa_per_case_ms=pypsa_s / k * 1e3,
            ratio_per_case=(pypsa_s / k) / (run / args.levels),
            max_dispatch_diff_over_capacity=float(np.abs(ours_s - np.array(ds)).max() / W),
            max_price_rel_diff=float(np.max(np.abs(ours_p - np.array(ps)) / np.abs(ps))),
        )
    if args.json:
        print(json.dumps(out))
    else:
        for key, v in out.items():
            print(f"{key:>32}: {v:.4g}" if isinstance(v, float) else f"{key:>32}: {v}")


if __name__ == "__main__":
    main()
