r"""An implicit solver for games of many producers, whose Riccati system is stiff.

Producers meet only through three totals, $s = (\sum_j \alpha_j/r_j, \sum_j k_j, \sum_j m_j)$
(`riccati_totals`), so the Riccati field is aggregative: its
Jacobian is block diagonal (one $4\times4$ block per producer) plus rank 3. With many producers
$\beta$ relaxes at a rate of about $2\eta\sum_j k_j$, which grows with $n$ and forces an explicit
solver into steps of order $1/n$; an implicit one is not so limited, and with the Woodbury solve
of `mj._structured` each of its Newton systems costs $O(n)$.
"""

import diffrax

from .._structured import AbstractAggregativeField, AggregativeChord
from ._riccati import riccati_local, riccati_totals

#: diffrax's implicit Runge-Kutta solvers for an ODETerm (their stages are solved in f-space).
_METHODS = {
    "Kvaerno3": diffrax.Kvaerno3,
    "Kvaerno4": diffrax.Kvaerno4,
    "Kvaerno5": diffrax.Kvaerno5,
}


class RiccatiField(AbstractAggregativeField):
    """The price game's Riccati right-hand side in aggregative form (the same function as
    [`riccati_vector_field`][mftg_jax.price.riccati_vector_field]); `args` is the game."""

    def totals(self, y, args):
        return riccati_totals(y, args)

    def local(self, t, y, totals, args):
        return riccati_local(t, y, totals, args)


def structured_solver(method: str = "Kvaerno5", root_find_max_steps: int = 10):
    r"""A diffrax implicit solver for the price game's Riccati system whose Newton systems
    cost $O(n)$: pass it to [`solve_riccati`][mftg_jax.price.solve_riccati].

    The stage equations $z = f(t_i, \hat y_i + c z)$ are solved by a chord iteration on the
    Newton matrix $I - c\,\partial f/\partial y$, block diagonal plus rank 3 and solved by the
    Woodbury identity (`AggregativeChord` of the core module `mftg_jax._structured`), with the
    step-size controller's tolerances. The Runge-Kutta method is diffrax's.

    ```python
    sol = mj.price.solve_riccati(game, solver=mj.price.structured_solver())
    ```

    Its step count stays near 50-70 where `Tsit5`'s grows like $n$ (116 steps at $n = 10^3$,
    9,516 at $10^5$); it is the faster from between 5,000 and 10,000 producers on
    (`benchmarks/riccati_stiff.py`), `Tsit5` (the default) below.
    Its dense output is diffrax's cubic Hermite interpolation between the (few, long) steps;
    use `SaveAt(ts=...)` for values at given times to the solver's tolerance (and, for many
    producers, to keep no per-step coefficients). Reverse-mode gradients go through
    optimistix's implicit adjoint of each stage, which solves a dense system: use them on
    small games only.

    **Arguments:**

    - `method`: the diffrax solver, one of `"Kvaerno5"` (default), `"Kvaerno4"`,
      `"Kvaerno3"` (the last two take several times more steps at rtol = atol = 1e-8).
    - `root_find_max_steps`: chord iterations per stage before the step is rejected.

    **Returns:** the diffrax solver.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if not (isinstance(root_find_max_steps, int) and root_find_max_steps >= 1):
        raise ValueError(f"root_find_max_steps must be an int >= 1, got {root_find_max_steps!r}")
    root_finder = diffrax.with_stepsize_controller_tols(AggregativeChord)(field=RiccatiField())
    return _METHODS[method](root_finder=root_finder, root_find_max_steps=root_find_max_steps)
