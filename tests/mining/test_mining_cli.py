"""`mftg mining` in-process on a small study: the JSON keys and their certificates, figures,
and one-line errors on bad input."""

import json

import numpy as np

from mftg_jax.cli import main

SMALL = """
[game]
depth = 3
price = [1.0, 1.3]
cost = 0.2
alpha0 = 0.6
crowd = 0.3
eta = 0.8
miner_share = 0.1
[sweep]
crowd = [0.0, 0.3]
eta = [0.8]
[selfish]
alpha = [0.1, 0.25, 0.35, 0.45]
gamma = [0.0, 0.5, 1.0]
depth = 8
depth_check = 12
risk_eta = [0.5]
risk_depth = 8
mc_runs = 256
mc_blocks = 2000
[forks]
share = 0.6
switching_rate = 0.5
n_races = 4096
max_blocks = 400
study_shares = [0.5]
study_rates = [0.0, 0.5]
"""


def test_cli_json_and_figures(tmp_path, capsys):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "out"
    assert main(["mining", str(cfg), "--json", "--out", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {
        "equilibria",
        "certainty_equivalent",
        "selfish_revenue",
        "break_even_alpha",
        "forks",
    } <= set(rep)
    for e in rep["equilibria"]:
        assert e["exploitability"] < 1e-8 and isinstance(e["stable"], bool)
    sr = rep["selfish_revenue"]
    assert np.shape(sr["optimal"]) == (3, 4) and np.shape(sr["eyal_sirer"]) == (3, 4)
    assert np.all(np.asarray(sr["optimal"]) >= np.asarray(sr["eyal_sirer_in_mdp"]) - 1e-10)
    assert sr["max_policy_evaluation_error"] < 1e-9
    assert sr["max_monte_carlo_z"] < 4
    be = rep["break_even_alpha"]
    assert be["gamma"] == [0.0, 0.5, 1.0] and len(be["optimal"]) == 3
    assert set(rep["forks"]["stderr"]) >= {"orphaned", "duration", "lost_reward"}
    assert "NaN" not in json.dumps(rep)
    for name in ("report.json", "equilibrium_shares.png", "selfish_revenue.png", "fork_length.png"):
        assert (out / name).is_file()


def test_cli_bad_config(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[selfish]\nalpha = [0.7]\n")
    assert main(["mining", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "selfish.alpha" in err[0]
    cfg.write_text("[game]\nspeed = 1\n")
    assert main(["mining", str(cfg)]) == 2
    assert "game.speed" in capsys.readouterr().err
