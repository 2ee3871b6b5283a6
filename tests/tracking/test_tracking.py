"""The regulated-price family against independent references: the lowering to the general
LQ game, the shared best-response solver, closed forms, Monte Carlo and finite differences."""

import argparse
import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax import lq, tracking as tr
from mftg_jax.cli import regulate
from tests.helpers import assert_rel, central_difference, execute_notebook

EXAMPLE = "examples/regulated_price.toml"
TIGHT = diffrax.PIDController(rtol=1e-11, atol=1e-11)


def _game(n=3, cross=None, t1=2.0, **kw):
    base = dict(
        eta=[1.0, 2.0, 0.5][:n],
        demand=tr.Fourier(
            [2.0, 2.5, 1.6][:n], [[0.2], [0.0], [0.1]][:n], [[0.0], [0.3], [0.0]][:n]
        ),
        supply=tr.Fourier.constant([1.0, 1.5, 0.6][:n]),
        band=tr.Band([0.9, 0.8, 0.95][:n], [1.1, 1.2, 1.05][:n]),
        costs=tr.Costs(
            q=[1.0, 2.0, 3.0][:n],
            qbar=[0.5, 0.0, 1.0][:n],
            q_terminal=[1.0, 0.5, 2.0][:n],
            qbar_terminal=[0.0, 0.5, 0.0][:n],
            r=[0.1, 0.2, 0.3][:n],
            rbar=[0.1, 0.0, 0.1][:n],
        ),
        noise=tr.Noise(
            sigma=[0.1, 0.2, 0.3][:n],
            sigma_o=0.1,
            jumps=mj.CompoundPoisson(2.0, mj.NormalJumps(0.0, 0.1)),
            common_jumps=mj.CompoundPoisson(1.0, mj.NormalJumps(0.0, 0.05)),
        ),
        p0=[1.0, 1.1, 0.9][:n],
        t1=t1,
        cross=cross,
    )
    base.update(kw)
    return tr.TrackingGame(**base)


CROSS = jnp.array([[0.0, 0.3, 0.1], [0.2, 0.0, -0.2], [0.1, 0.1, 0.0]])


@pytest.fixture(scope="module")
def game():
    return _game()


@pytest.fixture(scope="module")
def solution(game):
    return tr.solve(game, stepsize_controller=TIGHT)


@pytest.fixture(scope="module")
def interacting():
    return tr.solve(_game(cross=CROSS), stepsize_controller=TIGHT)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(eta=[1.0, -1.0, 1.0]), "eta must be > 0"),
        (dict(p0=[1.0, 1.0]), "p0 must have one entry per asset"),
        (dict(cross=jnp.eye(3)), "zero diagonal"),
        (dict(cross=jnp.zeros((2, 2))), "cross must have shape"),
        (dict(t1=0.0), "t1 must be > t0"),
    ],
)
def test_game_validation(change, match):
    with pytest.raises(ValueError, match=match):
        _game(**change)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("r", [0.1, 0.0, 0.1], "costs.r must be > 0"),
        ("q", [1.0, -1.0, 1.0], "costs.q must be >= 0"),
        ("qbar", [-2.0, 0.0, 0.0], r"costs.q \+ costs.qbar must be >= 0"),
        ("rbar", [-0.2, 0.0, 0.0], r"costs.r \+ costs.rbar must be > 0"),
        ("q_terminal", [np.nan, 1.0, 1.0], "costs.q_terminal must be finite"),
    ],
)
def test_cost_validation(field, value, match):
    kw = dict(q=1.0, qbar=0.0, q_terminal=1.0, qbar_terminal=0.0, r=0.1, rbar=0.0)
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        tr.Costs(**kw)


def test_band_validation():
    with pytest.raises(ValueError, match="band must have lo < hi"):
        tr.Band([1.0, 1.0, 1.0], [1.1, 1.0, 1.2])


def test_noise_validation():
    with pytest.raises(ValueError, match="noise.sigma must be >= 0"):
        tr.Noise(sigma=[-0.1])


# -- the target -------------------------------------------------------------------------------


def test_slides_target_coefficients_and_band():
    band = tr.Band([0.99], [1.01])
    w = 0.02
    np.testing.assert_allclose(band.target.mean, [1.0])
    np.testing.assert_allclose(band.target.cos, [[w / 100, w / 200]])
    np.testing.assert_allclose(band.target.sin, [[w / 150, w / 250]])
    lo, hi, inside = tr.target_range(band)
    t = np.linspace(0, 1, 200001)
    ref = 1.0 + w / 100 * np.cos(2 * np.pi * t) + w / 150 * np.sin(2 * np.pi * t)
    ref += w / 200 * np.cos(4 * np.pi * t) + w / 250 * np.sin(4 * np.pi * t)
    assert_rel(lo, [ref.min()], 0, 1e-12, "target min")
    assert_rel(hi, [ref.max()], 0, 1e-12, "target max")
    assert inside.all()


def test_target_outside_band_is_reported():
    target = tr.Fourier([1.0], [[0.05, 0.0]], [[0.0, 0.0]])
    lo, hi, inside = tr.target_range(tr.Band([0.99], [1.01], target))
    assert_rel(hi, [1.05], 1e-12)
    assert not inside[0]


# -- the Riccati solution: two routes and the lowering to mftg_jax.lq ---------------------------


def test_lowering_to_lq_agrees(game, solution):
    const = tr.lq_constant(game)
    v = solution.evaluate(game.t0)
    for i in range(game.n):
        sol = lq.solve(tr.to_lq(game, i), stepsize_controller=TIGHT)
        w = sol.evaluate(game.t0)
        assert_rel(w.alpha[0, 0] / 2, v.alpha[i], 1e-7, what="alpha")
        assert_rel(w.beta[0, 0] / 2, v.P[i], 1e-7, what="beta")
        assert_rel(w.gamma[0, 0] / 2, v.g[i], 1e-7, 1e-9, what="gamma")
        assert_rel(sol.cost()[0] + const[i], solution.cost()[i], 1e-7, what="cost")


def test_matrix_route_reduces_to_decoupled(game, solution):
    full = tr.solve(game, interacting=True, stepsize_controller=TIGHT)
    assert_rel(full.cost(), solution.cost(), 1e-7, what="cost")
    K, k = full.mean_gains(0.3)
    Kd, kd = solution.mean_gains(0.3)
    assert_rel(K, jnp.diag(Kd), 1e-7, 1e-10, what="K")
    assert_rel(k, kd, 1e-7, 1e-10, what="k")


def test_decoupled_route_refuses_interaction():
    with pytest.raises(ValueError, match="cross = 0"):
        tr.solve(_game(cross=CROSS), interacting=False)


def test_explosion_is_reported():
    # A negative state weight cannot be built (validated); a huge step budget cut is.
    with pytest.raises(mj.RiccatiExplosionError):
        tr.solve(_game(), max_steps=2)


# -- certificates -------------------------------------------------------------------------------


def test_optimality_gap_decoupled(solution):
    cert = tr.nash_gap(solution)
    assert cert.objective == "cost"
    assert np.max(np.abs(cert.gap)) < 1e-6
    assert_rel(cert.candidate_value, solution.cost(), 1e-7, what="policy evaluation")


def test_nash_gap_interacting(interacting):
    cert = tr.nash_gap(interacting)
    assert np.max(np.abs(cert.gap)) < 1e-6
    assert_rel(cert.candidate_value, interacting.cost(), 1e-7, what="policy evaluation")


def test_wrong_candidate_has_a_gap(interacting):
    game = interacting.game
    wrong = tr.solve(eqx.tree_at(lambda g: g.costs.rbar, game, game.costs.rbar * 1.5 + 0.05))
    wrong = eqx.tree_at(lambda s: s.game, wrong, game)
    assert np.max(tr.nash_gap(wrong).gap) > 1e-4


# -- stationary closed forms --------------------------------------------------------------------


def test_stationary_closed_forms_vs_long_horizon():
    game = _game(t1=40.0)
    st = tr.stationary(game)
    sol = tr.solve(game)
    v = sol.evaluate(20.0)
    assert_rel(v.alpha, st.alpha, 1e-8, what="alpha")
    assert_rel(v.P, st.beta, 1e-8, what="beta")
    assert_rel(sol.deviation_gain(20.0), st.deviation_gain, 1e-8, what="gain")
    mo = tr.solve_moments(sol, [20.0])
    assert_rel(mo.deviation_variance[0], st.deviation_variance, 1e-8, what="var(p - phat)")
    assert_rel(mo.mean_variance[0], st.mean_variance, 1e-8, what="var(phat)")
    assert_rel(st.reversion_rate, game.eta * (1 + st.deviation_gain), 1e-12)


# -- Monte Carlo on the shared engine -----------------------------------------------------------


@pytest.fixture(scope="module")
def mc(solution):
    times = (0.0, 1.0, 2.0)
    mo = tr.solve_moments(solution, times)
    spec = mj.EnsembleSpec(
        n_paths=8000,
        n_common=40,
        n_steps=400,
        scheme="exponential",
        save_times=times,
        dtype="float64",
    )
    stats = tr.simulate(solution, jax.random.key(3), spec, center=np.asarray(mo.mean))
    return stats, mo


def test_mc_mean_and_variance_vs_moment_equations(mc):
    stats, mo = mc
    for s in (1, 2):
        z = (stats.mean["p"][s] - mo.mean[s]) / stats.stderr["p"][s]
        assert np.all(np.abs(z) < 4), f"mean z-scores {z}"
        z = (stats.mean["deviation2"][s] - mo.deviation_variance[s]) / stats.stderr["deviation2"][s]
        assert np.all(np.abs(z) < 4), f"E(p - phat)^2 z-scores {z}"
        z = (stats.mean["centered2"][s] - mo.variance[s]) / stats.stderr["centered2"][s]
        assert np.all(np.abs(z) < 4), f"Var p z-scores {z}"


def test_mc_scenario_mean_converges_to_phat(mc):
    stats, _ = mc
    # Per scenario: mean over 200 paths vs the scenario's phat, within 4 standard errors.
    scen = stats.scenario_mean["p"][:, -1]  # (M, n)
    phat = stats.per_scenario["phat"][:, -1]
    se = np.sqrt(stats.mean["deviation2"][-1] / 200)
    assert np.all(np.abs(scen - phat) < 4 * se[None, :] + 1e-12)


def test_mc_cost_vs_value_function(solution, mc):
    # The value-function identity: the mean realised cost (trapezoidal rule) is the
    # equilibrium cost, within 4 standard errors.
    stats, _ = mc
    z = (stats.mean["cost"] - np.asarray(solution.cost())) / stats.stderr["cost"]
    assert np.all(np.abs(z) < 4), f"cost z-scores {z}"


def test_mc_interacting_vs_moment_equations(interacting):
    times = (0.0, 2.0)
    mo = tr.solve_moments(interacting, times)
    spec = mj.EnsembleSpec(
        n_paths=4000,
        n_common=40,
        n_steps=400,
        scheme="exponential",
        save_times=times,
        dtype="float64",
    )
    st = tr.simulate(interacting, jax.random.key(11), spec, center=np.asarray(mo.mean))
    for name, ref in (
        ("p", mo.mean),
        ("deviation2", mo.deviation_variance),
        ("centered2", mo.variance),
    ):
        z = (st.mean[name][-1] - ref[-1]) / st.stderr[name][-1]
        assert np.all(np.abs(z) < 4), f"{name} z-scores {z}"


def test_euler_and_exponential_agree_on_moments(solution):
    spec = dict(n_paths=4000, n_common=1, n_steps=400, save_times=(2.0,), dtype="float64")
    mo = tr.solve_moments(solution, [2.0])
    st = tr.simulate(solution, jax.random.key(5), mj.EnsembleSpec(scheme="euler", **spec))
    z = (st.mean["deviation2"][0] - mo.deviation_variance[0]) / st.stderr["deviation2"][0]
    assert np.all(np.abs(z) < 4 + 0.02 * mo.deviation_variance[0] / st.stderr["deviation2"][0])


# -- gradients ----------------------------------------------------------------------------------


def _cost_of(lo, hi, r):
    g = _game()
    g = eqx.tree_at(lambda x: x.band, g, tr.Band(lo, hi))
    g = eqx.tree_at(lambda x: x.costs.r, g, r)
    return tr.solve(g).cost()


def test_gradients_vs_finite_differences():
    # One directional derivative per argument (a fixed random direction) against central
    # differences: the gradient of the summed cost w.r.t. the band's ends and the gains r.
    lo = jnp.array([0.9, 0.8, 0.95])
    hi = jnp.array([1.1, 1.2, 1.05])
    r = jnp.array([0.1, 0.2, 0.3])
    args = (lo, hi, r)
    grads = jax.grad(lambda *a: jnp.sum(_cost_of(*a)), argnums=(0, 1, 2))(*args)
    dirs = jax.random.normal(jax.random.key(7), (3, 3))
    for k in range(3):
        e = dirs[k] * args[k]

        def f(h, k=k, e=e):
            moved = list(args)
            moved[k] = args[k] + h * e
            return float(jnp.sum(_cost_of(*moved)))

        fd = central_difference(f, 0.0, 1e-5)
        assert_rel(grads[k] @ e, fd, 1e-5, 1e-9, what=f"directional derivative, argument {k}")


# -- the r -> 0 limit ---------------------------------------------------------------------------


def test_vanishing_control_cost():
    """As printed (r = 0) the cost has infimum 0 and no minimiser: J(r) -> 0 like sqrt(r) and
    the deviation gain grows like sqrt(q / r)."""
    rs = np.array([1e-1, 1e-2, 1e-3, 1e-4])
    costs, gains = [], []
    for r in rs:
        g = _game()
        g = eqx.tree_at(lambda x: (x.costs.r, x.costs.rbar), g, (jnp.full(3, r), jnp.zeros(3)))
        sol = tr.solve(g, max_steps=16384)
        costs.append(np.asarray(sol.cost()))
        gains.append(np.asarray(sol.deviation_gain(1.0)))
    costs, gains = np.stack(costs), np.stack(gains)
    assert np.all(np.diff(costs, axis=0) < 0), costs
    assert np.all(costs[-1] < 0.05 * costs[0]), costs
    assert np.all(np.diff(gains, axis=0) > 0)
    q = np.asarray(_game().costs.q)
    assert_rel(gains[-1] * np.sqrt(rs[-1]), np.sqrt(q), 0.05, what="gain ~ sqrt(q/r)")


# -- scale: vmap over configurations, many assets -----------------------------------------------


def test_vmap_over_configurations(game):
    qs = jnp.array([0.5, 1.0, 2.0])

    def cost(q):
        return tr.solve(eqx.tree_at(lambda x: x.costs.q, game, q * game.costs.q)).cost()

    batched = jax.vmap(cost)(qs)
    for j, q in enumerate(qs):
        assert_rel(batched[j], cost(q), 1e-10)


def test_many_assets():
    n = 10_000
    key = jax.random.key(0)
    u = jax.random.uniform(key, (4, n))
    z = jnp.zeros(n)
    g = tr.TrackingGame(
        eta=0.5 + u[0],
        demand=tr.Fourier.constant(2.0 + u[1]),
        supply=tr.Fourier.constant(jnp.ones(n)),
        band=tr.Band(0.9 * jnp.ones(n), 1.1 * jnp.ones(n)),
        costs=tr.Costs(q=1 + u[2], qbar=z, q_terminal=z + 1, qbar_terminal=z, r=0.1 + u[3], rbar=z),
        noise=tr.Noise(sigma=0.1 * jnp.ones(n)),
        p0=jnp.ones(n),
    )
    cost = tr.solve(g, dense=False).cost()
    assert cost.shape == (n,)
    for i in (0, 4321, n - 1):
        sub = jax.tree.map(
            lambda x, i=i: x[i : i + 1] if getattr(x, "ndim", 0) and x.shape[0] == n else x, g
        )
        assert_rel(tr.solve(sub).cost()[0], cost[i], 1e-7)
    with pytest.raises(ValueError, match="no dense output"):
        tr.solve(sub, dense=False).evaluate(0.5)


# -- configuration and command line -------------------------------------------------------------


def test_example_config_loads():
    g = tr.load_game(EXAMPLE)
    assert g.n == 3 and not g.interacting


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[assets]\neta = [1.0]\np0 = 1.0\n[band]\nlo = 1.0\nhi = 1.0\n[costs]\nq = 1.0\nr = 0.1\n"
    )
    with pytest.raises(mj.ConfigError, match="lo < hi"):
        tr.load_game(bad)
    bad.write_text("[assets]\neta = [1.0]\np0 = 1.0\nspeed = 2\n")
    with pytest.raises(mj.ConfigError, match="unknown key assets.speed"):
        tr.load_game(bad)


def _run(argv, capsys):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    regulate.register(sub)
    args = p.parse_args(["regulate", *argv])
    rc = args.func(args)
    return rc, capsys.readouterr().out


@pytest.mark.slow  # about 25 s: compiles the certificate and two ensembles
def test_cli_json(capsys, tmp_path):
    rc, out = _run(
        [EXAMPLE, "--json", "--paths", "2000", "--steps", "100", "--out", str(tmp_path)], capsys
    )
    assert rc == 0
    rep = json.loads(out)
    for key in (
        "target_min",
        "target_max",
        "inside_band",
        "cost",
        "nash_gap",
        "stationary_variance",
        "mc_variance_t1",
        "mc_variance_t1_stderr",
        "mc_mean_t1",
        "mc_mean_t1_stderr",
        "fraction_inside_band",
        "fraction_inside_band_uncontrolled",
    ):
        assert len(rep[key]) == 3, key
    assert all(rep["inside_band"])
    assert max(abs(x) for x in rep["nash_gap"]) < 1e-6
    z = (np.array(rep["mc_mean_t1"]) - rep["mean_t1"]) / np.array(rep["mc_mean_t1_stderr"])
    assert np.all(np.abs(z) < 4)
    assert np.all(
        np.array(rep["fraction_inside_band"]) >= np.array(rep["fraction_inside_band_uncontrolled"])
    )
    assert (tmp_path / "report.json").exists()


def test_cli_bad_config_is_a_value_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("t1 = -1.0\n")
    with pytest.raises(ValueError):
        _run([str(bad), "--json"], capsys)


def test_cli_exit_status_through_main(tmp_path, monkeypatch, capsys):
    import mftg_jax.cli as cli

    assert "regulate" in cli._COMMANDS
    bad = tmp_path / "bad.toml"
    bad.write_text("[assets]\neta = [1.0]\np0 = 1.0\n[band]\nlo = 2.0\nhi = 1.0\n")
    assert cli.main(["regulate", str(bad), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("mftg regulate: error:")
        and "missing table [costs]" in err[0]
    )


# -- the notebook -------------------------------------------------------------------------------


def test_notebook_executes(tmp_path):
    execute_notebook("regulated_price", tmp_path, full=False)


@pytest.mark.slow  # the Nord Pool continuation: about a minute
def test_notebook_full_size(tmp_path):
    execute_notebook("regulated_price", tmp_path, full=True)
