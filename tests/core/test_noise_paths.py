"""Counter-based grid noise: the hash, the compaction, Poisson counts, sparse jump sizes,
invariance under batching, float32 against float64, increments."""

import functools
import math

from helpers import grid_levy_path
import jax
from jax.extend.random import threefry_2x32
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import CompoundPoisson, FixedJumps, NormalJumps
from mftg_jax._noise._levy_path import compact_flags, jump_slots, poisson_max_count, threefry2x32

P = 20_000  # paths per scenario (2 scenarios) in the statistical checks
K = 10  # grid steps on [0, 1]


# Two scenarios of paths on [0, 1] (`helpers.grid_levy_path`).
_path = functools.partial(grid_levy_path, seed=7, n_steps=K)


@jax.jit
def _steps(path):
    return jax.vmap(path.increment)(jnp.arange(K))


# Unit jumps at intensity 5, dt = 0.1: count = jump increment + nu dt, law Poisson(0.5).
UNIT = CompoundPoisson(5.0, FixedJumps(1.0))
# Rare normal jumps, nu dt = 0.02: compacted into slots.
RARE = CompoundPoisson(0.2, NormalJumps(1.0, 0.5))


@pytest.fixture(scope="module")
def unit64():
    return jax.device_get(_steps(_path(UNIT, P)))


@pytest.fixture(scope="module")
def rare_sparse():
    tile = P // 4
    path = _path(RARE, P, tile=tile, slots=jump_slots(tile, 0.02))
    assert path.slots < tile // 8  # the sparse branch
    return jax.device_get(_steps(path))


def test_unrolled_threefry_is_jax_threefry():
    k = jax.random.key_data(jax.random.key(11))
    x = jax.random.bits(jax.random.key(12), (2, 999), jnp.uint32)
    ours = jax.jit(threefry2x32)(k[0], k[1], x[0], x[1])
    ref = threefry_2x32((k[0], k[1]), x.ravel())
    np.testing.assert_array_equal(np.concatenate([np.asarray(o) for o in ours]), ref)


@pytest.mark.parametrize("rate", [0.002, 0.3])
def test_compaction_finds_the_flags_in_order(rate):
    flags = np.array(jax.random.uniform(jax.random.key(3), (1000,)) < rate)
    flags[-1] = True  # a partial last word
    slots = 40
    idx, total = jax.jit(compact_flags, static_argnums=1)(jnp.asarray(flags), slots)
    ref = np.flatnonzero(flags)
    assert int(total) == ref.size
    live = min(slots, ref.size)
    np.testing.assert_array_equal(np.asarray(idx)[:live], ref[:live])
    assert np.all(np.asarray(idx)[live:] == flags.size)  # empty slots point past the end


def test_poisson_counts_follow_the_poisson_law(unit64):
    counts = np.asarray(unit64.jumps) + 0.5
    assert np.allclose(counts, np.round(counts), atol=1e-9)
    counts = np.round(counts).ravel()
    n = counts.size
    for k in range(5):
        p = math.exp(-0.5) * 0.5**k / math.factorial(k)
        freq = np.mean(counts == k)
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-12, (k, freq, p)
    assert abs(counts.mean() - 0.5) < 4 * math.sqrt(0.5 / n)


def test_brownian_increments_are_normal_with_variance_dt(unit64):
    b = np.asarray(unit64.brownian).ravel()
    n = b.size
    assert abs(b.mean()) < 4 * math.sqrt(0.1 / n)
    assert abs(b.var() - 0.1) < 4 * 0.1 * math.sqrt(2 / n)
    assert abs(np.mean(b**4) / 0.01 - 3) < 4 * math.sqrt(96 / n)


def test_sparse_jump_sizes_have_the_compound_poisson_moments(rare_sparse):
    # Compensated increments: mean 0, variance nu dt E[Y^2].
    j = np.asarray(rare_sparse.jumps).ravel()
    assert int(np.sum(rare_sparse.overflow)) == 0
    n = j.size
    var = 0.02 * (1.0 + 0.25)
    assert abs(j.mean()) < 4 * math.sqrt(var / n)
    m4 = 0.02 * (1 + 6 * 0.25 + 3 * 0.0625) + 3 * var**2
    assert abs(j.var() - var) < 4 * math.sqrt((m4 - var**2) / n)


def test_same_key_same_path_whatever_the_batch_and_the_sparsity(rare_sparse):
    # 32 paths from global index 16 on, sizes drawn densely: element by element the same
    # values as the sparse draws of the large batch.
    part = jax.device_get(_steps(_path(RARE, 32, offset=16)))
    np.testing.assert_array_equal(rare_sparse.brownian[..., 16:48], part.brownian)
    np.testing.assert_allclose(rare_sparse.jumps[..., 16:48], part.jumps, rtol=0, atol=1e-15)
    assert np.any(part.jumps > 0)  # some jumps in the window
    # evaluate() sums the grid increments.
    path = _path(RARE, 32, offset=16)
    total = path.evaluate(0.2, 0.5)
    np.testing.assert_allclose(total.brownian, part.brownian[2:5].sum(0), atol=1e-12)
    np.testing.assert_allclose(total.jumps, part.jumps[2:5].sum(0), atol=1e-12)


def test_float32_and_float64_paths_agree_to_float32_precision(unit64):
    inc32 = jax.device_get(_steps(_path(UNIT, P, dtype="float32")))
    assert inc32.brownian.dtype == np.float32
    # float32 keeps the top 23 bits of the same uniform: the normals differ by the uniform's
    # resolution 2^-22 times dz/du = sqrt(2 pi) exp(z^2/2) (large only in the far tails) plus
    # float32 rounding of erfinv. The Poisson counts are the same.
    z = unit64.brownian / math.sqrt(0.1)
    bound = math.sqrt(0.1) * (math.sqrt(2 * math.pi) * np.exp(z * z / 2) * 2.0**-22 + 5e-5)
    np.testing.assert_array_less(np.abs(inc32.brownian - unit64.brownian), bound)
    assert np.median(np.abs(inc32.brownian - unit64.brownian)) < 1e-6
    np.testing.assert_allclose(inc32.jumps, unit64.jumps, rtol=0, atol=1e-5)


def test_truncation_and_slots_are_bounded_and_checked():
    assert poisson_max_count(0.0) == 1
    k = poisson_max_count(0.5)
    # The truncated mass is below 2^-33, the mass at k is not.
    tail = 1 - sum(math.exp(-0.5) * 0.5**i / math.factorial(i) for i in range(k + 1))
    assert tail < 2.0**-33 * 1.01
    assert jump_slots(1000, 0.0) == 1
    assert 1 <= jump_slots(1000, 0.002) < 40
    # Large tiles (the exact Poisson sum would underflow): a Bernstein bound, within a few
    # standard deviations of the mean and above it.
    mu = 10**6 * -math.expm1(-0.01)
    s = jump_slots(10**6, 0.01)
    assert mu + 7 * math.sqrt(mu) < s < mu + 10 * math.sqrt(mu)
    with pytest.raises(ValueError, match="intensity x dt"):
        poisson_max_count(100.0)
