r"""The decoupled regulated-price game lowered to the general LQ game of [`mftg_jax.lq`][]:
each asset is a one-player game, a cross-check of the family's own Riccati system.

With $x = p_i$, $E[q(x-\hat x)^2 + Q(\hat x - p_{tp})^2] = E[qx^2] + (Q - q)\hat x^2
- 2Qp_{tp}\hat x + Qp_{tp}^2$, so in the general game's cost (halved squares)
$q^{lq} = 2q$, $\bar q^{lq} = 2\bar q$, $\bar\epsilon_3 = -2Qp_{tp}(t)$ (a Fourier series),
$r^{lq} = 2r$, $\bar r^{lq} = 2\bar r$; the drift is $b = \eta(D - S) - \eta x - \eta u$.
The general game has no constant running cost: the lowered cost misses
$\int_{t_0}^{t_1}Q\,p_{tp}^2\,dt + Q^T p_{tp}(t_1)^2$ ([`lq_constant`][]).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..lq import Coefficients, LQGame, TerminalCost, zero_coefficients
from ._model import TrackingGame


def _pad(a, H):
    return jnp.concatenate([a, jnp.zeros(a.shape[:-1] + (H - a.shape[-1],), a.dtype)], -1)


def to_lq(game: TrackingGame, i: int) -> LQGame:
    r"""Asset `i` of a decoupled game as a one-player [`mftg_jax.lq.LQGame`][] (module
    docstring).

    **Arguments:** `game` (with `cross` zero), `i`: the asset.

    **Returns:** an `LQGame` with one regime and one player; its Riccati values are
    $(2\alpha_i, 2\beta_i, 2\gamma_i, \delta_i - \text{const})$ of this family's.
    """
    if game.interacting:
        raise ValueError("to_lq lowers decoupled games only (cross must be zero)")
    c, nz = game.costs, game.noise
    eta = game.eta[i]
    H = max(game.demand.harmonics, game.supply.harmonics, game.band.target.harmonics, 1)
    net_mean = game.demand.mean[i] - game.supply.mean[i]
    net_cos = _pad(game.demand.cos[i], H) - _pad(game.supply.cos[i], H)
    net_sin = _pad(game.demand.sin[i], H) - _pad(game.supply.sin[i], H)
    tg = game.band.target
    Q = c.Q[i]
    co = zero_coefficients(1, 1, 1, 1)
    one = jnp.ones((1, 1))
    r1 = lambda x: jnp.reshape(x, (1,))  # noqa: E731
    r11 = lambda x: jnp.reshape(x, (1, 1))  # noqa: E731
    dyn = eqx.tree_at(
        lambda d: (
            d.drift.const,
            d.drift.x,
            d.drift.u,
            d.diffusion.const,
            d.common_diffusion.const,
            d.jumps.intensity,
            d.jumps.size.const,
            d.common_jumps.intensity,
            d.common_jumps.size.const,
        ),
        co.dynamics,
        (
            r1(eta * net_mean),
            r1(-eta),
            -eta * one,
            r1(nz.sigma[i]),
            r1(nz.sigma_o),
            r11(nz.jumps.intensity),
            r11(jnp.sqrt(nz.jumps.size.second_moment())),
            r11(nz.common_jumps.intensity),
            r11(jnp.sqrt(nz.common_jumps.size.second_moment())),
        ),
    )
    cost = eqx.tree_at(
        lambda k: (k.q, k.qbar, k.r, k.rbar, k.eps3bar),
        co.cost,
        (
            r11(2 * c.q[i]),
            r11(2 * c.qbar[i]),
            r11(2 * c.r[i]),
            r11(2 * c.rbar[i]),
            r11(-2 * Q * tg.mean[i]),
        ),
    )
    base = Coefficients(dyn, cost, co.cost_noise)
    zeros = jnp.zeros((H, 1, 1))

    def harmonic(net, tgt):
        h = jnp.zeros((H, 1))
        z = zero_coefficients(1, 1, 1, 1)
        z = jax.tree.map(lambda x: jnp.zeros((H, *x.shape)), z)
        z = eqx.tree_at(lambda k: k.dynamics.drift.const, z, h + (eta * net)[:, None])
        return eqx.tree_at(lambda k: k.cost.eps3bar, z, zeros + (-2 * Q * tgt)[:, None, None])

    ptp1 = game.target(game.t1)[i]
    QT = c.Q_terminal[i]
    terminal = TerminalCost(
        r11(2 * c.q_terminal[i]), r11(2 * c.qbar_terminal[i]), r11(0.0), r11(-2 * QT * ptp1)
    )
    return LQGame(
        coefficients=base,
        terminal=terminal,
        generator=jnp.zeros((1, 1)),
        t0=game.t0,
        t1=game.t1,
        x0=game.p0[i],
        xhat0=game.p0[i],
        period=1.0,
        cos=harmonic(net_cos, _pad(tg.cos[i], H)),
        sin=harmonic(net_sin, _pad(tg.sin[i], H)),
    )


def lq_constant(game: TrackingGame, nodes: int = 256) -> np.ndarray:
    r"""$\int_{t_0}^{t_1}Q_i\,p_{tp,i}^2\,dt + Q^T_ip_{tp,i}(t_1)^2$ per asset (Gauss-Legendre
    with `nodes` points per unit time), the constant the lowered cost misses."""
    t0, t1 = float(game.t0), float(game.t1)
    m = max(8, int(np.ceil(nodes * (t1 - t0))))
    x, w = np.polynomial.legendre.leggauss(m)
    ts = 0.5 * (t1 - t0) * x + 0.5 * (t1 + t0)
    vals = np.stack([np.asarray(game.target(t)) for t in ts])  # (m, n)
    integral = 0.5 * (t1 - t0) * (w @ vals**2)
    c = game.costs
    return np.asarray(c.Q) * integral + np.asarray(c.Q_terminal) * np.asarray(game.target(t1)) ** 2
