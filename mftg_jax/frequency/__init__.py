"""Frequency control on a power network (docs/frequency.md; slides, "Generation-transmission-
distribution" and "Closed-loop frequency control").

The swing dynamics of generator, frequency-responsive and passive buses
(docs/frequency_dynamics.md) on standard test cases read from MATPOWER files, events, stochastic
loads and N-1 contingencies under `jax.vmap`; primary droop, secondary control that reaches the
economic dispatch (distributed averaging integral, gather-and-broadcast, population dynamics),
the feedback of the linearised network as a vector-state LQ game (docs/vector_lq.md); the
economic dispatch with its KKT certificate and the closed loop's steady-state certificate.
"""

from ._algebraic import (
    equilibrium as equilibrium,
    kron_reduce as kron_reduce,
    KronReduction as KronReduction,
    solve_passive as solve_passive,
    solve_passive_unrolled as solve_passive_unrolled,
)
from ._andes import andes_tds as andes_tds
from ._cases import (
    CASES as CASES,
    generator_buses as generator_buses,
    load_case as load_case,
    read_matpower as read_matpower,
)
from ._config import (
    build_controller as build_controller,
    config_from_dict as config_from_dict,
    CONTROLLERS as CONTROLLERS,
    FrequencyConfig as FrequencyConfig,
    load_config as load_config,
)
from ._contingency import (
    coi_nadir as coi_nadir,
    Contingencies as Contingencies,
    line_contingencies as line_contingencies,
    simulate_contingencies as simulate_contingencies,
)
from ._controller import (
    AbstractController as AbstractController,
    Droop as Droop,
    NoControl as NoControl,
)
from ._dynamics import (
    coi_frequency as coi_frequency,
    simulate as simulate,
    simulate_checked as simulate_checked,
    Trajectory as Trajectory,
)
from ._economic import (
    DispatchProblem as DispatchProblem,
    economic_dispatch as economic_dispatch,
    EconomicDispatch as EconomicDispatch,
    kkt_certificate as kkt_certificate,
    KKTCertificate as KKTCertificate,
)
from ._events import (
    Event as Event,
    generator_trip as generator_trip,
    line_trip as line_trip,
    load_step as load_step,
)
from ._loads import (
    load_noise as load_noise,
    LoadPath as LoadPath,
    StochasticLoads as StochasticLoads,
)
from ._lq import (
    linearise as linearise,
    LinearNetwork as LinearNetwork,
    lq_controller as lq_controller,
    LQController as LQController,
    LQDesign as LQDesign,
    network_game as network_game,
)
from ._metrics import (
    frequency_metrics as frequency_metrics,
    FrequencyMetrics as FrequencyMetrics,
    load_scenarios as load_scenarios,
    monte_carlo as monte_carlo,
    MonteCarloMetrics as MonteCarloMetrics,
)
from ._network import islands as islands, Network as Network
from ._population import (
    complete_communication as complete_communication,
    PopulationDispatch as PopulationDispatch,
)
from ._secondary import (
    best_response as best_response,
    DistributedAveragingIntegral as DistributedAveragingIntegral,
    GatherBroadcast as GatherBroadcast,
    ring_communication as ring_communication,
)
from ._steady import (
    closed_loop as closed_loop,
    initial_angles as initial_angles,
    steady_state as steady_state,
    SteadyStateCertificate as SteadyStateCertificate,
)
