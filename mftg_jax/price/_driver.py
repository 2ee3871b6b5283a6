r"""The ensemble driver: batches of paths, devices, streaming statistics, progress.

[`simulate`][] runs the ensemble of [`simulate_paths`][] in batches of paths (every batch holds
all $M$ scenarios and a slice of each scenario's paths; path $j$ of scenario $m$ depends only on
`(key, m, j)`), splits each batch over the devices of a `jax.sharding.Mesh` along the path
axis, and merges the statistics of the batches (`_statistics.py`), so memory is bounded by
one batch whatever the number of paths.

Several hosts: call `jax.distributed.initialize()` on every host before `simulate`; the default
mesh then spans `jax.devices()` (all hosts' devices) and each batch is split over all of them.
"""

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PRNGKeyArray
import numpy as np

from .._simulation._statistics import (
    histogram_counts,
    histogram_edges,
    histogram_quantiles,
    Moments,
)
from ._game import PriceGame
from ._simulation import path_config, resolve_policy, run_paths_jit, SimulatedPaths

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class EnsembleResult(eqx.Module):
    r"""Statistics of a simulated ensemble (returned by [`simulate`][]); numpy arrays.

    `S` save times, `n` producers, `Q` quantile levels, `M` scenarios.

    - `times (S,)`; `quantile_levels (Q,)`.
    - `p_mean, p_var, p_stderr (S,)`, `p_quantiles (Q, S)`: the price over all paths.
    - `phat (M, S)`: each scenario's conditional mean price; `scenario_mean_p (M, S)`: the
      mean of $p$ over each scenario's paths (tends to `phat` as paths grow).
    - `phat_mean, phat_var, phat_stderr (S,)`, `phat_quantiles (Q, S)`: $\hat p$ over scenarios.
    - `u_mean, u_stderr (S, n)`, `u_quantiles (Q, S, n)`: the controls $u_i(t, p, \hat p)$.
    - `revenue_mean, revenue_stderr (n,)`: realised discounted revenue (compare with
      `RiccatiSolution.revenue()`); `cost_mean, cost_stderr (n,)`: realised undiscounted cost
      $\int (c_i u_i + \tfrac{r_i}2 u_i^2 + \tfrac{\bar r_i}2 \hat u_i^2)\,dt$.
    - `paths_p (F, S)`, `paths_u (F, S, n)`: the first `F = n_full_paths` paths of scenario 0.
    - `n_paths, n_common, n_steps, batch_size, n_devices`, `run_seconds`, `compile_seconds`,
      `path_steps_per_second` (run time only), `jump_overflow` (0 in any sane run).

    Standard errors: $\sqrt{\mathrm{var}/(MN)}$ when $M = 1$; otherwise the between-scenario
    standard error of the scenario means, which accounts for the common noise.
    """

    times: np.ndarray
    quantile_levels: np.ndarray
    p_mean: np.ndarray
    p_var: np.ndarray
    p_stderr: np.ndarray
    p_quantiles: np.ndarray
    phat: np.ndarray
    scenario_mean_p: np.ndarray
    phat_mean: np.ndarray
    phat_var: np.ndarray
    phat_stderr: np.ndarray
    phat_quantiles: np.ndarray
    u_mean: np.ndarray
    u_stderr: np.ndarray
    u_quantiles: np.ndarray
    revenue_mean: np.ndarray
    revenue_stderr: np.ndarray
    cost_mean: np.ndarray
    cost_stderr: np.ndarray
    paths_p: np.ndarray
    paths_u: np.ndarray
    n_paths: int
    n_common: int
    n_steps: int
    batch_size: int
    n_devices: int
    run_seconds: float
    compile_seconds: float
    path_steps_per_second: float
    jump_overflow: int

    def summary(self) -> dict[str, Any]:
        """The headline figures at $t_1$ as a JSON-ready dict."""
        return {
            "mean_p_t1": float(self.p_mean[-1]),
            "var_p_t1": float(self.p_var[-1]),
            "stderr_mean_p_t1": float(self.p_stderr[-1]),
            "mean_phat_t1": float(self.phat_mean[-1]),
            "mean_revenue": self.revenue_mean.tolist(),
            "stderr_revenue": self.revenue_stderr.tolist(),
            "mean_cost": self.cost_mean.tolist(),
            "stderr_cost": self.cost_stderr.tolist(),
            "n_paths": self.n_paths,
            "n_common": self.n_common,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_devices": self.n_devices,
            "run_seconds": self.run_seconds,
            "compile_seconds": self.compile_seconds,
            "path_steps_per_second": self.path_steps_per_second,
            "jump_overflow": self.jump_overflow,
        }


def _controls_at(policy, n, times, p, phat):
    """$u(t_s, p, \\hat p)$ for `p (M, B, S)`, `phat (M, S)` -> `(M, B, S, n)`."""
    if policy is None:
        return jnp.zeros(p.shape + (n,), p.dtype)

    def one(t, ps, phs):
        return policy(t, ps, phs[:, None]).astype(p.dtype)

    u = jax.vmap(one, in_axes=(0, -1, -1), out_axes=2)(times, p, phat)
    return u


# Seconds JAX has spent tracing, lowering and compiling in this process (for reporting compile
# time apart from run time).
_compile_seconds = [0.0]
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


def _on_duration(event: str, seconds: float, **kwargs) -> None:
    if event in _COMPILE_EVENTS:
        _compile_seconds[0] += seconds


jax.monitoring.register_event_duration_secs_listener(_on_duration)


@eqx.filter_jit
def _batch_stats(paths: SimulatedPaths, policy, n: int, p_edges, u_edges, n_full: int):
    p, phat = paths.p, paths.phat
    M, B, S = p.shape
    u = _controls_at(policy, n, paths.times, p, phat)
    flat_p = p.reshape(M * B, S)
    flat_u = u.reshape(M * B, S, n)
    return dict(
        p=Moments.of(flat_p, 0),
        p_scen=jnp.sum(p, axis=1),
        u=Moments.of(flat_u, 0),
        u_scen=jnp.sum(u, axis=1),
        revenue=Moments.of(paths.revenue.reshape(M * B, n), 0),
        revenue_scen=jnp.sum(paths.revenue, axis=1),
        cost=Moments.of(paths.cost.reshape(M * B, n), 0),
        cost_scen=jnp.sum(paths.cost, axis=1),
        p_hist=histogram_counts(flat_p, p_edges),
        u_hist=histogram_counts(flat_u, u_edges),
        paths_p=p[0, :n_full],
        paths_u=u[0, :n_full],
        phat=phat,
        overflow=paths.jump_overflow,
    )


@eqx.filter_jit
def _batch_range(paths: SimulatedPaths, policy, n: int):
    """Per save time `(min, max)` of the prices and of the controls of a batch."""
    p = paths.p
    u = _controls_at(policy, n, paths.times, p, paths.phat)
    flat_p = p.reshape(-1, p.shape[-1])
    flat_u = u.reshape(-1, *u.shape[2:])
    return (jnp.min(flat_p, 0), jnp.max(flat_p, 0)), (jnp.min(flat_u, 0), jnp.max(flat_u, 0))


def _default_batch(n_per: int, n_common: int, n_save: int, n_dev: int) -> int:
    """Largest divisor of `n_per` (and multiple of `n_dev`) within ~2^22 saved floats."""
    target = max(n_dev, (1 << 22) // max(1, n_common * n_save))
    best = n_dev if n_per % n_dev == 0 else n_per
    for b in range(min(n_per, target), 0, -1):
        if n_per % b == 0 and b % n_dev == 0:
            best = b
            break
    return best


def _cluster_stderr(scen_sum, n_per, mom: Moments, n_common):
    if n_common == 1:
        return np.asarray(mom.stderr)
    means = np.asarray(scen_sum) / n_per
    return np.std(means, axis=0, ddof=1) / np.sqrt(n_common)


def simulate(
    game: PriceGame,
    key: PRNGKeyArray,
    *,
    n_paths: int = 100_000,
    n_common: int = 1,
    n_steps: int = 1000,
    scheme: str = "exponential",
    policy: Any = "equilibrium",
    save_times=None,
    quantiles=_QUANTILES,
    dtype=None,
    batch_size: int | None = None,
    n_full_paths: int = 0,
    bins: int = 512,
    mesh: Mesh | None = None,
    progress: bool = False,
) -> EnsembleResult:
    r"""Simulate the price game's ensemble and return its statistics (module docstring).

    $M$ = `n_common` scenarios of common noise, each with $N$ = `n_paths // n_common`
    idiosyncratic paths; the dynamics, schemes and policies are those of
    [`simulate_paths`][].

    **Arguments:**

    - `game`, `key`, `n_steps`, `scheme`, `policy`, `save_times`, `dtype`: as in
      [`simulate_paths`][] (`"equilibrium"` solves the Riccati system once).
    - `n_paths`: total number of paths $MN$ (a multiple of `n_common`).
    - `n_common`: number of common-noise scenarios $M$.
    - `quantiles`: quantile levels in $(0, 1)$.
    - `batch_size`: paths per scenario per batch (a divisor of $N$ and a multiple of the
      number of devices); default: the largest divisor keeping a batch near $2^{22}$ saved values.
    - `n_full_paths`: number of paths of scenario 0 returned in full (at most a batch).
    - `bins`: histogram bins per save time for the quantiles.
    - `mesh`: a `jax.sharding.Mesh` with one axis named `"paths"`; default: all devices.
    - `progress`: show a progress bar (per batch) with path-steps per second.

    **Returns:** an [`EnsembleResult`][].
    """
    if not isinstance(n_common, int | np.integer) or n_common < 1:
        raise ValueError(f"n_common must be an integer >= 1, got {n_common!r}")
    if not isinstance(n_paths, int | np.integer) or n_paths < n_common or n_paths % n_common:
        raise ValueError(
            f"n_paths must be a positive multiple of n_common = {n_common}, got {n_paths!r}"
        )
    levels = np.asarray(quantiles, dtype=float)
    if levels.ndim != 1 or np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"quantiles must be levels in (0, 1), got {quantiles!r}")
    if mesh is None and len(jax.devices()) > 1:
        mesh = Mesh(np.asarray(jax.devices()), ("paths",))
    n_dev = 1 if mesh is None else mesh.size
    n_per = n_paths // n_common
    cfg0 = path_config(game, n_paths_per_scenario=1, n_steps=n_steps, save_times=save_times)
    n_save = len(cfg0.save_idx)
    if batch_size is None:
        batch_size = _default_batch(n_per, n_common, n_save, n_dev)
    if not isinstance(batch_size, int | np.integer) or batch_size < 1 or n_per % batch_size:
        raise ValueError(
            f"batch_size must divide the paths per scenario ({n_per}), got {batch_size!r}"
        )
    if not 0 <= n_full_paths <= batch_size:
        raise ValueError(
            f"n_full_paths must be in [0, batch_size={batch_size}], got {n_full_paths}"
        )
    cfg = path_config(
        game,
        n_paths_per_scenario=batch_size,
        n_common=n_common,
        n_steps=n_steps,
        scheme=scheme,
        save_times=save_times,
        dtype=dtype,
        n_tiles=n_dev,
    )
    pol = resolve_policy(game, policy)
    n = game.n
    sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec("paths"))

    def ids(b):
        x = jnp.arange(batch_size, dtype=jnp.uint32) + jnp.uint32(b * batch_size)
        return x if sharding is None else jax.device_put(x, sharding)

    # The first call compiles (unless an earlier call with the same shapes did): its compile
    # time is what JAX reports for tracing, lowering and compiling, the rest is run time.
    compile_before = _compile_seconds[0]
    t = time.perf_counter()
    first = run_paths_jit(game, pol, key, ids(0), cfg)
    jax.block_until_ready(first)
    first_s = time.perf_counter() - t
    compile_s = _compile_seconds[0] - compile_before

    n_batches = n_per // batch_size
    from tqdm.auto import tqdm

    bar = tqdm(total=n_batches, disable=not progress, unit="batch", desc="mftg simulate")
    acc = None
    p_edges = u_edges = None
    run_s = 0.0
    steps_per_batch = n_common * batch_size * n_steps
    for b in range(n_batches):
        if b == 0:
            paths = first
            run_s += max(first_s - compile_s, 0.0)
        else:
            t = time.perf_counter()
            paths = run_paths_jit(game, pol, key, ids(b), cfg)
            jax.block_until_ready(paths)
            run_s += time.perf_counter() - t
        if p_edges is None:
            p_range, u_range = _batch_range(paths, pol, n)
            p_edges = jnp.asarray(histogram_edges_from_range(p_range, bins))
            u_edges = jnp.asarray(histogram_edges_from_range(u_range, bins))
        st = _batch_stats(paths, pol, n, p_edges, u_edges, n_full_paths)
        st = jax.device_get(st)
        if acc is None:
            acc = st
        else:
            for name in ("p", "u", "revenue", "cost"):
                acc[name] = acc[name].merge(st[name])
            for name in ("p_scen", "u_scen", "revenue_scen", "cost_scen", "p_hist", "u_hist"):
                acc[name] = acc[name] + st[name]
            acc["overflow"] = acc["overflow"] + st["overflow"]
        bar.update(1)
        bar.set_postfix(path_steps_per_s=f"{steps_per_batch * (b + 1) / run_s:.3g}")
    bar.close()

    phat = np.asarray(acc["phat"], dtype=np.float64)
    M = n_common
    phat_mom = Moments.of(jnp.asarray(phat), 0)
    phat_q = np.quantile(phat, levels, axis=0) if M > 1 else np.repeat(phat[:1], len(levels), 0)
    return EnsembleResult(
        times=np.asarray(paths.times, dtype=np.float64),
        quantile_levels=levels,
        p_mean=np.asarray(acc["p"].mean),
        p_var=np.asarray(acc["p"].variance),
        p_stderr=_cluster_stderr(acc["p_scen"], n_per, acc["p"], M),
        p_quantiles=histogram_quantiles(acc["p_hist"], np.asarray(p_edges), levels),
        phat=phat,
        scenario_mean_p=np.asarray(acc["p_scen"]) / n_per,
        phat_mean=np.asarray(phat_mom.mean),
        phat_var=np.asarray(phat_mom.variance) if M > 1 else np.zeros(phat.shape[1]),
        phat_stderr=np.asarray(phat_mom.stderr) if M > 1 else np.zeros(phat.shape[1]),
        phat_quantiles=phat_q,
        u_mean=np.asarray(acc["u"].mean),
        u_stderr=_cluster_stderr(acc["u_scen"], n_per, acc["u"], M),
        u_quantiles=histogram_quantiles(acc["u_hist"], np.asarray(u_edges), levels),
        revenue_mean=np.asarray(acc["revenue"].mean),
        revenue_stderr=_cluster_stderr(acc["revenue_scen"], n_per, acc["revenue"], M),
        cost_mean=np.asarray(acc["cost"].mean),
        cost_stderr=_cluster_stderr(acc["cost_scen"], n_per, acc["cost"], M),
        paths_p=np.asarray(acc["paths_p"]),
        paths_u=np.asarray(acc["paths_u"]),
        n_paths=int(n_paths),
        n_common=int(n_common),
        n_steps=int(n_steps),
        batch_size=int(batch_size),
        n_devices=int(n_dev),
        run_seconds=float(run_s),
        compile_seconds=float(compile_s),
        path_steps_per_second=float(n_paths * n_steps / run_s),
        jump_overflow=int(acc["overflow"]),
    )


def histogram_edges_from_range(rng, bins: int) -> np.ndarray:
    """Histogram edges from a batch's `(min, max)` (see [`histogram_edges`][])."""
    lo, hi = (np.asarray(x, dtype=np.float64) for x in rng)
    return histogram_edges(np.stack([lo, hi]), bins, 0)
