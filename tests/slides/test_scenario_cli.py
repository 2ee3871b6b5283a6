import json

from helpers import assert_rel
import numpy as np
import pytest
from scenario_reference import price_and_costs

import mftg_jax as mj
from mftg_jax.cli import main


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow  # a long check: `make test-slow`
def test_scenario_2_json_both_conventions(capsys):
    rep = _json(capsys, ["scenario", "2", "--json"])
    sol, rate = price_and_costs()
    ts = np.linspace(0.0, 1.5, 1000)
    assert_rel(rep["costs"], np.sum([rate(t) for t in ts], axis=0), rtol=1e-8, what="costs")
    assert_rel(rep["cost_integrals"], sol.y[2:, -1], rtol=1e-8, what="cost_integrals")
    slides = np.array(rep["slides_costs"]["slides"])
    assert_rel(rep["slides_costs"]["relative_difference"], np.array(rep["costs"]) / slides - 1,
               rtol=1e-12, atol=1e-15)  # fmt: skip
    assert np.max(np.abs(rep["nash_gap"])) < 1e-9
    _, mis_rate = price_and_costs(misprint=True)
    mis = rep["misprint"]
    assert_rel(mis["costs"], np.sum([mis_rate(t) for t in ts], axis=0), rtol=1e-8, what="mis")
    assert min(mis["nash_gap"][1:]) > 1e-3
    assert len(rep["stationary_vs_cournot"]) >= 3


def test_scenario_3_json_monte_carlo(capsys, tmp_path):
    rep = _json(
        capsys, ["scenario", "3", "--json", "--paths", "400", "--batch", "400", "--out",
                 str(tmp_path)]
    )  # fmt: skip
    assert rep["n_paths"] == 400
    for key in ("costs", "cost_integrals"):
        mc, se = np.array(rep[key]), np.array(rep[key + "_stderr"])
        exact = np.array(rep["expected_" + key])
        assert np.all(se > 0)
        # 4 standard errors plus the scheme's discretisation (dt = 1.5e-3) on the integrals.
        assert np.all(np.abs(mc - exact) <= 4 * se + 1e-3 * exact), (key, mc, exact, se)
    png = tmp_path / "scenario_3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scenario_1_figures_and_table(capsys, tmp_path):
    assert main(["scenario", "1", "--out", str(tmp_path), "--speeds", "10", "100"]) == 0
    out = capsys.readouterr().out
    assert "speed s" in out and "scenario_1.png" in out
    rep = _json(capsys, ["scenario", "1", "--json", "--speeds", "10", "100"])
    assert_rel(
        rep["p_t1"], [float(mj.slides.scenario_1(s)(1.0)) for s in (10.0, 100.0)], rtol=1e-12
    )
    assert (tmp_path / "scenario_1.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["scenario", "4"], "scenario must be 1, 2 or 3"),
        (["scenario", "3", "--paths", "1"], "--paths"),
        (["scenario", "1", "--speeds", "0"], "--speeds"),
    ],
)
def test_bad_input(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
