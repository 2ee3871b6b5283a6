"""Many producers: the implicit solver with O(n) Newton systems against the explicit default.

    python benchmarks/riccati_stiff.py [--sizes 1000,3000,10000,30000,100000]
                                       [--explicit-up-to 100000] [--repeats 2] [--quick] [--json]

One game of n producers (eta = 0.5, a = 30, q = 1, horizon 1, c in [0, 10], r and rbar in
[1, 3], lam = 0.1: the many-producer game of `benchmarks/riccati.py`) is solved for its values at
t0 by `solve_riccati` with the default `Tsit5` and with `mj.price.structured_solver()`
(`Kvaerno5`, chord iterations on the block-diagonal-plus-rank-3 Newton matrix solved by
Woodbury), both at rtol = atol = 1e-8, each one jitted program, compile time apart, run time the
best of `--repeats`. Reported per n: steps (accepted + rejected) and run time of each, the
ratios, and the largest difference between the two, relative to each coefficient's largest
magnitude and in units of the tolerance (atol + rtol |y|). Above `--explicit-up-to` the explicit
solve is not run; its step count is extrapolated linearly in n from the largest n where it
ran (it grows like n once the system is stiff), marked as an estimate, and its time is not
estimated (the time per step grows faster than n once the state leaves the caches). The
cross-over is the smallest n of the list from which on the implicit solver is faster.
`--quick`: n = 300, 1000, 3000, 10000, one repeat.
"""

import argparse
import json
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mftg_jax as mj  # noqa: E402

RTOL = ATOL = 1e-8
PID = diffrax.PIDController(rtol=RTOL, atol=ATOL)
SAVE_T0 = diffrax.SaveAt(ts=[0.0])


def many_producers(n: int, seed: int = 1) -> mj.PriceGame:
    k = jax.random.split(jax.random.key(seed), 3)
    return mj.PriceGame(
        mj.Market(eta=0.5, a=30.0, q=1.0, t0=0.0, t1=1.0, p0=30.0),
        mj.Producers(
            c=jax.random.uniform(k[0], (n,), minval=0.0, maxval=10.0),
            r=jax.random.uniform(k[1], (n,), minval=1.0, maxval=3.0),
            rbar=jax.random.uniform(k[2], (n,), minval=1.0, maxval=3.0),
            lam=jnp.full(n, 0.1),
        ),
    )


def timed_solve(game, solver, max_steps, repeats):
    """(compile s, best run s, values at t0, steps, rejected steps) of one jitted solve."""

    @jax.jit
    def solve(g):
        sol = mj.price.solve_riccati(
            g, solver=solver, stepsize_controller=PID, saveat=SAVE_T0, max_steps=max_steps
        )
        return sol.values, sol.stats["num_steps"], sol.stats["num_rejected_steps"]

    t = time.perf_counter()
    compiled = solve.lower(game).compile()
    compile_s = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = compiled(game)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    values, steps, rejected = out
    return compile_s, best, [np.asarray(v[0]) for v in values], int(steps), int(rejected)


def differences(a, b):
    """Largest |a - b| relative to each coefficient's largest |b|, and in tolerance units."""
    rel = max(float(np.max(np.abs(x - y)) / np.max(np.abs(y))) for x, y in zip(a, b))
    tol = max(float(np.max(np.abs(x - y) / (ATOL + RTOL * np.abs(y)))) for x, y in zip(a, b))
    return rel, tol


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    ap.add_argument("--explicit-up-to", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    repeats = args.repeats
    if args.quick:
        sizes, repeats = [300, 1000, 3000, 10000], 1
    implicit = mj.price.structured_solver()

    rows = []
    last_explicit = None
    for n in sizes:
        game = many_producers(n)
        row = {"n": n}
        c, run, imp_values, steps, rejected = timed_solve(game, implicit, 2048, repeats)
        row.update(implicit_compile_s=c, implicit_s=run, implicit_steps=steps,
                   implicit_rejected=rejected)  # fmt: skip
        if n <= args.explicit_up_to:
            # Stiff: steps grow like n; 12 n + 4096 is far above what Tsit5 takes.
            budget = 12 * n + 4096
            c, run, exp_values, steps, rejected = timed_solve(
                game, diffrax.Tsit5(), budget, repeats
            )
            rel, tol = differences(imp_values, exp_values)
            row.update(explicit_compile_s=c, explicit_s=run, explicit_steps=steps,
                       explicit_rejected=rejected, explicit_estimated=False,
                       max_rel_diff=rel, max_diff_in_tolerances=tol)  # fmt: skip
            last_explicit = row
        elif last_explicit is not None:
            # Steps only: the time per step grows faster than n once the state leaves the
            # caches (measured on a 2-core CPU: 2 ms at n = 5,000, 68 ms at n = 100,000).
            scale = n / last_explicit["n"]
            row.update(explicit_steps=round(last_explicit["explicit_steps"] * scale),
                       explicit_estimated=True)  # fmt: skip
        if "explicit_steps" in row:
            row["step_ratio"] = row["explicit_steps"] / row["implicit_steps"]
        if "explicit_s" in row:
            row["speed_ratio"] = row["explicit_s"] / row["implicit_s"]
        rows.append(row)
        if not args.json:
            print(_line(row), flush=True)

    faster = [r["speed_ratio"] > 1 for r in rows if "speed_ratio" in r]
    ns = [r["n"] for r in rows if "speed_ratio" in r]
    crossover = next((ns[i] for i in range(len(ns)) if all(faster[i:])), None)
    result = {
        "device": str(jax.devices()[0]),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "diffrax": diffrax.__version__,
        },  # fmt: skip
        "load_average": os.getloadavg()[0],
        "rtol": RTOL,
        "atol": ATOL,
        "rows": rows,
        "crossover_n": crossover,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"implicit faster from n = {crossover} on (of the sizes run)")
        print(f"device {result['device']}, jax {jax.__version__}, diffrax {diffrax.__version__}, "
              f"load average {result['load_average']:.1f}")  # fmt: skip


def _line(r):
    est = " (estimated)" if r.get("explicit_estimated") else ""
    out = (f"n = {r['n']:>7}: implicit {r['implicit_steps']:>5} steps "
           f"({r['implicit_rejected']} rejected) {r['implicit_s']:8.3f} s "
           f"(compile {r['implicit_compile_s']:.1f} s)")  # fmt: skip
    if "explicit_s" in r:
        out += (f" | Tsit5 {r['explicit_steps']:>6} steps {r['explicit_s']:8.3f} s"
                f" | steps / {r['step_ratio']:.1f}, time / {r['speed_ratio']:.2f}")  # fmt: skip
    elif "explicit_steps" in r:
        out += f" | Tsit5 {r['explicit_steps']:>6} steps{est} | steps / {r['step_ratio']:.1f}"
    if r.get("max_rel_diff") is not None:
        out += (f" | diff {r['max_rel_diff']:.1e} rel, "
                f"{r['max_diff_in_tolerances']:.1f} tol")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
