"""Riccati solver: reference values, closed forms, batching, gradients, blow-up."""

import diffrax
import equinox as eqx
from helpers import assert_rel, central_difference
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj

ALPHA0 = (-0.130120, -0.120383, -0.117454)
BETA0 = (0.240678, 0.121399, 0.081066)
GAMMA0 = (-0.063049, -0.795575, -1.169752)
DELTA0 = (0.084729, 2.774551, 9.348738)


@pytest.fixture(scope="module")
def scenario2():
    game = mj.slides.scenario_game(2)
    return game, mj.price.solve_riccati(game)


def test_reference_values(scenario2):
    # docs/model.md, independent SciPy DOP853 at rtol 1e-10, printed to 6 decimals.
    _, sol = scenario2
    v = sol.evaluate(0.0)
    for got, ref, name in zip(v, (ALPHA0, BETA0, GAMMA0, DELTA0), "abgd"):
        # 6 printed decimals: relative 1e-6, plus half a unit of the last printed digit.
        assert_rel(got, ref, rtol=1e-6, atol=5e-7, what=name)


def test_terminal_conditions(scenario2):
    game, sol = scenario2
    v = sol.evaluate(game.market.t1)
    assert_rel(v.alpha, -1.0, 1e-12)
    for x in (v.beta, v.gamma, v.delta):
        assert np.max(np.abs(x)) < 1e-12


def _scalar_riccati(A, B, C, y1, t, t1):
    """Closed form of y' = A y^2 + B y + C, y(t1) = y1, constant coefficients."""
    disc = np.sqrt(B**2 - 4 * A * C + 0j)
    r1, r2 = (-B + disc) / (2 * A), (-B - disc) / (2 * A)
    # (y - r1)/(y - r2) = K exp(A (r1 - r2)(t - t1))
    K = (y1 - r1) / (y1 - r2)
    E = K * np.exp(A * (r1 - r2) * (t - t1))
    return np.real((r1 - r2 * E) / (1 - E))


@pytest.mark.parametrize("n", [1, 4])
def test_symmetric_closed_form(n):
    # Identical producers: alpha and beta solve scalar constant-coefficient Riccati ODEs,
    # S_{-i}(z) = (n - 1) z.
    eta, q, r, rbar, lam, t1 = 0.7, 2.0, 1.3, 0.4, 0.2, 2.0
    R = r + rbar
    game = mj.PriceGame(
        mj.Market(eta=eta, a=3.0, q=q, t0=0.0, t1=t1, p0=5.0),
        mj.Producers(c=[1.0] * n, r=[r] * n, rbar=[rbar] * n, lam=[lam] * n),
    )
    sol = mj.price.solve_riccati(
        game, stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11)
    )
    ts = np.linspace(0.0, t1, 7)
    vals = jax.vmap(sol.evaluate)(jnp.asarray(ts))
    # alpha' = (lam + 2 eta) alpha - (2n - 1) eta^2/r alpha^2 (logistic)
    alpha = _scalar_riccati(-(2 * n - 1) * eta**2 / r, lam + 2 * eta, 0.0, -q, ts, t1)
    # beta' = (lam + 2 eta) beta - (1 - eta beta)^2/R + 2 (n-1) eta beta (1 - eta beta)/R
    A = -(eta**2) / R - 2 * (n - 1) * eta**2 / R
    B = lam + 2 * eta + 2 * eta / R + 2 * (n - 1) * eta / R
    beta = _scalar_riccati(A, B, -1.0 / R, 0.0, ts, t1)
    for i in range(n):
        assert_rel(vals.alpha[:, i], alpha, rtol=1e-8, what="alpha")
        assert_rel(vals.beta[:, i], beta, rtol=1e-8, atol=1e-12, what="beta")


def test_gamma_delta_against_scipy():
    # gamma and delta (with a seasonal intercept, noise and jumps) by an independent SciPy
    # integration of the same system, written out here from docs/model.md.
    from scipy.integrate import solve_ivp

    c = np.array([1.0, 3.0, 6.0])
    r = np.array([1.0, 2.0, 0.5])
    rbar = np.array([0.5, -0.5, 2.0])
    lam = np.array([0.1, 0.0, 0.3])
    eta, q, t1 = 0.8, 0.5, 1.2
    game = mj.PriceGame(
        mj.Market(
            eta=eta,
            a=mj.DemandIntercept(mean=20.0, period=0.5, cos=[2.0, 1.0], sin=[0.5, -1.0]),
            q=q,
            t0=0.0,
            t1=t1,
            p0=20.0,
        ),
        mj.Producers(c=c, r=r, rbar=rbar, lam=lam),
        mj.Noise(
            sigma=0.7,
            sigma_o=0.4,
            jumps=mj.CompoundPoisson(2.0, mj.NormalJumps(0.3, 0.5)),
            common_jumps=mj.CompoundPoisson(1.0, mj.ExponentialJumps(0.8)),
        ),
    )
    R = r + rbar
    var = 0.7**2 + 2.0 * (0.3**2 + 0.5**2)
    var_o = 0.4**2 + 1.0 * 2 * 0.8**2

    def a(t):
        w = 2 * np.pi * np.arange(1, 3) * t / 0.5
        return 20.0 + np.sum(np.array([2.0, 1.0]) * np.cos(w) + np.array([0.5, -1.0]) * np.sin(w))

    def rhs(t, y):
        al, be, ga, de = y.reshape(4, 3)
        k = (1 - eta * be) / R
        m = (c + eta * ga) / R
        s = lambda z: np.array([z.sum() - z[i] for i in range(3)])  # noqa: E731
        d_al = (lam + 2 * eta) * al - eta**2 / r * al**2 - 2 * eta**2 * al * s(al / r)
        d_be = (lam + 2 * eta) * be - (1 - eta * be) ** 2 / R + 2 * eta * be * s(k)
        d_ga = (
            (lam + eta) * ga
            - eta * be * a(t)
            + (1 - eta * be) * (c + eta * ga) / R
            + eta * ga * s(k)
            - eta * be * s(m)
        )
        d_de = (
            lam * de
            - be / 2 * var_o
            - al / 2 * var
            - eta * ga * a(t)
            - (c + eta * ga) ** 2 / (2 * R)
            - eta * ga * s(m)
        )
        return np.concatenate([d_al, d_be, d_ga, d_de])

    y1 = np.concatenate([-q * np.ones(3), np.zeros(9)])
    ref = solve_ivp(rhs, (t1, 0.0), y1, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
    sol = mj.price.solve_riccati(
        game, stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11)
    )
    got = np.concatenate([np.asarray(x) for x in sol.evaluate(0.0)])
    assert_rel(got, ref, rtol=1e-8, atol=1e-10, what="(alpha, beta, gamma, delta)(0)")


def _random_games(key, batch, n):
    ks = jax.random.split(key, 6)
    u = lambda k, lo, hi, shape=(batch,): jax.random.uniform(k, shape, minval=lo, maxval=hi)  # noqa: E731
    games = []
    eta, a, c = u(ks[0], 0.2, 1.5), u(ks[1], 5.0, 40.0), u(ks[2], 0.0, 10.0, (batch, n))
    r, rbar = u(ks[3], 0.5, 3.0, (batch, n)), u(ks[4], -0.3, 3.0, (batch, n))
    for b in range(batch):
        games.append(
            mj.PriceGame(
                mj.Market(eta=eta[b], a=a[b], q=1.0, t0=0.0, t1=1.5, p0=30.0),
                mj.Producers(c=c[b], r=r[b], rbar=rbar[b], lam=jnp.full(n, 0.1)),
                mj.Noise(sigma=1.0, sigma_o=0.5),
            )
        )
    return games


def test_vmap_equals_loop():
    games = _random_games(jax.random.key(0), 5, 3)
    batched = mj.price.stack_games(games)
    at0 = jax.vmap(lambda g: mj.price.solve_riccati(g).evaluate(0.0))(batched)
    for b, g in enumerate(games):
        one = mj.price.solve_riccati(g).evaluate(0.0)
        for x, y in zip(at0, one):
            assert_rel(x[b], y, rtol=1e-12, atol=1e-14)


def test_gradients_against_finite_differences(scenario2):
    game, _ = scenario2

    def revenue(eta, a, c0):
        g = eqx.tree_at(
            lambda g: (g.market.eta, g.market.a.mean, g.producers.c),
            game,
            (eta, a, game.producers.c.at[0].set(c0)),
        )
        return mj.price.solve_riccati(
            g, stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11)
        ).revenue()

    x0 = (jnp.asarray(0.5), jnp.asarray(1.0), jnp.asarray(1.0))
    jac = jax.jacrev(revenue, argnums=(0, 1, 2))(*x0)
    for i in range(3):
        for arg in range(3):

            def f(x, arg=arg, i=i):
                args = list(x0)
                args[arg] = x
                return revenue(*args)[i]

            fd = central_difference(f, x0[arg], 1e-5)
            assert_rel(jac[arg][i], fd, rtol=1e-6, atol=1e-7, what=f"dR_{i}/dx_{arg}")


def test_explosion_is_reported():
    # A negative terminal weight rewards deviation: alpha(t1) = -q > 0 grows as
    # alpha' ~ (eta^2/r) alpha^2 backwards and blows up before t0.
    game = mj.PriceGame(
        mj.Market(eta=2.0, a=1.0, q=-5.0, t0=0.0, t1=3.0, p0=1.0),
        mj.Producers(c=[1.0, 1.0], r=[0.5, 1.0], rbar=[1.0, 1.0], lam=[0.0, 0.0]),
    )
    with pytest.raises(mj.RiccatiExplosionError, match=r"explodes at t = .*alpha.*q = -5"):
        mj.price.solve_riccati(game)


@pytest.mark.parametrize(
    "n", [2_000, pytest.param(10_000, marks=pytest.mark.slow)], ids=["n2000", "n10000"]
)
def test_many_producers_solve(n):
    # O(n) right-hand side. The dense output stores every step's interpolation coefficients
    # (max_steps x 4n x stages), so large games set a smaller step budget.
    k = jax.random.split(jax.random.key(1), 3)
    game = mj.PriceGame(
        mj.Market(eta=0.5, a=30.0, q=1.0, t0=0.0, t1=1.0, p0=30.0),
        mj.Producers(
            c=jax.random.uniform(k[0], (n,), minval=0, maxval=10),
            r=jax.random.uniform(k[1], (n,), minval=1, maxval=3),
            rbar=jax.random.uniform(k[2], (n,), minval=1, maxval=3),
            lam=jnp.full(n, 0.1),
        ),
    )
    sol = mj.price.solve_riccati(game, solver=diffrax.Tsit5(), max_steps=1024)
    v = sol.evaluate(0.0)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in v)
    # With many producers each one's k_j is small and the alpha's feel -2 eta^2 alpha S(alpha/r)
    # strongly; the backward flow keeps alpha in (-q, 0].
    assert bool(jnp.all((v.alpha < 0) & (v.alpha > -1.0)))


def test_values_at_times_equal_dense_solution(scenario2):
    game, sol = scenario2
    ts = jnp.array([1.5, 1.0, 0.3, 0.0])
    at = mj.price.solve_riccati(game, saveat=diffrax.SaveAt(ts=ts)).values
    dense = jax.vmap(sol.evaluate)(ts)
    for x, y in zip(at, dense):
        assert x.shape == (4, 3)
        assert_rel(x, y, rtol=1e-12, atol=1e-14)


def test_values_at_times_report_explosion():
    game = mj.PriceGame(
        mj.Market(eta=2.0, a=1.0, q=-5.0, t0=0.0, t1=3.0, p0=1.0),
        mj.Producers(c=[1.0, 1.0], r=[0.5, 1.0], rbar=[1.0, 1.0], lam=[0.0, 0.0]),
    )
    with pytest.raises(mj.RiccatiExplosionError, match=r"explodes at t = .*alpha"):
        mj.price.solve_riccati(game, saveat=diffrax.SaveAt(ts=[0.0]))


def test_values_at_increasing_or_unordered_times(scenario2):
    # The solve runs backwards from t1; times in any order come back in the order given.
    game, sol = scenario2
    for ts in ([0.0, 0.3, 1.0, 1.5], [0.3, 1.5, 0.0, 1.0]):
        at = mj.price.solve_riccati(game, saveat=diffrax.SaveAt(ts=ts)).values
        dense = jax.vmap(sol.evaluate)(jnp.asarray(ts))
        for x, y in zip(at, dense):
            assert x.shape == (len(ts), 3)
            assert_rel(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_values_at_increasing_times_with_t0(scenario2):
    # With the start of the backward solve (t1) saved first.
    game, sol = scenario2
    at = mj.price.solve_riccati(game, saveat=diffrax.SaveAt(ts=[0.0, 1.0], t0=True)).values
    want = jax.vmap(sol.evaluate)(jnp.asarray([1.5, 0.0, 1.0]))
    for x, y in zip(at, want):
        assert_rel(x, y, rtol=1e-12, atol=1e-14)
