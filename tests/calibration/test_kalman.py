"""The equilibrium's two-factor reduced form and its mixture Kalman likelihood."""

import itertools

from helpers import assert_rel
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal, norm

from mftg_jax import DemandIntercept, Market, Noise, PriceGame, Producers
from mftg_jax.calibration import (
    game_from_identified,
    kalman_filter,
    LinearPriceModel,
    negative_log_likelihood,
    price_model_from_game,
    sample_prices,
    StructuralDefaults,
)
from mftg_jax.calibration._optimiser import AUTODIFF_MODE
from mftg_jax.calibration._parametrisation import Parametrisation
from mftg_jax.price import solve_expectations, solve_riccati, stationary_values


def _model(jump_prob=(0.0, 0.0), **kw):
    d = dict(
        level=jnp.array(40.0),
        cos=jnp.array([3.0, 1.0]),
        sin=jnp.array([-2.0, 0.5]),
        kappa=jnp.array([0.3, 0.02]),
        sigma=jnp.array([2.0, 1.0]),
        jump_prob=jnp.array(jump_prob),
        jump_loc=jnp.array([5.0, -3.0]),
        jump_std=jnp.array([4.0, 2.0]),
        period=168.0,
        harmonics=(1, 7),
    )
    d.update(kw)
    return LinearPriceModel(**d)


def _cov(model, T, dt=1.0):
    v = np.asarray(model.stationary_variance(dt))
    phi = np.exp(-np.asarray(model.kappa) * dt)
    lag = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    return v[0] * phi[0] ** lag + v[1] * phi[1] ** lag


def test_gaussian_filter_is_the_exact_likelihood():
    m = _model()
    T = 30
    t = jnp.arange(T, dtype=float) * 2.0 + 5.0
    y = 40 + np.random.default_rng(0).normal(size=T) * 5
    got = negative_log_likelihood(m, jnp.asarray(y), t, 2.0)
    mean = np.asarray(m.seasonal_mean(t))
    C = _cov(m, T, 2.0)
    want = -multivariate_normal(mean, C).logpdf(y)
    assert_rel(got, want, 1e-10, what="Kalman vs brute-force Gaussian NLL")
    # One-step predictive mean and variance: the Gaussian conditional law of y_k given y_<k.
    out = kalman_filter(m, jnp.asarray(y), t, 2.0)
    for k in (1, 7, T - 1):
        w = np.linalg.solve(C[:k, :k], C[:k, k])
        assert_rel(out.mean[k], mean[k] + w @ (y[:k] - mean[:k]), 1e-9, what="predictive mean")
        assert_rel(out.variance[k], C[k, k] - w @ C[:k, k], 1e-9, what="predictive variance")


def test_one_step_mixture_is_exact():
    m = _model(jump_prob=(0.05, 0.02))
    y, t = jnp.array([47.0]), jnp.array([3.0])
    got = float(negative_log_likelihood(m, y, t))
    pj, mu, sj = (np.asarray(x) for x in (m.jump_prob, m.jump_loc, m.jump_std))
    phi = np.exp(-np.asarray(m.kappa))
    q = np.asarray(m.sigma) ** 2 * (1 - phi**2) / (2 * np.asarray(m.kappa))
    base_var = np.sum(phi**2 * np.asarray(m.stationary_variance(1.0)) + q)
    base_mean = float(m.seasonal_mean(t)[0]) - np.sum(pj * mu)
    dens = (1 - pj.sum()) * norm.pdf(47.0, base_mean, np.sqrt(base_var))
    for c in range(2):
        dens += pj[c] * norm.pdf(47.0, base_mean + mu[c], np.sqrt(base_var + sj[c] ** 2))
    assert_rel(got, -np.log(dens), 1e-12, what="one-step mixture")


def _enumerated_nll(m, y, t):
    """Exact mixture likelihood: sum over all 3^T jump configurations of Gaussian laws."""
    T = y.size
    pj, mu, sj = (np.asarray(x) for x in (m.jump_prob, m.jump_loc, m.jump_std))
    kappa, sigma = np.asarray(m.kappa), np.asarray(m.sigma)
    phi = np.exp(-kappa)
    q = sigma**2 * (1 - phi**2) / (2 * kappa)
    P0 = np.asarray(m.stationary_variance(1.0))
    mean0 = np.asarray(m.seasonal_mean(jnp.asarray(t)))
    # x_k = phi x_{k-1} - pj mu + eps_k + J_k; y_k = m_k + sum(x_k), x_0 ~ N(0, P0).
    A = np.zeros((T, T))
    for k in range(T):
        for j in range(k + 1):
            A[k, j] = 1.0
    total = 0.0
    probs = [1 - pj.sum(), pj[0], pj[1]]
    for cfg in itertools.product(range(3), repeat=T):
        prob = np.prod([probs[c] for c in cfg])
        mean = mean0.copy()
        cov = np.zeros((T, T))
        for f in range(2):
            # Factor f at step k = phi^(k+1) x0 + sum_{j<=k} phi^(k-j) shock_j.
            L = np.array([[phi[f] ** (k - j) if j <= k else 0 for j in range(T)] for k in range(T)])
            d = np.array([phi[f] ** (k + 1) for k in range(T)])
            shock_mean = np.array([-pj[f] * mu[f] + (mu[f] if c == f + 1 else 0) for c in cfg])
            shock_var = np.array([q[f] + (sj[f] ** 2 if c == f + 1 else 0) for c in cfg])
            mean += L @ shock_mean
            cov += P0[f] * np.outer(d, d) + (L * shock_var) @ L.T
        total += prob * multivariate_normal(mean, cov).pdf(y)
    return -np.log(total)


def test_mixture_filter_against_enumeration():
    m = _model(jump_prob=(0.05, 0.03), jump_std=jnp.array([6.0, 3.0]))
    T = 5
    t = np.arange(T, dtype=float)
    y = np.asarray(m.seasonal_mean(jnp.asarray(t))) + np.array([0.5, 9.0, 7.0, 6.5, 1.0])
    got = float(negative_log_likelihood(m, jnp.asarray(y), jnp.asarray(t)))
    want = _enumerated_nll(m, y, t)
    # Collapsing the posterior mixture to one Gaussian per step is the only approximation.
    assert abs(got - want) < 0.02 * abs(want), (got, want)
    # Without jumps the two coincide exactly.
    m0 = _model()
    assert_rel(
        negative_log_likelihood(m0, jnp.asarray(y), jnp.asarray(t)),
        _enumerated_nll(m0, y, t),
        1e-10,
        what="no-jump enumeration",
    )


def test_price_model_from_game_matches_riccati_and_mean_path():
    pr = Producers(c=[1.0, 5.0, 10.0], r=[1.0, 2.0, 3.0], rbar=[1.0, 2.0, 3.0], lam=[0.1] * 3)
    a = DemandIntercept(mean=3.0, period=10.0, cos=[1.0, 0.0, 0.5], sin=[0.3, 0.0, -0.2])
    game = PriceGame(Market(eta=0.5, a=a, q=0.0, t0=0.0, t1=40.0, p0=2.0), pr, Noise())
    m = price_model_from_game(game)
    riccati = solve_riccati(game, max_steps=20_000)
    path = solve_expectations(riccati, max_steps=20_000)
    ts = np.linspace(20.0, 30.0, 6)
    want = np.array([float(path.price(s)) for s in ts])
    assert_rel(m.seasonal_mean(jnp.asarray(ts)), want, 1e-6, what="seasonal mean price")
    k, _ = riccati.gains(25.0)
    v = riccati.evaluate(25.0)
    kc = 0.5 * (1 + float(jnp.sum(k)))
    ki = 0.5 * (1 - 0.5 * float(jnp.sum(v.alpha / pr.r)))
    assert_rel(m.kappa, [kc, ki], 1e-6, what="mean-reversion rates")


def test_game_from_identified_round_trip():
    d = StructuralDefaults(n=3, lam=0.01, c=2.0)
    g = game_from_identified(
        0.2,
        1.7,
        40.0,
        jnp.array([3.0, 1.0]),
        jnp.array([-2.0, 0.5]),
        jnp.array([2.0, 1.0]),
        ((0.01, 5.0, 10.0), (0.02, -1.0, 1.0)),
        d,
        harmonics=(1, 7),
        period=168.0,
        dt=1.0,
        p0=40.0,
    )
    assert_rel(jnp.sum(stationary_values(g).k), 1.7, 1e-10, what="K")
    m = price_model_from_game(g)
    assert_rel(m.level, 40.0, 1e-10, what="level")
    assert_rel(m.cos[np.array([0, 6])], [3.0, 1.0], 1e-10, atol=1e-12, what="cos")
    assert_rel(m.sin[np.array([0, 6])], [-2.0, 0.5], 1e-10, atol=1e-12, what="sin")
    assert_rel(m.kappa, [0.2 * 2.7, 0.2], 1e-10, what="kappa")
    assert_rel(m.jump_prob, [0.01, 0.02], 1e-12, what="jump probabilities")


@pytest.fixture(scope="module")
def synthetic():
    m = _model(jump_prob=(0.03, 0.0))
    t = jnp.arange(300, dtype=float)
    y = sample_prices(m, jax.random.key(3), t)
    param = Parametrisation(
        model="equilibrium",
        harmonics=(1, 7),
        jumps="common",
        mean=float(jnp.mean(y)),
        scale=float(jnp.std(y)),
    )
    u = jnp.asarray(param.initial(np.asarray(y), np.asarray(t))) + 0.1
    return param, y, t, u


@pytest.mark.slow  # a long check: `make test-slow`
def test_gradient_against_finite_differences(synthetic):
    param, y, t, u = synthetic

    def f(v):
        return negative_log_likelihood(param.price_model(v), y, t)

    fj = jax.jit(f)
    eps = 1e-6
    fd = np.array(
        [
            (float(fj(u.at[i].add(eps))) - float(fj(u.at[i].add(-eps)))) / (2 * eps)
            for i in range(u.size)
        ]
    )
    scale = np.abs(fd).max()
    # The calibration's L-BFGS differentiates in forward mode (jacfwd); reverse mode too.
    assert AUTODIFF_MODE == "fwd"
    g_fwd = jax.jit(jax.jacfwd(f))(u)
    assert_rel(g_fwd, fd, 1e-5, atol=1e-6 * scale, what="forward-mode gradient vs FD")
    g_rev = jax.jit(jax.grad(f))(u)
    assert_rel(g_rev, fd, 1e-5, atol=1e-6 * scale, what="reverse-mode gradient vs FD")


def test_sampler_moments():
    m = _model(jump_prob=(0.05, 0.0), sin=jnp.zeros(2), cos=jnp.zeros(2))
    T = 200_000
    t = jnp.arange(T, dtype=float)
    y = np.asarray(sample_prices(m, jax.random.key(1), t)) - 40.0
    v = np.asarray(m.stationary_variance(1.0))
    phi = np.exp(-np.asarray(m.kappa))
    # Mean: stationary zero; its standard error from the long-run variance of the sum.
    lrv = np.sum(v * (1 + phi) / (1 - phi))
    assert abs(y.mean()) < 4 * np.sqrt(lrv / T)
    # Variance and lag-1 autocovariance, slow factor dominating their error: 5% bounds.
    assert_rel(y.var(), v.sum(), 0.05, what="stationary variance")
    assert_rel(np.mean(y[1:] * y[:-1]) - y.mean() ** 2, np.sum(v * phi), 0.05, what="lag 1")
