"""Stationary Riccati values wherever the stationary equilibrium exists: against the closed
form of identical producers (`total_cost_curvature`) and against the Riccati equations
(their right-hand sides vanish at the stationary values, evaluated in 40 digits), over
many orders of magnitude of eta, R and n.

Shapes are fixed per test (so every example reuses one compiled program) and
`derandomize=True` makes the examples the same on every run.
"""

from hypothesis import given, HealthCheck, settings, strategies as st
import jax.numpy as jnp
import mpmath as mp
import numpy as np

from mftg_jax.calibration import StructuralDefaults
from mftg_jax.calibration._price_model import total_cost_curvature
from mftg_jax.price import (
    DemandIntercept,
    Market,
    Noise,
    PriceGame,
    Producers,
    stationary_values,
)

WIDE = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _log_uniform(lo, hi):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))


def _game(eta, R, lam, c, a=50.0):
    R = np.asarray(R, np.float64)
    n = R.shape[0]
    producers = Producers(
        c=np.broadcast_to(np.asarray(c, np.float64), (n,)),
        r=0.5 * R,
        rbar=0.5 * R,
        lam=np.broadcast_to(np.asarray(lam, np.float64), (n,)),
    )
    market = Market(eta=eta, a=DemandIntercept(mean=a), q=0.0, t0=0.0, t1=1.0, p0=a)
    return PriceGame(market, producers, Noise())


def _relative_residuals(game: PriceGame, sv):
    """The stationary beta- and gamma-equations (right-hand sides of the Riccati system,
    `mftg_jax.price._riccati`) at the returned values, in 40-digit arithmetic, over the size
    of their terms; $1 - \\eta\\beta_i$ enters as $R_ik_i$ and $c_i + \\eta\\gamma_i$ as
    $R_im_i$ (the returned gains, checked against $\\beta$, $\\gamma$ separately): when $R$
    is tiny, $1 - \\eta\\beta$ recomputed from a float64 $\\beta$ has lost its digits."""
    mp.mp.dps = 40
    f = lambda x: [mp.mpf(float(v)) for v in np.ravel(np.asarray(x, np.float64))]  # noqa: E731
    pr = game.producers
    eta, a = mp.mpf(float(game.market.eta)), mp.mpf(float(game.market.a.mean))
    R, lam, c = f(pr.R), f(pr.lam), f(pr.c)
    b, g, k, m = f(sv.beta), f(sv.gamma), f(sv.k), f(sv.m)
    n = len(R)
    rb = rg = gains = 0.0
    for i in range(n):
        s_k, s_m = sum(k) - k[i], sum(m) - m[i]
        tb = [(lam[i] + 2 * eta) * b[i], -R[i] * k[i] ** 2, 2 * eta * b[i] * s_k]
        tg = [
            (lam[i] + eta) * g[i],
            -eta * b[i] * a,
            R[i] * k[i] * m[i],
            eta * g[i] * s_k,
            -eta * b[i] * s_m,
        ]
        rb = max(rb, float(abs(sum(tb)) / sum(abs(t) for t in tb)))
        rg = max(rg, float(abs(sum(tg)) / sum(abs(t) for t in tg)))
        gains = max(gains, float(abs(R[i] * k[i] + eta * b[i] - 1)))
        gains = max(
            gains, float(abs(R[i] * m[i] - c[i] - eta * g[i]) / (abs(c[i]) + abs(eta * g[i])))
        )
    return rb, rg, gains


def _check(game: PriceGame, K=None):
    sv = stationary_values(game)
    eta = game.market.eta
    assert np.all(np.asarray(sv.beta) > 0) and np.all(np.asarray(eta * sv.beta) < 1)
    rb, rg, gains = _relative_residuals(game, sv)
    assert rb < 1e-10 and rg < 1e-10 and gains < 1e-12, (rb, rg, gains)
    assert np.isfinite(float(sv.price))
    if K is not None:
        np.testing.assert_allclose(float(jnp.sum(sv.k)), K, rtol=1e-10)
    return sv


def test_the_tiny_R_of_a_fitted_zone():
    # The values a fit of an ENTSO-E zone reached; the fixed point in K did not converge.
    sv = _check(_game(0.00025, [4.9e-6], 0.0, 0.0))
    K = float(jnp.sum(sv.k))
    # The closed form of one producer: R = 2 / (K (2 + K)) at lam = 0.
    np.testing.assert_allclose(2 / (K * (2 + K)), 4.9e-6, rtol=1e-12)


@WIDE
@given(
    eta=_log_uniform(1e-6, 10.0),
    K=_log_uniform(1e-6, 1e8),
    lam=st.one_of(st.just(0.0), _log_uniform(1e-6, 1.0)),
    n=st.sampled_from((1, 4)),
)
def test_identical_producers_match_the_closed_form(eta, K, lam, n):
    R = float(total_cost_curvature(eta, K, StructuralDefaults(n=n, lam=lam)))
    assert R > 0
    _check(_game(eta, [R] * n, lam, 1.0), K=K)


@WIDE
@given(
    eta=_log_uniform(1e-5, 10.0),
    R=st.lists(_log_uniform(1e-9, 1e3), min_size=3, max_size=3),
    lam=st.lists(st.floats(0.0, 0.5), min_size=3, max_size=3),
    c=st.lists(st.floats(-5.0, 20.0), min_size=3, max_size=3),
)
def test_different_producers_zero_the_vector_field(eta, R, lam, c):
    _check(_game(eta, R, np.asarray(lam), np.asarray(c)))


def test_stationary_values_in_float32():
    # The bisection's tolerances are floored at the working precision: a float32 game (JAX's
    # default without x64) solves, to float32 accuracy of the float64 answer.
    import mftg_jax.price as pr

    def game(dtype):
        f = lambda x: jnp.asarray(x, dtype=dtype)
        return pr.PriceGame(
            pr.Market(eta=f(0.3), a=f(40.0), q=f(0.0), t0=f(0.0), t1=f(1.0), p0=f(10.0)),
            pr.Producers(c=f([1.0, 2.0]), r=f([0.5, 0.6]), rbar=f([0.5, 0.6]), lam=f([0.0, 0.1])),
            pr.Noise(),
        )

    import jax

    with jax.enable_x64(False):
        p32 = pr.stationary_values(game(jnp.float32)).price
    p64 = pr.stationary_values(game(jnp.float64)).price
    assert p32.dtype == jnp.float32
    np.testing.assert_allclose(float(p32), float(p64), rtol=1e-5)
