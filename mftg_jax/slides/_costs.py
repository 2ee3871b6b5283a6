r"""The slides' costs table convention: a sum over 1000 instants, not an integral.

`costs` is $\sum_{k=0}^{K-1} E[C_i(t_k)]$ over $K = 1000$ equally spaced instants
$t_k = t_0 + k(t_1-t_0)/(K-1)$, *both end points included* (`numpy.linspace(t0, t1, K)`).
The slides' table (180430, 93526, 57159 for Scenario 2) has the magnitude of the sum, not of
the integral [`mftg_jax.price.cost_integrals`][] (which is about $(t_1-t_0)/(K-1)$ times
smaller: 270, 149, 95).
"""

from jaxtyping import Array, ArrayLike

from .._custom_types import PerProducer
from ..price import AbstractRiccatiSolution, cost_instants as _instants, solve_expectations

NUM_COST_INSTANTS = 1000


def cost_instants(t0: ArrayLike, t1: ArrayLike, num: int = NUM_COST_INSTANTS) -> Array:
    """The `num` equally spaced instants of the sum convention, end points included."""
    return _instants(t0, t1, num)


def costs(riccati: AbstractRiccatiSolution, num: int = NUM_COST_INSTANTS, **kwargs) -> PerProducer:
    r"""$\sum_{k=0}^{K-1} E[C_i(u_i(t_k))]$ over $K$ = `num` equally spaced instants of
    $[t_0, t_1]$, both end points included (the slides' costs table convention).

    **Arguments:**

    - `riccati`: the equilibrium or a candidate.
    - `num`: the number of instants $K \ge 2$ (1000 in the slides).
    - `kwargs`: passed to [`mftg_jax.price.solve_expectations`][].

    **Returns:** shape `(n,)`.
    """
    if num < 2:
        raise ValueError(f"num must be >= 2 (instants include both end points), got {num}")
    return solve_expectations(riccati, **kwargs).sums(num)
