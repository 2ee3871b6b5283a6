"""The linearised WSCC 9-bus network as an LQ game: the feedback stabilises, its matrix
best-response certificate passes, the linearisation agrees with the swing simulator's
linear model, and the nonlinear closed loop restores the frequency after a load step."""

import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from mftg_jax.frequency import (
    linearise,
    load_case,
    load_step,
    lq_controller,
    LQDesign,
    network_game,
    simulate,
)
from mftg_jax.lq import vector_nash_gap

LOAD_BUS = 4  # bus 5 of the case, a load bus
STEP = 0.1  # p.u.


@pytest.fixture(scope="module")
def case():
    net = load_case("wscc9")
    ctrl, sol = lq_controller(net)
    return net, linearise(net), ctrl, sol


def test_lq_feedback_stabilises(case):
    net, lin, ctrl, sol = case
    g0 = sol.gains(0.0)
    K = g0.mean[0, :, 0, :]
    # Additive noise, no mean-field cost terms: deviation and mean gains coincide.
    assert float(jnp.max(jnp.abs(g0.deviation - g0.mean))) < 1e-12
    assert float(jnp.max(jnp.abs(g0.intercept))) < 1e-12
    # The open loop has the rotation mode at 0; the closed loop is Hurwitz.
    open_eig = np.linalg.eigvals(np.asarray(lin.A))
    closed = np.linalg.eigvals(np.asarray(lin.A + lin.B @ K))
    assert np.max(open_eig.real) > -1e-9
    assert np.max(closed.real) < -0.1
    # The gains at t = 0 are stationary: a quarter of the horizon later they are the same.
    later = sol.gains(float(LQDesign().horizon) / 4).mean
    assert float(jnp.max(jnp.abs(later - g0.mean)) / jnp.max(jnp.abs(g0.mean))) < 1e-6


@pytest.mark.slow
def test_lq_certificate_passes(case):
    _, _, _, sol = case
    cert = vector_nash_gap(sol)
    assert float(jnp.max(jnp.abs(cert.nash.gap))) < 1e-8
    assert float(jnp.max(cert.gain_error)) < 1e-6


@pytest.mark.slow
def test_linearisation_matches_the_simulator_linear_model(case):
    net, lin, ctrl, _ = case
    ts = jnp.linspace(0.0, 2.0, 21)
    ev = load_step(net, LOAD_BUS, STEP, time=0.0)
    tr = simulate(net, ctrl, ev, ts=ts, model="linear", theta0=lin.theta_star, rtol=1e-10,
                  atol=1e-10)  # fmt: skip
    # x' = (A + B K) x + inject dP from x(0) = 0, in closed form.
    Acl = lin.A + lin.B @ ctrl.gain[jnp.asarray(lin.players)]
    f = lin.inject @ ev.delta_P
    d = Acl.shape[0]
    big = jnp.zeros((d + 1, d + 1)).at[:d, :d].set(Acl).at[:d, d].set(f)
    x = jnp.stack([jsl.expm(big * t)[:d, d] for t in ts[1:]])
    got = jnp.stack([ctrl.state(th, om) for th, om in zip(tr.theta[1:], tr.omega[1:])])
    assert float(jnp.max(jnp.abs(got - x))) < 1e-7 * max(1.0, float(jnp.max(jnp.abs(x))))


def test_nonlinear_closed_loop_restores_frequency(case):
    net, lin, ctrl, _ = case
    ts = jnp.linspace(0.0, 20.0, 201)
    tr = simulate(net, ctrl, load_step(net, LOAD_BUS, STEP, time=0.5), ts=ts,
                  theta0=lin.theta_star)  # fmt: skip
    w = np.asarray(tr.omega[:, np.asarray(lin.gen)])
    peak = np.max(np.abs(w))
    assert peak > 1e-3  # the step moves the frequency
    assert np.max(np.abs(w[-1])) < 1e-3 * peak  # and the LQ feedback restores it
    # The extra load is picked up by the generators' controls.
    assert abs(float(jnp.sum(tr.u[-1])) - STEP) < 1e-3 * STEP


def test_design_validation():
    with pytest.raises(ValueError, match="LQDesign.frequency_weight"):
        LQDesign(frequency_weight=0.0)
    with pytest.raises(ValueError, match="LQDesign.horizon"):
        LQDesign(horizon=-1.0)


def test_network_game_shapes(case):
    net, lin, _, _ = case
    game = network_game(net)
    assert (game.d, game.n, game.m) == (len(lin.dyn) + len(lin.gen), len(lin.players), 1)
