"""Riccati solver speed: a batch of games in one jitted call against SciPy one by one.

    python benchmarks/riccati.py [--games 10000] [--scipy-games 300] [--chunk 500] [--json]

Both sides solve the same random 3-producer games (the full alpha, beta, gamma, delta system,
dense output) with an explicit 5(4) Runge-Kutta pair at the same tolerances: `Tsit5` in diffrax,
`RK45` in SciPy's `solve_ivp`. SciPy is timed on a subset (`--scipy-games`) and its per-solve
rate extrapolated; the speed ratio is per solve. Compile time is reported apart. Two batch
modes: `jax.vmap` of `solve_riccati` (each game its own steps) and
`solve_riccati(games, batch="stacked", chunk=...)` (one ODE per chunk of games, shared steps,
each game held to its own tolerance), each with dense output and with the values at t0 only;
the stacked solve's shared step count is set against the vmapped games' own. Also times
single games of n = 1,000 and n = 10,000 producers.
"""

import argparse
import json
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from riccati_stiff import many_producers  # noqa: E402  (the same game, this folder)
import scipy  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import mftg_jax as mj  # noqa: E402

RTOL = ATOL = 1e-8
PID = diffrax.PIDController(rtol=RTOL, atol=ATOL)


def random_parameters(key, batch, n):
    k = jax.random.split(key, 5)
    u = lambda k, lo, hi, shape: jax.random.uniform(k, shape, minval=lo, maxval=hi)  # noqa: E731
    return dict(
        eta=u(k[0], 0.2, 1.5, (batch,)),
        a=u(k[1], 5.0, 40.0, (batch,)),
        c=u(k[2], 0.0, 10.0, (batch, n)),
        r=u(k[3], 0.5, 3.0, (batch, n)),
        rbar=u(k[4], 0.5, 3.0, (batch, n)),
    )


def build_game(eta, a, c, r, rbar):
    return mj.PriceGame(
        mj.Market(eta=eta, a=a, q=1.0, t0=0.0, t1=1.5, p0=30.0),
        mj.Producers(c=c, r=r, rbar=rbar, lam=jnp.full(c.shape, 0.1)),
        mj.Noise(sigma=1.0, sigma_o=0.5),
    )


def scipy_solve(eta, a, c, r, rbar, lam, var, var_o, q, t1, dense=True):
    R = r + rbar

    def rhs(t, y):
        al, be, ga, de = y.reshape(4, -1)
        k = (1 - eta * be) / R
        m = (c + eta * ga) / R
        s_al = np.sum(al / r) - al / r
        s_k = k.sum() - k
        s_m = m.sum() - m
        return np.concatenate(
            [
                (lam + 2 * eta) * al - eta**2 / r * al**2 - 2 * eta**2 * al * s_al,
                (lam + 2 * eta) * be - (1 - eta * be) ** 2 / R + 2 * eta * be * s_k,
                (lam + eta) * ga
                - eta * be * a
                + (1 - eta * be) * m
                + eta * ga * s_k
                - eta * be * s_m,
                lam * de
                - be / 2 * var_o
                - al / 2 * var
                - eta * ga * a
                - R * m**2 / 2
                - eta * ga * s_m,
            ]
        )

    n = c.shape[0]
    y1 = np.concatenate([-q * np.ones(n), np.zeros(3 * n)])
    return solve_ivp(rhs, (t1, 0.0), y1, method="RK45", rtol=RTOL, atol=ATOL, dense_output=dense)


def compile_and_time(jitted, *args, repeats=3):
    """Compile time, best run time over `repeats` runs, and the output of a jitted function."""
    t = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = compiled(*args)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return compile_s, best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=10_000)
    ap.add_argument("--scipy-games", type=int, default=300)
    ap.add_argument("--max-steps", type=int, default=64, help="dense-output step budget")
    ap.add_argument(
        "--chunk", type=int, default=500, help="games per stacked ODE (0: the whole batch)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    games = random_parameters(jax.random.key(0), args.games, 3)
    solve = jax.jit(
        jax.vmap(
            lambda p: mj.price.solve_riccati(
                build_game(**p), stepsize_controller=PID, max_steps=args.max_steps
            )
        )
    )
    compile_s, jax_s, sol = compile_and_time(solve, games)
    at0 = jax.vmap(lambda s: s.evaluate(0.0))(sol)
    steps = np.asarray(sol.solution.stats["num_steps"])

    # Values at t0 only (no dense output), the same games.
    at_t0 = jax.jit(
        jax.vmap(
            lambda p: (
                mj.price.solve_riccati(
                    build_game(**p),
                    stepsize_controller=PID,
                    saveat=diffrax.SaveAt(ts=jnp.zeros(1)),
                    max_steps=args.max_steps,
                ).values
            )
        )
    )
    compile_t0_s, jax_t0_s, vals = compile_and_time(at_t0, games)
    same = max(float(jnp.max(jnp.abs(x[:, 0] - y))) for x, y in zip(vals, at0))

    # The same games as one stacked ODE per chunk: dense, then values at t0 only.
    chunk = args.chunk or None

    def stacked(p, saveat=diffrax.SaveAt(t1=True, dense=True)):
        return mj.price.solve_riccati(
            jax.vmap(build_game)(**p),
            stepsize_controller=PID,
            saveat=saveat,
            max_steps=args.max_steps,
            batch="stacked",
            chunk=chunk,
        )

    st_compile_s, st_s, st_sol = compile_and_time(
        jax.jit(lambda p: (lambda s: (s.evaluate(0.0), s.stats["num_steps"]))(stacked(p))),
        games,
    )
    st_at0, st_steps = st_sol
    st_steps = np.asarray(st_steps)
    st_t0_compile_s, st_t0_s, st_vals = compile_and_time(
        jax.jit(lambda p: stacked(p, diffrax.SaveAt(ts=jnp.zeros(1))).values), games
    )
    # Both modes meet the tolerance game by game: their difference is of its order.
    st_vs_vmap = max(
        float(jnp.max(jnp.abs(x - y) / (ATOL + RTOL * jnp.abs(y)))) for x, y in zip(st_at0, at0)
    )
    st_t0_same = max(float(jnp.max(jnp.abs(x[:, 0] - y))) for x, y in zip(st_vals, st_at0))

    # SciPy, one by one, on the first games of the same batch; also checks agreement.
    g = jax.tree.map(np.asarray, games)

    def scipy_run(dense):
        t = time.perf_counter()
        max_err = st_err = 0.0
        for b in range(args.scipy_games):
            out = scipy_solve(
                float(g["eta"][b]),
                float(g["a"][b]),
                g["c"][b],
                g["r"][b],
                g["rbar"][b],
                np.full(3, 0.1),
                1.0,
                0.25,
                1.0,
                1.5,
                dense=dense,
            )
            ref = out.y[:, -1]
            got = np.concatenate([np.asarray(x[b]) for x in at0])
            max_err = max(max_err, float(np.max(np.abs(got - ref) / (1e-8 + np.abs(ref)))))
            got = np.concatenate([np.asarray(x[b]) for x in st_at0])
            st_err = max(st_err, float(np.max(np.abs(got - ref) / (1e-8 + np.abs(ref)))))
        return (time.perf_counter() - t) / args.scipy_games, max_err, st_err

    scipy_s, max_err, st_max_err = scipy_run(True)
    scipy_t0_s, _, _ = scipy_run(False)

    # Many producers: c in [0, 10], r and rbar in [1, 3], eta = 0.5, horizon 1. The system is
    # stiff for large n (beta relaxes at rate ~ 2 eta sum_j k_j), which sets the step count of an
    # explicit solver; the dense output stores max_steps x 4n x stages floats.
    big = {}
    for n in (1_000, 10_000):
        game = many_producers(n)
        f = jax.jit(lambda g: mj.price.solve_riccati(g, stepsize_controller=PID, max_steps=1024))
        comp, run, s = compile_and_time(f, game, repeats=1)
        big[n] = (comp, run, int(s.solution.stats["num_steps"]))

    per_solve_jax = jax_s / args.games
    result = {
        "device": str(jax.devices()[0]),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "scipy": scipy.__version__,
        },
        "games": args.games,
        "compile_s": compile_s,
        "jax_batch_s": jax_s,
        "jax_per_solve_us": per_solve_jax * 1e6,
        "scipy_per_solve_us": scipy_s * 1e6,
        "speed_ratio_vs_scipy": scipy_s / per_solve_jax,
        "t0_only_compile_s": compile_t0_s,
        "t0_only_jax_per_solve_us": jax_t0_s / args.games * 1e6,
        "t0_only_scipy_per_solve_us": scipy_t0_s * 1e6,
        "t0_only_speed_ratio_vs_scipy": scipy_t0_s / (jax_t0_s / args.games),
        "t0_only_max_abs_diff_vs_dense": same,
        "max_rel_diff_vs_scipy": max_err,
        "steps_median": float(np.median(steps)),
        "steps_mean": float(np.mean(steps)),
        "steps_max": int(steps.max()),
        "stacked_chunk": chunk or args.games,
        "stacked_compile_s": st_compile_s,
        "stacked_batch_s": st_s,
        "stacked_per_solve_us": st_s / args.games * 1e6,
        "stacked_speed_ratio_vs_scipy": scipy_s / (st_s / args.games),
        "stacked_speed_ratio_vs_vmap": jax_s / st_s,
        "stacked_t0_only_compile_s": st_t0_compile_s,
        "stacked_t0_only_per_solve_us": st_t0_s / args.games * 1e6,
        "stacked_t0_only_speed_ratio_vs_scipy": scipy_t0_s / (st_t0_s / args.games),
        "stacked_t0_only_speed_ratio_vs_vmap": jax_t0_s / st_t0_s,
        "stacked_t0_only_max_abs_diff_vs_dense": st_t0_same,
        "stacked_max_rel_diff_vs_scipy": st_max_err,
        "stacked_max_diff_vs_vmap_in_tolerances": st_vs_vmap,
        "stacked_steps_mean": float(np.mean(st_steps)),
        "stacked_steps_max": int(st_steps.max()),
        "n1000_compile_s": big[1_000][0],
        "n1000_solve_s": big[1_000][1],
        "n1000_steps": big[1_000][2],
        "n10000_compile_s": big[10_000][0],
        "n10000_solve_s": big[10_000][1],
        "n10000_steps": big[10_000][2],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"device {result['device']}; jax {jax.__version__}, scipy {scipy.__version__}")
    print(f"{args.games} games of 3 producers, rtol = atol = {RTOL:g}, dense output")
    print(f"  compile                 {compile_s:8.2f} s")
    print(f"  jax vmapped batch       {jax_s:8.3f} s  ({per_solve_jax * 1e6:.1f} us per solve)")
    print(f"  scipy solve_ivp (RK45)  {scipy_s * 1e6:8.1f} us per solve ({args.scipy_games} games)")
    print(f"  speed ratio             {result['speed_ratio_vs_scipy']:8.1f} x")
    print(f"  max rel. difference     {max_err:8.2e}")
    print("values at t0 only (SaveAt(ts=[t0]), no dense output; SciPy without dense_output):")
    print(f"  compile                 {compile_t0_s:8.2f} s")
    print(
        f"  jax vmapped batch       {jax_t0_s:8.3f} s  "
        f"({result['t0_only_jax_per_solve_us']:.1f} us per solve)"
    )
    print(f"  scipy solve_ivp (RK45)  {scipy_t0_s * 1e6:8.1f} us per solve")
    print(f"  speed ratio             {result['t0_only_speed_ratio_vs_scipy']:8.1f} x")
    print(f"  max |difference| to the dense solve {same:.1e}")
    print(
        f"  steps per game          median {np.median(steps):.0f}, mean {np.mean(steps):.1f}, "
        f"max {steps.max()}"
    )
    print(
        f"stacked: batch='stacked', {result['stacked_chunk']} games per ODE "
        f"({len(st_steps)} chunks), shared steps per chunk mean {np.mean(st_steps):.1f}, "
        f"max {st_steps.max()}"
    )
    print(
        f"  dense:    compile {st_compile_s:.2f} s, {st_s:.3f} s "
        f"({result['stacked_per_solve_us']:.1f} us per solve), "
        f"{result['stacked_speed_ratio_vs_scipy']:.1f} x scipy, "
        f"{result['stacked_speed_ratio_vs_vmap']:.2f} x vmap"
    )
    print(
        f"  t0 only:  compile {st_t0_compile_s:.2f} s, {st_t0_s:.3f} s "
        f"({result['stacked_t0_only_per_solve_us']:.1f} us per solve), "
        f"{result['stacked_t0_only_speed_ratio_vs_scipy']:.1f} x scipy, "
        f"{result['stacked_t0_only_speed_ratio_vs_vmap']:.2f} x vmap"
    )
    print(
        f"  max rel. difference to scipy {st_max_err:.2e}; to vmap {st_vs_vmap:.2f} x "
        "(atol + rtol |y|)"
    )
    for n, (comp, run, st) in big.items():
        print(f"  n = {n:>6} producers: compile {comp:.2f} s, solve {run:.2f} s, {st} steps")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
