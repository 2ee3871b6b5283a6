from helpers import assert_rel
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import mftg_jax as mj


@pytest.mark.parametrize("speed", mj.slides.SCENARIO1_SPEEDS)
def test_closed_form_against_scipy(speed):
    model = mj.slides.scenario_1(speed)
    rhs = lambda t, p: speed * (30.0 - (30.0 + 20.0 * np.sin(10 * np.pi * t)) - p)
    sol = solve_ivp(
        rhs, (0.0, 1.0), [170.0], method="DOP853", rtol=1e-12, atol=1e-12, dense_output=True
    )
    ts = np.linspace(0.0, 1.0, 41)
    assert_rel(model(ts), sol.sol(ts)[0], rtol=1e-9, atol=1e-9, what=f"p(t), s={speed}")
    assert float(model(0.0)) == pytest.approx(170.0, abs=1e-12)


def test_drift_is_derivative():
    model = mj.slides.scenario_1(10.0)
    t, h = 0.37, 1e-6
    fd = (model(t + h) - model(t - h)) / (2 * h)
    assert_rel(fd, model.drift(t, model(t)), rtol=1e-7, what="dp/dt")


def test_tracking_improves_with_speed():
    # Once the transient has died out the price follows a - D(t) with gain
    # s/sqrt(s^2 + w^2) and lag arctan(w/s), w = 10 pi: the faster, the closer.
    ts = np.linspace(0.8, 1.0, 2001)
    target = 30.0 - np.asarray(mj.slides.demand_profile(ts))
    errors = [
        np.max(np.abs(np.asarray(mj.slides.scenario_1(s)(ts)) - target)) for s in (1, 10, 100)
    ]
    assert_rel(target, -20.0 * np.sin(10 * np.pi * ts), rtol=0, atol=1e-12, what="a - D(t)")
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.35 * 20
    p = np.asarray(mj.slides.scenario_1(100.0)(ts))  # transient e^{-80}: gone
    w = 10 * np.pi
    assert 0.5 * (p.max() - p.min()) == pytest.approx(20 * 100 / np.hypot(100, w), rel=1e-6)


def test_constant_intercept():
    model = mj.slides.UncontrolledPrice(2.0, mj.DemandIntercept(mean=3.0), 0.0, 1.0, 5.0)
    assert_rel(model(0.5), 3.0 + 2.0 * np.exp(-1.0), rtol=1e-14)


@pytest.mark.parametrize(
    "kwargs, field",
    [(dict(speed=0.0), "speed"), (dict(t1=0.0), "t1"), (dict(p0=np.nan), "p0")],
)
def test_validation(kwargs, field):
    args = dict(speed=1.0, net_intercept=mj.DemandIntercept(mean=0.0), t0=0.0, t1=1.0, p0=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        mj.slides.UncontrolledPrice(**args)
