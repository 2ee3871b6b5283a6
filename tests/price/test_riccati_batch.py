"""Stacked Riccati solves of a batch of games (`solve_riccati(batch="stacked")`): against the
vmapped and the one-by-one solves, a tight reference, a closed form, gradients, blow-ups."""

import diffrax
import equinox as eqx
from helpers import assert_rel
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax._odes import stacked_evaluate
from mftg_jax.price._riccati import revenue_at_t0

B, N = 16, 3
TOL = 1e-8
PID = diffrax.PIDController(rtol=TOL, atol=TOL)
TIGHT = diffrax.PIDController(rtol=1e-12, atol=1e-12)
TIMES = (0.0, 0.37, 1.1)


def _games():
    """16 games of very different stiffness: eta from 0.1 to 4, r + rbar from 0.15 to 6."""
    ks = jax.random.split(jax.random.key(3), 4)
    u = lambda k, lo, hi, shape=(B,): jax.random.uniform(k, shape, minval=lo, maxval=hi)  # noqa: E731
    eta = jnp.geomspace(0.1, 4.0, B)
    r = jnp.geomspace(0.1, 4.0, B)[::-1, None] * u(ks[0], 0.5, 1.5, (B, N))
    games = [
        mj.PriceGame(
            mj.Market(eta=eta[b], a=u(ks[1], 5.0, 40.0)[b], q=1.0, t0=0.0, t1=1.5, p0=30.0),
            mj.Producers(
                c=u(ks[2], 0.0, 10.0, (B, N))[b],
                r=r[b],
                rbar=0.5 * r[b],
                lam=u(ks[3], 0.0, 0.5, (B, N))[b],
            ),
            mj.Noise(sigma=1.0, sigma_o=0.5),
        )
        for b in range(B)
    ]
    return games, mj.price.stack_games(games)


def _vmapped(game, controller=PID, **kw):
    return jax.vmap(lambda g: mj.price.solve_riccati(g, stepsize_controller=controller, **kw))(game)


def _at(sol, t):
    """A vmapped solution's values at `t`, shape (B, n) per coefficient."""
    return jax.vmap(lambda s: s.evaluate(t))(sol)


def _in_tolerances(x, ref):
    """|x - ref| in units of the local tolerance atol + rtol |ref|."""
    return float(np.max(np.abs(np.asarray(x) - ref) / (TOL + TOL * np.abs(ref))))


@pytest.fixture(scope="module")
def batch():
    games, game = _games()
    stacked = mj.price.solve_riccati(game, stepsize_controller=PID, batch="stacked")
    chunked = mj.price.solve_riccati(game, stepsize_controller=PID, batch="stacked", chunk=5)
    return dict(
        games=games,
        game=game,
        stacked=stacked,
        chunked=chunked,
        vmapped=_vmapped(game),
        reference=_vmapped(game, TIGHT, max_steps=1024),
    )


def test_each_game_meets_its_tolerance(batch):
    # Every game of the stacked solve is within a few of its own tolerances of the
    # tight-tolerance reference (the largest is 0.8 here). An error norm over the whole batch
    # instead of each game's would let the stiffest game drift to 6 tolerances.
    ref = batch["reference"]
    for t in TIMES:
        r = _at(ref, t)
        for mode in ("stacked", "chunked"):
            s = batch[mode].evaluate(t)
            for b in range(B):
                err = max(_in_tolerances(x[b], y[b]) for x, y in zip(s, r))
                assert err <= 3.0, (mode, t, b, err)


def test_stacked_equals_vmap_and_single_solves(batch):
    vm = batch["vmapped"]
    for t in TIMES:
        for mode in ("stacked", "chunked"):
            got = batch[mode].evaluate(t)
            assert got.alpha.shape == (B, N)
            for x, y in zip(got, _at(vm, t)):
                assert _in_tolerances(x, np.asarray(y)) < 20
    for b in (0, 7, B - 1):
        one = mj.price.solve_riccati(batch["games"][b], stepsize_controller=PID).evaluate(0.0)
        for x, y in zip(batch["stacked"].evaluate(0.0), one):
            assert _in_tolerances(x[b], np.asarray(y)) < 20
    # The stacked revenues and gains are the games' own.
    assert_rel(
        batch["stacked"].revenue(), jax.vmap(lambda s: s.revenue())(vm), rtol=1e-6, atol=1e-6
    )
    k, m = batch["stacked"].gains(0.5)
    k_vm, m_vm = jax.vmap(lambda s: s.gains(0.5))(vm)
    assert_rel(k, k_vm, rtol=1e-6, atol=1e-8)
    assert_rel(m, m_vm, rtol=1e-6, atol=1e-8)


def test_one_time_per_game(batch):
    ts = jnp.linspace(0.0, 1.5, B)
    want = jax.vmap(lambda s, t: s.evaluate(t))(batch["reference"], ts)
    for mode in ("stacked", "chunked"):
        got = batch[mode].evaluate(ts)
        for x, y in zip(got, want):
            assert _in_tolerances(x, np.asarray(y)) < 20
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        batch["stacked"].evaluate(jnp.zeros(3))
    with pytest.raises(ValueError, match="t must be a time in the horizon"):
        batch["stacked"].evaluate(2.0)


def test_values_at_given_times(batch):
    ts = jnp.asarray([0.0, 1.2, 0.4])
    saveat = diffrax.SaveAt(ts=ts)
    got = mj.price.solve_riccati(
        batch["game"], stepsize_controller=PID, saveat=saveat, batch="stacked", chunk=5
    ).values
    # (B, len(ts), n), from the reference's values at each time.
    want = [jnp.stack(v, axis=1) for v in zip(*(_at(batch["reference"], t) for t in ts))]
    for x, y in zip(got, want):
        assert x.shape == (B, 3, N)
        assert _in_tolerances(x, np.asarray(y)) < 20


def test_linear_problems_against_closed_form():
    # y_b' = -lam_b y_b, lam_b over four decades: each problem to its own tolerance.
    lam = jnp.geomspace(0.01, 100.0, 9)

    def decay(t, y, lam):
        return -lam * y

    sol = mj.solve_ode(
        decay,
        jnp.ones((9, 2)),
        0.0,
        1.0,
        jnp.stack([lam, 2 * lam], axis=1),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-9),
        saveat=diffrax.SaveAt(t1=True, dense=True),
        stacked_chunk=4,
    )
    exact = lambda t: jnp.exp(-jnp.stack([lam, 2 * lam], axis=1) * t)  # noqa: E731
    for t in (0.05, 0.5, 1.0):
        err = np.abs(np.asarray(stacked_evaluate(sol, t, 9)) - exact(t))
        assert np.all(err <= 20 * (1e-9 + 1e-6 * np.abs(exact(t)))), (t, err.max())
    assert sol.stats["num_steps"].shape == (3,)


@pytest.mark.slow
def test_gradients_equal_vmap_gradients(batch):
    game = batch["game"]

    at_t0 = diffrax.SaveAt(ts=jnp.zeros(1))

    def total_revenue(eta, stacked):
        # The revenue at t0 from the values at t0 (no dense output to differentiate through).
        g = eqx.tree_at(lambda g: g.market.eta, game, eta)
        if stacked:
            sol = mj.price.solve_riccati(
                g, stepsize_controller=PID, saveat=at_t0, batch="stacked", chunk=8
            )
            values = jax.tree.map(lambda x: x[:, 0], sol.values)
        else:
            values = jax.tree.map(
                lambda x: x[:, 0], jax.vmap(lambda s: s.values)(_vmapped(g, saveat=at_t0))
            )
        return jnp.sum(jax.vmap(revenue_at_t0)(g, values))

    eta = game.market.eta
    got = jax.grad(total_revenue)(eta, True)
    want = jax.grad(total_revenue)(eta, False)
    assert_rel(got, want, rtol=1e-5, atol=1e-6, what="d revenue / d eta")


def test_explosion_in_one_game_is_reported(batch):
    games = list(batch["games"])
    games[5] = eqx.tree_at(lambda g: g.market.q, games[5], jnp.asarray(-50.0))
    bad = mj.price.stack_games(games)
    with pytest.raises(mj.RiccatiExplosionError, match="game 5 of the stacked batch.*explodes"):
        mj.price.solve_riccati(bad, stepsize_controller=PID, batch="stacked")
    with pytest.raises(Exception, match="explodes on the horizon"):
        jax.jit(
            lambda g: (
                mj.price.solve_riccati(g, stepsize_controller=PID, batch="stacked")
                .evaluate(0.0)
                .alpha
            )
        )(bad)


@pytest.mark.slow
def test_step_budget_is_reported(batch):
    with pytest.raises(ValueError, match="step budget too small"):
        mj.price.solve_riccati(
            batch["game"], stepsize_controller=PID, batch="stacked", chunk=5, max_steps=12
        )


def test_bad_options(batch):
    game = batch["game"]
    with pytest.raises(ValueError, match="batch must be None or 'stacked'"):
        mj.price.solve_riccati(game, batch="vmapped")
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        mj.price.solve_riccati(game, batch="stacked", chunk=0)
    with pytest.raises(ValueError, match="pass batch='stacked'"):
        mj.price.solve_riccati(game, chunk=4)
    with pytest.raises(ValueError, match=r"games stacked on axis 0"):
        mj.price.solve_riccati(batch["games"][0], batch="stacked")
    with pytest.raises(ValueError, match="stacked_chunk must be a positive integer"):
        mj.solve_ode(lambda t, y, a: -y, jnp.ones((4, 1)), 0.0, 1.0, stacked_chunk=2.5)
    with pytest.raises(ValueError, match="a stacked solve shares t0 and t1"):
        mj.solve_ode(lambda t, y, a: -y, jnp.ones((4, 1)), jnp.zeros(4), 1.0, stacked_chunk=2)
    with pytest.raises(ValueError, match="takes stepsize_controller"):
        mj.price.solve_riccati(
            game,
            batch="stacked",
            stepsize_controller=diffrax.ClipStepSizeController(PID, step_ts=jnp.ones(1)),
        )
    other = eqx.tree_at(lambda g: g.market.t1, game, game.market.t1.at[2].set(2.0))
    with pytest.raises(ValueError, match="market.t1 must be the same for every game"):
        mj.price.solve_riccati(other, batch="stacked")
