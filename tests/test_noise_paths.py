"""Counter-based grid noise: Poisson counts, sparse jump sizes, invariance, increments."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import CompoundPoisson, FixedJumps, GridLevyPath, NormalJumps
from mftg_jax._noise_paths import jump_slots, poisson_max_count

jax.config.update("jax_enable_x64", True)


def _path(jumps, n_paths, n_steps=10, tile=None, slots=None, dtype="float64", offset=0):
    rate_dt = float(jumps.intensity) * 1.0 / n_steps if jumps is not None else 0.0
    return GridLevyPath(
        key=jax.random.key(7),
        t0=jnp.asarray(0.0),
        t1=jnp.asarray(1.0),
        scenario=jnp.arange(2, dtype=jnp.uint32)[:, None],
        path=(jnp.arange(n_paths, dtype=jnp.uint32) + offset)[None, :],
        jumps=jumps,
        n_steps=n_steps,
        max_count=poisson_max_count(rate_dt),
        tile=tile,
        slots=slots,
        dtype=dtype,
    )


@jax.jit
def _steps(path, steps):
    return jax.vmap(path.increment)(steps)


def test_poisson_counts_follow_the_poisson_law():
    # Unit jumps, intensity 5, dt = 0.1: count = jump increment + nu dt, law Poisson(0.5).
    path = _path(CompoundPoisson(5.0, FixedJumps(1.0)), 20_000)
    inc = _steps(path, jnp.arange(5))
    counts = np.asarray(inc.jumps) + 0.5
    assert np.allclose(counts, np.round(counts), atol=1e-9)
    counts = np.round(counts).ravel()
    n = counts.size
    for k in range(5):
        p = math.exp(-0.5) * 0.5**k / math.factorial(k)
        freq = np.mean(counts == k)
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-12, (k, freq, p)
    assert abs(counts.mean() - 0.5) < 4 * math.sqrt(0.5 / n)


def test_sparse_jump_sizes_have_the_compound_poisson_moments():
    # Rare jumps (nu dt = 0.02) compacted into slots; compensated increments: mean 0,
    # variance nu dt E[Y^2], third moment nu dt E[Y^3].
    cp = CompoundPoisson(0.2, NormalJumps(1.0, 0.5))
    n_paths = 50_000
    slots = jump_slots(n_paths // 4, 0.02)
    path = _path(cp, n_paths, tile=n_paths // 4, slots=slots)
    inc = _steps(path, jnp.arange(10))
    j = np.asarray(inc.jumps).ravel()
    assert int(np.sum(inc.overflow)) == 0
    n = j.size
    ey2 = 1.0 + 0.25
    var = 0.02 * ey2
    assert abs(j.mean()) < 4 * math.sqrt(var / n)
    m4 = 0.02 * (1 + 6 * 0.25 + 3 * 0.0625) + 3 * var**2
    assert abs(j.var() - var) < 4 * math.sqrt((m4 - var**2) / n)
    # Dense draws (no slots) give the same law and, element by element, the same values.
    dense = _steps(_path(cp, n_paths, slots=None), jnp.arange(10))
    np.testing.assert_allclose(np.asarray(dense.jumps), np.asarray(inc.jumps), atol=1e-12)


def test_brownian_increments_are_normal_with_variance_dt():
    path = _path(None, 50_000)
    b = np.asarray(_steps(path, jnp.arange(4)).brownian).ravel()
    n = b.size
    assert abs(b.mean()) < 4 * math.sqrt(0.1 / n)
    assert abs(b.var() - 0.1) < 4 * 0.1 * math.sqrt(2 / n)
    assert abs(np.mean(b**4) / 0.01 - 3) < 4 * math.sqrt(96 / n)


def test_same_key_same_path_whatever_the_batch():
    cp = CompoundPoisson(3.0, NormalJumps(0.0, 1.0))
    # Dense jump draws here; the sparse draws equal the dense ones element by element.
    whole = _steps(_path(cp, 64), jnp.arange(10))
    part = _steps(_path(cp, 32, offset=16), jnp.arange(10))
    np.testing.assert_array_equal(np.asarray(whole.brownian)[..., 16:48], part.brownian)
    np.testing.assert_array_equal(np.asarray(whole.jumps)[..., 16:48], part.jumps)


def test_float32_and_float64_paths_agree_to_float32_precision():
    b64 = np.asarray(_steps(_path(None, 1000), jnp.arange(3)).brownian)
    b32 = np.asarray(_steps(_path(None, 1000, dtype="float32"), jnp.arange(3)).brownian)
    assert b32.dtype == np.float32
    # float32 keeps the top 23 bits of the same uniform; erfinv in float32 near +-1 is the
    # largest error.
    np.testing.assert_allclose(b32, b64, rtol=0, atol=5e-5)
    assert np.median(np.abs(b32 - b64)) < 1e-6


def test_evaluate_sums_the_grid_increments():
    path = _path(None, 8)
    inc = _steps(path, jnp.arange(10))
    total = path.evaluate(0.2, 0.5)
    np.testing.assert_allclose(total.brownian, np.sum(inc.brownian[2:5], 0), atol=1e-12)
    value = path.evaluate(0.3)
    np.testing.assert_allclose(value.brownian, np.sum(inc.brownian[:3], 0), atol=1e-12)


def test_truncation_and_slots_are_bounded_and_checked():
    assert poisson_max_count(0.0) == 1
    k = poisson_max_count(0.5)
    # The truncated mass is below 2^-33, the mass at k is not.
    tail = 1 - sum(math.exp(-0.5) * 0.5**i / math.factorial(i) for i in range(k + 1))
    assert tail < 2.0**-33 * 1.01
    assert jump_slots(1000, 0.0) == 1
    assert 1 <= jump_slots(1000, 0.002) < 40
    with pytest.raises(ValueError, match="intensity x dt"):
        poisson_max_count(100.0)
