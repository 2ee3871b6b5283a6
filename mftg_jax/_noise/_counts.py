r"""Counter-based Poisson counts of several marks on a fixed grid, with per-scenario rates.

The count of mark $c$ over grid step $k$ for the element with counters $(m, j)$ (scenario,
path) is a pure function of `(key, k, c, m, j)`: one Threefry-2x32 hash of the counter pair
under the key `fold_in(fold_in(key, k), c)`, inverted exactly against the Poisson law of the
step's rate $\nu_c\Delta t$ (up to the $2^{-32}$ resolution of the uniform word, truncated at
`max_count` arrivals where the truncated mass is below that resolution). The rate may differ
between elements (e.g. with a regime that the scenario's common noise sets), so the counts
are those of a Poisson process whose intensity is frozen over the step.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from ._levy_path import _hash, _survival_thresholds, _uniform_pm1


class GridCounts(eqx.Module):
    """Poisson counts of `n_marks` marks per grid step for a batch of counters.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `scenario`, `path`: uint32 counter arrays that broadcast to the batch shape.
    - `n_marks`: number of marks $C$.
    - `max_count`: the Poisson truncation (see `poisson_max_count`).
    """

    key: PRNGKeyArray
    scenario: Array
    path: Array
    n_marks: int = eqx.field(static=True)
    max_count: int = eqx.field(static=True, default=8)

    def counts(self, step, rate_dt: Array) -> Array:
        """Counts of step `step`, shape `batch + (C,)`; `rate_dt` broadcasts to that shape."""
        shape = jnp.broadcast_shapes(self.scenario.shape, self.path.shape)
        rate_dt = jnp.broadcast_to(rate_dt, shape + (self.n_marks,))
        thr = jax.vmap(lambda x: _survival_thresholds(x, self.max_count))(rate_dt.reshape(-1))
        thr = thr.reshape(shape + (self.n_marks, self.max_count))
        k_step = jax.random.fold_in(self.key, jnp.asarray(step, jnp.uint32))
        out = []
        for c in range(self.n_marks):
            _, w = _hash(jax.random.fold_in(k_step, c), self.scenario, self.path)
            out.append(jnp.sum((w[..., None] < thr[..., c, :]).astype(jnp.int32), axis=-1))
        if not out:
            return jnp.zeros(shape + (0,), jnp.int32)
        return jnp.stack(out, axis=-1)


def counter_uniform(key: PRNGKeyArray, step, scenario: Array, path: Array, dtype) -> Array:
    """A uniform on $(0, 1)$ per element, a pure function of `(key, step, scenario, path)`."""
    w, _ = _hash(jax.random.fold_in(key, jnp.asarray(step, jnp.uint32)), scenario, path)
    return ((_uniform_pm1(w, jnp.float32) + 1) / 2).astype(dtype)
