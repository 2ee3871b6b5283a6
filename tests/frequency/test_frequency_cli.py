"""`mftg frequency`: bad configs, the 39-bus case and the notebook (the example study's JSON
report, figures and bad arguments are tested beside its closed loop, in
test_frequency_control.py)."""

import json
from pathlib import Path

import numpy as np
import pytest

from mftg_jax.cli import main
from tests.helpers import execute_notebook

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "frequency.toml"


@pytest.mark.parametrize(
    "text, message",
    [
        ('case = "wscc9"\nbogus = 1\n', "unknown key bogus"),
        ('case = "wscc9"\n[controller]\nkind = "pid"\n', "controller.kind must be one of"),
        ('case = "wscc9"\n[controller]\ntime_constant = 0.0\n', "controller.time_constant"),
        ('case = "wscc9"\n[costs]\na = [1.0, 2.0]\n', "costs.a must broadcast"),
        ('case = "wscc9"\n[simulation]\nt1 = 5000.0\n', "simulation.t1 must be in"),
        ('case = "nowhere.m"\n', "case must be one of"),
        ('case = "wscc9"\n[event]\nkind = "quake"\n', "event.kind must be one of"),
    ],
)
def test_cli_bad_config_exits_2(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["frequency", str(path), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err


@pytest.mark.slow
def test_cli_ieee39_certified(capsys):
    assert main(["frequency", "ieee39", "--controller", "dai", "--t1", "60", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["certified"] is True
    assert rep["kkt_residual"] < 1e-8 and rep["dispatch_error"] < 1e-8
    assert len(rep["dispatch"]) == 10
    assert np.sum(rep["dispatch"]) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.slow
def test_cli_compare_monte_carlo(tmp_path, capsys):
    from scipy.optimize import brentq

    import mftg_jax.frequency as fq

    assert main(["frequency", str(EXAMPLE), "--compare", "--scenarios", "16", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    mc = rep["monte_carlo"]["controllers"]
    assert {"droop", "dai", "broadcast", "lq"} <= set(mc)
    # Secondary control restores the nominal frequency in every scenario: the mean final COI
    # deviation is 0 within 4 s.e. (plus the integration tolerance, the s.e. being ~0).
    for kind in ("dai", "broadcast"):
        v = mc[kind]["final_deviation_hz"]
        assert abs(v["mean"]) <= 4 * v["stderr"] + 1e-6, (kind, v)
    # Droop stays off nominal, at the closed-form offset of the mean load step: the root of
    # sum_i P_i + clip(-k_i omega) = omega sum_i D_i (the load deviations have mean zero and
    # the saturated unit stays saturated, so the offset is linear in them).
    cfg = fq.load_config(EXAMPLE)
    after = cfg.event.after(cfg.network)
    k = np.asarray(cfg.controller("droop").gains(after))
    D, lo, hi = np.asarray(after.D), np.asarray(after.u_min), np.asarray(after.u_max)
    P = np.asarray(after.P)
    omega = brentq(lambda w: P.sum() + np.clip(-k * w, lo, hi).sum() - w * D.sum(), -10, 10,
                   xtol=1e-14)  # fmt: skip
    v = mc["droop"]["final_deviation_hz"]
    assert abs(v["mean"] - omega / (2 * np.pi)) <= 4 * v["stderr"], (v, omega)
    assert abs(v["mean"]) > 10 * v["stderr"] > 0


@pytest.mark.slow
def test_notebook_runs(tmp_path):
    execute_notebook("frequency", tmp_path, full=False, timeout=1200)
