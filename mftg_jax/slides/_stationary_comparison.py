r"""The stationary feedback equilibrium price against the one-shot Cournot price.

$$\bar p = \frac{a + \sum_j m_j}{1 + \sum_j k_j},\qquad
  p^C = \frac{a + \sum_j c_j/(1+R_j)}{1 + \sum_j 1/(1+R_j)}$$

with $k_j = (1-\eta\bar\beta_j)/R_j$, $m_j = (c_j+\eta\bar\gamma_j)/R_j$ at the stationary
Riccati values (slides, "Interior static vs stationary feedback equilibrium price"). The
dynamic game's price differs from the static one through the sticky-price adjustment
$\eta$ and the discount rates $\lambda_i$; this module tabulates both over parameter sets
and over the number of producers.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..price import cournot_price, Market, PriceGame, Producers, stationary_price
from ._scenarios import scenario_game


def symmetric_game(
    n: int, *, c: float, r: float, rbar: float, lam: float, eta: float, a: float
) -> PriceGame:
    """A game of `n` identical producers (horizon and initial price play no role here)."""
    ones = np.ones(n)
    market = Market(eta=eta, a=a, q=0.0, t0=0.0, t1=1.0, p0=a)
    return PriceGame(market, Producers(c=c * ones, r=r * ones, rbar=rbar * ones, lam=lam * ones))


def _with_market(game: PriceGame, **changes) -> PriceGame:
    mk = game.market
    fields = dict(eta=mk.eta, a=mk.a, q=mk.q, t0=mk.t0, t1=mk.t1, p0=mk.p0, phat0=mk.phat0)
    fields.update(changes)
    return PriceGame(Market(**fields), game.producers, game.noise)


def _with_producers(game: PriceGame, **changes) -> PriceGame:
    pr = game.producers
    fields = dict(c=pr.c, r=pr.r, rbar=pr.rbar, lam=pr.lam)
    fields.update({k: np.broadcast_to(v, pr.c.shape) for k, v in changes.items()})
    return PriceGame(game.market, Producers(**fields), game.noise)


def default_parameter_sets() -> dict[str, PriceGame]:
    """Scenario 2 and variations of its adjustment speed, discounting and costs."""
    s2 = scenario_game(2)
    return {
        "Scenario 2 (eta=0.5, lam=0.1)": s2,
        "Scenario 2, eta=0.1 (slow price)": _with_market(s2, eta=0.1),
        "Scenario 2, eta=5 (fast price)": _with_market(s2, eta=5.0),
        "Scenario 2, lam=0 (no discounting)": _with_producers(s2, lam=0.0),
        "Scenario 2, lam=2 (impatient)": _with_producers(s2, lam=2.0),
        "Scenario 2, a=100 (high demand)": _with_market(s2, a=100.0),
        "10 identical producers (c=5, r=rbar=2, a=10)": symmetric_game(
            10, c=5.0, r=2.0, rbar=2.0, lam=0.1, eta=0.5, a=10.0
        ),
    }


def stationary_vs_cournot(games: Mapping[str, PriceGame] | None = None) -> pd.DataFrame:
    r"""A table of $\bar p$ and $p^C$ over parameter sets.

    **Arguments:**

    - `games`: named games (default: [`default_parameter_sets`][]).

    **Returns:** a `pandas.DataFrame` indexed by name with columns `n`, `eta`, `stationary`,
    `cournot`, `difference` $= \bar p - p^C$ and `relative` $= \bar p/p^C - 1$.
    """
    games = default_parameter_sets() if games is None else games
    rows = []
    for name, game in games.items():
        pbar = float(stationary_price(game))
        pc = float(cournot_price(game))
        rows.append(
            dict(
                name=name,
                n=game.n,
                eta=float(game.market.eta),
                stationary=pbar,
                cournot=pc,
                difference=pbar - pc,
                relative=pbar / pc - 1,
            )
        )
    return pd.DataFrame(rows).set_index("name")


def prices_against_producers(
    numbers: Sequence[int] = (1, 2, 3, 5, 10, 20, 50, 100),
    *,
    c: float = 5.0,
    r: float = 2.0,
    rbar: float = 2.0,
    lam: float = 0.1,
    eta: float = 0.5,
    a: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""$\bar p$ and $p^C$ for $n$ identical producers, for each $n$ in `numbers`.

    **Returns:** `(stationary, cournot)`, arrays of shape `(len(numbers),)`.
    """
    kw = dict(c=c, r=r, rbar=rbar, lam=lam, eta=eta, a=a)
    games = [symmetric_game(n, **kw) for n in numbers]
    return (
        np.array([float(stationary_price(g)) for g in games]),
        np.array([float(cournot_price(g)) for g in games]),
    )
