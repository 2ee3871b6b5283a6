"""Consumption-investment-insurance: the q > 0 policy optimisation, optax in one jitted scan
against SciPy's L-BFGS-B driving the same jitted objective and gradient from Python.

    python benchmarks/insurance.py [--paths 1024] [--steps 25] [--iters 300] [--quick] [--json]

The problem is `examples/insurance.toml` (two assets, two regimes, q = 0.5). Both optimisers
start from the Chebyshev fit of the q = 0 closed form, on the same common random numbers.
JAX: `optimise_policy` with `optax.adam` and with `optax.lbfgs`, `--iters` steps fused in one
`lax.scan`; compile time (first call) is reported apart from the run time (second call,
`block_until_ready`). Baseline: `scipy.optimize.minimize(method="L-BFGS-B")` on the same
sample objective, its value and gradient one jitted JAX function (compiled before the timer
starts), run to its own convergence. Reported: the objectives reached, the steps and time for
each JAX run to come within 1e-5 of SciPy's objective (the run time scaled by the step
fraction; `None` when not reached), and the ratio of SciPy's time to that.
"""

import argparse
import json
from pathlib import Path
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

import mftg_jax.insurance as ins  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="256 paths, 10 steps, 100 iterations")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.paths, a.steps, a.iters = 256, 10, 100
    model = ins.load_model(ROOT / "examples" / "insurance.toml")
    sol = ins.solve(model)
    r = sol.returns
    init = ins.fit_feedback(model, sol.policy(), 3)
    key = jax.random.key(1)

    jax_runs = {}
    for method in ("adam", "lbfgs"):
        kw = dict(n_paths=a.paths, n_steps=a.steps, steps=a.iters, method=method)
        t = time.perf_counter()
        res = ins.optimise_policy(model, r, init, key, **kw)
        jax.block_until_ready(res.history)
        first = time.perf_counter() - t
        t = time.perf_counter()
        res = ins.optimise_policy(model, r, init, key, **kw)
        jax.block_until_ready(res.history)
        run = time.perf_counter() - t
        jax_runs[method] = (first - run, run, np.asarray(res.history))

    params, static = eqx.partition(
        init, eqx.tree_at(lambda p: (p.log_consumption, p.investment, p.insurance_logit),
                          jax.tree.map(lambda _: False, init), (True, True, True))
    )  # fmt: skip
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def vg(v):
        def f(v):
            pol = eqx.combine(unravel(v), static)
            paths = ins.simulate_paths(model, r, pol, key, a.paths, a.steps)
            return -jnp.mean(ins.objective_samples(model, paths))

        return jax.value_and_grad(f)(v)

    jax.block_until_ready(vg(flat))

    def fun(v):
        val, g = vg(jnp.asarray(v))
        return float(val), np.asarray(g)

    t = time.perf_counter()
    out = minimize(fun, np.asarray(flat), jac=True, method="L-BFGS-B",
                   options={"ftol": 1e-12, "gtol": 1e-8, "maxiter": 1000})  # fmt: skip
    base = time.perf_counter() - t
    target = -float(out.fun) - 1e-5
    rep = {
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "versions": {"jax": jax.__version__, "scipy": scipy.__version__},
        "paths": a.paths,
        "grid_steps": a.steps,
        "iterations": a.iters,
        "scipy_run_s": base,
        "scipy_evaluations": int(out.nfev),
        "scipy_objective": -float(out.fun),
    }
    for method, (compile_s, run, hist) in jax_runs.items():
        hit = np.nonzero(hist >= target)[0]
        rep[f"{method}_compile_s"] = compile_s
        rep[f"{method}_run_s"] = run
        rep[f"{method}_objective"] = float(hist[-1])
        if hit.size:
            t_conv = run * (hit[0] + 1) / a.iters
            rep[f"{method}_steps_to_scipy_level"] = int(hit[0] + 1)
            rep[f"{method}_time_to_scipy_level_s"] = t_conv
            rep[f"ratio_scipy_over_{method}"] = base / t_conv
        else:
            rep[f"{method}_steps_to_scipy_level"] = None
            rep[f"ratio_scipy_over_{method}_full_run"] = base / run
    if a.json:
        print(json.dumps(rep))
        return
    for k_, v in rep.items():
        print(f"{k_:32s} {v}")


if __name__ == "__main__":
    main()
