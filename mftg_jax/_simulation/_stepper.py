r"""The grid stepper shared by every family's ensemble: one `diffeqsolve` over a fixed grid.

A family writes its dynamics as an [`AbstractEnsembleTerm`][] whose `step(scheme, t0, t1, y)`
advances the whole batched state (all scenarios and paths) over one grid step; the noise of
the step comes from counter-based paths (`_noise/`), so the state at a grid time is a pure
function of the key and the (step, scenario, path) counters. [`integrate`][] runs the steps as
one `diffrax.diffeqsolve` with `StepTo` on the grid and saves what the family picks at the
chosen grid times. The interpolation of a step is its end state, exact at the grid times,
which are the only times saved.
"""

import abc
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree


class AbstractEnsembleTerm(diffrax.AbstractTerm):
    """A family's batched dynamics on the grid (drift, noise, running quantities)."""

    @abc.abstractmethod
    def step(self, scheme: str, t0: Array, t1: Array, y: PyTree) -> PyTree:
        """The state at `t1` from the state `y` at `t0` under `scheme`."""


class _GridEnd(diffrax.AbstractLocalInterpolation):
    """A step's end state: exact at the grid times, which are the only times saved.

    Keeping only the end state spares a copy of the batch per step (a linear interpolation
    would keep the start state alive as well).
    """

    t0: Any
    t1: Any
    y1: Any

    def evaluate(self, t0, t1=None, left=True):
        if t1 is not None:
            raise NotImplementedError("the ensemble's steps are only evaluated at grid times")
        return self.y1


class GridStep(diffrax.AbstractSolver):
    """One grid step of an ensemble under `scheme` (the term's `step`)."""

    scheme: str = eqx.field(static=True)
    term_structure = diffrax.AbstractTerm
    interpolation_cls = _GridEnd

    def order(self, terms):
        return 1 if self.scheme == "euler" else 2

    def strong_order(self, terms):
        return 0.5

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        # diffeqsolve wraps the term (integration direction); the step needs ours.
        term = getattr(terms, "term", terms)
        y1 = term.step(self.scheme, t0, t1, y0)
        return y1, None, dict(y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


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
    subs = [diffrax.SubSaveAt(t1=True)]
    if later:
        subs.append(diffrax.SubSaveAt(ts=grid[jnp.asarray(later)], fn=pick))
    if save_idx[0] == 0:
        subs.append(diffrax.SubSaveAt(t0=True, fn=pick))
    sol = diffrax.diffeqsolve(
        term,
        GridStep(scheme),
        t0=grid[0],
        t1=grid[-1],
        dt0=None,
        y0=y0,
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=diffrax.StepTo(ts=grid),
        max_steps=K,
    )
    yT, *saved = sol.ys
    yT = jax.tree.map(lambda x: x[-1], yT)
    saved = saved[::-1]  # t0 first
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs), *saved)
    return yT, stacked
