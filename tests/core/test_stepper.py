"""The grid stepper: saved states at any spacing of the save points equal a plain loop, in
value and in gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax._simulation._stepper import AbstractEnsembleTerm, integrate, time_grid


class _Decay(AbstractEnsembleTerm):
    rate: jax.Array

    def step(self, scheme, t0, t1, y):
        return y + (t1 - t0) * (jnp.sin(t0) - self.rate * y)

    def vf(self, t, y, args):
        return jnp.sin(t) - self.rate * y

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return vf * control


def _pick(t, y, args):
    return (t + 0.0 * y[0], y)


def _loop(rate, grid, save_idx):
    term = _Decay(rate)
    y = jnp.asarray([1.0, 2.0])
    out = {0: y} if 0 in save_idx else {}
    for k in range(grid.shape[0] - 1):
        y = term.step("euler", grid[k], grid[k + 1], y)
        if k + 1 in save_idx:
            out[k + 1] = y
    return y, jnp.stack([out[i] for i in save_idx])


@pytest.mark.parametrize(
    "save_idx",
    [
        (0, 10, 20, 30, 40),  # even: one run
        tuple(range(41)),  # every step
        (0, 1, 3, 4, 6, 7, 9, 10, 15, 27, 33, 39),  # uneven: the padded scan
        (5, 6, 8, 11, 12, 17, 23, 29),  # uneven, no start, an unsaved tail
    ],
)
def test_saved_states_equal_a_plain_loop(save_idx):
    grid = time_grid(0.0, 2.0, 40, jnp.float64)
    rate = jnp.asarray(0.7)
    yT, (ts, ys) = integrate(_Decay(rate), "euler", jnp.asarray([1.0, 2.0]), grid, save_idx, _pick)
    yT_ref, ys_ref = _loop(rate, grid, save_idx)
    np.testing.assert_allclose(yT, yT_ref, rtol=1e-14)
    np.testing.assert_allclose(ys, ys_ref, rtol=1e-14)
    np.testing.assert_allclose(ts, grid[np.asarray(save_idx)], rtol=0)

    run = lambda r: integrate(_Decay(r), "euler", jnp.asarray([1.0, 2.0]), grid, save_idx, _pick)
    g = jax.grad(lambda r: jnp.sum(run(r)[1][1] ** 2) + jnp.sum(run(r)[0]))(rate)
    g_ref = jax.grad(
        lambda r: jnp.sum(_loop(r, grid, save_idx)[1] ** 2) + jnp.sum(_loop(r, grid, save_idx)[0])
    )(rate)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12)
