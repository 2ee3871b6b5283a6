"""Monte Carlo speed: the ensemble engine against NumPy, QuantLib, a plain `lax.scan` and the
RNG and hash limits.

    python benchmarks/monte_carlo.py [--paths 100000] [--steps 1000] [--quick] [--json]

All candidates simulate the same model, Scenario 3 (equilibrium feedback, sigma = 1,
compound-Poisson jumps of intensity 4/3 with N(0, 5^2) sizes) on the same grid, in one
process, so that the figures to compare are ratios:

- engine: `simulate_paths` (one batched grid scan, counter-based Threefry increments,
  sparse jumps), float32 and float64, prices only; and float32 with the realised revenues and
  costs of every producer integrated along each path;
- NumPy: vectorised Euler over the paths, PCG64 normals and Poisson counts, jump sizes drawn
  only where a count is positive (`--numpy-paths` times a subset on big runs);
- scan: a plain `lax.scan` Euler loop with `jax.random` normals and dense jump draws;
- QuantLib (optional, the `peers` extra): its own process and path generator,
  `ExtOUWithJumpsProcess` (an `ExtendedOrnsteinUhlenbeckProcess` plus a mean-reverting
  compound-Poisson component) through `GaussianMultiPathGenerator`, one path at a time, on
  `--quantlib-paths` paths of the same grid. The closest process it has, not the same one:
  a constant mean-reversion speed (the time average of Scenario 3's equilibrium speed of
  $p - \hat p$), at most one jump per step (added at the step's end), exponential jump sizes
  with the same second moment 25 (QuantLib's jump law) and a level offset that makes their
  mean zero, and its mean level a Python callback (how the bindings take a function of time).
  Also QuantLib's plain `OrnsteinUhlenbeckProcess` through `GaussianPathGenerator` (no jumps,
  no callback) as its fastest path generator. Skipped, with the reason, without QuantLib;
- RNG limit: one `jax.random.normal` per path-step in the same loop shape, nothing else;
  hash limit: one fused Threefry-2x32 hash and normal per path-step (the engine's own draw).

Rates are path-steps per second of run time (best of `--repeats`), compile time apart; the
CPU-time rates (best process time of the same runs, all threads) are the steadier figure on a
loaded machine.
"""

import argparse
import json
import math
import os
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mftg_jax as mj  # noqa: E402
from mftg_jax._noise._levy_path import threefry2x32  # noqa: E402
from mftg_jax.slides import scenario_game  # noqa: E402


def timed(f, args, repeats):
    """(compile seconds, best run seconds, best run CPU seconds) of `jax.jit(f)(*args)`."""
    t = time.perf_counter()
    c = jax.jit(f).lower(*args).compile()
    compile_s = time.perf_counter() - t
    jax.block_until_ready(c(*args))
    best, best_cpu = math.inf, math.inf
    for _ in range(repeats):
        t, t_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(c(*args))
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - t_cpu)
    return compile_s, best, best_cpu


def timed_host(f, repeats):
    """(best run seconds, best run CPU seconds, last result) of the host function `f()`."""
    best, best_cpu, out = math.inf, math.inf, None
    for _ in range(repeats):
        t, t_cpu = time.perf_counter(), time.process_time()
        out = f()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - t_cpu)
    return best, best_cpu, out


def tables(game, n_steps):
    """Grid, deviation gains g (K, n), k (K, n), m (K, n) of the equilibrium (float64)."""
    ric = mj.price.solve_riccati(game)
    pol = mj.price.FeedbackPolicy(ric)
    mk = game.market
    grid = np.linspace(float(mk.t0), float(mk.t1), n_steps + 1)

    def one(t):
        k, m = ric.gains(t)
        return pol.deviation_gain(t), k, m

    g, k, m = (np.asarray(x) for x in jax.vmap(one)(jnp.asarray(grid[:-1])))
    return grid, g, k, m


def numpy_euler(game, tab, n_paths, seed=0):
    """Vectorised float32 Euler of p and phat with jumps (NumPy); returns mean p(t1)."""
    grid, g, k, m = tab
    mk, nz = game.market, game.noise
    dt = np.float32(grid[1] - grid[0])
    eta, a, sigma = (np.float32(x) for x in (mk.eta, mk.a.mean, nz.sigma))
    nu = float(nz.jumps.intensity)
    loc, std = float(nz.jumps.size.loc), float(nz.jumps.size.std)
    comp = np.float32(nu * loc * float(dt))
    rng = np.random.default_rng(seed)
    p = np.full(n_paths, np.float32(mk.p0), np.float32)
    phat = np.float32(mk.phat0)
    sq = np.float32(math.sqrt(dt))
    for i in range(len(grid) - 1):
        gs, uh = np.float32(g[i].sum()), np.float32((k[i] * phat - m[i]).sum())
        drift = eta * (a - uh - phat) - eta * (1 + gs) * (p - phat)
        p += drift * dt + sigma * sq * rng.standard_normal(n_paths, dtype=np.float32) - comp
        counts = rng.poisson(nu * float(dt), n_paths)
        hit = np.flatnonzero(counts)
        c = counts[hit]
        p[hit] += (c * loc + np.sqrt(c) * std * rng.standard_normal(hit.size)).astype(np.float32)
        phat = phat + dt * eta * (a - uh - phat)
    return float(p.mean())


def scan_euler(game, tab, n_paths, key):
    """The same Euler loop as a plain `lax.scan` with `jax.random` draws (dense jumps)."""
    grid, g, k, m = tab
    mk, nz = game.market, game.noise
    f32 = jnp.float32
    dt = f32(grid[1] - grid[0])
    eta, a, sigma = (f32(x) for x in (mk.eta, mk.a.mean, nz.sigma))
    nu = f32(nz.jumps.intensity)
    loc, std = f32(nz.jumps.size.loc), f32(nz.jumps.size.std)
    gs, ks, ms = (jnp.asarray(x.sum(-1), f32) for x in (g, k, m))

    def body(carry, xs):
        p, phat = carry
        i, gi, ki, mi = xs
        kk = jax.random.fold_in(key, i)
        k1, k2, k3 = jax.random.split(kk, 3)
        uh = ki * phat - mi
        drift = eta * (a - uh - phat) - eta * (1 + gi) * (p - phat)
        z = jax.random.normal(k1, (n_paths,), f32)
        c = jax.random.poisson(k2, nu * dt, (n_paths,)).astype(f32)
        y = c * loc + jnp.sqrt(c) * std * jax.random.normal(k3, (n_paths,), f32)
        p = p + drift * dt + sigma * jnp.sqrt(dt) * z + y - nu * loc * dt
        return (p, phat + dt * eta * (a - uh - phat)), None

    n = len(grid) - 1
    init = (jnp.full((n_paths,), mk.p0, f32), f32(mk.phat0))
    (p, _), _ = jax.lax.scan(body, init, (jnp.arange(n), gs, ks, ms))
    return jnp.mean(p)


def quantlib_jump_ou(game, tab, n_paths, seed=42):
    """QuantLib's `ExtOUWithJumpsProcess` for $x = p - \hat p$ of Scenario 3 (module
    docstring) on the grid, one path at a time; returns (mean, variance) of $x(t_1)$."""
    import QuantLib as ql

    grid, g, _, _ = tab
    mk, nz = game.market, game.noise
    kappa = float(np.mean(float(mk.eta) * (1 + g.sum(-1))))
    nu = float(nz.jumps.intensity)
    # Exponential sizes with Scenario 3's second moment E[Y^2] = 25: mean 5 / sqrt(2).
    mean_size = math.sqrt(float(nz.jumps.size.second_moment()) / 2)
    level = -nu * mean_size / kappa  # cancels the jumps' mean in the stationary law
    ou = ql.ExtendedOrnsteinUhlenbeckProcess(kappa, float(nz.sigma), 0.0, lambda t: level)
    process = ql.ExtOUWithJumpsProcess(ou, 0.0, kappa, nu, 1 / mean_size)
    K = len(grid) - 1
    times = ql.TimeGrid(float(grid[-1] - grid[0]), K)
    uniform = ql.UniformRandomSequenceGenerator(
        process.factors() * K, ql.UniformRandomGenerator(seed)
    )
    gen = ql.GaussianMultiPathGenerator(
        process, list(times), ql.GaussianRandomSequenceGenerator(uniform), False
    )
    x = np.empty(n_paths)
    for i in range(n_paths):
        path = gen.next().value()
        x[i] = path[0][K] + path[1][K]
    return float(x.mean()), float(x.var())


def quantlib_ou(game, tab, n_paths, seed=42):
    """QuantLib's plain `OrnsteinUhlenbeckProcess` (no jumps) through `GaussianPathGenerator`;
    returns the mean of $x(t_1)$."""
    import QuantLib as ql

    grid, g, _, _ = tab
    kappa = float(np.mean(float(game.market.eta) * (1 + g.sum(-1))))
    process = ql.OrnsteinUhlenbeckProcess(kappa, float(game.noise.sigma), 0.0, 0.0)
    K = len(grid) - 1
    uniform = ql.UniformRandomSequenceGenerator(K, ql.UniformRandomGenerator(seed))
    gen = ql.GaussianPathGenerator(
        process, float(grid[-1] - grid[0]), K, ql.GaussianRandomSequenceGenerator(uniform), False
    )
    return float(np.mean([gen.next().value()[K] for _ in range(n_paths)]))


def rng_limit(n_paths, n_steps, key):
    """One `jax.random.normal` per path-step, summed so that nothing is dropped."""

    def body(x, i):
        return x + jax.random.normal(jax.random.fold_in(key, i), (n_paths,), jnp.float32), None

    return jax.lax.scan(body, jnp.zeros(n_paths, jnp.float32), jnp.arange(n_steps))[0]


def hash_limit(n_paths, n_steps, key):
    """One fused Threefry-2x32 hash and normal per path-step (the engine's draw), summed."""
    ids = jnp.arange(n_paths, dtype=jnp.uint32)
    zero = jnp.zeros_like(ids)

    def body(x, i):
        kd = jax.random.key_data(jax.random.fold_in(key, i))
        w0, _ = threefry2x32(kd[0], kd[1], zero, ids)
        u = ((w0 >> 9).astype(jnp.float32) + 0.5) * jnp.float32(2.0**-22) - 1
        return x + jnp.float32(math.sqrt(2)) * jax.scipy.special.erfinv(u), None

    return jax.lax.scan(body, jnp.zeros(n_paths, jnp.float32), jnp.arange(n_steps))[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--numpy-paths", type=int, default=None, help="paths for NumPy (default all)")
    ap.add_argument(
        "--quantlib-paths", type=int, default=2000, help="paths for QuantLib (default 2000)"
    )
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (default 3, --quick 2)")
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 engine run")
    ap.add_argument("--quick", action="store_true", help="20,000 paths x 250 steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.paths, args.steps = 20_000, 250
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    P, K, R = args.paths, args.steps, args.repeats
    n_np = min(P, args.numpy_paths or P)
    n_ql = min(P, args.quantlib_paths)
    game = scenario_game(3)
    key = jax.random.key(0)
    work = P * K
    rows, cpu_rows, compile_s = {}, {}, {}

    def engine(dtype, track):
        def f(key):
            spec = mj.EnsembleSpec(n_paths=P, n_steps=K, dtype=dtype, save_steps=(0, K))
            out = mj.price.simulate_paths(game, key, spec, track_revenue=track)
            return out.p[..., -1].mean(), out.revenue.sum()

        return f

    cases = [("engine_f32", engine(jnp.float32, False))]
    cases.append(("engine_f32_revenue", engine(jnp.float32, True)))
    if not args.no_f64:
        cases.append(("engine_f64", engine(jnp.float64, False)))
    tab = tables(game, K)
    cases += [
        ("scan_f32", lambda key: scan_euler(game, tab, P, key)),
        ("rng_limit", lambda key: rng_limit(P, K, key)),
        ("hash_limit", lambda key: hash_limit(P, K, key)),
    ]
    for name, f in cases:
        compile_s[name], best, best_cpu = timed(f, (key,), R)
        rows[name], cpu_rows[name] = work / best, work / best_cpu
    numpy_euler(game, tab, min(n_np, 1000))  # warm-up
    best, best_cpu, _ = timed_host(lambda: numpy_euler(game, tab, n_np), R)
    rows["numpy_f32"], cpu_rows["numpy_f32"] = n_np * K / best, n_np * K / best_cpu
    quantlib = {"skipped": None}
    try:
        import QuantLib as ql
    except ImportError as e:
        quantlib["skipped"] = f"QuantLib not installed ({e}); pip install QuantLib or .[peers]"
    else:
        quantlib["version"] = ql.__version__
        best, best_cpu, (mean, var) = timed_host(lambda: quantlib_jump_ou(game, tab, n_ql), R)
        rows["quantlib_jump_ou"], cpu_rows["quantlib_jump_ou"] = (
            n_ql * K / best,
            n_ql * K / best_cpu,
        )
        quantlib.update(x1_mean=mean, x1_var=var)
        best, best_cpu, _ = timed_host(lambda: quantlib_ou(game, tab, n_ql), R)
        rows["quantlib_ou_no_jumps"] = n_ql * K / best
        cpu_rows["quantlib_ou_no_jumps"] = n_ql * K / best_cpu

    out = {f"{k}_path_steps_per_s": v for k, v in rows.items()}
    out.update({f"{k}_path_steps_per_cpu_s": v for k, v in cpu_rows.items()})
    if "quantlib_jump_ou" in rows:
        out["ratio_vs_quantlib"] = rows["engine_f32"] / rows["quantlib_jump_ou"]
    out.update(
        fraction_of_hash_limit_cpu=cpu_rows["engine_f32"] / cpu_rows["hash_limit"],
        fraction_of_rng_limit_cpu=cpu_rows["engine_f32"] / cpu_rows["rng_limit"],
        quantlib=quantlib,
        quantlib_paths=n_ql,
        load_average=list(os.getloadavg()),
    )
    out.update(
        ratio_vs_numpy=rows["engine_f32"] / rows["numpy_f32"],
        ratio_vs_scan=rows["engine_f32"] / rows["scan_f32"],
        fraction_of_rng_limit=rows["engine_f32"] / rows["rng_limit"],
        fraction_of_hash_limit=rows["engine_f32"] / rows["hash_limit"],
        revenue_fraction_of_rng_limit=rows["engine_f32_revenue"] / rows["rng_limit"],
        compile_seconds=compile_s,
        paths=P,
        steps=K,
        numpy_paths=n_np,
        repeats=R,
        device=str(jax.devices()[0]),
        device_count=len(jax.devices()),
        versions=dict(
            python=platform.python_version(),
            jax=jax.__version__,
            numpy=np.__version__,
            mftg_jax=getattr(mj, "__version__", "dev"),
        ),
        cpu=platform.processor() or platform.machine(),
    )
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"Scenario 3 with jumps, {P} paths x {K} steps; device {out['device']}")
    print(f"jax {jax.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    print(f"load average {' '.join(f'{x:.2f}' for x in out['load_average'])}")
    print(f"{'candidate':<22}{'path-steps/s':>14}{'per CPU s':>12}{'compile s':>11}")
    for name, v in rows.items():
        c = compile_s.get(name)
        print(f"{name:<22}{v:>14.3g}{cpu_rows[name]:>12.3g}{'' if c is None else f'{c:>11.1f}'}")
    if quantlib["skipped"]:
        print(f"quantlib: skipped, {quantlib['skipped']}")
    else:
        q = quantlib
        print(
            f"quantlib {q['version']} on {n_ql} paths: x(t1) mean {q['x1_mean']:.3f}, "
            f"variance {q['x1_var']:.3f}; engine f32 / quantlib = {out['ratio_vs_quantlib']:.3g}"
        )
    print(
        f"engine f32 / numpy = {out['ratio_vs_numpy']:.2f}, / scan = {out['ratio_vs_scan']:.2f}, "
        f"/ RNG limit = {out['fraction_of_rng_limit']:.2f}, "
        f"/ hash limit = {out['fraction_of_hash_limit']:.2f} "
        f"(CPU time: / RNG limit = {out['fraction_of_rng_limit_cpu']:.2f}, "
        f"/ hash limit = {out['fraction_of_hash_limit_cpu']:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
