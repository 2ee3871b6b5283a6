"""Stochastic loads on the shared noise: Monte Carlo moments against the closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax._noise._jumps import CompoundPoisson, NormalJumps
import mftg_jax.frequency as fr


@pytest.fixture(scope="module")
def setup():
    net = fr.load_case("wscc9")
    loads = fr.load_noise(
        net, 0.02, 1.0,
        jumps=CompoundPoisson(0.5, NormalJumps(0.02, 0.01)),
        common_sigma=0.01,
        common_jumps=CompoundPoisson(0.3, NormalJumps(-0.01, 0.02)),
    )  # fmt: skip
    return net, loads


@pytest.mark.slow  # about 40 s, mostly compiling the counter-based noise
def test_load_paths_moments(setup):
    net, loads = setup
    n = 600
    paths = jax.jit(jax.vmap(lambda m: loads.path(jax.random.key(3), m, 2.0, 20)))(jnp.arange(n))
    L = np.asarray(paths.L[:, -1])
    on = np.flatnonzero(np.asarray(loads.sigma) > 0)
    V = np.asarray(loads.variance(2.0))
    assert np.all(L[:, np.asarray(loads.sigma) == 0] == 0)
    # Mean zero (compensated jumps), variances and the common covariance within 4 s.e.
    se_mean = L[:, on].std(0) / np.sqrt(n)
    assert np.all(np.abs(L[:, on].mean(0)) < 4 * se_mean)
    for i in on:
        for j in on:
            prod = L[:, i] * L[:, j]
            assert abs(prod.mean() - V[i, j]) < 4 * prod.std() / np.sqrt(n), (i, j)
    # The common noise correlates the buses: the covariance is far from zero.
    i, j = on[:2]
    prod = L[:, i] * L[:, j]
    assert prod.mean() > 4 * prod.std() / np.sqrt(n)
    # The same key and scenario give the same path whatever the batch.
    one = loads.path(jax.random.key(3), 5, 2.0, 20)
    np.testing.assert_allclose(one.L, paths.L[5], rtol=1e-12, atol=1e-15)


def test_stochastic_loads_validation():
    with pytest.raises(ValueError, match="StochasticLoads.reversion must be > 0"):
        fr.StochasticLoads(jnp.ones(3), 0.0)
    with pytest.raises(ValueError, match="StochasticLoads.sigma must be >= 0"):
        fr.StochasticLoads(-jnp.ones(3), 1.0)


@pytest.mark.slow
def test_swing_under_stochastic_loads(setup):
    # Monte Carlo of the swing under zero-mean load noise with droop against the linear
    # response: the centre-of-inertia frequency at t1 is, to first order, a linear functional
    # h of the grid path L (the solver interpolates it linearly), so its variance is
    # h^T Cov(L) h with the exact OU covariance Cov(L(t_k), L(t_l)) = e^{-kappa|t_k - t_l|}
    # V(min(t_k, t_l)); the mean is zero to first order. Both within 4 s.e. (Constant steps:
    # one step grid for every path, so that h is the derivative of the same scheme.)
    net, loads = setup
    ts = jnp.linspace(0.0, 2.0, 21)
    droop = fr.Droop(20.0 / net.omega_s)

    def coi_end(path):
        traj = fr.simulate(net, droop, ts=ts, loads=path, rtol=None, dt0=0.01)
        return fr.coi_frequency(traj, net)[-1]

    n = 64
    sims = jax.jit(jax.vmap(lambda m: coi_end(loads.path(jax.random.key(1), m, 2.0, 20))))
    f = np.asarray(sims(jnp.arange(n)))
    assert np.all(np.isfinite(f))
    zero = fr.LoadPath(ts, jnp.zeros((len(ts), net.n)))
    h = np.asarray(jax.jit(jax.grad(lambda L: coi_end(fr.LoadPath(ts, L))))(zero.L))
    t = np.asarray(ts)
    V = np.stack([np.asarray(loads.variance(tk)) for tk in t])  # (K, n, n)
    k, l = np.meshgrid(np.arange(len(t)), np.arange(len(t)), indexing="ij")
    cov = (
        np.exp(-float(loads.reversion) * np.abs(t[k] - t[l]))[:, :, None, None]
        * V[np.minimum(k, l)]
    )
    var_lin = float(np.einsum("ki,klij,lj->", h, cov, h))
    assert var_lin > 0
    assert abs(f.mean()) < 4 * f.std(ddof=1) / np.sqrt(n)
    dev2 = (f - f.mean()) ** 2
    var_mc = dev2.mean() * n / (n - 1)
    assert abs(var_mc - var_lin) < 4 * dev2.std(ddof=1) / np.sqrt(n), (var_mc, var_lin)
