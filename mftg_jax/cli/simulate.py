"""`mftg simulate`: Monte Carlo ensembles of the equilibrium price with common noise and jumps."""

import argparse
import math
import os
import tempfile
import warnings

import jax
import numpy as np

from .._simulation._spec import EnsembleSpec
from ..price import simulate
from . import UsageError
from ._args import check_bytes, check_grid, integer
from ._common import add_game_arguments, check_finite, game_from_args, print_json, quantile_levels


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate the equilibrium price ensemble",
        description="Simulate M common-noise scenarios x N paths of the equilibrium price "
        "(Brownian and compound-Poisson noise) and report means, variances, standard errors, "
        "realised revenues and costs with their quantiles per producer. --save writes the "
        "quantile time series of p, phat, each producer's output u{i} and running revenue "
        "revenue{i} (producers numbered 1..n) as a table with one row per save time: columns "
        "time, then X_mean and X_q{level} for each quantity X (e.g. p_q0.05, u1_q0.5, "
        "revenue2_q0.95). Quantiles come from streamed histograms (512 bins per save time and "
        "quantity, exact to one bin width, 0.4% of the first batch's range). --json adds "
        "quantile_levels and, per producer, revenue_quantiles and cost_quantiles "
        "(revenue_quantiles[i][k]: level k of producer i + 1's realised revenue).",
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
    p.add_argument(
        "--save",
        metavar="FILE.parquet|FILE.csv",
        help="write the quantile time series (one row per save time) as Parquet or CSV",
    )
    p.add_argument(
        "--save-times",
        type=integer(2, 10**6),
        metavar="N",
        help="number of equally spaced save points on [t0, t1], end points included (snapped "
        "to the grid of --steps; at most --steps + 1). Default: one per unit of time (one per "
        "hour in an hourly game, so a daily cycle has 24 points), at least 101, at most "
        "--steps + 1",
    )
    p.add_argument(
        "--quantiles",
        type=quantile_levels,
        default=(0.05, 0.25, 0.5, 0.75, 0.95),
        metavar="Q1,Q2,...",
        help="quantile levels in (0, 1), increasing (default 0.05,0.25,0.5,0.75,0.95)",
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
    save_fmt = _save_format(args.save)
    save_steps = _save_steps(game, args.steps, args.save_times)
    n_save = len(save_steps)
    itemsize = 4 if args.dtype == "float32" else 8
    series = save_fmt is not None
    per_save = (game.n + 3) + (game.n if series else 0)
    batch = args.batch or min(n_per, max(1, (1 << 22) // (args.common * n_save * (1 + series))))
    # The policy tables on the grid, then one batch of saved paths (prices, controls and
    # the running revenues), then the histograms of every saved quantity.
    check_bytes(
        itemsize * (6.0 * game.n * (args.steps + 1) + 3.0 * args.common * batch * n_save * per_save)
        + 4.0 * 514 * n_save * (2 * game.n + 1),
        "--steps, --common, --batch and --save-times",
        "use fewer steps, fewer scenarios, fewer save times or a smaller --batch",
    )
    spec = EnsembleSpec(
        n_paths=args.paths,
        n_common=args.common,
        n_steps=args.steps,
        scheme=args.scheme,
        dtype=args.dtype,
        batch_size=args.batch,
        n_full_paths=min(20, n_per, args.batch or n_per) if args.plot else 0,
        save_steps=save_steps,
        quantiles=args.quantiles,
    )
    # Several processes checkpoint only to a file they all see (--checkpoint).
    default = None if several else True
    checkpoint = None if args.no_checkpoint else (args.checkpoint or default)
    res = simulate(
        game,
        jax.random.key(args.seed),
        spec,
        progress=args.progress,
        checkpoint=checkpoint,
        revenue_series=series,
    )
    s = res.summary()
    s.update(scheme=args.scheme, dtype=args.dtype, seed=args.seed, device=str(jax.devices()[0]))
    check_finite(s)
    table = res.to_pandas() if series else None
    if table is not None:
        _check_table(table)
    if jax.process_index() > 0:
        return 0
    if table is not None:
        _write_table(table, args.save, save_fmt)
        s["saved"] = args.save
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
    levels = s["quantile_levels"]
    lo, hi = int(np.argmin(levels)), int(np.argmax(levels))
    band = f"{levels[lo]:g}-{levels[hi]:g}"
    print(
        f"{'producer':>8} {'revenue':>14} {'stderr':>10} {'revenue ' + band:>23} "
        f"{'cost':>14} {'stderr':>10}"
    )
    for i, (r, se, c, sc) in enumerate(
        zip(s["mean_revenue"], s["stderr_revenue"], s["mean_cost"], s["stderr_cost"])
    ):
        rq = s["revenue_quantiles"][i]
        shown = f"{rq[lo]:.5g} .. {rq[hi]:.5g}"
        print(f"{i + 1:>8} {r:>14.6g} {se:>10.2g} {shown:>23} {c:>14.6g} {sc:>10.2g}")
    if table is not None:
        print(
            f"quantile series ({len(table)} save times, {len(table.columns)} columns): {args.save}"
        )
    print(
        f"{s['path_steps_per_second']:.3g} path-steps/s "
        f"(run {s['run_seconds']:.2f} s, compile {s['compile_seconds']:.2f} s)"
    )
    return 0


def _save_format(path: str | None) -> str | None:
    """`"parquet"`, `"csv"` or None (no --save); the folder must exist."""
    if path is None:
        return None
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".parquet", ".csv"):
        raise UsageError(f"--save must name a .parquet or .csv file, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--save {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--save {path}: is a directory, not a file")
    return ext[1:]


def _save_steps(game, steps: int, n_save: int | None) -> tuple[int, ...]:
    """Grid indices of `n_save` equally spaced save points (default: one per unit of time,
    at least 101, at most one per grid step)."""
    mk = game.market
    t0, t1 = float(mk.t0), float(mk.t1)
    if n_save is None:
        n_save = min(steps + 1, max(101, math.ceil(t1 - t0 - 1e-9) + 1))
    elif n_save > steps + 1:
        raise UsageError(
            f"--save-times must be at most --steps + 1 = {steps + 1} (one per grid time), "
            f"got {n_save}"
        )
    idx = tuple(int(round(i * steps / (n_save - 1))) for i in range(n_save))
    a = mk.a
    if not a.is_constant:
        shortest = float(a.period) / a.cos.shape[-1]
        spacing = (t1 - t0) / (n_save - 1)
        if spacing >= shortest / 2:
            need = math.ceil(2 * (t1 - t0) / shortest) + 2
            warnings.warn(
                f"save points every {spacing:g} time units sample the intercept's shortest "
                f"period {shortest:g} less than twice: its cycle aliases in the saved series; "
                f"use --save-times >= {need}",
                stacklevel=2,
            )
    return idx


def _check_table(table) -> None:
    values = table.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(
            f"the saved series {table.columns[col]} at time {table['time'].iloc[row]:g} is not "
            "finite; no output written"
        )


def _write_table(table, path: str, fmt: str) -> None:
    """Write the table to `path` all or nothing (a temporary file, then renamed)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".mftg-save-", suffix=f".{fmt}", dir=folder)
    os.close(fd)
    try:
        if fmt == "parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
