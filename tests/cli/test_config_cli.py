"""TOML configuration and the `mftg solve` command (its scenario-2 report is tested beside the
price solver, in tests/price/test_equilibrium.py)."""

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax.cli import main

EXAMPLE = """\
t0 = 0.0
t1 = 1.5
p0 = 50.0
phat0 = 50.0          # optional, defaults to p0
[market]
eta = 0.5
a = 1.0               # or a = { mean = 30.0, period = 24.0, cos = [2.0], sin = [1.0] }
q = 1.0
[producers]           # one entry per producer
c = [1.0, 5.0, 10.0]
r = [1.0, 2.0, 3.0]
rbar = [1.0, 2.0, 3.0]
lam = [0.1, 0.1, 0.1]
[noise]
sigma = 1.0
sigma_o = 0.0
[noise.jumps]         # idiosyncratic compound Poisson
intensity = 2.0
size = { dist = "normal", mean = 0.0, std = 0.5 }
[noise.common_jumps]
intensity = 0.0
size = { dist = "normal", mean = 0.0, std = 1.0 }
"""


@pytest.fixture
def example(tmp_path):
    path = tmp_path / "game.toml"
    path.write_text(EXAMPLE)
    return path


def test_readme_example_loads_and_round_trips(example, tmp_path):
    game = mj.price.load_game(example)
    assert game.n == 3
    assert float(game.noise.jumps.variance_rate) == 2.0 * 0.25
    again = tmp_path / "again.toml"
    again.write_text(mj.price.game_to_toml(game))
    game2 = mj.price.load_game(again)
    for x, y in zip(
        __import__("jax").tree.leaves(game), __import__("jax").tree.leaves(game2), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_seasonal_config(tmp_path):
    text = EXAMPLE.replace(
        "a = 1.0 ", "a = { mean = 30.0, period = 24.0, cos = [2.0], sin = [1.0] } "
    )
    path = tmp_path / "s.toml"
    path.write_text(text)
    a = mj.price.load_game(path).market.a
    assert float(a.period) == 24.0 and a.cos.shape == (1,)
    back = tmp_path / "b.toml"
    back.write_text(mj.price.game_to_toml(mj.price.load_game(path)))
    assert float(mj.price.load_game(back).market.a.sin[0]) == 1.0


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("eta = 0.5", "eta = -0.5", "eta must be > 0"),
        ("r = [1.0, 2.0, 3.0]", "r = [1.0, 2.0]", "same length"),
        ("r = [1.0, 2.0, 3.0]", "r = [1.0, 0.0, 3.0]", "producers.r must be > 0"),
        ("t1 = 1.5", "t1 = -1.0", "t1 must be > t0"),
        ("sigma = 1.0", 'sigma = "big"', "noise.sigma must be a number"),
        ("intensity = 2.0", "intensity = -2.0", "intensity must be >= 0"),
        ('dist = "normal", mean = 0.0, std = 0.5', 'dist = "cauchy"', "dist must be one of"),
        ("q = 1.0", "q = 1.0\nqq = 2", "unknown key market.qq"),
        ("eta = 0.5", "eta = nan", "market.eta must be finite"),
        ("[producers]", "[producerz]", "unknown key producerz"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, old, new, message):
    path = tmp_path / "bad.toml"
    assert old in EXAMPLE
    path.write_text(EXAMPLE.replace(old, new, 1))
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "Traceback" not in err, err


def test_not_toml_and_missing_file(tmp_path, capsys):
    path = tmp_path / "x.toml"
    path.write_text("t0 = = 1")
    assert main(["solve", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "none.toml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_console_script_is_installed():
    # The `mftg` entry point, as a user runs it (help only: no game is solved here).
    script = Path(sys.executable).parent / "mftg"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for command in ("solve", "simulate", "scenario", "calibrate", "certify", "solve-general"):
        assert command in out.stdout


def test_usage_errors(capsys):
    assert main(["solve"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["solve", "--scenario", "7"]) == 2
    assert "--scenario must be" in capsys.readouterr().err
