"""Calibration: recovery on synthetic series, standard errors, resume after interruption."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax.calibration import (
    calibrate,
    CalibrationWarning,
    fit_ar1,
    load_prices,
    PriceCalibrator,
    PriceSeries,
    sample_prices,
    split_series,
    StructuralDefaults,
)
from mftg_jax.calibration._parametrisation import Parametrisation

T = 2000
SEEDS = (0, 1, 2, 3)
TRUE = dict(eta=0.02, K=9.0, level=40.0, sigma_o=3.0, sigma=1.0)
JUMP = dict(common_jump_intensity=0.03, common_jump_mean=4.0, common_jump_std=12.0)
CAL = PriceCalibrator(harmonics=1, jumps="common", max_iter=200)


def _truth_u(param: Parametrisation) -> jnp.ndarray:
    s, m = float(param.scale), float(param.mean)
    logit = np.log(JUMP["common_jump_intensity"] / (1 - JUMP["common_jump_intensity"]))
    return jnp.asarray(
        [
            np.log(TRUE["eta"]),
            np.log(TRUE["eta"] * TRUE["K"]),
            (TRUE["level"] - m) / s,
            6.0 / s,
            2.0 / s,
            -3.0 / s,
            1.0 / s,
            np.log(TRUE["sigma_o"] / s),
            np.log(TRUE["sigma"] / s),
            logit,
            JUMP["common_jump_mean"] / s,
            np.log(JUMP["common_jump_std"] / s),
        ]
    )


def _series(y) -> PriceSeries:
    t0 = np.datetime64("2020-01-06T00:00:00", "s")
    times = t0 + np.arange(len(y)) * np.timedelta64(3600, "s")
    return PriceSeries(times=times, prices=np.asarray(y), step=np.timedelta64(3600, "s"))


def _synthetic(seed: int, n: int = T) -> PriceSeries:
    # The truth is set through the parametrisation itself (identified coordinates -> game ->
    # stationary Riccati values -> reduced form), then sampled exactly.
    ref = Parametrisation(
        model="equilibrium", harmonics=(1, 7), jumps="common", mean=0.0, scale=1.0
    )
    model = ref.price_model(_truth_u(ref))
    y = sample_prices(model, jax.random.key(seed), jnp.arange(n, dtype=float))
    return _series(y)


@pytest.fixture(scope="module")
def fits():
    out = []
    for seed in SEEDS:
        s = _synthetic(seed)
        out.append((s, calibrate(s, CAL)))
    return out


def test_recovery_within_two_standard_errors(fits):
    names = list(TRUE) + list(JUMP)
    hits, total = 0, 0
    for _, r in fits:
        assert r.converged, r.reason
        est, se = r.identified(), r.stderr()
        for k in names:
            want = {**TRUE, **JUMP}[k]
            assert np.isfinite(se[k]) and se[k] > 0, k
            hits += abs(float(est[k]) - want) <= 2 * float(se[k])
            total += 1
    # ~95% coverage expected; "most" = at least 80% of (seed, quantity) pairs.
    assert hits >= 0.8 * total, f"{hits}/{total} within two standard errors"


def test_implied_quantities_and_game(fits):
    _, r = fits[0]
    imp = r.implied()
    ident = r.identified()
    assert np.isclose(imp["mean_reversion_idio"], ident["eta"])
    assert np.isclose(imp["mean_reversion_common"], ident["eta"] * (1 + ident["K"]))
    game = r.game()
    # The written game reproduces the identified rates through its Riccati solution.
    from mftg_jax.price import stationary_values

    K = float(jnp.sum(stationary_values(game).k))
    assert np.isclose(K, float(ident["K"]), rtol=1e-8)


def test_beats_ar1_in_sample(fits):
    s, r = fits[0]
    ar1 = fit_ar1(s.prices)
    assert r.loss < np.mean(ar1.nll_per_step(s.prices))


def test_resume_after_interrupt_reaches_same_optimum(fits, tmp_path):
    s, reference = fits[0]
    ck = str(tmp_path / "ck.npz")

    def stop(start, it, loss):
        if it == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        calibrate(s, CAL, checkpoint=ck, callback=stop, stderr=False)
    assert os.path.exists(ck)
    seen = []
    resumed = calibrate(s, CAL, checkpoint=ck, stderr=False, callback=lambda *a: seen.append(a))
    assert seen[0][1] == 5, "did not resume after the fourth iteration"
    np.testing.assert_allclose(resumed.u, reference.u, rtol=0, atol=1e-9)
    assert resumed.iterations == reference.iterations
    assert not os.path.exists(ck)


def test_no_convergence_warns():
    s = _synthetic(0)
    cal = PriceCalibrator(harmonics=1, jumps="common", max_iter=2)
    with pytest.warns(CalibrationWarning, match="did not converge"):
        r = calibrate(s, cal, stderr=False)
    assert not r.converged and r.iterations == 2


def test_singular_hessian_warns_and_blanks_standard_errors():
    from mftg_jax.calibration._calibrate import _covariance

    param = CAL.parametrisation(_synthetic(0))
    d = param.size
    H = np.diag(np.arange(1.0, d + 1))
    H[0, :] = H[:, 0] = 0.0  # log_eta: a flat direction

    class Fake:
        def hessian(self, u):
            return H

    with pytest.warns(CalibrationWarning, match="singular or indefinite.*log_eta"):
        cov, singular = _covariance(param, Fake(), np.zeros(d), 1)
    assert singular
    assert np.isnan(cov[0, 0]) and np.isclose(cov[1, 1], 1 / 2.0)


def test_bad_settings():
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        PriceCalibrator(max_iter=0)
    with pytest.raises(ValueError, match="jumps must be one of"):
        PriceCalibrator(jumps="sometimes").parametrisation(_series(np.arange(T, dtype=float)))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        StructuralDefaults(n=0)


def _data_dir() -> str:
    d = os.environ.get("MFTG_DATA_DIR")
    if d is None:
        pytest.skip("MFTG_DATA_DIR is not set: the real price files are not available")
    assert os.path.isdir(d), f"MFTG_DATA_DIR={d!r} is set but is not a folder"
    return d


@pytest.mark.slow
def test_nord_pool_beats_ar1():
    s = load_prices(os.path.join(_data_dir(), "epftoolbox_NP.csv"))
    from mftg_jax.calibration import calibration_report

    sp = split_series(s, train_end="2016-12-31", test_start="2017-01-01", test_end="2017-12-31")
    rep, _ = calibration_report(sp)
    assert rep["converged"]
    assert rep["nll_test_per_obs"] < rep["baseline_nll_test_per_obs"]


def test_price_moments_against_numpy():
    from mftg_jax.calibration._moments import LAGS, price_moments, QUANTILES

    y = np.random.default_rng(4).standard_t(4, size=(3, 500)).cumsum(-1) * 0.1
    got = np.asarray(price_moments(jnp.asarray(y)))
    for row, yy in zip(got, y):
        d = yy - yy.mean()
        want = [yy.mean(), d.var()]
        want += [np.mean(d[lag:] * d[:-lag]) / d.var() for lag in LAGS]
        want += list(np.quantile(yy, QUANTILES))
        np.testing.assert_allclose(row, want, rtol=1e-12)


@pytest.mark.slow
def test_moments_and_likelihood_routes_agree():
    from mftg_jax.calibration._moments import calibrate_moments

    ref = Parametrisation(model="equilibrium", harmonics=(), jumps="none", mean=0.0, scale=1.0)
    u = jnp.asarray([np.log(0.02), np.log(0.02 * 9), 40.0, np.log(3.0), np.log(1.0)])
    y = sample_prices(ref.price_model(u), jax.random.key(5), jnp.arange(T, dtype=float))
    s = _series(y)
    a = calibrate(s, PriceCalibrator(harmonics=0, jumps="none"))
    b = calibrate_moments(s, n_paths=32, burn_in=300)
    assert a.converged and b.converged
    ea, sa, eb, sb = a.identified(), a.stderr(), b.identified(), b.stderr()
    for k in ("eta", "K", "level", "sigma_o", "sigma"):
        z = abs(float(ea[k]) - float(eb[k])) / np.hypot(float(sa[k]), float(sb[k]))
        assert z < 2.0, (k, float(ea[k]), float(eb[k]), z)


def test_cli_json_and_out(fits, tmp_path, capsys):
    # Training on T hours (as the recovery fits, whose compiled programs are reused), then a
    # test week.
    import json

    from mftg_jax.cli import main
    from mftg_jax.price import load_game

    s = _synthetic(7, T + 168)
    path = tmp_path / "prices.csv"
    rows = "".join(f"{str(t).replace('T', ' ')},{float(p)!r}\n" for t, p in zip(s.times, s.prices))
    path.write_text("timestamp,price\n" + rows)
    out = tmp_path / "out"
    argv = [
        "calibrate",
        str(path),
        "--harmonics",
        "1",
        "--max-iter",
        "200",
        "--json",
        "--quiet",
        "--train-end",
        str(s.times[T - 1]),
        "--test-start",
        str(s.times[T]),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rep = json.loads(capsys.readouterr().out)
    for k in (
        "params",
        "stderr",
        "nll_train_per_obs",
        "nll_test_per_obs",
        "baseline_nll_test_per_obs",
        "mrjd_nll_test_per_obs",
        "converged",
        "iterations",
        "seconds",
        "implied",
    ):
        assert k in rep, k
    for k in (
        "stationary_price",
        "mean_reversion_common",
        "mean_reversion_idio",
        "jump_intensity",
        "stationary_variance",
    ):
        assert np.isfinite(rep["implied"][k]), k
    assert rep["nll_test_per_obs"] < rep["baseline_nll_test_per_obs"]
    game = load_game(out / "game.toml")
    from mftg_jax.price import stationary_price

    assert np.isclose(float(stationary_price(game)), rep["params"]["level"], rtol=1e-9)
    assert {p.name for p in out.iterdir()} >= {
        "game.toml",
        "report.json",
        "seasonal.png",
        "residuals.png",
        "distribution.png",
    }
    assert main(["calibrate", str(tmp_path / "missing.csv")]) == 2


def test_structural_defaults_are_traced_and_hash_by_value():
    import equinox as eqx

    from mftg_jax.calibration import default_checkpoint

    traces = []

    @eqx.filter_jit
    def loss(param, u):
        traces.append(None)
        return param.game(u).producers.lam[0] + 0.0 * param.price_model(u).level

    s = _synthetic(0, 200)
    values = []
    for lam in (0.0, 0.01):
        cal = PriceCalibrator(harmonics=1, defaults=StructuralDefaults(lam=lam, c=1.0 + lam))
        param = cal.parametrisation(s)
        values.append(float(loss(param, jnp.asarray(param.initial(s.prices, s.hours())))))
    # New model values reuse the compiled program (and do reach it).
    assert len(traces) == 1 and values == [0.0, 0.01]
    a, b = StructuralDefaults(lam=0.01, q=2.0), StructuralDefaults(lam=0.01, q=2.0)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a != StructuralDefaults(lam=0.02, q=2.0)
    assert hash(PriceCalibrator(defaults=a)) == hash(PriceCalibrator(defaults=b))
    # Checkpoints are keyed on the values.
    ck = [
        default_checkpoint(s, PriceCalibrator(defaults=StructuralDefaults(lam=x)))
        for x in (0.01, 0.01, 0.02)
    ]
    assert ck[0] == ck[1] != ck[2]


def _close(a, b, path="report"):
    """Every number of two reports agrees (to the rounding of a resumed L-BFGS path)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "seconds":
                _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, str | bool) or a is None:
        assert a == b, path
    else:
        np.testing.assert_allclose(
            np.asarray(b, float), np.asarray(a, float), rtol=1e-7, err_msg=path
        )


def test_report_resumes_by_stage(tmp_path, monkeypatch):
    # The shapes of `test_cli_json_and_out` (its compiled programs are reused), few iterations.
    import collections
    import dataclasses
    import warnings

    from mftg_jax.calibration import calibration_report
    import mftg_jax.calibration._report as report_module

    s = _synthetic(7, T + 168)
    split = split_series(s, train_end=str(s.times[T - 1]), test_start=str(s.times[T]))
    cal = dataclasses.replace(CAL, max_iter=3, precondition=False)
    done = collections.Counter()
    real_fit, real_cov = report_module.calibrate, report_module.with_covariance
    stop_in_cov = {"mrjd": False}

    def fit(series, c, **kw):
        out = real_fit(series, c, **kw)
        done[c.model] += 1
        return out

    def cov(r, series):
        if stop_in_cov.get(r.parametrisation.model):
            stop_in_cov[r.parametrisation.model] = False
            raise KeyboardInterrupt
        out = real_cov(r, series)
        done["cov_" + r.parametrisation.model] += 1
        return out

    monkeypatch.setattr(report_module, "calibrate", fit)
    monkeypatch.setattr(report_module, "with_covariance", cov)
    ck = str(tmp_path / "ck")

    def run(stop=None):
        seen = []

        def cb(stage, start, it, loss):
            seen.append((stage, it))
            if stop is not None and stop(stage, it):
                raise KeyboardInterrupt

        if stop is None:
            return calibration_report(split, cal, checkpoint_dir=ck, callback=cb), seen
        with pytest.raises(KeyboardInterrupt):
            calibration_report(split, cal, checkpoint_dir=ck, callback=cb)
        return None, seen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        reference, _ = calibration_report(split, cal)
        done.clear()
        # In the equilibrium fit, then in the MRJD fit: each resumes after its last iteration.
        run(lambda st, it: st == "equilibrium" and it == 2)
        _, seen = run(lambda st, it: st == "mrjd" and it == 2)
        assert seen[0] == ("equilibrium", 3)
        _, seen = run(lambda st, it: st == "stderr")
        assert seen[0] == ("mrjd", 3) and not any(st == "equilibrium" for st, _ in seen)
        # In the standard errors: after the equilibrium's Hessian, in the MRJD's.
        stop_in_cov["mrjd"] = True
        _, seen = run(lambda st, it: False)
        assert [st for st, _ in seen] == ["stderr"] and done["cov_equilibrium"] == 1
        # In the report.
        _, seen = run(lambda st, it: st == "report")
        assert [st for st, _ in seen] == ["stderr", "report"]
        (resumed, fits), seen = run()
    assert [st for st, _ in seen] == ["stderr", "report"]
    # Each stage was finished once and never recomputed.
    assert done == {"equilibrium": 1, "mrjd": 1, "cov_equilibrium": 1, "cov_mrjd": 1}
    assert os.listdir(ck) == []
    _close(reference, resumed)
    text = fits["equilibrium"].summary()
    info = resumed["information_criteria"]["equilibrium"]
    assert f"{info['aic']:.6g}" in text and "MRJD" in text and "AR(1)" in text
    np.testing.assert_allclose(info["aic"], 2 * info["k"] + 2 * T * resumed["nll_train_per_obs"])


@pytest.mark.slow
def test_killed_during_the_mrjd_fit_resumes_without_refitting(tmp_path, monkeypatch, capsys):
    # A real kill (SIGKILL) of `mftg calibrate` once the equilibrium fit is kept; the same
    # command then fits the MRJD only and reports what an uninterrupted run reports.
    import json
    import signal
    import subprocess
    import sys
    import time

    import mftg_jax.calibration._report as report_module
    from mftg_jax.cli import main

    s = _synthetic(7, T + 168)
    path = tmp_path / "prices.csv"
    rows = "".join(f"{str(t).replace('T', ' ')},{float(p)!r}\n" for t, p in zip(s.times, s.prices))
    path.write_text("timestamp,price\n" + rows)
    ck = tmp_path / "ck"
    argv = ["calibrate", str(path), "--harmonics", "1", "--max-iter", "200", "--json"]
    argv += ["--quiet", "--train-end", str(s.times[T - 1]), "--checkpoint", str(ck)]
    proc = subprocess.Popen([sys.executable, "-m", "mftg_jax", *argv], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 1200
        while not (ck.exists() and any(p.name.endswith(".fit.npz") for p in ck.iterdir())):
            assert proc.poll() is None and time.time() < deadline, "no equilibrium fit kept"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    calls = []
    real = report_module.calibrate
    monkeypatch.setattr(
        report_module, "calibrate", lambda se, c, **kw: calls.append(c.model) or real(se, c, **kw)
    )
    assert main(argv) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert calls == ["mrjd"], calls
    monkeypatch.setattr(report_module, "calibrate", real)
    assert main(argv[:-2] + ["--checkpoint", str(tmp_path / "fresh")]) == 0
    _close(json.loads(capsys.readouterr().out), resumed)


def test_restored_optimiser_state_keeps_its_weak_types():
    # optax keeps weakly typed scalars in its state; restoring them strongly typed would change
    # the traced signature of the optimiser step, which would compile again on every resume.
    from mftg_jax.calibration._checkpoint import restore

    template = (jnp.asarray(1.0), jnp.asarray(3), jnp.zeros(2), jnp.asarray(2.0, jnp.float32))
    restored = restore(template, [np.asarray(5.0), np.asarray(7), np.ones(2), np.float32(1.5)])
    assert [(x.dtype, x.weak_type) for x in restored] == [(x.dtype, x.weak_type) for x in template]
    assert [float(x) for x in restored[:2]] == [5.0, 7.0]
    traces = []

    @jax.jit
    def step(state):
        traces.append(1)
        return state

    step(template)
    step(restored)
    assert len(traces) == 1
