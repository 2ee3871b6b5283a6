r"""The ensemble driver shared by every family: batches, devices, streaming statistics, progress.

[`run_ensemble`][] runs a family's [`AbstractEnsemble`][] in batches of paths (every batch holds
all $M$ scenarios and a slice of each scenario's paths; path $j$ of scenario $m$ depends only on
`(key, m, j)`), splits each batch over the devices of a `jax.sharding.Mesh` along the path
axis, and merges the statistics of the batches (Chan/Welford merges, histograms for
quantiles), so memory is bounded by one batch whatever the number of paths, and the result
does not depend on the batch size or the number of devices.

Several processes (one per host, or several on one machine): call
`jax.distributed.initialize()` in every process first (on CPU with
`jax.config.update("jax_cpu_collectives_implementation", "gloo")` before it). The batches then
go round-robin to the processes, each splits its batch over its own devices (the default mesh
is `jax.local_devices()`), and the statistics of every round are gathered and merged in batch
order on every process: each process returns the statistics of the whole ensemble, bit for
bit those of one process.

Resume: with `checkpoint=` the merged statistics are saved after every batch
(`_checkpoint.py`); the same call after an interruption resumes after the last batch saved
and returns bit for bit the statistics of an uninterrupted run.
"""

import abc
import contextlib
import os
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, PRNGKeyArray, PyTree
import numpy as np

from .._programs import persistent_jit
from . import _checkpoint
from ._progress import progress_bar
from ._spec import EnsembleSpec
from ._statistics import histogram_counts, histogram_edges, histogram_quantiles, Moments
from ._timing import CompileTimer


class Observables(eqx.Module):
    """What one batch contributes to the statistics.

    - `per_path`: arrays with leading axes `(M, B)` (scenario, path of the batch): their
      moments over all paths, their means per scenario, the first paths of scenario 0.
    - `per_scenario`: arrays with leading axis `(M,)`, the same in every batch (they depend
      on the common noise only), e.g. a conditional mean.
    - `overflow`: count of events the noise could not represent (0 in any sane run).
    """

    per_path: dict[str, Array]
    per_scenario: dict[str, Array]
    overflow: Array


class AbstractEnsemble(eqx.Module):
    """A family's Monte Carlo ensemble: its configuration, one batch of paths, observables."""

    @abc.abstractmethod
    def configure(self, spec: EnsembleSpec, batch_size: int, n_tiles: int) -> Any:
        """The static (hashable) configuration of one batch program."""

    @abc.abstractmethod
    def saved_per_path(self, spec: EnsembleSpec) -> int:
        """Numbers saved per path and scenario in a batch (sets the default batch size)."""

    @abc.abstractmethod
    def paths(self, key: PRNGKeyArray, path_ids: Array, cfg: Any) -> PyTree:
        """One batch: the paths with global indices `path_ids (B,)` of every scenario."""

    @abc.abstractmethod
    def observe(self, batch: PyTree, cfg: Any) -> Observables:
        """The observables of one batch."""

    @abc.abstractmethod
    def histogrammed(self) -> tuple[str, ...]:
        """Names of the `per_path` observables whose quantiles are streamed."""


class RunInfo(eqx.Module):
    """How an ensemble was run: its sizes, devices and timings (compile time apart)."""

    n_paths: int
    n_common: int
    n_steps: int
    batch_size: int
    n_devices: int
    run_seconds: float
    compile_seconds: float
    path_steps_per_second: float
    jump_overflow: int

    def as_dict(self) -> dict[str, int | float]:
        """The fields as a JSON-ready dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class EnsembleStatistics(eqx.Module):
    r"""Statistics of an ensemble (numpy arrays), by observable name.

    - `mean`, `var`, `stderr`: over all paths; the standard error is $\sqrt{\mathrm{var}/(MN)}$
      when $M = 1$, otherwise the between-scenario standard error of the scenario means,
      which accounts for the common noise.
    - `scenario_mean`: the mean over each scenario's paths, `(M, ...)`.
    - `quantiles`: `(Q, ...)` from streamed histograms (accurate to one bin).
    - `per_scenario`: the per-scenario observables, `(M, ...)`.
    - `full`: the first `n_full_paths` paths of scenario 0 of every per-path observable.
    - `run`: the [`RunInfo`][mftg_jax.RunInfo]: sizes, `run_seconds`, `compile_seconds`
      (tracing, lowering and compiling, apart), `path_steps_per_second` (run time only),
      `jump_overflow`.
    """

    mean: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]
    scenario_mean: dict[str, np.ndarray]
    quantiles: dict[str, np.ndarray]
    per_scenario: dict[str, np.ndarray]
    full: dict[str, np.ndarray]
    quantile_levels: np.ndarray
    run: RunInfo


def _paths(model: AbstractEnsemble, key, ids, cfg):
    return model.paths(key, ids, cfg)


_paths_jit = persistent_jit(_paths, name="ensemble_paths")


def _batch_stats(model: AbstractEnsemble, batch, cfg, edges: dict, n_full: int):
    obs = model.observe(batch, cfg)
    out = dict(moments={}, scen={}, hist={}, full={})
    for name, x in obs.per_path.items():
        M, B = x.shape[:2]
        out["moments"][name] = Moments.of(x.reshape((M * B,) + x.shape[2:]), 0)
        out["scen"][name] = jnp.sum(x, axis=1)
        out["full"][name] = x[0, :n_full]
        if name in edges:
            out["hist"][name] = histogram_counts(x.reshape((M * B,) + x.shape[2:]), edges[name])
    out["per_scenario"] = obs.per_scenario
    out["overflow"] = obs.overflow
    return out


def _batch_range(model: AbstractEnsemble, batch, cfg):
    """Per remaining index `(min, max)` of the histogrammed observables of a batch."""
    obs = model.observe(batch, cfg)
    out = {}
    for name in model.histogrammed():
        x = obs.per_path[name]
        flat = x.reshape((-1,) + x.shape[2:])
        out[name] = (jnp.min(flat, 0), jnp.max(flat, 0))
    return out


_batch_stats = persistent_jit(_batch_stats, name="ensemble_stats")
_batch_range = persistent_jit(_batch_range, name="ensemble_range")


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


def _merge(acc: dict, st: dict) -> dict:
    """The statistics of one more batch merged into `acc` (in place)."""
    for name in acc["moments"]:
        acc["moments"][name] = acc["moments"][name].merge(st["moments"][name])
        acc["scen"][name] = acc["scen"][name] + st["scen"][name]
    for name in acc["hist"]:
        acc["hist"][name] = acc["hist"][name] + st["hist"][name]
    acc["overflow"] = acc["overflow"] + st["overflow"]
    return acc


def _allgather(tree):
    """Every process's `tree` (host arrays), stacked on a new leading axis."""
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree)


def _edges_from_range(rng, bins: int) -> np.ndarray:
    lo, hi = (np.asarray(x, dtype=np.float64) for x in rng)
    return histogram_edges(np.stack([lo, hi]), bins, 0)


def run_ensemble(
    model: AbstractEnsemble,
    key: PRNGKeyArray,
    spec: EnsembleSpec,
    *,
    mesh: Mesh | None = None,
    progress: bool = False,
    desc: str = "mftg simulate",
    checkpoint: str | bool | None = None,
) -> EnsembleStatistics:
    """Run `model`'s ensemble as `spec` says and return its statistics (module docstring).

    **Arguments:**

    - `model`: a family's [`AbstractEnsemble`][].
    - `key`: a JAX PRNG key.
    - `spec`: an [`EnsembleSpec`][mftg_jax.EnsembleSpec].
    - `mesh`: a `jax.sharding.Mesh` with one axis named `"paths"`; default: all devices.
    - `progress`: show a progress bar (per batch) with path-steps per second.
    - `desc`: the progress bar's label.
    - `checkpoint`: a file to save the merged statistics to after every batch and to resume
      from (`True`: a file in the temporary directory named by a fingerprint of the run;
      None: no checkpoint). It is removed when the run completes; one written for another
      run is ignored, an unreadable one is ignored with a warning.

    **Returns:** an [`EnsembleStatistics`][].
    """
    if mesh is None and len(jax.local_devices()) > 1:
        mesh = Mesh(np.asarray(jax.local_devices()), ("paths",))
    n_dev = 1 if mesh is None else mesh.size
    n_per, n_common = spec.paths_per_scenario, spec.n_common
    batch_size = spec.batch_size
    if batch_size is None:
        batch_size = _default_batch(n_per, n_common, model.saved_per_path(spec), n_dev)
    if not 0 <= spec.n_full_paths <= batch_size:
        raise ValueError(
            f"n_full_paths must be in [0, batch_size={batch_size}], got {spec.n_full_paths}"
        )
    cfg = model.configure(spec, batch_size, n_dev)
    levels = np.asarray(spec.quantiles, dtype=float)
    sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec("paths"))

    def ids(b):
        x = jnp.arange(batch_size, dtype=jnp.uint32) + jnp.uint32(b * batch_size)
        return x if sharding is None else jax.device_put(x, sharding)

    n_batches = n_per // batch_size
    ck_path, fp, done = None, "", 0
    if checkpoint:
        fp = _checkpoint.fingerprint(model, key, spec, batch_size, n_dev)
        ck_path = _checkpoint.default_path(fp) if checkpoint is True else os.fspath(checkpoint)

    acc = None
    edges = None
    if ck_path is not None and os.path.exists(ck_path):
        # The accumulator's structure, without running anything: to check a saved one (only
        # when there is one: tracing the programs for it costs as much as tracing them to run).
        shape = eqx.filter_eval_shape(_paths_jit, model, key, ids(0), cfg)
        ranges = eqx.filter_eval_shape(_batch_range, model, shape, cfg)
        edges0 = {
            k: jax.ShapeDtypeStruct(v[0].shape + (spec.bins + 1,), jnp.float32)
            for k, v in ranges.items()
        }
        template = eqx.filter_eval_shape(_batch_stats, model, shape, cfg, edges0, spec.n_full_paths)
        saved = _checkpoint.load(ck_path, fp, template, tuple(ranges))
        if saved is not None and 0 < saved[0] < n_batches:
            done, acc, saved_edges = saved
            edges = {k: jnp.asarray(v) for k, v in saved_edges.items()}

    # Batches go round-robin to the processes (one per host, or several on one machine):
    # in round r process i runs batch done + r P + i; the statistics of a round are
    # gathered and merged in batch order on every process, as one process merges them.
    n_proc, rank = jax.process_count(), jax.process_index()
    if n_proc > 1 and ck_path is not None:
        seen = np.asarray(_allgather(np.asarray(done, np.int32)))
        if np.any(seen != done):
            raise ValueError(
                f"the processes found different checkpoints (batches done: {seen.tolist()}): "
                "put the checkpoint on a file system that every process sees"
            )
    rounds = [list(range(b, min(b + n_proc, n_batches))) for b in range(done, n_batches, n_proc)]

    def mine(r: int) -> int:
        # A process without a batch in the last round runs a valid one and drops it.
        return rounds[r][rank] if rank < len(rounds[r]) else rounds[r][0]

    # The first call compiles (unless an earlier call with the same shapes did): its compile
    # time is what JAX reports for tracing, lowering and compiling, the rest is run time.
    with CompileTimer() as timer:
        t = time.perf_counter()
        first = _paths_jit(model, key, ids(mine(0)), cfg)
        jax.block_until_ready(first)
        first_s = time.perf_counter() - t
    compile_s = timer.seconds

    # A live bar on a terminal, a line per 5 % in a log (`_progress.py`).
    bar = progress_bar(
        total=n_batches, initial=done, disable=not progress, unit="batch", desc=desc or ""
    )
    run_s = 0.0
    steps_per_batch = n_common * batch_size * spec.n_steps
    try:
        for r, batches in enumerate(rounds):
            if r == 0:
                batch = first
                run_s += max(first_s - compile_s, 0.0)
            else:
                t = time.perf_counter()
                batch = _paths_jit(model, key, ids(mine(r)), cfg)
                jax.block_until_ready(batch)
                run_s += time.perf_counter() - t
            if edges is None:
                # From the range of the first batch (process 0's in a several-process run).
                rng = jax.device_get(_batch_range(model, batch, cfg))
                if n_proc > 1:
                    rng = jax.tree.map(lambda x: np.asarray(x)[0], _allgather(rng))
                edges = {k: jnp.asarray(_edges_from_range(v, spec.bins)) for k, v in rng.items()}
            st = jax.device_get(_batch_stats(model, batch, cfg, edges, spec.n_full_paths))
            if n_proc == 1:
                per_batch = [st]
            else:
                every = _allgather(st)
                per_batch = [
                    jax.tree.map(lambda x, j=j: np.asarray(x)[j], every)
                    for j in range(len(batches))
                ]
            for st in per_batch:
                acc = st if acc is None else _merge(acc, st)
            b = batches[-1]
            if ck_path is not None and b + 1 < n_batches and rank == 0:
                if not _checkpoint.save(ck_path, fp, b + 1, acc, edges):
                    ck_path = None
            bar.update(len(batches))
            bar.set_postfix(path_steps_per_s=f"{steps_per_batch * (b + 1) / max(run_s, 1e-12):.3g}")
    finally:
        bar.close()
    if ck_path is not None and rank == 0:
        with contextlib.suppress(FileNotFoundError):  # an identical run may have removed it
            os.remove(ck_path)

    M = n_common
    mom = acc["moments"]
    return EnsembleStatistics(
        mean={k: np.asarray(v.mean) for k, v in mom.items()},
        var={k: np.asarray(v.variance) for k, v in mom.items()},
        stderr={k: _cluster_stderr(acc["scen"][k], n_per, v, M) for k, v in mom.items()},
        scenario_mean={k: np.asarray(v) / n_per for k, v in acc["scen"].items()},
        quantiles={
            k: histogram_quantiles(v, np.asarray(edges[k]), levels) for k, v in acc["hist"].items()
        },
        per_scenario={k: np.asarray(v) for k, v in acc["per_scenario"].items()},
        full={k: np.asarray(v) for k, v in acc["full"].items()},
        quantile_levels=levels,
        run=RunInfo(
            n_paths=int(spec.n_paths),
            n_common=int(n_common),
            n_steps=int(spec.n_steps),
            batch_size=int(batch_size),
            n_devices=int(n_dev),
            run_seconds=float(run_s),
            compile_seconds=float(compile_s),
            path_steps_per_second=float(spec.n_paths * spec.n_steps / max(run_s, 1e-12)),
            jump_overflow=int(acc["overflow"]),
        ),
    )
