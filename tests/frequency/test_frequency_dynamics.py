"""The swing dynamics: droop closed form, events, Kron vs Newton, a SciPy DAE solve, ANDES's
time-domain simulation, contingencies under vmap and gradients against finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import fsolve

import mftg_jax.frequency as fr
from mftg_jax.frequency._algebraic import bus_groups

TS = jnp.linspace(0.0, 20.0, 1001)
GAIN = 20.0 / (2 * np.pi * 60)  # 5 % droop on the 100 MVA base, in p.u. per rad/s


def scipy_swing(net, gain, theta0, events, ts):
    """Integrate the nonlinear swing DAE with SciPy's DOP853.

    The passive balance $0 = P_p - P^e_p(\\theta)$ is differentiated once,
    $\\dot\\theta_p = -J_{pp}^{-1}J_{pd}\\dot\\theta_d$ ($J = \\partial P^e/\\partial\\theta$), and
    integrated with the rest; at each event $(t_e, \\Delta P, s)$ the passive angles are
    re-solved with `fsolve`. Droop $u_g = -k\\omega_g$ at the generator buses (no bounds).
    """
    kind = np.asarray(net.kind)
    gen, pas = np.flatnonzero(kind == 0), np.flatnonzero(kind == 2)
    assert np.all(kind != 1)
    f, t = np.asarray(net.line_from), np.asarray(net.line_to)
    E = np.zeros((net.n, len(f)))
    E[f, np.arange(len(f))], E[t, np.arange(len(f))] = 1.0, -1.0
    M, D = np.asarray(net.M)[gen], np.asarray(net.D)[gen]
    P0, B0 = np.asarray(net.P, float), np.asarray(net.line_B, float)

    def pe(theta, B):
        return E @ (B * np.sin(E.T @ theta))

    def jac(theta, B):
        return (E * (B * np.cos(E.T @ theta))[None, :]) @ E.T

    def rhs(_, y, P, B):
        theta, w = y[: net.n], y[net.n :]
        e = pe(theta, B)
        dtheta = np.zeros(net.n)
        dtheta[gen] = w
        J = jac(theta, B)
        dtheta[pas] = -np.linalg.solve(J[np.ix_(pas, pas)], J[np.ix_(pas, gen)] @ w)
        dw = (P[gen] - gain * w - e[gen] - D * w) / M
        return np.concatenate([dtheta, dw])

    theta, w = np.array(theta0, float), np.zeros(len(gen))
    P, B = P0.copy(), B0.copy()
    bounds = [ts[0]] + [e[0] for e in events] + [ts[-1]]
    out = []
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        if k > 0:
            _, dP, scale = events[k - 1]
            P, B = P + dP, B * scale

            def res(tp, theta=theta, P=P, B=B):
                th = theta.copy()
                th[pas] = tp
                return P[pas] - pe(th, B)[pas]

            theta[pas] = fsolve(res, theta[pas], xtol=1e-13)
        sel = (ts >= lo) & ((ts < hi) if k < len(bounds) - 2 else (ts <= hi))
        sol = solve_ivp(rhs, (lo, hi), np.concatenate([theta, w]), method="DOP853",
                        t_eval=ts[sel], rtol=1e-11, atol=1e-12, args=(P, B))  # fmt: skip
        out.append(sol.y.T)
        end = solve_ivp(rhs, (lo, hi), np.concatenate([theta, w]), method="DOP853",
                        rtol=1e-11, atol=1e-12, args=(P, B))  # fmt: skip
        theta, w = end.y[: net.n, -1].copy(), end.y[net.n :, -1].copy()
    y = np.concatenate(out)
    return y[:, : net.n], y[:, net.n :]


@pytest.fixture(scope="module")
def net():
    return fr.load_case("wscc9", generator_damping=2.0)


@pytest.fixture(scope="module")
def step(net):
    event = fr.load_step(net, 4, 0.1, time=0.5)
    return event, fr.simulate_checked(net, fr.Droop(GAIN), event, ts=TS)


def _droop_offset(net, dP, gens):
    return dP / float(np.sum(GAIN + np.asarray(net.D)[gens]))


def test_droop_steady_state_offset(net, step):
    _, traj = step
    gen, _, _ = bus_groups(net)
    expected = _droop_offset(net, -0.1, gen)
    np.testing.assert_allclose(traj.omega[-1, gen], expected, rtol=1e-4)
    # The droop injections make up the step (with the damping's share).
    np.testing.assert_allclose(jnp.sum(traj.u[-1]), -GAIN * 3 * expected, rtol=1e-6)


def test_generator_trip_steady_state(net):
    gen, _, _ = bus_groups(net)
    lost = gen[2]
    event = fr.generator_trip(net, lost, 0.5)
    traj = fr.simulate_checked(net, fr.Droop(GAIN), event, ts=TS)
    rest = gen[:2]
    expected = _droop_offset(net, -float(net.P[lost]), rest)
    np.testing.assert_allclose(traj.omega[-1, rest], expected, rtol=1e-4)
    # The tripped unit is out of control from the event on (before it, it droops).
    after = np.asarray(TS) >= 0.5
    assert float(jnp.max(jnp.abs(traj.u[after, lost]))) == 0.0
    post = event.after(net)
    assert float(post.u_min[lost]) == 0.0 == float(post.u_max[lost])
    np.testing.assert_array_equal(post.u_max[rest], net.u_max[rest])
    # The centre of inertia of the remaining units after the trip (their common offset),
    # the full one before it.
    coi = fr.coi_frequency(traj, net, event)
    np.testing.assert_allclose(coi[-1], expected, rtol=1e-4)
    M = np.asarray(net.M)
    np.testing.assert_allclose(coi[~after], np.asarray(traj.omega[~after]) @ M / M.sum(),
                               rtol=1e-12, atol=1e-15)  # fmt: skip


ANDES_HORIZON = 2.0


def test_load_step_agrees_with_andes(net, step):
    # Our swing model against ANDES's time-domain simulation of the same case (classical
    # generators, constant-power loads, a load step); skipped where ANDES is not installed.
    # The network and grid of `step`: its compiled program is reused.
    pytest.importorskip("andes", reason="ANDES (the peers extra) is not installed")
    # ANDES has no governors here: the open loop is Droop(0).
    traj = fr.simulate_checked(net, fr.Droop(0.0), fr.load_step(net, 4, 0.1, 0.5), ts=TS)
    ts, delta, f_hz = fr.andes_tds("wscc9", generator_damping=2.0, load_step=(4, 0.1, 0.5),
                                   t1=ANDES_HORIZON, dt=0.01)  # fmt: skip
    gen, _, _ = bus_groups(net)
    ours_t = np.stack([np.interp(ts, TS, traj.theta[:, g]) for g in gen], -1)
    ours_f = np.stack([np.interp(ts, TS, traj.frequency_hz[:, g]) for g in gen], -1)
    d_andes = delta - delta[0]
    d_ours = ours_t - ours_t[0]
    peak = np.max(np.abs(f_hz))
    assert peak > 0.1  # the step is seen (0.13 Hz drop in 2 s)
    # Frequencies within 5 % of the peak deviation, rotor-angle excursions within 0.03 rad
    # (measured: 2.9 % and 0.015 rad); the residual is the AC network's losses and voltages.
    assert np.max(np.abs(ours_f - f_hz)) < 0.05 * peak
    assert np.max(np.abs(d_ours - d_andes)) < 0.03
    # The same 5 % bound holds relative to the smaller early peak (the first 0.5 s after the
    # step, the inter-machine swing, has the smallest absolute errors).
    early = ts <= 1.0
    assert np.max(np.abs(ours_f - f_hz)[early]) < 0.05 * np.max(np.abs(f_hz[early]))


@pytest.fixture(scope="module")
def small_responsive():
    # A generator, a frequency-responsive load with droop (gain above its damping) and a
    # passive bus.
    return fr.Network(
        kind=(0, 1, 2), M=[0.05, 0.0, 0.0], D=[0.02, 0.01, 0.0], P=[0.2, -0.1, -0.1],
        line_from=(0, 1), line_to=(2, 2), line_B=[8.0, 6.0],
        u_min=[0.0, -1.0, 0.0], u_max=[0.0, 1.0, 0.0],
    )  # fmt: skip


def test_droop_at_responsive_bus_closed_form(small_responsive):
    # D_r omega_r = P_r - Pe_r - k omega_r at the responsive bus: the closed loop settles at
    # omega* = dP / (D_g + D_r + k) (only the responsive bus droops, k = 3 D_r).
    net = small_responsive
    k, dP = 0.03, -0.05
    event = fr.load_step(net, 2, -dP, time=0.2)
    ts = jnp.linspace(0.0, 30.0, 31)
    traj = fr.simulate_checked(net, fr.Droop(k), event, ts=ts)
    expected = dP / (0.02 + 0.01 + k)
    np.testing.assert_allclose(traj.omega[-1, :2], expected, rtol=1e-5)
    np.testing.assert_allclose(traj.u[-1, 1], -k * expected, rtol=1e-5)
    # The responsive bus's algebraic equation holds along the path.
    Pe = jax.vmap(net.electrical_power)(traj.theta)[:, 1]
    resid = 0.01 * traj.omega[:, 1] - (net.P[1] + traj.u[:, 1] - Pe)
    assert float(jnp.max(jnp.abs(resid))) < 1e-12
    with pytest.raises(ValueError, match="droop must be 0"):
        fr.simulate(net, fr.GatherBroadcast(droop=0.1), ts=ts)


def test_simulate_and_droop_validation(small_responsive):
    net = small_responsive
    with pytest.raises(ValueError, match="ts must be strictly increasing"):
        fr.simulate(net, ts=jnp.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"theta0 must have shape \(n=3,\)"):
        fr.simulate(net, ts=jnp.array([0.0, 1.0]), theta0=jnp.zeros(2))
    with pytest.raises(ValueError, match=r"omega0 must have shape \(n=3,\)"):
        fr.simulate(net, ts=jnp.array([0.0, 1.0]), omega0=jnp.zeros(4))
    with pytest.raises(ValueError, match="Droop.gain must be a scalar or one per bus"):
        fr.simulate(net, fr.Droop(jnp.ones(2)), ts=jnp.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="generator_damping must be a scalar or one per"):
        fr.load_case("wscc9", generator_damping=[1.0, 2.0])
    # Without inertia the centre-of-inertia average falls back on the dampings (no NaN).
    only = fr.Network(kind=(1, 1, 2), M=[0.0, 0.0, 0.0], D=[1.0, 3.0, 0.0], P=[0.1, -0.1, 0.0],
                      line_from=(0, 1), line_to=(2, 2), line_B=[5.0, 5.0])  # fmt: skip
    traj = fr.Trajectory(jnp.zeros(1), jnp.zeros((1, 3)), jnp.array([[1.0, 2.0, 0.0]]),
                         jnp.zeros((1, 3)), (), 60.0)  # fmt: skip
    np.testing.assert_allclose(fr.coi_frequency(traj, only), [(1.0 + 6.0) / 4.0])


@pytest.mark.slow
def test_unrolled_newton_matches_optimistix_trajectory(net, step):
    event, traj = step
    # The passive solves agree to 1e-12 (test_kron_reduction_properties); the trajectories
    # agree to the integration tolerance (rtol = atol = 1e-8; measured 2.5e-8 rad).
    other = fr.simulate_checked(net, fr.Droop(GAIN), event, ts=TS, newton="optimistix")
    np.testing.assert_allclose(other.omega, traj.omega, rtol=0, atol=1e-7)
    np.testing.assert_allclose(other.theta, traj.theta, rtol=0, atol=1e-7)


def test_line_trip_settles_at_new_equilibrium(net):
    event = fr.line_trip(net, 3, 0.5)
    traj = fr.simulate_checked(net, fr.Droop(GAIN), event, ts=TS)
    after = fr.equilibrium(event.after(net))
    rel = traj.theta[-1] - traj.theta[-1, 0]
    np.testing.assert_allclose(rel, after - after[0], atol=1e-5)
    assert float(jnp.max(jnp.abs(traj.omega[-1]))) < 1e-5
    with pytest.raises(ValueError, match="islands"):
        fr.line_trip(net, 9, 0.5)  # generator 1's internal line


def test_nonlinear_against_scipy_dae(net, step):
    event, traj = step
    theta0 = np.asarray(fr.equilibrium(net))
    ev = [(0.5, np.asarray(event.delta_P), np.asarray(event.line_scale))]
    theta, omega = scipy_swing(net, GAIN, theta0, ev, np.asarray(TS))
    gen, _, _ = bus_groups(net)
    err_w = np.max(np.abs(omega - np.asarray(traj.omega[:, gen])))
    err_t = np.max(np.abs(theta - np.asarray(traj.theta)))
    assert err_w < 1e-5 * np.max(np.abs(omega)), err_w
    assert err_t < 1e-6, err_t


def test_kron_reduction_properties(net):
    theta_star = fr.equilibrium(net)
    kr = fr.kron_reduce(net, theta_star)
    L = np.asarray(kr.L_red)
    np.testing.assert_allclose(L, L.T, atol=1e-12)
    np.testing.assert_allclose(L.sum(axis=1), 0, atol=1e-10)
    gen, dyn, pas = bus_groups(net)
    # At the operating point the Kron affine maps reproduce the nonlinear solution.
    np.testing.assert_allclose(kr.K @ theta_star[dyn] + kr.k, theta_star[pas], atol=1e-12)
    np.testing.assert_allclose(
        kr.L_red @ theta_star[dyn] - kr.c, net.electrical_power(theta_star)[dyn], atol=1e-12
    )
    # Newton (optimistix) and the unrolled Newton give one passive solution, and the Kron
    # (linear) electrical power differs from the Newton (nonlinear) one at second order.
    solve = jax.jit(lambda th: (fr.solve_passive(net, th), fr.solve_passive_unrolled(net, th)))
    direction = jnp.array([1.0, -0.6, 0.4])
    gaps = []
    for size in (0.02, 0.01):
        shifted = theta_star[dyn] + size * direction
        a, b = solve(shifted)
        np.testing.assert_allclose(a, b, atol=1e-12)
        theta = jnp.zeros(net.n).at[dyn].set(shifted).at[pas].set(a)
        assert float(jnp.max(jnp.abs((net.P - net.electrical_power(theta))[pas]))) < 1e-11
        linear = kr.L_red @ shifted - kr.c
        gaps.append(float(jnp.max(jnp.abs(linear - net.electrical_power(theta)[dyn]))))
    np.testing.assert_allclose(gaps[0] / gaps[1], 4.0, rtol=0.05)


@pytest.mark.slow
def test_linear_kron_matches_nonlinear_newton_at_small_steps(net):
    # The linear model's error against the nonlinear one is second order in the step.
    gen, _, _ = bus_groups(net)
    errors = []
    for size in (0.02, 0.01):
        event = fr.load_step(net, 4, size, time=0.5)
        a = fr.simulate_checked(net, fr.Droop(GAIN), event, ts=TS)
        b = fr.simulate_checked(net, fr.Droop(GAIN), event, ts=TS, model="linear")
        scale = float(jnp.max(jnp.abs(a.omega[:, gen])))
        errors.append(float(jnp.max(jnp.abs(a.omega - b.omega))) / scale)
    assert errors[1] < 0.01, errors
    np.testing.assert_allclose(errors[0] / errors[1], 2.0, rtol=0.1)


@pytest.mark.slow
def test_line_contingencies_vmap_39bus():
    net39 = fr.load_case("ieee39", generator_damping=2.0)
    cont = fr.line_contingencies(net39, time=0.1)
    assert len(cont.lines) + len(cont.skipped) == len(net39.line_B)
    # The generators' internal lines and the radial step-up transformers island the network.
    assert set(range(46, 56)) <= set(cont.skipped)
    ts = jnp.linspace(0.0, 5.0, 51)
    k = fr.Droop(20.0 / net39.omega_s)
    batch = fr.simulate_contingencies(net39, k, cont, ts=ts)
    for i in (0, len(cont.lines) // 2, len(cont.lines) - 1):
        ev = jax.tree.map(lambda x, i=i: x[i], cont.events)
        one = fr.simulate_checked(net39, k, ev, ts=ts)
        np.testing.assert_allclose(batch.omega[i], one.omega, atol=1e-9)
    assert bool(jnp.all(jnp.isfinite(batch.omega)))


@pytest.mark.slow
def test_nadir_and_cost_gradients_against_finite_differences(net):
    # The smooth nadir and the control cost  sum_g int a_g/2 u_g^2 dt  (trapezoid on the save
    # grid) against central differences in every generator's M and D and the droop gain.
    gen, _, _ = bus_groups(net)
    event = fr.load_step(net, 4, 0.1, time=0.5)
    ts = jnp.linspace(0.0, 3.0, 151)

    def outputs(M, D, k):
        n2 = eqx.tree_at(lambda n: (n.M, n.D), net, (M, D))
        traj = fr.simulate(n2, fr.Droop(k), event, ts=ts, rtol=1e-10, atol=1e-10)
        power = 0.5 * (traj.u**2) @ n2.cost_a
        cost = jnp.sum(0.5 * (power[1:] + power[:-1]) * jnp.diff(ts))
        return jnp.stack([fr.coi_nadir(traj, n2, temperature=1e-3), cost])

    args = (net.M, net.D, jnp.asarray(GAIN))
    jacs = jax.jit(jax.jacrev(outputs, argnums=(0, 1, 2)))(*args)
    for a, jac in enumerate(jacs):
        x = args[a]
        for i in gen if x.ndim else [None]:
            h = 1e-5 * float(jnp.abs(x[i] if i is not None else x))
            up, dn = list(args), list(args)
            up[a] = x.at[i].add(h) if i is not None else x + h
            dn[a] = x.at[i].add(-h) if i is not None else x - h
            fd = (outputs(*up) - outputs(*dn)) / (2 * h)
            got = jac[:, i] if i is not None else jac
            np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-9)
