"""`mftg simulate`: Monte Carlo ensembles of the equilibrium price with common noise and jumps."""

import argparse

import jax
import numpy as np

from .._simulation._spec import EnsembleSpec
from ..price import simulate
from . import UsageError
from ._common import add_game_arguments, game_from_args, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate the equilibrium price ensemble",
        description="Simulate M common-noise scenarios x N paths of the equilibrium price "
        "(Brownian and compound-Poisson noise) and report means, variances, standard errors, "
        "realised revenues and costs.",
    )
    add_game_arguments(p)
    p.add_argument("--paths", type=int, default=100_000, help="total paths (default 100000)")
    p.add_argument("--common", type=int, default=1, help="common-noise scenarios (default 1)")
    p.add_argument("--steps", type=int, default=1000, help="time steps (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scheme", choices=("euler", "exponential"), default="exponential")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--batch", type=int, default=None, help="paths per scenario per batch")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw p and phat fans and the controls")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    game = game_from_args(args)
    if args.paths < 1 or args.common < 1 or args.paths % args.common:
        raise UsageError(
            f"--paths must be a positive multiple of --common, got {args.paths} and {args.common}"
        )
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    spec = EnsembleSpec(
        n_paths=args.paths,
        n_common=args.common,
        n_steps=args.steps,
        scheme=args.scheme,
        dtype=args.dtype,
        batch_size=args.batch,
        n_full_paths=min(20, args.paths // args.common) if args.plot else 0,
    )
    res = simulate(game, jax.random.key(args.seed), spec, progress=args.progress)
    if args.plot:
        _plot(res, args.plot)
    s = res.summary()
    s.update(scheme=args.scheme, dtype=args.dtype, seed=args.seed, device=str(jax.devices()[0]))
    if args.json:
        print_json(s)
        return 0
    print(
        f"{s['n_paths']} paths ({s['n_common']} scenario(s)) x {s['n_steps']} steps, "
        f"{args.scheme}, {args.dtype}"
    )
    print(f"E[p(t1)]    = {s['mean_p_t1']:.6g} +- {s['stderr_mean_p_t1']:.2g}")
    print(f"Var[p(t1)]  = {s['var_p_t1']:.6g}")
    print(f"E[phat(t1)] = {s['mean_phat_t1']:.6g}")
    print(f"{'producer':>8} {'revenue':>14} {'stderr':>10} {'cost':>14} {'stderr':>10}")
    for i, (r, se, c, sc) in enumerate(
        zip(s["mean_revenue"], s["stderr_revenue"], s["mean_cost"], s["stderr_cost"])
    ):
        print(f"{i:>8} {r:>14.6g} {se:>10.2g} {c:>14.6g} {sc:>10.2g}")
    print(
        f"{s['path_steps_per_second']:.3g} path-steps/s "
        f"(run {s['run_seconds']:.2f} s, compile {s['compile_seconds']:.2f} s)"
    )
    return 0


def _plot(res, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = res.times
    q = res.quantile_levels
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    lo, hi = int(np.argmin(q)), int(np.argmax(q))
    ax.fill_between(t, res.p_quantiles[lo], res.p_quantiles[hi], alpha=0.25, label="p band")
    for one in res.paths_p:
        ax.plot(t, one, lw=0.5, color="grey", alpha=0.6)
    ax.plot(t, res.p_mean, label="E[p]")
    if res.run.n_common > 1:
        ax.fill_between(
            t, res.phat_quantiles[lo], res.phat_quantiles[hi], alpha=0.25, label="phat band"
        )
    ax.plot(t, res.phat_mean, "--", label="E[phat]")
    ax.set_xlabel("t")
    ax.set_title(f"price, {q[lo]:.0%}-{q[hi]:.0%} band")
    ax.legend()
    ax = axes[1]
    for i in range(res.u_mean.shape[1]):
        ax.fill_between(t, res.u_quantiles[lo, :, i], res.u_quantiles[hi, :, i], alpha=0.2)
        ax.plot(t, res.u_mean[:, i], label=f"u_{i + 1}")
    ax.set_xlabel("t")
    ax.set_title("controls")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
