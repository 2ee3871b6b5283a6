"""The real-market continuation: the fitted reduced form as the tracking game's uncontrolled
dynamics (checked against an independent ODE and the data model's own sampler), Monte Carlo
against the exact moments of both continuations, the band, and `mftg regulate --prices`."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from mftg_jax import calibration, cli, tracking as tr

HOUR = np.timedelta64(3600, "s")


def _model(level=30.0):
    harmonics = (1, 2, 7, 14)
    return calibration.LinearPriceModel(
        level=jnp.asarray(level),
        cos=jnp.asarray([1.0, -0.5, 2.0, 0.4]),
        sin=jnp.asarray([0.3, 0.2, -1.5, 0.6]),
        kappa=jnp.asarray([0.05, 1.0]),
        sigma=jnp.asarray([0.8, 0.0]),
        jump_prob=jnp.asarray([0.02, 0.0]),
        jump_loc=jnp.asarray([1.0, 0.0]),
        jump_std=jnp.asarray([4.0, 1.0]),
        period=168.0,
        harmonics=harmonics,
    )


ORIGIN = 1000.0 + 1 / 3


@pytest.fixture(scope="module")
def game():
    return tr.game_from_fit(
        _model(),
        origin_hours=ORIGIN,
        p0=41.0,
        band=tr.Band([25.0], [35.0]),
        costs=tr.default_costs(),
        horizon_hours=240.0,
    )


def test_the_uncontrolled_game_is_the_fitted_reduced_form(game):
    model = _model()
    taus = jnp.linspace(0.0, 1.3, 17)
    m = lambda tau: model.seasonal_mean(ORIGIN + 168.0 * tau)  # noqa: E731
    dm = jax.vmap(jax.grad(m))(taus)
    eta = float(game.eta[0])
    assert eta == pytest.approx(0.05 * 168.0)
    # D - S = m + m'/eta: the drift eta (D - S - p) vanishes on p = m + m'/eta.
    lhs = jax.vmap(game.net_demand)(taus)[:, 0]
    np.testing.assert_allclose(lhs, jax.vmap(m)(taus) + dm / eta, rtol=0, atol=1e-10)
    # Noise in the game's unit (a week): sigma sqrt(168), jump rate prob/dt * 168.
    assert float(game.noise.sigma[0]) == pytest.approx(0.8 * np.sqrt(168.0))
    assert float(game.noise.jumps.intensity) == pytest.approx(0.02 * 168.0)
    # The exact mean against an independent integration of dE p/dt = eta (D - S - E p).
    ts = np.linspace(0.0, float(game.t1), 41)
    d = game.demand
    k = 2 * np.pi * np.arange(1, d.harmonics + 1)
    a, b, mean0 = np.asarray(d.cos[0]), np.asarray(d.sin[0]), float(d.mean[0])
    D = lambda t: mean0 + a @ np.cos(k * t) + b @ np.sin(k * t)  # noqa: E731
    ode = solve_ivp(
        lambda t, y: eta * (D(t) - y),
        (0.0, float(game.t1)),
        [41.0],
        t_eval=ts,
        rtol=1e-11,
        atol=1e-11,
    )
    mean, var = tr.uncontrolled_moments(game, ts)
    np.testing.assert_allclose(mean, ode.y[0], rtol=1e-8)
    v = 0.8**2 * 168 + 0.02 * 168 * (1.0 + 16.0)
    np.testing.assert_allclose(var, v * (1 - np.exp(-2 * eta * ts)) / (2 * eta), rtol=1e-12)
    # The mean relaxes to the seasonal level the model was fitted with.
    np.testing.assert_allclose(mean[-5:], np.asarray(jax.vmap(m)(ts[-5:])), atol=1e-3)


def test_game_from_fit_rejects_a_two_factor_model():
    model = _model()
    two = calibration.LinearPriceModel(
        level=model.level,
        cos=model.cos,
        sin=model.sin,
        kappa=model.kappa,
        sigma=jnp.asarray([0.8, 0.5]),
        jump_prob=model.jump_prob,
        jump_loc=model.jump_loc,
        jump_std=model.jump_std,
        period=168.0,
        harmonics=model.harmonics,
    )
    with pytest.raises(ValueError, match="one-factor"):
        tr.game_from_fit(
            two,
            origin_hours=0.0,
            p0=30.0,
            band=tr.Band([25.0], [35.0]),
            costs=tr.default_costs(),
            horizon_hours=24.0,
        )


SAMPLED_HOURS = 24 * 401


@functools.cache
def _sample(seed: int) -> np.ndarray:
    # One sampled path of the longest length the tests use (one compiled sampler); shorter
    # series are its first hours, themselves a path of the model.
    t = jnp.arange(SAMPLED_HOURS, dtype=float)
    y = calibration.sample_prices(_model(), jax.random.key(seed), t, burn_in=200)
    y = np.array(y, np.float64)
    y.setflags(write=False)  # shared by every test: none may change it for the others
    return y


def _series(n_hours=24 * 75, seed=3):
    assert n_hours <= SAMPLED_HOURS
    times = np.datetime64("2020-01-01T00:00:00") + np.arange(n_hours) * HOUR
    return calibration.PriceSeries(times, _sample(seed)[:n_hours], HOUR, source="synthetic")


def test_band_from_history_takes_the_recent_quantiles():
    s = _series()
    band = tr.band_from_history(s, (0.2, 0.7), days=10)
    recent = s.prices[-240:]
    np.testing.assert_allclose(band.lo, [np.quantile(recent, 0.2)])
    np.testing.assert_allclose(band.hi, [np.quantile(recent, 0.7)])
    with pytest.raises(ValueError, match="quantiles"):
        tr.band_from_history(s, (0.7, 0.2))
    flat = calibration.PriceSeries(s.times, np.full(len(s), 5.0), HOUR, source="flat.csv")
    with pytest.raises(ValueError, match="flat.csv.*do not vary"):
        tr.band_from_history(flat)


# The Nord Pool test below fits the same number of prices and continues as long with as
# many paths: the two share their compiled programs. Ten days ahead: every hour is a saved
# step of both Monte Carlo runs and of the moment equations, so the horizon sets their cost.
FIT_DAYS, HORIZON, PATHS = 365, 240, 1000


@pytest.fixture(scope="module")
def continuation():
    s = _series(SAMPLED_HOURS)
    res = tr.continue_market(
        s, "2021-01-05", HORIZON, fit_days=FIT_DAYS, band_days=30, n_paths=PATHS, seed=1
    )
    return s, res


def _z(mc, se, exact):
    return abs(mc - exact) / se


def test_continuation_is_certified_and_regulates(continuation):
    s, res = continuation
    rep = res.report()
    assert rep["fit_converged"]
    assert abs(rep["optimality_gap"]) < 1e-6
    # Monte Carlo of both continuations against their exact moments at the horizon.
    for name in ("regulated", "uncontrolled"):
        assert _z(rep[f"mc_mean_t1_{name}"], rep[f"mc_mean_t1_{name}_stderr"],
                  rep[f"mean_t1_{name}"]) < 4  # fmt: skip
        assert _z(rep[f"mc_variance_t1_{name}"], rep[f"mc_variance_t1_{name}_stderr"],
                  rep[f"variance_t1_{name}"]) < 4  # fmt: skip
    # The whole mean path, every saved hour, within 4.5 standard errors (correlated times).
    for name, stats in (("regulated", res.regulated), ("uncontrolled", res.uncontrolled)):
        z = (stats.mean["p"][1:, 0] - res.exact_mean[name][1:]) / stats.stderr["p"][1:, 0]
        assert np.max(np.abs(z)) < 4.5, name
    # Regulation: lower variance, more time in the band, a positive control cost.
    assert 0 < rep["variance_reduction_t1"] < 1
    assert rep["fraction_inside_band_regulated"] > rep["fraction_inside_band_uncontrolled"]
    assert rep["control_cost"] > 0
    assert rep["target_inside_band"]
    # The data go on after `until`: the realised prices over the horizon are reported.
    assert rep["realised_hours"] == HORIZON
    start = int(np.searchsorted(s.times, np.datetime64("2021-01-06T00:00:00")))
    np.testing.assert_array_equal(res.realised.prices, s.prices[start : start + HORIZON])
    assert all(np.isfinite(v) for v in rep.values() if isinstance(v, float))


def test_the_fit_recovers_the_generating_dynamics(continuation):
    _, res = continuation
    ident = res.fit.identified()
    # A year of hourly prices from the model above: the reduced form is recovered.
    assert float(ident["kappa"]) == pytest.approx(0.05, rel=0.2)
    assert float(ident["sigma"]) == pytest.approx(0.8, rel=0.1)
    assert float(ident["level"]) == pytest.approx(30.0, abs=1.0)
    assert float(ident["jump_intensity"]) == pytest.approx(0.02, rel=0.3)


def test_quantile_table_is_ordered(continuation):
    _, res = continuation
    df = res.quantile_table()
    assert len(df) == HORIZON + 1 and df.index[0] == np.datetime64("2021-01-05T23:00:00")
    for name in ("regulated", "uncontrolled", "control"):
        q = df[[c for c in df.columns if c.startswith(f"{name}_q")]].to_numpy()
        assert np.all(np.diff(q, axis=1) >= 0), name
    # The regulated fan is narrower than the uncontrolled one after the first hours.
    width = lambda n: (df[f"{n}_q0.95"] - df[f"{n}_q0.05"]).to_numpy()[24:]  # noqa: E731
    assert np.all(width("regulated") < width("uncontrolled"))


def test_plot_continuation(continuation, tmp_path):
    _, res = continuation
    path = tmp_path / "c.png"
    tr.plot_continuation(res, path)
    assert path.stat().st_size > 10_000


def _data_dir() -> str:
    d = os.environ.get("MFTG_DATA_DIR")
    if not d:
        pytest.skip("MFTG_DATA_DIR is not set: the real price files are not available")
    assert os.path.isdir(d), f"MFTG_DATA_DIR={d!r} is set but is not a folder"
    return d


def test_regulate_prices_on_nord_pool(tmp_path, capsys):
    path = os.path.join(_data_dir(), "epftoolbox_NP.csv")
    out = tmp_path / "np"
    argv = ["regulate", "--prices", path, "--until", "2017-12-31", "--horizon", str(HORIZON)]
    argv += ["--fit-days", str(FIT_DAYS), "--paths", str(PATHS)]
    assert cli.main(argv + ["--json", "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert (out / "continuation.png").stat().st_size > 10_000
    assert json.loads((out / "report.json").read_text())["band_lo"] == rep["band_lo"]
    assert len((out / "continuation.csv").read_text().splitlines()) == HORIZON + 2
    assert rep["fit_converged"] and abs(rep["optimality_gap"]) < 1e-6
    s = calibration.load_prices(path).between("2017-01-01", "2017-12-31")
    assert rep["band_lo"] == pytest.approx(np.quantile(s.prices, 0.1))
    assert rep["band_hi"] == pytest.approx(np.quantile(s.prices, 0.9))
    for name in ("regulated", "uncontrolled"):
        assert _z(rep[f"mc_variance_t1_{name}"], rep[f"mc_variance_t1_{name}_stderr"],
                  rep[f"variance_t1_{name}"]) < 4  # fmt: skip
    assert rep["variance_reduction_t1"] > 0.5
    assert rep["fraction_inside_band_regulated"] > rep["fraction_inside_band_uncontrolled"]
    assert rep["realised_hours"] == HORIZON


@pytest.mark.parametrize(
    "extra, message",
    [
        (["x.toml"], "not both"),
        (["--until", "2020-01-10"], "needs --horizon"),
        (["--until", "2020-01-10", "--horizon", "0"], "--horizon must be"),
        (["--until", "10/01/2020", "--horizon", "24"], "--until must be an ISO date"),
        (["--until", "2031-01-01", "--horizon", "24"], "outside"),
        (
            ["--until", "2020-01-10", "--horizon", "24", "--band-quantiles", "0.9", "0.1"],
            "--band-quantiles",
        ),  # fmt: skip
        (["--until", "2020-01-10", "--horizon", "24", "--r", "0"], "--r must be"),
        (["--until", "2020-01-10", "--horizon", "24", "--fit-days", "2"], "--fit-days"),
        (["--until", "2020-01-10", "--horizon", "24", "--steps", "5"], "--steps"),
    ],
)
def test_regulate_prices_bad_arguments_exit_2(tmp_path, capsys, extra, message):
    s = _series(24 * 20)
    csv = tmp_path / "p.csv"
    csv.write_text("time,price\n" + "".join(f"{t},{p:.4f}\n" for t, p in zip(s.times, s.prices)))
    assert cli.main(["regulate", "--prices", str(csv)] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_regulate_needs_a_config_or_prices(capsys):
    assert cli.main(["regulate"]) == 2
    assert "CONFIG.toml or --prices" in capsys.readouterr().err
    assert cli.main(["regulate", "x.toml", "--horizon", "5"]) == 2
    assert "--horizon needs --prices" in capsys.readouterr().err
