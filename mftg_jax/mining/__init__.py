"""Wattcoin mining (docs/mining.md): the branch-choice game under the longest-chain rule, forks,
and deviations from the longest chain (selfish mining)."""

from ._config import config_from_dict as config_from_dict, load_config as load_config
from ._dinkelbach import (
    optimal_break_even as optimal_break_even,
    optimal_deviation as optimal_deviation,
    OptimalDeviation as OptimalDeviation,
)
from ._equilibrium import (
    equilibria as equilibria,
    Equilibrium as Equilibrium,
    exploitability as exploitability,
)
from ._eyal_sirer import (
    eyal_sirer_break_even as eyal_sirer_break_even,
    eyal_sirer_revenue as eyal_sirer_revenue,
    RevenueEstimate as RevenueEstimate,
    simulate_eyal_sirer as simulate_eyal_sirer,
)
from ._forks import ForkStatistics as ForkStatistics, simulate_forks as simulate_forks
from ._game import BranchGame as BranchGame
from ._mdp import (
    eyal_sirer_policy as eyal_sirer_policy,
    honest_policy as honest_policy,
    SelfishMiningMDP as SelfishMiningMDP,
)
from ._policy_eval import policy_revenue as policy_revenue, PolicyRevenue as PolicyRevenue
from ._race import (
    expected_race_blocks as expected_race_blocks,
    win_probability as win_probability,
)
from ._risk import (
    honest_certainty_equivalent as honest_certainty_equivalent,
    policy_certainty_equivalent as policy_certainty_equivalent,
)
