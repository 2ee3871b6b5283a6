"""Reproduction of the slides' simulation results: Scenarios 1-3, the misprinted Riccati
boundary condition, the costs table, the stationary-vs-Cournot study and the figures.
"""

from ._costs import (
    cost_instants as cost_instants,
    costs as costs,
    NUM_COST_INSTANTS as NUM_COST_INSTANTS,
)
from ._figures import (
    plot_equilibrium as plot_equilibrium,
    plot_scenario_1 as plot_scenario_1,
    plot_stationary_comparison as plot_stationary_comparison,
    save_figure as save_figure,
)
from ._misprint import (
    MisprintedRiccatiSolution as MisprintedRiccatiSolution,
    solve_misprinted_riccati as solve_misprinted_riccati,
)
from ._runs import (
    equilibrium_run as equilibrium_run,
    EquilibriumRun as EquilibriumRun,
    monte_carlo_costs as monte_carlo_costs,
    MonteCarloRun as MonteCarloRun,
    relative_difference as relative_difference,
    run_scenario as run_scenario,
    run_scenario_1 as run_scenario_1,
    run_scenario_2 as run_scenario_2,
    run_scenario_3 as run_scenario_3,
    Scenario2Run as Scenario2Run,
    Scenario3Run as Scenario3Run,
    SLIDES_COSTS as SLIDES_COSTS,
    UncontrolledRun as UncontrolledRun,
)
from ._scenarios import scenario_game as scenario_game
from ._stationary_comparison import (
    default_parameter_sets as default_parameter_sets,
    prices_against_producers as prices_against_producers,
    stationary_vs_cournot as stationary_vs_cournot,
    symmetric_game as symmetric_game,
)
from ._uncontrolled import (
    demand_profile as demand_profile,
    SCENARIO1_SPEEDS as SCENARIO1_SPEEDS,
    scenario_1 as scenario_1,
    UncontrolledPrice as UncontrolledPrice,
)
