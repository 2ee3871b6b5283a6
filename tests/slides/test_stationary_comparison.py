from helpers import assert_rel
import numpy as np
import pytest
from scipy.optimize import brentq

import mftg_jax as mj

KW = dict(c=5.0, r=2.0, rbar=2.0, lam=0.1, eta=0.5, a=10.0)


def _symmetric_reference(n, c, r, rbar, lam, eta, a):
    """Stationary symmetric equilibrium from the Riccati right-hand sides set to zero."""
    R = r + rbar

    def beta_rhs(b):
        k = (1 - eta * b) / R
        return (lam + 2 * eta) * b - (1 - eta * b) ** 2 / R + 2 * eta * b * (n - 1) * k

    beta = brentq(beta_rhs, 0.0, 1.0 / eta, xtol=1e-15)
    k = (1 - eta * beta) / R

    def gamma_rhs(g):
        m = (c + eta * g) / R
        return (
            (lam + eta) * g - eta * beta * a + (1 - eta * beta) * m
            + eta * g * (n - 1) * k - eta * beta * (n - 1) * m
        )  # fmt: skip

    gamma = brentq(gamma_rhs, -1e3, 1e3, xtol=1e-14)
    m = (c + eta * gamma) / R
    pbar = (a + n * m) / (1 + n * k)
    pc = (a + n * c / (1 + R)) / (1 + n / (1 + R))
    return pbar, pc


def test_prices_against_producers_match_reference():
    numbers = (1, 4)
    pbar, pc = mj.slides.prices_against_producers(numbers, **KW)
    ref = np.array([_symmetric_reference(n, **KW) for n in numbers])
    assert_rel(pbar, ref[:, 0], rtol=1e-10, what="stationary price")
    assert_rel(pc, ref[:, 1], rtol=1e-12, what="Cournot price")


def test_table_columns():
    games = {"n=4": mj.slides.symmetric_game(4, **KW)}
    table = mj.slides.stationary_vs_cournot(games)
    row = table.loc["n=4"]
    pbar, pc = _symmetric_reference(4, **KW)
    assert row["n"] == 4
    assert row["stationary"] == pytest.approx(pbar, rel=1e-10)
    assert row["cournot"] == pytest.approx(pc, rel=1e-12)
    assert row["difference"] == pytest.approx(pbar - pc, rel=1e-8)
    assert row["relative"] == pytest.approx(pbar / pc - 1, rel=1e-8)
