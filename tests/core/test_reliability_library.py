"""Reliability of the library: tiny linear algebra without LAPACK custom calls, no hang under
CPU load, and every bad input rejected with a message naming the field."""

import os
from pathlib import Path
import subprocess
import sys
import time

import diffrax
import equinox as eqx
from general_games import random_general_game
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
import scipy.linalg as sl

import mftg_jax as mj
from mftg_jax import lq, price
from mftg_jax._linalg import small_expm, small_solve
from mftg_jax._odes import StepBudgetError
from mftg_jax._toml import ConfigError
from mftg_jax._validation import check_size, MAX_MAGNITUDE
from mftg_jax.slides import scenario_game

ROOT = Path(__file__).resolve().parents[2]


# --- small_solve / small_expm against NumPy and SciPy --------------------------------------


@pytest.mark.parametrize("n", [2, 6, 30])
def test_small_solve_matches_numpy(n):
    rng = np.random.default_rng(n)
    A = rng.normal(size=(4, n, n)) + 0.5 * n * np.eye(n)
    b = rng.normal(size=(4, n))
    B = rng.normal(size=(4, n, 3))
    x_ref = np.linalg.solve(A, b[..., None])[..., 0]
    np.testing.assert_allclose(small_solve(A, b), x_ref, rtol=0, atol=1e-12 * np.abs(x_ref).max())
    X_ref = np.linalg.solve(A, B)
    np.testing.assert_allclose(small_solve(A, B), X_ref, rtol=0, atol=1e-12 * np.abs(X_ref).max())


def test_small_solve_pivots_complex_singular_and_vmap():
    # A zero leading pivot needs a row swap.
    np.testing.assert_allclose(small_solve(np.array([[0.0, 1.0], [1.0, 0.0]]), [1.0, 2.0]), [2, 1])
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    b = rng.normal(size=4) + 0j
    np.testing.assert_allclose(small_solve(A, b), np.linalg.solve(A, b), atol=1e-12)
    assert not np.all(np.isfinite(np.asarray(small_solve(np.ones((2, 2)), [1.0, 2.0]))))
    As = rng.normal(size=(7, 3, 3)) + 3 * np.eye(3)
    bs = rng.normal(size=(7, 3))
    np.testing.assert_allclose(
        jax.vmap(small_solve)(As, bs), np.linalg.solve(As, bs[..., None])[..., 0], atol=1e-12
    )


def test_small_solve_keeps_badly_scaled_rows_exact():
    # Pivoting swaps rows of very different scale: the swap must not round them.
    np.testing.assert_allclose(
        small_solve(np.array([[1e-3, 1e20], [1.0, 1.0]]), [1e20, 2.0]), [1.0, 1.0], rtol=1e-12
    )
    rng = np.random.default_rng(3)
    for n in (4, 30):  # the unrolled and the loop eliminations
        A = rng.normal(size=(n, n)) * np.logspace(-8, 8, n)[:, None]
        b = rng.normal(size=n)
        x = np.asarray(small_solve(A, b))
        residual = np.abs(A @ x - b) / (np.abs(A) @ np.abs(x) + np.abs(b))
        assert residual.max() < 1e-14, (n, residual.max())
    # A batch of matrices with one right-hand side, as jnp.linalg.solve accepts it.
    assert small_solve(rng.normal(size=(4, 3, 3)), np.ones(3)).shape == (4, 3)


def test_small_expm_matches_scipy_and_its_gradient():
    rng = np.random.default_rng(2)
    for n in (2, 5):
        Q = rng.uniform(size=(n, n))
        Q = Q - np.diag(np.diag(Q))
        Q = Q - np.diag(Q.sum(axis=1))
        scaled = np.stack([Q * s for s in (1e-3, 1.0, 50.0)])
        ref = np.stack([sl.expm(q) for q in scaled])
        np.testing.assert_allclose(small_expm(scaled), ref, rtol=0, atol=1e-12)
    M = rng.normal(size=(3, 4, 4))
    ref = np.stack([sl.expm(m) for m in M])
    np.testing.assert_allclose(small_expm(M), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    g = jax.grad(lambda a: small_expm(a).sum())(M[0])
    g_ref = jax.grad(lambda a: jsl.expm(a).sum())(jnp.asarray(M[0]))
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)


# --- no LAPACK custom call where the library batches tiny systems ---------------------------


def _hlo(f, *args) -> str:
    return jax.jit(f).lower(*args).as_text()


@pytest.fixture(scope="module")
def general():
    game = random_general_game(0, K=1, n=2)
    return game, lq.solve(game)


def test_batched_paths_have_no_lapack_custom_calls(general):
    game, sol = general
    grid = jnp.linspace(game.t0, game.t1, 5)
    texts = {
        "general gains over the time grid": _hlo(lambda ts: jax.vmap(sol.gains)(ts), grid),
        "general Riccati vector field": _hlo(
            lambda y: lq._riccati.vector_field(game.t0, y, game), lq._riccati.terminal_values(game)
        ),
        "regime transition matrix": _hlo(lambda q: small_expm(q * 0.1), game.generator),
    }
    for what, text in texts.items():
        assert "lapack" not in text.lower(), what
    # The check can fail: jnp.linalg.solve under vmap is a LAPACK custom call.
    assert "lapack" in _hlo(jax.vmap(jnp.linalg.solve), jnp.ones((2, 3, 3)), jnp.ones((2, 3)))


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: A run whose CPU time does not advance for this long is stuck (a deadlock), however slow
#: the machine: a starved process still gets some CPU.
STALL_S = 60.0


def test_certify_finishes_under_cpu_load(tmp_path):
    """`mftg certify` (general-game simulation, batched gains) beside two busy processes.

    Fails on a deadlock (no CPU progress for `STALL_S`) or after 500 s, whichever is first.
    """
    cfg = tmp_path / "six.toml"
    cfg.write_text(
        "t1 = 1.0\np0 = 40.0\n[market]\neta = 0.7\na = 60.0\nq = 1.0\n[producers]\n"
        "c = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]\nr = [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]\n"
        "rbar = [0.5, 0.5, 1.0, 1.0, 0.2, 0.3]\nlam = [0.1, 0.2, 0.1, 0.2, 0.1, 0.05]\n"
        "[noise]\nsigma = 1.0\nsigma_o = 0.5\n"
    )
    cmd = [sys.executable, "-m", "mftg_jax.cli", "certify", str(cfg), "--json"]
    cmd += ["--scenarios", "20", "--paths", "2", "--steps", "40"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        start = time.monotonic()
        # Output to files, not pipes: a full pipe would block the child and look like a stall.
        out_f, err_f = (tmp_path / "out.txt").open("w+"), (tmp_path / "err.txt").open("w+")
        run = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, env=env)
        cpu, moved = 0.0, start
        try:
            while run.poll() is None:
                time.sleep(1.0)
                now, c = time.monotonic(), _cpu_seconds(run.pid)
                if c is None:  # no /proc: only the overall limit applies
                    moved = now
                elif c > cpu:
                    cpu, moved = c, now
                if now - moved > STALL_S or now - start > 500:
                    pytest.fail(
                        f"mftg certify stuck under CPU load: {now - start:.0f} s wall, "
                        f"{cpu:.1f} s CPU, none for {now - moved:.0f} s"
                    )
        finally:
            if run.poll() is None:
                run.kill()
            run.wait()
            out_f.seek(0), err_f.seek(0)
            out, err = out_f.read(), err_f.read()
            out_f.close(), err_f.close()
        elapsed = time.monotonic() - start
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert run.returncode == 0, err[-2000:]
    assert '"nash_gap"' in out
    print(f"mftg certify under load: {elapsed:.1f} s wall, {cpu:.1f} s CPU")


# --- bad values rejected at construction, naming the field ---------------------------------


def _market(**kw):
    base = dict(eta=0.5, a=1.0, q=1.0, t0=0.0, t1=1.0, p0=1.0)
    return price.Market(**{**base, **kw})


@pytest.mark.parametrize(
    "field, value, pattern",
    [
        ("eta", "0.5", "eta must be a number.*string"),
        ("eta", True, "eta must be a number.*boolean"),
        ("q", 10**400, "q must be a number.*too large for a float"),
        ("p0", 1e308, "p0 must be .*magnitude <= 1e\\+100"),
        ("t1", float("nan"), "t1 must be finite"),
        ("eta", -1.0, "eta must be > 0"),
        ("phat0", None, None),  # None means "defaults to p0": accepted
    ],
)
def test_market_fields(field, value, pattern):
    if pattern is None:
        assert float(_market(**{field: value}).phat0) == 1.0
        return
    with pytest.raises(ValueError, match=pattern):
        _market(**{field: value})


def test_wrong_types_and_order_rejected():
    g = scenario_game(2)
    with pytest.raises(ValueError, match="noise.jumps must be a CompoundPoisson, got float"):
        price.Noise(jumps=2.0)
    with pytest.raises(ValueError, match="PriceGame\\(market=...\\) must be a Market"):
        price.PriceGame(g.producers, g.market)
    with pytest.raises(ValueError, match="producers.r must be a number.*string"):
        price.Producers(c=[1.0], r=["1"], rbar=[1.0], lam=[0.0])
    with pytest.raises(ValueError, match="jumps.size.std must be >= 0"):
        _normal(0.0, -1.0)
    with pytest.raises(ValueError, match="game must be a PriceGame"):
        price.solve_riccati(g.market)
    with pytest.raises(ValueError, match="LQGame\\(terminal=...\\) must be a TerminalCost"):
        game = random_general_game(1, K=1, n=1)
        lq.LQGame(game.coefficients, game.coefficients, game.generator, 0.0, 1.0, 0.0, 0.0)


def _normal(mean, std):
    from mftg_jax._noise._jumps import NormalJumps

    return NormalJumps(mean, std)


def test_check_size_refuses_before_allocating():
    with pytest.raises(ValueError, match="needs an array of shape .* GiB"):
        check_size("the gain table", (2_000_000_000, 8))
    check_size("a small table", (10, 10))


# --- solver options, evaluation times, step budget -----------------------------------------


@pytest.fixture(scope="module")
def riccati():
    return price.solve_riccati(scenario_game(2))


def test_solver_options_rejected(riccati):
    g = riccati.game
    with pytest.raises(ValueError, match="stepsize_controller.rtol must be finite and >= 0"):
        price.solve_riccati(g, stepsize_controller=diffrax.PIDController(rtol=-1, atol=1e-8))
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        price.solve_riccati(g, max_steps=0)
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        price.solve_riccati(g, max_steps="100")


def test_evaluate_outside_horizon_or_nan_raises(riccati, general):
    with pytest.raises(ValueError, match="t must be a time in the horizon \\[t0, t1\\]"):
        riccati.evaluate(10.0)
    with pytest.raises(ValueError, match="t must be a time in the horizon"):
        riccati.evaluate(float("nan"))
    with pytest.raises(ValueError, match="t must be a time in the horizon"):
        general[1].evaluate(-1.0)
    assert np.all(np.isfinite(np.asarray(riccati.evaluate(riccati.game.market.t1).alpha)))


def test_step_budget_too_small_is_not_an_explosion(riccati):
    with pytest.raises(
        StepBudgetError, match="step budget too small: max_steps = 2 .* needs about"
    ):
        price.solve_riccati(riccati.game, max_steps=2)


def test_explosion_time_inside_the_horizon(riccati):
    bad = eqx.tree_at(lambda g: g.market.q, riccati.game, jnp.asarray(-50.0))
    with pytest.raises(mj.RiccatiExplosionError) as info:
        price.solve_riccati(bad)
    t = float(str(info.value).split("explodes at t = ")[1].split(" ")[0])
    assert 0.0 <= t <= float(bad.market.t1)


def test_traced_checks_name_the_field(riccati):
    g = riccati.game

    def alpha(eta):
        m = price.Market(eta, g.market.a, g.market.q, g.market.t0, g.market.t1, g.market.p0)
        return price.solve_riccati(price.PriceGame(m, g.producers, g.noise)).evaluate(0.0).alpha

    with pytest.raises(Exception, match="eta must be finite and > 0"):
        eqx.filter_jit(alpha)(jnp.asarray(-1.0))
    with pytest.raises(ValueError, match="eta must be finite and > 0"):
        jax.vmap(alpha)(jnp.asarray([0.5, -1.0]))
    bad = eqx.tree_at(lambda g: g.market.q, g, jnp.asarray(-50.0))
    batch = price.stack_games([g, bad])
    with pytest.raises(mj.RiccatiExplosionError):
        jax.vmap(lambda gg: price.solve_riccati(gg).evaluate(0.0).alpha)(batch)


def test_non_convex_general_game_names_the_player(general):
    game = random_general_game(3, K=1, n=2, control_noise=1.0)
    game = eqx.tree_at(lambda g: g.terminal.q, game, jnp.asarray([[1.0, -50.0]]))
    with pytest.raises(mj.RiccatiExplosionError, match="player 1 in regime 0 is not convex"):
        lq.solve(game)


# --- configuration files --------------------------------------------------------------------

_PRICE = """t1 = 1.0
p0 = 1.0
[market]
eta = 1.0
a = 1.0
[producers]
c = [1.0]
r = [1.0]
rbar = [1.0]
lam = [0.1]
"""


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (
            '[noise.common_jumps]\nintensity = 1.0\nsize = { dist = "normal", std = -1.0 }\n',
            "noise.common_jumps.size.std must be >= 0",
        ),
        ("[noise]\nsigma = 1" + "0" * 400 + "\n", "noise.sigma must be a finite number.*digits"),
        ("[noise]\nsigma = 1e308\n", "noise.sigma must have magnitude <= 1e\\+100"),
        ('[noise]\nsigma = "1.0"\n', "noise.sigma must be a number"),
        ("[noise]\nsigma = true\n", "noise.sigma must be a number"),
    ],
)
def test_price_config_bad_values(tmp_path, extra, pattern):
    path = tmp_path / "game.toml"
    path.write_text(_PRICE + extra)
    with pytest.raises(ConfigError, match=pattern):
        price.load_game(path)


def test_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(_PRICE.encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="latin1.toml: not a UTF-8 TOML file"):
        price.load_game(path)


@pytest.mark.parametrize("value", ['"0.5"', "true", "[true, 1.0]"])
def test_general_config_rejects_strings_and_booleans(tmp_path, value):
    text = (ROOT / "examples" / "two_regime_control_noise.toml").read_text()
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.strip().startswith("r = "))
    lines[i] = f"r = {value}"
    path = tmp_path / "general.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="r must be a number or a list of numbers"):
        lq.load_game(path)


def test_magnitude_bound_is_what_overflows():
    # Squares of the bound stay finite in float64; squares of 1e155 do not.
    assert np.isfinite(np.float64(MAX_MAGNITUDE) ** 2)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.float64(1e155) ** 2)
