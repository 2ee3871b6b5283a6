"""One hash per path-step: the compiled step evaluates the dense Threefry hash once, the flag
bit leaves the normal untouched, the decay-weighted sparse jumps and the quantile-drawn sizes
have their compound-Poisson moments, the draws do not depend on the tiling, and QuantLib's
own path generator agrees with the engine on a process both can express."""

import functools
import math
import re

from helpers import grid_levy_path
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import mftg_jax as m
from mftg_jax import CompoundPoisson, ExponentialJumps, FixedJumps, NormalJumps
from mftg_jax._noise._levy_path import jump_slots, phi1

P = 20_000  # paths per scenario (2 scenarios)
K = 10  # grid steps on [0, 1]
DT = 1.0 / K
KAPPA = 3.0  # decay of the exponential scheme's weighted integrals


# Two scenarios of paths on [0, 1] (`helpers.grid_levy_path`).
_path = functools.partial(grid_levy_path, seed=21, n_steps=K)


def _sparse(jumps, n_paths=P, tiles=1, **kw):
    tile = n_paths // tiles
    slots = jump_slots(tile, float(jumps.intensity) * DT)
    assert slots < tile // 8  # the sparse branch
    return _path(jumps, n_paths, tile=tile, slots=slots, **kw)


@jax.jit
def _decayed_steps(path):
    """Every step's (Brownian, dense jump) increments with the decay KAPPA."""

    def one(k):
        b, j = path.noise(k, decay=KAPPA)
        return b, j.add_to(jnp.zeros(path.shape, b.dtype))

    return jax.vmap(one)(jnp.arange(K))


@jax.jit
def _decayed_brownian(path):
    return jax.vmap(lambda k: path.noise(k, decay=KAPPA)[0])(jnp.arange(K))


# Exponential sizes of mean 0.8 at nu dt = 0.03, decay-weighted: compacted into slots.
EXP = CompoundPoisson(0.3, ExponentialJumps(0.8))
# Unit jumps at nu dt = 0.05: the count is the jump increment plus nu dt.
UNIT = CompoundPoisson(0.5, FixedJumps(1.0))


@pytest.fixture(scope="module")
def exp_decayed():
    return jax.device_get(_decayed_steps(_sparse(EXP)))


def test_the_compiled_step_hashes_each_path_step_once():
    if jax.default_backend() != "cpu":
        pytest.skip("the fusion count is a property of the CPU backend's compiler")
    n = 4096
    path = _sparse(CompoundPoisson(0.13, NormalJumps(0.0, 5.0)), n_paths=n, dtype="float32")

    def run(path):
        def body(p, k):
            b, j = path.noise(k, decay=jnp.float32(2.0))
            return j.add_to(jnp.float32(0.99) * p + b), None

        return jax.lax.scan(body, jnp.zeros(path.shape, jnp.float32), jnp.arange(K))[0]

    text = jax.jit(run).lower(path).compile().as_text()
    # A Threefry-2x32 evaluation is 20 left rotations: count those on one value per path
    # (2 x n elements) in the compiled loop, i.e. the dense hash evaluations of a step.
    shapes = re.findall(r"= u32\[([\d,]+)\]\S* shift-left\(", text)
    dense = sum(math.prod(int(d) for d in sh.split(",")) == 2 * n for sh in shapes) // 20
    assert dense == 1


def test_the_jump_flag_leaves_the_normals_unchanged(exp_decayed):
    # Bit 0 of the normal's word carries the jump flag; the normal reads bits 9..31 only, so
    # the sparse path's normals are those of the same path without jumps (and the dense
    # branch's, below).
    plain = np.asarray(_decayed_brownian(_path(None, P)))
    np.testing.assert_array_equal(exp_decayed[0], plain)


def test_decayed_brownian_integrals_are_normal_with_the_exact_variance(exp_decayed):
    b = np.asarray(exp_decayed[0]).ravel()
    n = b.size
    var = DT * float(phi1(jnp.asarray(-2 * KAPPA * DT)))
    assert abs(b.mean()) < 4 * math.sqrt(var / n)
    assert abs(b.var() - var) < 4 * var * math.sqrt(2 / n)
    assert abs(np.mean(b**4) / var**2 - 3) < 4 * math.sqrt(96 / n)


def test_decayed_sparse_jumps_have_the_compound_poisson_cumulants(exp_decayed):
    # sum_i Y_i exp(-kappa dt tau_i), tau_i uniform: cumulant c_r = nu dt E[Y^r] phi1(-r kappa dt)
    # (exponential Y of mean s: E[Y^r] = r! s^r); compensated, so c_1 is removed.
    x = np.asarray(exp_decayed[1]).ravel()
    n, s, lam = x.size, 0.8, 0.3 * DT
    c = {
        r: lam * math.factorial(r) * s**r * float(phi1(jnp.asarray(-r * KAPPA * DT)))
        for r in (2, 4)
    }
    m4 = c[4] + 3 * c[2] ** 2
    assert abs(x.mean()) < 4 * math.sqrt(c[2] / n)
    assert abs(x.var() - c[2]) < 4 * math.sqrt((m4 - c[2] ** 2) / n)
    # Fourth central moment (heavy tails: the jumps' kurtosis) with its sample standard error.
    d4 = (x - x.mean()) ** 4
    assert abs(d4.mean() - m4) < 4 * d4.std() / math.sqrt(n)
    assert m4 / c[2] ** 2 > 30  # far from normal: the test above would see a normal law


def test_sparse_counts_follow_the_poisson_law():
    jumps = jax.device_get(jax.jit(jax.vmap(_sparse(UNIT, tiles=4).increment))(jnp.arange(K)))
    assert int(np.sum(jumps.overflow)) == 0
    counts = np.asarray(jumps.jumps) + 0.05
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    counts = np.round(counts).ravel()
    n = counts.size
    for k in range(3):
        p = math.exp(-0.05) * 0.05**k / math.factorial(k)
        assert abs(np.mean(counts == k) - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-12, k


def test_draws_do_not_depend_on_the_tiling_or_the_batch(exp_decayed):
    # Four tiles (one per device) and a dense batch of 48 paths from global index 100 give,
    # element by element, the single tile's values (float64: sizes use low bits too).
    four = jax.device_get(_decayed_steps(_sparse(EXP, tiles=4)))
    np.testing.assert_array_equal(four[0], exp_decayed[0])
    np.testing.assert_allclose(four[1], exp_decayed[1], rtol=0, atol=1e-14)
    part = jax.device_get(_decayed_steps(_path(EXP, 48, offset=100)))
    np.testing.assert_array_equal(part[0], exp_decayed[0][..., 100:148])
    np.testing.assert_allclose(part[1], exp_decayed[1][..., 100:148], rtol=0, atol=1e-14)
    assert np.any(part[1] > 0)  # some jumps in the window
    # Arrival i's draws do not depend on the truncation (a traced intensity gets 8).
    part8 = jax.device_get(_decayed_steps(_path(EXP, 48, offset=100, max_count=8)))
    np.testing.assert_allclose(part8[1], part[1], rtol=0, atol=1e-14)


def test_size_quantiles_are_the_laws_inverse_cdfs():
    u = jnp.asarray(np.linspace(1e-6, 1 - 1e-6, 101))
    np.testing.assert_allclose(
        NormalJumps(0.5, 2.0).quantile(u), stats.norm.ppf(np.asarray(u), 0.5, 2.0), rtol=1e-9
    )
    np.testing.assert_allclose(
        ExponentialJumps(1.5, sign=-1.0).quantile(u),
        -stats.expon.ppf(np.asarray(u), scale=1.5),
        rtol=1e-9,
    )
    np.testing.assert_array_equal(FixedJumps(2.0).quantile(u), np.full(101, 2.0))
    # Pathwise gradients through normal sizes (reparameterised).
    g = jax.grad(lambda s: NormalJumps(0.0, s).quantile(jnp.asarray(0.975)))(2.0)
    np.testing.assert_allclose(g, stats.norm.ppf(0.975), rtol=1e-9)


def test_quantlib_paths_have_the_engines_mean_and_variance():
    """QuantLib's `ExtOUWithJumpsProcess` (exponential jumps, its own path generator) against
    the engine on the uncontrolled price, an OU process with compensated exponential jumps:
    $dp = \\eta(a - p)dt + \\sigma dB + dJ - \\nu E[Y]dt$ is QuantLib's $X + Y$ with mean level
    $a - \\nu E[Y]/\\eta$ and jump decay $\\eta$."""
    ql = pytest.importorskip("QuantLib")
    eta, a, p0, sigma, nu, scale = 0.5, 1.0, 3.0, 1.0, 4.0 / 3.0, 1.0
    n_paths, n_steps, t1 = 4000, 300, 1.5
    game = m.PriceGame(
        m.Market(eta=eta, a=a, q=1.0, t0=0.0, t1=t1, p0=p0, phat0=p0),
        m.Producers(c=[1.0], r=[1.0], rbar=[1.0], lam=[0.1]),
        m.Noise(sigma=sigma, jumps=CompoundPoisson(nu, ExponentialJumps(scale))),
    )
    save = (100, 200, 300)
    spec = m.EnsembleSpec(n_paths=n_paths, n_steps=n_steps, save_steps=save, dtype="float64")
    ours = np.asarray(
        m.price.simulate_paths(game, jax.random.key(5), spec, policy=None, track_revenue=False).p
    )[0]

    ou = ql.ExtendedOrnsteinUhlenbeckProcess(eta, sigma, p0, lambda t: a - nu * scale / eta)
    process = ql.ExtOUWithJumpsProcess(ou, 0.0, eta, nu, 1 / scale)
    grid = ql.TimeGrid(t1, n_steps)
    uniform = ql.UniformRandomSequenceGenerator(
        process.factors() * n_steps, ql.UniformRandomGenerator(11)
    )
    gen = ql.GaussianMultiPathGenerator(
        process, list(grid), ql.GaussianRandomSequenceGenerator(uniform), False
    )
    theirs = np.empty((n_paths, len(save)))
    for i in range(n_paths):
        path = gen.next().value()
        theirs[i] = [path[0][k] + path[1][k] for k in save]

    def se_var(x):  # standard error of the sample variance
        d = x - x.mean()
        return math.sqrt((np.mean(d**4) - np.mean(d**2) ** 2) / x.size)

    for j, k in enumerate(save):
        x, y = ours[:, j], theirs[:, j]
        se = math.sqrt((x.var() + y.var()) / n_paths)
        assert abs(x.mean() - y.mean()) < 4 * se, (k, x.mean(), y.mean())
        assert abs(x.var() - y.var()) < 4 * math.hypot(se_var(x), se_var(y)), (k, x.var(), y.var())
        # Both against the closed form (at most one QuantLib jump per step: nu dt = 0.0067).
        t = k * t1 / n_steps
        var = (sigma**2 + nu * 2 * scale**2) * -math.expm1(-2 * eta * t) / (2 * eta)
        mean = a + (p0 - a) * math.exp(-eta * t)
        for z in (x, y):
            assert abs(z.mean() - mean) < 4 * math.sqrt(var / n_paths)
            assert abs(z.var() - var) < 4 * se_var(z)


class _Doubled(m.AbstractJumpSize):
    # A law defined before quantile existed: it still constructs and samples.
    def mean(self):
        return 0.0

    def second_moment(self):
        return 4.0

    def sample(self, key, shape, dtype):
        return 2 * jax.random.normal(key, shape, dtype)


def test_a_law_without_quantile_constructs_and_says_what_is_missing():
    law = _Doubled()
    assert law.sample(jax.random.key(0), (3,), jnp.float64).shape == (3,)
    with pytest.raises(NotImplementedError, match="implement quantile"):
        law.quantile(jnp.array([0.5]))
