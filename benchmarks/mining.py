"""Benchmark: the optimal selfish-mining deviation (SSZ MDP, Dinkelbach + relative value
iteration) over a 100 x 11 grid of (alpha, gamma) in one jitted, vmapped call, against a NumPy
implementation of the same algorithm solving the grid one point at a time.

    python benchmarks/mining.py            # depth 20, the full 100 x 11 grid in JAX
    python benchmarks/mining.py --quick    # depth 10, a 20 x 11 grid

The NumPy baseline solves `--numpy-points` points of the grid and its time is extrapolated
to the whole grid (printed as such); the points are checked against the JAX answers.
"""

import argparse
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mftg_jax import mining  # noqa: E402

TAU = 0.9


def numpy_optimal(mdp, alpha, gamma, tol=1e-11, max_steps=20_000):
    """The same Dinkelbach + RVI + power method, in NumPy, for one (alpha, gamma)."""
    P = np.asarray(mdp.probabilities(alpha, gamma))
    nxt = np.asarray(mdp.successor)
    ok = np.asarray(mdp.feasible)
    ra = np.sum(P * np.asarray(mdp.attacker_reward), -1)
    rh = np.sum(P * np.asarray(mdp.honest_reward), -1)
    S = mdp.n_states
    s = np.arange(S)
    ref = mdp.index(1, 0, 0)
    rho, V = alpha, np.zeros(S)
    for _ in range(50):
        r = ra - rho * (ra + rh)
        for _ in range(max_steps):
            Q = r + TAU * np.sum(P * V[nxt], -1) + (1 - TAU) * V[:, None]
            Q[~ok] = -np.inf
            TV = Q.max(-1)
            d = TV - V
            V = TV - TV[ref]
            if d.max() - d.min() <= tol:
                break
        pol = Q.argmax(-1)
        p, nx = P[s, pol], nxt[s, pol]
        mu = np.full(S, 1.0 / S)
        for _ in range(50 * max_steps):
            moved = np.zeros(S)
            np.add.at(moved, nx.ravel(), (mu[:, None] * p).ravel())
            new = 0.5 * (mu + moved)
            done = np.abs(new - mu).sum() <= tol * 1e-2
            mu = new
            if done:
                break
        A, H = mu @ ra[s, pol], mu @ rh[s, pol]
        new_rho = A / (A + H)
        if new_rho - rho <= 10 * tol:
            break
        rho = max(rho, new_rho)
    return rho


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="depth 10, a 20 x 11 grid")
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--numpy-points", type=int, default=None)
    args = ap.parse_args()
    depth = args.depth or (10 if args.quick else 20)
    n_alpha = 20 if args.quick else 100
    n_np = args.numpy_points or (3 if args.quick else 5)
    print(
        f"jax {jax.__version__}, numpy {np.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print(f"devices: {jax.devices()}")
    alpha = np.linspace(0.01, 0.49, n_alpha)
    gamma = np.linspace(0.0, 1.0, 11)
    A, G = np.meshgrid(alpha, gamma)
    mdp = mining.SelfishMiningMDP(depth)
    print(f"depth {depth}: {mdp.n_states} states; grid {n_alpha} x 11 = {A.size} points")

    t = time.perf_counter()
    small = mining.optimal_deviation(mdp, jnp.asarray(A[:1, :1]), jnp.asarray(G[:1, :1]))
    jax.block_until_ready(small.revenue)
    t = time.perf_counter()
    lowered = jax.jit(lambda a, g: mining.optimal_deviation(mdp, a, g).revenue).lower(
        jnp.asarray(A), jnp.asarray(G)
    )
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    rev = compiled(jnp.asarray(A), jnp.asarray(G))
    jax.block_until_ready(rev)
    run_s = time.perf_counter() - t
    print(f"JAX vmapped: compile {compile_s:.2f} s, run {run_s:.2f} s")

    rng = np.random.default_rng(0)
    picks = rng.choice(A.size, n_np, replace=False)
    t = time.perf_counter()
    ref = [numpy_optimal(mdp, float(A.flat[i]), float(G.flat[i])) for i in picks]
    np_s = time.perf_counter() - t
    err = max(abs(r - float(np.asarray(rev).flat[i])) for r, i in zip(ref, picks, strict=True))
    np_full = np_s / n_np * A.size
    print(
        f"NumPy point by point: {np_s:.2f} s for {n_np} points, extrapolated to the grid "
        f"{np_full:.1f} s; max |JAX - NumPy| = {err:.2e}"
    )
    print(f"ratio (NumPy extrapolated / JAX run) = {np_full / run_s:.1f}x")


if __name__ == "__main__":
    main()
