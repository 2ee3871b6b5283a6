"""TOML schema of general games, the examples and the `solve-general` / `certify` commands."""

import json
import pathlib
import tomllib

import jax
import numpy as np
import pytest

from mftg_jax._toml import ConfigError
from mftg_jax.cli import main
from mftg_jax.lq import game_from_dict, game_to_toml, load_game

EXAMPLES = pathlib.Path(__file__).parent.parent.parent / "examples"
MINIMAL = {"t1": 1.0, "x0": 1.0, "players": 2, "regime": [{"cost": {"r": 1.0}}]}


def _same(g1, g2):
    leaves1, leaves2 = jax.tree.leaves(g1), jax.tree.leaves(g2)
    return len(leaves1) == len(leaves2) and all(
        np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(leaves1, leaves2)
    )


def test_coefficients_default_to_zero():
    game = game_from_dict(MINIMAL)
    leaves = dict(
        drift=game.coefficients.dynamics.drift.u,
        q=game.coefficients.cost.q,
        terminal=game.terminal.q,
        xi=game.coefficients.cost_noise.xi0,
    )
    for name, v in leaves.items():
        assert np.all(np.asarray(v) == 0), name
    np.testing.assert_array_equal(np.asarray(game.coefficients.cost.r), np.ones((1, 2)))
    assert float(game.xhat0) == 1.0 and game.cos is None


# The general-game examples: the files of the `players = n` schema (other families' examples
# sit beside them).
GENERAL_EXAMPLES = [
    p for p in sorted(EXAMPLES.glob("*.toml")) if "players" in tomllib.loads(p.read_text())
]


@pytest.mark.parametrize("path", GENERAL_EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path):
    game = load_game(path)
    text = game_to_toml(game)
    assert _same(game, game_from_dict(tomllib.loads(text)))


def test_two_regime_example_has_control_dependent_noise():
    game = load_game(EXAMPLES / "two_regime_control_noise.toml")
    assert game.num_regimes == 2
    assert np.any(np.asarray(game.coefficients.dynamics.diffusion.u) != 0)
    assert np.any(np.asarray(game.coefficients.dynamics.common_jumps.size.u) != 0)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"players": 0}, "players"),
        ({"regimes": 2}, r"\[\[regime\]\]"),
        ({"regime": [{"cost": {"r": -1.0}}]}, "cost.r"),
        ({"regime": [{"cost": {"r": 1.0, "rbar": -2.0}}]}, "cost.rbar"),
        ({"regime": [{"cost": {"r": 1.0, "lam": -0.1}}]}, "cost.lam"),
        ({"regime": [{"cost": {"r": [1.0, 2.0, 3.0]}}]}, "regime\\[0\\].cost.r"),
        ({"regime": [{"cost": {"q": 1.0}}]}, "cost.r"),
        ({"regime": [{"cost": {"r": 1.0}, "drift": {"speed": 1.0}}]}, "drift.speed"),
        (
            {"regime": [{"cost": {"r": 1.0}, "jumps": {"intensity": [-1.0]}}], "marks": 1},
            "jumps.intensity",
        ),
        ({"t1": 0.0}, "t1"),
        ({"regime0": 3}, "regime0"),
        (
            {
                "regimes": 2,
                "regime": [{"cost": {"r": 1.0}}] * 2,
                "generator": [[-1.0, 2.0], [1.0, -1.0]],
            },
            "generator",
        ),
        (
            {
                "regimes": 2,
                "regime": [{"cost": {"r": 1.0}}] * 2,
                "generator": [[1.0, -1.0], [1.0, -1.0]],
            },
            "generator",
        ),
        ({"regime": [{"cost": {"r": {"mean": 1.0, "cos": [2.0]}}}]}, "cost.r"),
    ],
)
def test_bad_configs_name_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        game_from_dict({**MINIMAL, **change})


def test_solve_general_command(capsys):
    path = EXAMPLES / "two_regime_control_noise.toml"
    assert main(["solve-general", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert np.array(rep["alpha"]).shape == (2, 3)
    assert np.max(np.abs(rep["nash_gap"])) < 1e-6
    assert main(["solve-general", str(path)]) == 0
    assert "Nash gap" in capsys.readouterr().out


def test_solve_general_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("t1 = 1.0\nx0 = 1.0\nplayers = 2\n[[regime]]\n[regime.cost]\nr = -1.0\n")
    assert main(["solve-general", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cost.r" in err and len(err.strip().splitlines()) == 1


def test_certify_rejects_bad_monte_carlo_sizes(capsys):
    assert main(["certify", "--scenario", "3", "--paths", "1"]) == 2
    assert "--paths" in capsys.readouterr().err


@pytest.mark.slow  # compiles the price solver, its certificate and a Monte Carlo (~20 s here)
def test_certify_command_on_the_price_example(capsys):
    path = EXAMPLES / "price_game.toml"
    args = ["certify", str(path), "--json", "--scenarios", "200", "--paths", "4", "--steps", "400"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert np.max(np.abs(rep["nash_gap"])) < 1e-6
    assert rep["general_vs_price_max_rel_err"] < 1e-8
    assert len(rep["mc_revenue_z_scores"]) == 3
    assert np.max(np.abs(rep["mc_revenue_z_scores"])) < 4
