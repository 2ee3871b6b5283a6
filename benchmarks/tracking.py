"""Regulated-price family speed: the Riccati solve and the Monte Carlo against NumPy.

    python benchmarks/tracking.py [--assets 10000] [--paths 2000] [--mc-assets 50] [--json]

Riccati: the decoupled system (alpha, beta, gamma, delta for every asset, seasonal demand
and target) for `--assets` assets, one jitted diffrax Tsit5 solve (rtol = atol = 1e-8,
`dense=False`) against a vectorised NumPy RK4 with 400 fixed steps (its relative error
against the diffrax solve is printed, about 4e-7). Monte Carlo: `--paths` paths of
`--mc-assets` assets on 400 grid steps with the exponential scheme, on the shared engine,
against the same recursion in NumPy (float64 both). Compile time is reported apart; run
times are after `block_until_ready()`.
"""

import argparse
import json
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mftg_jax as mj  # noqa: E402
import mftg_jax.tracking as tr  # noqa: E402


def random_game(n, seed=0, t1=2.0):
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(6, n))
    z = np.zeros(n)
    return tr.TrackingGame(
        eta=0.5 + u[0],
        demand=tr.Fourier(2.0 + u[1], 0.1 * u[2][:, None], 0.05 * u[3][:, None]),
        supply=tr.Fourier.constant(np.ones(n)),
        band=tr.Band(0.9 + 0.05 * u[4], 1.1 + 0.05 * u[4]),
        costs=tr.Costs(
            q=1 + u[5], qbar=z + 0.5, q_terminal=z + 1, qbar_terminal=z, r=z + 0.1, rbar=z
        ),
        noise=tr.Noise(sigma=0.1 + 0.1 * u[2], sigma_o=0.05),
        p0=np.ones(n),
        t1=t1,
    )


def numpy_riccati(game, steps):
    """RK4 backwards on the decoupled system, vectorised over assets (the baseline)."""
    g = jax.tree.map(lambda x: np.asarray(x) if hasattr(x, "shape") else x, game)
    eta, c, nz = g.eta, g.costs, g.noise
    Q, R = c.q + c.qbar, c.r + c.rbar
    Sig = nz.sigma**2 + float(nz.jumps.intensity * nz.jumps.size.second_moment())
    Sig_o = float(nz.sigma_o**2 + nz.common_jumps.intensity * nz.common_jumps.size.second_moment())

    def fourier(f, t):
        k = np.arange(1, f.cos.shape[-1] + 1)
        return f.mean + f.cos @ np.cos(2 * np.pi * k * t) + f.sin @ np.sin(2 * np.pi * k * t)

    def vf(t, y):
        a, b, gm, d = y
        ptp = fourier(g.band.target, t)
        net = fourier(g.demand, t) - fourier(g.supply, t)
        return np.stack(
            [
                -c.q + 2 * eta * a + eta**2 * a**2 / c.r,
                -Q + 2 * eta * b + eta**2 * b**2 / R,
                Q * ptp + eta * gm - eta * b * net + eta**2 * b * gm / R,
                -Q * ptp**2 + eta**2 * gm**2 / R - 2 * eta * gm * net - Sig * a - Sig_o * b,
            ]
        )

    t1, t0 = float(g.t1), float(g.t0)
    ptp1 = fourier(g.band.target, t1)
    QT = c.q_terminal + c.qbar_terminal
    y = np.stack([c.q_terminal, QT, -QT * ptp1, QT * ptp1**2])
    h = (t0 - t1) / steps
    t = t1
    for _ in range(steps):
        k1 = vf(t, y)
        k2 = vf(t + h / 2, y + h / 2 * k1)
        k3 = vf(t + h / 2, y + h / 2 * k2)
        k4 = vf(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        t += h
    p0 = g.p0
    return y[1] * p0**2 + 2 * y[2] * p0 + y[3]


def numpy_mc(game, sol, n_paths, n_steps, seed=0):
    """The exponential scheme of `mftg_jax.tracking.simulate` in NumPy (no jumps)."""
    rng = np.random.default_rng(seed)
    n = game.n
    t0, t1 = float(game.t0), float(game.t1)
    dt = (t1 - t0) / n_steps
    ts = t0 + dt * (np.arange(n_steps) + 0.5)
    gain = np.asarray(jax.vmap(sol.deviation_gain)(jnp.asarray(ts)))
    K, k = (np.asarray(x) for x in jax.vmap(sol.mean_gains)(jnp.asarray(ts)))
    net = np.asarray(jax.vmap(game.net_demand)(jnp.asarray(ts)))
    eta, sigma, so = np.asarray(game.eta), np.asarray(game.noise.sigma), float(game.noise.sigma_o)
    phi = lambda z: np.expm1(z) / z  # noqa: E731
    phat = np.asarray(game.p0).copy()
    dev = np.zeros((n_paths, n))
    for s in range(n_steps):
        kap = eta * (1 + gain[s])
        kh = eta * (1 + K[s])
        b = eta * (net[s] - k[s])
        phat = (
            np.exp(-kh * dt) * phat
            + b * dt * phi(-kh * dt)
            + np.sqrt(phi(-2 * kh * dt)) * so * np.sqrt(dt) * rng.standard_normal()
        )
        dev = np.exp(-kap * dt) * dev + np.sqrt(phi(-2 * kap * dt)) * sigma * np.sqrt(
            dt
        ) * rng.standard_normal((n_paths, n))
    return phat[None, :] + dev


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=10_000)
    ap.add_argument("--paths", type=int, default=2000)
    ap.add_argument("--mc-assets", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = dict(
        device=str(jax.devices()[0]),
        jax=jax.__version__,
        numpy=np.__version__,
        python=platform.python_version(),
    )

    game = random_game(a.assets)
    t = time.perf_counter()
    jax.block_until_ready(tr.solve(game, dense=False).cost())
    first = time.perf_counter() - t
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        cost = jax.block_until_ready(tr.solve(game, dense=False).cost())
        runs.append(time.perf_counter() - t)
    run = min(runs)
    steps = 400
    t = time.perf_counter()
    ref = numpy_riccati(game, steps)
    np_s = time.perf_counter() - t
    err = float(np.max(np.abs(ref - np.asarray(cost)) / np.abs(np.asarray(cost))))
    out["riccati"] = dict(
        assets=a.assets,
        jax_run_s=run,
        jax_compile_s=max(first - run, 0.0),
        numpy_rk4_steps=steps,
        numpy_s=np_s,
        numpy_rel_error=err,
        speedup=np_s / run,
    )

    mgame = random_game(a.mc_assets, seed=1)
    sol = tr.solve(mgame)
    spec = mj.EnsembleSpec(
        n_paths=a.paths,
        n_steps=400,
        scheme="exponential",
        save_times=(float(mgame.t1),),
        dtype="float64",
    )
    first = tr.simulate(sol, jax.random.key(0), spec)  # compiles
    st = tr.simulate(sol, jax.random.key(1), spec)
    t = time.perf_counter()
    numpy_mc(mgame, sol, a.paths, 400)
    np_mc = time.perf_counter() - t
    out["monte_carlo"] = dict(
        assets=a.mc_assets,
        paths=a.paths,
        steps=400,
        jax_run_s=st.run.run_seconds,
        jax_compile_s=first.run.compile_seconds,
        numpy_s=np_mc,
        speedup=np_mc / max(st.run.run_seconds, 1e-12),
    )
    if a.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
