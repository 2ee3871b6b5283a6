r"""Counter-based Brownian and compound-Poisson noise on a fixed time grid, as diffrax paths.

On the grid $t_k = t_0 + k\,\Delta t$, $k = 0..K$, the increment over step $k$ of the path
with scenario index $m$ and path index $j$ is a pure function of `(key, k, m, j)`: the step
key is `jax.random.fold_in(key, k)` and the pair $(m, j)$ is the counter of one Threefry-2x32
hash. Hence the same key gives the same path whatever the batching of paths or their split
over devices, and nothing is stateful.

One hash per path-step gives two 32-bit words:

- the first word is a standard normal (through $\sqrt2\,\mathrm{erf}^{-1}$ of its top 23
  bits; float64 adds 20 low bits from a second hash, so float32 and float64 paths agree up
  to the float32 uniform's resolution $2^{-22}$ times $dz/du$);
- the second word $U$ is the Poisson count by inversion,
  $N = \#\{k \ge 1 : U < P(\mathrm{Poisson}(\nu\Delta t) \ge k)\,2^{32}\}$: an exact Poisson
  law up to the $2^{-32}$ resolution of $U$ (the count is truncated at `max_count`, chosen so
  that the truncated mass is below that resolution).

Jumps are rare, so their sizes are sampled sparsely: within each tile of paths the path-steps
with $N > 0$ are compacted into a bounded number of slots, each slot draws `max_count` sizes
and uniform jump times from its own counter key, and the sums are added back by a scatter of
the slots only. The compaction needs no scatter and no prefix sum over the paths: the jump
flags of 32 paths are packed into one word, a prefix sum of the words' population counts
locates the word of slot $s$ by binary search, and a rank-select inside the word its bit.
The number of slots `S` is set so that more jumping paths than slots in one tile-step has
probability below $10^{-12}$; if it happens anyway, it is counted (`overflow`), never
silent. The compensated increment is $\sum_k Y_k - \nu E[Y]\Delta t$.

The exponential scheme needs $\int_{t_k}^{t_{k+1}} e^{-\kappa(t_{k+1}-s)}\,dL_s$; with a
`decay` $\kappa$ the Brownian part is the same normal scaled to the exact variance
$(1-e^{-2\kappa\Delta t})/(2\kappa)$ and each jump is weighted by
$e^{-\kappa(t_{k+1}-\tau)}$ at its uniform time $\tau$ (exact in distribution).
"""

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray
import numpy as np

from .._validation import is_concrete
from ._jumps import CompoundPoisson

_TWO32 = 4294967296.0
# Truncation mass below the resolution of a 32-bit uniform.
_TAIL = 2.0**-33
# Probability that a tile-step has more jumping paths than slots.
_SLOT_TAIL = 1e-12


def phi1(z: Array) -> Array:
    r"""$\varphi_1(z) = (e^z - 1)/z$, smooth at $z = 0$ (values and gradients)."""
    small = jnp.abs(z) < 1e-4
    zs = jnp.where(small, 1.0, z)
    return jnp.where(small, 1 + z / 2 + z * z / 6, jnp.expm1(zs) / zs)


def poisson_max_count(rate_dt: float) -> int:
    """Smallest `K` with $P(\\mathrm{Poisson}(\\nu\\Delta t) > K) < 2^{-33}$ (at least 1)."""
    x = float(rate_dt)
    if not x > 0:
        return 1
    if x > 40:
        raise ValueError(f"jump intensity x dt must be <= 40 per step, got {x:g}; use more steps")
    pmf, cdf, k = math.exp(-x), math.exp(-x), 0
    while 1 - cdf >= _TAIL and k < 400:
        k += 1
        pmf *= x / k
        cdf += pmf
    # 1 - cdf loses precision near 1e-16; a direct tail sum is exact enough here.
    while _tail_sum(x, k + 1) >= _TAIL:
        k += 1
    return max(k, 1)


def jump_truncation(
    jumps: CompoundPoisson, horizon: tuple[float, float] | tuple[None, None], n_steps: int,
    override: int | None = None,
) -> tuple[bool, int]:  # fmt: skip
    """Whether `jumps` can occur, and the per-step Poisson truncation of a grid of `n_steps`.

    A traced intensity (or horizon) can be non-zero and gets the truncation `override` or 8;
    a concrete one gets `override` or `poisson_max_count` of its rate per step.
    """
    on = not (is_concrete(jumps.intensity) and float(jumps.intensity) == 0.0)
    if not on:
        return False, 1
    if override is not None:
        return True, int(override)
    if is_concrete(jumps.intensity) and horizon[0] is not None:
        dt = (horizon[1] - horizon[0]) / n_steps
        return True, poisson_max_count(float(jumps.intensity) * dt)
    return True, 8


def _tail_sum(x: float, k: int) -> float:
    pmf = math.exp(-x + k * math.log(x) - math.lgamma(k + 1)) if x > 0 else 0.0
    total, i = 0.0, k
    while pmf > 1e-300 and i < k + 400:
        total += pmf
        i += 1
        pmf *= x / i
    return total


def jump_slots(tile: int, rate_dt: float) -> int:
    """Slots per tile so that more than that many jumping paths has probability < 1e-12."""
    p = -math.expm1(-max(float(rate_dt), 0.0))
    if p <= 0:
        return 1
    mu = tile * p
    if mu > 500:
        # Bernstein: P(S - mu >= d) <= exp(-d^2 / (2 (mu + d/3))) for S ~ Binomial(tile, p).
        c = -math.log(_SLOT_TAIL)
        d = c / 3 + math.sqrt(c * c / 9 + 2 * c * mu)
        return int(min(tile, math.ceil(mu + d)))
    # Poisson(mu) upper tail bounds Binomial(tile, p) closely for small p.
    s, pmf, cdf = 0, math.exp(-mu), math.exp(-mu)
    while 1 - cdf >= _SLOT_TAIL and s < tile:
        s += 1
        pmf *= mu / s
        cdf += pmf
    while s < tile and _tail_sum(mu, s + 1) >= _SLOT_TAIL:
        s += 1
    return int(min(tile, max(s, 1)))


def _survival_thresholds(rate_dt: Array, max_count: int) -> Array:
    r"""$\lfloor P(N \ge k)\,2^{32}\rfloor$, $k = 1..K$, as uint32 (tail sums: no cancellation)."""
    x = jnp.maximum(rate_dt, 0.0)
    n_terms = max_count + 24
    i = jnp.arange(n_terms, dtype=x.dtype)
    log_x = jnp.log(jnp.where(x > 0, x, 1.0))
    logpmf = -x + i * log_x - jax.lax.lgamma(i + 1)
    pmf = jnp.where(x > 0, jnp.exp(logpmf), (i == 0).astype(x.dtype))
    # survival[k] = sum_{i >= k} pmf[i]
    survival = jnp.cumsum(pmf[::-1])[::-1]
    s = survival[1 : max_count + 1]
    s = jnp.clip(s * _TWO32, 0.0, _TWO32 - 1)
    return jax.lax.stop_gradient(s).astype(jnp.uint32)


def _uniform_pm1(w: Array, dtype, low: Array | None = None) -> Array:
    """Open-interval uniform on (-1, 1) from the top bits of `w` (plus `low` bits in float64)."""
    if jnp.dtype(dtype) == jnp.float64:
        hi = (w >> 9).astype(jnp.float64)
        lo = (low >> 12).astype(jnp.float64)
        k = hi * 2.0**20 + lo
        return (k + 0.5) * 2.0**-42 - 1.0
    return ((w >> 9).astype(dtype) + 0.5) * jnp.asarray(2.0**-22, dtype) - 1.0


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k0: Array, k1: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
    """Threefry-2x32 (20 rounds) of the counter pairs `(x0, x1)` under the key `(k0, k1)`.

    The same function as `jax.extend.random.threefry_2x32` (bit for bit), written out round
    by round so that the compiler fuses it with what consumes the words (JAX's CPU lowering
    is a loop that goes through memory five times).
    """
    u = jnp.uint32
    ks = (k0, k1, k0 ^ k1 ^ u(0x1BD11BDA))
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << u(r)) | (x1 >> u(32 - r))
            x1 = x0 ^ x1
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + u(i + 1)
    return x0, x1


def _hash(key: PRNGKeyArray, hi: Array, lo: Array) -> tuple[Array, Array]:
    """Threefry-2x32 of the counter pair `(hi, lo)` (broadcast), both output words."""
    hi, lo = jnp.broadcast_arrays(hi.astype(jnp.uint32), lo.astype(jnp.uint32))
    kd = jax.random.key_data(key)
    return threefry2x32(kd[0], kd[1], hi, lo)


def _select_rank(word: Array, rank: Array) -> Array:
    """Position of the set bit of rank `rank` (0 = lowest) in the 32-bit `word`."""
    pos = jnp.zeros(word.shape, jnp.uint32)
    for width in (16, 8, 4, 2, 1):
        low = (word >> pos) & jnp.uint32((1 << width) - 1)
        c = jax.lax.population_count(low)
        up = rank >= c
        rank = jnp.where(up, rank - c, rank)
        pos = jnp.where(up, pos + jnp.uint32(width), pos)
    return pos


def compact_flags(flags: Array, slots: int) -> tuple[Array, Array]:
    r"""Indices of the first `slots` true entries of the 1-d `flags` (in order) and their count.

    The flags of 32 entries are packed into a word; the inclusive prefix sum $c_w$ of the
    words' population counts gives slot $s$ the word $w_s = \min\{w : c_w > s\}$ (binary
    search) and the bit of rank $s - c_{w_s - 1}$ in it (rank-select). Empty slots get the
    index `len(flags)` (out of range: a `mode="drop"` scatter ignores them).

    **Returns:** `(index (slots,), total)`, `total` the number of true flags.
    """
    n = flags.shape[-1]
    n_words = -(-n // 32)
    f = jnp.pad(flags.astype(jnp.uint32), (0, 32 * n_words - n)).reshape(n_words, 32)
    words = jnp.sum(f << jnp.arange(32, dtype=jnp.uint32)[None, :], axis=-1, dtype=jnp.uint32)
    pc = jax.lax.population_count(words).astype(jnp.int32)
    incl = jnp.cumsum(pc)
    total = incl[-1]
    s = jnp.arange(slots, dtype=jnp.int32)
    w = jnp.minimum(jnp.searchsorted(incl, s, side="right"), n_words - 1).astype(jnp.int32)
    rank = (s - (incl[w] - pc[w])).astype(jnp.uint32)
    bit = _select_rank(words[w], rank).astype(jnp.int32)
    index = jnp.where(s < total, 32 * w + bit, n)
    return index, total


class LevyIncrements(eqx.Module):
    """Brownian and compensated compound-Poisson increments of one grid step."""

    brownian: Array
    jumps: Array
    overflow: Array


class SparseJumps(eqx.Module):
    r"""Compensated jump increments of one grid step held sparsely.

    The dense increment over the batch shape `(..., P)` is $-c$ everywhere plus `value`
    at the tile-local positions `index`: the last axis is split into tiles of `tile` paths,
    `index` and `value` are `(..., P // tile, slots)` (an `index` equal to `tile` is an
    empty slot).
    """

    compensator: Array
    index: Array
    value: Array
    overflow: Array
    tile: int = eqx.field(static=True)

    def add_to(self, x: Array) -> Array:
        """`x` plus these increments (a scatter of the slots, tile by tile)."""
        shape = x.shape
        xt = (x - self.compensator).reshape(self.index.shape[:-1] + (self.tile,))
        lead = xt.shape[:-1]
        flat = int(np.prod(lead))

        def one(xr, i, v):
            return xr.at[i].add(v, mode="drop")

        out = jax.vmap(one)(
            xt.reshape(flat, self.tile),
            self.index.reshape(flat, -1),
            self.value.reshape(flat, -1).astype(x.dtype),
        )
        return out.reshape(shape)


class DenseJumps(eqx.Module):
    """Compensated jump increments of one grid step as a dense array (`add_to` adds them)."""

    jumps: Array
    overflow: Array

    def add_to(self, x: Array) -> Array:
        return x + self.jumps


class GridLevyPath(diffrax.AbstractPath):
    r"""Brownian motion and compensated compound-Poisson noise on a fixed grid, counter-based.

    $L_t = (B_t, \int_0^t\!\!\int \mu\,\tilde N(ds, d\theta))$ for each element of a batch
    indexed by counters $(m, j)$ (scenario, path); increments over grid step $k$ are a pure
    function of `(key, k, m, j)` (module docstring).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `t0`, `t1`: the grid's ends; `n_steps`: number of grid steps $K$.
    - `scenario`, `path`: uint32 counter arrays that broadcast to the batch shape.
    - `jumps`: a [`CompoundPoisson`][] or `None` for a pure Brownian path.
    - `max_count`: the Poisson truncation (see `poisson_max_count`).
    - `tile`: paths per compaction tile along the last axis (a divisor of its length).
    - `slots`: jumping path-steps per tile compacted per step (`jump_slots`); `None`
      draws sizes densely (for small batches such as the common noise).
    - `dtype`: float32 or float64.

    **Returns:** `evaluate(s, u)` gives the pair $(B_u - B_s, J_u - J_s)$ as a
    [`LevyIncrements`][] for grid-aligned `s < u`; `noise(k)` gives step $k$'s Brownian
    increment and its jumps in sparse form (what the ensemble's step uses).
    """

    key: PRNGKeyArray
    t0: Array
    t1: Array
    scenario: Array
    path: Array
    jumps: CompoundPoisson | None
    n_steps: int = eqx.field(static=True)
    max_count: int = eqx.field(static=True, default=1)
    tile: int | None = eqx.field(static=True, default=None)
    slots: int | None = eqx.field(static=True, default=None)
    dtype: str = eqx.field(static=True, default="float32")

    @property
    def dt(self) -> Array:
        return (self.t1 - self.t0) / self.n_steps

    @property
    def shape(self) -> tuple[int, ...]:
        return jnp.broadcast_shapes(self.scenario.shape, self.path.shape)

    def step_index(self, t) -> Array:
        """The grid step that starts at time `t` (rounded)."""
        return jnp.round((t - self.t0) / self.dt).astype(jnp.int32)

    def increment(self, step, decay=None) -> LevyIncrements:
        r"""Increments over grid step `step`; with `decay` $\kappa$ the weighted integrals
        $\int e^{-\kappa(t_{k+1}-s)}dL_s$ (exact in distribution)."""
        dtype = jnp.dtype(self.dtype)
        brownian, jumps = self.noise(step, decay)
        if jumps is None:
            return LevyIncrements(brownian, jnp.zeros((), dtype), jnp.zeros((), jnp.int32))
        dense = jumps.add_to(jnp.zeros(self.shape, dtype))
        return LevyIncrements(brownian, dense, jumps.overflow)

    def noise(self, step, decay=None) -> tuple[Array, SparseJumps | DenseJumps | None]:
        r"""Step `step`'s Brownian increment (dense) and jump increments (sparse when `slots`
        is set, `None` without jumps); with `decay` as in [`GridLevyPath.increment`][]."""
        dtype = jnp.dtype(self.dtype)
        dt = self.dt.astype(dtype)
        step = jnp.asarray(step, jnp.uint32)
        k_step = jax.random.fold_in(self.key, step)
        w0, w1 = _hash(k_step, self.scenario, self.path)
        low = None
        if dtype == jnp.float64:
            low, _ = _hash(jax.random.fold_in(k_step, 0x5EED), self.scenario, self.path)
        z = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.scipy.special.erfinv(
            _uniform_pm1(w0, dtype, low)
        )
        if decay is None:
            var = dt
        else:
            decay = jnp.asarray(decay, dtype)
            var = dt * phi1(-2 * decay * dt)
        brownian = jnp.sqrt(var) * z
        if self.jumps is None:
            return brownian, None
        return brownian, self._jumps(k_step, w1, dt, decay, dtype)

    def _jumps(self, k_step, w1, dt, decay, dtype):
        cp = self.jumps
        nu = cp.intensity.astype(dtype)
        thr = _survival_thresholds(nu * dt, self.max_count)

        def count_of(w):  # exact inversion, up to the 2^-32 resolution
            t = thr.reshape((1,) * w.ndim + thr.shape)
            return jnp.sum((w[..., None] < t).astype(jnp.int32), axis=-1, dtype=jnp.int32)

        k_sizes = jax.random.fold_in(k_step, 0x1D1E)
        comp_weight = dt if decay is None else dt * phi1(-decay * dt)
        compensator = cp.drift_compensator.astype(dtype) * comp_weight
        shape = w1.shape
        scen = jnp.broadcast_to(self.scenario, shape)
        path = jnp.broadcast_to(self.path, shape)
        if self.slots is None:
            sums = self._slot_sums(k_sizes, scen, path, count_of(w1), dt, decay, dtype)
            return DenseJumps(sums - compensator, jnp.zeros((), jnp.int32))
        tile = self.tile or shape[-1]
        tshape = shape[:-1] + (shape[-1] // tile, tile)
        w_t, s_t, p_t = (a.reshape(-1, tile) for a in (w1, scen, path))

        def one_tile(w, s, p):
            # Dense work is one comparison per path; counts are taken at the slots only.
            idx, total = compact_flags(w < thr[0], self.slots)
            cs = count_of(w.at[idx].get(mode="fill", fill_value=0xFFFFFFFF))
            si = s.at[idx].get(mode="fill", fill_value=0)
            pi = p.at[idx].get(mode="fill", fill_value=0)
            vals = self._slot_sums(k_sizes, si, pi, cs, dt, decay, dtype)
            return idx, vals, jnp.maximum(total - self.slots, 0)

        idx, vals, over = jax.vmap(one_tile)(w_t, s_t, p_t)
        sshape = tshape[:-1] + (self.slots,)
        return SparseJumps(
            compensator,
            idx.reshape(sshape),
            vals.reshape(sshape),
            jnp.sum(over).astype(jnp.int32),
            tile=tile,
        )

    def _slot_sums(self, k_sizes, scen, path, count, dt, decay, dtype):
        """Sum of `count` sizes (each decay-weighted at a uniform time) per element."""
        kmax = self.max_count
        cp = self.jumps

        def one(s, p, c):
            k = jax.random.fold_in(jax.random.fold_in(k_sizes, s), p)
            k_y, k_t = jax.random.split(k)
            y = cp.size.sample(k_y, (kmax,), dtype)
            mask = jnp.arange(kmax) < c
            if decay is not None:
                tau = jax.random.uniform(k_t, (kmax,), dtype)
                y = y * jnp.exp(-decay * dt * tau)
            return jnp.sum(jnp.where(mask, y, 0))

        f = jax.vmap(one)
        flat = f(scen.ravel(), path.ravel(), count.ravel())
        return flat.reshape(count.shape)

    def evaluate(self, t0, t1=None, left=True) -> LevyIncrements:
        """Increment between grid times `t0 < t1` (or the value at `t0` when `t1` is None)."""
        del left
        if t1 is None:
            t0, t1 = self.t0, t0
        n0, n1 = self.step_index(t0), self.step_index(t1)

        def body(k, acc):
            inc = self.increment(k)
            return jax.tree.map(jnp.add, acc, inc)

        zeros = jnp.zeros(self.shape, jnp.dtype(self.dtype))
        init = LevyIncrements(zeros, zeros, jnp.zeros((), jnp.int32))
        return jax.lax.fori_loop(n0, n1, body, init)
