"""The regulated-price (tracking) mean-field-type game of the slides, equation (11).

Issuers steer the prices of their tokens towards a seasonal target inside a band
(docs/tracking.md): `solve(game)` integrates the Riccati system, `nash_gap` certifies it on
the shared best-response solver, `stationary` gives the closed forms, `solve_moments` the exact
moments, `simulate` the Monte Carlo on the shared engine, `to_lq` the lowering to
[`mftg_jax.lq`][], and `continue_market` a real market price continued with and without the
regulating strategy.
"""

from ._certificate import nash_gap as nash_gap
from ._config import (
    game_from_dict as game_from_dict,
    load_game as load_game,
    simulation_settings as simulation_settings,
)
from ._continuation import (
    band_from_history as band_from_history,
    continue_market as continue_market,
    default_costs as default_costs,
    game_from_fit as game_from_fit,
    MarketContinuation as MarketContinuation,
    plot_continuation as plot_continuation,
    uncontrolled_moments as uncontrolled_moments,
)
from ._ensemble import (
    simulate as simulate,
    TrackingEnsemble as TrackingEnsemble,
    TrackPaths as TrackPaths,
)
from ._lowering import lq_constant as lq_constant, to_lq as to_lq
from ._model import (
    Band as Band,
    Costs as Costs,
    Fourier as Fourier,
    Noise as Noise,
    slides_target as slides_target,
    target_range as target_range,
    TrackingGame as TrackingGame,
)
from ._moments import (
    PriceMoments as PriceMoments,
    solve_moments as solve_moments,
    stationary as stationary,
    StationaryValues as StationaryValues,
)
from ._riccati import (
    solve as solve,
    TrackingSolution as TrackingSolution,
    TrackingValues as TrackingValues,
)
