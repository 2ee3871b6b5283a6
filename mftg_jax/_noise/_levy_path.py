r"""Counter-based Brownian and compound-Poisson noise on a fixed time grid, as diffrax paths.

On the grid $t_k = t_0 + k\,\Delta t$, $k = 0..K$, the increment over step $k$ of the path
with scenario index $m$ and path index $j$ is a pure function of `(key, k, m, j)`: the step
key is `jax.random.fold_in(key, k)` and the pair $(m, j)$ is the counter of one
Threefry-2x32 hash under the step key. Hence the same key gives the same path whatever the
batching of paths or their split over devices, and nothing is stateful.

One hash per path-step gives two 32-bit words $(W_0, W_1)$:

- the top 23 bits of $W_0$ are a standard normal (through $\sqrt2\,\mathrm{erf}^{-1}$;
  float64 adds 20 low bits from a second hash, so float32 and float64 paths agree up to the
  float32 uniform's resolution $2^{-22}$ times $dz/du$);
- $W_1$ is the Poisson count by inversion,
  $N = \#\{k \ge 1 : W_1 < P(\mathrm{Poisson}(\nu\Delta t) \ge k)\,2^{32}\}$: an exact Poisson
  law up to the $2^{-32}$ resolution of $W_1$ (the count is truncated at `max_count`, chosen
  so that the truncated mass is below that resolution).

The flag $N > 0$ is stored in the lowest bit of $W_0$, which the normal does not read, and
that one word per path is the only dense array the jumps need: it is computed once, in
memory, and read by both the normal and the jump compaction (without it the compiler, which
has no multi-output fusion on the CPU backend, evaluates the hash again in each consumer).

Jumps are rare, so their sizes are sampled sparsely: within each tile of paths the path-steps
with $N > 0$ are compacted into a bounded number of slots; each slot hashes its counter
$(m, j)$ again under the step key (for $N$), and arrival $i$ of the path-step hashes the
counter $(A, i)$ under the key made of the path-step's own words $(W_0, W_1)$: its two words
give the size (through the law's quantile function) and the uniform arrival time. The sums
are added back by a scatter of the slots only (dense batches, such as the common noise, draw
the same values for every element). The compaction needs no scatter and no prefix sum over
the paths: the jump flags of 32 paths are packed into one word, a prefix sum of the words'
population counts locates the word of slot $s$ by binary search, and a rank-select inside the
word its bit. The number of slots `S` is set so that more jumping paths than slots in one
tile-step has probability below $10^{-12}$; if it happens anyway, it is counted (`overflow`),
never silent. The compensated increment is $\sum_k Y_k - \nu E[Y]\Delta t$.

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


def _uniform01(w: Array, dtype, low: Array | None = None) -> Array:
    """Open-interval uniform on (0, 1) from the top bits of `w`; in float64 all 32 bits of `w`,
    or its top 23 and the top 20 of `low`."""
    if jnp.dtype(dtype) == jnp.float64:
        if low is None:
            return (w.astype(jnp.float64) + 0.5) * 2.0**-32
        k = (w >> 9).astype(jnp.float64) * 2.0**20 + (low >> 12).astype(jnp.float64)
        return (k + 0.5) * 2.0**-43
    return ((w >> 9).astype(dtype) + 0.5) * jnp.asarray(2.0**-23, dtype)


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
    return _hash_words(_key_words(key), hi, lo)


def _hash_words(kw: tuple[Array, Array], hi, lo) -> tuple[Array, Array]:
    """Threefry-2x32 of the counter pair `(hi, lo)` under the key words `kw` (all broadcast)."""
    hi, lo = jnp.broadcast_arrays(jnp.asarray(hi, jnp.uint32), jnp.asarray(lo, jnp.uint32))
    return threefry2x32(kw[0], kw[1], hi, lo)


# Domain constants: the float64 low bits' key (folded into the step key) and the counter
# hi words of the arrival hashes and of their float64 low bits (under the key made of a
# path-step's own two words), so that arrival i's draws do not depend on `max_count`.
_LOW_BITS, _ARRIVAL, _ARRIVAL_LOW = 0x5EED, 0xA771, 0xA772


def _key_words(key: PRNGKeyArray) -> tuple[Array, Array]:
    kd = jax.random.key_data(key)
    return kd[0], kd[1]


def _count(w: Array, thr: Array) -> Array:
    """The Poisson count of the words `w` by exact inversion against `thr`, up to the
    $2^{-32}$ resolution (`_survival_thresholds`)."""
    t = thr.reshape((1,) * w.ndim + thr.shape)
    return jnp.sum((w[..., None] < t).astype(jnp.int32), axis=-1, dtype=jnp.int32)


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
    # Unrolled: a rolled search loop costs a few runtime calls per step on the CPU backend.
    w = jnp.searchsorted(incl, s, side="right", method="scan_unrolled")
    w = jnp.minimum(w, n_words - 1).astype(jnp.int32)
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
        # fold_in is a loop on the CPU backend, so the step key is computed once per step and
        # read from memory (an unrolled hash would be re-evaluated for every path).
        k_step = jax.random.fold_in(self.key, step)
        kw = _key_words(k_step)
        w0, w1 = _hash_words(kw, self.scenario, self.path)
        jumps = None
        if self.jumps is not None:
            thr = _survival_thresholds(self.jumps.intensity.astype(dtype) * dt, self.max_count)
            if self.slots is None:
                jumps = self._dense_jumps(w0, w1, thr, dt, decay, dtype)
            else:
                w0, jumps = self._sparse_jumps(kw, w0, w1, thr, dt, decay, dtype)
        low = None
        if dtype == jnp.float64:
            low, _ = _hash_words(
                _key_words(jax.random.fold_in(k_step, _LOW_BITS)), self.scenario, self.path
            )
        z = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.scipy.special.erfinv(
            _uniform_pm1(w0, dtype, low)
        )
        if decay is None:
            var = dt
        else:
            var = dt * phi1(-2 * jnp.asarray(decay, dtype) * dt)
        return jnp.sqrt(var) * z, jumps

    def _compensator(self, dt, decay, dtype):
        comp_weight = dt if decay is None else dt * phi1(-jnp.asarray(decay, dtype) * dt)
        return self.jumps.drift_compensator.astype(dtype) * comp_weight

    def _dense_jumps(self, w0, w1, thr, dt, decay, dtype) -> DenseJumps:
        """Compensated jump increments of every element (small batches, frequent jumps)."""
        sums = self._arrival_sums(w0, w1, _count(w1, thr), dt, decay, dtype)
        return DenseJumps(sums - self._compensator(dt, decay, dtype), jnp.zeros((), jnp.int32))

    def _sparse_jumps(self, kw, w0, w1, thr, dt, decay, dtype):
        """The normal words (flag cleared at the slots) and the jumps held in slots.

        The flag $N > 0$ goes into bit 0 of `w0` (the normal reads bits 9..31). Clearing it
        again at the slots is a scatter, which the compiler cannot fuse with its operand:
        the flagged words are then computed once, in memory, for both the compaction and the
        normal, instead of the hash being re-evaluated in each (there is no multi-output
        fusion on the CPU backend).
        """
        shape = w0.shape
        tile = self.tile or shape[-1]
        flagged = (w0 & ~jnp.uint32(1)) | (w1 < thr[0]).astype(jnp.uint32)
        scen = jnp.broadcast_to(self.scenario, shape).reshape(-1, tile)
        path = jnp.broadcast_to(self.path, shape).reshape(-1, tile)

        def one_tile(w, s, p):
            idx, total = compact_flags(w & jnp.uint32(1), self.slots)
            w_clear = w.at[idx].set(
                w.at[idx].get(mode="fill", fill_value=0) & ~jnp.uint32(1), mode="drop"
            )
            si = s.at[idx].get(mode="fill", fill_value=0)
            pi = p.at[idx].get(mode="fill", fill_value=0)
            # The path-step's own words again, at the slots only.
            a0, a1 = _hash_words(kw, si, pi)
            count = jnp.where(idx < tile, _count(a1, thr), 0)
            vals = self._arrival_sums(a0, a1, count, dt, decay, dtype)
            return w_clear, idx, vals, jnp.maximum(total - self.slots, 0)

        w_clear, idx, vals, over = jax.vmap(one_tile)(flagged.reshape(-1, tile), scen, path)
        sshape = shape[:-1] + (shape[-1] // tile, self.slots)
        jumps = SparseJumps(
            self._compensator(dt, decay, dtype),
            idx.reshape(sshape),
            vals.reshape(sshape),
            jnp.sum(over).astype(jnp.int32),
            tile=tile,
        )
        return w_clear.reshape(shape), jumps

    def _arrival_sums(self, w0, w1, count, dt, decay, dtype):
        r"""Sum of `count` sizes (each decay-weighted at a uniform time) per element.

        Arrival $i$ of a path-step hashes the counter $(A, i)$ under the key $(W_0, W_1)$ of
        the path-step's own words: the first word is the size's uniform level (through the
        law's quantile), the second the arrival time's (float64 sizes take 20 more bits from
        the counter $(A + 1, i)$).
        """
        kmax = self.max_count
        f64 = jnp.dtype(dtype) == jnp.float64
        total = jnp.zeros(count.shape, dtype)
        for i in range(kmax):
            a, b = _hash_words((w0, w1), _ARRIVAL, i)
            low = _hash_words((w0, w1), _ARRIVAL_LOW, i)[0] if f64 else None
            y = self.jumps.size.quantile(_uniform01(a, dtype, low))
            if decay is not None:
                y = y * jnp.exp(-jnp.asarray(decay, dtype) * dt * _uniform01(b, dtype))
            total = total + jnp.where(i < count, y, 0)
        return total

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
