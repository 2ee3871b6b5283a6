"""`mftg simulate`: Monte Carlo ensembles of the equilibrium price with common noise and jumps."""

import argparse

import jax
import numpy as np

from .._simulation._spec import EnsembleSpec
from ..price import simulate
from . import UsageError
from ._args import check_bytes, check_grid, integer
from ._common import add_game_arguments, check_finite, game_from_args, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate the equilibrium price ensemble",
        description="Simulate M common-noise scenarios x N paths of the equilibrium price "
        "(Brownian and compound-Poisson noise) and report means, variances, standard errors, "
        "realised revenues and costs.",
    )
    add_game_arguments(p)
    p.add_argument(
        "--paths", type=integer(1, 10**10), default=100_000, help="total paths (default 100000)"
    )
    p.add_argument(
        "--common", type=integer(1, 10**6), default=1, help="common-noise scenarios (default 1)"
    )
    p.add_argument(
        "--steps", type=integer(1, 10**7), default=1000, help="time steps (default 1000)"
    )
    p.add_argument("--seed", type=integer(0, 2**63 - 1), default=0, help="random seed (default 0)")
    p.add_argument("--scheme", choices=("euler", "exponential"), default="exponential")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument(
        "--batch", type=integer(1, 10**9), default=None, help="paths per scenario per batch"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw p and phat fans and the controls")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument(
        "--checkpoint",
        metavar="FILE.npz",
        help="checkpoint file, saved after every batch (default: one in the temporary "
        "directory named by the game, seed and sizes); the same command after an "
        "interruption resumes from it, with the same results bit for bit",
    )
    p.add_argument(
        "--no-checkpoint", action="store_true", help="neither save nor resume a checkpoint"
    )
    d = p.add_argument_group(
        "several processes",
        "Run one ensemble as several JAX processes (one per host, or several on one "
        "machine): batches go round-robin to the processes, the statistics are merged in "
        "batch order, and the result is bit for bit that of one process; process 0 prints "
        "it. Checkpoints need --checkpoint on a file system every process sees.",
    )
    d.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="address of process 0 (`auto`: from the cluster's environment, e.g. SLURM)",
    )
    d.add_argument("--num-processes", type=integer(1, 100_000), help="number of processes")
    d.add_argument("--process-id", type=integer(0, 100_000), help="this process's index")
    p.set_defaults(func=run)


def _distributed(args: argparse.Namespace) -> bool:
    """Join the other processes (before any JAX computation); True when several."""
    given = [args.num_processes is not None, args.process_id is not None]
    if args.coordinator is None:
        if any(given):
            raise UsageError("--num-processes and --process-id need --coordinator HOST:PORT")
        return False
    if args.coordinator == "auto":
        kwargs = {}
    else:
        host, _, port = args.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--coordinator must be HOST:PORT or auto, got {args.coordinator!r}")
        if not all(given):
            raise UsageError("--coordinator HOST:PORT needs --num-processes and --process-id")
        if args.process_id >= args.num_processes:
            raise UsageError(
                f"--process-id must be in [0, --num-processes - 1 = {args.num_processes - 1}], "
                f"got {args.process_id}"
            )
        kwargs = dict(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    # CPU processes exchange the statistics through gloo (other platforms have their own).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    return jax.process_count() > 1


def run(args: argparse.Namespace) -> int:
    several = _distributed(args)
    game = game_from_args(args)
    if args.paths % args.common:
        raise UsageError(
            f"--paths must be a positive multiple of --common, got {args.paths} and {args.common}"
        )
    n_per = args.paths // args.common
    if args.batch is not None and n_per % args.batch:
        raise UsageError(
            f"--batch must divide the paths per scenario (--paths / --common = {n_per}), "
            f"got {args.batch}"
        )
    mk = game.market
    check_grid(float(mk.t0), float(mk.t1), args.steps, args.dtype)
    itemsize = 4 if args.dtype == "float32" else 8
    n_save = min(args.steps, 100) + 1
    batch = args.batch or min(n_per, max(1, (1 << 22) // (args.common * n_save)))
    # The policy tables on the grid, then one batch of saved paths (prices and controls).
    check_bytes(
        itemsize
        * (6.0 * game.n * (args.steps + 1) + 3.0 * args.common * batch * n_save * (game.n + 3)),
        "--steps, --common and --batch",
        "use fewer steps, fewer scenarios or a smaller --batch",
    )
    spec = EnsembleSpec(
        n_paths=args.paths,
        n_common=args.common,
        n_steps=args.steps,
        scheme=args.scheme,
        dtype=args.dtype,
        batch_size=args.batch,
        n_full_paths=min(20, n_per, args.batch or n_per) if args.plot else 0,
    )
    # Several processes checkpoint only to a file they all see (--checkpoint).
    default = None if several else True
    checkpoint = None if args.no_checkpoint else (args.checkpoint or default)
    res = simulate(
        game, jax.random.key(args.seed), spec, progress=args.progress, checkpoint=checkpoint
    )
    s = res.summary()
    s.update(scheme=args.scheme, dtype=args.dtype, seed=args.seed, device=str(jax.devices()[0]))
    check_finite(s)
    if jax.process_index() > 0:
        return 0
    if args.plot:
        _plot(res, args.plot)
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
