"""Streaming statistics: Chan merges, histogram quantiles, batching and device invariance."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as m
from mftg_jax._simulation._statistics import histogram_counts, histogram_edges, histogram_quantiles


def test_chan_merge_equals_one_pass():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    whole = m.Moments.of(jnp.asarray(x), 0)
    merged = m.Moments.of(jnp.asarray(x[:137]), 0)
    for a, b in ((137, 500), (500, 1000)):
        merged = merged.merge(m.Moments.of(jnp.asarray(x[a:b]), 0))
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(merged.variance, x.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(whole.stderr, x.std(0, ddof=1) / np.sqrt(1000), rtol=1e-12)


def test_histogram_quantiles_within_one_bin():
    x = np.random.default_rng(1).standard_normal((20_000, 2))
    edges = histogram_edges(x[:5000], 512, 0)
    counts = histogram_counts(jnp.asarray(x[:5000]), jnp.asarray(edges)) + histogram_counts(
        jnp.asarray(x[5000:]), jnp.asarray(edges)
    )
    assert int(counts.sum()) == x.size
    q = histogram_quantiles(np.asarray(counts), edges, (0.05, 0.5, 0.95))
    width = edges[:, 1] - edges[:, 0]
    exact = np.quantile(x, (0.05, 0.5, 0.95), axis=0)
    assert np.all(np.abs(q - exact) <= width)


def _game():
    return m.PriceGame(
        m.Market(eta=0.5, a=1.0, q=1.0, t0=0.0, t1=1.5, p0=50.0),
        m.Producers(c=[1.0, 5.0], r=[1.0, 2.0], rbar=[1.0, 2.0], lam=[0.1, 0.1]),
        m.Noise(sigma=1.0, sigma_o=0.3, jumps=m.CompoundPoisson(0.5, m.NormalJumps(0.0, 1.0))),
    )


N_PER = 512  # paths per scenario; 2 scenarios
KW = dict(
    n_paths=2 * N_PER,
    n_common=2,
    n_steps=16,
    dtype="float64",
    n_full_paths=4,
    save_times=[0.0, 0.75, 1.5],
)

# The general LQ game on the same engine: 16 scenarios of 64 paths, one batch per run.
LQ_SPEC = m.EnsembleSpec(n_paths=1024, n_common=16, n_steps=50, scheme="euler", dtype="float64")


def _lq_solution():
    from general_games import random_general_game

    return m.lq.solve(random_general_game(0))


# The same ensemble on 8 (virtual CPU) devices, in one batch of 64 paths per device and
# scenario; the parent compares it with its own one-device run in batches of 64.
_SHARDED = textwrap.dedent(
    """
    import json, sys, jax, jax.numpy as jnp
    sys.path.insert(0, "tests")  # the tests' helper modules, as pytest's pythonpath has it
    jax.config.update("jax_enable_x64", True)
    import mftg_jax as m
    from tests.core.test_statistics import _game, KW, N_PER
    assert len(jax.devices()) == 8
    from tests.core.test_statistics import _lq_solution, LQ_SPEC
    r = m.price.simulate(_game(), jax.random.key(4), m.EnsembleSpec(batch_size=N_PER, **KW))
    g = m.lq.simulate(_lq_solution(), jax.random.key(6), LQ_SPEC)
    print(json.dumps(dict(n_devices=r.run.n_devices, batch_size=r.run.batch_size,
        p_mean=r.p_mean.tolist(), p_var=r.p_var.tolist(), paths_p=r.paths_p.tolist(),
        revenue_mean=r.revenue_mean.tolist(), cost_mean=r.cost_mean.tolist(),
        overflow=r.run.jump_overflow, lq_devices=g.statistics.run.n_devices,
        lq_cost_mean=g.cost_mean.tolist(), lq_cost_stderr=g.cost_stderr.tolist(),
        lq_x1_var=g.x1_var.tolist())))
    """
)


@pytest.fixture(scope="module")
def sharded_run():
    """The 8-device run in its own process, started before `batched` (the test asks for it
    first) so that the two overlap; only the slow test that reads it starts it."""
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SHARDED],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    # Closed whether or not a test read them: an unclosed pipe is a ResourceWarning, raised
    # (as an error) in whichever test the garbage collector happens to run in.
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture(scope="module")
def batched():
    """One device, 8 batches of 64 paths per scenario, merged."""
    return m.price.simulate(_game(), jax.random.key(4), m.EnsembleSpec(batch_size=64, **KW))


def test_batches_merge_to_the_one_pass_statistics(batched):
    # The same ensemble in one call of the low-level function; statistics in one pass (numpy).
    game = _game()
    paths = jax.jit(
        lambda g: m.price.simulate_paths(
            g,
            jax.random.key(4),
            m.EnsembleSpec(
                n_paths=2 * N_PER,
                n_common=2,
                n_steps=16,
                dtype=jnp.float64,
                save_steps=(0, 8, 16),  # 0, 0.75, 1.5 (traced horizon)
            ),
        )
    )(game)
    p, phat = np.asarray(paths.p), np.asarray(paths.phat)
    pol = m.price.FeedbackPolicy(m.price.solve_riccati(game))
    u = np.stack(
        [np.asarray(pol(t, p[..., s], phat[:, None, s])) for s, t in enumerate(batched.times)],
        axis=2,
    )  # (M, N, S, n)
    rev, cost = np.asarray(paths.revenue), np.asarray(paths.cost)
    cluster = lambda x: np.std(x.mean(1), axis=0, ddof=1) / np.sqrt(2)  # noqa: E731
    expected = dict(
        p_mean=p.mean((0, 1)),
        p_var=p.reshape(-1, 3).var(0, ddof=1),
        p_stderr=cluster(p),
        scenario_mean_p=p.mean(1),
        phat=phat,
        u_mean=u.mean((0, 1)),
        revenue_mean=rev.mean((0, 1)),
        revenue_stderr=cluster(rev),
        cost_mean=cost.mean((0, 1)),
    )
    for name, want in expected.items():
        np.testing.assert_allclose(getattr(batched, name), want, rtol=1e-11, err_msg=name)
    np.testing.assert_array_equal(batched.paths_p, p[0, :4])
    assert batched.p_quantiles.shape == (5, 3) and batched.u_mean.shape == (3, 2)
    assert batched.run.jump_overflow == 0 and batched.run.batch_size == 64
    # Quantiles from the merged histograms: within one bin width of the exact ones.
    q = np.quantile(p.reshape(-1, 3), batched.quantile_levels, axis=0)
    lo, hi = p.reshape(-1, 3).min(0), p.reshape(-1, 3).max(0)
    width = 2 * np.maximum(hi - lo, 1e-6 * np.maximum(np.abs(hi), 1)) / 512
    assert np.all(np.abs(batched.p_quantiles - q) <= width)


@pytest.mark.slow  # a long check: `make test-slow`
def test_eight_devices_give_the_one_device_result(sharded_run, batched):
    out, err = sharded_run.communicate(timeout=600)
    assert sharded_run.returncode == 0, err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    assert res["n_devices"] == 8 and res["batch_size"] == N_PER and res["overflow"] == 0
    np.testing.assert_array_equal(np.asarray(res["paths_p"]), batched.paths_p)
    for name in ("p_mean", "p_var", "revenue_mean", "cost_mean"):
        np.testing.assert_allclose(res[name], getattr(batched, name), rtol=1e-12, err_msg=name)
    # The general game on 8 devices equals its one-device run in batches of 8 paths.
    lq = m.lq.simulate(_lq_solution(), jax.random.key(6), LQ_SPEC)
    one = m.lq.simulate(
        _lq_solution(),
        jax.random.key(6),
        m.EnsembleSpec(
            n_paths=1024, n_common=16, n_steps=50, scheme="euler", dtype="float64", batch_size=8
        ),  # fmt: skip
    )
    assert res["lq_devices"] == 8 and lq.statistics.run.n_devices == 1
    for name, got in (("lq_cost_mean", one.cost_mean), ("lq_cost_stderr", one.cost_stderr),
                      ("lq_x1_var", one.x1_var)):  # fmt: skip
        np.testing.assert_allclose(res[name], got, rtol=1e-10, err_msg=name)
