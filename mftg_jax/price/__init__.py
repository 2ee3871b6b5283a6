"""The producers' price game: Cournot producers, sticky price with jumps and common noise
(docs/model.md; slides, "Electricity price dynamics").

`mj.price.solve_riccati(game)` gives the equilibrium; `FeedbackPolicy` and
`solve_expectations` (mean path, variances, expected costs) what it implies; `nash_gap`
certifies it; `simulate` runs its Monte Carlo ensemble on the shared engine; `to_lq` lowers it
to the general game of `mj.lq`.
"""

from ._certificate import nash_gap as nash_gap
from ._config import (
    game_from_dict as game_from_dict,
    game_to_toml as game_to_toml,
    load_game as load_game,
)
from ._ensemble import EnsembleResult as EnsembleResult, simulate as simulate
from ._expectations import (
    cost_instants as cost_instants,
    cost_integrals as cost_integrals,
    Expectations as Expectations,
    running_cost as running_cost,
    solve_expectations as solve_expectations,
)
from ._game import (
    DemandIntercept as DemandIntercept,
    Market as Market,
    Noise as Noise,
    PriceGame as PriceGame,
    Producers as Producers,
)
from ._initial import InitialLaw as InitialLaw
from ._lowering import (
    from_lq as from_lq,
    revenue_from_lq_cost as revenue_from_lq_cost,
    to_lq as to_lq,
)
from ._periodic import gamma_operator as gamma_operator, periodic_gamma as periodic_gamma
from ._policy import FeedbackPolicy as FeedbackPolicy
from ._riccati import (
    AbstractRiccatiSolution as AbstractRiccatiSolution,
    gains as gains,
    riccati_vector_field as riccati_vector_field,
    RiccatiSolution as RiccatiSolution,
    RiccatiValues as RiccatiValues,
    solve_riccati as solve_riccati,
    stack_games as stack_games,
    terminal_values as terminal_values,
)
from ._riccati_batch import StackedRiccatiSolution as StackedRiccatiSolution
from ._simulation import (
    PriceEnsemble as PriceEnsemble,
    simulate_paths as simulate_paths,
    SimulatedPaths as SimulatedPaths,
)
from ._stationary import (
    cournot_price as cournot_price,
    stationary_price as stationary_price,
    stationary_values as stationary_values,
    StationaryValues as StationaryValues,
)
from ._stiff import structured_solver as structured_solver
