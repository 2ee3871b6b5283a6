r"""The grid stepper shared by every family's ensemble: `lax.scan` over a fixed grid.

A family writes its dynamics as an [`AbstractEnsembleTerm`][] whose `step(scheme, t0, t1, y)`
advances the whole batched state (all scenarios and paths) over one grid step; the noise of
the step comes from counter-based paths (`_noise/`), so the state at a grid time is a pure
function of the key and the (step, scenario, path) counters. [`integrate`][] runs the steps as
nested `lax.scan`s over the grid and saves what the family picks at the chosen grid times.

The loop is a plain scan rather than `diffrax.diffeqsolve` with `StepTo`: the grid is fixed,
so there is no step-size control to share, and diffrax's run-time checks of the grid and of
the save times are host callbacks, which keep a program out of JAX's persistent compilation
cache (the command line's second calls would compile the ensemble again).
"""

import abc
from collections.abc import Callable
from typing import Any

import diffrax
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree
import numpy as np


class AbstractEnsembleTerm(diffrax.AbstractTerm):
    """A family's batched dynamics on the grid (drift, noise, running quantities)."""

    @abc.abstractmethod
    def step(self, scheme: str, t0: Array, t1: Array, y: PyTree) -> PyTree:
        """The state at `t1` from the state `y` at `t0` under `scheme`."""


def time_grid(t0: Array, t1: Array, n_steps: int, dtype) -> Array:
    """The grid $t_k = t_0 + k(t_1 - t_0)/K$, $k = 0..K$, with $t_K = t_1$ exactly."""
    t0, t1 = jnp.asarray(t0).astype(dtype), jnp.asarray(t1).astype(dtype)
    grid = t0 + (t1 - t0) * jnp.arange(n_steps + 1, dtype=dtype) / n_steps
    # The compiler may divide by K as a product with 1/K: pin the end to t1 exactly.
    return grid.at[-1].set(t1)


def integrate(
    term: AbstractEnsembleTerm,
    scheme: str,
    y0: PyTree,
    grid: Array,
    save_idx: tuple[int, ...],
    pick: Callable[[Any, PyTree, Any], PyTree],
) -> tuple[PyTree, PyTree]:
    """Step `y0` over the whole `grid`; returns the final state and `pick(t, y, None)` at the
    grid indices `save_idx` (stacked along a leading axis, in increasing time).

    `pick` must be a module-level function (a new closure per call defeats the jit cache).
    """
    K = grid.shape[0] - 1
    later = tuple(i for i in save_idx if i > 0)
    saved = []
    if save_idx[0] == 0:
        saved.append(jax.tree.map(lambda x: x[None], pick(grid[0], y0, None)))
    y, k = y0, 0
    runs = _segments(later)
    if len(runs) <= _MAX_RUNS:
        for length, count in runs:
            y, picks = _advance_and_save(term, scheme, y, grid, k, length, count, pick)
            saved.append(picks)
            k += length * count
    elif later:
        y, picks = _advance_uneven(term, scheme, y, grid, later, pick)
        saved.append(picks)
        k = later[-1]
    if k < K:
        y, _ = _advance_and_save(term, scheme, y, grid, k, K - k, 1, None)
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs), *saved)
    return y, stacked


# Save points in at most this many runs of equal spacing compile one scan per run; more
# (unevenly spaced points) compile one padded scan instead of hundreds.
_MAX_RUNS = 4


def _advance_uneven(term, scheme, y, grid, later: tuple[int, ...], pick):
    """Segments of unequal lengths ending at the grid indices `later`, saving after each.

    One outer scan over the segments, each an inner scan of the longest segment's length
    whose steps past the segment's own end leave the state unchanged (a select): at most
    `max length / mean length` times the steps of an even spacing, one compiled loop whatever
    the spacing. The masked steps run on valid grid intervals (indices clamped), so their
    discarded values are finite.
    """
    K = grid.shape[0] - 1
    ends = np.asarray(later, dtype=np.int32)
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int32)
    longest = int((ends - starts).max())

    def one_step(carry, i):
        y, s, e = carry
        k = jnp.minimum(s + i, K - 1)
        y1 = term.step(scheme, grid[k], grid[k + 1], y)
        keep = s + i < e
        y = jax.tree.map(lambda a, b: jnp.where(keep, a, b), y1, y)
        return (y, s, e), None

    @jax.checkpoint
    def segment(y, se):
        s, e = se
        (y, _, _), _ = jax.lax.scan(one_step, (y, s, e), jnp.arange(longest))
        return y, pick(grid[e], y, None)

    return jax.lax.scan(segment, y, (jnp.asarray(starts), jnp.asarray(ends)))


def _segments(later: tuple[int, ...]) -> list[tuple[int, int]]:
    """The save points as runs of equally long segments: `(length, count)` pairs."""
    runs: list[list[int]] = []
    prev = 0
    for i in later:
        length = i - prev
        if runs and runs[-1][0] == length:
            runs[-1][1] += 1
        else:
            runs.append([length, 1])
        prev = i
    return [(a, b) for a, b in runs]


def _advance_and_save(term, scheme, y, grid, k0: int, length: int, count: int, pick):
    """`count` segments of `length` grid steps from step `k0`, saving `pick` after each.

    Two nested `lax.scan`s: the outer over segments, the inner (rematerialised in reverse
    mode, `jax.checkpoint`) over the steps of one segment, so a gradient keeps one state per
    segment plus one segment's steps, not one per step.
    """

    def one_step(y, k):
        return term.step(scheme, grid[k], grid[k + 1], y), None

    @jax.checkpoint
    def segment(y, j):
        ks = k0 + j * length + jnp.arange(length)
        y, _ = jax.lax.scan(one_step, y, ks)
        out = None if pick is None else pick(grid[k0 + (j + 1) * length], y, None)
        return y, out

    return jax.lax.scan(segment, y, jnp.arange(count))
