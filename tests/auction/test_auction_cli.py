"""The prosumer's decision, the configuration format and `mftg auction`."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import mftg_jax as mj
from mftg_jax import auction as au
from mftg_jax.cli import main

EXAMPLE = "examples/auction.toml"


def _prosumer():
    return au.Prosumer(demand=1.0, offer=0.5, c1=0.1, c2=2.0, theta=1.0, price=0.3,
                       price_slope=0.1)  # fmt: skip


def test_buy_position_solves_the_first_order_condition():
    pro = _prosumer()
    e = jnp.linspace(0.0, 0.9, 7)
    x = np.asarray(au.buy_position(pro, e))
    for ei, xi in zip(np.asarray(e), x):
        f = lambda y, ei=ei: float(pro.buy_foc(y, ei))  # noqa: E731
        lo = ei - 1.0
        ref = 0.0 if f(0.0) >= 0 else (lo if f(lo) <= 0 else brentq(f, lo, 0.0, xtol=1e-14))
        assert abs(xi - ref) < 1e-10
    assert np.all(np.diff(x) > 0)  # more reserve, less buying
    assert float(au.buy_position(pro, jnp.array([1.5]))[0]) == 0.0


def test_prosumer_validation():
    with pytest.raises(ValueError, match="Prosumer.c2 must be > 0"):
        au.Prosumer(1.0, 0.5, 0.1, 0.0, 1.0, 0.3, -0.1)
    with pytest.raises(ValueError, match="price_slope"):
        au.Prosumer(1.0, 0.5, 0.1, 1.0, 1.0, 0.3, 2.0)


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\n')
    with pytest.raises(mj.ConfigError, match="K >= 2"):
        au.load_config(bad)
    bad.write_text(
        '[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\nspeed = 1\n'
        '[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\n'
    )
    with pytest.raises(mj.ConfigError, match="unknown key bidders\\[0\\].speed"):
        au.load_config(bad)
    bad.write_text(
        '[[bidders]]\ndist = "gamma"\nlo = 0.0\nhi = 1.0\n'
        '[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\n'
    )
    with pytest.raises(mj.ConfigError, match="bidders\\[0\\].dist"):
        au.load_config(bad)
    bad.write_text(
        '[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\n'
        '[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\n[collocation]\ndegree = 2\n'
    )
    with pytest.raises(mj.ConfigError, match="collocation.degree"):
        au.load_config(bad)


def test_cli_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[bidders]]\ndist = "power"\nlo = 0.0\nhi = 1.0\na = -2.0\n'
        '[[bidders]]\ndist = "uniform"\nlo = 0.0\nhi = 1.0\n'
    )
    assert main(["auction", str(bad), "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mftg auction: error:") and "Power.a" in err[0]


def test_cli_json(capsys):
    # The example with its own settings (the acceptance run of the command).
    rc = main(["auction", EXAMPLE, "--json", "--draws", "20000"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("lowest_bid", "highest_bid", "expected_payment", "efficiency"):
        assert isinstance(rep[key], float), key
    assert len(rep["best_response_gap"]) == 3 and max(rep["best_response_gap"]) < 1e-6
    assert len(rep["win_probability"]) == 3 and len(rep["bids"]["bids"]) == 3
    assert rep["lowest_bid"] < rep["expected_payment"] < rep["highest_bid"]
    sells = rep["prosumer"]["sells"]
    assert not sells[0] and sells[-1]  # buys with an empty reserve, sells with a full one
    col = rep["collocation"]  # the second method against the first
    assert col["converged"] and abs(col["lowest_bid_difference"]) < 1e-10
    assert col["max_inverse_bid_difference"] < 1e-7


@pytest.mark.slow  # about 40 s: the full command and its figures
def test_cli_out_writes_report_and_figures(tmp_path, capsys):
    assert main(["auction", EXAMPLE, "--draws", "2000", "--out", str(tmp_path)]) == 0
    assert "lowest bid" in capsys.readouterr().out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert max(rep["best_response_gap"]) < 1e-6
    for f in ("report.json", "bids.png", "decision.png"):
        assert (tmp_path / f).exists(), f
