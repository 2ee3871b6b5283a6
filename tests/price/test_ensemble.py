"""Path ensembles against the closed-form moment ODEs, the scheme's exact moment recursions,
the law of large numbers, the Riccati revenue formula and finite-difference gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import mftg_jax as m

M, N = 100, 1000  # scenarios x paths per scenario
K = 32  # grid steps of the main runs


@pytest.fixture(scope="module")
def game():
    return m.PriceGame(
        m.Market(eta=0.5, a=1.0, q=1.0, t0=0.0, t1=1.5, p0=50.0),
        m.Producers(c=[1.0, 5.0, 10.0], r=[1.0, 2.0, 3.0], rbar=[1.0, 2.0, 3.0], lam=[0.1] * 3),
        m.Noise(
            sigma=1.0,
            sigma_o=0.5,
            jumps=m.CompoundPoisson(2.0, m.NormalJumps(0.5, 1.0)),
            common_jumps=m.CompoundPoisson(1.0, m.ExponentialJumps(0.5)),
        ),
    )


@pytest.fixture(scope="module")
def riccati(game):
    return m.price.solve_riccati(game)


# Every time the checks need: the moment-ODE grid and all grid points and midpoints of the
# schemes' grids (K <= 64 on [0, 1.5] are multiples of 1.5/128): one evaluation, one compile.
_ODE_TS = np.linspace(0.0, 1.5, 3001)
_ALL_TS = np.union1d(_ODE_TS, np.linspace(0.0, 1.5, 129))


@pytest.fixture(scope="module")
def coef_table(game, riccati):
    """kappa_x, kappa_h, b at `_ALL_TS`: d(p - phat) = -kappa_x (p - phat) dt,
    dphat = (b - kappa_h phat) dt."""
    ev = jax.jit(jax.vmap(lambda t: (riccati.evaluate(t).alpha, *riccati.gains(t))))
    alpha, k, mm = (np.asarray(x) for x in ev(jnp.asarray(_ALL_TS)))
    eta, r = float(game.market.eta), np.asarray(game.producers.r)
    kx = eta * (1 - eta * np.sum(alpha / r, -1))
    kh = eta * (1 + np.sum(k, -1))
    b = eta * (float(game.market.a.mean) + np.sum(mm, -1))
    return kx, kh, b


def _coefficients(table, ts):
    i = np.searchsorted(_ALL_TS, ts)
    assert np.allclose(_ALL_TS[i], ts, rtol=0, atol=1e-12)
    return tuple(z[i] for z in table)


def _variance_rates(game):
    nz = game.noise
    return float(nz.idiosyncratic_variance_rate), float(nz.common_variance_rate)


@pytest.fixture(scope="module")
def ode_moments(game, coef_table):
    """[E x, Var x, E phat, Var phat](t1), x = p - phat, from the moment ODEs (docs/model.md)."""
    sig, sig_o = _variance_rates(game)
    ts = _ODE_TS
    kx, kh, b = _coefficients(coef_table, ts)

    def f(t, y):
        a, c, d = (np.interp(t, ts, z) for z in (kx, kh, b))
        return [-a * y[0], -2 * a * y[1] + sig, d - c * y[2], -2 * c * y[3] + sig_o]

    mk = game.market
    y0 = [float(mk.p0 - mk.phat0), 0.0, float(mk.phat0), 0.0]
    sol = solve_ivp(f, (0.0, 1.5), y0, method="DOP853", rtol=1e-11, atol=1e-11)
    return sol.y[:, -1]


def scheme_moments(game, table, n_steps, scheme):
    """The scheme's own exact moments at t1 (linear recursions, computed independently)."""
    sig, sig_o = _variance_rates(game)
    grid = np.linspace(0.0, 1.5, n_steps + 1)
    dt = 1.5 / n_steps
    ts = (grid[:-1] + grid[1:]) / 2 if scheme == "exponential" else grid[:-1]
    kx, kh, b = _coefficients(table, ts)
    mk = game.market
    ex, vx, eh, vh = float(mk.p0 - mk.phat0), 0.0, float(mk.phat0), 0.0
    for a, c, d in zip(kx, kh, b):
        if scheme == "exponential":
            ea, ec = math.exp(-a * dt), math.exp(-c * dt)
            ex, vx = ea * ex, ea**2 * vx + sig * (1 - ea**2) / (2 * a)
            eh, vh = ec * eh + d * (1 - ec) / c, ec**2 * vh + sig_o * (1 - ec**2) / (2 * c)
        else:
            ex, vx = (1 - a * dt) * ex, (1 - a * dt) ** 2 * vx + sig * dt
            eh, vh = (1 - c * dt) * eh + d * dt, (1 - c * dt) ** 2 * vh + sig_o * dt
    return np.array([ex, vx, eh, vh])


def _run(game, scheme, dtype, n_steps=K, policy="equilibrium"):
    f = jax.jit(
        lambda g: m.price.simulate_paths(
            g,
            jax.random.key(3),
            m.EnsembleSpec(
                n_paths=N * M,
                n_common=M,
                n_steps=n_steps,
                scheme=scheme,
                dtype=dtype,
                save_steps=(n_steps // 2, n_steps),
            ),
            policy=policy,
        )
    )
    return jax.device_get(f(game))


@pytest.fixture(scope="module")
def exp64(game):
    return _run(game, "exponential", jnp.float64)


@pytest.fixture(scope="module")
def euler64(game):
    return _run(game, "euler", jnp.float64, n_steps=8)


def _mc_moments(paths):
    """Estimates and standard errors of [E x, Var x, E phat, Var phat] at t1."""
    x = (paths.p[..., -1] - paths.phat[:, None, -1]).ravel()
    h = paths.phat[:, -1]
    est, se = [], []
    for z in (x, h):
        n, v = z.size, z.var(ddof=1)
        m4 = np.mean((z - z.mean()) ** 4)
        est += [z.mean(), v]
        se += [math.sqrt(v / n), math.sqrt((m4 - v * v) / n)]
    return np.array(est), np.array(se)


@pytest.mark.parametrize("scheme", ["exponential", "euler"])
def test_discretisation_bound_shrinks_with_dt_at_the_weak_order(
    game, coef_table, ode_moments, scheme
):
    errs = [
        np.abs(scheme_moments(game, coef_table, k, scheme) - ode_moments) for k in (8, 16, 32, 64)
    ]
    order = 2 if scheme == "exponential" else 1
    for coarse, fine in zip(errs[:-1], errs[1:]):
        # Means and variances whose error is not at rounding level.
        live = coarse > 1e-9
        ratios = coarse[live] / fine[live]
        assert np.all(ratios > 2**order * 0.8), ratios
        assert np.all(ratios < 2**order * 1.25), ratios


@pytest.mark.parametrize("which", ["exp", "euler"])
def test_moments_match_the_moment_odes_and_the_scheme(
    game, coef_table, ode_moments, exp64, euler64, which
):
    paths, scheme, k = (exp64, "exponential", K) if which == "exp" else (euler64, "euler", 8)
    est, se = _mc_moments(paths)
    exact_scheme = scheme_moments(game, coef_table, k, scheme)
    bound = np.abs(exact_scheme - ode_moments)
    # The engine is the scheme: within 4 standard errors of its exact moments ...
    np.testing.assert_array_less(np.abs(est - exact_scheme), 4 * se + 1e-9)
    # ... and of the moment ODEs up to the discretisation bound.
    np.testing.assert_array_less(np.abs(est - ode_moments), 4 * se + bound)
    if which == "euler":
        # At 8 Euler steps the bias is more than 4 standard errors: the check can see it.
        assert np.max(bound / se) > 4


def test_scenario_means_converge_to_phat_like_one_over_sqrt_n(exp64, ode_moments):
    p, phat = exp64.p[..., -1], exp64.phat[:, -1]
    sd = math.sqrt(ode_moments[1])
    ns = (10, 100, 1000)
    rms = [np.sqrt(np.mean((p[:, :n].mean(1) - phat - ode_moments[0]) ** 2)) for n in ns]
    for n, g in zip(ns, rms):
        # RMS over M scenarios of a mean of n iid deviations: sd / sqrt(n), +-4/sqrt(2M).
        assert abs(g * math.sqrt(n) / sd - 1) < 4 / math.sqrt(2 * M), (n, g)
    slope = np.polyfit(np.log(ns), np.log(rms), 1)[0]
    assert abs(slope + 0.5) < 0.05


def test_mean_realised_revenue_matches_the_value_function(riccati, exp64):
    rev = exp64.revenue.reshape(-1, 3)
    scen = exp64.revenue.mean(1)
    se = scen.std(0, ddof=1) / math.sqrt(M)  # between-scenario: accounts for common noise
    value = np.asarray(riccati.revenue())
    # Trapezoid rule and midpoint-frozen coefficients at K = 32: an O(dt^2) bias of a few 1e-4
    # relative, allowed for by 1e-3 relative.
    np.testing.assert_array_less(np.abs(rev.mean(0) - value), 4 * se + 1e-3 * np.abs(value))


def test_float32_matches_float64_within_monte_carlo_error(game, exp64):
    p32 = _run(game, "exponential", jnp.float32)
    assert p32.p.dtype == np.float32
    est32, _ = _mc_moments(p32)
    est64, se = _mc_moments(exp64)
    # Jump sizes are drawn per dtype, so the two runs are independent samples.
    np.testing.assert_array_less(np.abs(est32 - est64), 4 * math.sqrt(2) * se)


@pytest.mark.slow  # a long check: `make test-slow`
def test_pathwise_gradient_matches_finite_differences(game):
    def mean_p(eta, a):
        mk = game.market
        g = m.PriceGame(
            m.Market(eta=eta, a=a, q=mk.q, t0=mk.t0, t1=mk.t1, p0=mk.p0, phat0=mk.phat0),
            game.producers,
            # Dense common jumps only: the sparse idiosyncratic jumps add compile time here.
            m.Noise(sigma=1.0, sigma_o=0.5, common_jumps=game.noise.common_jumps),
        )
        out = m.price.simulate_paths(
            g,
            jax.random.key(5),
            m.EnsembleSpec(
                n_paths=256 * 4,
                n_common=4,
                n_steps=16,
                scheme="exponential",
                dtype=jnp.float64,
                save_steps=(16,),
            ),
            track_revenue=False,
        )
        return jnp.mean(out.p[..., -1])

    # One compiled program gives the gradient and the finite-difference values.
    f = jax.jit(jax.value_and_grad(mean_p, argnums=(0, 1)))
    _, (d_eta, d_a) = f(0.5, 1.0)
    h = 1e-5
    val = lambda eta, a: float(f(eta, a)[0])  # noqa: E731
    fd_eta = (val(0.5 + h, 1.0) - val(0.5 - h, 1.0)) / (2 * h)
    fd_a = (val(0.5, 1.0 + h) - val(0.5, 1.0 - h)) / (2 * h)
    assert float(d_eta) == pytest.approx(float(fd_eta), rel=1e-5)
    assert float(d_a) == pytest.approx(float(fd_a), rel=1e-5)
    assert abs(float(d_eta)) > 1.0 and abs(float(d_a)) > 0.1


def test_user_policy_gives_the_equilibrium_paths(game, riccati, euler64):
    # The equilibrium feedback as a general callable (Euler only) reproduces the tabulated
    # affine policy of the euler64 run: same key, same paths.
    pol = m.price.FeedbackPolicy(riccati)
    user = _run(game, "euler", jnp.float64, n_steps=8, policy=lambda t, p, ph: pol(t, p, ph))
    np.testing.assert_allclose(user.p, euler64.p, rtol=1e-12)
    np.testing.assert_allclose(user.revenue, euler64.revenue, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(user.cost, euler64.cost, rtol=1e-9, atol=1e-9)
    kw = dict(n_paths=4, n_steps=4, save_times=[1.5])
    with pytest.raises(ValueError, match="exponential"):
        m.price.simulate_paths(
            game, jax.random.key(1), m.EnsembleSpec(**kw), policy=lambda t, p, ph: pol(t, p, ph)
        )
    with pytest.raises(ValueError, match="scheme"):
        m.price.simulate_paths(game, jax.random.key(1), m.EnsembleSpec(scheme="milstein", **kw))
