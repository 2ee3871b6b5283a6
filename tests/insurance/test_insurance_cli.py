"""`mftg insurance`: the example and one-line errors (the JSON output and figures of the q = 0
study are tested beside its closed forms, in test_insurance_solution.py)."""

import json
from pathlib import Path

import pytest

from mftg_jax.cli import main

ROOT = Path(__file__).resolve().parents[2]


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
