r"""Stationary feedback price and the one-shot Cournot price.

Stationary Riccati values ($\dot\beta = \dot\gamma = 0$, the attracting branch): with
$K = \sum_j k_j$ the $\beta$-equations decouple into scalar quadratics
$\eta^2\beta_i^2 + R_i(\lambda_i + 2\eta + 2\eta K)\beta_i - 1 = 0$ whose positive root is
taken, and $K$ solves the scalar fixed point $K = \sum_j (1-\eta\beta_j(K))/R_j$ (a Newton
root solve). Given $\beta$, the $\gamma$-equations are linear:
$\gamma_i = (\eta\beta_i(a+M) - c_i/R_i)/(\lambda_i + \eta + \eta K + \eta^2\beta_i/R_i)$ with
$M = \sum_j m_j$ solved in closed form. The stationary alpha is $0$.

$$\bar p = \frac{a + \sum_j m_j}{1 + \sum_j k_j}, \qquad
  p^C = \frac{a + \sum_j c_j/(1+R_j)}{1 + \sum_j 1/(1+R_j)}$$

(slides, "Interior static vs stationary feedback equilibrium price"; docs/model.md.)
For a seasonal intercept, $a$ is its mean level.
"""

from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import optimistix as optx

from .._custom_types import PerProducer, Scalar
from .._validation import is_concrete
from ._game import PriceGame


class StationaryValues(NamedTuple):
    """Stationary Riccati values and the stationary feedback price."""

    beta: PerProducer
    gamma: PerProducer
    k: PerProducer
    m: PerProducer
    price: Scalar


def _beta_of(K, game: PriceGame):
    eta = game.market.eta
    pr = game.producers
    b = pr.R * (pr.lam + 2 * eta + 2 * eta * K)
    # Positive root of eta^2 x^2 + b x - 1 in the cancellation-free form.
    return 2 / (b + jnp.sqrt(b**2 + 4 * eta**2))


def _k_residual(K, game: PriceGame):
    eta = game.market.eta
    return jnp.sum((1 - eta * _beta_of(K, game)) / game.producers.R) - K


@eqx.filter_jit
def _stationary(game: PriceGame, rtol: float, atol: float):
    eta = game.market.eta
    pr = game.producers
    a = game.market.a.mean
    K0 = jnp.sum(1 / pr.R)
    sol = optx.root_find(_k_residual, optx.Newton(rtol=rtol, atol=atol), K0, args=game, throw=False)
    K = sol.value
    beta = _beta_of(K, game)
    k = (1 - eta * beta) / pr.R
    denom = pr.lam + eta + eta * K + eta**2 * beta / pr.R
    g = eta * beta / denom
    h = (eta * beta * a - pr.c / pr.R) / denom
    M = (jnp.sum(pr.c / pr.R) + eta * jnp.sum(h / pr.R)) / (1 - eta * jnp.sum(g / pr.R))
    gamma = g * M + h
    m = (pr.c + eta * gamma) / pr.R
    price = (a + jnp.sum(m)) / (1 + jnp.sum(k))
    ok = (sol.result == optx.RESULTS.successful) & jnp.isfinite(price)
    return StationaryValues(beta, gamma, k, m, price), ok


def stationary_values(game: PriceGame, *, rtol: float = 1e-12, atol: float = 1e-12):
    """Stationary Riccati values $(\\beta, \\gamma)$, gains $(k, m)$ and price $\\bar p$.

    Found by a root solve (module docstring), not by integrating a long horizon.

    **Arguments:**

    - `game`: a [`PriceGame`][] (its horizon and initial price are not used).
    - `rtol`, `atol`: tolerances of the Newton solve for $K = \\sum_j k_j$.

    **Returns:** a [`StationaryValues`][].
    """
    values, ok = _stationary(game, rtol, atol)
    if is_concrete(ok) and not bool(jnp.all(ok)):
        raise ValueError(
            "stationary Riccati values not found: the fixed point K = sum_j k_j did not "
            f"converge for eta = {game.market.eta}, R = {game.producers.R}"
        )
    return values


def stationary_price(game: PriceGame) -> Scalar:
    r"""$\bar p = (a + \sum_j m_j)/(1 + \sum_j k_j)$ at the stationary Riccati values."""
    return stationary_values(game).price


def cournot_price(game: PriceGame) -> Scalar:
    r"""One-shot Cournot price $p^C = (a + \sum_j c_j/(1+R_j))/(1 + \sum_j 1/(1+R_j))$.

    Inverse demand $p = a - D$, producer cost $c_i u + R_i u^2/2$; $a$ is the intercept's
    mean level.
    """
    pr = game.producers
    w = 1 / (1 + pr.R)
    return (game.market.a.mean + jnp.sum(pr.c * w)) / (1 + jnp.sum(w))
