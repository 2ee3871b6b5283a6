"""Auction family speed: 10,000 asymmetric three-bidder auctions solved in one vmapped call
against SciPy (`solve_ivp` + `brentq` on the lowest bid) one by one, in one process.

    python benchmarks/auction.py [--auctions 10000] [--scipy 100] [--collocation 0]
                                 [--quick] [--json]

Each auction has a uniform, a truncated-normal and a power-law bidder with random supports
and shapes (a common top 1). JAX: `jax.vmap(mftg_jax.auction.lowest_bid)` (bisection, 64
steps, on the shooting residual, adaptive Tsit5 rtol 1e-10, atol 1e-12), compile time
reported apart, run time after `block_until_ready()`. SciPy: the same residual (RK45 with
a terminal event, same tolerances) and `brentq` (xtol 1e-13) on the first `--scipy`
auctions one by one; its time per auction is extrapolated to the batch. The lowest bids
of the two are compared on those auctions. With `--collocation N` the second method,
`jax.vmap(mftg_jax.auction.collocate)` (degree 32), solves the first N auctions in one
call, its lowest bids compared with the shooting's (off by default: it is a cross-check,
slower than the shooting, and only spectrally accurate for some power exponents, see
docs/auction.md).
"""

import argparse
import json
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402
from scipy.optimize import brentq  # noqa: E402
from scipy.special import ndtr, ndtri  # noqa: E402

from mftg_jax import auction as au  # noqa: E402

KAPPA = 1e-3
DELTA = 1e-4


def random_params(n, seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        lo0=rng.uniform(0.0, 0.2, n),
        lo1=rng.uniform(0.1, 0.3, n),
        mean1=rng.uniform(0.3, 0.7, n),
        std1=rng.uniform(0.15, 0.4, n),
        lo2=rng.uniform(0.0, 0.3, n),
        a2=rng.uniform(0.7, 2.5, n),
    )


def make_auction(p):
    return au.Auction(
        (
            au.Uniform(p["lo0"], 1.0),
            au.TruncatedNormal(p["lo1"], 1.0, p["mean1"], p["std1"]),
            au.Power(p["lo2"], 1.0, p["a2"]),
        )
    )


def scipy_lowest_bid(p):
    """The same shooting residual in NumPy/SciPy for one auction (dict of floats)."""
    lows = np.array([p["lo0"], p["lo1"], p["lo2"]])
    pa, pb = ndtr((p["lo1"] - p["mean1"]) / p["std1"]), ndtr((1.0 - p["mean1"]) / p["std1"])

    def quantile(u):
        u = np.clip(u, 0.0, 1.0)
        return np.array([
            p["lo0"] + u[0] * (1 - p["lo0"]),
            np.clip(p["mean1"] + p["std1"] * ndtri(pa + u[1] * (pb - pa)), p["lo1"], 1.0),
            p["lo2"] + (1 - p["lo2"]) * u[2] ** (1 / p["a2"]),
        ])  # fmt: skip

    top = 1.0
    b_top = top - DELTA * (top - lows.max())

    def gap(b, u):
        return (b - quantile(u)) * 2.0 / (top - b)

    def residual(b_low):
        if np.min(gap(b_low, np.zeros(3))) <= KAPPA:
            return KAPPA - 1.0

        def f(b, u):
            g = b - quantile(u)
            inv = 1.0 / np.where(g > 0, g, 1e-77)
            return (1 - np.clip(u, 0, 1)) * (inv.sum() / 2 - inv)

        def failed(b, u):
            return np.min(gap(b, u)) - KAPPA

        failed.terminal = True
        sol = solve_ivp(f, (b_low, b_top), np.zeros(3), method="RK45", rtol=1e-10,
                        atol=1e-12, events=failed)  # fmt: skip
        if sol.status == 1 or sol.t[-1] < b_top:
            return KAPPA - 1.0
        return np.min(gap(sol.t[-1], sol.y[:, -1])) - 1.0

    eta = np.ones(3)
    need = 2 * KAPPA * (top - lows) / (eta.sum() - eta + 2 * KAPPA)
    lower = max((lows + need).max(), lows.max() + 1e-12)
    upper = b_top - 1e-9 * (b_top - lows.max())
    return brentq(residual, lower, upper, xtol=1e-13)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--auctions", type=int, default=10000)
    ap.add_argument("--scipy", type=int, default=100)
    ap.add_argument("--collocation", type=int, default=0, help="auctions for collocation")
    ap.add_argument("--quick", action="store_true", help="500 auctions, 10 with SciPy")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.auctions, args.scipy = 500, 10
    params = random_params(args.auctions)
    batch = jax.vmap(make_auction)({k: jnp.asarray(v) for k, v in params.items()})
    solve = jax.jit(jax.vmap(au.lowest_bid))
    t0 = time.perf_counter()
    compiled = solve.lower(batch).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = compiled(batch).block_until_ready()
    t_jax = time.perf_counter() - t0
    n_s = min(args.scipy, args.auctions)
    t0 = time.perf_counter()
    ref = np.array(
        [scipy_lowest_bid({k: float(v[i]) for k, v in params.items()}) for i in range(n_s)]
    )
    t_scipy = time.perf_counter() - t0
    per_scipy = t_scipy / n_s
    per_jax = t_jax / args.auctions
    n_c = min(args.collocation, args.auctions)
    if n_c > 0:
        head = jax.tree.map(lambda x: x[:n_c], batch)
        colloc = jax.jit(jax.vmap(lambda a: au.collocate(a, 32)))
        t0 = time.perf_counter()
        compiled_c = colloc.lower(head).compile()
        t_compile_c = time.perf_counter() - t0
        t0 = time.perf_counter()
        col = jax.block_until_ready(compiled_c(head))
        t_col = time.perf_counter() - t0
        d_col = np.abs(np.asarray(col.b_low) - np.asarray(b)[:n_c])
    out = {
        "device": str(jax.devices()[0]),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "auctions": args.auctions,
        "jax_compile_s": t_compile,
        "jax_run_s": t_jax,
        "jax_per_auction_s": per_jax,
        "scipy_auctions": n_s,
        "scipy_run_s": t_scipy,
        "scipy_per_auction_s": per_scipy,
        "scipy_extrapolated_batch_s": per_scipy * args.auctions,
        "speedup_per_auction": per_scipy / per_jax,
        "max_abs_diff_lowest_bid": float(np.max(np.abs(np.asarray(b)[:n_s] - ref))),
        "all_finite": bool(np.all(np.isfinite(np.asarray(b)))),
    }
    if n_c > 0:
        out.update(
            collocation_auctions=n_c,
            collocation_compile_s=t_compile_c,
            collocation_run_s=t_col,
            collocation_per_auction_s=t_col / n_c,
            collocation_converged=int(np.sum(np.asarray(col.converged))),
            collocation_max_residual=float(np.max(np.asarray(col.residual))),
            collocation_median_abs_diff_lowest_bid=float(np.median(d_col)),
            collocation_max_abs_diff_lowest_bid=float(np.max(d_col)),
        )
    if args.json:
        print(json.dumps(out))
        return
    print(f"device {out['device']}, jax {out['jax']}, python {out['python']}")
    print(f"JAX vmap, {args.auctions} auctions: compile {t_compile:.2f} s, run {t_jax:.3f} s "
          f"({per_jax * 1e3:.3f} ms per auction)")  # fmt: skip
    print(f"SciPy one by one, {n_s} auctions: {t_scipy:.2f} s ({per_scipy * 1e3:.1f} ms per "
          f"auction, {per_scipy * args.auctions:.0f} s extrapolated to the batch)")  # fmt: skip
    print(f"ratio (SciPy / JAX, per auction): {out['speedup_per_auction']:.1f}x; "
          f"max |b_low difference| {out['max_abs_diff_lowest_bid']:.2e}")  # fmt: skip
    if n_c > 0:
        print(f"collocation (degree 32, vmap), {n_c} auctions: compile {t_compile_c:.2f} s, "
              f"run {t_col:.3f} s ({t_col / n_c * 1e3:.1f} ms per auction); converged "
              f"{out['collocation_converged']}/{n_c}, max residual "
              f"{out['collocation_max_residual']:.1e}, |b_low - shooting| median "
              f"{out['collocation_median_abs_diff_lowest_bid']:.1e}, max "
              f"{out['collocation_max_abs_diff_lowest_bid']:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
