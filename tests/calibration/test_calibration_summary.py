"""Information criteria against statsmodels, the likelihood ratio's bookkeeping, and progress
reports written to a log file (no carriage-return redraws)."""

import io

import numpy as np
import pytest

from mftg_jax._simulation._progress import LineProgress, progress_bar
from mftg_jax.calibration import fit_ar1, information_criteria, likelihood_ratio


def test_ar1_information_criteria_match_statsmodels():
    ar = pytest.importorskip("statsmodels.tsa.ar_model")
    rng = np.random.default_rng(0)
    y = np.empty(3000)
    y[0] = 40.0
    for k in range(1, y.size):
        y[k] = 8.0 + 0.8 * y[k - 1] + 3.0 * rng.standard_normal()
    fit = fit_ar1(y)
    nll = float(np.mean(fit.nll_per_step(y)))
    ours = information_criteria(nll, y.size - 1, 3)
    ref = ar.AutoReg(y, lags=1, trend="c").fit()
    np.testing.assert_allclose(ours["loglik"], ref.llf, rtol=1e-10)
    # statsmodels counts the innovation variance among the parameters: k = 3.
    np.testing.assert_allclose(ours["aic"], -2 * ref.llf + 2 * 3, rtol=1e-12)
    np.testing.assert_allclose(ours["bic"], -2 * ref.llf + 3 * np.log(ref.nobs), rtol=1e-12)


def test_likelihood_ratio_bookkeeping():
    eq = information_criteria(2.50, 1000, 12)
    mr = information_criteria(2.505, 1000, 10)
    lr = likelihood_ratio(eq, mr)
    np.testing.assert_allclose(lr["statistic"], 2 * 1000 * 0.005, rtol=1e-9)
    assert lr["extra_parameters"] == 2 and lr["p_value"] is None
    assert "boundary" in lr["reference_law"] and not lr["nested_optimum_missed"]
    # AIC prefers the larger model here (10 > 2 * 2), BIC does not (10 < 2 log 1000).
    assert eq["aic"] < mr["aic"] and eq["bic"] > mr["bic"]
    assert likelihood_ratio(mr, eq)["nested_optimum_missed"]


def test_progress_on_a_log_file_is_a_few_lines():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="calibrate", file=log)
    assert isinstance(bar, LineProgress)
    for i in range(1000):
        bar.update(1)
        bar.set_postfix(loss=f"{1.0 / (i + 1):.4f}")
    bar.close()
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and len(lines) == 20
    assert lines[0].startswith("calibrate: 50/1000 it (5%)")
    assert lines[-1].startswith("calibrate: 1000/1000 it (100%)") and "loss=0.0010" in lines[-1]
    # Stopped early (a converged fit): one last line for where it stopped; resumed: counts on.
    log = io.StringIO()
    bar = progress_bar(total=500, initial=100, desc="fit", file=log)
    for _ in range(31):
        bar.update(1)
    bar.close()
    assert log.getvalue().splitlines()[-1].startswith("fit: 131/500 it (26%)")
    assert len(log.getvalue().splitlines()) == 2
    # Disabled: nothing at all.
    log = io.StringIO()
    bar = progress_bar(total=10, disable=True, file=log)
    bar.update(10)
    bar.close()
    assert log.getvalue() == ""
