"""Streaming statistics: Chan merges, histogram quantiles, batching and device invariance."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

import mftg_jax as m
from mftg_jax._statistics import histogram_counts, histogram_edges, histogram_quantiles


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
        m.Noise(sigma=1.0, sigma_o=0.3, jumps=m.CompoundPoisson(2.0, m.NormalJumps(0.0, 1.0))),
    )


def test_batches_merge_to_the_single_batch_result():
    kw = dict(
        n_paths=2 * 256,
        n_common=2,
        n_steps=16,
        dtype=jnp.float64,
        n_full_paths=4,
        save_times=[0.0, 0.75, 1.5],
    )
    one = m.simulate(_game(), jax.random.key(2), batch_size=256, **kw)
    four = m.simulate(_game(), jax.random.key(2), batch_size=64, **kw)
    for name in (
        "p_mean",
        "p_var",
        "p_stderr",
        "revenue_mean",
        "revenue_stderr",
        "cost_mean",
        "u_mean",
        "scenario_mean_p",
        "phat",
    ):
        np.testing.assert_allclose(
            getattr(four, name), getattr(one, name), rtol=1e-11, err_msg=name
        )
    np.testing.assert_array_equal(four.paths_p, one.paths_p)
    # The same paths as the low-level function.
    paths = m.simulate_paths(
        _game(),
        jax.random.key(2),
        n_paths_per_scenario=256,
        n_common=2,
        n_steps=16,
        dtype=jnp.float64,
        save_times=[0.0, 0.75, 1.5],
    )
    np.testing.assert_allclose(one.p_mean, np.asarray(paths.p).mean((0, 1)), rtol=1e-12)
    assert one.p_quantiles.shape == (5, 3) and one.u_mean.shape == (3, 2)
    assert one.jump_overflow == 0


_SHARDED = textwrap.dedent(
    """
    import json, jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh
    jax.config.update("jax_enable_x64", True)
    import mftg_jax as m
    from tests.test_statistics import _game
    assert len(jax.devices()) == 8
    kw = dict(n_paths=2 * 64, n_common=2, n_steps=16, dtype=jnp.float64, n_full_paths=8,
              save_times=[0.75, 1.5], batch_size=64)
    r8 = m.simulate(_game(), jax.random.key(4), **kw)
    r1 = m.simulate(_game(), jax.random.key(4), mesh=Mesh(np.asarray(jax.devices()[:1]),
                    ("paths",)), **kw)
    print(json.dumps(dict(n8=r8.n_devices, n1=r1.n_devices,
        paths_equal=bool(np.array_equal(r8.paths_p, r1.paths_p)),
        mean_diff=float(np.max(np.abs(r8.p_mean - r1.p_mean))),
        rev_diff=float(np.max(np.abs(r8.revenue_mean - r1.revenue_mean))))))
    """
)


def test_eight_devices_give_the_one_device_result():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n8"] == 8 and res["n1"] == 1
    assert res["paths_equal"]
    assert res["mean_diff"] < 1e-12 and res["rev_diff"] < 1e-9
