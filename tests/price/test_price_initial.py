"""A Gaussian initial law of the price ensemble: its moments by Monte Carlo (cluster standard
errors over the common-noise scenarios), E[p(t1)] against the closed form of the mean
dynamics, independence from the batch size, validation."""

import jax
import numpy as np
import pytest

import mftg_jax as m
from mftg_jax import price

M, N, K = 1000, 4, 16  # scenarios, paths per scenario, grid steps
MEAN = np.array([30.0, 1.5])
COV = np.array([[4.0, -1.2], [-1.2, 2.25]])


@pytest.fixture(scope="module")
def game():
    # Stationary terminal values and a constant intercept: constant coefficients, so the
    # exponential scheme is exact in distribution and the mean has a closed form.
    return price.PriceGame(
        price.Market(eta=0.5, a=40.0, q=0.0, t0=0.0, t1=2.0, p0=0.0, terminal="stationary"),
        price.Producers(c=[1.0, 2.0], r=[1.0, 2.0], rbar=[1.0, 0.5], lam=[0.1, 0.1]),
        price.Noise(sigma=1.0, sigma_o=0.5),
    )


def _spec(**kw):
    return m.EnsembleSpec(n_paths=M * N, n_common=M, n_steps=K, dtype="float64", **kw)


@pytest.fixture(scope="module")
def paths(game):
    return price.simulate_paths(
        game, jax.random.key(7), _spec(), initial=price.InitialLaw(MEAN, COV)
    )


def _cluster(g):
    """Mean over all paths of `g (M, N)` and its between-scenario standard error."""
    per = np.mean(g, axis=1)
    return per.mean(), per.std(ddof=1) / np.sqrt(len(per))


def test_initial_moments(paths):
    phat0 = np.asarray(paths.phat[:, 0])
    x0 = np.asarray(paths.p[:, :, 0]) - phat0[:, None]
    # phat0 is one draw per scenario.
    assert np.all(np.asarray(paths.phat[:, 0])[:, None] == np.asarray(paths.phat[:, :1]))
    h = np.broadcast_to(phat0[:, None], x0.shape)
    dh, dx = h - MEAN[0], x0 - MEAN[1]
    checks = {
        "E phat0": (h, MEAN[0]),
        "E x0": (x0, MEAN[1]),
        "Var phat0": (dh * dh, COV[0, 0]),
        "Cov": (dh * dx, COV[0, 1]),
        "Var x0": (dx * dx, COV[1, 1]),
    }
    for name, (g, want) in checks.items():
        mean, se = _cluster(g)
        assert abs(mean - want) < 4 * se, (name, mean, want, se)
    # The paths of a scenario share phat0 and differ in x0 (conditional law given phat0).
    assert np.min(np.std(x0, axis=1)) > 0


def test_mean_at_t1_closed_form(game, paths):
    t = float(game.market.t1)
    sv = price.stationary_values(game)
    kc = 0.5 * (1 + float(np.sum(sv.k)))
    pbar = float(sv.price)
    # alpha = 0: the deviation reverts at eta; phat at eta (1 + K) towards pbar.
    exact = pbar + (MEAN[0] - pbar) * np.exp(-kc * t) + MEAN[1] * np.exp(-0.5 * t)
    mean, se = _cluster(np.asarray(paths.p[:, :, -1]))
    assert abs(mean - exact) < 4 * se, (mean, exact, se)


@pytest.mark.slow
def test_mean_path_ode_matches_the_closed_form(game):
    t = float(game.market.t1)
    sv = price.stationary_values(game)
    kc = 0.5 * (1 + float(np.sum(sv.k)))
    pbar = float(sv.price)
    exact = pbar + (MEAN[0] - pbar) * np.exp(-kc * t) + MEAN[1] * np.exp(-0.5 * t)
    # The ODE of the mean path from the mean initial state agrees with the closed form.
    g0 = price.PriceGame(
        price.Market(
            eta=0.5,
            a=40.0,
            q=0.0,
            t0=0.0,
            t1=2.0,
            p0=MEAN.sum(),
            phat0=MEAN[0],
            terminal="stationary",
        ),
        game.producers,
        game.noise,
    )
    ode = price.solve_expectations(price.solve_riccati(g0)).price(t)
    assert abs(float(ode) - exact) < 1e-6


def test_initial_draws_do_not_depend_on_the_batch(game, paths):
    # Paths 2..5 simulated as a batch of their own start where paths 2, 3 of the first
    # batch started: each draw depends on (key, scenario, path) only.
    law = price.InitialLaw(MEAN, COV)
    later = price.simulate_paths(game, jax.random.key(7), _spec(), initial=law, path_offset=2)
    assert np.array_equal(np.asarray(later.p[:, :2]), np.asarray(paths.p[:, 2:]))
    assert np.array_equal(np.asarray(later.phat), np.asarray(paths.phat))
    assert not np.array_equal(np.asarray(later.p[:, 2:, 0]), np.asarray(paths.p[:, 2:, 0]))


@pytest.mark.slow
def test_initial_law_ensemble_statistics_do_not_depend_on_the_batch(game):
    law = price.InitialLaw(MEAN, COV)
    small = m.EnsembleSpec(n_paths=64 * 4, n_common=64, n_steps=K, dtype="float64")
    runs = [
        price.simulate(
            game,
            jax.random.key(1),
            m.EnsembleSpec(**{**_fields(small), "batch_size": b}),
            initial=law,
        )
        for b in (1, 4)
    ]
    assert np.allclose(runs[0].p_mean, runs[1].p_mean, rtol=1e-12, atol=1e-12)
    assert np.allclose(runs[0].revenue_mean, runs[1].revenue_mean, rtol=1e-12, atol=1e-12)
    assert np.array_equal(runs[0].phat, runs[1].phat)


def _fields(spec):
    return {k: getattr(spec, k) for k in ("n_paths", "n_common", "n_steps", "dtype")}


@pytest.mark.parametrize(
    "mean, cov, match",
    [
        ([1.0], np.eye(2), r"initial.mean must have shape \(2,\)"),
        ([1.0, 0.0], np.eye(3), r"initial.cov must have shape \(2, 2\)"),
        ([1.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], "initial.cov must be symmetric"),
        ([1.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], "initial.cov must be positive semi-definite"),
        ([1.0, np.nan], np.eye(2), "initial.mean must be finite"),
    ],
)
def test_initial_law_validation(mean, cov, match):
    with pytest.raises(ValueError, match=match):
        price.InitialLaw(mean, cov)
