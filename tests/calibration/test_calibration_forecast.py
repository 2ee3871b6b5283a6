"""Fit folders, filtered states, forecast scores and the equilibrium forecast.

The fits here are results at known coordinates (the synthetic series' truth), so that the
checks are about the state, the written game and the forecast, not about the optimiser.
"""

import dataclasses
import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from mftg_jax.calibration import (
    CalibrationResult,
    crps_from_quantiles,
    crps_from_samples,
    crps_gaussian,
    crps_levels,
    filtered_state,
    fit_ar1,
    forecast,
    load_fit,
    load_prices,
    pinball,
    predict_state,
    sample_prices,
    score_quantiles,
    split_series,
    write_fit_folder,
)
from mftg_jax.calibration._forecast import ensemble_spec
from mftg_jax.calibration._forecast_baselines import ar1_forecast, seasonal_naive
from mftg_jax.calibration._parametrisation import Parametrisation
from mftg_jax.price import load_game, simulate

T = 1500
S = 5.0
H = 24
EQ_U = np.array(
    [np.log(0.02), np.log(0.18), 0.0, 6 / S, 2 / S, -3 / S, 1 / S, np.log(3 / S),
     np.log(1 / S), np.log(0.03 / 0.97), 4 / S, np.log(12 / S)]
)  # fmt: skip
MRJD_U = np.array(
    [np.log(0.05), 0.0, 6 / S, 2 / S, -3 / S, 1 / S, np.log(3 / S), np.log(0.03 / 0.97),
     4 / S, np.log(12 / S)]
)  # fmt: skip


def _result(model: str, u) -> CalibrationResult:
    param = Parametrisation(model=model, harmonics=(1, 7), jumps="common", mean=40.0, scale=S)
    return CalibrationResult(
        param, np.asarray(u), 3.0, T, True, "at the truth", 0, 0.0, (3.0,), (3.0,),
        np.eye(len(u)) * 1e-4, False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A synthetic series in a CSV file, its fits and the fit folder written from them."""
    d = tmp_path_factory.mktemp("fc")
    eq = _result("equilibrium", EQ_U)
    y = np.asarray(sample_prices(eq.price_model(), jax.random.key(0), jnp.arange(T, dtype=float)))
    times = np.datetime64("2020-01-06T00:00:00", "s") + np.arange(T) * np.timedelta64(3600, "s")
    path = d / "prices.csv"
    with open(path, "w") as f:
        f.write("timestamp,price\n")
        for t, v in zip(times, y):
            f.write(f"{str(t).replace('T', ' ')},{float(v)!r}\n")
    series = load_prices(str(path))
    split = split_series(series, None, "2020-02-20", None, "2020-03-01")
    if hasattr(eq, "evaluation"):
        # What a report attaches: plain numbers, NaN where a quantity does not apply.
        eq = dataclasses.replace(eq, evaluation={"nll_test": {"mrjd": np.float64(2.5)},
                                                 "lr": [np.nan, 1.0], "note": "x"})  # fmt: skip
    fits = {
        "equilibrium": eq,
        "mrjd": _result("mrjd", MRJD_U),
        "ar1": fit_ar1(split.train.prices),
    }
    report = {"data": {"file": str(path), "column": "price", "layout": "generic",
                       "dt_hours": 1.0, "repairs": []}}  # fmt: skip
    out = d / "fit"
    state = write_fit_folder(str(out), report, fits, split, start="2020-02-25", horizon=H)
    return dict(dir=out, series=series, split=split, fits=fits, state=state)


def test_fit_folder_round_trip(folder):
    fit = load_fit(str(folder["dir"]))
    for k in ("equilibrium", "mrjd"):
        a, b = fit.__dict__[k], folder["fits"][k]
        np.testing.assert_array_equal(a.u, b.u)
        assert a.parametrisation.names == b.parametrisation.names
        np.testing.assert_allclose(a.covariance, b.covariance)
        # The rebuilt result gives the same model.
        assert np.isclose(float(a.price_model().level), float(b.price_model().level), rtol=1e-12)
    assert fit.ar1 == folder["fits"]["ar1"]
    if hasattr(fit.equilibrium, "evaluation"):
        want = {"nll_test": {"mrjd": 2.5}, "lr": [None, 1.0], "note": "x"}
        assert fit.equilibrium.evaluation == want
    assert fit.data["train"] == ["2020-01-06T00:00:00", "2020-02-20T23:00:00"]
    assert fit.start == "2020-02-25T00:00:00"
    game = load_game(folder["dir"] / "game.toml")
    st = folder["state"]
    # t0 continues the seasonal phase: hours from the training origin to the start.
    assert float(game.market.t0) == 50 * 24 and float(game.market.t1) == 50 * 24 + H
    assert np.isclose(float(game.market.phat0), st.mean[0])
    assert np.isclose(float(game.market.p0), st.mean[0] + st.mean[1])
    if hasattr(game.market, "terminal"):
        assert game.market.terminal == "stationary"
    text = (folder["dir"] / "game.toml").read_text()
    for key in ("n = 1", "lam = 0.0", "c = 0.0", "r_share = 0.5", "q = 0.0", "not identified"):
        assert key in text, key
    json.loads((folder["dir"] / "fit.json").read_text())


def test_not_a_fit_folder(tmp_path):
    with pytest.raises(ValueError, match="not a fit folder"):
        load_fit(str(tmp_path))
    (tmp_path / "fit.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a fit file"):
        load_fit(str(tmp_path))


def _textbook_kalman(model, y, t, dt):
    """The Kalman filter of a no-jump two-factor model, written out in NumPy."""
    kap = np.asarray(model.kappa)
    F = np.diag(np.exp(-kap * dt))
    Q = np.diag(np.asarray(model.sigma) ** 2 * (1 - np.exp(-2 * kap * dt)) / (2 * kap))
    Hm = np.ones((1, 2))
    m, P = np.zeros(2), np.asarray(Q) @ np.linalg.inv(np.eye(2) - F @ F)
    e = y - np.asarray(model.seasonal_mean(jnp.asarray(t)))
    means, covs = [], []
    for ek in e:
        m, P = F @ m, F @ P @ F.T + Q
        Sk = (Hm @ P @ Hm.T)[0, 0]
        K = (P @ Hm.T)[:, 0] / Sk
        m = m + K * (ek - m.sum())
        P = P - np.outer(K, K) * Sk
        means.append(m)
        covs.append(P)
    return np.array(means), np.array(covs)


def test_filtered_state_is_the_textbook_kalman_filter(folder):
    model = folder["fits"]["equilibrium"].price_model()
    model = type(model)(**{**model.__dict__, "jump_prob": jnp.zeros(2)})
    # The length that the state at the start filters (one compiled program for both).
    n = folder["state"].t
    y, t = folder["series"].prices[: int(n)], np.arange(n)
    fs = filtered_state(model, jnp.asarray(y), jnp.asarray(t), 1.0)
    m, P = _textbook_kalman(model, y, t, 1.0)
    np.testing.assert_allclose(np.asarray(fs.mean), m, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(fs.cov), P, rtol=1e-9, atol=1e-9)


def test_predict_state_iterates_one_step(folder):
    model = folder["fits"]["equilibrium"].price_model()
    mean, cov = jnp.array([3.0, -1.0]), jnp.array([[2.0, 0.5], [0.5, 1.0]])
    m, P = mean, cov
    for _ in range(7):
        m, P = predict_state(model, m, P, 1.0, 1)
    m7, P7 = predict_state(model, mean, cov, 1.0, 7)
    np.testing.assert_allclose(np.asarray(m7), np.asarray(m), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(P7), np.asarray(P), rtol=1e-12)
    # Far ahead: the stationary law (the factors forget their start).
    m_inf, P_inf = predict_state(model, mean, cov, 1.0, 20000)
    np.testing.assert_allclose(np.asarray(P_inf), np.diag(model.stationary_variance(1.0)),
                               rtol=1e-9)  # fmt: skip


def test_crps_against_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    mu, sd = np.array([0.0, 1.0, -2.0]), np.array([1.0, 2.0, 0.5])
    y = np.array([0.3, -1.5, 1.0])
    want = crps_gaussian(mu, sd, y)
    x = mu[None, :] + sd[None, :] * rng.standard_normal((20000, 3))
    got = crps_from_samples(x, y)
    # Sampling error of the energy form, estimated from 20 independent batches.
    batches = np.array([crps_from_samples(b, y) for b in np.split(x, 20)])
    se = batches.std(axis=0, ddof=1) / np.sqrt(20)
    assert np.all(np.abs(got - want) <= 4 * se + 1e-3), (got, want, se)
    grid = crps_levels(100)
    q = mu[None, :] + sd[None, :] * norm.ppf(grid)[:, None]
    assert np.allclose(crps_from_quantiles(q, grid, y), want, rtol=0.01)
    # Pinball of the median is half the absolute error.
    assert np.allclose(pinball(mu[None, :], np.array([0.5]), y)[0], 0.5 * np.abs(y - mu))
    lv = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    qs = mu[None, :] + sd[None, :] * norm.ppf(lv)[:, None]
    s = score_quantiles(q, grid, qs, lv, y)
    # y[2] is 6 sd above its mean: outside both intervals; y[0], y[1] inside the 90% one.
    assert s["n"] == 3 and s["coverage_90"] == 2 / 3 and s["coverage_50"] == 1 / 3


def test_coverage_of_a_calibrated_gaussian():
    rng = np.random.default_rng(1)
    n = 4000
    y = rng.standard_normal(n)
    lv = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    q = np.repeat(norm.ppf(lv)[:, None], n, 1)
    grid = crps_levels(100)
    s = score_quantiles(np.repeat(norm.ppf(grid)[:, None], n, 1), grid, q, lv, y)
    for w, key in ((0.5, "coverage_50"), (0.9, "coverage_90")):
        assert abs(s[key] - w) <= 4 * np.sqrt(w * (1 - w) / n), (key, s[key])


def test_baselines_closed_forms(folder):
    ar1 = folder["fits"]["ar1"]
    lv = np.array([0.1, 0.5, 0.9])
    q = ar1_forecast(ar1, 50.0, 3, lv)
    mean2 = ar1.c + ar1.phi * (ar1.c + ar1.phi * 50.0)
    sd2 = ar1.s * np.sqrt(1 + ar1.phi**2)
    assert np.allclose(q[:, 1], mean2 + sd2 * norm.ppf(lv))
    hist = np.arange(400.0)
    train = np.arange(400.0) + 0.0
    q, m = seasonal_naive(hist, train, 200, lv, np.random.default_rng(0), week=168)
    # Weekly differences of a line are all 168: the forecast is exact.
    assert np.allclose(q[1, :168], hist[400 - 168 : 400] + 168)
    assert np.allclose(m[168:], hist[400 - 168 : 400 - 136] + 2 * 168)


def test_coverage_is_scored_whatever_levels_are_stated():
    # Pinball on the stated levels (no 0.25/0.75 among them), coverage on the fixed ones.
    rng = np.random.default_rng(5)
    y = rng.normal(size=400)
    grid = np.linspace(0.005, 0.995, 100)
    lv = np.array([0.1, 0.5, 0.9])
    cover = np.array([0.05, 0.25, 0.75, 0.95])
    rep = lambda levels: np.repeat(norm.ppf(levels)[:, None], y.size, 1)
    s = score_quantiles(rep(grid), grid, rep(lv), lv, y, rep(cover), cover)
    assert s["coverage_50"] == np.mean(np.abs(y) <= norm.ppf(0.75))
    assert s["coverage_90"] == np.mean(np.abs(y) <= norm.ppf(0.95))
    with pytest.raises(ValueError, match="must include 0.25 and 0.75"):
        score_quantiles(rep(grid), grid, rep(lv), lv, y)


def _closed_form_mean(fit_result, state, hours):
    """$m(t) + e^{-\\kappa_c h}x_c + e^{-\\kappa_i h}x_i$ of the fitted model."""
    model = fit_result.price_model()
    kap = np.asarray(model.kappa)
    h = hours - hours[0]
    x = np.array([state.mean[0] - state.seasonal, state.mean[1]])
    seas = np.asarray(model.seasonal_mean(jnp.asarray(hours)))
    return seas + x[0] * np.exp(-kap[0] * h) + x[1] * np.exp(-kap[1] * h)


@pytest.fixture(scope="module")
def fc(folder):
    fit = load_fit(str(folder["dir"]))
    return forecast(fit, folder["series"], "2020-02-25", H, paths=800, seed=3, baselines=False,
                    steps_per_hour=2)  # fmt: skip


def test_equilibrium_forecast_mean_is_the_filtered_prediction(folder, fc):
    want = _closed_form_mean(folder["fits"]["equilibrium"], fc.state, fc.hours)
    err = np.abs(fc.mean["equilibrium"] - want)
    assert np.all(err <= 4 * fc.mean_stderr + 1e-9), (err / fc.mean_stderr).max()
    assert fc.has_realised and set(fc.scores) == {"equilibrium"}
    df = fc.to_pandas()
    assert len(df) == H and "equilibrium_q0.5" in df and "realised" in df


def test_forecast_spread_at_the_start_is_the_filtered_law(fc):
    # At t0 the price is phat0 + (p0 - phat0) ~ N(sum of means, 1' C 1).
    sd = np.sqrt(fc.state.cov.sum())
    mean = fc.state.mean.sum()
    lv = fc.quantile_levels
    q0 = fc.quantiles["equilibrium"][:, 0]
    want = mean + sd * norm.ppf(lv)
    # Quantile standard error sqrt(q(1-q)/n)/density, n scenarios (phat0 is per scenario).
    se = np.sqrt(lv * (1 - lv) / fc.n_common) * sd / norm.pdf(norm.ppf(lv))
    assert np.all(np.abs(q0 - want) <= 4 * se + 0.05 * sd), (q0, want, se)


def test_written_game_tracks_the_seasonal_level(folder, fc):
    """The written game (stationary terminal values) started in the stationary law: its
    mean price is the fitted seasonal level at every save time up to t1."""
    if "initial" not in inspect.signature(simulate).parameters:
        pytest.skip("no initial-state law")
    from mftg_jax.price import InitialLaw

    game = load_game(folder["dir"] / "game.toml")
    if getattr(game.market, "terminal", "penalty") != "stationary":
        pytest.skip("no stationary terminal values")
    model = folder["fits"]["equilibrium"].price_model()
    t0 = float(game.market.t0)
    seas0 = float(model.seasonal_mean(jnp.asarray(t0)))
    var = np.asarray(model.stationary_variance(1.0))
    law = InitialLaw(jnp.array([seas0, 0.0]), jnp.diag(jnp.asarray(var)))
    spec = ensemble_spec(H, 1.0, fc.quantile_levels, fc.paths, 2)
    res = simulate(game, jax.random.key(7), spec, initial=law)
    assert np.isclose(res.times[-1], float(game.market.t1))
    seas = np.asarray(model.seasonal_mean(jnp.asarray(res.times)))
    err = np.abs(res.p_mean - seas)
    assert np.all(err <= 4 * res.p_stderr), (err / res.p_stderr).max()


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["{tmp}"], "not a fit folder"),
        (["{fit}", "--from", "2019-06-01"], "must be after the first observation"),
        (["{fit}", "--from", "25/02/2020"], "--from must be an ISO date"),
        (["{fit}", "--from", "2020-02-25T00"], "--from must be an ISO date"),
        (["{fit}", "--from", "2020-02-25T00:00+01:00"], "--from must be an ISO date"),
        (["{fit}", "--from", "2021-01-01"], "is after the prices"),
        (["{fit}", "--from", "2020-02-25 00:30"], "not on the time grid"),
        (["{fit}", "--quantiles", "0.5", "1"], "--quantiles must be levels in (0, 1)"),
        (["{fit}", "--horizon", "0"], "--horizon must be an integer"),
    ],
)
def test_cli_bad_input_is_one_line(folder, tmp_path, capsys, argv, expect):
    from mftg_jax.cli import main

    args = [a.format(tmp=tmp_path, fit=folder["dir"]) for a in argv]
    assert main(["forecast", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err


@pytest.mark.slow
def test_cli_forecast_writes_the_files_and_scores(folder, tmp_path, capsys):
    import pandas as pd

    from mftg_jax.cli import main

    out = tmp_path / "fc"
    argv = ["forecast", str(folder["dir"]), "--from", "2020-02-25", "--horizon", "48",
            "--paths", "400", "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    for name in ("fan_chart.png", "quantiles.csv", "quantiles.parquet", "scores.json"):
        assert (out / name).is_file(), name
    csv = pd.read_csv(out / "quantiles.csv", index_col=0, parse_dates=True)
    pq = pd.read_parquet(out / "quantiles.parquet")
    np.testing.assert_allclose(csv.to_numpy(), pq.to_numpy())
    assert len(pq) == 48 and pq.index[0] == pd.Timestamp("2020-02-25")
    methods = set(rep["scores"])
    assert {"equilibrium", "seasonal_naive", "ar1", "mrjd"} <= methods
    assert "sarima" in methods or "sarima" in rep["skipped"]
    for s in rep["scores"].values():
        assert s["n"] == 48 and 0 <= s["coverage_50"] <= s["coverage_90"] <= 1
    # Quantiles are ordered at every time for every method.
    for m in methods:
        cols = [c for c in pq.columns if c.startswith(f"{m}_q")]
        assert np.all(np.diff(pq[cols].to_numpy(), axis=1) >= -1e-9), m


@pytest.mark.slow
def test_real_market_forecast(tmp_path):
    """A short fit to the French day-ahead prices (eight weeks of 2018), then a two-day
    forecast from 1 January 2019 scored against the realised prices and the baselines."""
    import os
    import warnings

    from mftg_jax.calibration import calibration_report, CalibrationWarning, PriceCalibrator

    d = os.environ.get("MFTG_DATA_DIR")
    if not d:
        pytest.skip("MFTG_DATA_DIR is not set: the real price files are not available")
    path = os.path.join(d, "entsoe_FR.csv")
    assert os.path.isfile(path), f"MFTG_DATA_DIR={d!r} is set but has no entsoe_FR.csv"
    series = load_prices(path)
    split = split_series(series, "2018-11-05", "2018-12-31", "2019-01-01", "2019-01-14")
    cal = PriceCalibrator(harmonics=2, max_iter=150)
    with warnings.catch_warnings():
        # A short fit may stop before convergence; the forecast is what is checked here.
        warnings.simplefilter("ignore", CalibrationWarning)
        report, fits = calibration_report(split, cal)
    write_fit_folder(str(tmp_path), report, fits, split)
    fit = load_fit(str(tmp_path))
    assert fit.start == "2019-01-01T00:00:00"
    fc = forecast(fit, series, "2019-01-01", 48, paths=2000)
    assert {"equilibrium", "seasonal_naive", "ar1", "mrjd"} <= set(fc.scores)
    for m, s in fc.scores.items():
        assert s["n"] == 48 and np.isfinite(s["crps"]) and s["crps"] > 0, m
    # A forecast with sensible spread covers most realised hours by its 90% interval.
    assert fc.scores["equilibrium"]["coverage_90"] >= 0.5, fc.scores["equilibrium"]
