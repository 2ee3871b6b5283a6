"""The vector-state LQ game: d = 1 against the scalar solver, a decoupled d = 2 game against
two scalar games, the matrix best-response certificate, Monte Carlo, and validation.

All games share K = 2 regimes and n = 3 players (the scalar games of `general_games`), and
the d = 2 games share one shape, so that each jitted program compiles once.
"""

import diffrax
import equinox as eqx
from general_games import random_general_game
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax.lq import (
    simulate_vector,
    solve,
    solve_vector,
    vector_game_from_scalar,
    vector_nash_gap,
    VectorAffine,
    VectorDynamics,
    VectorJumps,
    VectorLQGame,
    VectorRunningCost,
    VectorTerminalCost,
)

TIGHT = dict(stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))


def _max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


@pytest.fixture(scope="module")
def scalar_pairs():
    out = []
    for seed in (0, 1, 2):
        g = random_general_game(seed)
        out.append((g, solve(g, **TIGHT), solve_vector(vector_game_from_scalar(g), **TIGHT)))
    return out


@eqx.filter_jit
def _scalar_summary(sol, ts):
    gains = [sol.gains(t) for t in ts]
    return sol.evaluate(sol.game.t0), sol.costs(), [(g[0], g[1], g[2]) for g in gains]


@eqx.filter_jit
def _vector_summary(sol, ts):
    v = sol.solution.evaluate(sol.game.t0)
    vals = (v.P[..., 0, 0], v.Pbar[..., 0, 0], v.gamma[..., 0], v.delta)
    gains = [sol.gains(t) for t in ts]
    got = [(g.deviation[..., 0, 0], g.mean[..., 0, 0], g.intercept[..., 0]) for g in gains]
    return vals, sol.costs(), got


def test_d1_equals_scalar_solver(scalar_pairs):
    # Every coefficient family non-zero: control- and state-dependent noise of all four kinds,
    # two regimes, discounting, cross and linear cost terms.
    ts = jnp.array([0.0, 0.37, 0.9])
    for _, ref, vec in scalar_pairs:
        a, b = _scalar_summary(ref, ts), _vector_summary(vec, ts)
        for part in range(3):
            assert _max_diff(a[part], b[part]) < 1e-10


def _embed(games):
    """Scalar games (same K, n, one mark of each kind) as one block-diagonal vector game:
    component a of the state, control a of every player and noise channel a of each family
    belong to game a; costs add up (discount and regime generator of the first game)."""
    d = len(games)
    eye = jnp.eye(d)

    def diag(vs):  # per-component arrays (...) -> (..., d, d)
        s = jnp.stack(vs, axis=-1)
        return s[..., None] * eye.reshape((1,) * (s.ndim - 1) + (d, d))

    def aff(get, channel):
        parts = [get(g) for g in games]
        const = jnp.stack([p.const for p in parts], axis=-1)  # (K, [C], d)
        x, xh = diag([p.x for p in parts]), diag([p.xhat for p in parts])
        u, uh = diag([p.u for p in parts]), diag([p.uhat for p in parts])  # (K,[C],n,d,d)
        if not channel:
            return VectorAffine(const, x, xh, u, uh)
        # Channel a of the family only moves component a: spread (K, C, ...) to (K, C*d, ...).
        sel = eye[None, :, :]  # (1, d, d): channel a, component a

        def spread(arr, extra):
            # arr (K, C, *rest, d, ...) with the component axis at position 2 + extra
            K, C = arr.shape[:2]
            mask = sel.reshape((1, 1, d) + (1,) * extra + (d,) + (1,) * (arr.ndim - 3 - extra))
            out = arr[:, :, None] * mask
            return out.reshape((K, C * d) + out.shape[3:])

        return VectorAffine(
            spread(const, 0), spread(x, 0), spread(xh, 0), spread(u, 1), spread(uh, 1)
        )

    def jumps(get):
        inten = jnp.concatenate([get(g).intensity[:, :, None] for g in games], axis=2)
        size = aff(lambda g: get(g).size, True)
        return VectorJumps(inten.reshape(inten.shape[0], -1), size)

    dyn = VectorDynamics(
        drift=aff(lambda g: g.coefficients.dynamics.drift, False),
        diffusion=aff(lambda g: _channel(g.coefficients.dynamics.diffusion), True),
        jumps=jumps(lambda g: g.coefficients.dynamics.jumps),
        common_diffusion=aff(lambda g: _channel(g.coefficients.dynamics.common_diffusion), True),
        common_jumps=jumps(lambda g: g.coefficients.dynamics.common_jumps),
    )
    cs = [g.coefficients.cost for g in games]
    vec = lambda k: jnp.stack([getattr(c, k) for c in cs], axis=-1)  # noqa: E731
    mat = lambda k: diag([getattr(c, k) for c in cs])  # noqa: E731
    cost = VectorRunningCost(
        mat("q"), mat("qbar"), mat("r"), mat("rbar"), mat("eps1"), mat("eps1bar"),
        vec("eps2"), vec("eps2bar"), vec("eps3"), vec("eps3bar"), cs[0].lam,
    )  # fmt: skip
    ts = [g.terminal for g in games]
    terminal = VectorTerminalCost(
        diag([t.q for t in ts]),
        diag([t.qbar for t in ts]),
        jnp.stack([t.eps3 for t in ts], -1),
        jnp.stack([t.eps3bar for t in ts], -1),
    )
    return VectorLQGame(
        dyn,
        cost,
        terminal,
        games[0].generator,
        games[0].t0,
        games[0].t1,
        jnp.stack([g.x0 for g in games]),
        jnp.stack([g.xhat0 for g in games]),
    )


def _channel(aff):
    """A scalar Brownian family as one channel: add the channel axis."""
    return type(aff)(*(getattr(aff, k)[:, None] for k in ("const", "x", "xhat", "u", "uhat")))


def _aligned(seed, ref):
    """Scalar game `seed` with the discount and generator of `ref` (so the two can share)."""
    g = random_general_game(seed)
    return eqx.tree_at(
        lambda h: (h.coefficients.cost.lam, h.generator),
        g,
        (ref.coefficients.cost.lam, ref.generator),
    )


@pytest.fixture(scope="module")
def embedded():
    g1 = random_general_game(3)
    g2 = _aligned(4, g1)
    return (g1, g2), _embed([g1, g2])


@pytest.mark.slow
def test_decoupled_d2_is_two_scalar_games(embedded):
    games, game = embedded
    scalar, vec = [solve(g, **TIGHT) for g in games], solve_vector(game, **TIGHT)
    assert game.d == 2 and game.m == 2
    ts = jnp.array([0.5])
    summaries = [_scalar_summary(s, ts) for s in scalar]
    assert _max_diff(vec.costs(), summaries[0][1] + summaries[1][1]) < 1e-9
    v, g = vec.evaluate(0.0), vec.gains(0.5)
    for a, (sv, _, ((dev, slope, icpt),)) in enumerate(summaries):
        assert _max_diff(v.P[..., a, a], sv.alpha) < 1e-9
        assert _max_diff(v.Pbar[..., a, a], sv.beta) < 1e-9
        assert _max_diff(v.gamma[..., a], sv.gamma) < 1e-9
        assert _max_diff(g.deviation[..., a, a], dev) < 1e-9
        assert _max_diff(g.mean[..., a, a], slope) < 1e-9
        assert _max_diff(g.intercept[..., a], icpt) < 1e-9
    # Nothing couples the components.
    assert float(jnp.max(jnp.abs(v.P[..., 0, 1]))) < 1e-12
    assert float(jnp.max(jnp.abs(g.deviation[..., 0, 1]))) < 1e-12
    assert float(jnp.max(jnp.abs(g.mean[..., 1, 0]))) < 1e-12


def _couple(game: VectorLQGame, seed: int, scale: float = 0.15) -> VectorLQGame:
    """Random couplings between the components on every dynamics and cost coefficient."""
    rng = np.random.default_rng(seed)

    def bump(a):
        return a + scale * rng.uniform(-1, 1, a.shape)

    def psd(a):
        S = scale * rng.uniform(-1, 1, a.shape)
        return a + S @ np.swapaxes(S, -1, -2)

    dyn = game.dynamics
    affs = lambda dn: (  # noqa: E731
        dn.drift,
        dn.diffusion,
        dn.jumps.size,
        dn.common_diffusion,
        dn.common_jumps.size,
    )
    dyn = eqx.tree_at(affs, dyn, tuple(jax.tree.map(bump, a) for a in affs(dyn)))
    c = game.cost
    cost = eqx.tree_at(
        lambda c: (c.q, c.qbar, c.r, c.eps1, c.eps3),
        c,
        (psd(c.q), psd(c.qbar), psd(c.r), bump(c.eps1), bump(c.eps3)),
    )
    return eqx.tree_at(lambda g: (g.dynamics, g.cost), game, (dyn, cost))


@pytest.fixture(scope="module")
def coupled(embedded):
    game = _couple(embedded[1], 11)
    return game, solve_vector(game, **TIGHT)


def test_matrix_certificate_passes(coupled):
    game, sol = coupled
    cert = vector_nash_gap(sol)
    assert float(jnp.max(jnp.abs(cert.nash.gap))) < 1e-8
    assert float(jnp.max(cert.gain_error)) < 1e-8
    # The candidate feedback's value by Lyapunov equations equals the Riccati formula.
    assert _max_diff(cert.nash.candidate_value, cert.nash.formula_value) < 1e-8


def test_matrix_certificate_rejects_a_wrong_equilibrium(coupled):
    game, _ = coupled
    wrong = eqx.tree_at(lambda g: g.cost.q, game, 1.5 * game.cost.q)
    cert = vector_nash_gap(solve_vector(wrong, **TIGHT), game)
    assert float(jnp.max(cert.nash.gap)) > 1e-4
    assert float(jnp.max(cert.gain_error)) > 1e-3
    # No player gains less than solver noise: a best response never loses.
    assert float(jnp.min(cert.nash.gap)) > -1e-8


@pytest.mark.slow
def test_monte_carlo_value_d2(coupled):
    _, sol = coupled
    mc = simulate_vector(sol, jax.random.PRNGKey(5), paths=20000, steps=200)
    z = (mc.mean_cost() - sol.cost()) / mc.standard_error()
    assert float(jnp.max(jnp.abs(z))) < 4.0


def _tiny(**over):
    K, n, d, m = 1, 1, 2, 1
    z = jnp.zeros

    def aff(*lead):
        return VectorAffine(
            z((*lead, d)), z((*lead, d, d)), z((*lead, d, d)), z((*lead, n, d, m)),
            z((*lead, n, d, m)),
        )  # fmt: skip

    dyn = VectorDynamics(aff(K), aff(K, 1), VectorJumps(z((K, 0)), aff(K, 0)), aff(K, 1),
                         VectorJumps(z((K, 0)), aff(K, 0)))  # fmt: skip
    eye = jnp.broadcast_to(jnp.eye(d), (K, n, d, d))
    cost = dict(
        q=eye, qbar=z((K, n, d, d)), r=jnp.ones((K, n, m, m)), rbar=z((K, n, m, m)),
        eps1=z((K, n, d, m)), eps1bar=z((K, n, d, m)), eps2=z((K, n, m)), eps2bar=z((K, n, m)),
        eps3=z((K, n, d)), eps3bar=z((K, n, d)), lam=z((K, n)),
    )  # fmt: skip
    cost.update({k: v for k, v in over.items() if k in cost})
    term = VectorTerminalCost(eye, z((K, n, d, d)), z((K, n, d)), z((K, n, d)))
    kw = dict(generator=z((1, 1)), t0=0.0, t1=1.0, x0=jnp.ones(d), xhat0=jnp.ones(d))
    kw.update({k: v for k, v in over.items() if k in kw})
    return VectorLQGame(dyn, VectorRunningCost(**cost), term, **kw)


def test_validation_names_the_field():
    _tiny()
    with pytest.raises(ValueError, match="cost.q must be symmetric"):
        _tiny(q=jnp.array([[[[1.0, 0.5], [0.0, 1.0]]]]))
    with pytest.raises(ValueError, match="cost.r must make r positive definite"):
        _tiny(r=-jnp.ones((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="cost.lam must be >= 0"):
        _tiny(lam=-jnp.ones((1, 1)))
    with pytest.raises(ValueError, match="x0 must have shape"):
        _tiny(x0=jnp.ones(3))
    with pytest.raises(ValueError, match="t1 must be > t0"):
        _tiny(t1=0.0)


@pytest.mark.slow
def test_step_budget_is_named(coupled):
    from mftg_jax import RiccatiExplosionError

    with pytest.raises(RiccatiExplosionError, match="max_steps"):
        solve_vector(coupled[0], max_steps=3)
