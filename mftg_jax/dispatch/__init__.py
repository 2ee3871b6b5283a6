"""Demand-supply matching: the merit order, risk-sensitive mismatch control and the consumers'
response (docs/dispatch.md; slides, "Producers: how to match the demand?" to "Consumer
response").

`dispatch(fleet, demand)` gives the least-cost dispatch and the system marginal price of a
[`Fleet`][mftg_jax.dispatch.Fleet] (linear or quadratic costs, vectorised, differentiable),
`certify` its KKT residuals and duality gap; `solve_riccati` and `solve_hjb` the
risk-sensitive matching problem (unbounded closed form and bounded grid solver),
`certainty_equivalent` its Monte Carlo check; `clear_market`, `clear_with_large_consumer`
and `couple_price_game` the consumers' response and its effect on the price game of
[`mftg_jax.price`][].
"""

from ._clearing import (
    clear_market as clear_market,
    clear_with_large_consumer as clear_with_large_consumer,
    MarketClearing as MarketClearing,
    supply_bounds as supply_bounds,
)
from ._config import (
    config_from_dict as config_from_dict,
    DispatchConfig as DispatchConfig,
    load_config as load_config,
)
from ._coupling import couple_price_game as couple_price_game, CoupledPrice as CoupledPrice
from ._dispatch import dispatch as dispatch, DispatchSolution as DispatchSolution
from ._fleet import Fleet as Fleet
from ._hjb import HJBGrid as HJBGrid, HJBSolution as HJBSolution, solve_hjb as solve_hjb
from ._kkt import certify as certify, DispatchCertificate as DispatchCertificate
from ._matching import MatchingProblem as MatchingProblem
from ._montecarlo import (
    certainty_equivalent as certainty_equivalent,
    CertaintyEquivalent as CertaintyEquivalent,
)
from ._neutral import expected_loss as expected_loss
from ._risk_riccati import (
    breakdown_eta as breakdown_eta,
    riccati_closed_form as riccati_closed_form,
    RiskSensitiveSolution as RiskSensitiveSolution,
    RiskValues as RiskValues,
    solve_riccati as solve_riccati,
)
from ._utility import (
    AbstractUtility as AbstractUtility,
    IsoelasticUtility as IsoelasticUtility,
    QuadraticUtility as QuadraticUtility,
)
