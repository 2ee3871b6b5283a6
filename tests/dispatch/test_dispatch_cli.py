"""`mftg dispatch`: the TOML format (with its errors naming the key), the report's
certificates and the figures."""

import json
import os
from pathlib import Path

import pytest

from mftg_jax import dispatch as dp
from mftg_jax.cli import main

ROOT = Path(__file__).resolve().parents[2]

SMALL = """
[fleet]
capacity = [40.0, 30.0, 50.0]
cost = [8.0, 15.0, 22.0]
quadratic = [0.0, 0.0, 0.05]
[demand]
levels = [10.0, 40.0, 75.0, 110.0]
[dynamic]
eta = [0.0, 0.5, 1.0]
arrival = 1.0
demand = [0.8, 1.2, 1.0]
kappa = 2.0
capacity = 1.1
sigma = 0.4
q = [0.0, 1.0, 1.0]
e0 = 0.3
[dynamic.grid]
n_x = 201
n_t = 100
[dynamic.monte_carlo]
n_paths = 8000
seed = 1
[consumers]
alpha = [6.0, 4.0]
beta = [2.0, 4.0]
base_demand = [0.0, 60.0]
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    d = tmp_path_factory.mktemp("dispatch")
    (d / "small.toml").write_text(SMALL)
    return d / "small.toml"


def test_cli_json_and_figures(config, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["dispatch", str(config), "--json", "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("price", "dispatch", "cost", "kkt_residual", "duality_gap",
                "risk_sensitive_value", "mc_certainty_equivalent", "stderr"):  # fmt: skip
        assert key in rep, key
    assert rep["price"] == [8.0, 15.0, 22.5, 22.0 + 2 * 0.05 * 40.0]
    assert max(rep["kkt_residual"]) < 1e-12 and max(map(abs, rep["duality_gap"])) < 1e-12
    assert all(abs(z) < 4 for z in rep["mc_z_score"]), rep["mc_z_score"]
    assert rep["risk_sensitive_value"][1] > rep["risk_neutral_value"][1]
    assert max(rep["clearing_residual"]) < 1e-12
    assert json.loads((out / "report.json").read_text())["price"] == rep["price"]
    for fig in ("merit_order.png", "production.png"):
        assert (out / fig).stat().st_size > 1000, fig


def test_example_config_parses():
    cfg = dp.load_config(ROOT / "examples" / "dispatch.toml")
    assert cfg.fleet.m == 5 and cfg.problem.n == 3 and cfg.bounded
    assert cfg.price_game is not None and cfg.large is not None


@pytest.mark.parametrize(
    "text, message",
    [
        ("[fleet]\ncapacity = [1.0]\ncost = [1.0]\nextra = 1\n[demand]\nlevels = [0.5]",
         "unknown key fleet.extra"),
        ("[fleet]\ncapacity = [1.0]\ncost = [1.0]\n[demand]\nlevels = [2.0]",
         r"demand.levels must be in \[0, 1\]"),
        ("[fleet]\ncapacity = [-1.0]\ncost = [1.0]\n[demand]\nlevels = [0.0]",
         "fleet.capacity must be > 0"),
        ("[fleet]\ncapacity = [1.0]\ncost = [1.0]\n[demand]\nlevels = [0.5]\nmismatch = -1.0",
         "demand.mismatch must be > 0"),
        ("[fleet]\ncapacity = [1.0]\ncost = [1.0]\n[demand]\nlevels = [0.5]\n[dynamic]\n"
         "eta = 0.1\narrival = 1.0\ndemand = 1.0\nkappa = 1.0\ncapacity = 1.0\nsigma = 0.1\n"
         "[dynamic.jumps]\nintensity = 1.0\nsize = { dist = \"normal\", mean = 0.0, std = 0.1 }",
         "jumps make E exp"),
        ("[fleet]\ncapacity = [1.0]\ncost = [1.0]\n[demand]\nlevels = [0.5]\n[consumers]\n"
         "utility = \"cubic\"\nalpha = [1.0]", "consumers.utility must be"),
    ],
)  # fmt: skip
def test_cli_bad_input_exits_2(tmp_path, capsys, text, message):
    import re

    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["dispatch", str(path), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


@pytest.mark.slow
def test_cli_on_the_example(capsys, tmp_path):
    example = os.fspath(ROOT / "examples" / "dispatch.toml")
    assert main(["dispatch", example, "--json", "--out", str(tmp_path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert max(rep["kkt_residual"]) < 1e-12 and max(map(abs, rep["duality_gap"])) < 1e-12
    assert all(abs(z) < 4 for z in rep["mc_z_score"]), rep["mc_z_score"]
    assert rep["coupling_residual"] < 1e-10
    assert rep["coupled_price"] > rep["fixed_demand_price"]
    assert rep["large_consumer_demand"] < rep["price_taking_demand"]
    for fig in ("merit_order.png", "production.png", "price_dynamics.png"):
        assert (tmp_path / fig).stat().st_size > 1000, fig
