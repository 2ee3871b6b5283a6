"""Economic dispatch, secondary controllers and steady-state certificates of `mj.frequency`."""

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax.cli import main
import mftg_jax.frequency as fq
from mftg_jax.frequency import (
    DispatchProblem,
    economic_dispatch,
    kkt_certificate,
)
from mftg_jax.frequency._economic import dispatch_family_check


def _random_problems(seed: int, count: int, n: int = 9, fixed_units: bool = True):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        a = rng.uniform(0.5, 3.0, n)
        a[rng.random(n) < 0.3] = 0.0
        b = rng.uniform(-1.0, 1.0, n)
        lo, hi = -rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 1.0, n)
        if fixed_units:
            fixed = rng.random(n) < 0.2
            lo[fixed] = hi[fixed] = 0.0
        r = rng.uniform(lo.sum(), hi.sum())
        out.append(DispatchProblem(a, b, lo, hi, r))
    return out


def _highs_qp(p):
    highspy = pytest.importorskip("highspy", reason="highspy (the peers extra) is not installed")
    a, b, lo, hi = (np.asarray(v) for v in (p.cost_a, p.cost_b, p.u_min, p.u_max))
    n = len(a)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.addVars(n, lo, hi)
    h.changeColsCost(n, np.arange(n, dtype=np.int32), b)
    h.addRow(float(p.demand), float(p.demand), n, np.arange(n, dtype=np.int32), np.ones(n))
    quad = np.flatnonzero(a > 0)
    start = np.searchsorted(quad, np.arange(n)).astype(np.int32)
    h.passHessian(
        n, len(quad), highspy.HessianFormat.kTriangular, start, quad.astype(np.int32), a[quad]
    )
    h.run()
    return np.array(h.getSolution().col_value), h.getInfo().objective_function_value


def _stack(problems):
    return jax.tree.map(lambda *x: jnp.stack(x), *problems)


@pytest.fixture(scope="module")
def problems():
    return _random_problems(0, 12)


@pytest.fixture(scope="module")
def solved(problems):
    batch = _stack(problems)
    sol = jax.vmap(economic_dispatch)(batch)
    return batch, sol, jax.vmap(kkt_certificate)(batch, sol.dispatch, sol.price)


def test_dispatch_kkt_and_duality_gap(solved):
    _, _, cert = solved
    assert float(jnp.max(cert.kkt_residual)) < 1e-12
    assert float(jnp.max(jnp.abs(cert.duality_gap))) < 1e-12
    assert float(jnp.max(cert.marginal_cost_spread)) < 1e-12


def test_dispatch_matches_dispatch_family_and_highs_qp():
    # The dispatch family's Fleet has outputs in [0, capacity]: shifted by u_min (one shape).
    problems = _random_problems(1, 4, fixed_units=False)
    sol = jax.vmap(economic_dispatch)(_stack(problems))
    for k, p in enumerate(problems):
        u, cost = np.asarray(sol.dispatch[k]), float(sol.cost[k])
        u_fleet, _ = dispatch_family_check(p)
        # Optimal costs agree to rounding; dispatches where the optimum is unique.
        assert float(p.cost(u_fleet)) == pytest.approx(cost, abs=1e-12)
        unique = np.asarray(p.cost_a) > 0
        np.testing.assert_allclose(u[unique], u_fleet[unique], atol=1e-10)
        u_qp, obj = _highs_qp(p)
        assert obj == pytest.approx(cost, abs=1e-6)
        np.testing.assert_allclose(u[unique], u_qp[unique], atol=1e-5)


def test_dispatch_closed_form_and_merit_order():
    # No bound active: lambda = (r + sum b/a) / sum 1/a.
    a, b = np.array([1.0, 2.0, 4.0]), np.array([0.1, -0.2, 0.3])
    lam = (1.5 + np.sum(b / a)) / np.sum(1 / a)
    both = _stack(
        [
            DispatchProblem(a, b, -10.0 * np.ones(3), 10.0 * np.ones(3), 1.5),
            # Linear costs: the merit order fills the cheapest first, the marginal unit's cost
            # is the price.
            DispatchProblem(np.zeros(3), [3.0, 1.0, 2.0], np.zeros(3), np.ones(3), 1.5),
        ]
    )
    sol = jax.vmap(economic_dispatch)(both)
    assert float(sol.price[0]) == pytest.approx(lam, rel=1e-14)
    np.testing.assert_allclose(sol.dispatch[0], (lam - b) / a, rtol=1e-13)
    np.testing.assert_allclose(sol.dispatch[1], [0.0, 1.0, 0.5], atol=1e-15)
    assert float(sol.price[1]) == 2.0


def test_dispatch_gradients_against_finite_differences(problems):
    p = problems[1]

    def cost(a, r):
        return economic_dispatch(DispatchProblem(a, p.cost_b, p.u_min, p.u_max, r)).cost

    ga, gr = jax.grad(cost, argnums=(0, 1))(p.cost_a, p.demand)
    # Envelope theorem: d cost* / d demand = lambda*.
    assert float(gr) == pytest.approx(float(economic_dispatch(p).price), rel=1e-10)
    eps = 1e-6
    quad = np.flatnonzero(np.asarray(p.cost_a) > 0)[:3]
    steps = jnp.zeros((2 * len(quad), p.cost_a.shape[0]))
    for k, i in enumerate(quad):
        steps = steps.at[2 * k, i].set(eps).at[2 * k + 1, i].set(-eps)
    vals = jax.vmap(lambda d: cost(p.cost_a + d, p.demand))(steps)
    fd = (vals[0::2] - vals[1::2]) / (2 * eps)
    np.testing.assert_allclose(ga[quad], fd, rtol=1e-6, atol=1e-9)


def test_certificate_detects_a_wrong_dispatch(problems):
    p = problems[0]
    sol = economic_dispatch(p)
    free = np.flatnonzero(np.asarray(p.u_max) > np.asarray(p.u_min))
    u = jnp.asarray(sol.dispatch).at[free[0]].add(1e-3)
    assert float(kkt_certificate(p, u, sol.price).kkt_residual) > 1e-5
    assert float(kkt_certificate(p, sol.dispatch, sol.price + 1e-3).kkt_residual) > 1e-8


def test_dispatch_rejects_bad_input():
    with pytest.raises(ValueError, match="dispatch.cost_a"):
        DispatchProblem([-1.0], [0.0], [0.0], [1.0], 0.5)
    with pytest.raises(ValueError, match="dispatch.demand must be in"):
        DispatchProblem([1.0], [0.0], [0.0], [1.0], 2.0)
    with pytest.raises(ValueError, match="dispatch.u_min"):
        DispatchProblem([1.0], [0.0], [1.0], [0.0], 0.5)


# ---------------------------------------------------------------- closed loops (wscc9)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "frequency.toml"


@pytest.fixture(scope="module")
def study():
    return fq.load_config(EXAMPLE)


@pytest.fixture(scope="module")
def dai_loop(study):
    ctrl = study.controller("dai")
    traj, cert = fq.closed_loop(study.network, ctrl, study.event, study.ts, model=study.model,
                                rtol=study.rtol, atol=study.atol)  # fmt: skip
    return ctrl, traj, cert


def test_dai_steady_state_is_certified(study, dai_loop):
    _, traj, cert = dai_loop
    assert bool(cert.converged)
    assert float(cert.vector_field_residual) < 1e-8
    assert float(cert.frequency_deviation) < 1e-8
    assert float(cert.kkt_residual) < 1e-8
    assert float(cert.marginal_cost_spread) < 1e-8
    assert float(cert.dispatch_error) < 1e-8
    # The simulated end state is near (not at) the certified equilibrium.
    assert float(cert.end_distance) < 1e-2
    assert float(cert.end_dispatch_error) < 1e-2
    assert float(cert.end_frequency_deviation) > float(cert.frequency_deviation)


def test_dai_equilibrium_balances_the_swing_equations(study, dai_loop):
    # Independent of the closed-loop vector field: at the root-solved angles theta* (omega* = 0)
    # every bus balances its power, P_i + u_i = sum_j B_ij sin(theta*_i - theta*_j), and theta*
    # agrees (up to a common rotation) with the load-flow equilibrium of the post-event network
    # computed by fq.equilibrium with the certified injection.
    ctrl, traj, cert = dai_loop
    after = study.event.after(study.network)
    theta = np.asarray(cert.angles)
    np.testing.assert_allclose(np.asarray(cert.frequencies), 0.0, atol=1e-10)
    Pe = np.asarray(after.electrical_power(jnp.asarray(theta)))
    np.testing.assert_allclose(np.asarray(after.P + cert.dispatch), Pe, atol=1e-9)
    flow = np.asarray(fq.equilibrium(eqx.tree_at(lambda n: n.P, after, after.P + cert.dispatch)))
    np.testing.assert_allclose(theta - theta[0], flow - flow[0], atol=1e-9)
    # The balance sum_i (P_i + u_i) = 0 and the per-unit optimality against the closed-form
    # dispatch of quadratic costs with inactive bounds: u_i = (lambda - b_i)/a_i with
    # lambda = (delta + sum b_i/a_i)/sum 1/a_i, delta the load the units cover.
    assert abs(float(jnp.sum(after.P + cert.dispatch))) < 1e-10
    gen = fq.generator_buses(after)
    a, b = np.asarray(after.cost_a)[gen], np.asarray(after.cost_b)[gen]
    delta = -float(np.sum(np.asarray(after.P)))
    lam = (delta + np.sum(b / a)) / np.sum(1 / a)
    np.testing.assert_allclose(np.asarray(cert.dispatch)[gen], (lam - b) / a, atol=1e-9)


# ---------------------------------------------------------------- `mftg frequency` on the study

KEYS = ("nadir_hz", "rocof_hz_per_s", "settling_time_s", "steady_state_frequency_deviation",
        "kkt_residual", "dispatch", "dispatch_cost")  # fmt: skip


def test_cli_json_and_figures(dai_loop, tmp_path, capsys):
    # The example study (WSCC 9-bus, DAI, a 0.5 p.u. load step): the compiled program of
    # `dai_loop` above (in this process; from the disk cache it would be traced again).
    out = tmp_path / "out"
    assert main(["frequency", str(EXAMPLE), "--json", "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in rep
    assert rep["certified"] is True
    assert rep["steady_state_source"] == "root_solve"
    assert rep["kkt_residual"] < 1e-8
    assert abs(rep["steady_state_frequency_deviation"]) < 1e-8
    assert rep["dispatch_error"] < 1e-8
    assert len(rep["dispatch"]) == 3
    # The load step is covered by the units: sum u = delta.
    assert sum(rep["dispatch"]) == pytest.approx(0.5, abs=1e-9)
    assert rep["nadir_hz"] < 0 and rep["rocof_hz_per_s"] < 0
    assert rep["dispatch_cost"] == pytest.approx(rep["optimal_dispatch_cost"], abs=1e-12)
    saved = json.loads((out / "report.json").read_text())
    assert saved["dispatch"] == rep["dispatch"]
    for name in ("frequencies.png", "angles.png", "dispatch.png"):
        assert (out / name).stat().st_size > 1000


def test_cli_uncertified_secondary_control_exits_1(dai_loop, monkeypatch, capsys):
    # The same study (the compiled program is reused) under a threshold no residual can meet:
    # a secondary controller whose steady state is not certified exits 1 with one line.
    from mftg_jax.cli import frequency as command

    monkeypatch.setattr(command, "TOLERANCE", 0.0)
    assert main(["frequency", str(EXAMPLE), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["certified"] is False
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert "certificate failed: the dai steady state is not certified" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuchcase"], "CASE_OR_CONFIG must be one of"),
        (["wscc9", "--event", "load_step:5"], "--event must be"),
        (["wscc9", "--event", "load_step:42:0.1"], "event.bus must be a bus number"),
        (["wscc9", "--event", "generator_trip:7"], "event.generator must be in"),
        (["wscc9", "--t1", "-1"], "--t1 must be"),
        (["wscc9", "--compare", "--scenarios", "1"], "at least 2 scenarios"),
    ],
)
def test_cli_bad_arguments_exit_2(capsys, args, message):
    assert main(["frequency", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err


def test_cli_usage_error_runs_no_simulation(monkeypatch, capsys):
    # A Monte Carlo of one scenario is refused before the closed-loop run, not after it.
    import mftg_jax.cli.frequency as command

    def no_run(*args, **kwargs):
        raise AssertionError("the closed loop ran before the usage check")

    monkeypatch.setattr(command, "frequency_report", no_run)
    assert main(["frequency", "wscc9", "--compare", "--scenarios", "1"]) == 2
    assert "at least 2 scenarios" in capsys.readouterr().err


def test_metrics_on_a_known_signal(study):
    # Delta f(t) = -c t on [0, 1], -c after: nadir -c, RoCoF -c (window inside the ramp),
    # settling when the band around the final value is entered: |df - df_end| = c (1 - t).
    c, band = 0.2, 0.01

    @jax.jit
    def figures(ts, u):
        df = -c * jnp.minimum(ts, 1.0)
        m = fq._metrics
        return (m.nadir(ts, df), m.rocof(ts, df, 0.5), m.settling_time(ts, df, band, 0.0),
                m.control_cost(study.network, ts, u))  # fmt: skip

    ts = jnp.linspace(0.0, 4.0, 401)
    nad, roc, settle, cost = figures(ts, jnp.ones((401, study.network.n)))
    assert float(nad) == pytest.approx(-c)
    assert float(roc) == pytest.approx(-c, rel=1e-12)
    assert float(settle) == pytest.approx(1 - band / c, abs=0.011)
    J = float(jnp.sum(0.5 * study.network.cost_a + study.network.cost_b))
    assert float(cost) == pytest.approx(4.0 * J)


def test_controllers_reject_bad_input(study):
    net = study.network
    with pytest.raises(ValueError, match="DAI.time_constant"):
        fq.DistributedAveragingIntegral(fq.ring_communication(net), -1.0)
    with pytest.raises(ValueError, match="DAI.communication must be symmetric"):
        fq.DistributedAveragingIntegral(np.triu(np.ones((net.n, net.n)), 1))
    with pytest.raises(ValueError, match="must connect every controllable bus"):
        fq.DistributedAveragingIntegral(np.zeros((net.n, net.n))).init(net)
    with pytest.raises(ValueError, match="PopulationDispatch.dynamics"):
        fq.PopulationDispatch(fq.ring_communication(net), dynamics="logit")
    with pytest.raises(ValueError, match="GatherBroadcast.time_constant"):
        fq.GatherBroadcast(0.0)
    linear = eqx.tree_at(lambda n: n.cost_a, net, jnp.zeros(net.n))
    with pytest.raises(ValueError, match="cost_a > 0"):
        fq.GatherBroadcast(1.0).init(linear)
    ring = fq.ring_communication(net)
    with pytest.raises(ValueError, match="DAI.time_constant must be a scalar or one per bus"):
        fq.DistributedAveragingIntegral(ring, jnp.ones(net.n + 1))
    with pytest.raises(ValueError, match="DAI.droop must be a scalar or one per bus"):
        fq.DistributedAveragingIntegral(ring, 1.0, jnp.ones(2))
    with pytest.raises(ValueError, match="PopulationDispatch.droop must be a scalar or one"):
        fq.PopulationDispatch(ring, droop=jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="GatherBroadcast.weights must not be all zero"):
        fq.GatherBroadcast(1.0, weights=jnp.zeros(net.n))
    with pytest.raises(ValueError, match="GatherBroadcast.weights must be one per bus"):
        fq.GatherBroadcast(1.0, weights=jnp.ones(net.n + 1)).init(net)
    # An edge through a non-controllable bus does not count: the units must be connected
    # through edges between controllable buses (the masked graph the prices move on).
    gens = fq.generator_buses(net)
    hub = int(np.flatnonzero(~np.asarray(net.controllable))[0])
    star = np.zeros((net.n, net.n))
    star[gens, hub] = star[hub, gens] = 1.0
    with pytest.raises(ValueError, match="through edges between controllable buses"):
        fq.DistributedAveragingIntegral(star).init(net)
    # The default gathered frequency is the centre of inertia at the generators.
    w = np.asarray(fq.GatherBroadcast(1.0).gather_weights(net))
    M = np.asarray(net.M)
    np.testing.assert_allclose(w[gens], M[gens] / M[gens].sum(), rtol=1e-12)
    with pytest.raises(fq_config_error(), match="event.delta makes the post-event dispatch"):
        fq.config_from_dict({"case": "wscc9", "event": {"kind": "load_step", "delta": 50.0}})


def fq_config_error():
    from mftg_jax._toml import ConfigError

    return ConfigError


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["broadcast", "population"])
def test_secondary_controllers_reach_the_dispatch(study, kind):
    ctrl = study.controller(kind)
    _, cert = fq.closed_loop(study.network, ctrl, study.event, study.ts, model=study.model,
                             rtol=study.rtol, atol=study.atol)  # fmt: skip
    assert bool(cert.converged)
    for name in ("vector_field_residual", "frequency_deviation", "kkt_residual",
                 "dispatch_error"):  # fmt: skip
        assert float(getattr(cert, name)) < 1e-8, name


@pytest.mark.slow
def test_droop_leaves_the_classical_offset_and_no_dispatch(study):
    # Droop alone settles at the omega* with sum_i P_i + clip(-k_i omega*) = omega* sum_i D_i
    # (the classical offset -Delta L / sum_i (k_i + D_i) where no unit saturates), solved here
    # by a scalar root; the dispatch constraint sum (P + u) = 0 fails.
    from scipy.optimize import brentq

    ctrl = study.controller("droop")
    traj, cert = fq.closed_loop(study.network, ctrl, study.event, study.ts, model=study.model,
                                rtol=study.rtol, atol=study.atol)  # fmt: skip
    after = study.event.after(study.network)
    k, D = np.asarray(ctrl.gains(after)), np.asarray(after.D)
    lo, hi, P = np.asarray(after.u_min), np.asarray(after.u_max), np.asarray(after.P)

    def balance(w):
        return P.sum() + np.clip(-k * w, lo, hi).sum() - w * D.sum()

    expected = brentq(balance, -10.0, 10.0, xtol=1e-14)
    gen = fq.generator_buses(after)
    np.testing.assert_allclose(np.asarray(traj.omega[-1])[gen], expected, rtol=1e-3)
    assert not bool(cert.converged) or float(cert.vector_field_residual) > 1e-8
    assert float(cert.end_kkt_residual) > 1e-4


@pytest.mark.slow
def test_population_dynamics_with_an_active_upper_bound(study):
    # A small upper bound on the cheapest unit: it saturates at the optimum; the Smith
    # population dynamics still reach the KKT point (shares past the bound deliver u_max).
    gen = fq.generator_buses(study.network)
    net = eqx.tree_at(lambda n: n.u_max, study.network, study.network.u_max.at[gen[0]].set(0.2))
    sol = fq.economic_dispatch(fq.DispatchProblem.from_network(study.event.after(net)))
    assert float(sol.dispatch[gen[0]]) == pytest.approx(0.2)
    ctrl = fq.build_controller(net, "population", dict(study.gains))
    _, cert = fq.closed_loop(net, ctrl, study.event, study.ts, model=study.model,
                             rtol=study.rtol, atol=study.atol)  # fmt: skip
    assert float(cert.kkt_residual) < 1e-8
    assert float(cert.dispatch_error) < 1e-8


@pytest.mark.slow
def test_monte_carlo_mean_against_the_mean_scenario(study):
    # Load deviations small against the step: the nadir is close to linear in the load, so
    # the Monte Carlo mean of the nadir agrees with the nadir of the mean scenario within
    # 4 standard errors (plus the linearisation error, measured below at 1e-5 Hz).
    ctrl = study.controller("dai")
    events = fq.load_scenarios(study.network, study.event, jax.random.key(0), 64, 0.02, 0.02)
    mc = fq.monte_carlo(study.network, ctrl, events, study.ts, model="linear",
                        rtol=study.rtol, atol=study.atol)  # fmt: skip
    traj, _ = fq.closed_loop(study.network, ctrl, study.event, study.ts, model="linear",
                             rtol=study.rtol, atol=study.atol)  # fmt: skip
    met = fq.frequency_metrics(study.network, traj.ts, traj.omega, traj.u, t_event=1.0)
    se = float(mc.stderr.nadir_hz)
    assert se > 0
    assert abs(float(mc.mean.nadir_hz) - float(met.nadir_hz)) < 4 * se + 1e-5
