"""mftg_jax: mean-field-type games of electricity markets in JAX."""

from ._baselines import AR1 as AR1, fit_ar1 as fit_ar1
from ._calibrate import (
    calibrate as calibrate,
    CalibrationResult as CalibrationResult,
    CalibrationWarning as CalibrationWarning,
    PriceCalibrator as PriceCalibrator,
)
from ._calibration_plots import plot_calibration as plot_calibration
from ._calibration_report import calibration_report as calibration_report
from ._certificate import nash_gap as nash_gap, NashCertificate as NashCertificate
from ._config import (
    ConfigError as ConfigError,
    game_from_dict as game_from_dict,
    game_to_toml as game_to_toml,
    load_game as load_game,
)
from ._costs import (
    cost_instants as cost_instants,
    cost_integrals as cost_integrals,
    costs as costs,
    ExpectedCostPath as ExpectedCostPath,
    running_cost as running_cost,
    solve_expected_costs as solve_expected_costs,
)
from ._data import (
    load_prices as load_prices,
    PriceSeries as PriceSeries,
    Split as Split,
    split_series as split_series,
)
from ._ensemble import simulate_paths as simulate_paths, SimulatedPaths as SimulatedPaths
from ._game import (
    DemandIntercept as DemandIntercept,
    Market as Market,
    Noise as Noise,
    PriceGame as PriceGame,
    Producers as Producers,
)
from ._general_certificate import (
    brute_force_best_response as brute_force_best_response,
    BruteForceResult as BruteForceResult,
    general_nash_gap as general_nash_gap,
    GeneralNashCertificate as GeneralNashCertificate,
    policy_cost as policy_cost,
)
from ._general_config import (
    general_game_from_dict as general_game_from_dict,
    general_game_to_toml as general_game_to_toml,
    load_general_game as load_general_game,
)
from ._general_dp import dp_equilibrium as dp_equilibrium, DPEquilibrium as DPEquilibrium
from ._general_game import (
    Affine as Affine,
    Coefficients as Coefficients,
    CostNoise as CostNoise,
    Dynamics as Dynamics,
    general_from_price_game as general_from_price_game,
    GeneralGame as GeneralGame,
    Jumps as Jumps,
    RunningCost as RunningCost,
    TerminalCost as TerminalCost,
    zero_coefficients as zero_coefficients,
)
from ._general_riccati import (
    GeneralGains as GeneralGains,
    GeneralRiccatiSolution as GeneralRiccatiSolution,
    GeneralRiccatiValues as GeneralRiccatiValues,
    solve_general as solve_general,
)
from ._general_simulate import (
    GeneralSimulation as GeneralSimulation,
    simulate_general as simulate_general,
)
from ._jumps import (
    AbstractJumpSize as AbstractJumpSize,
    CompoundPoisson as CompoundPoisson,
    ExponentialJumps as ExponentialJumps,
    FixedJumps as FixedJumps,
    no_jumps as no_jumps,
    NormalJumps as NormalJumps,
)
from ._kalman import (
    FilterOutput as FilterOutput,
    kalman_filter as kalman_filter,
    negative_log_likelihood as negative_log_likelihood,
)
from ._mean_path import MeanPath as MeanPath, solve_mean_path as solve_mean_path
from ._misprint import (
    MisprintedRiccatiSolution as MisprintedRiccatiSolution,
    solve_misprinted_riccati as solve_misprinted_riccati,
)
from ._moments import (
    calibrate_moments as calibrate_moments,
    MomentResult as MomentResult,
    price_moments as price_moments,
)
from ._noise_paths import GridLevyPath as GridLevyPath, LevyIncrements as LevyIncrements
from ._parametrisation import Parametrisation as Parametrisation
from ._policy import FeedbackPolicy as FeedbackPolicy
from ._price_model import (
    game_from_identified as game_from_identified,
    LinearPriceModel as LinearPriceModel,
    price_model_from_game as price_model_from_game,
    seasonal_transfer as seasonal_transfer,
    StructuralDefaults as StructuralDefaults,
)
from ._riccati import (
    AbstractRiccatiSolution as AbstractRiccatiSolution,
    riccati_at as riccati_at,
    RiccatiExplosionError as RiccatiExplosionError,
    RiccatiSolution as RiccatiSolution,
    RiccatiValues as RiccatiValues,
    solve_riccati as solve_riccati,
    stack_games as stack_games,
)
from ._scenario_figures import (
    plot_equilibrium as plot_equilibrium,
    plot_scenario_1 as plot_scenario_1,
    plot_stationary_comparison as plot_stationary_comparison,
    save_figure as save_figure,
)
from ._scenario_runs import (
    equilibrium_run as equilibrium_run,
    EquilibriumRun as EquilibriumRun,
    monte_carlo_costs as monte_carlo_costs,
    MonteCarloRun as MonteCarloRun,
    relative_difference as relative_difference,
    run_scenario_1 as run_scenario_1,
    run_scenario_2 as run_scenario_2,
    run_scenario_3 as run_scenario_3,
    Scenario2Run as Scenario2Run,
    Scenario3Run as Scenario3Run,
    SLIDES_COSTS as SLIDES_COSTS,
    UncontrolledRun as UncontrolledRun,
)
from ._scenarios import scenario_game as scenario_game
from ._sim_run import EnsembleResult as EnsembleResult, simulate as simulate
from ._stationary import (
    cournot_price as cournot_price,
    stationary_price as stationary_price,
    stationary_values as stationary_values,
    StationaryValues as StationaryValues,
)
from ._stationary_comparison import (
    default_parameter_sets as default_parameter_sets,
    prices_against_producers as prices_against_producers,
    stationary_vs_cournot as stationary_vs_cournot,
    symmetric_game as symmetric_game,
)
from ._statistics import Moments as Moments
from ._synthetic import sample_prices as sample_prices
from ._uncontrolled import (
    demand_profile as demand_profile,
    SCENARIO1_SPEEDS as SCENARIO1_SPEEDS,
    scenario_1 as scenario_1,
    UncontrolledPrice as UncontrolledPrice,
)

__version__ = "0.1.0"
