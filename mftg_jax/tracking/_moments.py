r"""First and second moments of the equilibrium prices (forward equations), and the
stationary closed forms for constant coefficients.

Under the feedback, $y_i = p_i - \hat p_i$ and $\hat p$ are linear:

$$dy_i = -\kappa_i(t)y_i\,dt + \sigma_idB_i + dJ_i,\quad
  \kappa_i = \eta_i(1 + \eta_i\alpha_i/r_i),\qquad
  d\hat p = (F\hat p + f)dt + \mathbf 1(\sigma_odB_o + dJ_o),$$

so $E\hat p = m$ with $\dot m = Fm + f$, $V_i = E y_i^2$ with $\dot V_i = -2\kappa_iV_i + \Sigma_i$
and $C = \mathrm{Cov}(\hat p)$ with $\dot C = FC + CF^\top + \Sigma_o\mathbf 1\mathbf 1^\top$;
$E p = m$, $\mathrm{Var}\,p_i = V_i + C_{ii}$ (the deviation and the common noise are
independent).
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from .._odes import checked_solution, solve_ode
from ._model import TrackingGame
from ._riccati import _mean_closed_loop, TrackingSolution


class PriceMoments(NamedTuple):
    """Moments at the requested times: `mean (T, n)` $= E p = E\\hat p$, `deviation_variance
    (T, n)` $= E(p - \\hat p)^2$, `mean_variance (T, n)` $= \\mathrm{Var}\\,\\hat p$,
    `variance (T, n)` $= \\mathrm{Var}\\,p$."""

    mean: Array
    deviation_variance: Array
    mean_variance: Array
    variance: Array


def _vf(t, y, sol: TrackingSolution):
    m, V, C = y
    g = sol.game
    nz = g.noise
    kappa = g.eta * (1 + sol.deviation_gain(t))
    dV = -2 * kappa * V + nz.idiosyncratic_variance_rate
    if not sol.interacting:
        K, k = sol.mean_gains(t)
        F = -g.eta * (1 + K)
        dm = F * m + g.eta * (g.net_demand(t) - k)
        dC = 2 * F * C + nz.common_variance_rate
        return dm, dV, dC
    v = sol.evaluate(t)
    _, _, F, f = _mean_closed_loop(g, t, v.P, v.g)
    dm = F @ m + f
    FC = F @ C
    dC = FC + FC.T + nz.common_variance_rate
    return dm, dV, dC


def solve_moments(
    sol: TrackingSolution,
    ts,
    *,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 16384,
) -> PriceMoments:
    r"""Moments of the equilibrium prices at times `ts` (module docstring).

    **Arguments:** `sol`: the equilibrium; `ts`: increasing times in $[t_0, t_1]$;
    `stepsize_controller`, `max_steps`: of the forward solve.

    **Returns:** [`PriceMoments`][mftg_jax.tracking.PriceMoments].
    """
    g = sol.game
    n = g.n
    ts = jnp.atleast_1d(jnp.asarray(ts, float))
    z = jnp.zeros((n,), g.eta.dtype)
    C0 = z if not sol.interacting else jnp.zeros((n, n), g.eta.dtype)
    out = checked_solution(
        solve_ode(
            _vf,
            (g.p0, z, C0),
            g.t0,
            g.t1,
            sol,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=stepsize_controller,
            max_steps=max_steps,
        ),
        lambda s: "the moment equations of the tracking equilibrium failed",
        "the moment equations of the tracking equilibrium failed",
    )
    m, V, C = out.ys
    Cd = C if not sol.interacting else jnp.diagonal(C, 0, -2, -1)
    return PriceMoments(m, V, Cd, V + Cd)


class StationaryValues(eqx.Module):
    r"""Stationary closed forms of a decoupled game with constant coefficients, per asset.

    - `alpha` $= (r/\eta)(\sqrt{1 + q/r} - 1)$, the root of
      $\eta^2\alpha^2/r + 2\eta\alpha - q = 0$; `deviation_gain` $= \eta\alpha/r
      = \sqrt{1+q/r} - 1$; `reversion_rate` $\kappa = \eta\sqrt{1 + q/r}$.
    - `deviation_variance` $= \Sigma_i/(2\kappa)$: stationary $E(p - \hat p)^2$ (Brownian
      and jumps).
    - `beta` $= (R/\eta)(\sqrt{1 + Q/R} - 1)$, `mean_reversion_rate`
      $\hat\kappa = \eta\sqrt{1 + Q/R}$, `mean_variance` $= \Sigma_o/(2\hat\kappa)$:
      stationary $\mathrm{Var}\,\hat p$ under the common noise.
    - `variance`: their sum, the stationary $\mathrm{Var}\,p$.
    - `cost_rate`: the long-run cost per unit time of the random part,
      $\Sigma_i\alpha + \Sigma_o\beta$ (what $-\dot\delta$ tends to, beyond tracking).
    """

    alpha: Array
    deviation_gain: Array
    reversion_rate: Array
    deviation_variance: Array
    beta: Array
    mean_reversion_rate: Array
    mean_variance: Array
    variance: Array
    cost_rate: Array


def stationary(game: TrackingGame) -> StationaryValues:
    """The stationary closed forms of [`StationaryValues`][mftg_jax.tracking.StationaryValues].

    **Arguments:** `game`: a decoupled [`TrackingGame`][mftg_jax.tracking.TrackingGame]
    (`cross` zero); the profiles and the target do not enter the variances.

    **Returns:** a [`StationaryValues`][mftg_jax.tracking.StationaryValues].
    """
    if game.interacting:
        raise ValueError("the stationary closed forms are for decoupled games (cross = 0)")
    c, nz, eta = game.costs, game.noise, game.eta
    sq = jnp.sqrt(1 + c.q / c.r)
    alpha = c.r / eta * (sq - 1)
    kappa = eta * sq
    sqm = jnp.sqrt(1 + c.Q / c.R)
    beta = c.R / eta * (sqm - 1)
    kappa_h = eta * sqm
    dev = nz.idiosyncratic_variance_rate / (2 * kappa)
    mean = nz.common_variance_rate / (2 * kappa_h)
    return StationaryValues(
        alpha=alpha,
        deviation_gain=sq - 1,
        reversion_rate=kappa,
        deviation_variance=dev,
        beta=beta,
        mean_reversion_rate=kappa_h,
        mean_variance=mean,
        variance=dev + mean,
        cost_rate=nz.idiosyncratic_variance_rate * alpha + nz.common_variance_rate * beta,
    )
