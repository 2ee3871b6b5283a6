"""The slides' simulation scenarios as ready-made games (docs/model.md).

- Scenario 2: deterministic with control, $t_1 = 1.5$, $p_0 = \\hat p_0 = 50$,
  $c = (1, 5, 10)$, $\\lambda_i = 0.1$, $\\eta = 0.5$, $a = 1$, $r_i = \\bar r_i = (1, 2, 3)$,
  $q = 1$.
- Scenario 3: Scenario 2 with idiosyncratic noise $\\sigma = 1$ and idiosyncratic jumps of
  intensity $4/3$ per unit time (two jumps expected on $[0, 1.5]$, as in the slides'
  "Brownian motion + two jumps") with sizes $N(0, 5^2)$.

Scenario 1 (no control, demand profile) is not a price game; see the uncontrolled-price model.
"""

from .._noise._jumps import CompoundPoisson, NormalJumps
from ..price import Market, Noise, PriceGame, Producers

SCENARIO3_JUMP_INTENSITY = 4.0 / 3.0
SCENARIO3_JUMP_STD = 5.0


def scenario_game(number: int) -> PriceGame:
    """The price game of the slides' Scenario `number` (2 or 3; module docstring).

    **Raises:** `ValueError` for any other number.
    """
    if number not in (2, 3):
        raise ValueError(
            f"scenario must be 2 or 3 for a price game, got {number} "
            "(Scenario 1 is the uncontrolled price)"
        )
    market = Market(eta=0.5, a=1.0, q=1.0, t0=0.0, t1=1.5, p0=50.0, phat0=50.0)
    producers = Producers(
        c=[1.0, 5.0, 10.0], r=[1.0, 2.0, 3.0], rbar=[1.0, 2.0, 3.0], lam=[0.1, 0.1, 0.1]
    )
    if number == 2:
        return PriceGame(market, producers)
    noise = Noise(
        sigma=1.0,
        jumps=CompoundPoisson(SCENARIO3_JUMP_INTENSITY, NormalJumps(0.0, SCENARIO3_JUMP_STD)),
    )
    return PriceGame(market, producers, noise)
