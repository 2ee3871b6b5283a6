r"""Streaming ensemble statistics merged across batches of paths.

Means and variances merge exactly across batches (Chan, Golub and LeVeque's pairwise update):
with counts $n_a, n_b$, means $\bar x_a, \bar x_b$ and sums of squared deviations $M_a, M_b$,

$$n = n_a + n_b,\quad \bar x = \bar x_a + \delta\,n_b/n,\quad
  M = M_a + M_b + \delta^2 n_a n_b / n,\qquad \delta = \bar x_b - \bar x_a .$$

Quantiles come from fixed-edge histograms (edges set from the first batch, with an under- and
an overflow bin), merged by adding counts; a quantile is exact to within one bin width.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array
import numpy as np


class Moments(eqx.Module):
    """Count, mean and sum of squared deviations along a reduced axis (merge with `merge`)."""

    count: Array
    mean: Array
    m2: Array

    @classmethod
    def of(cls, x: Array, axis) -> "Moments":
        """Two-pass moments of `x` over `axis` (an int or tuple)."""
        axis = axis if isinstance(axis, tuple) else (axis,)
        n = int(np.prod([x.shape[a] for a in axis]))
        mean = jnp.mean(x, axis=axis)
        d = x - jnp.expand_dims(mean, axis)
        return cls(jnp.asarray(n, mean.dtype), mean, jnp.sum(d * d, axis=axis))

    def merge(self, other: "Moments") -> "Moments":
        """Chan's pairwise merge (module docstring)."""
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / n)
        return Moments(n, mean, m2)

    @property
    def variance(self) -> Array:
        """Unbiased sample variance $M/(n-1)$."""
        return self.m2 / jnp.maximum(self.count - 1, 1)

    @property
    def stderr(self) -> Array:
        r"""$\sqrt{\mathrm{var}/n}$."""
        return jnp.sqrt(self.variance / self.count)


def histogram_edges(x: np.ndarray, bins: int, axis) -> np.ndarray:
    """Edges per remaining index of `x`: the batch's range widened by half of it each way."""
    lo = np.min(x, axis=axis)
    hi = np.max(x, axis=axis)
    width = np.maximum(hi - lo, 1e-6 * np.maximum(np.abs(hi), 1.0))
    lo, hi = lo - width / 2, hi + width / 2
    f = np.linspace(0.0, 1.0, bins + 1)
    return lo[..., None] + (hi - lo)[..., None] * f


def histogram_counts(x: Array, edges: Array) -> Array:
    """Counts of `x (P, ...)` in `edges (..., bins+1)` plus under/overflow: `(..., bins+2)`."""
    lo, hi = edges[None, ..., 0], edges[None, ..., -1]
    bins = edges.shape[-1] - 1
    pos = (x - lo) / (hi - lo) * bins
    idx = jnp.clip(jnp.floor(pos).astype(jnp.int32) + 1, 0, bins + 1)
    rest = x.shape[1:]
    cell = jnp.arange(int(np.prod(rest)), dtype=jnp.int32).reshape(rest)
    flat = (cell[None] * (bins + 2) + idx).ravel()
    counts = jnp.zeros(int(np.prod(rest)) * (bins + 2), jnp.int32).at[flat].add(1)
    return counts.reshape(rest + (bins + 2,))


def histogram_quantiles(counts: np.ndarray, edges: np.ndarray, levels) -> np.ndarray:
    """Quantiles `(Q, ...)` by linear interpolation of the histogram's CDF within bins."""
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    lead = counts.shape[:-1]
    c2 = counts.reshape(-1, counts.shape[-1])
    e2 = edges.reshape(-1, edges.shape[-1])
    out = np.empty((len(levels), c2.shape[0]))
    for i in range(c2.shape[0]):
        total = c2[i].sum()
        # Under/overflow mass sits at the outer edges.
        cdf = np.concatenate([[0.0], np.cumsum(c2[i][1:-1])]) + c2[i][0]
        for qi, q in enumerate(levels):
            out[qi, i] = np.interp(q * total, cdf, e2[i]) if total > 0 else np.nan
    return out.reshape((len(levels),) + lead)
