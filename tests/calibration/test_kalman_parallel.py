"""The parallel-in-time filter against the sequential one: likelihood, filtered states,
per-step outputs, gradients (both modes) and the Hessian."""

import os

from helpers import assert_rel
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax.calibration import (
    filtered_state,
    kalman_filter,
    LinearPriceModel,
    load_prices,
    negative_log_likelihood,
    PriceCalibrator,
    sample_prices,
)
from mftg_jax.calibration._kalman_parallel import compose_affine, parallel_trajectory

T = 160


def _model(level=40.0):
    # Both factors jump: the three-component mixture is collapsed at every step.
    return LinearPriceModel(
        level=jnp.asarray(level),
        cos=jnp.array([3.0, 1.0]),
        sin=jnp.array([-2.0, 0.5]),
        kappa=jnp.array([0.3, 0.02]),
        sigma=jnp.array([2.0, 1.0]),
        jump_prob=jnp.array([0.05, 0.03]),
        jump_loc=jnp.array([5.0, -3.0]),
        jump_std=jnp.array([4.0, 2.0]),
        period=168.0,
        harmonics=(1, 7),
    )


@pytest.fixture(scope="module")
def series():
    t = jnp.arange(T, dtype=float)
    return sample_prices(_model(), jax.random.key(3), t), t


def _loss(theta, y, t, filter):
    # Differentiated in the level, the rates, the volatilities and the jump laws.
    m = _model(level=theta[0])
    m = LinearPriceModel(
        level=m.level,
        cos=m.cos,
        sin=m.sin,
        kappa=theta[1:3],
        sigma=theta[3:5],
        jump_prob=theta[5:7],
        jump_loc=m.jump_loc,
        jump_std=theta[7:9],
        period=m.period,
        harmonics=m.harmonics,
    )
    return negative_log_likelihood(m, y, t, filter=filter)


THETA = jnp.array([40.0, 0.3, 0.02, 2.0, 1.0, 0.05, 0.03, 4.0, 2.0])


@pytest.fixture(scope="module")
def value_and_forward_gradient():
    def f(theta, y, t, filter):
        g, v = jax.jacfwd(lambda x: (lambda a: (a, a))(_loss(x, y, t, filter)), has_aux=True)(theta)
        return v, g

    return jax.jit(f, static_argnames="filter")


def test_likelihood_and_forward_gradient_equal_the_sequential_filter(
    series, value_and_forward_gradient
):
    y, t = series
    v_seq, g_seq = value_and_forward_gradient(THETA, y, t, "sequential")
    v_par, g_par = value_and_forward_gradient(THETA, y, t, "parallel")
    assert_rel(v_par, v_seq, 1e-12, what="log-likelihood")
    assert_rel(g_par, g_seq, 1e-9, atol=1e-9 * float(jnp.max(jnp.abs(g_seq))), what="gradient")
    # A wrong model is not equal: the check can fail.
    v_off, _ = value_and_forward_gradient(THETA.at[1].set(0.31), y, t, "parallel")
    assert abs(float(v_off - v_seq)) > 1e-6 * abs(float(v_seq))


def test_filtered_states_and_outputs_equal_the_sequential_filter(series):
    y, t = series
    m = _model()
    a, b = filtered_state(m, y, t), filtered_state(m, y, t, filter="parallel")
    assert_rel(b.mean, a.mean, 1e-9, atol=1e-12, what="filtered means")
    assert_rel(b.cov, a.cov, 1e-9, atol=1e-12, what="filtered covariances")


@pytest.mark.slow  # a long check: `make test-slow`
def test_per_step_outputs_equal_the_sequential_filter(series):
    y, t = series
    m = _model()
    fa, fb = kalman_filter(m, y, t), kalman_filter(m, y, t, filter="parallel")
    for name in ("nll", "pit", "mean", "variance", "jump_prob"):
        assert_rel(getattr(fb, name), getattr(fa, name), 1e-9, atol=1e-12, what=name)


def test_affine_recursion_by_associative_scan_against_a_loop():
    rng = np.random.default_rng(0)
    A = 0.5 * rng.normal(size=(50, 3, 3))
    b = rng.normal(size=(50, 3))
    scan = jax.jit(lambda A, b: jax.lax.associative_scan(compose_affine, (A, b))[1])
    x = scan(jnp.asarray(A), jnp.asarray(b))
    ref, state = [], np.zeros(3)
    for k in range(50):
        state = A[k] @ state + b[k]
        ref.append(state)
    assert_rel(x, np.array(ref), 1e-12, atol=1e-12, what="affine prefix")


@pytest.mark.slow  # a long check: `make test-slow`
def test_nonlinear_recursion_solved_exactly():
    # s_k = tanh(a s_{k-1}) + e_k against its loop, and its gradient in a.
    e = jnp.asarray(np.random.default_rng(1).normal(size=200))

    def step(a, s, ek):
        return jnp.tanh(a * s) + ek

    def loop(a):
        return jax.lax.scan(lambda s, ek: (step(a, s, ek),) * 2, jnp.zeros(1), e)[1]

    def par(a):
        return parallel_trajectory(step, a, jnp.zeros(1), e)

    a = jnp.asarray(0.9)
    assert_rel(jax.jit(par)(a), loop(a), 1e-12, atol=1e-12, what="trajectory")
    g = jax.jit(jax.grad(lambda a: jnp.sum(par(a) ** 2)))(a)
    assert_rel(g, jax.grad(lambda a: jnp.sum(loop(a) ** 2))(a), 1e-10, what="gradient")


def test_a_missing_price_gives_nan_in_both_filters(series):
    # NaN in, NaN out (what a line search rejects), not an error from the parallel filter.
    y, t = series
    y = y.at[50].set(jnp.nan)
    for name in ("sequential", "parallel"):
        assert jnp.isnan(jax.jit(_loss, static_argnames="filter")(THETA, y, t, name))


def test_bad_filter_name():
    y = jnp.zeros(4)
    with pytest.raises(ValueError, match="filter must be one of"):
        negative_log_likelihood(_model(), y, jnp.arange(4.0), filter="fast")


@pytest.mark.slow  # a long check: `make test-slow`
def test_reverse_gradient_and_hessian_equal_the_sequential_filter(series):
    y, t = series
    grads = {
        f: jax.jit(jax.grad(lambda x, f=f: _loss(x, y, t, f)))(THETA)
        for f in ("sequential", "parallel")
    }
    scale = float(jnp.max(jnp.abs(grads["sequential"])))
    assert_rel(grads["parallel"], grads["sequential"], 1e-9, atol=1e-9 * scale, what="grad")
    hess = {
        f: jax.jit(jax.hessian(lambda x, f=f: _loss(x, y, t, f)))(THETA)
        for f in ("sequential", "parallel")
    }
    scale = float(jnp.max(jnp.abs(hess["sequential"])))
    assert_rel(hess["parallel"], hess["sequential"], 1e-8, atol=1e-8 * scale, what="Hessian")


@pytest.mark.slow  # a long check: `make test-slow`
def test_real_prices_equal_the_sequential_filter():
    folder = os.environ.get("MFTG_DATA_DIR")
    if not folder:
        pytest.skip("MFTG_DATA_DIR is not set")
    series = load_prices(os.path.join(folder, "epftoolbox_NP.csv")).between(
        "2013-01-01", "2013-03-31"
    )
    param = PriceCalibrator().parametrisation(series)
    u = jnp.asarray(param.initial(series.prices, series.hours()))
    y, t = jnp.asarray(series.prices), jnp.asarray(series.hours())

    def f(v, filter):
        return negative_log_likelihood(param.price_model(v), y, t, filter=filter)

    out = {}
    for name in ("sequential", "parallel"):
        fn = jax.jit(lambda v, n=name: jax.jacfwd(lambda x: (f(x, n), f(x, n)), has_aux=True)(v))
        out[name] = fn(u)
    g_seq, v_seq = out["sequential"]
    g_par, v_par = out["parallel"]
    assert_rel(v_par, v_seq, 1e-9, what="Nord Pool log-likelihood")
    scale = float(jnp.max(jnp.abs(g_seq)))
    assert_rel(g_par, g_seq, 1e-9, atol=1e-9 * scale, what="Nord Pool gradient")
    m = param.price_model(u)
    a, b = filtered_state(m, y, t), filtered_state(m, y, t, filter="parallel")
    assert_rel(b.mean, a.mean, 1e-9, atol=1e-10, what="Nord Pool filtered means")
    assert_rel(b.cov, a.cov, 1e-9, atol=1e-10, what="Nord Pool filtered covariances")
