"""Construction-time validation: every bad value names its field and the allowed range."""

import math

import jax.numpy as jnp
import pytest

import mftg_jax as mj


def market(**kw):
    base = dict(eta=0.5, a=1.0, q=1.0, t0=0.0, t1=1.5, p0=50.0)
    base.update(kw)
    return mj.Market(**base)


def producers(**kw):
    base = dict(c=[1.0, 5.0], r=[1.0, 2.0], rbar=[1.0, 2.0], lam=[0.1, 0.1])
    base.update(kw)
    return mj.Producers(**base)


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: producers(r=[1.0, 0.0]), r"producers\.r must be > 0"),
        (lambda: producers(r=[1.0, -1.0]), r"producers\.r must be > 0"),
        (lambda: producers(rbar=[1.0, -2.0]), r"r \+ rbar > 0.*producer\(s\) \[1\]"),
        (lambda: producers(lam=[0.1, -0.1]), r"producers\.lam must be >= 0"),
        (lambda: producers(c=[1.0, 2.0, 3.0]), r"same length.*c: 3, r: 2"),
        (lambda: producers(c=[1.0, math.nan]), r"producers\.c must be finite"),
        (lambda: producers(c=[], r=[], rbar=[], lam=[]), r"at least one producer"),
        (lambda: market(eta=0.0), r"eta must be > 0"),
        (lambda: market(eta=-1.0), r"eta must be > 0"),
        (lambda: market(t1=0.0), r"t1 must be > t0"),
        (lambda: market(t0=2.0, t1=1.0), r"t1 must be > t0"),
        (lambda: market(p0=math.inf), r"p0 must be finite"),
        (lambda: market(q=math.nan), r"q must be finite"),
        (lambda: market(phat0=math.nan), r"phat0 must be finite"),
        (lambda: mj.DemandIntercept(mean=1.0, period=0.0), r"a\.period must be > 0"),
        (lambda: mj.DemandIntercept(mean=1.0, cos=[1.0], sin=[]), r"same length"),
        (lambda: mj.DemandIntercept(mean=math.nan), r"a\.mean must be finite"),
        (lambda: mj.Noise(sigma=-1.0), r"noise\.sigma must be >= 0"),
        (lambda: mj.Noise(sigma_o=-0.1), r"noise\.sigma_o must be >= 0"),
        (lambda: mj.Noise(sigma=math.inf), r"noise\.sigma must be finite"),
        (lambda: mj.CompoundPoisson(-1.0, mj.FixedJumps(1.0)), r"intensity must be >= 0"),
        (lambda: mj.NormalJumps(0.0, -1.0), r"std must be >= 0"),
        (lambda: mj.ExponentialJumps(0.0), r"scale must be > 0"),
        (lambda: mj.ExponentialJumps(1.0, sign=2.0), r"sign must be 1 or -1"),
        (lambda: mj.FixedJumps(math.nan), r"value must be finite"),
    ],
)
def test_invalid_values_raise(build, pattern):
    with pytest.raises(ValueError, match=pattern):
        build()


def test_valid_game_and_defaults():
    g = mj.PriceGame(market(), producers())
    assert g.n == 2
    assert float(g.market.phat0) == 50.0
    assert float(g.noise.idiosyncratic_variance_rate) == 0.0
    # Negative rbar is allowed as long as r + rbar > 0.
    mj.Producers(c=[0.0], r=[1.0], rbar=[-0.5], lam=[0.0])


def test_jump_moments():
    assert float(mj.NormalJumps(1.0, 2.0).second_moment()) == 5.0
    assert float(mj.ExponentialJumps(2.0, sign=-1.0).mean()) == -2.0
    assert float(mj.ExponentialJumps(2.0).second_moment()) == 8.0
    cp = mj.CompoundPoisson(3.0, mj.FixedJumps(2.0))
    assert float(cp.variance_rate) == 12.0 and float(cp.drift_compensator) == 6.0


def test_seasonal_intercept():
    a = mj.DemandIntercept(mean=10.0, period=24.0, cos=[2.0, 1.0], sin=[0.5, 0.0])
    t = 5.0
    w = 2 * math.pi * t / 24.0
    expected = 10 + 2 * math.cos(w) + 0.5 * math.sin(w) + math.cos(2 * w)
    assert abs(float(a(jnp.asarray(t))) - expected) < 1e-12
    assert mj.DemandIntercept(mean=3.0).is_constant
