"""`mftg insurance`: the example, JSON output, figures and one-line errors."""

import json
from pathlib import Path

import pytest

from mftg_jax.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = """
[optimisation]
n_paths = 64
n_steps = 8
steps = 5
certificate_directions = 2
certificate_sizes = [0.1]
"""


def _config(tmp_path, q):
    text = (ROOT / "examples" / "insurance.toml").read_text()
    text = text.split("[optimisation]")[0].replace("q = 0.5 ", f"q = {q} ")
    p = tmp_path / f"small_{q}.toml"
    p.write_text(text + SMALL)
    return p


def test_cli_q0_json(tmp_path, capsys):
    p = _config(tmp_path, 0.0)
    out = tmp_path / "out"
    rc = main(["insurance", str(p), "--json", "--paths", "400", "--steps", "20", "--out", str(out)])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    for k in ("consumption_rate", "investment_fraction", "insurance_fraction", "value",
              "value_mc", "value_mc_stderr"):  # fmt: skip
        assert k in rep
    assert len(rep["consumption_rate"]) == 2
    assert len(rep["investment_fraction"]) == 2 and len(rep["investment_fraction"][0]) == 2
    assert abs(rep["value"] - rep["value_mc"]) < 4 * rep["value_mc_stderr"]
    assert (out / "report.json").exists() and (out / "policy.png").exists()
    assert (out / "terminal_wealth.png").exists()


@pytest.mark.slow
def test_cli_example_positive_q(capsys):
    rc = main(["insurance", str(ROOT / "examples" / "insurance.toml"), "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["policy_certified"] and rep["in_sample_certified"]
    assert abs(rep["value"] - rep["value_mc"]) < 4 * rep["value_mc_stderr"]


@pytest.mark.parametrize(
    "patch, message",
    [
        (("loading = [0.2, 0.5]", "loading = [-1.5, 0.5]"), "regimes.loading must be > -1"),
        (("[agent]", "[agent]\nspeed = 1"), "unknown key agent.speed"),
        (("loss_fraction = [0.6, 0.8]", "loss_fraction = [0.6, 1.2]"), "regimes.loss_fraction"),
        (("n_paths = 4000", "n_paths = 4001"), "simulation.n_paths must be even"),
    ],
)
def test_cli_bad_input(tmp_path, capsys, patch, message):
    text = (ROOT / "examples" / "insurance.toml").read_text()
    assert patch[0] in text
    p = tmp_path / "bad.toml"
    p.write_text(text.replace(patch[0], patch[1], 1))
    assert main(["insurance", str(p), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
