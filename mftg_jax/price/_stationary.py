r"""Stationary feedback price and the one-shot Cournot price.

Stationary Riccati values ($\dot\beta = \dot\gamma = 0$, the attracting branch): with
$K = \sum_j k_j$ the $\beta$-equations decouple into scalar quadratics
$\eta^2\beta_i^2 + R_i(\lambda_i + 2\eta + 2\eta K)\beta_i - 1 = 0$. In the unknown
$x_i = R_ik_i = 1 - \eta\beta_i \in (0, 1)$ the quadratic reads $x^2 - (2+s_i)x + s_i = 0$,
$s_i = R_i(\lambda_i/\eta + 2 + 2K)$, whose root in $(0, 1)$ is taken in the
cancellation-free form

$$k_i(K) = \frac{x_i}{R_i} = \frac{2\,(\lambda_i/\eta + 2 + 2K)}{2 + s_i + \sqrt{4 + s_i^2}},$$

and $K$ solves $K = \sum_j k_j(K)$. Each $k_j$ is increasing, concave and below $1/R_j$, so
$g(K) = \sum_j k_j(K) - K$ is concave with $g(0) > 0 > g(\sum_j 1/R_j)$: there is exactly
one root, in $[\sum_j k_j(0), \sum_j 1/R_j]$, for every $\eta > 0$, $R > 0$, $\lambda \ge 0$:
the stationary equilibrium exists wherever the game is valid. The root is bracketed and
found by bisection (optimistix) on $\log K$ of the sign-preserving residual $g(K)/P(K)$,
where $g = P - N$ is written as the sum $P$ of positive terms minus $N =
Ks_{j^*}/(2 + \sqrt{4+s_{j^*}^2})$ through the identity
$k_{j}(K) - K = 2(\lambda_j/\eta + 2)/(2 + s_j + \sqrt{4+s_j^2}) - Ks_j/(2 + \sqrt{4+s_j^2})$
for the producer $j^*$ of smallest $s_j$. Written as $\sum_j k_j - K$ the residual
subtracts two nearly equal numbers when $R$ is tiny ($k_j \approx K$ for a single
producer): its rounding error, of order $\epsilon K$, then exceeds any tolerance a solver
can be given, and the root moves by $\epsilon/x$ relative.

Given $\beta$, the $\gamma$-equations are linear, $L\gamma = \eta\beta(a + \ldots)$ with
$L_{ij} = (\lambda_i + \eta + \eta K)\delta_{ij} - \eta^2\beta_i/R_j\,(1 - \delta_{ij})$,
solved in closed form (Sherman-Morrison on $D_i = \lambda_i + \eta + \eta K
+ \eta^2\beta_i/R_i$):
$\gamma_i = (\eta\beta_i(a+M) - c_i/R_i)/D_i$ with $M = \sum_j m_j$ and the denominator
$1 - \eta^2\sum_j\beta_j/(R_jD_j) = 1 - n + \sum_j(\lambda_j + \eta + \eta K)/D_j$ written
without cancellation; likewise the gain
$m_i = (c_i + \eta\gamma_i)/R_i = (c_i(\lambda_i + \eta + \eta K - \eta k_i)
+ \eta^2\beta_i(a + M))/(R_iD_i)$, where $c_i$ and $\eta\gamma_i$ nearly cancel when $R$ is
tiny. The stationary alpha is $0$.

$$\bar p = \frac{a + \sum_j m_j}{1 + \sum_j k_j}, \qquad
  p^C = \frac{a + \sum_j c_j/(1+R_j)}{1 + \sum_j 1/(1+R_j)}$$

(slides, "Interior static vs stationary feedback equilibrium price"; docs/model.md.)
For a seasonal intercept, $a$ is its mean level.
"""

from typing import NamedTuple

import jax.numpy as jnp
import optimistix as optx

from .._custom_types import PerProducer, Scalar
from .._programs import persistent_jit
from .._validation import is_concrete
from ._game import PriceGame


class StationaryValues(NamedTuple):
    """Stationary Riccati values and the stationary feedback price."""

    beta: PerProducer
    gamma: PerProducer
    k: PerProducer
    m: PerProducer
    price: Scalar


def _gains_of(K, game: PriceGame):
    """$(k_i(K), \\eta\\beta_i(K))$ (module docstring), both cancellation-free for any
    size of $R_i$: $1 - x = (2 + 4/(s + \\sqrt{4+s^2}))/(2 + s + \\sqrt{4+s^2})$."""
    eta = game.market.eta
    pr = game.producers
    c = pr.lam / eta + 2 + 2 * K
    s = pr.R * c
    q = jnp.sqrt(4 + s**2)
    return 2 * c / (2 + s + q), (2 + 4 / (s + q)) / (2 + s + q)


def _residual(log_K, game: PriceGame):
    """$g(K)/P(K)$ (module docstring): the sign of $\\sum_j k_j(K) - K$, well scaled."""
    K = jnp.exp(log_K)
    eta = game.market.eta
    pr = game.producers
    c = pr.lam / eta + 2 + 2 * K
    s = pr.R * c
    q = jnp.sqrt(4 + s**2)
    k = 2 * c / (2 + s + q)
    own = jnp.arange(s.shape[0]) == jnp.argmin(s)
    # k_j - K = 2(lam_j/eta + 2)/(2 + s + q) - K s/(2 + q), an identity without the
    # cancellation of k_j against K (k_j ~ K when s_j is small).
    positive = jnp.sum(jnp.where(own, 2 * (c - 2 * K) / (2 + s + q), k))
    negative = jnp.sum(jnp.where(own, K * s / (2 + q), 0.0))
    return 1 - negative / positive


@persistent_jit
def _stationary(game: PriceGame, rtol: float, atol: float):
    eta = game.market.eta
    pr = game.producers
    a = game.market.a.mean
    # The root lies in [sum_j k_j(0), sum_j 1/R_j] (k_j increasing and below 1/R_j).
    lo = jnp.log(jnp.sum(_gains_of(jnp.zeros_like(eta), game)[0]))
    hi = jnp.log(jnp.sum(1 / pr.R))
    # Tolerances no finer than the working precision allows (float32 stops at ~1e-6).
    floor = 16 * float(jnp.finfo(jnp.result_type(lo)).eps)
    rtol, atol = max(rtol, floor), max(atol, floor)
    sol = optx.root_find(
        _residual,
        optx.Bisection(rtol=rtol, atol=atol, flip=True),
        0.5 * (lo + hi),
        args=game,
        options={"lower": lo, "upper": hi},
        throw=False,
    )
    K = jnp.exp(sol.value)
    k, eta_beta = _gains_of(K, game)
    beta = eta_beta / eta
    e = pr.lam + eta + eta * K
    denom = e + eta**2 * beta / pr.R
    one_minus = 1 - pr.R.shape[0] + jnp.sum(e / denom)
    # m_i = (c_i + eta gamma_i)/R_i with the cancellation of c_i against eta gamma_i done
    # by hand (module docstring); M = sum_j m_j solves the same equations summed.
    RD = pr.R * e + eta * eta_beta
    M = jnp.sum((pr.c * (e - eta * k) + eta * eta_beta * a) / RD) / one_minus
    m = (pr.c * (e - eta * k) + eta * eta_beta * (a + M)) / RD
    gamma = (eta * beta * (a + M) - pr.c / pr.R) / denom
    price = (a + jnp.sum(m)) / (1 + jnp.sum(k))
    ok = (sol.result == optx.RESULTS.successful) & jnp.isfinite(price)
    return StationaryValues(beta, gamma, k, m, price), ok


def stationary_values(game: PriceGame, *, rtol: float = 1e-12, atol: float = 1e-12):
    """Stationary Riccati values $(\\beta, \\gamma)$, gains $(k, m)$ and price $\\bar p$.

    Found by a root solve (module docstring), not by integrating a long horizon.

    **Arguments:**

    - `game`: a [`PriceGame`][] (its horizon and initial price are not used).
    - `rtol`, `atol`: tolerances of the bisection in $\\log K$ (and of its residual); never
      below 16 ulp of the working precision (so float32 games solve too).

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
