"""Streamed quantiles of the price ensemble against exact sample quantiles of the same paths
(within one histogram bin), running revenues against the realised revenue, the quantile table
(`to_pandas`) and `mftg simulate --save`."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

import mftg_jax as m
from mftg_jax import price
from mftg_jax._simulation._driver import run_ensemble
from mftg_jax.cli import main
from mftg_jax.price._simulation import PriceEnsemble

P = 2048
SPEC = m.EnsembleSpec(
    n_paths=P, n_steps=32, dtype="float64", quantiles=(0.05, 0.5, 0.95), n_full_paths=P
)


@pytest.fixture(scope="module")
def game():
    return price.PriceGame(
        price.Market(eta=0.5, a=10.0, q=1.0, t0=0.0, t1=1.5, p0=6.0),
        price.Producers(c=[1.0, 2.0], r=[1.0, 2.0], rbar=[1.0, 0.5], lam=[0.1, 0.2]),
        price.Noise(sigma=1.0, jumps=m.CompoundPoisson(2.0, m.NormalJumps(0.5, 1.0))),
    )


@pytest.fixture(scope="module")
def runs(game):
    key = jax.random.key(5)
    res = price.simulate(game, key, SPEC, revenue_series=True)
    # The same ensemble program on the engine, every path kept (one batch, one scenario).
    model = PriceEnsemble(game, price.FeedbackPolicy(price.solve_riccati(game)), None, True)
    return res, run_ensemble(model, key, SPEC)


def _within_a_bin(streamed, sample, levels, bins=SPEC.bins):
    """Streamed quantiles `(Q, ...)` against the exact ones of `sample (P, ...)`: between the
    order statistics around each level, widened by one bin of the histogram (the sample's
    range widened by half of it each way, at least 1e-6 wide, over `bins`)."""
    hi = sample.max(0)
    width = 2 * np.maximum(hi - sample.min(0), 1e-6 * np.maximum(np.abs(hi), 1.0)) / bins
    for q, got in zip(levels, streamed):
        lo = np.quantile(sample, max(q - 1 / P, 0.0), axis=0, method="lower")
        hi = np.quantile(sample, min(q + 1 / P, 1.0), axis=0, method="higher")
        assert np.all(got >= lo - width - 1e-12) and np.all(got <= hi + width + 1e-12), q


def test_streamed_quantiles_match_the_sample(runs):
    res, st = runs
    q = res.quantile_levels
    revenue, cost = st.full["revenue"], st.full["cost"]  # (P, n)
    running = st.full["running_revenue"]  # (P, S, n)
    assert running.shape == (P, 33, 2)
    _within_a_bin(res.revenue_quantiles, revenue, q)
    _within_a_bin(res.cost_quantiles, cost, q)
    _within_a_bin(res.running_revenue_quantiles, running, q)
    _within_a_bin(res.p_quantiles, st.full["p"], q)
    assert np.allclose(res.running_revenue_mean, running.mean(0), rtol=1e-12, atol=1e-12)
    # Revenue quantiles are not degenerate here (noise and jumps).
    assert np.all(res.revenue_quantiles[-1] - res.revenue_quantiles[0] > 0.1)


def test_running_revenue_ends_at_the_realised_revenue(game, runs):
    _, st = runs
    running = st.full["running_revenue"]  # (P, S, n)
    assert np.all(running[:, 0] == 0)
    # At t1 the running revenue less the terminal penalty is the realised revenue.
    dev = (st.full["p"][:, -1] - st.per_scenario["phat"][0, -1])[:, None]
    disc = np.exp(-np.asarray(game.producers.lam) * 1.5)[None]
    want = st.full["revenue"] + 0.5 * disc * dev * dev
    assert np.allclose(running[:, -1], want, rtol=1e-12, atol=1e-10)
    assert np.max(np.abs(dev)) > 0.5


def test_quantile_table(runs):
    res, _ = runs
    df = res.to_pandas()
    assert len(df) == len(res.times) == 33
    assert list(df.columns[:5]) == ["time", "p_mean", "p_q0.05", "p_q0.5", "p_q0.95"]
    for name in ("phat", "u1", "u2", "revenue1", "revenue2"):
        assert f"{name}_q0.95" in df.columns
    assert np.array_equal(df["u2_q0.5"], res.u_quantiles[1, :, 1])
    s = res.summary()
    assert np.shape(s["revenue_quantiles"]) == (2, 3)
    assert s["cost_quantiles"][1] == res.cost_quantiles[:, 1].tolist()


def test_cli_save(game, runs, tmp_path, capsys):
    res, _ = runs
    cfg = tmp_path / "g.toml"
    cfg.write_text(price.game_to_toml(game))
    # The fixture's ensemble (same sizes, seed and save times: the same compiled program).
    base = ["simulate", str(cfg), "--paths", str(P), "--steps", "32", "--dtype", "float64"]
    base += ["--seed", "5", "--save-times", "33", "--quantiles", "0.05,0.5,0.95"]
    base += ["--no-checkpoint", "--json"]
    want = res.to_pandas()
    for ext in ("csv", "parquet"):
        out = tmp_path / f"q.{ext}"
        assert main([*base, "--save", str(out)]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["quantile_levels"] == [0.05, 0.5, 0.95]
        assert np.allclose(rep["revenue_quantiles"], res.revenue_quantiles.T, rtol=1e-12)
        assert np.allclose(rep["cost_quantiles"], res.cost_quantiles.T, rtol=1e-12)
        got = pd.read_csv(out) if ext == "csv" else pd.read_parquet(out)
        assert list(got.columns) == list(want.columns)
        assert np.allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-12)
    assert np.allclose(got["time"], np.linspace(0.0, 1.5, 33))
