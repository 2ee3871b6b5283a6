"""The general linear-quadratic mean-field-type game with regime switching (docs/general_lq.md).

`mj.lq.solve(game)` integrates the per-regime Riccati system; `mj.lq.nash_gap`, `policy_cost`,
`dp_equilibrium` and `brute_force_best_response` certify it by independent routes.
"""

from ._brute_force import (
    brute_force_best_response as brute_force_best_response,
    BruteForceResult as BruteForceResult,
)
from ._certificate import nash_gap as nash_gap, policy_cost as policy_cost
from ._config import (
    game_from_dict as game_from_dict,
    game_to_toml as game_to_toml,
    load_game as load_game,
)
from ._dp import dp_equilibrium as dp_equilibrium, DPEquilibrium as DPEquilibrium
from ._game import (
    Affine as Affine,
    Coefficients as Coefficients,
    CostNoise as CostNoise,
    Dynamics as Dynamics,
    Jumps as Jumps,
    LQGame as LQGame,
    RunningCost as RunningCost,
    TerminalCost as TerminalCost,
    zero_coefficients as zero_coefficients,
)
from ._riccati import (
    Gains as Gains,
    RiccatiSolution as RiccatiSolution,
    RiccatiValues as RiccatiValues,
    solve as solve,
)
from ._simulation import (
    LQEnsemble as LQEnsemble,
    LQEnsembleResult as LQEnsembleResult,
    LQPaths as LQPaths,
    simulate as simulate,
    simulate_paths as simulate_paths,
)
from ._vector_certificate import (
    MatrixCertificate as MatrixCertificate,
    vector_nash_gap as vector_nash_gap,
)
from ._vector_game import (
    vector_dynamics as vector_dynamics,
    vector_game_from_scalar as vector_game_from_scalar,
    VectorAffine as VectorAffine,
    VectorDynamics as VectorDynamics,
    VectorJumps as VectorJumps,
    VectorLQGame as VectorLQGame,
    VectorRunningCost as VectorRunningCost,
    VectorTerminalCost as VectorTerminalCost,
    zero_vector_affine as zero_vector_affine,
)
from ._vector_riccati import (
    solve_vector as solve_vector,
    VectorGains as VectorGains,
    VectorRiccatiSolution as VectorRiccatiSolution,
    VectorValues as VectorValues,
)
from ._vector_simulation import (
    simulate_vector as simulate_vector,
    VectorMonteCarlo as VectorMonteCarlo,
)
