"""`mftg frequency`: JSON report, figures, bad input, the 39-bus case and the notebook."""

import json
from pathlib import Path

import numpy as np
import pytest

from mftg_jax.cli import main
from tests.helpers import execute_notebook

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "frequency.toml"
KEYS = ("nadir_hz", "rocof_hz_per_s", "settling_time_s", "steady_state_frequency_deviation",
        "kkt_residual", "dispatch", "dispatch_cost")  # fmt: skip


def test_cli_json_and_figures(tmp_path, capsys):
    # The example study (WSCC 9-bus, DAI, a 0.5 p.u. load step): the same compiled program
    # as the closed-loop tests of test_frequency_control.py.
    out = tmp_path / "out"
    assert main(["frequency", str(EXAMPLE), "--json", "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert key in rep
    assert rep["certified"] is True
    assert rep["steady_state_source"] == "root_solve"
    assert rep["kkt_residual"] < 1e-8
    assert abs(rep["steady_state_frequency_deviation"]) < 1e-8
    assert rep["dispatch_error"] < 1e-8
    assert len(rep["dispatch"]) == 3
    # The load step is covered by the units: sum u = delta.
    assert sum(rep["dispatch"]) == pytest.approx(0.5, abs=1e-9)
    assert rep["nadir_hz"] < 0 and rep["rocof_hz_per_s"] < 0
    assert rep["dispatch_cost"] == pytest.approx(rep["optimal_dispatch_cost"], abs=1e-12)
    saved = json.loads((out / "report.json").read_text())
    assert saved["dispatch"] == rep["dispatch"]
    for name in ("frequencies.png", "angles.png", "dispatch.png"):
        assert (out / name).stat().st_size > 1000


def test_cli_uncertified_secondary_control_exits_1(monkeypatch, capsys):
    # The same study (the compiled program is reused) under a threshold no residual can meet:
    # a secondary controller whose steady state is not certified exits 1 with one line.
    from mftg_jax.cli import frequency as command

    monkeypatch.setattr(command, "TOLERANCE", 0.0)
    assert main(["frequency", str(EXAMPLE), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["certified"] is False
    err = captured.err.strip()
    assert len(err.splitlines()) == 1
    assert "certificate failed: the dai steady state is not certified" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuchcase"], "CASE_OR_CONFIG must be one of"),
        (["wscc9", "--event", "load_step:5"], "--event must be"),
        (["wscc9", "--event", "load_step:42:0.1"], "event.bus must be a bus number"),
        (["wscc9", "--event", "generator_trip:7"], "event.generator must be in"),
        (["wscc9", "--t1", "-1"], "--t1 must be"),
        (["wscc9", "--compare", "--scenarios", "1"], "at least 2 scenarios"),
    ],
)
def test_cli_bad_arguments_exit_2(capsys, args, message):
    assert main(["frequency", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err


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
