"""The implicit solver of many-producer games: its O(n) Newton matrix against a dense Jacobian,
its answers against the explicit solver and a tight reference, its step counts, gradients."""

import diffrax
import equinox as eqx
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax as mj
from mftg_jax._structured import _invert_blocks, aggregative_jacobian
from mftg_jax.price._stiff import RiccatiField

TS = (0.0, 0.6, 1.2, 1.45)
TIGHT = diffrax.PIDController(rtol=1e-12, atol=1e-12)
TOL = 1e-8  # the library's default rtol = atol


def _game(n, seed=0, terminal="penalty"):
    rng = np.random.default_rng(seed)
    a = mj.price.DemandIntercept(mean=20.0, period=1.0, cos=[2.0], sin=[-1.0])
    market = mj.price.Market(eta=0.6, a=a, q=1.5, t0=0.0, t1=1.5, p0=25.0, terminal=terminal)
    producers = mj.price.Producers(
        c=rng.uniform(0.0, 10.0, n),
        r=rng.uniform(0.5, 3.0, n),
        rbar=rng.uniform(0.5, 3.0, n),
        lam=rng.uniform(0.0, 0.3, n),
    )
    noise = mj.price.Noise(
        sigma=1.0,
        sigma_o=0.5,
        jumps=mj.CompoundPoisson(2.0, mj.NormalJumps(0.0, 0.5)),
        common_jumps=mj.CompoundPoisson(0.5, mj.NormalJumps(0.2, 1.0)),
    )
    return mj.price.PriceGame(market, producers, noise)


def _random_point(game, seed):
    n = game.producers.c.shape[0]
    rng = np.random.default_rng(seed)
    return mj.price.RiccatiValues(*(jnp.asarray(rng.normal(size=n)) for _ in range(4)))


def test_newton_matrix_equals_dense_jacobian():
    # A = I - c df/dy from the structure (4x4 blocks plus rank 3), against the dense Jacobian
    # of riccati_vector_field by forward differentiation; its Woodbury solve against
    # jnp.linalg.solve.
    game = _game(7)
    y = _random_point(game, 1)
    t, c = 0.3, -0.37
    flat, unravel = ravel_pytree(y)
    f = lambda z: ravel_pytree(mj.price.riccati_vector_field(t, unravel(z), game))[0]  # noqa: E731
    A_dense = jnp.eye(flat.size) - c * jax.jit(jax.jacfwd(f))(flat)
    jac = eqx.filter_jit(aggregative_jacobian)(RiccatiField(), t, y, game, c)
    np.testing.assert_allclose(jac.as_matrix(), A_dense, rtol=1e-12, atol=1e-12)
    rhs = _random_point(game, 2)
    x = ravel_pytree(eqx.filter_jit(jac.solve)(rhs))[0]
    x_dense = jnp.linalg.solve(A_dense, ravel_pytree(rhs)[0])
    np.testing.assert_allclose(x, x_dense, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ravel_pytree(jac.mv(rhs))[0], A_dense @ ravel_pytree(rhs)[0],
                               rtol=1e-12, atol=1e-12)  # fmt: skip


def test_block_inverse_pivots():
    # Blocks with a zero leading entry need the row exchange.
    rng = np.random.default_rng(3)
    M = rng.normal(size=(6, 4, 4))
    M[:, 0, 0] = 0.0
    M[2, :2, :2] = [[0.0, 1.0], [1.0, 0.0]]
    got = _invert_blocks(jnp.asarray(np.moveaxis(M, 0, -1)))
    np.testing.assert_allclose(np.moveaxis(np.asarray(got), -1, 0), np.linalg.inv(M),
                               rtol=1e-10, atol=1e-12)  # fmt: skip


def _solve(game, solver, controller=None):
    sol = mj.price.solve_riccati(
        game,
        solver=solver,
        stepsize_controller=controller,
        saveat=diffrax.SaveAt(ts=TS),
        max_steps=20_000,
    )
    return sol.values, int(sol.stats["num_steps"]), int(sol.stats["num_rejected_steps"])


@pytest.fixture(scope="module")
def many():
    game = _game(400, seed=5)
    return game, _solve(game, mj.price.structured_solver()), _solve(game, diffrax.Tsit5())


def _in_tolerance_units(values, reference):
    return max(
        float(jnp.max(jnp.abs(v - r) / (TOL + TOL * jnp.abs(r)))) for v, r in zip(values, reference)
    )


def test_implicit_equals_explicit(many):
    # 400 heterogeneous producers, seasonal intercept, noise and both kinds of jumps, both at
    # rtol = atol = 1e-8: the difference, in units of atol + rtol |y|, is that of two global
    # errors each a modest multiple of the local tolerance (test_both_near_tight_reference).
    _, (implicit, _, _), (explicit, _, _) = many
    assert _in_tolerance_units(implicit, explicit) < 200


def test_implicit_takes_fewer_steps(many):
    # With 400 producers the system is already stiff. A wrong Newton matrix would not change
    # the answer (the chord iteration's fixed point is the stage equation's root) but would make
    # the iteration fail and the controller reject steps.
    _, (_, steps, rejected), (_, explicit_steps, _) = many
    assert steps < explicit_steps, (steps, explicit_steps)
    assert rejected <= 0.2 * steps, (rejected, steps)


@pytest.mark.slow
def test_both_near_tight_reference(many):
    # Against Tsit5 at rtol = atol = 1e-12 (measured: implicit about 40, explicit about 2
    # tolerance units, the implicit's from alpha's fast initial decay).
    game, (implicit, _, _), (explicit, _, _) = many
    reference, _, _ = _solve(game, diffrax.Tsit5(), TIGHT)
    assert _in_tolerance_units(implicit, reference) < 100
    assert _in_tolerance_units(explicit, reference) < 100


@pytest.mark.slow
def test_stationary_terminal():
    # (Slow: another compilation, the terminal setting is static.) Stationary terminal values:
    # alpha = 0 and beta = beta^s on the whole horizon.
    game = _game(400, seed=5, terminal="stationary")
    values, _, _ = _solve(game, mj.price.structured_solver())
    sv = mj.price.stationary_values(game)
    np.testing.assert_allclose(values.alpha, 0.0, atol=1e-12)
    np.testing.assert_allclose(values.beta, jnp.broadcast_to(sv.beta, values.beta.shape),
                               rtol=1e-8)  # fmt: skip


@pytest.mark.slow
def test_gradient_against_explicit():
    # Reverse mode through the implicit stages (optimistix's implicit adjoint) on a small game:
    # the gradient of sum_i gamma_i(t0) with respect to eta, c and r equals the explicit
    # solver's.
    game = _game(3, seed=2)

    def gamma0(params, solver):
        eta, c, r = params
        g = eqx.tree_at(lambda g: (g.market.eta, g.producers.c, g.producers.r), game, (eta, c, r))
        return jnp.sum(
            mj.price.solve_riccati(g, solver=solver, saveat=diffrax.SaveAt(ts=[0.0])).values.gamma
        )

    params = (game.market.eta, game.producers.c, game.producers.r)
    got = jax.grad(gamma0)(params, mj.price.structured_solver())
    want = jax.grad(gamma0)(params, diffrax.Tsit5())
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_bad_options():
    with pytest.raises(ValueError, match="method must be one of"):
        mj.price.structured_solver("Tsit5")
    with pytest.raises(ValueError, match="root_find_max_steps"):
        mj.price.structured_solver(root_find_max_steps=0)


def test_structured_solver_refuses_a_stacked_batch():
    games = mj.price.stack_games([_game(2, seed=0), _game(2, seed=1)])
    with pytest.raises(ValueError, match="one game at a time"):
        mj.price.solve_riccati(games, batch="stacked", solver=mj.price.structured_solver())


def test_newton_matrix_is_built_at_the_true_time_in_either_direction():
    # diffrax integrates a backward solve in reversed time and hands the root finder -t with
    # a negative step (a forward solve: t and a positive step); the seasonal intercept a(t)
    # enters d(gamma')/d(beta), so the matrix depends on the time's sign.
    game = _game(5)
    y = _random_point(game, 4)
    t, diagonal, dt = 0.3, 0.25, 0.04

    @eqx.filter_jit
    def matrices(game, y):
        chord = mj.price.structured_solver().root_finder
        zeros = jax.tree.map(jnp.zeros_like, y)
        prod = lambda z, dt: jax.tree.map(lambda x: x * dt, z)  # noqa: E731

        def built(ti, control):
            args = (1, diagonal, None, prod, ti, y, game, control)
            state = chord.init(None, zeros, args, {}, None, None, frozenset())
            return state.jacobian.as_matrix()

        def at(time, control):
            return aggregative_jacobian(RiccatiField(), time, y, game, diagonal * control)

        backward, forward = built(-t, -dt), built(t, dt)
        return (backward, at(t, -dt).as_matrix(), at(-t, -dt).as_matrix(),
                forward, at(t, dt).as_matrix())  # fmt: skip

    backward, want_backward, wrong, forward, want_forward = matrices(game, y)
    np.testing.assert_allclose(backward, want_backward, rtol=1e-13)
    np.testing.assert_allclose(forward, want_forward, rtol=1e-13)
    assert not np.allclose(want_backward, wrong, rtol=1e-6)
