"""The branch-choice game against independent references: gambler's-ruin closed forms, a
forward dynamic programme over (lead, own blocks), finite differences, exploitability."""

import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import mining as mm


def _forward_mgf(game, m, eta, branch, n_max=4000):
    """E exp(-eta R_b) by propagating the law of (lead, blocks on branch b) block by block."""
    k, d0 = game.depth, game.lead
    lam, c, delta = float(game.rate), float(game.cost), float(game.miner_share)
    p = m if branch == 0 else 1 - m  # probability that a block extends branch b
    mb = m if branch == 0 else 1 - m
    a = float(game.alpha0) + float(game.crowd) * mb
    theta = delta / max(mb, delta)
    z = 1 - theta * a + theta * a * np.exp(-eta * float(game.reward) * float(game.price[branch]))
    w = lam / (lam - eta * c * delta)
    # x = the lead of branch b over the other; mass[x, n] with n own-branch blocks (weighted).
    x0 = d0 if branch == 0 else -d0
    mass = {(x0, 0): 1.0}
    total = 0.0
    for _ in range(n_max):
        new = {}
        for (x, n), v in mass.items():
            for dx, dn, pr in ((1, 1, p), (-1, 0, 1 - p)):
                y, nn, val = x + dx, n + dn, v * pr * w
                if y >= k:
                    total += val * z**nn
                elif y <= -k:
                    total += val
                else:
                    new[(y, nn)] = new.get((y, nn), 0.0) + val
        mass = new
        if sum(mass.values()) < 1e-16:
            break
    return total


@pytest.fixture(scope="module")
def game():
    return mm.BranchGame(
        depth=3, lead=0, price=(1.0, 1.3), cost=0.2, alpha0=0.6, crowd=0.3, eta=0.8,
        miner_share=0.1,
    )  # fmt: skip


def test_race_closed_forms():
    for p, d in ((0.6, 0), (0.3, 2), (0.5, -1)):
        r = (1 - p) / p
        exact = 0.5 + d / 8 if p == 0.5 else (1 - r ** (d + 4)) / (1 - r**8)
        assert abs(float(mm.win_probability(p, 4, d)) - exact) < 1e-13
    # E[S] = k^2 - d^2 for the symmetric walk.
    assert abs(float(mm.expected_race_blocks(0.5, 4, 1)) - 15.0) < 1e-12


def test_payoff_against_forward_programme(game):
    for m in (0.3, 0.7):
        u = np.asarray(game.payoff(m))
        for b in (0, 1):
            ref = -np.log(_forward_mgf(game, m, 0.8, b)) / 0.8 / 0.1
            assert abs(u[b] - ref) < 1e-9 * max(1.0, abs(ref))


def test_risk_neutral_limit(game):
    u0 = np.asarray(game.payoff(0.4, 0.0))
    u_small = np.asarray(game.payoff(0.4, 1e-6))
    np.testing.assert_allclose(u_small, u0, rtol=1e-5)
    assert np.all(np.asarray(game.payoff(0.4, 2.0)) < u0)


def test_equilibria_are_certified(game):
    eqs = mm.equilibria(game)
    kinds = sorted(e.kind for e in eqs)
    assert kinds == ["branch 1", "branch 2", "interior"]
    for e in eqs:
        assert e.exploitability < 1e-8
        assert e.stable == (e.kind != "interior")
    inner = next(e for e in eqs if e.kind == "interior")
    m = float(inner.shares[0])
    # The Jacobian of the replicator field against a central difference.
    F = lambda x: x * (1 - x) * float(game.advantage(x))  # noqa: E731
    h = 1e-5
    assert abs((F(m + h) - F(m - h)) / (2 * h) - inner.jacobian) < 1e-5 * abs(inner.jacobian)
    # Off the equilibrium a deviation pays.
    assert mm.exploitability(game, m + 0.05) > 1e-3


def test_symmetric_game_splits_evenly():
    eqs = mm.equilibria(mm.BranchGame(depth=3, cost=0.1, eta=0.5))
    inner = [e for e in eqs if e.kind == "interior"]
    assert len(inner) == 1 and abs(float(inner[0].shares[0]) - 0.5) < 1e-12


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="crowd"):
        mm.BranchGame(alpha0=0.8, crowd=0.5)
    with pytest.raises(ValueError, match="lead"):
        mm.BranchGame(depth=2, lead=2)
    with pytest.raises(ValueError, match="eta"):
        mm.BranchGame(eta=-1.0)
    with pytest.raises(ValueError, match="price"):
        mm.BranchGame(price=jnp.ones(3))
